"""Agent attempts at a task: started, their process, how they ended, their tokens."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gasworks.models import NOT_THE_TASKS_FAULT, Outcome, now_iso
from gasworks.store import rows as sqlrows
from gasworks.store.base import StoreBase
from gasworks.store.merges import enqueue

if TYPE_CHECKING:
    from gasworks.records import Attempt


class AttemptsMixin(StoreBase):
    """One row per run of an agent on a task; finishing one moves its task on in the same transaction."""

    def start_attempt(self, task_id: str, *, slot: str, log_path: str, branch: str, base_commit: str,
                      pid: int | None = None, pid_started: float | None = None) -> Attempt:
        now = now_iso()
        with self._tx(write=True) as db:
            sqlrows.load_task(db, task_id, full=False)
            attempt_id = db.execute(
                "INSERT INTO attempts (task_id, slot, started_at, log_path, branch, base_commit, pid, pid_started) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (task_id, slot, now, log_path, branch, base_commit, pid, pid_started),
            ).fetchone()[0]
            sqlrows.insert_event(db, task_id, "attempt_started", slot, new=str(attempt_id),
                                 detail={"slot": slot, "branch": branch}, at=now)
            return sqlrows.load_attempt(db, attempt_id)

    def set_attempt_process(self, attempt_id: int, pid: int, pid_started: float | None, log_path: str) -> None:
        with self._tx(write=True) as db:
            db.execute("UPDATE attempts SET pid = ?, pid_started = ?, log_path = ? WHERE id = ?",
                       (pid, pid_started, log_path, attempt_id))

    def finish_attempt(self, attempt_id: int, *, outcome: str, exit_code: int | None = None,
                       commits: Sequence[str] = (), note: str = "", task_status: str | None = None,
                       actor: str = "gasworks", add_labels: Sequence[str] = (),
                       merge_branch: str = "", merge_status: str = "queued") -> Attempt:
        """Record how an attempt ended and, in the same transaction, move its task on (and, with
        merge_branch, queue its last commit to merge: a crash never leaves one without the other;
        merge_status "review" makes it wait for a reviewer first)."""
        now = now_iso()
        with self._tx(write=True) as db:
            attempt = sqlrows.load_attempt(db, attempt_id)
            if attempt.ended_at:
                return attempt  # already recorded (a second reaper got here first)
            db.execute("UPDATE attempts SET ended_at = ?, outcome = ?, exit_code = ?, commits = ?, note = ? "
                       "WHERE id = ?", (now, outcome, exit_code, json.dumps(list(commits)), note, attempt_id))
            sqlrows.insert_event(db, attempt.task_id, "attempt_finished", actor, new=outcome,
                                 detail={"attempt": attempt_id, "exit_code": exit_code, "commits": len(commits),
                                         **({"note": note} if note else {})}, at=now)
            if add_labels:
                self.tracker.update(db, attempt.task_id, actor=actor, add_labels=add_labels)
                db.executemany("INSERT INTO labels VALUES (?, ?) ON CONFLICT DO NOTHING",
                               [(attempt.task_id, label) for label in add_labels])
            if task_status is not None:
                current = sqlrows.load_task(db, attempt.task_id, full=False).status
                if current != task_status:
                    self._transition(db, attempt.task_id, task_status, actor=actor, reason=note)
            if merge_branch and commits:
                enqueue(db, attempt.task_id, merge_branch, list(commits)[-1], now, merge_status)
            return sqlrows.load_attempt(db, attempt_id)

    def attempts(self, task_id: str | None = None, *, running: bool = False, limit: int = 1000) -> list[Attempt]:
        where = ["1 = 1"] + (["task_id = ?"] if task_id else []) + (["ended_at = ''"] if running else [])
        with self._tx() as db:
            found = db.execute(f"SELECT {sqlrows.ATTEMPT_COLUMNS} FROM attempts WHERE {' AND '.join(where)} "
                               "ORDER BY id DESC LIMIT ?",
                               (*([task_id] if task_id else []), limit)).fetchall()
        return [sqlrows.attempt_from_row(r) for r in reversed(found)]

    def failure_reasons(self, task_ids: Sequence[str] | None = None, *, open_only: bool = False,
                        limit: int = 1000) -> dict[str, tuple[str, str]]:
        """Tasks whose latest attempt ended without success, newest first: id -> (outcome, note). Of
        the tasks given, or of every task (with open_only: every task not closed)."""
        where = ["a.id = (SELECT max(b.id) FROM attempts b WHERE b.task_id = a.task_id)", "a.ended_at != ''",
                 "a.outcome != 'success'"]
        params: list[Any] = []
        if task_ids is not None:
            if not task_ids:
                return {}
            where.append(f"a.task_id IN ({', '.join('?' * len(task_ids))})")
            params += list(task_ids)
        if open_only:
            where.append("t.status != 'closed'")
        with self._tx() as db:
            found = db.execute(f"SELECT a.task_id, a.outcome, a.note FROM attempts a JOIN tasks t ON t.id = a.task_id "
                               f"WHERE {' AND '.join(where)} ORDER BY a.id DESC LIMIT ?", (*params, limit)).fetchall()
        return {row[0]: (row[1], row[2]) for row in found}

    def failed_attempts(self, task_id: str) -> int:
        """Finished attempts that count against the task (not interrupted, not orphaned, not success)."""
        excluded = (*NOT_THE_TASKS_FAULT, Outcome.SUCCESS)
        with self._tx() as db:
            return db.execute(
                f"SELECT count(*) FROM attempts WHERE task_id = ? AND ended_at != '' "
                f"AND outcome NOT IN ({', '.join('?' * len(excluded))})", (task_id, *excluded)).fetchone()[0]

    def set_attempt_tokens(self, attempt_id: int, tokens_in: int, tokens_out: int) -> None:
        with self._tx(write=True) as db:
            db.execute("UPDATE attempts SET tokens_in = ?, tokens_out = ? WHERE id = ?",
                       (tokens_in, tokens_out, attempt_id))

    def set_attempt_outcome(self, attempt_id: int, outcome: str, note: str) -> None:
        """Correct an attempt's outcome after the fact (its branch failed the merge gate)."""
        with self._tx(write=True) as db:
            db.execute("UPDATE attempts SET outcome = ?, note = ? WHERE id = ?", (outcome, note, attempt_id))
