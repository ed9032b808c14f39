"""One attempt's lifecycle, the same for the fleet (`gasworks run`), `gasworks agent-run` and `qwen-agent`.

An attempt is one agent process on one task in one checkout:

1. `start`: the agent's own LaunchSpec (under bubblewrap with a git dir of the attempt's own when
   `sandbox = "bwrap"`), started in its own process group with no shell and the GASWORKS_*
   environment, output appended to its log;
2. `stop` (timeout, stall, a signal, a lost claim) and `reap`: its whole process group ended, and
   whatever left the group (setsid), found by its environment;
3. `take_work`: what a sandboxed agent committed brought in, checked; what it left uncommitted
   committed for it (unless it was stopped); files over max_file_mb refused; its commits listed;
4. `decide`: the outcome (a models.Outcome) from the exit code and the commits, never the agent's word.

What happens to the task afterwards is the caller's: the dispatcher's store and merge queue, or
agent-run's exit code. Nothing here reads the clock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gasworks import attempt_repo, git, logs, process, sandbox
from gasworks.errors import GitError
from gasworks.launch import ENDPOINT_DOWN_EXIT, Agent, AgentContext, LaunchSpec
from gasworks.models import Outcome

# What each outcome but success says, for the attempt's note (the dispatcher) or agent-run's summary.
NOTES = {
    Outcome.NO_CHANGE: "the agent made no commits",
    Outcome.TIMEOUT: "stopped after attempt_timeout",
    Outcome.INTERRUPTED: "stopped by a signal to gasworks",
    Outcome.STALLED: "no output and no file change for stall_timeout",
    Outcome.ENDPOINT_DOWN: "the model could not be reached",
    Outcome.DISK_FULL: "the log folder is full",
}


@dataclass(frozen=True)
class Sandbox:
    """`sandbox = "bwrap"`: bubblewrap's path, the repository and the folders sandbox_writable adds."""

    bwrap: str
    repo_root: Path
    writable: tuple[Path, ...] = ()


