"""Claims: taking ready work with a lease, renewing the lease, releasing the ones that ran out."""

from __future__ import annotations

import time
from typing import Any

from gasworks.errors import ClaimError, InvalidValueError
from gasworks.models import Status, Task
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase


class ClaimsMixin(StoreBase):
    """A claim is a transition to in_progress with an assignee and a lease, in one write transaction."""

    # Appended to the claim queries: PostgreSQL's FOR UPDATE ... SKIP LOCKED; SQLite needs none.
    SKIP_LOCKED = ""

    def claim_next(self, assignee: str, *, lease_seconds: float, now: float | None = None,
                   avoid_labels: frozenset[str] = frozenset()) -> Task | None:
        """Atomically take the first ready task nobody else is assigned to, with a lease. Tasks with
        one of `avoid_labels` (the files of work in flight) are passed over while other ready work
        exists; a claim that passed over something records one `overlap_avoided` event, on the
        first task it passed over."""
        now = time.time() if now is None else now
        query = (f"SELECT t.id FROM tasks t WHERE {sqlrows.READY_WHERE} AND t.assignee IN ('', ?) "
                 f"AND coalesce(t.retry_at, 0) <= ? {{avoid}} {sqlrows.READY_ORDER} LIMIT 1"
                 f"{self.SKIP_LOCKED}")
        avoid = (f"AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.task_id = t.id AND l.label IN "
                 f"({', '.join('?' * len(avoid_labels))}))") if avoid_labels else ""
        with self._tx(write=True, serial=False) as db:
            self._release_expired(db, now)
            first = db.execute(query.format(avoid=""), (assignee, now)).fetchone()
            if first is None:
                return None
            chosen = db.execute(query.format(avoid=avoid), (assignee, now, *sorted(avoid_labels))).fetchone() \
                if avoid_labels else first
            if chosen is None:
                chosen = first  # nothing else is ready: overlapping work beats an idle slot
            elif chosen[0] != first[0]:
                sqlrows.insert_event(db, first[0], "overlap_avoided", assignee, new=chosen[0])
            self._claim(db, chosen[0], assignee, lease_seconds, now)
            return sqlrows.load_task(db, chosen[0])

    def claim(self, task_id: str, assignee: str, *, lease_seconds: float, now: float | None = None) -> Task:
        """Claim one task. Fails if it is claimed (by anyone, even the same name), blocked or not open."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            self._release_expired(db, now)
            task = sqlrows.load_task(db, task_id, full=False)
            if task.status == Status.IN_PROGRESS:
                raise ClaimError(f"{task_id} is already claimed by {task.assignee or 'someone'}")
            if task.status != Status.OPEN:
                raise ClaimError(f"{task_id} is {task.status}, only open tasks can be claimed")
            if task.assignee not in ("", assignee):
                raise ClaimError(f"{task_id} is assigned to {task.assignee}")
            if db.execute("SELECT blocked FROM tasks WHERE id = ?", (task_id,)).fetchone()[0]:
                raise ClaimError(f"{task_id} is blocked by unfinished dependencies")
            self._claim(db, task_id, assignee, lease_seconds, now)
            return sqlrows.load_task(db, task_id)

    def _claim(self, db: Any, task_id: str, assignee: str, lease_seconds: float, now: float) -> None:
        if lease_seconds <= 0:
            raise InvalidValueError(f"lease must be positive, got {lease_seconds}")
        self._transition(db, task_id, Status.IN_PROGRESS, actor=assignee, expected=Status.OPEN, assignee=assignee,
                         lease_expires_at=now + lease_seconds, detail={"claim": True, "lease_seconds": lease_seconds})

    def renew_lease(self, task_id: str, assignee: str, *, lease_seconds: float, now: float | None = None) -> bool:
        """Extend a claim its holder still has (even one that ran out but nobody released yet).
        False when the claim is gone: released, or taken by someone else."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            return db.execute(
                "UPDATE tasks SET lease_expires_at = ? WHERE id = ? AND status = 'in_progress' AND assignee = ? "
                "AND lease_expires_at IS NOT NULL",
                (now + lease_seconds, task_id, assignee),
            ).rowcount == 1

    def release_expired(self, now: float | None = None) -> list[str]:
        """Put tasks whose claim lease ran out back to open (idempotent)."""
        with self._tx(write=True) as db:
            return self._release_expired(db, time.time() if now is None else now)

    def _release_expired(self, db: Any, now: float) -> list[str]:
        expired = [r[0] for r in db.execute(
            f"SELECT t.id FROM tasks t WHERE t.status = 'in_progress' AND t.lease_expires_at < ?"
            f"{self.SKIP_LOCKED}", (now,)
        ).fetchall()]
        for task_id in expired:
            self._transition(db, task_id, Status.OPEN, actor="gasworks", expected=Status.IN_PROGRESS,
                             reason="lease expired", detail={"lease_expired": True})
        return expired
