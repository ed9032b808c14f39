"""The Beads JSONL record: one issue per line, converted to and from `Task`.

Fields gasworks does not use go into `Task.extra` and come back out on export,
so a Beads file survives an import/export round-trip.
"""

from __future__ import annotations

import json
from typing import Any

from gasworks.errors import InvalidValueError
from gasworks.ids import check_id
from gasworks.models import Comment, Dependency, Status, Task, parse_time

TEXT_FIELDS = ("description", "design", "acceptance_criteria", "notes")
_TIME_FIELDS = ("created_at", "updated_at", "closed_at")
_KNOWN = {
    "id", "title", *TEXT_FIELDS, "status", "priority", "issue_type", "assignee",
    *_TIME_FIELDS, "close_reason", "labels", "dependencies", "comments",
}
# Counts `bd export` adds (after `comments`); kept where a line carried them, written back fresh.
COUNT_KEYS = ("dependency_count", "dependent_count", "comment_count")
MAX_DEP_TYPE_LENGTH = 50
ANY_CHILDREN = "any-children"


# -- what Beads reads from the fields gasworks keeps opaquely -------------------------------

def never_ready(extra: dict[str, Any]) -> bool:
    """Beads leaves pinned issues out of ready work whatever their status, and wisps: issues it
    keeps in its wisps table, the ephemeral ("wisp" before v0.38) and no-history ones."""
    return any(extra.get(flag) is True for flag in ("pinned", "ephemeral", "wisp", "no_history"))


def defer_epoch(extra: dict[str, Any]) -> float | None:
    """`defer_until` as epoch seconds (ready work waits until then), or None."""
    value = extra.get("defer_until")
    return parse_time(value).timestamp() if isinstance(value, str) and value.strip() else None


def gate(dep_extra: dict[str, Any]) -> str:
    """A waits-for edge's gate: "any-children", or "" for Beads' default (all children). The
    metadata is an object, or a JSON string as current `bd export` writes it; anything unreadable
    is the default, as in Beads' ParseWaitsForGateMetadata."""
    metadata = dep_extra.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return ""
    return ANY_CHILDREN if isinstance(metadata, dict) and metadata.get("gate") == ANY_CHILDREN else ""


def _string(record: dict, key: str, default: str = "") -> str:
    value = record.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _texts(record: dict) -> dict[str, Any]:
    return {name: _string(record, name) for name in TEXT_FIELDS}


def _times(record: dict) -> dict[str, Any]:
    return {name: _timestamp(record, name) for name in _TIME_FIELDS}


def _timestamp(record: dict, key: str) -> str:
    value = _string(record, key)
    if value:
        try:
            parse_time(value)
        except ValueError:
            raise InvalidValueError(f"field {key!r} is not an RFC 3339 time: {value!r}") from None
    return value


def _priority(record: dict) -> int:
    """A line without a priority is P0: bd wrote `priority` with omitempty, so 0 was left out, and
    its import reads a missing priority as 0 (types.Issue.SetDefaults sets none)."""
    value = record.get("priority", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4:
        raise InvalidValueError(f"field 'priority' must be an integer 0-4, got {value!r}")
    return value


def _dependency(issue_id: str, raw: Any) -> Dependency:
    if not isinstance(raw, dict):
        raise InvalidValueError("each entry of 'dependencies' must be an object")
    target = raw.get("depends_on_id")
    if not isinstance(target, str) or not target:
        raise InvalidValueError("a dependency has no 'depends_on_id'")
    dep_type = raw.get("type") or "blocks"
    if not isinstance(dep_type, str) or len(dep_type) > MAX_DEP_TYPE_LENGTH:
        raise InvalidValueError(f"dependency type {dep_type!r} must be a string of at most 50 characters")
    extra = {k: v for k, v in raw.items() if k not in ("issue_id", "depends_on_id", "type", "created_at")}
    return Dependency(issue_id, target, dep_type, _timestamp(raw, "created_at"), extra)


def _comment(issue_id: str, raw: Any) -> Comment:
    if not isinstance(raw, dict):
        raise InvalidValueError("each entry of 'comments' must be an object")
    comment_id = raw.get("id")
    if comment_id is not None and (isinstance(comment_id, bool) or not isinstance(comment_id, (int, str))):
        raise InvalidValueError(f"a comment's 'id' must be an integer or a string, got {comment_id!r}")
    return Comment(
        id=comment_id,
        issue_id=issue_id,
        author=_string(raw, "author"),
        text=_string(raw, "text"),
        created_at=_timestamp(raw, "created_at"),
    )


def task_from_record(record: Any) -> Task:
    """Validate one Beads issue record. Raises InvalidValueError naming the bad field."""
    if not isinstance(record, dict):
        raise InvalidValueError("a line must hold a JSON object")
    title = _string(record, "title")
    if not title.strip():
        raise InvalidValueError("field 'title' is missing or empty")
    task_id = _string(record, "id")
    if task_id:
        check_id(task_id)
    labels = record.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InvalidValueError("field 'labels' must be a list of strings")
    deps = record.get("dependencies") or []
    comments = record.get("comments") or []
    if not isinstance(deps, list) or not isinstance(comments, list):
        raise InvalidValueError("fields 'dependencies' and 'comments' must be lists")
    status = _string(record, "status", Status.OPEN) or Status.OPEN
    _timestamp(record, "defer_until")
    return Task(
        id=task_id,
        title=title,
        **_texts(record),
        status=status,
        priority=_priority(record),
        issue_type=_string(record, "issue_type", "task") or "task",
        assignee=_string(record, "assignee"),
        **_times(record),
        close_reason=_string(record, "close_reason"),
        labels=list(dict.fromkeys(labels)),
        dependencies=[_dependency(task_id, dep) for dep in deps],
        comments=[_comment(task_id, c) for c in comments],
        extra={k: v for k, v in record.items() if k not in _KNOWN},
    )


def task_to_record(task: Task) -> dict[str, Any]:
    """The Beads JSONL shape: empty strings and lists left out, as Go's omitempty does."""
    record: dict[str, Any] = {"id": task.id, "title": task.title}
    for name in TEXT_FIELDS:
        if getattr(task, name):
            record[name] = getattr(task, name)
    record["status"] = task.status
    record["priority"] = task.priority
    record["issue_type"] = task.issue_type
    for name in ("assignee", "created_at", "updated_at", "closed_at", "close_reason"):
        if getattr(task, name) or name in ("created_at", "updated_at"):
            record[name] = getattr(task, name)
    record.update((k, v) for k, v in task.extra.items() if k not in COUNT_KEYS)
    if task.labels:
        record["labels"] = list(task.labels)
    if task.dependencies:
        record["dependencies"] = [
            {"issue_id": task.id, "depends_on_id": d.depends_on_id, "type": d.type,
             **({"created_at": d.created_at} if d.created_at else {}), **d.extra}
            for d in task.dependencies
        ]
    if task.comments:
        record["comments"] = [
            {"id": c.id, "issue_id": task.id, "author": c.author, "text": c.text, "created_at": c.created_at}
            for c in task.comments
        ]
    record.update((k, v) for k, v in task.extra.items() if k in COUNT_KEYS)
    return record


def dumps(task: Task) -> str:
    return json.dumps(task_to_record(task), ensure_ascii=False, separators=(",", ":"))


def memory_line(key: str, value: str) -> str:
    return json.dumps({"_type": "memory", "key": key, "value": value}, ensure_ascii=False, separators=(",", ":"))
