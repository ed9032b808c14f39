"""bd's JSON issue records read as Tasks, and gasworks's changes written as bd flags: pure functions,
no bd process and no store.

gasworks's own `merging` status is bd `in_progress` plus the label `gasworks:merging`. Task text
only ever becomes the value of a `--flag=value` argument (capped to what Linux takes in one
argument), and list items are CSV-quoted because bd reads list flags as CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gasworks.beads import task_from_record
from gasworks.errors import InvalidValueError, TrackerError
from gasworks.models import Status, Task, now_iso, releases_claim
from gasworks.store import NewTask
from gasworks.store.bd import BdResult, capped, csv_value

MERGING_LABEL = "gasworks:merging"
CLAIMER_PREFIX = "gasworks:"  # the dispatcher's assignees: gasworks:<host>/<slot>
# Keys bd adds to its views of an issue; derived or about other issues, so not kept.
_VIEW_KEYS = frozenset({
    "schema_version", "dependency_count", "dependent_count", "comment_count", "parent", "dependents",
    "epic_total_children", "epic_closed_children", "epic_closeable", "blocked_by", "blocked_by_count", "_type",
})
_FIELD_FLAGS = {"title": "title", "design": "design", "acceptance_criteria": "acceptance", "notes": "notes",
                "priority": "priority", "issue_type": "type", "assignee": "assignee"}


# -- bd's answers ---------------------------------------------------------------------------

def task_from_bd(record: dict[str, Any]) -> Task:
    """An issue as bd prints it (ready, show, list, create, update, close) as a Task."""
    fields = {key: value for key, value in record.items() if key not in _VIEW_KEYS}
    if isinstance(record.get("dependencies"), list):
        fields["dependencies"] = [_edge(str(record.get("id", "")), dep) for dep in record["dependencies"]]
    try:
        task = task_from_record(fields)
    except InvalidValueError as exc:
        raise TrackerError(f"bd answered an issue gasworks cannot read ({record.get('id', '?')}): {exc}") from None
    if not task.id:
        raise TrackerError("bd answered an issue without an id")
    if task.status == Status.IN_PROGRESS and MERGING_LABEL in task.labels:
        task.status = Status.MERGING
    task.labels = [label for label in task.labels if label != MERGING_LABEL]
    return task


def _edge(issue_id: str, dep: Any) -> Any:
    """`bd show` lists the target issues themselves, each with the edge's `dependency_type`;
    `bd ready` and the JSONL list edge records. Both become edge records."""
    if not isinstance(dep, dict) or "depends_on_id" in dep:
        return dep
    return {"issue_id": issue_id, "depends_on_id": dep.get("id"), "type": dep.get("dependency_type") or "blocks"}


def stamped(task: Task) -> Task:
    """The mirror's rows need both times; a record without them is as of now."""
    task.updated_at = task.updated_at or now_iso()
    task.created_at = task.created_at or task.updated_at
    return task


def records(result: BdResult, what: str) -> list[dict[str, Any]]:
    """The issues in an answer of bd (one object or a list; nothing is none)."""
    data = result.data
    if data is None:
        return []
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in data):
        raise TrackerError(f"`{what}` answered something other than a list of issues")
    return data


def answer_for(result: BdResult, task_id: str, verb: str) -> dict[str, Any]:
    """The issue bd says it changed; bd versions that skip a failed id still exit 0, so none is an error."""
    data = result.data
    if isinstance(data, dict) and isinstance(data.get("closed"), list):  # close --suggest-next and friends
        data = data["closed"]
    found = next((r for r in records(BdResult(data, ""), f"bd {verb}") if r["id"] == task_id), None)
    if found is None:
        raise TrackerError(f"`bd {verb} {task_id}` changed nothing" + (f": {result.warning}" if result.warning else ""))
    return found


# -- what gasworks asks of bd ---------------------------------------------------------------

def claimer_or(status: str, assignee: str, actor: str) -> str:
    """Who acts in bd: the gasworks claimer while it holds the task (bd fences a claim against
    others), else the caller."""
    return assignee if status in (Status.IN_PROGRESS, Status.MERGING) and assignee.startswith(CLAIMER_PREFIX) else actor


def label_flags(add: Sequence[str] = (), remove: Sequence[str] = ()) -> list[str]:
    return [f"--add-label={csv_value(label)}" for label in add] + \
           [f"--remove-label={csv_value(label)}" for label in remove]


def create_flags(new: NewTask, parent: str, deps: list[tuple[str, str]]) -> list[str]:
    """`bd create`'s flags for a new task whose parent and dependencies are resolved to ids; the
    title goes as the positional argument and the description in the body file."""
    flags = [f"--priority={new.priority}", f"--type={new.issue_type}"]
    flags += [f"--{flag}={capped(value)}" for flag, value in (
        ("design", new.design), ("acceptance", new.acceptance_criteria), ("notes", new.notes),
        ("assignee", new.assignee)) if value]
    flags += [f"--labels={csv_value(label)}" for label in new.labels]
    if parent:
        flags.append(f"--parent={parent}")
    if deps:  # bare X: the new issue waits on X (`blocks:X` would turn the edge round)
        flags.append("--deps=" + ",".join(t if k == "blocks" else f"{k}:{t}" for t, k in deps))
    return flags


def field_flags(changes: dict[str, Any]) -> list[str]:
    """`bd update`'s flags for edited fields. The description goes in the body file instead; only
    emptying it is a flag."""
    flags = [f"--{_FIELD_FLAGS[name]}={capped(str(value))}" for name, value in changes.items()
             if name != "description"]
    if changes.get("description") == "":
        flags.append("--description=")
    return flags


def status_flags(current: Task, to_status: str) -> list[str]:
    """`bd update`'s flags for a status change other than closing."""
    was_merging = current.status == Status.MERGING
    flags = [f"--status={Status.IN_PROGRESS if to_status == Status.MERGING else to_status}"]
    if releases_claim(current.status, to_status, current.assignee):
        flags.append("--assignee=")  # the claim is released
    if to_status == Status.MERGING and not was_merging:
        flags += label_flags(add=[MERGING_LABEL])
    elif was_merging and to_status != Status.MERGING:
        flags += label_flags(remove=[MERGING_LABEL])
    return flags