@dataclass(kw_only=True)
class AttemptRun:
    """One agent process working on one task in one checkout, from start to outcome."""

    task_id: str
    attempt_id: int             # GASWORKS_ATTEMPT: with GASWORKS_WORKTREE, how its processes are found
    slot_name: str              # GASWORKS_SLOT
    tree: git.Tree              # its checkout, its git dirs taken before the agent ran
    branch: str                 # the branch checked out there ("" when HEAD is detached)
    base: str                   # the commit its work starts from
    log: Path                   # its output; its usage and transcript files go beside it
    private: Path | None = None  # sandboxed: the folder of its own git dir
    proc: subprocess.Popen | None = None
    stop_reason: str = ""       # set when gasworks ends it: an Outcome value

    @property
    def worktree(self) -> Path:
        return self.tree.path

    def start(self, agent: Agent, ctx: AgentContext, *, box: Sandbox | None = None, log_dir: Path | None = None,
              env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """Launch the agent: its own process group, no shell, output to the log. `log_dir`: what the
        sandbox lets it write besides its checkout (default: the log's folder)."""
        spec = agent.launch(ctx)
        if box is not None:
            spec = self._sandboxed(spec, box, log_dir or self.log.parent)
        full = {**os.environ, **spec.env, **environment(self), **(env or {})}
        self.proc = process.spawn(spec.argv, cwd=self.worktree, log_path=self.log, env=full)
        return self.proc

    def _sandboxed(self, spec: LaunchSpec, box: Sandbox, log_dir: Path) -> LaunchSpec:
        """The launch inside bubblewrap, committing into a git dir of the attempt's own (the
        repository's objects and refs stay read-only)."""
        if self.private is None:
            raise ValueError("a sandboxed attempt needs a folder for its own git dir")
        objects_at = sandbox.SHARED_OBJECTS if self.tree.gitdir == self.tree.common else None  # a main checkout
        private_git = attempt_repo.private_gitdir(self.tree, self.private, self.branch, objects_at=objects_at)
        return sandbox.sandboxed(spec, bwrap=box.bwrap, worktree=self.worktree, branch=self.branch, log_dir=log_dir,
                                 repo_root=box.repo_root, extra=box.writable, private_git=private_git)

    def stop(self, reason: Outcome, *, hard: bool = True) -> None:
        """End its process group (SIGKILL, or with hard false SIGTERM), noting why."""
        self.stop_reason = reason.value
        if self.proc is not None:
            process.terminate_group(self.proc.pid, hard=hard)

    def reap(self) -> None:
        """After it exited: end whatever it left running, in its group or out of it (setsid)."""
        if self.proc is not None:
            process.terminate_group(self.proc.pid, hard=True)
            self.proc.wait()
        process.end_attempt(self.worktree, self.attempt_id)

    def take_work(self, limit: int, *, keep_out: tuple[str, ...] = (),
                  before_commit: Callable[[], None] = lambda: None) -> list[str]:
        """Its work as commits on top of base: a sandboxed agent's commits brought in (checked as they
        come), then `before_commit` (the fleet takes its suggestions out), then what it left
        uncommitted (not under keep_out) committed for it unless it was stopped. Files over `limit`
        bytes raise GitError. Commits whose sum changes nothing (a file added and removed) are none."""
        if self.private is not None:
            try:
                head = attempt_repo.import_private(self.tree, self.private / "git", f"{self.slot_name}-"
                                                   f"{self.private.name}", self.base, limit)
            finally:
                shutil.rmtree(self.private, ignore_errors=True)
            if head:
                attempt_repo.move_branch(self.tree, self.branch, head)
        before_commit()
        changed = [name for name in git.changed_files(self.tree) if not kept_out(name, keep_out)]
        big = attempt_repo.oversized(self.tree, self.base, "HEAD", limit, changed=changed)
        if big:
            raise GitError(f"files over max_file_mb ({limit / (1 << 20):g} MiB): {', '.join(big[:5])}")
        if not self.stop_reason and changed:
            git.commit_leftovers(self.tree, f"gasworks: changes left uncommitted by the agent ({self.task_id})",
                                 keep_out)
        return [] if git.same_tree(self.tree, self.base, "HEAD") else git.commits_between(self.tree, self.base)

    def decide(self, commits: list[str], *, disk_full: Callable[[], bool] = lambda: False) -> Outcome:
        """The outcome, from how it ended and what it committed. `disk_full` is asked only when it
        failed: output it could not write is not the task's fault."""
        code = self.proc.returncode if self.proc is not None else None
        if self.stop_reason:
            return Outcome(self.stop_reason)
        if code == ENDPOINT_DOWN_EXIT:
            return Outcome.ENDPOINT_DOWN
        if code != 0 and disk_full():
            return Outcome.DISK_FULL
        if code != 0:
            return Outcome.FAILED
        return Outcome.SUCCESS if commits else Outcome.NO_CHANGE

    def usage(self) -> tuple[int, int] | None:
        """The (prompt, completion) tokens an agent that talks to a model reported, if it did."""
        try:
            with logs.open_log(self.log.with_suffix(".usage.json")) as handle:  # it may have left a link or a FIFO
                usage = json.loads(handle.read(1 << 16).decode("utf-8"))
            return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # agents that do not report tokens


def environment(run: AttemptRun) -> dict[str, str]:
    """What gasworks tells every agent it starts (and how a restart finds an agent's processes)."""
    return {"GASWORKS_TASK_ID": run.task_id, "GASWORKS_SLOT": run.slot_name, "GASWORKS_ATTEMPT": str(run.attempt_id),
            "GASWORKS_WORKTREE": str(run.worktree), "GASWORKS_USAGE_FILE": str(run.log.with_suffix(".usage.json")),
            "GASWORKS_TRANSCRIPT_FILE": str(run.log.with_suffix(".transcript.jsonl"))}


def note(outcome: Outcome, code: int | None, log: Path) -> str:
    """Why an attempt did not succeed, in one line: a few words, or for a failed exit its code and
    the last line the agent wrote (logs.exit_reason)."""
    return NOTES.get(outcome) or logs.exit_reason(log, code)


def kept_out(name: str, keep_out: tuple[str, ...]) -> bool:
    return any(name == path.rstrip("/") or name.startswith(path.rstrip("/") + "/") for path in keep_out)
