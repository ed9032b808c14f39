"""What becomes of an attempt in a slot once its agent is done: its branch handed over to the merge
queue (or waiting for review, or back into the queue for a conflict task), after a pre-gate in the
slot's own worktree when the policy wants one; or, when it failed, the witness's retry-or-block
decision. The dispatcher collects the slots; this decides where each finished one goes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gasworks import review, witness
from gasworks.attempt import AttemptRun
from gasworks.config import Config
from gasworks.errors import GasworksError
from gasworks.gate import Pregating
from gasworks.models import MergeStatus, Outcome, Status
from gasworks.speculation import policy_for
from gasworks.store import Store
from gasworks.upstream import Upstream
from gasworks.witness import Watch
from gasworks.worktrees import Slot, WorktreePool, branch_for


@dataclass(kw_only=True)
class Running(AttemptRun):
    """An attempt running in a slot of the fleet."""

    slot: Slot
    watch: Watch           # its start, claim renewal and activity, for the witness
    resolves: str = ""     # for a merge-conflict task: the task whose branch it works on
    files: frozenset[str] = frozenset()  # its `files:` labels, kept apart from other running tasks
    number: int = 0        # the attempt's number within its task (1: the first)
    pregating: Pregating | None = None  # its agent done, its branch's pre-gate (the slot stays taken)
    commits: list[str] = field(default_factory=list)  # its work, while pre-gated

    def stop(self, reason: Outcome, *, hard: bool = True) -> None:
        if self.pregating is None:
            super().stop(reason, hard=hard)
            return
        self.stop_reason = reason.value  # its agent was reaped: only the gate is left to end
        self.pregating.stop()

    def pregate_verdict(self, store: Store, actor: str) -> tuple[Outcome | None, str]:
        """Once its pre-gate ended: (None, "") when it passed, else the attempt's outcome and note (the
        gate's output). A run is recorded unless it was stopped or could not start."""
        assert self.pregating is not None
        try:
            found = self.pregating.outcome()
        except GasworksError as exc:
            return Outcome.ERROR, f"the pre-gate could not run: {exc}"
        if self.stop_reason:  # a hard stop, a lost claim: not the branch's doing
            return Outcome(self.stop_reason), "stopped during its pre-gate"
        store.record_pregate(self.task_id, passed=found.passed, seconds=found.seconds, cpu_seconds=found.cpu_seconds,
                             actor=actor)
        return (None, "") if found.passed else (Outcome.GATE_FAILED, f"the pre-gate failed:\n{found.tail}")

    def ended(self) -> bool:
        """Whether tick() has something to collect: the agent exited, or its pre-gate ended."""
        if self.pregating is not None:
            return self.pregating.done()
        return self.proc is not None and self.proc.poll() is not None


@dataclass
class Handover:
    """Where a finished slot's work goes; `running` is the dispatcher's table of busy slots (a slot
    that pre-gates stays in it), `wake` tells the refinery's thread that the queue grew."""

    store: Store
    config: Config
    upstream: Upstream
    pool: WorktreePool
    root: Path
    logs_dir: Path
    me: str
    running: dict[str, Running]
    say: Callable[[str], None]
    wake: Callable[[], None]

    def failed(self, attempt_id: int, task_id: str, outcome: Outcome, code: int | None, why: str,
               commits: Sequence[str] = (), *, now: float) -> None:
        witness.fail_attempt(self.store, attempt_id, task_id, outcome.value, code, why, commits, config=self.config,
                             now=now, say=self.say)

    def finished(self, run: Running, code: int | None, commits: list[str], now: float) -> None:
        """A successful attempt's branch: to the merge queue (or, for a conflict task, back into it)."""
        success = Outcome.SUCCESS.value
        if self.config.pregate and not run.resolves and run.pregating is None and self._pregates():
            self._pregate(run, commits)
            return
        try:  # several hosts: the refinery may run on another one
            self.upstream.publish(branch_for(run.resolves or run.task_id))
        except GasworksError as exc:
            self.failed(run.attempt_id, run.task_id, Outcome.ERROR, code, f"could not push its branch: {exc}",
                        commits, now=now)
            return
        if not self.config.auto_merge_worktrees:
            self.store.finish_attempt(run.attempt_id, outcome=success, exit_code=code, commits=commits,
                                      task_status=Status.CLOSED, note=f"branch {branch_for(run.task_id)} is ready; "
                                                                      "not merged (auto_merge_worktrees = false)")
            return
        if run.resolves:
            self.store.finish_attempt(run.attempt_id, outcome=success, exit_code=code, commits=commits,
                                      task_status=Status.CLOSED, note=f"resolved on {branch_for(run.resolves)}")
            self.say(f"{run.slot.name}: {run.task_id} resolved the conflict of {run.resolves}")
        else:
            wait = review.wanted(self.config.review, self.store.get_task(run.task_id))
            self.store.finish_attempt(run.attempt_id, outcome=success, exit_code=code, commits=commits,
                                      task_status=Status.MERGING, note=f"{len(commits)} commit(s) to merge",
                                      merge_branch=branch_for(run.task_id),
                                      merge_status=MergeStatus.REVIEW if wait else MergeStatus.QUEUED)
            self.say(f"{run.slot.name}: {run.task_id} finished with {len(commits)} commit(s); "
                     + ("waits for review (gasworks approve/reject)" if wait else "queued to merge"))
        self.wake()  # the branch goes (back) into the queue

    def _pregate(self, run: Running, commits: list[str]) -> None:
        """The pre-gate of a finished branch in its slot's own worktree, in the background: the slot
        stays taken until tick() collects it (pregated)."""
        run.commits, run.pregating = commits, Pregating(self.config, self.root, self.pool.tree(run.slot),
                                                        self.upstream.tip(), self.logs_dir / "pregates")
        self.running[run.slot.name] = run
        self.say(f"{run.slot.name}: {run.task_id} finished; pre-gating its branch")

    def _pregates(self) -> bool:
        """pregate = true, or "auto" and the policy says it pays now."""
        return self.config.pregate is True or policy_for(self.store, self.config).pregate

    def pregated(self, run: Running, now: float) -> None:
        """A pass goes on to the queue; a failure or a stop goes back as a failed attempt, never queued."""
        code = run.proc.returncode if run.proc is not None else None
        outcome, why = run.pregate_verdict(self.store, self.me)
        if outcome is None:
            self.finished(run, code, run.commits, now)
        elif not (run.stop_reason and witness.left_as_is(self.store, run.attempt_id, run.task_id, outcome.value,
                                                         code, run.commits, self.say, run.slot.name)):
            self.failed(run.attempt_id, run.task_id, outcome, code, why, run.commits, now=now)
