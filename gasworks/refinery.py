"""The refinery: the merge queue. One merge at a time, test-gated, never through the user's checkout.

A round takes the oldest queued branches (one, or a batch), tries each against the target's tip
without touching a worktree (`git merge-tree`), stacks the clean ones in the integration
worktree, runs the gate there, and lands exactly the commit that passed. Where the target is
checked out (usually the user's checkout) it is advanced there with `git merge --ff-only`, which
keeps unrelated local edits; when local edits touch incoming files git refuses, and the queue
holds, nothing lost, until the user commits or stashes. Where it is checked out nowhere, a
compare-and-set `update-ref` moves it, so a target that moved meanwhile is re-tested, never
overwritten. A conflict becomes a task; a gate failure sends the task back with the gate's output.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import psutil
from filelock import FileLock, Timeout

from gasworks import git
from gasworks.agents import TASK_FILE
from gasworks.config import Config
from gasworks.errors import GasworksError, GitError, NotFoundError, TransitionError
from gasworks.gate import Gate
from gasworks.models import FILES_LABEL, Merge, MergeStatus, Outcome, now_iso
from gasworks.output import oneline
from gasworks.project import Project, task_prefix
from gasworks.store import NewTask, Store
from gasworks.upstream import Upstream
from gasworks.witness import NEEDS_HUMAN, send_back
from gasworks.worktrees import BRANCH_PREFIX

CONFLICT_LABEL = "merge-conflict"
GATE_BROKEN_LABEL = "gate-broken"
LOCK_NAME = "refinery"
HELD_RETRY_SECONDS = 5.0
AUTO_WINDOW = 20  # recent gate results that size "auto" batches
ROUND_ERROR_BACKOFF, ROUND_ERROR_BACKOFF_MAX = 2.0, 120.0  # seconds before a round after git failed in one
ROUND_ERROR_LIMIT = 5  # rounds in a row in which git failed: then their merges wait for a human (held)


@dataclass
class Held:
    """A tested commit that could not land because the target's checkout has edits in the way."""

    tip: str
    candidate: str
    merges: list[Merge]
    message: str
    next_try: float
    since: float = 0.0  # when it was first held (tried again every HELD_RETRY_SECONDS since)


