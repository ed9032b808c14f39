"""Tasks in and out of the store in bulk: import (upsert, all or nothing) and export."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gasworks.beads import COUNT_KEYS
from gasworks.models import (
    BLOCKING_DEP_TYPES,
    Comment,
    Dependency,
    Status,
    Task,
    iso_from_micros,
    now_iso,
)
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase

if TYPE_CHECKING:
    from gasworks.store.values import ImportResult


class _DryRun(Exception):
    """Raised inside a transaction to roll it back on purpose."""


class ImportExportMixin(StoreBase):
    """Whole tasks, with labels, dependencies and comments, as files carry them."""

    def import_tasks(self, tasks: list[Task], *, prefix: str, actor: str, dry_run: bool = False,
                     memories: dict[str, str] | None = None) -> ImportResult:
        """Upsert by id, newer updated_at wins (ties keep ours); all or nothing. Memories (Beads'
        key/value notes) are set from the file.

        Tasks without an id (markdown, task_queue.json) are skipped when a task with the same
        title and description exists, so importing the same file twice adds nothing. Edges Beads
        would not store are left out with a warning: a second edge to the same target, and a
        blocks edge that closes a cycle of blocks edges.
        """
        from gasworks.store.values import ImportResult  # here: it loads on first use (see store/__init__.py)

        result = ImportResult()
        now = now_iso()
        try:
            with self._tx(write=True) as db:
                self._import(db, tasks, result, prefix=prefix, actor=actor, now=now)
                for key, value in (memories or {}).items():
                    db.execute("INSERT INTO memories (key, value) VALUES (?, ?) "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))
                    result.memories += 1
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return result

    def _import(self, db: Any, tasks: list[Task], result: ImportResult, *, prefix: str,
                actor: str, now: str) -> None:
        start = time.time_ns() // 1000  # whole microseconds: a float epoch cannot tell 1 µs apart
        present = self._give_ids(db, tasks, prefix, actor)
        written = []
        for index, task in enumerate(tasks):
            if index in present:
                result.skipped += 1
                continue
            # A microsecond apart, so tasks from one file keep the file's order when sorted by age.
            task.created_at = task.created_at or iso_from_micros(start + index)
            task.updated_at = task.updated_at or task.created_at
            if task.status == Status.CLOSED and not task.closed_at:
                task.closed_at = task.updated_at
            old = db.execute("SELECT status, updated_at FROM tasks WHERE id = ?", (task.id,)).fetchone()
            if old is not None and sqlrows.epoch(task.updated_at) <= sqlrows.epoch(old["updated_at"]):
                result.skipped += 1
                continue
            written.append((task, old["status"] if old else None))
        graph = sqlrows.blocking_graph(db, {task.id for task, _ in written})
        for task, old_status in written:
            task.dependencies = _edges_beads_keeps(task, graph, result.warnings)
            sqlrows.upsert_task(db, task)
            sqlrows.insert_event(db, task.id, "imported", actor, old_status or "", task.status, at=now)
            result.ids.append(task.id)
            if old_status is None:
                result.created += 1
            else:
                result.updated += 1
        if result.ids:
            sqlrows.refresh_all_blocked(db)

    @staticmethod
    def _give_ids(db: Any, tasks: list[Task], prefix: str, actor: str) -> set[int]:
        """Ids for tasks that come without one (markdown, task_queue.json); one that repeats a task
        already here (same title and description) takes that task's id and is left alone (the
        returned positions). Then "#N" in a dependency, the N-th task of the file, becomes its id."""
        present: set[int] = set()
        given: set[str] = set()
        for index, task in enumerate(tasks):
            if task.id:
                continue
            row = db.execute("SELECT id FROM tasks WHERE title = ? AND description = ?",
                             (task.title, task.description)).fetchone()
            if row:
                task.id = row[0]
                present.add(index)
            else:
                task.id = sqlrows.new_id(db, prefix, f"{task.title}|{task.description}|{actor}|{time.time_ns()}",
                                         given)
                given.add(task.id)
        for task in tasks:
            for dep in task.dependencies:
                if dep.depends_on_id.startswith("#"):
                    dep.depends_on_id = tasks[int(dep.depends_on_id[1:])].id
                dep.issue_id = dep.issue_id or task.id
        return present

    def export_tasks(self) -> Iterator[Task]:
        """Every task with its labels, dependencies and comments, ordered by id. Tasks that came
        with bd's counts get them afresh (bd counts blocks edges only)."""
        with self._tx() as db:
            deps: dict[str, list[Dependency]] = {}
            dependents: Counter[str] = Counter()
            for r in db.execute(f"SELECT * FROM dependencies ORDER BY issue_id, {sqlrows.DEPENDENCY_ORDER}"):
                deps.setdefault(r["issue_id"], []).append(sqlrows.dependency_from_row(r))
                dependents[r["depends_on_id"]] += r["type"] == "blocks"
            comments: dict[str, list[Comment]] = {}
            for r in db.execute("SELECT * FROM comments ORDER BY task_id, seq"):
                comments.setdefault(r["task_id"], []).append(sqlrows.comment_from_row(r))
            rows = db.execute(f"SELECT {sqlrows.TASK_COLUMNS} FROM tasks t ORDER BY t.id").fetchall()
        for row in rows:
            task = sqlrows.row_to_task(row)
            task.dependencies = deps.get(task.id, [])
            task.comments = comments.get(task.id, [])
            if any(key in task.extra for key in COUNT_KEYS):
                counts = (sum(d.type == "blocks" for d in task.dependencies), dependents[task.id], len(task.comments))
                task.extra.update(zip(COUNT_KEYS, counts))
            yield task

    def memories(self) -> dict[str, str]:
        """Beads' memories, by key."""
        with self._tx() as db:
            return {r[0]: r[1] for r in db.execute("SELECT key, value FROM memories ORDER BY key")}


def _edges_beads_keeps(task: Task, graph: dict[str, set[str]], warnings: list[str]) -> list[Dependency]:
    """A task's edges as Beads stores them, in file order: the first edge to each target (one edge
    per pair), no edge to itself, and no blocks edge that closes a cycle of blocks edges (`graph`,
    which gains the edges kept). The others are left out with a warning, as `bd import` does."""
    kept, targets = [], set()
    for dep in task.dependencies:
        edge = f"{task.id} -> {dep.depends_on_id} ({dep.type})"
        if dep.depends_on_id in targets:
            warnings.append(f"skipped dependency {edge}: {task.id} already has an edge to {dep.depends_on_id}")
            continue
        if dep.depends_on_id == task.id:
            warnings.append(f"skipped dependency {edge}: a task cannot depend on itself")
            continue
        if dep.type in BLOCKING_DEP_TYPES:
            if sqlrows.reaches(graph, dep.depends_on_id, task.id):
                warnings.append(f"skipped dependency {edge}: it would close a cycle of blocking edges")
                continue
            graph.setdefault(task.id, set()).add(dep.depends_on_id)
        targets.add(dep.depends_on_id)
        kept.append(dep)
    return kept
