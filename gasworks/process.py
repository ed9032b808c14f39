"""Child processes in their own process group: start, poll, end the whole tree. POSIX and Windows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil

_WINDOWS = sys.platform == "win32"


def spawn(argv: list[str], *, cwd: Path, log_path: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """Start argv (never through a shell) in a new process group, output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        options: dict = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if _WINDOWS else \
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


def group_alive(pid: int) -> bool:
    """Whether any process of the group led by pid still runs (children outlive their parent)."""
    if _WINDOWS:  # pragma: no cover
        return psutil.pid_exists(pid)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_agents(worktrees: list[Path]) -> list[int]:
    """Live processes gasworks started as agents in these worktrees (found by the environment it
    gave them, which their children inherit), so a restart can end what a crashed run left."""
    roots = [path.resolve() for path in worktrees]
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            where = proc.environ().get("GASWORKS_WORKTREE")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if where and proc.pid != os.getpid() and any(Path(where).resolve() == root for root in roots):
            found.append(proc.pid)
    return found


def kill(pid: int) -> None:
    try:
        psutil.Process(pid).kill()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
