"""Convoys, as Gas Town calls a batch of tracked work: here an epic (a plan's, or one made by hand)
and its children, with where each child stands.

A child's state, checked in this order: merged (closed, and its branch landed through the merge
queue), done (closed otherwise), merging, running (in_progress), blocked, waiting (open, held back
by unfinished work it depends on), ready (open and free to start); any other status (deferred,
hooked, a Beads custom one) is shown as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gasworks.errors import InvalidValueError
from gasworks.models import MergeStatus, Status, Task
from gasworks.store import StoreView

STATES = ("merged", "done", "merging", "running", "blocked", "waiting", "ready")
FINISHED = ("merged", "done")
_STATE_OF_STATUS: dict[str, str] = {Status.IN_PROGRESS: "running", Status.MERGING: "merging", Status.BLOCKED: "blocked"}


@dataclass
class Member:
    task: Task
    state: str


@dataclass
class Convoy:
    epic: Task
    members: list[Member]

    @property
    def total(self) -> int:
        return len(self.members)

    @property
    def finished(self) -> int:
        return sum(1 for m in self.members if m.state in FINISHED)

    @property
    def complete(self) -> bool:
        return bool(self.members) and self.finished == self.total

    def counts(self) -> dict[str, int]:
        """Children by state, in STATES order, then any other status; states with none left out."""
        found: dict[str, int] = {}
        for member in self.members:
            found[member.state] = found.get(member.state, 0) + 1
        order = [s for s in STATES if s in found] + sorted(s for s in found if s not in STATES)
        return {state: found[state] for state in order}

    def to_dict(self, *, members: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.epic.id, "title": self.epic.title, "status": self.epic.status, "labels": self.epic.labels,
            "plan": "plan" in self.epic.labels, "total": self.total, "finished": self.finished,
            "complete": self.complete, "counts": self.counts(),
        }
        if members:
            data["children"] = [{"id": m.task.id, "title": m.task.title, "state": m.state, "status": m.task.status,
                                 "priority": m.task.priority, "assignee": m.task.assignee} for m in self.members]
        return data


def _natural(task_id: str) -> list[Any]:
    """gw-a1b2.2 before gw-a1b2.10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", task_id)]


def children(store: StoreView, epic_id: str) -> list[Task]:
    ids = sorted({d.issue_id for d in store.dependents(epic_id) if d.type == "parent-child"}, key=_natural)
    return [store.get_task(task_id) for task_id in ids]


def child_state(store: StoreView, task: Task) -> str:
    if task.status == Status.CLOSED:
        landed = store.merges(task_id=task.id, statuses=[MergeStatus.LANDED.value], limit=1)
        return "merged" if landed else "done"
    if task.status == Status.OPEN:
        return "waiting" if store.is_blocked(task.id) else "ready"
    return _STATE_OF_STATUS.get(task.status, task.status)


def convoy(store: StoreView, epic_id: str) -> Convoy:
    """The convoy of an epic (give a full id; the CLI resolves partial ones)."""
    epic = store.get_task(epic_id)
    if epic.issue_type != "epic":
        raise InvalidValueError(f"{epic.id} is a {epic.issue_type}, not an epic: a convoy is an epic and its "
                                "children (see `gasworks convoy list`)")
    return Convoy(epic, [Member(task, child_state(store, task)) for task in children(store, epic.id)])


def convoys(store: StoreView, *, include_closed: bool = False) -> list[Convoy]:
    """Every epic as a convoy, open ones only unless include_closed; oldest first."""
    epics = store.list_tasks(issue_type="epic", include_closed=include_closed)
    epics.sort(key=lambda t: (t.created_at, _natural(t.id)))
    return [convoy(store, epic.id) for epic in epics]


def sling_order(store: StoreView, task_ids: list[str]) -> list[str]:
    """The ids to sling: each epic stands for its unfinished children; duplicates dropped, order kept."""
    found: list[str] = []
    for task_id in task_ids:
        task = store.get_task(task_id)
        if task.issue_type == "epic":
            found += [child.id for child in children(store, task.id) if child.status != Status.CLOSED]
        else:
            found.append(task.id)
    return list(dict.fromkeys(found))
