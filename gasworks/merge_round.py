"""One merge round: the oldest queued branches, tried against the target's tip without touching a
worktree (`git merge-tree`), stacked in an integration worktree (a lane), gated there, and the exact
commit that passed landed by compare-and-set. A batch that fails is bisected until the branch that
fails by itself is found. Every try ends in a typed result that carries the gate's output."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gasworks import git
from gasworks.config import Config
from gasworks.errors import GitError
from gasworks.gate import Gate, Gated
from gasworks.models import Merge, MergeStatus, Status, Word, now_iso
from gasworks.output import oneline

if TYPE_CHECKING:
    from gasworks.store import Store
    from gasworks.upstream import Upstream
    from gasworks.verdicts import Verdicts

HELD_RETRY_SECONDS = 5.0


class Landing(Word):
    """How one try of a stack of branches ended."""

    LANDED = "landed"      # the target moved to the gated commit
    FAILED = "failed"      # the gate failed on it (the result carries the output)
    MOVED = "moved"        # the target moved meanwhile: to be tested again
    HELD = "held"          # edits in the user's checkout are in the way
    REQUEUED = "requeued"  # nothing was gated (nothing applied, or the gate was stopped)
    CHANGED = "changed"    # a task changed by hand during its gate: the others go back


@dataclass(frozen=True)
class Tried:
    outcome: Landing
    tail: str = ""       # the failing gate command's output, for the task's notes
    candidate: str = ""  # the commit that was gated


@dataclass
class Held:
    """A tested commit that could not land because the target's checkout has edits in the way."""

    tip: str
    candidate: str
    merges: list[Merge]
    message: str
    next_try: float
    since: float = 0.0  # when it was first held (tried again every HELD_RETRY_SECONDS since)


class Lane:
    """An integration worktree and the gate that runs in it."""

    def __init__(self, root: Path, path: Path, config: Config, logs: Path) -> None:
        self.root, self.path = root, path
        self.gate = Gate(config, root, path, logs, lambda: self.tree)
        self._tree: git.Tree | None = None

    @property
    def tree(self) -> git.Tree:
        """The worktree with git dirs computed from the repository: the gate runs the branch's own
        code there, which may rewrite the worktree's .git file."""
        if self._tree is None:
            self._tree = git.linked_tree(self.root, self.path)
        return self._tree

    def ensure(self, tip: str) -> None:
        registered = {Path(w["path"]).resolve() for w in git.worktrees(self.root)}
        if self.path.resolve() not in registered:
            git.worktree_add(self.root, self.path, tip)
        self._tree = None


class Refining(Protocol):
    """What a round reads and keeps of the refinery that runs it (the Refinery is one): its setup,
    its lanes, and what it remembers between rounds (held, broken_tip, known_good)."""

    root: Path
    target: str
    config: Config
    store: Store
    upstream: Upstream
    verdicts: Verdicts
    lanes: list[Lane]
    say: Callable[[str], None]
    aborting: bool
    held: Held | None
    broken_tip: str
    known_good: str


