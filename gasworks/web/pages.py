"""The dashboard's data: one dict per page, built from the store through its public methods.

Each page's HTML (views.py) and its JSON twin under /api/ are made from the same dict.
Nothing here knows about HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gasworks import git, logs
from gasworks.beads import task_to_record
from gasworks.errors import InvalidValueError, NotFoundError
from gasworks.models import Attempt, MergeStatus, Task, parse_priority
from gasworks.output import attempt_record, event_dict, failure_reason, merge_dict, merge_stats
from gasworks.project import Project
from gasworks.stats import ALL, fleet_stats, series
from gasworks.status import status_report
from gasworks.store import StoreView
from gasworks.store.board import BOARD_COLUMNS, BoardFilter

# The board's columns, in order (store.board.BOARD_COLUMNS): open tasks split into ready and held
# back, then by status.
COLUMNS = (("ready", "Ready"), ("waiting", "Open, held back"), ("in_progress", "In progress"),
           ("merging", "Merging"), ("blocked", "Blocked"), ("closed", "Closed"), ("other", "Other"))
CARDS_PER_COLUMN = 50  # a column's page
SLOT_TAIL_LINES = 12
TASK_LOG_LINES = 400
FILTER_KEYS = ("q", "status", "label", "assignee", "priority")


def board_filter(params: Mapping[str, str]) -> tuple[BoardFilter, dict[str, int]]:
    """The board's search, filters and each column's page from a request's query (`q`, `status` (a
    column), `label`, `assignee`, `priority`, `page_<column>`); a bad value is an error that says so."""
    column = params.get("status", "").strip()
    if column and column not in BOARD_COLUMNS:
        raise InvalidValueError(f"no column {column!r}: use one of {', '.join(BOARD_COLUMNS)}")
    priority = params.get("priority", "").strip()
    shown = BoardFilter(text=params.get("q", "").strip(), column=column, label=params.get("label", "").strip(),
                        assignee=params.get("assignee", "").strip(),
                        priority=parse_priority(priority) if priority else None)
    pages = {}
    for name in BOARD_COLUMNS:
        given = params.get(f"page_{name}", "")
        if given:
            if not given.isdigit() or int(given) < 1:
                raise InvalidValueError(f"page_{name} must be a page number (1 is the first)")
            pages[name] = int(given)
    return shown, pages


def _card(task: Task, depends_on: list[tuple[str, str, str]], reason: str) -> dict[str, Any]:
    return {"id": task.id, "title": task.title, "status": task.status, "priority": task.priority,
            "issue_type": task.issue_type, "labels": list(task.labels), "assignee": task.assignee,
            "depends_on": [{"id": target, "type": kind, "status": status} for target, kind, status in depends_on],
            "created_at": task.created_at, "closed_at": task.closed_at, "reason": reason}


def board(store: StoreView, shown: BoardFilter | None = None, pages: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The tasks the filter matches, by column, one page of each (CARDS_PER_COLUMN cards), each card
    with what it depends on (and that task's status) and why its latest attempt failed."""
    shown, pages = shown or BoardFilter(), pages or {}
    counts = store.board_counts(shown)
    columns: list[dict[str, Any]] = []
    for name, title in COLUMNS:
        total = counts.get(name, 0)
        if (shown.column and name != shown.column) or (name == "other" and not total):
            continue
        last = max(1, -(-total // CARDS_PER_COLUMN))
        page = min(pages.get(name, 1), last)
        tasks = store.board_page(name, shown, offset=(page - 1) * CARDS_PER_COLUMN, limit=CARDS_PER_COLUMN) \
            if total else []
        columns.append({"name": name, "title": title, "total": total, "page": page, "pages": last, "tasks": tasks})
    ids = [task.id for column in columns for task in column["tasks"]]
    depends, reasons = store.depends_on(ids), store.failure_reasons(ids)
    for column in columns:
        column["tasks"] = [_card(t, depends.get(t.id, []), failure_reason(reasons.get(t.id))) for t in column["tasks"]]
    return {"filter": {"q": shown.text, "status": shown.column, "label": shown.label, "assignee": shown.assignee,
                       "priority": "" if shown.priority is None else shown.priority},
            "pages": {column["name"]: column["page"] for column in columns if column["page"] > 1},
            "matched": sum(counts.values()), "columns": columns}


def live(project: Project, store: StoreView, now: float | None = None) -> dict[str, Any]:
    """What changes while the fleet runs: slots with their log tails, the merge queue, counts.
    `version` is the newest event's id: when it moves, the board has changed."""
    report = status_report(project, store, now=now)
    for slot in report["slots"]:
        slot["tail"] = logs.tail(Path(slot["log"]), SLOT_TAIL_LINES)
    newest = store.events(limit=1)
    report["version"] = newest[0].id if newest else 0
    return report


def dashboard(project: Project, store: StoreView, now: float | None = None, shown: BoardFilter | None = None,
              pages: Mapping[str, int] | None = None) -> dict[str, Any]:
    return {"live": live(project, store, now), "board": board(store, shown, pages)}


def _attempt(project: Project, attempt: Attempt, now: float) -> dict[str, Any]:
    path = logs.log_path(project.logs_dir, attempt)
    return {**attempt_record(attempt, path, now), "log_size": logs.file_size(path),
            "log_tail": logs.tail(path, TASK_LOG_LINES),
            "diff": git.diff(project.root, attempt.base_commit, attempt.commits[-1]) if attempt.commits else ""}


def _status(store: StoreView, task_id: str) -> str:
    try:
        return store.get_task(task_id).status
    except NotFoundError:  # Beads allows links to issues kept elsewhere
        return ""


def task_page(project: Project, store: StoreView, task_id: str, now: float | None = None) -> dict[str, Any]:
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
        "runs_with": runs_with(project, task),
        "reason": failure_reason(store.failure_reasons([task.id]).get(task.id)),
        "attempts": [_attempt(project, a, now) for a in store.attempts(task.id)],
        "merges": [merge_dict(m) for m in store.merges(task_id=task.id, oldest_first=True)],
        "waits_for_review": bool(store.merges(task_id=task.id, statuses=[MergeStatus.REVIEW], limit=1)),
        "events": [event_dict(e) for e in store.events(task.id, limit=200)],
    }


def runs_with(project: Project, task: Task) -> dict[str, Any]:
    """The agent and model the task runs with: what its labels pick ("" for none), the run's own,
    and, when a label names none, why."""
    from gasworks.agents import task_choice
    from gasworks.errors import ConfigError

    try:
        agent, model = task_choice(task)
        error = ""
    except ConfigError as exc:
        agent, model, error = "", "", str(exc)
    return {"agent": agent, "model": model, "default_agent": project.config.agent,
            "default_model": project.config.model, "error": error}


def attempt_log(project: Project, store: StoreView, task_id: str, attempt_id: int) -> dict[str, Any]:
    """The whole log of one attempt, cleaned line by line."""
    task_id = store.resolve_id(task_id)
    found = [a for a in store.attempts(task_id) if a.id == attempt_id]
    if not found:
        raise NotFoundError(f"{task_id} has no attempt {attempt_id}")
    path = logs.log_path(project.logs_dir, found[0])
    return {"task": task_id, "attempt": attempt_id, "outcome": found[0].outcome or "running", "log": str(path),
            "lines": logs.read_lines(path)}


def merges_page(store: StoreView) -> dict[str, Any]:
    """The merge queue, the results with their gate runs, and the queue's rates."""
    queue = store.merges(statuses=[MergeStatus.QUEUED, MergeStatus.MERGING], oldest_first=True)
    everything = store.merges(limit=ALL)
    done = [m for m in everything if m.status not in (MergeStatus.QUEUED, MergeStatus.MERGING)][:100]
    return {"queue": [merge_dict(m) for m in queue], "recent": [merge_dict(m) for m in done],
            "stats": merge_stats(everything, store.gate_run_totals())}


def stats_page(store: StoreView, now: float | None = None, project: Project | None = None) -> dict[str, Any]:
    """The fleet's figures and series, and the newest `gasworks eval` results of the project."""
    from gasworks.eval.report import load

    now = time.time() if now is None else now
    return {"stats": fleet_stats(store, now), "series": series(store, now),
            "evals": load(project.state_dir) if project is not None else []}
