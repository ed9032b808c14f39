"""The dashboard's board, read in pages: tasks by column, searched and filtered in SQL, so a board
of 10,000 tasks costs a count and a page per column, never a read of every task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gasworks.models import Task
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase

if TYPE_CHECKING:
    from gasworks.store.board_filter import BoardFilter as BoardFilter

# The board's columns, in order: open tasks split into ready and held back, then by status.
BOARD_COLUMNS = ("ready", "waiting", "in_progress", "merging", "blocked", "closed", "other")
_COLUMN = (f"(CASE WHEN t.status = 'open' THEN (CASE WHEN {sqlrows.READY_WHERE} THEN 'ready' ELSE 'waiting' END) "
           "WHEN t.status IN ('in_progress', 'merging', 'blocked', 'closed') THEN t.status ELSE 'other' END)")


class BoardMixin(StoreBase):
    """Counts by column, a page of one column, and the status of what a page's tasks depend on."""

    def board_counts(self, shown: BoardFilter) -> dict[str, int]:
        where, params = shown.where()
        with self._tx() as db:
            rows = db.execute(f"SELECT {_COLUMN} AS board_column, count(*) FROM tasks t WHERE {where} "
                              "GROUP BY board_column", params).fetchall()
        return {row[0]: row[1] for row in rows}

    def board_page(self, column: str, shown: BoardFilter, *, offset: int, limit: int) -> list[Task]:
        """One page of a column: closed tasks newest first, the others as the queue takes them."""
        where, params = shown.where()
        order = "ORDER BY t.closed_at DESC, t.id" if column == "closed" else sqlrows.READY_ORDER
        with self._tx() as db:
            rows = db.execute(f"SELECT {sqlrows.TASK_COLUMNS} FROM tasks t WHERE {where} AND {_COLUMN} = ? "
                              f"{order} LIMIT ? OFFSET ?", (*params, column, limit, offset)).fetchall()
        return [sqlrows.row_to_task(r) for r in rows]

    def depends_on(self, task_ids: Sequence[str]) -> dict[str, list[tuple[str, str, str]]]:
        """For each task given, what it depends on: [(id, type, that task's status or "")], in order."""
        if not task_ids:
            return {}
        found: dict[str, list[tuple[str, str, str]]] = {task_id: [] for task_id in task_ids}
        with self._tx() as db:
            rows = db.execute(
                "SELECT d.issue_id, d.depends_on_id, d.type, coalesce(b.status, '') FROM dependencies d "
                f"LEFT JOIN tasks b ON b.id = d.depends_on_id WHERE d.issue_id IN ({', '.join('?' * len(task_ids))}) "
                "ORDER BY d.issue_id, d.pos, d.created_at, d.depends_on_id", tuple(task_ids)).fetchall()
        for issue, target, kind, status in rows:
            found[issue].append((target, kind, status))
        return found


def __getattr__(name: str) -> Any:
    """BoardFilter (store/board_filter.py) loads on first use: only the dashboard makes one, and a
    dataclass costs its creation at every start."""
    if name == "BoardFilter":
        from gasworks.store.board_filter import BoardFilter

        globals()[name] = BoardFilter
        return BoardFilter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
