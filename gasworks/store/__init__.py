"""The store: the one place with SQL. `open_store()` picks the backend from a path or URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from gasworks.store.values import ImportResult as ImportResult
    from gasworks.store.values import NewTask as NewTask


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


def __getattr__(name: str) -> Any:
    """NewTask and ImportResult (store/values.py) load on first use: only `create` and `import` make
    one, and a dataclass costs its creation at every start."""
    if name in ("ImportResult", "NewTask"):
        from gasworks.store import values

        value = globals()[name] = getattr(values, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AttemptLog", "Attempts", "Bulk", "Claims", "Dependencies", "EventLog", "ImportResult", "Locks",
           "MergeLog", "MergeQueue", "NewTask", "Reviews", "Store", "StoreView", "TaskEditor", "TaskGraph",
           "TaskReader", "TaskStatus", "Tracking", "open_store"]
