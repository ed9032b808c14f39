"""An event: one change to a task, written in the transaction that makes the change."""

from __future__ import annotations

from dataclasses import dataclass
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
