"""Reading tasks, their dependencies and events, and counting them: no writes."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from gasworks.errors import AmbiguousIdError, NotFoundError
from gasworks.ids import id_prefix
from gasworks.models import BLOCKING_DEP_TYPES, Dependency, Task
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase

if TYPE_CHECKING:
    from gasworks.records import Event

NO_LIMIT = 2 ** 62  # LIMIT for "all rows", in SQL both backends take


def _like(part: str) -> str:
    """A LIKE pattern (ESCAPE '!') matching `part` anywhere, lower-cased as the column is."""
    escaped = part.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


class QueriesMixin(StoreBase):
    """Tasks as the queue sees them: one, the ready ones, a filtered list, what waits on what."""

    def get_task(self, task_id: str) -> Task:
        with self._tx() as db:
            return sqlrows.load_task(db, task_id)

    def claims(self, task_ids: list[str]) -> dict[str, str]:
        """Who holds each of these tasks now, for those still in progress: id -> assignee."""
        if not task_ids:
            return {}
        with self._tx() as db:
            rows = db.execute(f"SELECT id, assignee FROM tasks WHERE status = 'in_progress' AND id IN "
                              f"({', '.join('?' * len(task_ids))})", tuple(task_ids)).fetchall()
        return {row[0]: row[1] for row in rows}

    def resolve_id(self, text: str) -> str:
        """An exact id, or a unique prefix of one (as `bd` accepts partial ids)."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM tasks WHERE id = ?", (text,)).fetchone():
                return text
            rows = db.execute(
                "SELECT id FROM tasks WHERE id > ? AND id < ? ORDER BY id LIMIT 6", (text, text + "\U0010ffff")
            ).fetchall()
        if not rows:
            raise NotFoundError(f"no task {text!r}")
        if len(rows) > 1:
            shown = ", ".join(r[0] for r in rows[:5])
            raise AmbiguousIdError(f"{text!r} matches several tasks ({shown}{', ...' if len(rows) > 5 else ''})")
        return rows[0][0]

    def ready(self, limit: int | None = None) -> list[Task]:
        """Open work nobody waits on, by priority then age (oldest first)."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {sqlrows.TASK_COLUMNS} FROM tasks t WHERE {sqlrows.READY_WHERE} {sqlrows.READY_ORDER} LIMIT ?",
                (NO_LIMIT if limit is None else limit,),
            ).fetchall()
        return [sqlrows.row_to_task(r) for r in rows]

    def is_blocked(self, task_id: str) -> bool:
        with self._tx() as db:
            row = db.execute("SELECT blocked FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no task {task_id!r}")
        return bool(row[0])

    def blockers(self, task_id: str) -> list[str]:
        """Unfinished tasks this one waits on directly (for messages and `show`)."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT d.depends_on_id FROM dependencies d JOIN tasks b ON b.id = d.depends_on_id "
                f"WHERE d.issue_id = ? AND d.type IN ({sqlrows.sql_list(BLOCKING_DEP_TYPES)}) "
                f"AND b.status NOT IN ({sqlrows.DONE}) ORDER BY d.depends_on_id",
                (task_id,),
            ).fetchall()
        return [r[0] for r in rows]

    def list_tasks(self, statuses: list[str] | None = None, labels: list[str] | None = None,
                   issue_type: str | None = None, assignee: str | None = None,
                   limit: int | None = None, include_closed: bool = True, *, priority: int | None = None,
                   title: str | None = None, description: str | None = None, text: str | None = None,
                   blocked: bool = False) -> list[Task]:
        """Tasks matching every filter given. `title`, `description` and `text` (id, title or
        description) match a part, ignoring case; `blocked`: held back by unfinished work."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if not include_closed:
            where.append("t.status != 'closed'")
        if statuses:
            where.append(f"t.status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        for label in labels or []:
            where.append("EXISTS (SELECT 1 FROM labels l WHERE l.task_id = t.id AND l.label = ?)")
            params.append(label)
        for column, value in (("t.issue_type", issue_type), ("t.assignee", assignee), ("t.priority", priority)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        for columns, part in ((("t.title",), title), (("t.description",), description),
                              (("t.id", "t.title", "t.description"), text)):
            if part:
                where.append("(" + " OR ".join(f"lower({c}) LIKE ? ESCAPE '!'" for c in columns) + ")")
                params += [_like(part)] * len(columns)
        if blocked:
            where.append(f"t.blocked = 1 AND t.status NOT IN ({sqlrows.DONE})")
        params.append(NO_LIMIT if limit is None else limit)
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {sqlrows.TASK_COLUMNS} FROM tasks t WHERE {' AND '.join(where)} {sqlrows.READY_ORDER} "
                "LIMIT ?", params
            ).fetchall()
        return [sqlrows.row_to_task(r) for r in rows]

    def blocked_with_reasons(self, limit: int) -> tuple[list[tuple[Task, str]], int]:
        """Up to `limit` blocked tasks (by priority, then age), each with the reason given when it last
        became blocked ("" if none), and how many tasks are blocked in all: one read, however many."""
        reason_sql = ("(SELECT e.detail FROM events e WHERE e.task_id = t.id AND e.kind = 'status' "
                      "AND e.new_value = 'blocked' ORDER BY e.id DESC LIMIT 1)")
        with self._tx() as db:
            rows = db.execute(f"SELECT {sqlrows.TASK_COLUMNS}, {reason_sql} AS reason FROM tasks t "
                              f"WHERE t.status = 'blocked' {sqlrows.READY_ORDER} LIMIT ?", (limit,)).fetchall()
            total = db.execute("SELECT count(*) FROM tasks WHERE status = 'blocked'").fetchone()[0]
        return [(sqlrows.row_to_task(r), str(json.loads(r["reason"] or "{}").get("reason", ""))) for r in rows], total

    def waiting(self, limit: int) -> tuple[list[Task], int]:
        """Up to `limit` open tasks held back by unfinished work (or deferred), and how many in all."""
        with self._tx() as db:
            rows = db.execute(f"SELECT {sqlrows.TASK_COLUMNS} FROM tasks t WHERE {sqlrows.WAITING_WHERE} "
                              f"{sqlrows.READY_ORDER} LIMIT ?", (limit,)).fetchall()
            total = db.execute(f"SELECT count(*) FROM tasks t WHERE {sqlrows.WAITING_WHERE}").fetchone()[0]
        return [sqlrows.row_to_task(r) for r in rows], total

    def label_counts(self) -> dict[str, int]:
        """Every label in use, with how many tasks carry it, by name."""
        with self._tx() as db:
            rows = db.execute("SELECT label, count(*) FROM labels GROUP BY label ORDER BY label").fetchall()
        return {r[0]: r[1] for r in rows}

    def common_prefix(self, newest: int = 1000) -> str | None:
        """The id prefix most of the `newest` tasks carry, as bd reads one (ids.id_prefix), None with
        no tasks; a tie goes to the prefix first in order. (The newest, so that a store of 20,000
        tasks answers in a few milliseconds, and a renamed prefix wins once it is in use.)"""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM tasks ORDER BY created_ts DESC, id LIMIT ?", (newest,))]
        counts = Counter(map(id_prefix, ids))
        counts.pop("", None)
        return min(counts, key=lambda prefix: (-counts[prefix], prefix)) if counts else None

    def dependents(self, task_id: str) -> list[Dependency]:
        with self._tx() as db:
            return [sqlrows.dependency_from_row(r) for r in db.execute(
                "SELECT * FROM dependencies WHERE depends_on_id = ? ORDER BY issue_id", (task_id,))]

    def dependency_tree(self, task_id: str, max_depth: int = 20) -> dict[str, Any]:
        """What a task waits on, recursively: {id, title, status, type, children, repeated}."""
        with self._tx() as db:
            return sqlrows.dependency_tree(db, task_id, max_depth)

    def events(self, task_id: str | None = None, limit: int = 100) -> list[Event]:
        from gasworks.records import Event  # here: records load on first use (see models.py)

        sql = "SELECT * FROM events" + (" WHERE task_id = ?" if task_id else "") + " ORDER BY id DESC LIMIT ?"
        params = (task_id, limit) if task_id else (limit,)
        with self._tx() as db:
            rows = db.execute(sql, params).fetchall()
        return [
            Event(r["id"], r["task_id"], r["kind"], r["actor"], r["old_value"], r["new_value"],
                  json.loads(r["detail"]), r["created_at"])
            for r in reversed(rows)
        ]

    def event_count(self, kind: str) -> int:
        with self._tx() as db:
            return db.execute("SELECT count(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]

    def closed_times(self, since: str = "") -> list[str]:
        """When the closed tasks were closed (closed_at as stored, RFC 3339), those at or after `since`
        compared as text (a date, "2026-01-31", is safe whatever offset a time carries): one column,
        cheap to read every second."""
        with self._tx() as db:
            rows = db.execute("SELECT closed_at FROM tasks WHERE status = 'closed' AND closed_at != '' AND "
                              "closed_at >= ?", (since,)).fetchall()
        return [row[0] for row in rows]

    def counts(self) -> dict[str, int]:
        """Tasks by status, plus `ready` (open, free to start) and `waiting` (open work held back)."""
        with self._tx() as db:
            rows = db.execute("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status").fetchall()
            ready = db.execute(f"SELECT count(*) FROM tasks t WHERE {sqlrows.READY_WHERE}").fetchone()[0]
            waiting = db.execute(f"SELECT count(*) FROM tasks t WHERE {sqlrows.WAITING_WHERE}").fetchone()[0]
        return {**{r[0]: r[1] for r in rows}, "ready": ready, "waiting": waiting}
