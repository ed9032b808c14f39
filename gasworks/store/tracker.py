"""Where the tasks are kept: in the SQL store's own rows, or in an outside tracker the rows copy
(which one a repository uses: `resolve_tracker`).

The SQL store (sql.py) is given a Tracker and tells it of every change to a task, inside the write
transaction that records the change (`db`) and after its own checks: a tracker that refuses
raises, and the transaction rolls back with nothing changed here. The base class is the store
keeping its own tasks, so each method does nothing; BeadsTracker (beads_cli.py) makes each change
in bd too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gasworks.errors import ConfigError

if TYPE_CHECKING:  # store/__init__.py imports sql.py, which imports this module
    from gasworks.models import Task
    from gasworks.store import NewTask


class Tracker:
    """The tasks are the store's own rows: nothing to tell anyone."""

    def create(self, db: Any, new: NewTask, parent: str, deps: list[tuple[str, str]], actor: str) -> str | None:
        """Make the task in the tracker and its row here (`parent` and `deps` are ids); its id, or
        None when the store makes the task itself."""
        return None

    def status(self, db: Any, current: Task, to_status: str, *, actor: str, reason: str, force: bool,
               claimer: str | None) -> None:
        """`current` (the row before the change) went to `to_status`; with `claimer`, as a claim."""

    def update(self, db: Any, task_id: str, *, actor: str, fields: dict[str, Any] | None = None,
               add_labels: Sequence[str] = (), remove_labels: Sequence[str] = (), note: str = "") -> None:
        """Fields set, labels added or removed, a note appended to the task's notes."""

    def comment(self, db: Any, task_id: str, text: str, *, author: str) -> None:
        """A comment added."""

    def dependency(self, db: Any, issue_id: str, depends_on_id: str, dep_type: str | None, *, actor: str) -> None:
        """An edge added (of `dep_type`), or removed (None; told before the store looks for it)."""


OWN_ROWS = Tracker()


def find_bd(bd_cmd: Sequence[str]) -> str | None:
    """The bd program's path, or None when it is not installed."""
    program = bd_cmd[0] if bd_cmd else ""
    if not program:
        return None
    if os.sep in program or (os.altsep and os.altsep in program):
        return program if os.access(program, os.X_OK) else None
    import shutil  # here: the quick commands never load it without bd

    return shutil.which(program)


def resolve_tracker(root: Path, tracker: str, bd_cmd: Sequence[str], store: str) -> str:
    """Where tasks live, "beads" or "gasworks": auto picks bd when the repository has .beads/ and bd is
    installed (and no shared `store` is configured)."""
    if tracker == "gasworks":
        return "gasworks"
    if tracker == "beads":
        if store:
            raise ConfigError(f"tracker = \"beads\" keeps tasks in bd, which cannot be combined with store = "
                              f"{store.split('@')[-1]!r}: remove one of them")
        return "beads"
    return "beads" if not store and (root / ".beads").is_dir() and find_bd(bd_cmd) else "gasworks"