class MergeRound:
    """One round of the refinery, at `now`; the refinery's state (held, known good and broken tips)
    is read and written through it."""

    def __init__(self, refinery: Refining, now: float, lane: Lane | None = None) -> None:
        self.r, self.now = refinery, now
        self.lane = lane or refinery.lanes[0]
        self.store, self.config, self.upstream, self.verdicts = (refinery.store, refinery.config, refinery.upstream,
                                                                 refinery.verdicts)

    def admit(self, queued: list[Merge], tip: str) -> list[Merge]:
        """The queued merges whose task still waits to merge, refused nothing and conflict with
        nothing on tip, marked merging; the others have their verdict."""
        batch = []
        for merge in queued:
            task = self.store.get_task(merge.task_id)
            if task.status != Status.MERGING:
                self.verdicts.end(merge, MergeStatus.DROPPED, note=f"its task is {task.status}")
                continue
            merge = self.store.update_merge(merge.id, status=MergeStatus.MERGING.value, started_at=now_iso())
            base = git.merge_base(self.r.root, tip, merge.head)
            if self.verdicts.refused(merge, base, self.now):
                continue
            if base == merge.head:  # in the target already: a landing stopped after the target moved
                self.already_landed(merge, tip)
                continue
            conflicts = git.trial_merge(self.r.root, tip, merge.head)
            self.store.update_merge(merge.id, trial="conflict" if conflicts else "clean")
            if conflicts:
                self.verdicts.conflict(merge, conflicts, tip, self.now)
            else:
                batch.append(merge)
        for merge in batch:
            self.store.update_merge(merge.id, batch_size=len(batch))
        return batch

    def already_landed(self, merge: Merge, tip: str) -> None:
        """Its branch is in the target already (a run killed between the target's move and the store's
        record of it): recorded as landed at the tip, never merged a second time."""
        outcome, _ = self.store.land([merge.id], tip, lambda: (Landing.LANDED.value, "already in the target"),
                                     actor="refinery")
        if outcome == Landing.LANDED:
            self.verdicts.landed([merge], tip)
        else:  # its task changed by hand meanwhile
            self.verdicts.drop_changed([merge], "its task changed")

    def run(self, queued: list[Merge]) -> None:
        batch = self.admit(queued, self.upstream.tip())
        self.settle(batch, self.attempt(batch) if batch else None)

    def settle(self, pending: list[Merge], tried: Tried | None) -> None:
        """After a try of `pending`: a failure is bisected until the branch that fails alone is found."""
        while tried is not None and tried.outcome == Landing.FAILED:
            if len(pending) == 1:
                self.gate_failed(pending[0], tried.tail)
                return
            self.r.say(f"{len(pending)} branches failed the gate together; bisecting to find the culprit")
            pending = self.bisect(pending)
            if not pending:
                return
            tried = self.attempt(pending)

    def attempt(self, merges: list[Merge]) -> Tried:
        """Stack merges on the current tip, gate, land."""
        tip = self.upstream.tip()
        candidate, applied = self.stack(merges, tip)
        if not applied:
            return Tried(Landing.REQUEUED)
        tried = self.gate(applied, tip, candidate)
        if self.r.aborting:
            self.verdicts.requeue(applied, "the gate was stopped")
            return Tried(Landing.REQUEUED, candidate=candidate)
        if tried.outcome == Landing.FAILED:
            return tried
        return Tried(self.advance(tip, candidate, applied), candidate=candidate)

    def bisect(self, failing: list[Merge]) -> list[Merge]:
        """`failing` failed the gate together on the tip. Test the left half: if it passes it lands and
        the culprit is on the right; if not, it is on the left. A branch is sent back only once it has
        failed alone, so one flaky run never blames anyone (bisection is the retry). Returns the
        branches after the culprit, still untested, to be gated together with what follows."""
        if len(failing) == 1:
            again = self.attempt(failing)
            if again.outcome == Landing.FAILED:
                self.gate_failed(failing[0], again.tail)
            return []
        left, right = failing[: len(failing) // 2], failing[len(failing) // 2:]
        outcome = self.attempt(left)
        if outcome.outcome == Landing.LANDED:
            return self.bisect(right)
        if outcome.outcome == Landing.FAILED:
            if len(left) == 1:
                self.gate_failed(left[0], outcome.tail)
                return right
            return self.bisect(left) + right
        self.verdicts.requeue(right, "waits for the next round")  # moved, held or requeued
        return []

    # -- the steps --------------------------------------------------------------------------

    def stack(self, merges: list[Merge], base: str) -> tuple[str, list[Merge]]:
        """Apply each branch on base and check the result out in the lane's worktree, cleaned; ones
        that clash with a batch-mate go back to the queue (the next round tries them against the new
        tip). A batch of several becomes one commit on base, the exact tree that is gated (its
        branches' own merge commits are its second parent), so that every first-parent commit of the
        target passed the gate."""
        if self.config.merge_strategy == "merge":  # merge commits made without a worktree, one checkout
            head = base
            applied: list[Merge] = []
            clashed: list[Merge] = []
            for merge in merges:
                merged = git.merge_commit(self.r.root, head, merge.head, self.message(merge))
                head = merged or head
                (applied if merged else clashed).append(merge)
            head = self.enclose(base, head, applied)
            try:
                git.clean_detach(self.lane.tree, head)
            except GitError:  # a tree no checkout here can hold (a path too long): find the branch below
                pass
            else:
                self.verdicts.requeue(clashed, "clashed with a branch gated in the same batch")
                return head, applied
        head, applied = self.stack_in_tree(merges, base)
        if len(applied) > 1:
            head = self.enclose(base, head, applied)
            git.clean_detach(self.lane.tree, head)
        return head, applied

    def enclose(self, base: str, head: str, applied: list[Merge]) -> str:
        if len(applied) < 2:
            return head
        names = ", ".join(m.branch for m in applied)
        return git.enclose(self.r.root, base, head, f"Merge {len(applied)} branches: {names}\n\nTasks "
                                                    f"{', '.join(m.task_id for m in applied)}, gated together.\n")

    def message(self, merge: Merge) -> str:
        title = oneline(self.store.get_task(merge.task_id).title, 200)
        return f"Merge {merge.branch}: {title}\n\nTask {merge.task_id}.\n"

    def stack_in_tree(self, merges: list[Merge], base: str) -> tuple[str, list[Merge]]:
        """Each branch merged (or rebased) in the lane's worktree in turn."""
        tree = self.lane.tree
        git.clean_detach(tree, base)
        applied = []
        for merge in merges:
            before = git.rev_parse(tree, "HEAD")
            try:
                if self.config.merge_strategy == "rebase" and not git.has_merge_commits(tree, base, merge.head):
                    ok = git.rebase_onto(tree, before, merge.head)
                else:
                    ok, _ = git.merge(tree, merge.head, self.message(merge))
            except GitError as exc:  # say, a path too long for this file system: the branch, not the queue
                git.clean_detach(tree, before)
                self.verdicts.refuse(merge, f"git could not apply its branch: {oneline(str(exc), 300)}", human=False,
                                     now=self.now)
                continue
            if ok:
                applied.append(merge)
            else:
                git.clean_detach(tree, before)
                self.verdicts.requeue([merge], "clashed with a branch gated in the same batch")
        return git.rev_parse(tree, "HEAD"), applied

    def gate(self, merges: list[Merge], tip: str, candidate: str) -> Tried:
        """Every gate command in the lane's worktree, then no conflict markers left in the change."""
        gated = self.lane.gate.measure(f"{merges[0].id}") if self.config.gate else None
        return self.judge(merges, tip, candidate, gated)

    def judge(self, merges: list[Merge], tip: str, candidate: str, gated: Gated | None) -> Tried:
        """The gate's run recorded (None: there is no gate), and the candidate judged by it and by
        the conflict markers left in the change."""
        if gated is not None:
            self.store.record_gate_run([m.id for m in merges], seconds=gated.seconds, passed=gated.passed)
            if not gated.passed:
                return Tried(Landing.FAILED, gated.tail, candidate)
        markers = git.conflict_markers(self.r.root, tip, candidate)
        if markers:
            return Tried(Landing.FAILED, "leftover conflict markers:\n" + "\n".join(markers[:20]), candidate)
        return Tried(Landing.LANDED, candidate=candidate)

    def advance(self, tip: str, candidate: str, merges: list[Merge]) -> Landing:
        """Land candidate: the target moves and the tasks close in one compare-and-set (store.land)."""
        outcome, message = self.store.land([m.id for m in merges], candidate,
                                           lambda: self.upstream.move(tip, candidate), actor="refinery")
        landing = Landing(outcome)
        if landing == Landing.LANDED:
            self.r.known_good = candidate
            self.verdicts.landed(merges, candidate)
        elif landing == Landing.CHANGED:
            self.verdicts.drop_changed(merges, message)
        elif landing == Landing.MOVED:
            self.verdicts.requeue(merges, f"{self.r.target} moved during the merge; it will be tested again")
        else:
            self.r.held = Held(tip, candidate, merges, message, self.now + HELD_RETRY_SECONDS, since=self.now)
            self.r.say(f"merge queue held: {message}")
        return landing

    def gate_failed(self, merge: Merge, tail: str) -> None:
        """The gate fails with this branch alone. Unless it fails on the untouched tip too (then the
        target is broken, not the branch), the task goes back with the gate's output in its notes."""
        tip = self.upstream.tip()
        if tip not in (self.r.known_good, self.r.broken_tip):  # on a known broken tip, a fix that failed is blamed
            git.clean_detach(self.lane.tree, tip)
            started = time.monotonic()
            tip_passes, tip_tail = self.lane.gate.run(f"tip-{tip[:12]}")
            self.store.record_gate_run([merge.id], seconds=time.monotonic() - started, passed=tip_passes,
                                       on_tip=True)
            if not tip_passes:
                self.r.broken_tip = tip
                self.verdicts.requeue([merge], "not blamed: the gate fails on the target itself")
                self.verdicts.file_gate_bug(tip, tip_tail)
                return
            self.r.known_good = tip
        self.verdicts.gate_failed(merge, tail, self.now)
