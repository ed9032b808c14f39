"""Task status: the one transition (compare-and-set plus its event), closing, and the queue's order
(sending back, slinging, retry backoff)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from gasworks.errors import TransitionError
from gasworks.models import DONE_STATUSES, Status, Task, allowed_targets, now_iso, releases_claim
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase


class TaskStatusMixin(StoreBase):
    """Every status change goes through `_transition()`, inside the caller's transaction."""

    def transition(self, task_id: str, to_status: str, *, actor: str, expected: str | None = None,
                   reason: str = "") -> Task:
        """The one way a status changes: checked against ALLOWED_TRANSITIONS, compare-and-set, event row."""
        with self._tx(write=True) as db:
            self._transition(db, task_id, to_status, actor=actor, expected=expected, reason=reason)
            return sqlrows.load_task(db, task_id)

    def _transition(self, db: Any, task_id: str, to_status: str, *, actor: str,
                    expected: str | None = None, reason: str = "", assignee: str | None = None,
                    lease_expires_at: float | None = None, detail: dict[str, Any] | None = None,
                    force: bool = False) -> None:
        current = sqlrows.load_task(db, task_id, full=False)
        if expected is not None and current.status != expected:
            raise TransitionError(f"{task_id} is {current.status}, not {expected}")
        if to_status not in allowed_targets(current.status):
            accepted = ", ".join(sorted(allowed_targets(current.status)))
            raise TransitionError(f"{task_id} cannot go from {current.status} to {to_status} (allowed: {accepted})")
        now = now_iso()
        sets = {"status": to_status, "updated_at": now, "lease_expires_at": lease_expires_at}
        if to_status == Status.CLOSED:
            sets.update(closed_at=now, close_reason=reason or "Closed")
        elif current.status == Status.CLOSED:
            sets.update(closed_at="", close_reason="")
        if assignee is not None:
            sets["assignee"] = assignee
        elif releases_claim(current.status, to_status, current.assignee):
            sets["assignee"] = ""  # the claim is released, so the next claimer can take it
        assignments = ", ".join(f"{name} = ?" for name in sets)
        changed = db.execute(
            f"UPDATE tasks SET {assignments} WHERE id = ? AND status = ?",
            (*sets.values(), task_id, current.status),
        ).rowcount
        if changed != 1:  # cannot happen under BEGIN IMMEDIATE; kept as the compare-and-set guard
            raise TransitionError(f"{task_id} changed status meanwhile")
        if {current.status, to_status} & set(DONE_STATUSES):  # only done-ness gates others
            sqlrows.refresh_blocked(db, sqlrows.affected_by_status(db, task_id))
        sqlrows.insert_event(db, task_id, "status", actor, current.status, to_status,
                    {**({"reason": reason} if reason else {}), **(detail or {})}, at=now)
        # `assignee` is given by a claim only
        self.tracker.status(db, current, to_status, actor=actor, reason=reason, force=force, claimer=assignee)

    def close_task(self, task_id: str, *, actor: str, reason: str = "", force: bool = False) -> Task:
        with self._tx(write=True) as db:
            if not force:
                open_children = [
                    r[0] for r in db.execute(
                        f"SELECT d.issue_id FROM dependencies d JOIN tasks c ON c.id = d.issue_id "
                        f"WHERE d.depends_on_id = ? AND d.type = 'parent-child' AND c.status NOT IN ({sqlrows.DONE}) "
                        f"ORDER BY d.issue_id", (task_id,))
                ]
                if open_children:
                    raise TransitionError(
                        f"{task_id} has unfinished children ({', '.join(open_children[:5])}): close them "
                        "first or use --force"
                    )
            self._transition(db, task_id, Status.CLOSED, actor=actor, reason=reason, force=force)
            return sqlrows.load_task(db, task_id)

    # -- the queue's order: sending back, slinging, retry backoff ----------------------------

    def send_back(self, task_id: str, *, to_status: str, note: str, actor: str,
                  add_labels: Sequence[str] = (), retry_at: float | None = None) -> Task:
        """Move a task back (to open, or blocked) with a note appended to its notes, and with retry_at
        held back from claims until then (the retry backoff), in one transaction."""
        now = now_iso()
        with self._tx(write=True) as db:
            task = sqlrows.load_task(db, task_id, full=False)
            if add_labels or note:
                self.tracker.update(db, task_id, actor=actor, add_labels=add_labels, note=note)
            notes = f"{task.notes.rstrip()}\n\n{note}".strip() if note else task.notes
            db.execute("UPDATE tasks SET notes = ?, updated_at = ? WHERE id = ?", (notes, now, task_id))
            if retry_at is not None:
                db.execute("UPDATE tasks SET retry_at = ? WHERE id = ?", (retry_at, task_id))
            db.executemany("INSERT INTO labels VALUES (?, ?) ON CONFLICT DO NOTHING",
                           [(task_id, label) for label in add_labels])
            self._transition(db, task_id, to_status, actor=actor, reason=note.splitlines()[0] if note else "")
            return sqlrows.load_task(db, task_id)

    def sling(self, task_ids: list[str], *, actor: str, now: float | None = None) -> list[Task]:
        """Put tasks at the front of the queue, in this order, ahead of everything slung before: they
        run next as soon as nothing holds them back (rank, before priority, in the ready order)."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            for position, task_id in enumerate(task_ids):
                task = sqlrows.load_task(db, task_id, full=False)
                if task.status in DONE_STATUSES:
                    raise TransitionError(f"{task_id} is {task.status}: reopen it first")
                rank = -now + position * 1e-6  # a microsecond apart: a sling a moment later still goes first
                db.execute("UPDATE tasks SET rank = ?, updated_at = ? WHERE id = ?", (rank, now_iso(), task_id))
                sqlrows.insert_event(db, task_id, "slung", actor, new=str(position + 1),
                                     detail={"of": len(task_ids)})
            return [sqlrows.load_task(db, task_id) for task_id in task_ids]

    def set_retry_at(self, task_id: str, when: float | None) -> None:
        """Hold a failed task back from claims until `when` (the retry backoff); None lifts it."""
        with self._tx(write=True) as db:
            db.execute("UPDATE tasks SET retry_at = ? WHERE id = ?", (when, task_id))
