"""The records of what happened to tasks: events (every change), attempts (every run of an agent)
and merges (every branch in the merge queue). Each is one row of the store; `gasworks.models` gives
them too (loading this module on first use, so the quick commands never pay for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Event:
    """One change to a task (its status, a field, a label, a dependency), written with the change."""

    id: int
    task_id: str
    kind: str
    actor: str
    old_value: str
    new_value: str
    detail: dict[str, Any]
    created_at: str


@dataclass(slots=True)
class Attempt:
    """One run of an agent on a task: where and when it ran, and how it ended."""

    id: int
    task_id: str
    slot: str
    started_at: str
    ended_at: str = ""
    exit_code: int | None = None
    outcome: str = ""
    log_path: str = ""
    branch: str = ""
    base_commit: str = ""
    commits: list[str] = field(default_factory=list)
    note: str = ""
    pid: int | None = None
    pid_started: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    number: int = 0  # 1 for the task's first attempt, 2 for its second...: what users see; `id` is global


@dataclass(slots=True)
class Merge:
    """A finished branch in the merge queue, and what became of it."""

    id: int
    task_id: str
    branch: str
    head: str
    status: str
    queued_at: str
    started_at: str = ""
    ended_at: str = ""
    trial: str = ""
    gate_runs: int = 0
    gate_seconds: float = 0.0
    batch_size: int = 0
    landed_commit: str = ""
    conflict_task: str = ""
    note: str = ""
