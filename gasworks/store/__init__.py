"""The store: the one place with SQL. `open_store()` picks the backend from a path or URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gasworks.store.roles import (
    AttemptLog,
    Attempts,
    Bulk,
    Claims,
    Dependencies,
    EventLog,
    Locks,
    MergeLog,
    MergeQueue,
    Reviews,
    Store,
    StoreView,
    TaskEditor,
    TaskGraph,
    TaskReader,
    TaskStatus,
    Tracking,
)


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


def open_store(where: str | Path, *, keepalive: float = 30.0) -> Store:
    """A postgresql:// URL opens the PostgreSQL store (see PostgresStore for `keepalive`); anything
    else is a SQLite file path. Only the backend opened is imported."""
    if isinstance(where, str) and is_postgres_url(where):
        from gasworks.store.postgres import PostgresStore

        return PostgresStore(where, keepalive=keepalive)
    from gasworks.store.sqlite import SQLiteStore

    return SQLiteStore(Path(where))


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


__all__ = ["AttemptLog", "Attempts", "Bulk", "Claims", "Dependencies", "EventLog", "ImportResult", "Locks",
           "MergeLog", "MergeQueue", "NewTask", "Reviews", "Store", "StoreView", "TaskEditor", "TaskGraph",
           "TaskReader", "TaskStatus", "Tracking", "open_store"]
