"""The local copy of bd's issues in the SQLite mirror, and when to read bd again.

`bd ready --json` says what is ready, at most once a second; open tasks of the mirror it no longer
lists are looked up with `bd show --json`, and so is a task that is read when its copy is over a
second old. A record from bd replaces the copy only when its `updated_at` is newer (ties keep the
copy), so a stale read never undoes a claim made meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from gasworks.errors import AmbiguousIdError, NotFoundError, TrackerError
from gasworks.models import Dependency, Status, Task
from gasworks.store import NewTask
from gasworks.store import rows as sqlrows
from gasworks.store.bd import BdCli
from gasworks.store.beads_records import claimer_or, records, stamped, task_from_bd

REFRESH_SECONDS = 1.0
_NEVER = float("-inf")


class BeadsMirror:
    """Reads bd into the mirror through the store's transactions. A bd call and the mirror writes
    that follow it hold the store's lock together, so another thread never sees half of it."""

    def __init__(self, bd: BdCli, tx: Callable[..., AbstractContextManager[Any]], lock: threading.RLock) -> None:
        self.bd = bd
        self._tx = tx
        self._lock = lock
        self._refreshed = _NEVER  # when `bd ready` was last read
        self._seen: dict[str, float] = {}  # when each task was last read with `bd show`

    def expire(self) -> None:
        """What bd holds ready may have changed (a close, a status, an edge): ask it at the next read."""
        self._refreshed = _NEVER

    def refresh(self, force: bool = False) -> None:
        """Mirror `bd ready`: what it lists is ready here; open tasks it does not list are looked up
        with `bd show` and, while still open, held back. At most once a second unless forced."""
        with self._lock:
            if not force and time.monotonic() - self._refreshed < REFRESH_SECONDS:
                return
            found = records(self.bd.run(["ready"], ["--limit=0"]), "bd ready")
            ready = {record["id"] for record in found}
            with self._tx(write=True) as db:
                self._take_all(db, found)
                stale = [r[0] for r in db.execute("SELECT id FROM tasks WHERE status = 'open'") if r[0] not in ready]
            if stale:
                self.show(stale)
            with self._tx(write=True) as db:
                db.executemany("UPDATE tasks SET blocked = ? WHERE id = ? AND status = 'open'",
                               [(int(r[0] not in ready), r[0])
                                for r in db.execute("SELECT id FROM tasks WHERE status = 'open'").fetchall()])
            self._refreshed = time.monotonic()

    def show(self, ids: list[str]) -> list[dict[str, Any]]:
        """`bd show IDS` into the mirror; ids bd does not know are left as they are."""
        with self._lock:
            try:
                found = records(self.bd.run(["show"], [], ids), "bd show")
            except TrackerError as exc:
                if not _not_found(exc):
                    raise
                if len(ids) > 1:  # one of them is gone: the others one by one
                    return [record for one in ids for record in self.show([one])]
                found = []
            with self._tx(write=True) as db:
                self._take_all(db, found)
            self._seen.update(dict.fromkeys(ids, time.monotonic()))
            return found

    def show_if_stale(self, task_id: str) -> None:
        if time.monotonic() - self._seen.get(task_id, _NEVER) >= REFRESH_SECONDS:
            self.show([task_id])

    def resolve(self, text: str) -> str:
        """Whatever bd resolves (it takes partial ids too), looked up now."""
        with self._lock:
            try:
                found = records(self.bd.run(["show"], [], [text]), "bd show")
            except TrackerError as exc:
                message = str(exc).lower()
                if _not_found(exc):
                    raise NotFoundError(f"no task {text!r} in bd") from None
                if "ambiguous" in message or "multiple" in message:
                    raise AmbiguousIdError(str(exc)) from None
                raise
            if not found:
                raise NotFoundError(f"no task {text!r} in bd")
            with self._tx(write=True) as db:
                self.take(db, found[0])
            self._seen[found[0]["id"]] = time.monotonic()
            return found[0]["id"]

    def reconcile(self, prefix: str) -> list[str]:
        """Take from bd every in_progress issue one of our assignees (`prefix`...) holds: after a crash
        between a claim in bd and its record here, the dispatcher then requeues it like any claim a
        stopped run left."""
        with self._lock:
            found = records(self.bd.run(["list"], ["--status=in_progress", "--limit=0"]), "bd list")
            done = []
            with self._tx(write=True) as db:
                for record in found:
                    if not str(record.get("assignee") or "").startswith(prefix):
                        continue
                    before = db.execute("SELECT status FROM tasks WHERE id = ?", (record["id"],)).fetchone()
                    task = self.take(db, record)
                    if task is not None and (before is None or before[0] != task.status):
                        done.append(f"{task.id} is {task.status} in bd, claimed by {task.assignee}: taken from bd")
            return done

    def actor_for(self, db: Any, task_id: str, actor: str) -> str:
        """Who acts in bd on this task, by the copy here (see claimer_or)."""
        row = db.execute("SELECT status, assignee FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return claimer_or(row["status"], row["assignee"], actor) if row else actor

    # -- writing bd's records into the mirror (inside the caller's transaction) -----------------

    def _take_all(self, db: Any, found: list[dict[str, Any]]) -> None:
        for record in found:
            self.take(db, record)

    def take(self, db: Any, record: dict[str, Any]) -> Task | None:
        """Take bd's record of an issue unless the copy here is as new (then None). What a view of bd
        leaves out (labels, dependencies, comments) stays as it was; a claim's lease stays with it."""
        task = task_from_bd(record)
        old = db.execute("SELECT status, assignee, updated_at, lease_expires_at FROM tasks WHERE id = ?",
                         (task.id,)).fetchone()
        if old is not None and (not task.updated_at or
                                sqlrows.epoch(task.updated_at) <= sqlrows.epoch(old["updated_at"])):
            return None
        stamped(task)
        if old is not None and not {"labels", "dependencies", "comments"} <= set(record):
            _keep_what_the_view_left_out(db, task, record, old["status"])
        sqlrows.upsert_task(db, task)
        if old is not None and old["lease_expires_at"] is not None and \
                (old["status"], old["assignee"]) == (task.status, task.assignee):
            db.execute("UPDATE tasks SET lease_expires_at = ? WHERE id = ?", (old["lease_expires_at"], task.id))
        if old is not None and old["status"] != task.status:
            sqlrows.insert_event(db, task.id, "status", "bd", old["status"], task.status, {"from": "bd"})
        sqlrows.refresh_blocked(db, sqlrows.affected_by_status(db, task.id))
        return task

    def take_created(self, db: Any, record: dict[str, Any], new: NewTask, parent: str,
                     deps: list[tuple[str, str]], actor: str) -> str:
        """The row of an issue `bd create` just made, with the labels and edges asked for, which bd's
        answer leaves out (a child inherits its parent's labels, as bd does)."""
        task = task_from_bd(record)
        if "labels" not in record:
            inherited = sqlrows.load_task(db, parent, full=False).labels if parent else []
            task.labels = list(dict.fromkeys([*new.labels, *inherited]))
        task.dependencies = [Dependency(task.id, target, dep_type) for target, dep_type in
                             ([(parent, "parent-child")] if parent else []) + deps]
        sqlrows.upsert_task(db, stamped(task))
        sqlrows.refresh_blocked(db, [task.id])
        sqlrows.insert_event(db, task.id, "created", actor, new=task.status)
        self._seen[task.id] = time.monotonic()
        return task.id


def _keep_what_the_view_left_out(db: Any, task: Task, record: dict[str, Any], old_status: str) -> None:
    """The copy's labels, dependencies and comments where bd's record has none of them; with the
    labels, a merging task's label is left out too, so it stays merging."""
    here = sqlrows.load_task(db, task.id)
    task.labels = task.labels if "labels" in record else here.labels
    task.dependencies = task.dependencies if "dependencies" in record else here.dependencies
    task.comments = task.comments if "comments" in record else here.comments
    if "labels" not in record and task.status == Status.IN_PROGRESS and old_status == Status.MERGING:
        task.status = Status.MERGING


def _not_found(exc: TrackerError) -> bool:
    """bd's words when it knows none of the ids: "... not found", or "no issues found matching ..."."""
    message = str(exc).lower()
    return "not found" in message or "no issue" in message