class Refinery:
    def __init__(self, project: Project, store: Store, config: Config, upstream: Upstream,
                 say: Callable[[str], None] = print) -> None:
        self.root = project.root
        self.store, self.config, self.upstream, self.say = store, config, upstream, say
        self.target = upstream.target
        self.integration = project.state_dir / "integration"
        self.logs = project.logs_dir / "merges"
        self.file_lock = FileLock(str(self.root / config.merge_slot))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.held: Held | None = None
        self.broken_tip = ""        # a tip on which the gate fails by itself: wait until it moves
        self.known_good = ""        # the last commit the gate passed on, so its own check can be skipped
        self.aborting = False
        self.recovered = False      # recover_queue() has run under this refinery's lock
        self.gate = Gate(config, self.root, self.integration, self.logs, lambda: self.tree)
        self._last_tail = ""  # output of the last failing gate run, for the task's notes
        self._tree: git.Tree | None = None
        self.round_errors = 0       # merge rounds in a row in which git failed
        self.backoff_until = 0.0    # no round before then, after such a failure

    # -- the round --------------------------------------------------------------------------

    def ensure(self) -> None:
        """The integration worktree made, and every gate program found: a gate that cannot start would
        fail every branch and then the target itself, and the queue would wait for good."""
        self.gate.check()
        registered = {Path(w["path"]).resolve() for w in git.worktrees(self.root)}
        if self.integration.resolve() not in registered:
            git.worktree_add(self.root, self.integration, self.upstream.tip())
        self._tree = None

    @property
    def tree(self) -> git.Tree:
        """The integration worktree, with git dirs computed from the repository: the gate runs the
        branch's own code there, which may rewrite the worktree's .git file."""
        if self._tree is None:
            self._tree = git.linked_tree(self.root, self.integration)
        return self._tree

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
        """`files:` labels of tasks whose branch has not landed yet (queued, merging, or waiting for its
        conflict to be resolved): a new task on those files would start from a tip without them."""
        waiting = self.store.merges(statuses=[MergeStatus.QUEUED.value, MergeStatus.MERGING.value,
                                              MergeStatus.CONFLICT.value, MergeStatus.HELD.value])
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
            if self._tip_broken():  # nothing lands on a target whose gate fails, except the fix
                queued = [m for m in self.store.merges(statuses=[MergeStatus.QUEUED.value], oldest_first=True)
                          if self._fixes_gate(m)][:1]
            else:
                queued = self.store.merges(statuses=[MergeStatus.QUEUED.value], oldest_first=True,
                                           limit=self.batch_size())
            if not queued:
                return bool(resolved)
            for line in git.repair(self.tree):  # we hold the merge lock: no git of ours runs there
                self.say(f"merge queue: {line}")
            self._guarded_round(queued, now)
            return True
        finally:
            self._unlock()

    def _guarded_round(self, queued: list[Merge], now: float) -> None:
        """A round; when git fails in it (a lock, a signing program, a full disk), its merges go back
        to the queue rather than stay `merging`, and the next round waits a little longer each time.
        After ROUND_ERROR_LIMIT such rounds in a row they are held, with the error, for a human."""
        try:
            self._round(queued)
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
            self._requeue(stranded, f"git failed in the merge round ({self.round_errors} in a row): {error}")
            self.say(f"merge queue: git failed ({oneline(str(exc), 200)}); "
                     f"{len(stranded)} merge(s) back in the queue, next round in {wait:g} s")
            return
        self.round_errors = 0

    def abort(self) -> None:
        """Stop the gate now (second Ctrl+C); the round puts its branches back in the queue."""
        self.aborting = True
        self.gate.stop()

    def _round(self, queued: list[Merge]) -> None:
        tip = self.upstream.tip()
        batch = []
        for merge in queued:
            task = self.store.get_task(merge.task_id)
            if task.status != "merging":
                self._end(merge, MergeStatus.DROPPED, note=f"its task is {task.status}")
                continue
            merge = self.store.update_merge(merge.id, status=MergeStatus.MERGING.value, started_at=now_iso())
            if self._refused(merge, tip):
                continue
            conflicts = git.trial_merge(self.root, tip, merge.head)
            self.store.update_merge(merge.id, trial="conflict" if conflicts else "clean")
            if conflicts:
                self._conflict(merge, conflicts, tip)
            else:
                batch.append(merge)
        if not batch:
            return
        for merge in batch:
            self.store.update_merge(merge.id, batch_size=len(batch))
        pending = batch
        while self._try(pending) == "failed":
            if len(pending) == 1:
                self._gate_failed(pending[0])
                return
            self.say(f"{len(pending)} branches failed the gate together; bisecting to find the culprit")
            pending = self._bisect(pending)
            if not pending:
                return

    def _try(self, merges: list[Merge]) -> str:
        """Stack merges on the current tip, gate, land. Returns landed, failed, moved, held or requeued."""
        tip = self.upstream.tip()
        candidate, applied = self._stack(merges, tip)
        if not applied:
            return "requeued"
        passed, tail = self._gate(applied)
        if self.aborting:
            self._requeue(applied, "the gate was stopped")
            return "requeued"
        markers = git.conflict_markers(self.root, tip, candidate) if passed else []
        if markers:
            passed, tail = False, "leftover conflict markers:\n" + "\n".join(markers[:20])
        if not passed:
            self._last_tail = tail
            return "failed"
        return self._advance(tip, candidate, applied)

    def _bisect(self, failing: list[Merge]) -> list[Merge]:
        """`failing` failed the gate together on the tip. Test the left half: if it passes it lands and
        the culprit is on the right; if not, it is on the left. A branch is sent back only once it has
        failed alone, so one flaky run never blames anyone (bisection is the retry). Returns the
        branches after the culprit, still untested, to be gated together with what follows."""
        if len(failing) == 1:
            if self._try(failing) == "failed":
                self._gate_failed(failing[0])
            return []
        left, right = failing[: len(failing) // 2], failing[len(failing) // 2:]
        outcome = self._try(left)
        if outcome == "landed":
            return self._bisect(right)
        if outcome == "failed":
            if len(left) == 1:
                self._gate_failed(left[0])
                return right
            return self._bisect(left) + right
        self._requeue(right, "waits for the next round")  # moved, held or requeued
        return []

    # -- the steps --------------------------------------------------------------------------

    def _stack(self, merges: list[Merge], tip: str) -> tuple[str, list[Merge]]:
        """Apply each branch on the tip in the integration worktree; ones that clash with a batch-mate
        go back to the queue (the next round tries them against the new tip)."""
        git.clean_detach(self.tree, tip)
        applied = []
        for merge in merges:
            title = oneline(self.store.get_task(merge.task_id).title, 200)
            before = git.rev_parse(self.tree, "HEAD")
            try:
                if self.config.merge_strategy == "rebase" and not git.has_merge_commits(self.tree, tip,
                                                                                         merge.head):
                    ok = git.rebase_onto(self.tree, before, merge.head)
                else:
                    ok, _ = git.merge(self.tree, merge.head,
                                      f"Merge {merge.branch}: {title}\n\nTask {merge.task_id}.\n")
            except GitError as exc:  # say, a path too long for this file system: the branch, not the queue
                git.clean_detach(self.tree, before)
                self._refuse(merge, f"git could not apply its branch: {oneline(str(exc), 300)}", human=False)
                continue
            if ok:
                applied.append(merge)
            else:
                git.clean_detach(self.tree, before)
                self._requeue([merge], "clashed with a branch gated in the same batch")
        return git.rev_parse(self.tree, "HEAD"), applied

    def _gate(self, merges: list[Merge]) -> tuple[bool, str]:
        """Run every gate command in the integration worktree; (passed, tail of the failing output)."""
        if not self.config.gate:
            return True, ""
        started = time.monotonic()
        passed, tail = self.gate.run(f"{merges[0].id}")
        self.store.record_gate_run([m.id for m in merges], seconds=time.monotonic() - started, passed=passed)
        return passed, tail

    def _advance(self, tip: str, candidate: str, merges: list[Merge]) -> str:
        """Land candidate: the target moves and the tasks close in one compare-and-set (store.land)."""
        outcome, message = self.store.land([m.id for m in merges], candidate,
                                           lambda: self.upstream.move(tip, candidate), actor="refinery")
        if outcome == "landed":
            self.known_good = candidate
            for merge in merges:
                self._landed(merge, candidate)
        elif outcome == "changed":
            self._drop_changed(merges, message)
        elif outcome == "moved":
            self._requeue(merges, f"{self.target} moved during the merge; it will be tested again")
        else:
            self.held = Held(tip, candidate, merges, message, time.time() + HELD_RETRY_SECONDS, since=time.time())
            self.say(f"merge queue held: {message}")
        return outcome

    def _retry_held(self, now: float) -> None:
        held, self.held = self.held, None
        if held is None:
            return
        if self.upstream.tip() != held.tip:
            self._requeue(held.merges, f"{self.target} moved while the merge was held")
            return
        outcome = self._advance(held.tip, held.candidate, held.merges)
        if outcome == "held" and self.held:
            self.held.next_try, self.held.since = now + HELD_RETRY_SECONDS, held.since

    # -- outcomes ---------------------------------------------------------------------------

    def _landed(self, merge: Merge, commit: str) -> None:
        """store.land() closed the task and ended the merge with the target's move."""
        self.upstream.drop(merge.branch)
        self.say(f"{merge.task_id}: merged into {self.target} as {commit[:12]}")

    def _drop_changed(self, merges: list[Merge], why: str) -> None:
        """Some tasks changed by hand during their gate (cancelled, reopened): they do not land; the
        rest of the batch goes back to be gated without them."""
        for merge in merges:
            status = self.store.get_task(merge.task_id).status
            if status != "merging":
                self._end(merge, MergeStatus.DROPPED, note=f"its task became {status} during its gate")
                self.say(f"{merge.task_id}: became {status} during its gate; not merged")
            else:
                self._requeue([merge], f"not landed: {why}")

    def _conflict(self, merge: Merge, files: list[str], tip: str) -> None:
        if not self.config.create_bead_on_merge_conflict:
            self._end(merge, MergeStatus.CONFLICT, note=f"conflicts in {', '.join(files)}")
            send_back(self.store, merge.task_id, note=f"merge conflict in {', '.join(files)}; redo on the new tip",
                      config=self.config, now=time.time(), say=self.say, actor="refinery")
            return
        original = self.store.get_task(merge.task_id)
        labels = list(dict.fromkeys([*(lb for lb in original.labels if lb.startswith(FILES_LABEL)),
                                     *(f"{FILES_LABEL}{name}" for name in files)]))
        task = self.store.create_task(NewTask(
            f"Resolve merge conflict: {merge.branch}", priority=1, labels=[CONFLICT_LABEL, *labels],
            description=conflict_description(merge, files, tip, self.target),
            deps=[(merge.task_id, "discovered-from")]), prefix=task_prefix(self.config, self.store), actor="refinery")
        self.store.add_dependency(merge.task_id, task.id, "blocks", actor="refinery")
        self.store.transition(merge.task_id, "blocked", actor="refinery", expected="merging",
                              reason=f"merge conflict; resolved by {task.id}")
        self._end(merge, MergeStatus.CONFLICT, conflict_task=task.id, note=f"conflicts in {', '.join(files)}")
        self.say(f"{merge.task_id}: conflicts with {self.target} in {', '.join(files)}; made {task.id} to resolve it")

    def _gate_failed(self, merge: Merge, tail: str | None = None) -> None:
        """The gate fails with this branch alone. Unless it fails on the untouched tip too (then the
        target is broken, not the branch), the task goes back with the gate's output in its notes."""
        tail = self._last_tail if tail is None else tail
        tip = self.upstream.tip()
        if tip not in (self.known_good, self.broken_tip):  # on a known broken tip, a fix that failed is blamed
            git.clean_detach(self.tree, tip)
            started = time.monotonic()
            tip_passes, tip_tail = self.gate.run(f"tip-{tip[:12]}")
            self.store.record_gate_run([merge.id], seconds=time.monotonic() - started, passed=tip_passes,
                                       on_tip=True)
            if not tip_passes:
                self.broken_tip = tip
                self._requeue([merge], "not blamed: the gate fails on the target itself")
                self._file_gate_bug(tip, tip_tail)
                return
            self.known_good = tip
        self._end(merge, MergeStatus.GATE_FAILED, note=oneline(tail.splitlines()[0] if tail else "", 200))
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        self._judge_last_attempt(merge, Outcome.GATE_FAILED.value, "its branch failed the merge gate"
                                 + (f": {oneline(last, 200)}" if last else ""))
        send_back(self.store, merge.task_id, note=f"The merge gate failed:\n{tail}",
                  config=self.config, now=time.time(), say=self.say, actor="refinery")

    def _refused(self, merge: Merge, tip: str) -> bool:
        """A branch that touches what no branch may land is refused before any gate run: gasworks's
        configuration (the task waits for a human to take the change by hand), gasworks's own state,
        or files untracked or ignored in the user's checkout (the task goes back, as a failure)."""
        base = git.merge_base(self.root, tip, merge.head)
        if not base:
            self._refuse(merge, f"its branch shares no history with {self.target}", human=False)
            return True
        paths = git.changed_paths(self.root, base, merge.head)
        config, state = guarded_paths(paths, self.config)
        in_way = [] if config or state else self.upstream.in_the_way(paths)
        if not (config or state or in_way):
            return False
        if config:
            self._refuse(merge, f"its branch changes gasworks's configuration ({', '.join(config[:5])}), which no "
                                f"branch changes by itself: review it (git diff {self.target}...{merge.branch}) and "
                                f"merge it by hand if you want it", human=True)
        else:
            named = state or in_way
            self._refuse(merge, f"its branch writes {', '.join(named[:5])}, " + (
                "gasworks's own state" if state else
                "which your checkout has untracked or ignored (landing would overwrite or delete them)")
                + "; leave those paths alone", human=False)
        return True

    def _judge_last_attempt(self, merge: Merge, outcome: str, note: str) -> None:
        """The attempt that made the branch gets the outcome the queue found (it had `success`)."""
        attempts = self.store.attempts(merge.task_id)
        if attempts:
            self.store.set_attempt_outcome(attempts[-1].id, outcome, note)

    def _refuse(self, merge: Merge, why: str, *, human: bool) -> None:
        """The branch is not merged: its task waits for a human (human=True), or goes back to its
        agent with the reason, as a failed attempt."""
        self._end(merge, MergeStatus.REFUSED, note=oneline(why, 300))
        self._judge_last_attempt(merge, Outcome.REFUSED.value, why)
        if human:
            self.store.send_back(merge.task_id, to_status="blocked", add_labels=[NEEDS_HUMAN], actor="refinery",
                                 note=why)
            self.say(f"{merge.task_id}: not merged: {why}; labelled {NEEDS_HUMAN}")
        else:
            send_back(self.store, merge.task_id, note=f"Not merged: {why}.",
                      config=self.config, now=time.time(), say=self.say, actor="refinery")

    def _file_gate_bug(self, tip: str, tail: str) -> None:
        if self.store.list_tasks(labels=[GATE_BROKEN_LABEL], include_closed=False):
            return
        task = self.store.create_task(NewTask(
            f"The merge gate fails on {self.target} itself", issue_type="bug", priority=0,
            labels=[GATE_BROKEN_LABEL],
            description=f"The gate fails on the untouched tip of {self.target} ({tip}), so no branch can land "
                        f"until it passes again. The merge queue waits until {self.target} moves.\n\n{tail}"),
            prefix=task_prefix(self.config, self.store), actor="refinery")
        self.say(f"the gate fails on {self.target} itself ({tip[:12]}): filed {task.id}; the queue waits")

    def _resolved_conflicts(self) -> list[Merge]:
        """Conflicted merges whose conflict task has closed (auto_retry_merge_on_conflict_close)."""
        if not self.config.auto_retry_merge_on_conflict_close:
            return []
        return [m for m in self.store.merges(statuses=[MergeStatus.CONFLICT.value])
                if m.conflict_task and self.store.get_task(m.conflict_task).status == "closed"]

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
        if self.store.get_task(task_id).status != "merging":
            self.store.transition(task_id, "merging", actor="refinery", reason=note)
        for held in self.store.merges(task_id=task_id, statuses=[MergeStatus.HELD.value]):
            self.store.update_merge(held.id, status=MergeStatus.DROPPED.value, ended_at=now_iso(),
                                    note=f"{held.note}; {note}")
        return self.store.enqueue_merge(task_id, branch, head)

    def _requeue(self, merges: list[Merge], note: str) -> None:
        for merge in merges:
            self.store.update_merge(merge.id, status=MergeStatus.QUEUED.value, note=note)

    def _end(self, merge: Merge, status: MergeStatus, **fields: str) -> None:
        self.store.update_merge(merge.id, status=status.value, ended_at=now_iso(), **fields)

    # -- batch sizing and locks -------------------------------------------------------------

    def batch_size(self) -> int:
        if self.config.merge_batch_size != "auto":
            return int(self.config.merge_batch_size)
        recent = self.store.merges(statuses=[MergeStatus.LANDED.value, MergeStatus.GATE_FAILED.value],
                                   limit=AUTO_WINDOW)
        return auto_batch_size([m.status == MergeStatus.LANDED.value for m in recent])

    def _lock(self) -> bool:
        try:
            self.file_lock.acquire(timeout=0)
        except Timeout:
            return False
        ttl = self.config.gate_timeout * max(1, len(self.config.gate)) * 4 + 300
        taken, stopped = self.store.take_lock(LOCK_NAME, self.owner, ttl=ttl)
        if taken:  # from a holder whose lease ran out, or (PostgreSQL) whose host died holding it
            self._after_taking(stopped)
            return True
        # We hold the file lock, so no live refinery on this host holds the store lock: a holder
        # named with this host's name died (kill -9) and its lock can be taken over at once.
        holder = self.store.lock_owner(LOCK_NAME)
        if holder.split(":")[0] == socket.gethostname() and not _alive(holder) and \
                self.store.take_lock_from(LOCK_NAME, holder, self.owner, ttl=ttl):
            self._after_taking(holder)
            return True
        self.file_lock.release()
        return False

    def _after_taking(self, stopped_holder: str) -> None:
        if stopped_holder:
            self.say(f"took over the merge lock of a stopped refinery ({stopped_holder})")
        if stopped_holder or not self.recovered:
            for pid in self.gate.end_leftovers():  # we hold the lock: no gate running here is ours
                self.say(f"ended gate process {pid} left running by a stopped refinery")
            self.upstream.refresh(force=True)
            for line in self.recover_queue():
                self.say(line)
            self.recovered = True

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
                                                              MergeStatus.CONFLICT.value, MergeStatus.HELD.value])}
        for task in self.store.list_tasks(statuses=["merging"]):
            if task.id in live:
                continue
            head = self.upstream.head(f"{BRANCH_PREFIX}{task.id}")
            if head:
                self.store.enqueue_merge(task.id, f"{BRANCH_PREFIX}{task.id}", head)
                done.append(f"queued the branch of {task.id} to merge: a stopped dispatcher had not")
            else:
                self.store.transition(task.id, "open", actor="refinery", reason="its branch is gone; redo it")
                done.append(f"requeued {task.id}: it waited to merge a branch that is gone")
        return done

    def _unlock(self) -> None:
        self.store.release_lock(LOCK_NAME, self.owner)
        self.file_lock.release()


