"""What the dashboard's board shows, as the WHERE clause of its queries (see board.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gasworks.store.board import _COLUMN
from gasworks.store.queries import _like


@dataclass(frozen=True)
class BoardFilter:
    """What the board shows: tasks whose id, title or description holds `text` (ignoring case), in
    `column` (one of BOARD_COLUMNS), carrying `label`, assigned to `assignee`, of `priority`."""

    text: str = ""
    column: str = ""
    label: str = ""
    assignee: str = ""
    priority: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if self.text:
            where.append("(lower(t.id) LIKE ? ESCAPE '!' OR lower(t.title) LIKE ? ESCAPE '!' "
                         "OR lower(t.description) LIKE ? ESCAPE '!')")
            params += [_like(self.text)] * 3
        if self.column:
            where.append(f"{_COLUMN} = ?")
            params.append(self.column)
        if self.label:
            where.append("EXISTS (SELECT 1 FROM labels l WHERE l.task_id = t.id AND l.label = ?)")
            params.append(self.label)
        if self.assignee:
            where.append("t.assignee = ?")
            params.append(self.assignee)
        if self.priority is not None:
            where.append("t.priority = ?")
            params.append(self.priority)
        return " AND ".join(where), params
