"""The dashboard's data: one dict per page, built from the store through its public methods.

Each page's HTML (views.py) and its JSON twin under /api/ are made from the same dict.
Nothing here knows about HTTP.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gasworks import git, logs
from gasworks.beads import task_to_record
from gasworks.errors import NotFoundError
from gasworks.models import Attempt, Task
from gasworks.output import attempt_record, event_dict, merge_dict, merge_stats
from gasworks.project import Project
from gasworks.stats import ALL, fleet_stats, series
from gasworks.status import status_report

# The board's columns, in order: open tasks split into ready and held back, then by status.
COLUMNS = (("ready", "Ready"), ("waiting", "Open, held back"), ("in_progress", "In progress"),
           ("merging", "Merging"), ("blocked", "Blocked"), ("closed", "Closed"), ("other", "Other"))
CARDS_PER_COLUMN = 100
SLOT_TAIL_LINES = 12
TASK_LOG_LINES = 400


def _card(task: Task, status_of: dict[str, str]) -> dict[str, Any]:
    return {"id": task.id, "title": task.title, "status": task.status, "priority": task.priority,
            "issue_type": task.issue_type, "labels": list(task.labels), "assignee": task.assignee,
            "depends_on": [{"id": d.depends_on_id, "type": d.type, "status": status_of.get(d.depends_on_id, "")}
                           for d in task.dependencies],
            "created_at": task.created_at, "closed_at": task.closed_at}


def board(store: Any) -> dict[str, Any]:
    """Every task in its column, each with what it depends on (and that task's status)."""
    tasks = list(store.export_tasks())
    ready = {t.id for t in store.ready()}
    status_of = {t.id: t.status for t in tasks}
    groups: dict[str, list[Task]] = {name: [] for name, _ in COLUMNS}
    for task in tasks:
        if task.status == "open":
            groups["ready" if task.id in ready else "waiting"].append(task)
        else:
            groups[task.status if task.status in groups else "other"].append(task)
    for name, members in groups.items():
        if name == "closed":
            members.sort(key=lambda t: t.closed_at, reverse=True)
        else:
            members.sort(key=lambda t: (t.priority, t.created_at))
    return {"columns": [{"name": name, "title": title, "total": len(groups[name]),
                         "tasks": [_card(t, status_of) for t in groups[name][:CARDS_PER_COLUMN]]}
                        for name, title in COLUMNS if groups[name] or name != "other"]}


def live(project: Project, store: Any, now: float | None = None) -> dict[str, Any]:
    """What changes while the fleet runs: slots with their log tails, the merge queue, counts.
    `version` is the newest event's id: when it moves, the board has changed."""
    report = status_report(project, store, now=now)
    for slot in report["slots"]:
        slot["tail"] = logs.tail(Path(slot["log"]), SLOT_TAIL_LINES)
    newest = store.events(limit=1)
    report["version"] = newest[0].id if newest else 0
    return report


def dashboard(project: Project, store: Any, now: float | None = None) -> dict[str, Any]:
    return {"live": live(project, store, now), "board": board(store)}


def _attempt(project: Project, attempt: Attempt, now: float) -> dict[str, Any]:
    path = logs.log_path(project.logs_dir, attempt)
    return {**attempt_record(attempt, path, now), "log_size": logs.file_size(path),
            "log_tail": logs.tail(path, TASK_LOG_LINES),
            "diff": git.diff(project.root, attempt.base_commit, attempt.commits[-1]) if attempt.commits else ""}


def _status(store: Any, task_id: str) -> str:
    try:
        return store.get_task(task_id).status
    except NotFoundError:  # Beads allows links to issues kept elsewhere
        return ""


def task_page(project: Project, store: Any, task_id: str, now: float | None = None) -> dict[str, Any]:
    """One task: its fields, dependencies both ways, attempts with log tails and diffs, merges, events."""
    now = time.time() if now is None else now
    task = store.get_task(store.resolve_id(task_id))
    status_of = {d.depends_on_id: _status(store, d.depends_on_id) for d in task.dependencies}
    return {
        "task": {**task_to_record(task), "lease_expires_at": task.lease_expires_at},
        "depends_on": [{"id": d.depends_on_id, "type": d.type, "status": status_of[d.depends_on_id]}
                       for d in task.dependencies],
        "blocked": store.is_blocked(task.id),
        "blocked_by": store.blockers(task.id),
        "dependents": [{"id": d.issue_id, "type": d.type} for d in store.dependents(task.id)],
        "attempts": [_attempt(project, a, now) for a in store.attempts(task.id)],
        "merges": [merge_dict(m) for m in store.merges(task_id=task.id, oldest_first=True)],
        "events": [event_dict(e) for e in store.events(task.id, limit=200)],
    }


def attempt_log(project: Project, store: Any, task_id: str, attempt_id: int) -> dict[str, Any]:
    """The whole log of one attempt, cleaned line by line."""
    task_id = store.resolve_id(task_id)
    found = [a for a in store.attempts(task_id) if a.id == attempt_id]
    if not found:
        raise NotFoundError(f"{task_id} has no attempt {attempt_id}")
    path = logs.log_path(project.logs_dir, found[0])
    return {"task": task_id, "attempt": attempt_id, "outcome": found[0].outcome or "running", "log": str(path),
            "lines": logs.read_lines(path)}


def merges_page(store: Any) -> dict[str, Any]:
    """The merge queue, the results with their gate runs, and the queue's rates."""
    queue = store.merges(statuses=["queued", "merging"], oldest_first=True)
    everything = store.merges(limit=ALL)
    done = [m for m in everything if m.status not in ("queued", "merging")][:100]
    return {"queue": [merge_dict(m) for m in queue], "recent": [merge_dict(m) for m in done],
            "stats": merge_stats(everything, store.gate_run_totals())}


def stats_page(store: Any, now: float | None = None, project: Project | None = None) -> dict[str, Any]:
    """The fleet's figures and series, and the newest `gasworks eval` results of the project."""
    from gasworks.eval.report import load

    now = time.time() if now is None else now
    return {"stats": fleet_stats(store, now), "series": series(store, now),
            "evals": load(project.state_dir) if project is not None else []}