# Files gasworks reads as configuration or tasks: a branch never changes them by itself.
CONFIG_FILES = frozenset({"gasworks.toml", "dispatch_config.json", "task_queue.json"})
CONFIG_FOLDERS = frozenset({".beads"})


def guarded_paths(paths: list[str], config: Config) -> tuple[list[str], list[str]]:
    """(configuration, gasworks's own state) among a branch's changed paths: what no branch lands."""
    own = {".gasworks", TASK_FILE, PurePosixPath(config.merge_slot).parts[0]}
    if config.worktree_placement == "inside":
        own.add("worktrees")
    settings, state = [], []
    for name in paths:
        first = PurePosixPath(name).parts[0]
        if name in CONFIG_FILES or first in CONFIG_FOLDERS:
            settings.append(name)
        elif first in own:
            state.append(name)
    return settings, state


def auto_batch_size(history: list[bool]) -> int:
    """About 0.5/p branches per gate run for a failure rate p, at most 8; 1 when p is above 0.2,
    where bisecting costs more runs than batching saves."""
    if not history:
        return 4
    failure_rate = history.count(False) / len(history)
    if failure_rate > 0.2:
        return 1
    return max(1, min(8, round(0.5 / failure_rate))) if failure_rate else 8


def conflict_description(merge: Merge, files: list[str], tip: str, target: str) -> str:
    listed = "\n".join(f"- {name}" for name in files)
    return (f"The branch {merge.branch} (task {merge.task_id}, commit {merge.head}) no longer merges cleanly "
            f"into {target} (commit {tip}).\n\nConflicting files:\n{listed}\n\n"
            f"You are working on {merge.branch} itself. Merge {target} into it (or rebase it onto {target}), "
            f"resolve the conflicts so that both sides' intent is kept, and commit. When this task closes, "
            f"the branch goes back into the merge queue.")


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


def _alive(owner: str) -> bool:
    """Whether the process named in a lock owner (host:pid:...) still runs on this host."""
    parts = owner.split(":")
    return len(parts) > 1 and parts[1].isdigit() and psutil.pid_exists(int(parts[1]))
