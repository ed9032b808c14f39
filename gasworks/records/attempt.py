"""An attempt: one run of an agent on a task."""

from __future__ import annotations

from dataclasses import dataclass, field


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
