"""What every part of the SQL store relies on: the hooks a backend (sqlite.py, postgres.py) supplies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gasworks.store.tracker import Tracker


class StoreBase:
    """A backend subclass opens the connection and supplies `_tx()`: one transaction, writes
    serialised unless `serial` is False (claims, which PostgreSQL runs side by side with row locks
    instead). The parts (one module per role, put together in sql.py) run their SQL through it, and
    call each other through the hooks declared here: `_transition()` (transitions.py) and
    `_add_dependency()` (dependencies.py)."""

    path: Any
    tracker: Tracker  # where the tasks are kept (see tracker.py)
    _batch: Any = None  # the open transaction of batch(), which every _tx() inside joins

    def close(self) -> None:
        raise NotImplementedError

    @contextmanager
    def _tx(self, write: bool = False, serial: bool = True) -> Iterator[Any]:
        raise NotImplementedError
        yield

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run every store call made inside in this one write transaction: all of them happen, or,
        when one raises, none (a CLI command on several ids). The backends' `_tx()` joins it."""
        with self._tx(write=True) as db:
            self._batch = db
            try:
                yield
            finally:
                self._batch = None

    def _transition(self, db: Any, task_id: str, to_status: str, *, actor: str, expected: str | None = None,
                    reason: str = "", assignee: str | None = None, lease_expires_at: float | None = None,
                    detail: dict[str, Any] | None = None, force: bool = False) -> None:
        """The one way a status changes, inside the caller's transaction (see TaskStatusMixin._transition)."""
        raise NotImplementedError

    def _add_dependency(self, db: Any, issue_id: str, depends_on_id: str, dep_type: str,
                        actor: str, now: str) -> None:
        """Add one edge inside the caller's transaction (see DependenciesMixin._add_dependency)."""
        raise NotImplementedError
