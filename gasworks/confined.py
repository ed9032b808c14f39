"""Files inside a folder whose contents are untrusted (a worktree where a model's code has run, a
tree an agent's branch made), read, written and removed without following any link on the way:
each folder is opened relative to the one before, never through a link, so a link planted at the
file or at any folder above it (even while gasworks works there) cannot send it outside."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePath

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW


def _parts(name: str | PurePath) -> tuple[str, ...]:
    path = PurePath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise OSError(errno.EPERM, f"{name}: not a path inside the folder")
    return path.parts


def _folder(root: Path, parts: tuple[str, ...], make: bool) -> int:
    """An fd of root/parts (folders made first when `make`), each opened without following a link:
    OSError (ELOOP, ENOTDIR) where one is a link or a file."""
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in parts:
            if make:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            inner = os.open(part, _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_text(root: Path, name: str | PurePath) -> str | None:
    """root/name's text; None when there is no such file (or it is a link, which is not followed)."""
    data = read_bytes(root, name)
    return None if data is None else data.decode("utf-8")


def read_bytes(root: Path, name: str | PurePath) -> bytes | None:
    """root/name's bytes; None when there is no such file (or it is a link, which is not followed)."""
    *folders, leaf = _parts(name)
    try:
        fd = _folder(root, tuple(folders), make=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    try:
        handle = os.open(leaf, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.ENXIO):
            return None
        raise
    finally:
        os.close(fd)
    with os.fdopen(handle, "rb") as opened:
        if not stat.S_ISREG(os.fstat(opened.fileno()).st_mode):
            return None  # a FIFO or a device: never read
        return opened.read()


def write_text(root: Path, name: str | PurePath, text: str) -> None:
    write_bytes(root, name, text.encode("utf-8"))


def write_bytes(root: Path, name: str | PurePath, data: bytes) -> None:
    """root/name holding data, its folders made as needed; a link at name is replaced, not written
    through, and a link in place of a folder above it raises OSError."""
    *folders, leaf = _parts(name)
    fd = _folder(root, tuple(folders), make=True)
    try:
        _unlink_link(leaf, fd)
        handle = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o644, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(handle, "wb") as opened:
        opened.write(data)


def remove(root: Path, name: str | PurePath) -> None:
    """root/name gone (a link there is removed itself); nothing outside root is touched."""
    *folders, leaf = _parts(name)
    try:
        fd = _folder(root, tuple(folders), make=False)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        os.unlink(leaf, dir_fd=fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _unlink_link(leaf: str, fd: int) -> None:
    try:
        if stat.S_ISLNK(os.stat(leaf, dir_fd=fd, follow_symlinks=False).st_mode):
            os.unlink(leaf, dir_fd=fd)
    except FileNotFoundError:
        pass
