"""The store: the one place with SQL. `open_store()` picks the backend from a path or URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gasworks.models import Event, Task

if TYPE_CHECKING:  # the backends import this module; only the type checker needs them here
    from gasworks.store.sql import SQLStore


@dataclass(slots=True)
class NewTask:
    """What `create` needs; everything else is filled in by the store."""

    title: str
    description: str = ""
    design: str = ""
    acceptance_criteria: str = ""
    notes: str = ""
    priority: int = 2
    issue_type: str = "task"
    assignee: str = ""
    labels: list[str] = field(default_factory=list)
    parent: str = ""
    deps: list[tuple[str, str]] = field(default_factory=list)  # (depends_on_id, type)


@dataclass(slots=True)
class ImportResult:
    """What an import did: how many tasks it created, updated and skipped, and their ids."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    ids: list[str] = field(default_factory=list)
    memories: int = 0
    warnings: list[str] = field(default_factory=list)  # edges left out, as Beads leaves them out


class Store(Protocol):
    """The seam between gasworks and its durable state: SQLiteStore and PostgresStore."""

    def create_task(self, new: NewTask, *, prefix: str, actor: str) -> Task: ...

    def get_task(self, task_id: str) -> Task: ...

    def ready(self, limit: int | None = None) -> list[Task]: ...

    def claim_next(self, assignee: str, *, lease_seconds: float, now: float) -> Task | None: ...

    def transition(self, task_id: str, to_status: str, *, actor: str, expected: str | None = None,
                   reason: str = "") -> Task: ...

    def events(self, task_id: str | None = None, limit: int = 100) -> list[Event]: ...


def open_store(where: str | Path, *, keepalive: float = 30.0) -> SQLStore:
    """A postgresql:// URL opens the PostgreSQL store (see PostgresStore for `keepalive`); anything
    else is a SQLite file path. Only the backend opened is imported."""
    if isinstance(where, str) and is_postgres_url(where):
        from gasworks.store.postgres import PostgresStore

        return PostgresStore(where, keepalive=keepalive)
    from gasworks.store.sqlite import SQLiteStore

    return SQLiteStore(Path(where))


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


__all__ = ["ImportResult", "NewTask", "Store", "open_store"]
