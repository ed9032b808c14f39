"""What a run waits on, said out loud: the liveness rule of `gasworks run`.

A run never waits silently. Each thing it waits on (model endpoints down, the log folder full, a
merge held by edits in the user's checkout, a task that needs a human) is said when it starts and
once a minute while it lasts, with since when. With --until-done the run ends as soon as nothing
can move without a human (`Dispatcher.busy()`), and `left_for_humans()` says what is left, for whom.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gasworks.models import MergeStatus, Task
from gasworks.store import StoreView

SAY_EVERY_SECONDS = 60.0
LISTED = 20  # waiting tasks named one by one in the final report; the rest are counted


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
    and the open tasks that wait on unfinished work (each kind named up to LISTED, then counted).
    A few reads, however many tasks there are: the status views call this on every refresh."""
    blocked, total = store.blocked_with_reasons(LISTED)
    lines = [f"{task.id} is blocked: {blocked_reason(task, reason)}" for task, reason in blocked]
    if total > len(blocked):
        lines.append(f"... and {total - len(blocked)} more blocked task(s)")
    lines += [f"the merge of {merge.task_id} is held: {merge.note}"
              for merge in store.merges(statuses=[MergeStatus.HELD.value], oldest_first=True, limit=LISTED)]
    waiting, total = store.waiting(LISTED)
    for task in waiting:
        blockers = store.blockers(task.id)
        lines.append(f"{task.id} waits on {', '.join(blockers)}" if blockers
                     else f"{task.id} waits on its parent's unfinished work")
    if total > len(waiting):
        lines.append(f"... and {total - len(waiting)} more open task(s) waiting on unfinished work")
    return lines


def needing_humans(store: StoreView, *, limit: int) -> list[tuple[str, str, str]]:
    """(kind, task id, why) for up to `limit` blocked tasks ("blocked"), by priority, and each held
    merge ("held"): a few reads however many tasks wait, for views that ask every second."""
    blocked, _ = store.blocked_with_reasons(limit)
    return [("blocked", task.id, blocked_reason(task, reason)) for task, reason in blocked] + [
        ("held", merge.task_id, merge.note)
        for merge in store.merges(statuses=[MergeStatus.HELD.value], oldest_first=True, limit=limit)]


def blocked_reason(task: Task, reason: str) -> str:
    """Why it was blocked: the reason given when it last became blocked, and its labels."""
    labels = f" [{', '.join(task.labels)}]" if task.labels else ""
    return (reason or "blocked by hand") + labels
