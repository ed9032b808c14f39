"""The refinery: the merge queue. One merge at a time, test-gated, never through the user's checkout.

A round takes the oldest queued branches (one, or a batch), tries each against the target's tip
without touching a worktree (`git merge-tree`), stacks the clean ones in the integration
worktree, runs the gate there, and lands exactly the commit that passed (merge_round.py). Where the
target is checked out (usually the user's checkout) it is advanced there with `git merge --ff-only`,
which keeps unrelated local edits; when local edits touch incoming files git refuses, and the queue
holds, nothing lost, until the user commits or stashes. Where it is checked out nowhere, a
compare-and-set `update-ref` moves it, so a target that moved meanwhile is re-tested, never
overwritten. A conflict becomes a task; a gate failure sends the task back with the gate's output
(verdicts.py). One refinery works at a time, over every host (merge_lock.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gasworks import git
from gasworks.config import Config
from gasworks.errors import GasworksError, GitError, NotFoundError, TransitionError
from gasworks.merge_lock import MergeLock
from gasworks.merge_round import HELD_RETRY_SECONDS, Held, Landing, Lane, MergeRound
from gasworks.models import FILES_LABEL, Merge, MergeStatus, Status, now_iso
from gasworks.output import oneline
from gasworks.project import Project
from gasworks.speculation import Policy, SpeculativeRound, auto_batch_size, policy_for
from gasworks.store import Store
from gasworks.upstream import Upstream
from gasworks.verdicts import CONFLICT_LABEL, GATE_BROKEN_LABEL, Verdicts, guarded_paths
from gasworks.worktrees import BRANCH_PREFIX

__all__ = ["CONFLICT_LABEL", "GATE_BROKEN_LABEL", "Refinery", "RefineryWorker", "auto_batch_size", "guarded_paths"]

ROUND_ERROR_BACKOFF, ROUND_ERROR_BACKOFF_MAX = 2.0, 120.0  # seconds before a round after git failed in one
ROUND_ERROR_LIMIT = 5  # rounds in a row in which git failed: then their merges wait for a human (held)


class Refinery:
    def __init__(self, project: Project, store: Store, config: Config, upstream: Upstream,
                 say: Callable[[str], None] = print) -> None:
        self.root = project.root
        self.store, self.config, self.upstream, self.say = store, config, upstream, say
        self.target = upstream.target
        self.integration = project.state_dir / "integration"
        self.logs = project.logs_dir / "merges"
        self.lanes = [Lane(self.root, self.integration, config, self.logs),
                      *(Lane(self.root, project.state_dir / f"integration-{n}", config, self.logs)
                        for n in range(2, config.gate_workers + 1))]
        self.lock = MergeLock(store, self.root / config.merge_slot,
                              ttl=config.gate_timeout * max(1, len(config.gate)) * 4 + 300)
        self.verdicts = Verdicts(self.root, store, config, upstream, say)
        self.held: Held | None = None
        self.broken_tip = ""        # a tip on which the gate fails by itself: wait until it moves
        self.known_good = ""        # the last commit the gate passed on, so its own check can be skipped
        self.aborting = False
        self.recovered = False      # recover_queue() has run under this refinery's lock
        self.round_errors = 0       # merge rounds in a row in which git failed
        self.backoff_until = 0.0    # no round before then, after such a failure

    # -- the round --------------------------------------------------------------------------

    def ensure(self) -> None:
        """The integration worktree made, and every gate program found: a gate that cannot start would
        fail every branch and then the target itself, and the queue would wait for good."""
        self.lanes[0].gate.check()
        for lane in self.lanes:
            lane.ensure(self.upstream.tip())

    @property
    def tree(self) -> git.Tree:
        return self.lanes[0].tree

    def moving(self) -> bool:
        """Merges it can make without a human: queued (also while a round's backoff lasts), being merged
        (not held by edits in the user's checkout), or resolved conflicts to queue again. While the
        gate fails on the target itself, only a branch that fixes that can land."""
        held = {m.id for m in self.held.merges} if self.held else set()
        active = [m for m in self.store.merges(statuses=[MergeStatus.QUEUED.value, MergeStatus.MERGING.value])
                  if m.id not in held]
        if active and self._tip_broken():
            active = [m for m in active if m.status == MergeStatus.MERGING.value or self._fixes_gate(m)]
        return bool(active or self._resolved_conflicts())

    def waiting(self) -> dict[str, str]:
        """Merges that wait on something only a person can change: task id -> why."""
        found = {m.task_id: self.held.message for m in self.held.merges} if self.held else {}
        if self._tip_broken():
            for merge in self.store.merges(statuses=[MergeStatus.QUEUED.value]):
                if not self._fixes_gate(merge):
                    found.setdefault(merge.task_id, f"the gate fails on {self.target} itself; nothing else lands "
                                                    "until that is fixed")
        return found

    def _tip_broken(self) -> bool:
        return bool(self.broken_tip) and self.upstream.tip() == self.broken_tip

    def _fixes_gate(self, merge: Merge) -> bool:
        return GATE_BROKEN_LABEL in self.store.get_task(merge.task_id).labels

    def files_in_flight(self) -> frozenset[str]:
        """`files:` labels of tasks whose branch has not landed yet (waiting for review, queued, merging,
        or waiting for its conflict to be resolved): a new task on those files would start from a tip without them."""
        waiting = self.store.merges(statuses=[MergeStatus.REVIEW.value, MergeStatus.QUEUED.value,
                                              MergeStatus.MERGING.value, MergeStatus.CONFLICT.value,
                                              MergeStatus.HELD.value])
        return frozenset(label for merge in waiting for label in self.store.get_task(merge.task_id).labels
                         if label.startswith(FILES_LABEL))

    def process(self, now: float | None = None) -> bool:
        """One round. Returns False when there was nothing to do, or another refinery holds the lock."""
        now = time.time() if now is None else now
        if not self.recovered:  # once, before the first round: what a stopped refinery left
            if not self._lock():
                return False
            self._unlock()
        if (self.held and now < self.held.next_try) or now < self.backoff_until:
            return False
        resolved = self._resolved_conflicts()
        if not (self.held or resolved or self.store.merges(statuses=[MergeStatus.QUEUED.value], limit=1)):
            return False  # idle: no lock taken, nothing written
        if not self._lock():
            return False
        try:
            self.upstream.refresh(force=True)  # the branches other hosts pushed
            for merge in resolved:
                self._requeue_resolved(merge)
            if self.held:
                self._retry_held(now)
                return True
            policy = self.policy()
            if self._tip_broken():  # nothing lands on a target whose gate fails, except the fix
                queued = [m for m in self.store.merges(statuses=[MergeStatus.QUEUED.value], oldest_first=True)
                          if self._fixes_gate(m)][:1]
            else:
                queued = self.store.merges(statuses=[MergeStatus.QUEUED.value], oldest_first=True,
                                           limit=policy.batch * policy.depth)
            if not queued:
                return bool(resolved)
            for line in git.repair(self.tree):  # we hold the merge lock: no git of ours runs there
                self.say(f"merge queue: {line}")
            self._guarded_round(queued, now, policy if len(queued) > policy.batch else None)
            return True
        finally:
            self._unlock()

    def _guarded_round(self, queued: list[Merge], now: float, speculate: Policy | None = None) -> None:
        """A round; when git fails in it (a lock, a signing program, a full disk), its merges go back
        to the queue rather than stay `merging`, and the next round waits a little longer each time.
        After ROUND_ERROR_LIMIT such rounds in a row they are held, with the error, for a human."""
        try:
            if speculate is not None:
                SpeculativeRound(self, now, speculate).run(queued)
            else:
                MergeRound(self, now).run(queued)
        except GitError as exc:
            self.round_errors += 1
            ids = {merge.id for merge in queued}
            stranded = [m for m in self.store.merges(statuses=[MergeStatus.MERGING.value]) if m.id in ids]
            error = oneline(str(exc), 300)
            if self.round_errors >= ROUND_ERROR_LIMIT:
                self.round_errors = 0
                for merge in stranded:
                    self.store.update_merge(merge.id, status=MergeStatus.HELD.value,
                                            note=f"held after {ROUND_ERROR_LIMIT} merge rounds in a row failed in "
                                                 f"git ({error}); fix that, then `gasworks merge-retry "
                                                 f"{merge.task_id}`")
                self.say(f"merge queue: git failed {ROUND_ERROR_LIMIT} rounds in a row ({oneline(str(exc), 200)}); "
                         f"held for a human: {', '.join(m.task_id for m in stranded)}")
                return
            wait = min(ROUND_ERROR_BACKOFF * 2 ** (self.round_errors - 1), ROUND_ERROR_BACKOFF_MAX)
            self.backoff_until = now + wait
            self.verdicts.requeue(stranded, f"git failed in the merge round ({self.round_errors} in a row): {error}")
            self.say(f"merge queue: git failed ({oneline(str(exc), 200)}); "
                     f"{len(stranded)} merge(s) back in the queue, next round in {wait:g} s")
            return
        self.round_errors = 0

    def abort(self) -> None:
        """Stop the gate now (second Ctrl+C); the round puts its branches back in the queue."""
        self.aborting = True
        for lane in self.lanes:
            lane.gate.stop()

    def _retry_held(self, now: float) -> None:
        held, self.held = self.held, None
        if held is None:
            return
        if self.upstream.tip() != held.tip:
            self.verdicts.requeue(held.merges, f"{self.target} moved while the merge was held")
            return
        outcome = MergeRound(self, now).advance(held.tip, held.candidate, held.merges)
        if outcome == Landing.HELD and self.held:
            self.held.next_try, self.held.since = now + HELD_RETRY_SECONDS, held.since

    def _resolved_conflicts(self) -> list[Merge]:
        """Conflicted merges whose conflict task has closed (auto_retry_merge_on_conflict_close)."""
        if not self.config.auto_retry_merge_on_conflict_close:
            return []
        return [m for m in self.store.merges(statuses=[MergeStatus.CONFLICT.value])
                if m.conflict_task and self.store.get_task(m.conflict_task).status == Status.CLOSED]

    def _requeue_resolved(self, merge: Merge) -> None:
        retried = self.retry(merge.task_id, note=f"{merge.conflict_task} resolved the conflict")
        self.store.update_merge(merge.id, status=MergeStatus.RESOLVED.value,
                                note=f"{merge.note}; queued again as merge {retried.id}")

    def retry(self, task_id: str, note: str = "retried by hand") -> Merge:
        """Queue the task's branch again (after its conflict was resolved, or by `gasworks merge-retry`)."""
        branch = f"{BRANCH_PREFIX}{task_id}"
        self.upstream.refresh(force=True)
        head = self.upstream.head(branch)
        if head is None:
            raise NotFoundError(f"{task_id} has no branch {branch} to merge")
        if self.store.merges(task_id=task_id, statuses=[MergeStatus.QUEUED.value, MergeStatus.MERGING.value]):
            raise TransitionError(f"{task_id} is already in the merge queue")
        if self.store.merges(task_id=task_id, statuses=[MergeStatus.REVIEW.value], limit=1):
            raise TransitionError(f"{task_id} waits for review: `gasworks approve {task_id}` queues it")
        if self.store.get_task(task_id).status != Status.MERGING:
            self.store.transition(task_id, Status.MERGING, actor="refinery", reason=note)
        for held in self.store.merges(task_id=task_id, statuses=[MergeStatus.HELD.value]):
            self.store.update_merge(held.id, status=MergeStatus.DROPPED.value, ended_at=now_iso(),
                                    note=f"{held.note}; {note}")
        return self.store.enqueue_merge(task_id, branch, head)

    # -- batch sizing and locks -------------------------------------------------------------

    def batch_size(self) -> int:
        return self.policy().batch

    def policy(self) -> Policy:
        """Batch size and speculation depth, from the recent failure rate and gate time."""
        return policy_for(self.store, self.config)

    def _lock(self) -> bool:
        taken = self.lock.acquire()
        if taken is None:
            return False
        if taken.stopped:
            self.say(f"took over the merge lock of a stopped refinery ({taken.stopped})")
        if taken.stopped or not self.recovered:
            for lane in self.lanes:  # we hold the lock: no gate running here is ours
                for pid in lane.gate.end_leftovers():
                    self.say(f"ended gate process {pid} left running by a stopped refinery")
            self.upstream.refresh(force=True)
            for line in self.recover_queue():
                self.say(line)
            self.recovered = True
        return True

    def recover_queue(self) -> list[str]:
        """Under the merge lock no other round runs, so merges left `merging` were left by a stopped
        refinery: back to the queue. A task finished but never queued (its dispatcher stopped)
        gets its branch queued, or, with the branch gone, goes back to be redone."""
        done = self.upstream.repair()
        mine = {m.id for m in self.held.merges} if self.held else set()
        for merge in self.store.merges(statuses=[MergeStatus.MERGING.value]):
            if merge.id not in mine:
                self.store.update_merge(merge.id, status=MergeStatus.QUEUED.value, note="requeued after a restart")
                done.append(f"requeued the merge of {merge.task_id}: left half-done by a stopped refinery")
        live = {m.task_id for m in self.store.merges(statuses=[MergeStatus.QUEUED.value, MergeStatus.MERGING.value,
                                                              MergeStatus.CONFLICT.value, MergeStatus.HELD.value,
                                                              MergeStatus.REVIEW.value])}
        for task in self.store.list_tasks(statuses=[Status.MERGING]):
            if task.id in live:
                continue
            head = self.upstream.head(f"{BRANCH_PREFIX}{task.id}")
            if head:
                self.store.enqueue_merge(task.id, f"{BRANCH_PREFIX}{task.id}", head)
                done.append(f"queued the branch of {task.id} to merge: a stopped dispatcher had not")
            else:
                self.store.transition(task.id, Status.OPEN, actor="refinery", reason="its branch is gone; redo it")
                done.append(f"requeued {task.id}: it waited to merge a branch that is gone")
        return done

    def _unlock(self) -> None:
        self.lock.release()


class RefineryWorker(threading.Thread):
    """Runs the merge queue beside the dispatcher, so a long gate never stalls the agents."""

    def __init__(self, refinery: Refinery, idle_seconds: float = 0.2) -> None:
        super().__init__(name="gasworks-refinery", daemon=True)
        self.refinery = refinery
        self.idle_seconds = idle_seconds
        self.in_round = False
        self.error: BaseException | None = None
        self._stopped = threading.Event()
        self._wake = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.is_set():
                self.in_round = True
                try:
                    did = self.refinery.process()
                except GasworksError as exc:  # e.g. git refused: say so, and try again later
                    self.refinery.say(f"merge queue: {exc}")
                    did = False
                finally:
                    self.in_round = False
                if not did:
                    self._wake.wait(self.idle_seconds)
                    self._wake.clear()
        except BaseException as exc:  # handed to the main thread, which raises it
            self.error = exc

    def wake(self) -> None:
        """A branch was queued: look now rather than at the next idle check."""
        self._wake.set()

    def stop(self, *, hard: bool = False) -> None:
        self._stopped.set()
        self._wake.set()
        if hard:
            self.refinery.abort()
