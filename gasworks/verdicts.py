"""What the merge queue decides about a branch, written to the store: it landed, it conflicts (a
task to resolve it), it failed the gate (back to its agent with the gate's output), it is refused
(it touches what no branch may land), or it goes back to the queue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

from gasworks import git
from gasworks.agents import TASK_FILE
from gasworks.config import Config
from gasworks.errors import GitError
from gasworks.models import FILES_LABEL, Merge, MergeStatus, Outcome, Status, now_iso
from gasworks.output import oneline
from gasworks.project import task_prefix
from gasworks.store import NewTask, Store
from gasworks.upstream import Upstream
from gasworks.witness import NEEDS_HUMAN, send_back

CONFLICT_LABEL = "merge-conflict"
GATE_BROKEN_LABEL = "gate-broken"
# Files gasworks reads as configuration or tasks: a branch never changes them by itself.
CONFIG_FILES = frozenset({"gasworks.toml", "dispatch_config.json", "task_queue.json"})
CONFIG_FOLDERS = frozenset({".beads"})


class Verdicts:
    def __init__(self, root: Path, store: Store, config: Config, upstream: Upstream,
                 say: Callable[[str], None]) -> None:
        self.root, self.store, self.config, self.upstream, self.say = root, store, config, upstream, say
        self.target = upstream.target

    def end(self, merge: Merge, status: MergeStatus, **fields: str) -> None:
        self.store.update_merge(merge.id, status=status.value, ended_at=now_iso(), **fields)

    def requeue(self, merges: list[Merge], note: str) -> None:
        for merge in merges:
            self.store.update_merge(merge.id, status=MergeStatus.QUEUED.value, note=note)

    def landed(self, merges: list[Merge], commit: str) -> None:
        """store.land() closed the tasks and ended the merges with the target's move: their branches go."""
        self.upstream.drop(*(merge.branch for merge in merges))
        for merge in merges:
            self.say(f"{merge.task_id}: merged into {self.target} as {commit[:12]}")

    def drop_changed(self, merges: list[Merge], why: str) -> None:
        """Some tasks changed by hand during their gate (cancelled, reopened): they do not land; the
        rest of the batch goes back to be gated without them."""
        for merge in merges:
            status = self.store.get_task(merge.task_id).status
            if status != Status.MERGING:
                self.end(merge, MergeStatus.DROPPED, note=f"its task became {status} during its gate")
                self.say(f"{merge.task_id}: became {status} during its gate; not merged")
            else:
                self.requeue([merge], f"not landed: {why}")

    def conflict(self, merge: Merge, files: list[str], tip: str, now: float) -> None:
        if not self.config.create_bead_on_merge_conflict:
            self.end(merge, MergeStatus.CONFLICT, note=f"conflicts in {', '.join(files)}")
            send_back(self.store, merge.task_id, note=f"merge conflict in {', '.join(files)}; redo on the new tip",
                      config=self.config, now=now, say=self.say, actor="refinery")
            return
        made = self.rounds_that_did_not_hold(merge, tip)
        if len(made) >= self.config.max_conflict_rounds:
            self.conflict_for_human(merge, files, made)
            return
        original = self.store.get_task(merge.task_id)
        labels = list(dict.fromkeys([*(lb for lb in original.labels if lb.startswith(FILES_LABEL)),
                                     *(f"{FILES_LABEL}{name}" for name in files)]))
        task = self.store.create_task(NewTask(
            f"Resolve merge conflict: {merge.branch}", priority=1, labels=[CONFLICT_LABEL, *labels],
            description=conflict_description(merge, files, tip, self.target),
            deps=[(merge.task_id, "discovered-from")]), prefix=task_prefix(self.config, self.store), actor="refinery")
        self.store.add_dependency(merge.task_id, task.id, "blocks", actor="refinery")
        self.store.transition(merge.task_id, Status.BLOCKED, actor="refinery", expected=Status.MERGING,
                              reason=f"merge conflict; resolved by {task.id}")
        self.end(merge, MergeStatus.CONFLICT, conflict_task=task.id, note=f"conflicts in {', '.join(files)}")
        self.say(f"{merge.task_id}: conflicts with {self.target} in {', '.join(files)}; made {task.id} to resolve it")

    def rounds_that_did_not_hold(self, merge: Merge, tip: str) -> list[str]:
        """The conflict tasks of this task's branch, in the row of conflicts just before this merge
        (newest first), whose resolution did not take the target in: the branch's common ancestor
        with `tip` stayed where it was, so it could only conflict again. A resolution that merged
        the target (or rebased onto it) and conflicts again because the target moved on meanwhile is
        progress, not counted. A merge of the task that ended otherwise (landed, failed the gate,
        dropped, or given to a human) ends the row: a branch redone, or retried by a human, starts
        again from none."""
        made, later = [], merge.head
        for earlier in self.store.merges(task_id=merge.task_id):  # newest first
            if earlier.id >= merge.id:
                continue
            if not earlier.conflict_task:
                break
            try:
                held = git.merge_base(self.root, tip, later) == git.merge_base(self.root, tip, earlier.head)
            except GitError:  # an old head no longer here: the row is not counted further back
                break
            if held:
                made.append(earlier.conflict_task)
            later = earlier.head
        return made

    def conflict_for_human(self, merge: Merge, files: list[str], made: list[str]) -> None:
        """The branch conflicts again after max_conflict_rounds resolutions that did not take the target
        in: no new conflict task (another would do no better); its task waits for a human, saying
        how many rounds were tried."""
        rounds = f"{len(made)} round{'' if len(made) == 1 else 's'}"
        why = (f"merge conflict in {', '.join(files)} still there after {rounds} of resolution that did not "
               f"take {self.target} in ({', '.join(reversed(made))}): resolve it by hand on {merge.branch} (merge "
               f"{self.target} into it), then `gasworks merge-retry {merge.task_id}`")
        self.end(merge, MergeStatus.CONFLICT, note=oneline(why, 300))
        self.store.send_back(merge.task_id, to_status=Status.BLOCKED, add_labels=[NEEDS_HUMAN], actor="refinery",
                             note=oneline(why, 1000))
        self.say(f"{merge.task_id}: {oneline(why, 300)}; labelled {NEEDS_HUMAN}")

    def gate_failed(self, merge: Merge, tail: str, now: float) -> None:
        """The branch failed the gate by itself on a tip that passes: back with the gate's output."""
        self.end(merge, MergeStatus.GATE_FAILED, note=oneline(tail.splitlines()[0] if tail else "", 200))
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        self.judge_last_attempt(merge, Outcome.GATE_FAILED.value, "its branch failed the merge gate"
                                + (f": {oneline(last, 200)}" if last else ""))
        send_back(self.store, merge.task_id, note=f"The merge gate failed:\n{tail}",
                  config=self.config, now=now, say=self.say, actor="refinery")

    def refused(self, merge: Merge, base: str, now: float) -> bool:
        """A branch that touches what no branch may land is refused before any gate run: gasworks's
        configuration (the task waits for a human to take the change by hand), gasworks's own state,
        or files untracked or ignored in the user's checkout (the task goes back, as a failure).
        `base`: the branch's common ancestor with the tip ("" when they share none)."""
        if not base:
            self.refuse(merge, f"its branch shares no history with {self.target}", human=False, now=now)
            return True
        paths = git.changed_paths(self.root, base, merge.head)
        config, state = guarded_paths(paths, self.config)
        in_way = [] if config or state else self.upstream.in_the_way(paths)
        if not (config or state or in_way):
            return False
        if config:
            self.refuse(merge, f"its branch changes gasworks's configuration ({', '.join(config[:5])}), which no "
                               f"branch changes by itself: review it (git diff {self.target}...{merge.branch}) and "
                               f"merge it by hand if you want it", human=True, now=now)
        else:
            named = state or in_way
            self.refuse(merge, f"its branch writes {', '.join(named[:5])}, " + (
                "gasworks's own state" if state else
                "which your checkout has untracked or ignored (landing would overwrite or delete them)")
                + "; leave those paths alone", human=False, now=now)
        return True

    def judge_last_attempt(self, merge: Merge, outcome: str, note: str) -> None:
        """The attempt that made the branch gets the outcome the queue found (it had `success`)."""
        attempts = self.store.attempts(merge.task_id)
        if attempts:
            self.store.set_attempt_outcome(attempts[-1].id, outcome, note)

    def refuse(self, merge: Merge, why: str, *, human: bool, now: float) -> None:
        """The branch is not merged: its task waits for a human (human=True), or goes back to its
        agent with the reason, as a failed attempt."""
        self.end(merge, MergeStatus.REFUSED, note=oneline(why, 300))
        self.judge_last_attempt(merge, Outcome.REFUSED.value, why)
        if human:
            self.store.send_back(merge.task_id, to_status=Status.BLOCKED, add_labels=[NEEDS_HUMAN], actor="refinery",
                                 note=why)
            self.say(f"{merge.task_id}: not merged: {why}; labelled {NEEDS_HUMAN}")
        else:
            send_back(self.store, merge.task_id, note=f"Not merged: {why}.",
                      config=self.config, now=now, say=self.say, actor="refinery")

    def file_gate_bug(self, tip: str, tail: str) -> None:
        if self.store.list_tasks(labels=[GATE_BROKEN_LABEL], include_closed=False):
            return
        task = self.store.create_task(NewTask(
            f"The merge gate fails on {self.target} itself", issue_type="bug", priority=0,
            labels=[GATE_BROKEN_LABEL],
            description=f"The gate fails on the untouched tip of {self.target} ({tip}), so no branch can land "
                        f"until it passes again. The merge queue waits until {self.target} moves.\n\n{tail}"),
            prefix=task_prefix(self.config, self.store), actor="refinery")
        self.say(f"the gate fails on {self.target} itself ({tip[:12]}): filed {task.id}; the queue waits")


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


def conflict_description(merge: Merge, files: list[str], tip: str, target: str) -> str:
    listed = "\n".join(f"- {name}" for name in files)
    return (f"The branch {merge.branch} (task {merge.task_id}, commit {merge.head}) no longer merges cleanly "
            f"into {target} (commit {tip}).\n\nConflicting files:\n{listed}\n\n"
            f"You are working on {merge.branch} itself. Merge {target} into it (or rebase it onto {target}), "
            f"resolve the conflicts so that both sides' intent is kept, and commit. When this task closes, "
            f"the branch goes back into the merge queue.")
