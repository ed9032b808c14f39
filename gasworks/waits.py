"""What a run waits on, said out loud: the liveness rule of `gasworks run`.

A run never waits silently. Each thing it waits on (model endpoints down, the log folder full, a
merge held by edits in the user's checkout, a task that needs a human) is said when it starts and
once a minute while it lasts, with since when. With --until-done the run ends as soon as nothing
can move without a human (`busy()`), and `left_over()` says what is left, for whom. Each reads a
dispatcher's state and the clock passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gasworks.models import AGENT_ASSIGNEE_PREFIX, MergeStatus, Status, Task
from gasworks.store import Store, StoreView

if TYPE_CHECKING:
    from gasworks.config import Config
    from gasworks.project import Project
    from gasworks.refinery import Refinery, RefineryWorker
    from gasworks.witness import ClaimGate

class Fleet(Protocol):
    """What busy(), current() and left_over() read of a run (the Dispatcher is one)."""

    @property
    def running(self) -> Mapping[str, object]: ...

    @property
    def worker(self) -> RefineryWorker | None: ...

    @property
    def refinery(self) -> Refinery: ...

    @property
    def claims(self) -> ClaimGate: ...

    @property
    def config(self) -> Config: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def store(self) -> Store: ...

    @property
    def project(self) -> Project: ...


SAY_EVERY_SECONDS = 60.0
LISTED = 20  # waiting tasks named one by one in the final report; the rest are counted
REVIEW_WHY = "its finished branch waits for `gasworks approve` (or `reject --note`)"


@dataclass(frozen=True)
class Wait:
    key: str    # what it is, stable while it lasts: "endpoints", "held:gw-3", ...
    text: str   # what it is, for people


class WaitLog:
    """Says each wait when it starts and every `every` seconds while it lasts (the clock passed in)."""

    def __init__(self, say: Callable[[str], None], every: float = SAY_EVERY_SECONDS) -> None:
        self.say, self.every = say, every
        self.since: dict[str, float] = {}
        self.said: dict[str, float] = {}

    def observe(self, now: float, waits: list[Wait]) -> None:
        current = {wait.key for wait in waits}
        for key in [key for key in self.since if key not in current]:
            del self.since[key], self.said[key]
        for wait in waits:
            started = self.since.setdefault(wait.key, now)
            if now - self.said.get(wait.key, now - self.every) >= self.every:
                self.said[wait.key] = now
                self.say(f"waiting: {wait.text} (since {clock(started)}, {minutes(now - started)})")

    def started(self, key: str) -> float | None:
        return self.since.get(key)


def clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def left_for_humans(store: StoreView) -> list[str]:
    """What only a person can move on, one line each: blocked tasks and why, merges held and why,
    branches waiting for review, and the open tasks that wait on unfinished work (each kind named
    up to LISTED, then counted). A few reads, however many tasks there are: the status views call
    this on every refresh."""
    blocked, total = store.blocked_with_reasons(LISTED)
    lines = [f"{task.id} is blocked: {blocked_reason(task, reason)}" for task, reason in blocked]
    if total > len(blocked):
        lines.append(f"... and {total - len(blocked)} more blocked task(s)")
    lines += [f"the merge of {merge.task_id} is held: {merge.note}"
              for merge in store.merges(statuses=[MergeStatus.HELD.value], oldest_first=True, limit=LISTED)]
    lines += [f"{task_id} waits for review: {REVIEW_WHY}" for task_id in in_review(store, LISTED)]
    waiting, total = store.waiting(LISTED)
    for task in waiting:
        blockers = store.blockers(task.id)
        lines.append(f"{task.id} waits on {', '.join(blockers)}" if blockers
                     else f"{task.id} waits on its parent's unfinished work")
    if total > len(waiting):
        lines.append(f"... and {total - len(waiting)} more open task(s) waiting on unfinished work")
    return lines


def needing_humans(store: StoreView, *, limit: int) -> list[tuple[str, str, str]]:
    """(kind, task id, why) for up to `limit` blocked tasks ("blocked"), by priority, each held
    merge ("held") and each branch waiting for review ("review"): a few reads however many tasks
    wait, for views that ask every second."""
    blocked, _ = store.blocked_with_reasons(limit)
    return [("blocked", task.id, blocked_reason(task, reason)) for task, reason in blocked] + [
        ("held", merge.task_id, merge.note)
        for merge in store.merges(statuses=[MergeStatus.HELD.value], oldest_first=True, limit=limit)] + [
        ("review", task_id, REVIEW_WHY) for task_id in in_review(store, limit)]


def in_review(store: StoreView, limit: int) -> list[str]:
    """Tasks whose finished branch waits for review, oldest first (not one closed or reopened by
    hand meanwhile: its branch has nothing left to wait for)."""
    return [merge.task_id for merge in store.merges(statuses=[MergeStatus.REVIEW.value], oldest_first=True,
                                                    limit=limit)
            if store.get_task(merge.task_id).status == Status.MERGING]


def blocked_reason(task: Task, reason: str) -> str:
    """Why it was blocked: the reason given when it last became blocked, and its labels."""
    labels = f" [{', '.join(task.labels)}]" if task.labels else ""
    return (reason or "blocked by hand") + labels


def busy(fleet: Fleet, now: float) -> bool:
    """Whether anything can still move without a human: agents running, merges to make, or
    (unless stopping) ready work it can claim. Ready work it cannot claim, because the model
    endpoints are down or the log folder is full, and a merge held by edits in the user's
    checkout count for until_done_patience seconds."""
    if fleet.running or (fleet.worker is not None and fleet.worker.in_round):
        return True
    if fleet.refinery.aborting:
        return False
    if fleet.refinery.moving():  # finished work is merged even while stopping, within the grace
        return True
    held = fleet.refinery.held  # edits in the user's checkout: tried again every few seconds, for a while
    patience = fleet.config.until_done_patience
    if held and not fleet.stopping and now - held.since < patience:
        return True
    if fleet.stopping:
        return False
    # Several hosts: a task another host works on comes back here if that host dies.
    if fleet.config.remote and any(task.assignee.startswith(AGENT_ASSIGNEE_PREFIX)
                                   for task in fleet.store.list_tasks(statuses=[Status.IN_PROGRESS])):
        return True
    if not fleet.store.ready(limit=1):
        return False
    return fleet.claims.held_for(now) < patience or not fleet.claims.stopped_since


def current(fleet: Fleet) -> list[Wait]:
    """What the run waits on right now, for the once-a-minute line."""
    found = []
    if fleet.claims.paused_until:
        found.append(Wait("endpoints", "the model endpoints do not answer: no new tasks until one does"))
    if fleet.claims.logs_full:
        found.append(Wait("logs", f"the log folder {fleet.project.logs_dir} is full: no new tasks"))
    found += [Wait(f"held:{task_id}", f"the merge of {task_id} waits: {why}")
              for task_id, why in fleet.refinery.waiting().items()]
    if not found and not fleet.running and not fleet.refinery.moving():
        counts = fleet.store.counts()
        found.append(Wait("idle", f"nothing to do: {counts['ready']} ready, {counts['waiting']} waiting on "
                                  f"other work, {counts.get(Status.BLOCKED, 0)} blocked"))
    return found


def left_over(fleet: Fleet, now: float) -> list[str]:
    """What keeps the run from being done, for the end of an --until-done run: what waits on whom."""
    lines = []
    claims = fleet.claims
    if claims.stopped_since and fleet.store.ready(limit=1):
        why = "the model endpoints do not answer" if claims.paused_until else "the log folder is full"
        lines.append(f"ready work was not started: {why} (since {clock(claims.stopped_since)}, "
                     f"{minutes(claims.held_for(now))})")
    lines += [f"the merge of {task_id} waits: {why}; it is tried again when the run starts again"
              for task_id, why in fleet.refinery.waiting().items()]
    return lines + left_for_humans(fleet.store)
