"""Child processes in their own process group: start, poll, end the whole tree. POSIX and Windows."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import psutil

_WINDOWS = sys.platform == "win32"
# What long-running commands stop on, gracefully: Ctrl+C, `kill`, and the terminal closing (SIGHUP,
# whose default action would end Python at once, without cleanup, leaving its agents running).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Received:
    """The stop signals received so far. Called: whether any was."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    @property
    def count(self) -> int:
        return len(self.signals)

    def __call__(self) -> bool:
        return bool(self.signals)


@contextlib.contextmanager
def stop_signals(signals: Iterable[int] = STOP_SIGNALS) -> Iterator[Received]:
    """Handlers that only note each signal (the loop acts on them: the first drains, the second
    ends everything); the previous handlers come back afterwards."""
    received = Received()
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.signals.append(signum)) for sig in signals}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def spawn(argv: list[str], *, cwd: Path, log_path: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """Start argv (never through a shell) in a new process group, output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        options: dict = {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP")} if _WINDOWS else \
            {"start_new_session": True}
        return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(env), **options)


def started_at(pid: int) -> float | None:
    """The process's start time, to tell it from a later process that reuses the pid."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_same_process(pid: int, start_time: float | None) -> bool:
    # psutil derives start times from the boot time, which moves with clock steps: allow a second.
    current = started_at(pid)
    return current is not None and start_time is not None and abs(current - start_time) < 1.0


def terminate_group(pid: int, *, hard: bool = False) -> None:
    """Ask (or, with hard, force) the process group led by pid to end: the agent and all it started."""
    if _WINDOWS:
        _end_tree_windows(pid, hard)
        return
    try:
        os.killpg(pid, signal.SIGKILL if hard else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _end_tree_windows(pid: int, hard: bool) -> None:  # pragma: no cover - Windows only
    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.kill() if hard else proc.terminate()
        except psutil.NoSuchProcess:
            pass


def find_agents(worktrees: list[Path]) -> list[int]:
    """Live processes gasworks started as agents in these worktrees (found by the environment it
    gave them, which their children inherit), so a restart can end what a crashed run left."""
    roots = [path.resolve() for path in worktrees]
    found = []
    for proc in psutil.process_iter(["pid"]):
        where = _environ(proc).get("GASWORKS_WORKTREE")
        if where and proc.pid != os.getpid() and any(Path(where).resolve() == root for root in roots):
            found.append(proc.pid)
    return found


def end_attempt(worktree: Path, attempt: int | str, *, rounds: int = 10) -> list[int]:
    """Kill every process of one attempt: those whose environment carries this GASWORKS_WORKTREE and
    GASWORKS_ATTEMPT, which gasworks gave the agent and its children inherit. So a child that left
    the agent's process group (setsid) ends with the attempt too. Never this process or its
    ancestors. Repeated until a look finds none, so children forked meanwhile go as well."""
    root, wanted = Path(worktree).resolve(), str(attempt)
    spared = {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
    ended: list[int] = []
    for _ in range(rounds):
        found = [proc.pid for proc in psutil.process_iter(["pid"])
                 if proc.pid not in spared and _of_attempt(_environ(proc), root, wanted)]
        if not found:
            break
        for pid in found:
            kill(pid)
        ended += [pid for pid in found if pid not in ended]
    return ended


def _of_attempt(env: Mapping[str, str], root: Path, attempt: str) -> bool:
    where = env.get("GASWORKS_WORKTREE")
    return env.get("GASWORKS_ATTEMPT") == attempt and bool(where) and Path(where or ".").resolve() == root


def _environ(proc: psutil.Process) -> dict[str, str]:
    """A process's environment, or {} for one gone, a zombie or another user's."""
    try:
        return proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return {}


def kill(pid: int) -> None:
    try:
        psutil.Process(pid).kill()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
