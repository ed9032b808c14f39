"""The merge queue: branches waiting to land, and the gate runs that test them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gasworks.errors import InvalidValueError, TransitionError
from gasworks.models import MergeStatus, Status, now_iso
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase

if TYPE_CHECKING:
    from gasworks.records import Merge

PREGATE_EVENT = "pregate"


def enqueue(db: Any, task_id: str, branch: str, head: str, now: str, status: str = "queued") -> int:
    """Queue a branch inside the caller's transaction (finish_attempt queues its task's last commit);
    status "review" puts it before the queue, to wait for a human's approval."""
    merge_id = db.execute("INSERT INTO merges (task_id, branch, head, queued_at, status) VALUES (?, ?, ?, ?, ?) "
                          "RETURNING id", (task_id, branch, head, now, status)).fetchone()[0]
    sqlrows.insert_event(db, task_id, "merge_queued" if status == "queued" else f"merge_{status}", "gasworks",
                         new=str(merge_id), detail={"branch": branch, "head": head}, at=now)
    return merge_id


class MergeQueueMixin(StoreBase):
    """Merges in queue order, updated by the refinery as it tests and lands them."""

    def enqueue_merge(self, task_id: str, branch: str, head: str) -> Merge:
        with self._tx(write=True) as db:
            return sqlrows.load_merge(db, enqueue(db, task_id, branch, head, now_iso()))

    def merges(self, *, statuses: list[str] | None = None, task_id: str | None = None,
               limit: int = 1000, oldest_first: bool = False) -> list[Merge]:
        where, params = ["1 = 1"], []
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if task_id:
            where.append("task_id = ?")
            params.append(task_id)
        order = "id" if oldest_first else "id DESC"
        with self._tx() as db:
            found = db.execute(f"SELECT * FROM merges WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
                               (*params, limit)).fetchall()
        return [sqlrows.merge_from_row(r) for r in found]

    def merge_counts(self) -> dict[str, int]:
        """Merges by status (landed, conflict, ...), counted in the store: cheap to ask every second."""
        with self._tx() as db:
            rows = db.execute("SELECT status, count(*) FROM merges GROUP BY status").fetchall()
        return {row[0]: row[1] for row in rows}

    def merge(self, merge_id: int) -> Merge:
        with self._tx() as db:
            return sqlrows.load_merge(db, merge_id)

    def update_merge(self, merge_id: int, **fields: Any) -> Merge:
        allowed = {"status", "started_at", "ended_at", "trial", "gate_runs", "gate_seconds", "batch_size",
                   "landed_commit", "conflict_task", "note"}
        if set(fields) - allowed:
            raise InvalidValueError(f"cannot update merge fields {sorted(set(fields) - allowed)}")
        with self._tx(write=True) as db:
            if fields:
                db.execute(f"UPDATE merges SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                           (*fields.values(), merge_id))
            return sqlrows.load_merge(db, merge_id)

    def review_merge(self, merge_id: int, to_status: str, *, actor: str, note: str = "") -> Merge:
        """A reviewer's verdict on a merge that waits for review: "queued" (approved) or "rejected"
        (it ends, with the note), as a compare-and-set on its status, with an event of its task."""
        now = now_iso()
        with self._tx(write=True) as db:
            merge = sqlrows.load_merge(db, merge_id)
            if merge.status != MergeStatus.REVIEW:
                raise TransitionError(f"{merge.task_id} does not wait for review: its merge is {merge.status}")
            ended = now if to_status != "queued" else ""
            db.execute("UPDATE merges SET status = ?, ended_at = ?, note = ? WHERE id = ?",
                       (to_status, ended, note, merge_id))
            sqlrows.insert_event(db, merge.task_id, "review_approved" if to_status == "queued" else "review_rejected",
                                 actor, new=str(merge_id), detail={"note": note} if note else None, at=now)
            return sqlrows.load_merge(db, merge_id)

    def land(self, merge_ids: list[int], commit: str, move: Callable[[], tuple[str, str]], *,
             actor: str) -> tuple[str, str]:
        """Land tested merges as one compare-and-set of both the target and their tasks: inside one
        write transaction, every task must still be `merging` (not cancelled, reopened or changed by
        hand during its gate), then `move()` moves the target, then the tasks close and the merges
        end landed. A task that changed means nothing moves: ("changed", which ones). Otherwise
        move()'s (outcome, why); a move that did not land changes nothing here."""
        with self._tx(write=True) as db:
            merges = [sqlrows.load_merge(db, merge_id) for merge_id in merge_ids]
            changed = [(m.task_id, status) for m in merges
                       if (status := sqlrows.load_task(db, m.task_id, full=False).status) != Status.MERGING]
            if changed:
                return "changed", ", ".join(f"{task_id} is {status}" for task_id, status in changed)
            outcome, why = move()
            if outcome != "landed":
                return outcome, why
            now = now_iso()
            for merge in merges:
                self._transition(db, merge.task_id, Status.CLOSED, actor=actor, expected=Status.MERGING,
                                 reason=f"Merged as {commit[:12]}")
                db.execute("UPDATE merges SET status = 'landed', ended_at = ?, landed_commit = ? WHERE id = ?",
                           (now, commit, merge.id))
            return outcome, why

    def record_gate_run(self, merge_ids: list[int], *, seconds: float, passed: bool, on_tip: bool = False) -> None:
        """One gate run; each merge it tested counts it, and its time, once."""
        with self._tx(write=True) as db:
            db.execute("INSERT INTO gate_runs (started_at, seconds, passed, on_tip, merge_ids) VALUES (?, ?, ?, ?, ?)",
                       (now_iso(), seconds, int(passed), int(on_tip), json.dumps(merge_ids)))
            db.executemany("UPDATE merges SET gate_runs = gate_runs + 1, gate_seconds = gate_seconds + ? "
                           "WHERE id = ?", [(round(seconds, 3), merge_id) for merge_id in merge_ids])

    def gate_run_totals(self) -> dict[str, float]:
        """Gate runs as they happened (a batched run counts once): runs, failures, seconds."""
        with self._tx() as db:
            runs, failed, seconds = db.execute(
                "SELECT count(*), coalesce(sum(1 - passed), 0), coalesce(sum(seconds), 0) FROM gate_runs").fetchone()
        return {"runs": runs, "failed": failed, "seconds": round(seconds, 3)}

    def record_pregate(self, task_id: str, *, passed: bool, seconds: float, cpu_seconds: float, actor: str) -> None:
        """One pre-gate run (the gate in an agent's own worktree, before its branch is queued), as an
        event of the task."""
        with self._tx(write=True) as db:
            sqlrows.insert_event(db, task_id, PREGATE_EVENT, actor, new="passed" if passed else "failed",
                                 detail={"seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3)})

    def pregate_totals(self, last: int | None = None) -> dict[str, float]:
        """Pre-gate runs (with last: the last so many only): runs, failures, wall seconds and CPU seconds."""
        with self._tx() as db:
            rows = db.execute("SELECT new_value, detail FROM events WHERE kind = ? ORDER BY id DESC"
                              + (" LIMIT ?" if last is not None else ""),
                              (PREGATE_EVENT, *([last] if last is not None else []))).fetchall()
        details = [json.loads(row[1]) for row in rows]
        return {"runs": len(rows), "failed": sum(1 for row in rows if row[0] == "failed"),
                "seconds": round(sum(d.get("seconds", 0.0) for d in details), 3),
                "cpu_seconds": round(sum(d.get("cpu_seconds", 0.0) for d in details), 3)}
