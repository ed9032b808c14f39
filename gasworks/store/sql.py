"""The store's logic, written once in SQL that both backends run (see sqlite.py and postgres.py).

SQLStore puts it together from one part per role (see roles.py), each in its own module: editing
(TaskEditor), dependencies (Dependencies), transitions (TaskStatus), claims (Claims), queries
(reading), attempts, merges, locks and import_export.
"""

from __future__ import annotations

from gasworks.store import Store
from gasworks.store.attempts import AttemptsMixin
from gasworks.store.board import BoardMixin
from gasworks.store.claims import ClaimsMixin
from gasworks.store.dependencies import DependenciesMixin
from gasworks.store.editing import TaskEditorMixin
from gasworks.store.import_export import ImportExportMixin
from gasworks.store.locks import LocksMixin
from gasworks.store.merges import MergeQueueMixin
from gasworks.store.queries import QueriesMixin
from gasworks.store.tracker import OWN_ROWS, Tracker
from gasworks.store.transitions import TaskStatusMixin


class SQLStore(QueriesMixin, TaskEditorMixin, DependenciesMixin, TaskStatusMixin, ClaimsMixin, AttemptsMixin,
               MergeQueueMixin, LocksMixin, ImportExportMixin, BoardMixin, Store):
    """The store's logic in SQL that SQLite and PostgreSQL both run. A backend subclass opens the
    connection and supplies `_tx()` (see StoreBase). It inherits Tracking's no-op bodies."""

    # Where the tasks are kept: here (OWN_ROWS), or in bd (BeadsStore); told of every change to one.
    tracker: Tracker = OWN_ROWS
