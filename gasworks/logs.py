"""Attempt logs: where an attempt's log is, its last lines, and following it as it grows.

Agents write whatever they like to their logs (colours, progress bars, other people's text),
so every line is cleaned before anyone shows it: ANSI sequences are dropped and the other
control characters are shown as \\xNN, never passed to a terminal.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gasworks.errors import NotFoundError
from gasworks.output import safe
from gasworks.store import AttemptLog

if TYPE_CHECKING:
    from gasworks.records import Attempt

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
TAIL_WINDOW = 64 * 1024  # bytes read from the end of a log for its last lines


def log_path(logs_dir: Path, attempt: Attempt) -> Path:
    """The attempt's log file (recorded once its agent started; the dispatcher's naming otherwise).
    Never a path outside the log folder, whatever the record says."""
    recorded = Path(attempt.log_path) if attempt.log_path else None
    if recorded is not None and recorded.absolute().is_relative_to(Path(logs_dir).absolute()):
        return recorded
    return logs_dir / attempt.task_id / f"{attempt.id}.log"


def open_log(path: Path):
    """A log opened for reading only if it is a regular file, never through a link: an agent in
    the sandbox may write its log folder, and a link to another file or a FIFO left there must
    neither show that file nor hang the reader."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def clean(line: str) -> str:
    """One log line fit to show: no ANSI sequences, no carriage-return overdraws, other controls escaped."""
    line = _ANSI.sub("", line).rstrip("\r\n")
    if "\r" in line:  # a progress bar redrawn in place: keep what was left on the screen
        line = line.rsplit("\r", 1)[-1]
    return safe(line)


def tail(path: Path, lines: int = 20, window: int = TAIL_WINDOW) -> list[str]:
    """The last `lines` non-empty lines of a file, cleaned, read from its end; [] without the file."""
    try:
        with open_log(path) as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - window))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    if len(data) == window and text:
        text = text[1:]  # the first line was cut in the middle
    found = [clean(line) for line in text if line.strip()]
    return found[-lines:] if lines > 0 else []


def last_line(path: Path) -> str:
    found = tail(path, 1, window=4096)
    return found[0] if found else ""


def exit_reason(path: Path, code: int | None) -> str:
    """Why an agent's attempt failed, in one line: its exit code and the last line it wrote (its
    output and its errors share the log)."""
    last = last_line(path)
    return f"agent exited {code}" + (f": {last[:200]}" if last else " (its log is empty)")


def read_lines(path: Path) -> list[str]:
    """The whole log, cleaned line by line; [] without the file."""
    try:
        with open_log(path) as handle:
            data = handle.read()
    except OSError:
        return []
    return [clean(line) for line in data.decode("utf-8", "replace").splitlines()]


def follow(path: Path, done: Callable[[], bool], *, start: int = 0, poll: float = 0.2,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The lines written to `path` from byte `start` on, cleaned, as they arrive; ends once done()
    is true and everything written before it became true has been read. A file that does not
    exist yet is waited for."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    offset, pending = start, ""
    while True:
        finished = done()  # asked before reading, so nothing written before the end is missed
        try:
            with open_log(path) as handle:
                handle.seek(offset)
                chunk = handle.read()
        except OSError:
            chunk = b""
        offset += len(chunk)
        pending += decoder.decode(chunk, final=finished and not chunk)
        *complete, pending = pending.split("\n")
        yield from (clean(line) for line in complete)
        if finished and not chunk:
            if pending:
                yield clean(pending)
            return
        if not chunk:
            sleep(poll)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def quiet_seconds(path: Path, now: float) -> float | None:
    """How long since the log last grew (None without a log): a stuck agent is a quiet one."""
    try:
        return max(0.0, now - path.stat().st_mtime)
    except OSError:
        return None


def pick_attempt(store: AttemptLog, task_id: str, number: int | None = None) -> Attempt:
    """The task's attempt with that number (1: its first), or its latest."""
    found = store.attempts(task_id)
    if not found:
        raise NotFoundError(f"{task_id} has no attempts yet")
    if number is None:
        return found[-1]
    for attempt in found:
        if attempt.number == number:
            return attempt
    raise NotFoundError(f"{task_id} has no attempt {number} (it has {', '.join(str(a.number) for a in found)})")


def attempt_patch(store: AttemptLog, root: Path, task_id: str, number: int | None = None) -> tuple[Attempt, str, str]:
    """What a task's attempt changed: (attempt, its last commit, the patch from where it started to
    that commit). Default: the latest attempt that made commits, else the latest. "" and "" for an
    attempt without commits (one still running has none recorded yet)."""
    from gasworks import git

    if number is None:
        made = [a for a in store.attempts(task_id) if a.commits]
        attempt = made[-1] if made else pick_attempt(store, task_id)
    else:
        attempt = pick_attempt(store, task_id, number)
    head = attempt.commits[-1] if attempt.commits else ""
    return attempt, head, git.diff(root, attempt.base_commit, head) if head else ""


def attempt_lines(store: AttemptLog, logs_dir: Path, attempt: Attempt, *, last: int | None = None, keep_following: bool,
                  poll: float = 0.2, given_up: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """An attempt's log, cleaned (only its last `last` lines, if given); with keep_following, then
    what the agent writes on, until the store records the attempt's end (or given_up() is true)."""
    path = log_path(logs_dir, attempt)
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    if keep_following:  # a line still being written is left to follow(), which prints it whole
        data = data[: data.rfind(b"\n") + 1]
    lines = [clean(line) for line in data.decode("utf-8", "replace").splitlines()]
    yield from lines if last is None else lines[-last:] if last else []
    if keep_following:
        def ended() -> bool:
            return given_up() or any(a.id == attempt.id and a.ended_at for a in store.attempts(attempt.task_id))

        yield from follow(path, ended, start=len(data), poll=poll)
