"""What waits on what: adding and removing dependencies, refusing a cycle, keeping `blocked` current."""

from __future__ import annotations

import json
from typing import Any

from gasworks.errors import CycleError, NotFoundError
from gasworks.models import GATING_DEP_TYPES, now_iso
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase


class DependenciesMixin(StoreBase):
    """One edge per pair of tasks; each change refreshes the `blocked` flag of the tasks it reaches."""

    def add_dependency(self, issue_id: str, depends_on_id: str, dep_type: str = "blocks", *, actor: str) -> None:
        with self._tx(write=True) as db:
            sqlrows.load_task(db, issue_id, full=False)
            self._add_dependency(db, issue_id, depends_on_id, dep_type, actor, now_iso())

    def _add_dependency(self, db: Any, issue_id: str, depends_on_id: str, dep_type: str,
                        actor: str, now: str) -> None:
        if issue_id == depends_on_id:
            raise CycleError(f"a task cannot depend on itself ({issue_id})")
        if not depends_on_id.startswith("external:"):
            sqlrows.load_task(db, depends_on_id, full=False)
        if dep_type in GATING_DEP_TYPES:
            path = sqlrows.gating_path(db, depends_on_id, issue_id)
            if path:
                cycle = " -> ".join([issue_id, *path])
                raise CycleError(f"dependency cycle: {cycle} (adding {issue_id} -> {depends_on_id} would close it)")
        replaced = db.execute("SELECT type FROM dependencies WHERE issue_id = ? AND depends_on_id = ?",
                              (issue_id, depends_on_id)).fetchone()
        db.execute(
            "INSERT INTO dependencies (issue_id, depends_on_id, type, created_at, extra, pos) VALUES (?, ?, ?, ?, ?, "
            "(SELECT coalesce(max(pos) + 1, 0) FROM dependencies WHERE issue_id = ?)) "
            "ON CONFLICT (issue_id, depends_on_id) DO UPDATE SET type = excluded.type",
            (issue_id, depends_on_id, dep_type, now, json.dumps({"created_by": actor} if actor else {}), issue_id),
        )
        db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, issue_id))
        seeds = sqlrows.affected_by_edge(db, issue_id, depends_on_id, dep_type)
        if replaced:  # one edge per pair: a new type replaces the old one
            seeds += sqlrows.affected_by_edge(db, issue_id, depends_on_id, replaced[0])
        sqlrows.refresh_blocked(db, seeds)
        sqlrows.insert_event(db, issue_id, "dependency_added", actor, new=depends_on_id,
                             detail={"type": dep_type}, at=now)
        self.tracker.dependency(db, issue_id, depends_on_id, dep_type, actor=actor)

    def remove_dependency(self, issue_id: str, depends_on_id: str, *, actor: str) -> None:
        now = now_iso()
        with self._tx(write=True) as db:
            self.tracker.dependency(db, issue_id, depends_on_id, None, actor=actor)
            gone = db.execute("SELECT type FROM dependencies WHERE issue_id = ? AND depends_on_id = ?",
                              (issue_id, depends_on_id)).fetchone()
            if not gone:
                raise NotFoundError(f"{issue_id} does not depend on {depends_on_id}")
            db.execute("DELETE FROM dependencies WHERE issue_id = ? AND depends_on_id = ?", (issue_id, depends_on_id))
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, issue_id))
            sqlrows.refresh_blocked(db, sqlrows.affected_by_edge(db, issue_id, depends_on_id, gone[0]))
            sqlrows.insert_event(db, issue_id, "dependency_removed", actor, old=depends_on_id, at=now)
