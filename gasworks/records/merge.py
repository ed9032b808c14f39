"""A merge: a finished branch in the merge queue."""

from __future__ import annotations

from dataclasses import dataclass


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
