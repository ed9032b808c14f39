"""The merge gate: the `gate` commands, run one after another in the integration tree. They run
the branch's own code, so under `sandbox = "bwrap"` they may write only that tree; each is a
process group whose processes carry marks, so a restart finds and ends a gate a killed run left."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gasworks import git, logs, process, sandbox
from gasworks.config import Config
from gasworks.errors import ConfigError

TAIL_LINES = 40  # of a failing command's output, for the task's notes
MARK = "gate"  # GASWORKS_ATTEMPT of gate processes
POINTER = ".git"  # after the tree's name: its .git file as the sandboxed gate sees it
WAIT_POLL_SECONDS = 0.02  # how often a gate command's end is looked for (to read its own CPU time)


@dataclass(frozen=True)
class Gated:
    """One run of every gate command."""

    passed: bool
    tail: str = ""            # the failing command's output, for the task's notes
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + system time of the gate's processes


class Gate:
    def __init__(self, config: Config, root: Path, integration: Path, logs_dir: Path,
                 tree: Callable[[], git.Tree]) -> None:
        self.config, self.root, self.integration, self.logs_dir = config, root, integration, logs_dir
        self.tree = tree  # the integration tree's git dirs, looked up once it exists
        self.proc: subprocess.Popen | None = None
        self.halted = False  # halt(): no further command starts

    def check(self) -> None:
        """Every program found: a gate that cannot start would fail every branch and then the target
        itself, and the queue would wait for good."""
        for argv in self.config.gate:
            program = argv[0]
            if "/" not in program and "\\" not in program and shutil.which(program) is None:
                raise ConfigError(f"gate command {program!r} is not installed or not on PATH (gate = "
                                  f"{self.config.gate}): install it, or fix `gate` in gasworks.toml")
            if Path(program).is_absolute() and not Path(program).exists():
                raise ConfigError(f"gate command {program} does not exist: fix `gate` in gasworks.toml")

    def run(self, name: str) -> tuple[bool, str]:
        """Every command in turn, each within gate_timeout; (passed, the failing command's tail)."""
        gated = self.measure(name)
        return gated.passed, gated.tail

    def measure(self, name: str) -> Gated:
        """run(), with its wall and CPU time."""
        started, cpu = time.monotonic(), 0.0
        for number, argv in enumerate(self.config.gate, start=1):
            if self.halted:
                return Gated(False, "the gate was stopped", time.monotonic() - started, cpu)
            log = self.logs_dir / f"{name}-{int(time.time() * 1000)}-{number}.log"
            try:
                self.proc = process.spawn(self._argv(argv), cwd=self.integration, log_path=log,
                                          env={**os.environ, **self.marks()})
            except OSError as exc:
                return Gated(False, f"could not start gate command {argv[0]!r}: {exc.strerror or exc}")
            if self.halted:  # halt() came between the check above and self.proc: it could not end it
                process.terminate_group(self.proc.pid, hard=True)
            code, used = wait_timed(self.proc, self.config.gate_timeout)
            cpu += used
            process.terminate_group(self.proc.pid, hard=True)
            self.proc = None
            if code != 0:
                why = "timed out" if code is None else f"exited {code}"
                return Gated(False, f"$ {' '.join(argv)}  ({why})\n" + "\n".join(logs.tail(log, TAIL_LINES)),
                             time.monotonic() - started, cpu)
        return Gated(True, "", time.monotonic() - started, cpu)

    def stop(self) -> None:
        """End the running command's whole process group now (a second Ctrl+C)."""
        if self.proc is not None:
            process.terminate_group(self.proc.pid, hard=True)

    def halt(self) -> None:
        """stop(), for good: a command not yet started never starts."""
        self.halted = True
        self.stop()

    def end_leftovers(self) -> list[int]:
        """End gate processes a stopped refinery left running; call only under the merge lock."""
        return process.end_attempt(self.integration, MARK)

    def marks(self) -> dict[str, str]:
        """What every gate process carries in its environment (process.end_attempt finds them by it,
        also those that left the command's process group)."""
        return {"GASWORKS_WORKTREE": str(self.integration), "GASWORKS_ATTEMPT": MARK}

    def _argv(self, argv: list[str]) -> list[str]:
        """Under `sandbox = "bwrap"`: writable only the integration tree (whose .git file it cannot
        change) and sandbox_writable."""
        if self.config.sandbox != "bwrap":
            return argv
        tree = self.tree()
        pointer = self.integration.parent / f"{self.integration.name}{POINTER}"  # beside the tree
        git.write_new(pointer, f"gitdir: {tree.gitdir}\n".encode())
        return sandbox.gate_argv(argv, bwrap=sandbox.find_bwrap(), tree=tree, repo_root=self.root,
                                 extra=self.config.sandbox_writable, pointer=pointer)


def wait_timed(proc: subprocess.Popen, timeout: float) -> tuple[int | None, float]:
    """Wait for proc at most timeout seconds (then its group is killed): (exit code or None when it
    timed out, the CPU seconds it and the children it waited for used). Where wait4 is missing the
    CPU time is 0."""
    wait4 = getattr(os, "wait4", None)
    if wait4 is None:
        try:
            return proc.wait(timeout=timeout), 0.0
        except subprocess.TimeoutExpired:
            process.terminate_group(proc.pid, hard=True)
            proc.wait()
            return None, 0.0
    deadline, timed_out = time.monotonic() + timeout, False
    while True:
        pid, status, usage = wait4(proc.pid, 0 if timed_out else os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return (None if timed_out else proc.returncode), usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            process.terminate_group(proc.pid, hard=True)
            timed_out = True
            continue
        time.sleep(WAIT_POLL_SECONDS)


def pregate(config: Config, root: Path, tree: git.Tree, tip: str, logs_dir: Path, gate: Gate | None = None) -> Gated:
    """The gate on an agent's branch merged onto the target's tip, in the agent's own worktree, on a
    clean tree; the worktree is put back on its branch afterwards, as it was. A branch that does
    not merge cleanly passes here: the merge queue's trial merge makes the conflict a task."""
    branch, head = git.current_branch(tree), git.rev_parse(tree, "HEAD")
    gate = gate or Gate(config, root, tree.path, logs_dir, lambda: tree)
    try:
        merged = git.merge_commit(root, tip, head, "pre-gate: the branch merged onto the tip")
        if merged is None or not config.gate:
            return Gated(True)
        git.clean_detach(tree, merged)
        return gate.measure(f"pregate-{tree.path.name}")
    finally:
        gate.stop()
        if branch:  # back on its branch, with nothing the gate left behind
            git.checkout_branch(tree, branch, head)
        else:
            git.clean_detach(tree, head)


class Pregating:
    """A pre-gate running in the background, so the dispatcher goes on starting and collecting
    other slots meanwhile: a thread that waits on the gate's process groups (the gate itself never
    runs in this process). stop() ends the running command's group; the thread then puts the
    worktree back and ends."""

    def __init__(self, config: Config, root: Path, tree: git.Tree, tip: str, logs_dir: Path) -> None:
        self.gate = Gate(config, root, tree.path, logs_dir, lambda: tree)
        self.result: Gated | None = None
        self.error: Exception | None = None  # what stopped it from running the gate (a git failure, say)
        self.thread = threading.Thread(target=self._run, args=(config, root, tree, tip, logs_dir),
                                       name=f"gasworks-pregate-{tree.path.name}", daemon=True)
        self.thread.start()

    def _run(self, config: Config, root: Path, tree: git.Tree, tip: str, logs_dir: Path) -> None:
        try:
            self.result = pregate(config, root, tree, tip, logs_dir, self.gate)
        except Exception as exc:  # handed to the dispatcher's thread by outcome()
            self.error = exc

    def done(self) -> bool:
        return not self.thread.is_alive()

    def outcome(self) -> Gated:
        """Once done(): what the gate found; raises what kept it from running."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def stop(self) -> None:
        self.gate.halt()
