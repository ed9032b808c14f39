"""Making tasks and changing what they say (never their status): create, edit, label, comment,
and agents' suggestions, which become tasks."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gasworks import ids
from gasworks.errors import InvalidValueError
from gasworks.models import Comment, Status, Task, now_iso
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase

if TYPE_CHECKING:
    from gasworks.store.values import NewTask

_EDITABLE = ("title", "description", "design", "acceptance_criteria", "notes", "priority", "issue_type", "assignee")


class TaskEditorMixin(StoreBase):
    """New tasks (with their parent, labels and dependencies, told to the tracker) and edits to them."""

    def create_task(self, new: NewTask, *, prefix: str, actor: str) -> Task:
        return self.create_tasks([new], prefix=prefix, actor=actor)[0]

    def create_tasks(self, news: list[NewTask], *, prefix: str, actor: str) -> list[Task]:
        """Create several tasks in one transaction (all or none). In `parent` and `deps`, "#N" names the
        N-th task of this batch, so a plan's epic, children and their dependencies go in together."""
        ids.check_prefix(prefix)
        if any(not new.title.strip() for new in news):
            raise InvalidValueError("a task needs a non-empty title")
        with self._tx(write=True) as db:
            made: list[str] = []

            def resolve(ref: str) -> str:
                return made[int(ref[1:])] if ref.startswith("#") else ref

            for new in news:
                made.append(self._create(db, new, resolve, prefix, actor))
            return [sqlrows.load_task(db, task_id) for task_id in made]

    def _create(self, db: Any, new: NewTask, resolve: Any, prefix: str, actor: str) -> str:
        parent_id = resolve(new.parent) if new.parent else ""
        deps = [(resolve(target), dep_type) for target, dep_type in new.deps]
        made = self.tracker.create(db, new, parent_id, deps, actor)
        if made is not None:
            return made
        now = now_iso()
        labels = list(new.labels)
        if parent_id:
            parent = sqlrows.load_task(db, parent_id, full=False)
            task_id = sqlrows.next_child_id(db, parent.id)
            labels = parent.labels + [label for label in labels if label not in parent.labels]
        else:
            task_id = sqlrows.new_id(db, prefix, f"{new.title}|{new.description}|{actor}|{time.time_ns()}")
        db.execute(
            "INSERT INTO tasks (id, title, description, design, acceptance_criteria, notes, status, priority, "
            "issue_type, assignee, created_at, created_ts, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)",
            (task_id, new.title, new.description, new.design, new.acceptance_criteria, new.notes,
             new.priority, new.issue_type, new.assignee, now, sqlrows.epoch(now), now),
        )
        db.executemany("INSERT INTO labels VALUES (?, ?) ON CONFLICT DO NOTHING", [(task_id, lb) for lb in labels])
        sqlrows.insert_event(db, task_id, "created", actor, new=Status.OPEN, at=now)
        if parent_id:
            self._add_dependency(db, task_id, parent_id, "parent-child", actor, now)
        for target, dep_type in deps:
            self._add_dependency(db, task_id, target, dep_type, actor, now)
        return task_id

    def add_suggestions(self, titles: list[str], *, source: str | None, prefix: str, actor: str,
                        max_per_task: int, backlog_cap: int, priority: int = 3) -> tuple[list[str], dict[str, int]]:
        """Follow-up ideas become tasks labelled `suggested`, linked discovered-from their source, in one
        transaction. Ideas that repeat an open task, or pass the caps, are dropped and counted."""
        from gasworks.ingest import normalise_title

        dropped = {"already_open": 0, "over_task_cap": 0, "over_backlog_cap": 0}
        with self._tx(write=True) as db:
            if source:
                sqlrows.load_task(db, source, full=False)
            open_titles = {normalise_title(r[0])
                           for r in db.execute("SELECT title FROM tasks WHERE status != 'closed'")}
            backlog = db.execute("SELECT count(*) FROM tasks t JOIN labels l ON l.task_id = t.id "
                                 "WHERE l.label = 'suggested' AND t.status != 'closed'").fetchone()[0]
            from gasworks.store.values import NewTask  # here: it loads on first use (see store/__init__.py)

            made: list[str] = []
            for title in titles:
                if normalise_title(title) in open_titles:
                    dropped["already_open"] += 1
                elif len(made) >= max_per_task:
                    dropped["over_task_cap"] += 1
                elif backlog + len(made) >= backlog_cap:
                    dropped["over_backlog_cap"] += 1
                else:
                    deps = [(source, "discovered-from")] if source else []
                    made.append(self._create(db, NewTask(title, priority=priority, labels=["suggested"], deps=deps),
                                             lambda ref: ref, prefix, actor))
                    open_titles.add(normalise_title(title))
            return made, dropped

    def update_fields(self, task_id: str, *, actor: str, **changes: Any) -> Task:
        unknown = set(changes) - set(_EDITABLE)
        if unknown:
            raise InvalidValueError(f"cannot update {', '.join(sorted(unknown))}: editable are {', '.join(_EDITABLE)}")
        if "title" in changes and not str(changes["title"]).strip():
            raise InvalidValueError("a task needs a non-empty title")
        now = now_iso()
        with self._tx(write=True) as db:
            sqlrows.load_task(db, task_id, full=False)
            if changes:
                self.tracker.update(db, task_id, actor=actor, fields=changes)
                assignments = ", ".join(f"{name} = ?" for name in changes)
                db.execute(f"UPDATE tasks SET {assignments}, updated_at = ? WHERE id = ?",
                           (*changes.values(), now, task_id))
                sqlrows.insert_event(db, task_id, "updated", actor, detail={"fields": sorted(changes)}, at=now)
            return sqlrows.load_task(db, task_id)

    def change_labels(self, task_id: str, *, actor: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Task:
        now = now_iso()
        with self._tx(write=True) as db:
            sqlrows.load_task(db, task_id, full=False)
            if add or remove:
                self.tracker.update(db, task_id, actor=actor, add_labels=add, remove_labels=remove)
            db.executemany("INSERT INTO labels VALUES (?, ?) ON CONFLICT DO NOTHING", [(task_id, lb) for lb in add])
            db.executemany("DELETE FROM labels WHERE task_id = ? AND label = ?", [(task_id, lb) for lb in remove])
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
            sqlrows.insert_event(db, task_id, "labels", actor, at=now,
                                 detail={"added": list(add), "removed": list(remove)})
            return sqlrows.load_task(db, task_id)

    def add_comment(self, task_id: str, text: str, *, author: str) -> Comment:
        now = now_iso()
        with self._tx(write=True) as db:
            sqlrows.load_task(db, task_id, full=False)
            self.tracker.comment(db, task_id, text, author=author)
            seq = db.execute("INSERT INTO comments (id, task_id, author, text, created_at) VALUES ('', ?, ?, ?, ?) "
                             "RETURNING seq", (task_id, author, text, now)).fetchone()[0]
            db.execute("UPDATE comments SET id = ? WHERE seq = ?", (json.dumps(seq), seq))
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
            sqlrows.insert_event(db, task_id, "comment", author, at=now)
        return Comment(seq, task_id, author, text, now)
