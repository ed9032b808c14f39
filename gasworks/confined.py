"""Files inside a folder whose contents are untrusted (a worktree where a model's code has run, a
tree an agent's branch made), read, written and removed without following any link on the way:
each folder is opened relative to the one before, never through a link, so a link planted at the
file or at any folder above it (even while gasworks works there) cannot send it outside. Where
the system cannot open relative to a folder (Windows), each folder is checked before use instead."""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, Iterator

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_RELATIVE = {os.open, os.mkdir, os.stat, os.unlink} <= os.supports_dir_fd


def _parts(name: str | PurePath) -> tuple[str, ...]:
    path = PurePath(name)
    if path.is_absolute() or path.drive or not path.parts or ".." in path.parts:
        raise OSError(errno.EPERM, f"{name}: not a path inside the folder")
    return path.parts


@contextmanager
def _folder(root: Path, parts: tuple[str, ...], make: bool) -> Iterator[Any]:
    """root/parts (folders made first when `make`), reached without following a link: an fd, or
    where that cannot be, the checked path. OSError (ELOOP, ENOTDIR) where one is a link or a file."""
    if not _RELATIVE:
        folder = Path(root)
        for part in parts:
            folder = folder / part
            if make and not (folder.is_symlink() or folder.exists()):
                folder.mkdir()
            if folder.is_symlink() or getattr(folder, "is_junction", lambda: False)():
                raise OSError(errno.ELOOP, f"{folder} is a link")
            if not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
        yield folder
        return
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in parts:
            if make:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            inner = os.open(part, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _at(folder: Any, leaf: str) -> tuple[str, dict[str, int]]:
    """The arguments that name leaf in folder (an fd or a path)."""
    return (leaf, {"dir_fd": folder}) if isinstance(folder, int) else (str(folder / leaf), {})


def read_text(root: Path, name: str | PurePath) -> str | None:
    """root/name's text; None when there is no such file (or it is a link, which is not followed)."""
    data = read_bytes(root, name)
    return None if data is None else data.decode("utf-8")


def read_bytes(root: Path, name: str | PurePath) -> bytes | None:
    """root/name's bytes; None when there is no such file (or it is a link, which is not followed)."""
    *folders, leaf = _parts(name)
    try:
        with _folder(root, tuple(folders), make=False) as folder:
            path, at = _at(folder, leaf)
            if stat.S_ISLNK(os.stat(path, follow_symlinks=False, **at).st_mode):
                return None
            handle = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY | getattr(os, "O_NONBLOCK", 0), **at)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.ENXIO):
            return None
        raise
    with os.fdopen(handle, "rb") as opened:
        if not stat.S_ISREG(os.fstat(opened.fileno()).st_mode):
            return None  # a folder, a FIFO or a device: never read
        return opened.read()


def write_text(root: Path, name: str | PurePath, text: str) -> None:
    write_bytes(root, name, text.encode("utf-8"))


def write_bytes(root: Path, name: str | PurePath, data: bytes) -> None:
    """root/name holding data, its folders made as needed; a link at name is replaced, not written
    through, and a link in place of a folder above it raises OSError."""
    *folders, leaf = _parts(name)
    with _folder(root, tuple(folders), make=True) as folder:
        path, at = _at(folder, leaf)
        try:
            if stat.S_ISLNK(os.stat(path, follow_symlinks=False, **at).st_mode):
                os.unlink(path, **at)
        except FileNotFoundError:
            pass
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _BINARY, 0o644, **at)
    with os.fdopen(handle, "wb") as opened:
        opened.write(data)


def remove(root: Path, name: str | PurePath) -> None:
    """root/name gone (a link there is removed itself); nothing outside root is touched."""
    *folders, leaf = _parts(name)
    try:
        with _folder(root, tuple(folders), make=False) as folder:
            path, at = _at(folder, leaf)
            os.unlink(path, **at)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise
