"""The store's logic, written once in SQL that both backends run (see sqlite.py and postgres.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gasworks import ids
from gasworks.errors import (
    AmbiguousIdError,
    ClaimError,
    CycleError,
    InvalidValueError,
    NotFoundError,
    TransitionError,
)
from gasworks.models import (
    BLOCKING_DEP_TYPES,
    DONE_STATUSES,
    GATING_DEP_TYPES,
    NOT_THE_TASKS_FAULT,
    Attempt,
    Comment,
    Dependency,
    Event,
    Merge,
    Task,
    allowed_targets,
    iso_from_micros,
    now_iso,
)
from gasworks.store import ImportResult, NewTask
from gasworks.store import rows as sqlrows

NO_LIMIT = 2 ** 62  # LIMIT for "all rows", in SQL both backends take
_EDITABLE = ("title", "description", "design", "acceptance_criteria", "notes", "priority", "issue_type", "assignee")


class _DryRun(Exception):
    """Raised inside a transaction to roll it back on purpose."""


class SQLStore:
    """The store's logic in SQL that SQLite and PostgreSQL both run. A backend subclass opens the
    connection and supplies `_tx()`: one transaction, writes serialised unless `serial` is False
    (claims, which PostgreSQL runs side by side with row locks instead)."""

    path: Any
    # Appended to the claim queries: PostgreSQL's FOR UPDATE ... SKIP LOCKED; SQLite needs none.
    SKIP_LOCKED = ""
    # Whether a named lock's row, with its lease, decides who holds it (PostgreSQL: an advisory lock does).
    LEASES_DECIDE = True

    def close(self) -> None:
        raise NotImplementedError

    @contextmanager
    def _tx(self, write: bool = False, serial: bool = True) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def get_task(self, task_id: str) -> Task:
        with self._tx() as db:
            return sqlrows.load_task(db, task_id)

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
                   limit: int | None = None, include_closed: bool = True) -> list[Task]:
        where, params = ["1 = 1"], []
        if not include_closed:
            where.append("t.status != 'closed'")
        if statuses:
            where.append(f"t.status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        for label in labels or []:
            where.append("EXISTS (SELECT 1 FROM labels l WHERE l.task_id = t.id AND l.label = ?)")
            params.append(label)
        if issue_type:
            where.append("t.issue_type = ?")
            params.append(issue_type)
        if assignee is not None:
            where.append("t.assignee = ?")
            params.append(assignee)
        params.append(NO_LIMIT if limit is None else limit)
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {sqlrows.TASK_COLUMNS} FROM tasks t WHERE {' AND '.join(where)} {sqlrows.READY_ORDER} "
                "LIMIT ?", params
            ).fetchall()
        return [sqlrows.row_to_task(r) for r in rows]

    def dependents(self, task_id: str) -> list[Dependency]:
        with self._tx() as db:
            return [sqlrows.dependency_from_row(r) for r in db.execute(
                "SELECT * FROM dependencies WHERE depends_on_id = ? ORDER BY issue_id", (task_id,))]

    def dependency_tree(self, task_id: str, max_depth: int = 20) -> dict[str, Any]:
        """What a task waits on, recursively: {id, title, status, type, children, repeated}."""
        with self._tx() as db:
            return sqlrows.dependency_tree(db, task_id, max_depth)

    def events(self, task_id: str | None = None, limit: int = 100) -> list[Event]:
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

    def counts(self) -> dict[str, int]:
        """Tasks by status, plus `ready` (open, free to start) and `waiting` (open work held back)."""
        with self._tx() as db:
            rows = db.execute("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status").fetchall()
            ready = db.execute(f"SELECT count(*) FROM tasks t WHERE {sqlrows.READY_WHERE}").fetchone()[0]
            waiting = db.execute(f"SELECT count(*) FROM tasks t WHERE {sqlrows.WAITING_WHERE}").fetchone()[0]
        return {**{r[0]: r[1] for r in rows}, "ready": ready, "waiting": waiting}

    # -- creating and editing ---------------------------------------------------------------

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
        now = now_iso()
        labels = list(new.labels)
        parent_id = resolve(new.parent) if new.parent else ""
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
        sqlrows.insert_event(db, task_id, "created", actor, new="open", at=now)
        if parent_id:
            self._add_dependency(db, task_id, parent_id, "parent-child", actor, now)
        for target, dep_type in new.deps:
            self._add_dependency(db, task_id, resolve(target), dep_type, actor, now)
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
                assignments = ", ".join(f"{name} = ?" for name in changes)
                db.execute(f"UPDATE tasks SET {assignments}, updated_at = ? WHERE id = ?",
                           (*changes.values(), now, task_id))
                sqlrows.insert_event(db, task_id, "updated", actor, detail={"fields": sorted(changes)}, at=now)
            return sqlrows.load_task(db, task_id)

    def change_labels(self, task_id: str, *, actor: str, add: list[str] = (), remove: list[str] = ()) -> Task:
        now = now_iso()
        with self._tx(write=True) as db:
            sqlrows.load_task(db, task_id, full=False)
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
            seq = db.execute("INSERT INTO comments (id, task_id, author, text, created_at) VALUES ('', ?, ?, ?, ?) "
                             "RETURNING seq", (task_id, author, text, now)).fetchone()[0]
            db.execute("UPDATE comments SET id = ? WHERE seq = ?", (json.dumps(seq), seq))
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
            sqlrows.insert_event(db, task_id, "comment", author, at=now)
        return Comment(seq, task_id, author, text, now)

    # -- dependencies -----------------------------------------------------------------------

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
            "INSERT INTO dependencies (issue_id, depends_on_id, type, created_at, extra) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (issue_id, depends_on_id) DO UPDATE SET type = excluded.type",
            (issue_id, depends_on_id, dep_type, now, json.dumps({"created_by": actor} if actor else {})),
        )
        db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, issue_id))
        seeds = sqlrows.affected_by_edge(db, issue_id, depends_on_id, dep_type)
        if replaced:  # one edge per pair: a new type replaces the old one
            seeds += sqlrows.affected_by_edge(db, issue_id, depends_on_id, replaced[0])
        sqlrows.refresh_blocked(db, seeds)
        sqlrows.insert_event(db, issue_id, "dependency_added", actor, new=depends_on_id,
                             detail={"type": dep_type}, at=now)

    def remove_dependency(self, issue_id: str, depends_on_id: str, *, actor: str) -> None:
        now = now_iso()
        with self._tx(write=True) as db:
            gone = db.execute("SELECT type FROM dependencies WHERE issue_id = ? AND depends_on_id = ?",
                              (issue_id, depends_on_id)).fetchone()
            if not gone:
                raise NotFoundError(f"{issue_id} does not depend on {depends_on_id}")
            db.execute("DELETE FROM dependencies WHERE issue_id = ? AND depends_on_id = ?", (issue_id, depends_on_id))
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, issue_id))
            sqlrows.refresh_blocked(db, sqlrows.affected_by_edge(db, issue_id, depends_on_id, gone[0]))
            sqlrows.insert_event(db, issue_id, "dependency_removed", actor, old=depends_on_id, at=now)

    # -- status: transitions, claims, leases ------------------------------------------------

    def transition(self, task_id: str, to_status: str, *, actor: str, expected: str | None = None,
                   reason: str = "") -> Task:
        """The one way a status changes: checked against ALLOWED_TRANSITIONS, compare-and-set, event row."""
        with self._tx(write=True) as db:
            self._transition(db, task_id, to_status, actor=actor, expected=expected, reason=reason)
            return sqlrows.load_task(db, task_id)

    def _transition(self, db: Any, task_id: str, to_status: str, *, actor: str,
                    expected: str | None = None, reason: str = "", assignee: str | None = None,
                    lease_expires_at: float | None = None, detail: dict[str, Any] | None = None) -> None:
        current = sqlrows.load_task(db, task_id, full=False)
        if expected is not None and current.status != expected:
            raise TransitionError(f"{task_id} is {current.status}, not {expected}")
        if to_status not in allowed_targets(current.status):
            accepted = ", ".join(sorted(allowed_targets(current.status)))
            raise TransitionError(f"{task_id} cannot go from {current.status} to {to_status} (allowed: {accepted})")
        now = now_iso()
        sets = {"status": to_status, "updated_at": now, "lease_expires_at": lease_expires_at}
        if to_status == "closed":
            sets.update(closed_at=now, close_reason=reason or "Closed")
        elif current.status == "closed":
            sets.update(closed_at="", close_reason="")
        if assignee is not None:
            sets["assignee"] = assignee
        elif to_status == "open" and current.status in ("in_progress", "merging"):
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
            self._transition(db, task_id, "closed", actor=actor, reason=reason)
            return sqlrows.load_task(db, task_id)

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
            if task.status == "in_progress":
                raise ClaimError(f"{task_id} is already claimed by {task.assignee or 'someone'}")
            if task.status != "open":
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
        self._transition(db, task_id, "in_progress", actor=assignee, expected="open", assignee=assignee,
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
            self._transition(db, task_id, "open", actor="gasworks", expected="in_progress",
                             reason="lease expired", detail={"lease_expired": True})
        return expired

    # -- attempts ---------------------------------------------------------------------------

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
                       commits: list[str] = (), note: str = "", task_status: str | None = None,
                       actor: str = "gasworks", add_labels: list[str] = (),
                       merge_branch: str = "") -> Attempt:
        """Record how an attempt ended and, in the same transaction, move its task on (and, with
        merge_branch, queue its last commit to merge: a crash never leaves one without the other)."""
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
                db.executemany("INSERT INTO labels VALUES (?, ?) ON CONFLICT DO NOTHING",
                               [(attempt.task_id, label) for label in add_labels])
            if task_status is not None:
                current = sqlrows.load_task(db, attempt.task_id, full=False).status
                if current != task_status:
                    self._transition(db, attempt.task_id, task_status, actor=actor, reason=note)
            if merge_branch and commits:
                self._enqueue(db, attempt.task_id, merge_branch, list(commits)[-1], now)
            return sqlrows.load_attempt(db, attempt_id)

    def attempts(self, task_id: str | None = None, *, running: bool = False, limit: int = 1000) -> list[Attempt]:
        where = ["1 = 1"] + (["task_id = ?"] if task_id else []) + (["ended_at = ''"] if running else [])
        with self._tx() as db:
            found = db.execute(f"SELECT * FROM attempts WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                               (*([task_id] if task_id else []), limit)).fetchall()
        return [sqlrows.attempt_from_row(r) for r in reversed(found)]

    def failed_attempts(self, task_id: str) -> int:
        """Finished attempts that count against the task (not interrupted, not orphaned, not success)."""
        excluded = (*NOT_THE_TASKS_FAULT, "success")
        with self._tx() as db:
            return db.execute(
                f"SELECT count(*) FROM attempts WHERE task_id = ? AND ended_at != '' "
                f"AND outcome NOT IN ({', '.join('?' * len(excluded))})", (task_id, *excluded)).fetchone()[0]

    # -- the merge queue and locks -----------------------------------------------------------

    def enqueue_merge(self, task_id: str, branch: str, head: str) -> Merge:
        with self._tx(write=True) as db:
            return sqlrows.load_merge(db, self._enqueue(db, task_id, branch, head, now_iso()))

    @staticmethod
    def _enqueue(db: Any, task_id: str, branch: str, head: str, now: str) -> int:
        merge_id = db.execute("INSERT INTO merges (task_id, branch, head, queued_at) VALUES (?, ?, ?, ?) "
                              "RETURNING id", (task_id, branch, head, now)).fetchone()[0]
        sqlrows.insert_event(db, task_id, "merge_queued", "gasworks", new=str(merge_id),
                             detail={"branch": branch, "head": head}, at=now)
        return merge_id

    def lock_owner(self, name: str) -> str:
        with self._tx() as db:
            row = db.execute("SELECT owner FROM locks WHERE name = ?", (name,)).fetchone()
        return row[0] if row else ""

    def take_lock_from(self, name: str, dead_owner: str, owner: str, *, ttl: float) -> bool:
        """Take a lock whose holder is known to be dead (compare-and-set on that holder)."""
        with self._tx(write=True) as db:
            return db.execute("UPDATE locks SET owner = ?, expires_at = ? WHERE name = ? AND owner = ?",
                              (owner, time.time() + ttl, name, dead_owner)).rowcount == 1

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

    def acquire_lock(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> bool:
        """Take (or renew) a named lock unless someone else holds it unexpired."""
        return self.take_lock(name, owner, ttl=ttl, now=now)[0]

    def take_lock(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> tuple[bool, str]:
        """Like acquire_lock; also says whom it was taken from: a holder whose lease ran out without
        letting go (a clean holder deletes its row), else ""."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            row = db.execute("SELECT owner, expires_at FROM locks WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != owner and self.LEASES_DECIDE and row[1] >= now:
                return False, ""
            db.execute("INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                       "SET owner = excluded.owner, expires_at = excluded.expires_at", (name, owner, now + ttl))
            return True, row[0] if row is not None and row[0] != owner else ""

    def release_lock(self, name: str, owner: str) -> None:
        with self._tx(write=True) as db:
            db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))

    def send_back(self, task_id: str, *, to_status: str, note: str, actor: str,
                  add_labels: list[str] = ()) -> Task:
        """Move a task back (to open, or blocked) with a note appended to its notes, in one transaction."""
        now = now_iso()
        with self._tx(write=True) as db:
            task = sqlrows.load_task(db, task_id, full=False)
            notes = f"{task.notes.rstrip()}\n\n{note}".strip() if note else task.notes
            db.execute("UPDATE tasks SET notes = ?, updated_at = ? WHERE id = ?", (notes, now, task_id))
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

    def set_attempt_tokens(self, attempt_id: int, tokens_in: int, tokens_out: int) -> None:
        with self._tx(write=True) as db:
            db.execute("UPDATE attempts SET tokens_in = ?, tokens_out = ? WHERE id = ?",
                       (tokens_in, tokens_out, attempt_id))

    def set_attempt_outcome(self, attempt_id: int, outcome: str, note: str) -> None:
        """Correct an attempt's outcome after the fact (its branch failed the merge gate)."""
        with self._tx(write=True) as db:
            db.execute("UPDATE attempts SET outcome = ?, note = ? WHERE id = ?", (outcome, note, attempt_id))

    # -- import and export ------------------------------------------------------------------

    def import_tasks(self, tasks: list[Task], *, prefix: str, actor: str, dry_run: bool = False) -> ImportResult:
        """Upsert by id, newer updated_at wins (ties keep ours); all or nothing.

        Tasks without an id (markdown, task_queue.json) are skipped when a task with the same
        title and description exists, so importing the same file twice adds nothing.
        """
        result = ImportResult()
        now = now_iso()
        try:
            with self._tx(write=True) as db:
                self._import(db, tasks, result, prefix=prefix, actor=actor, now=now)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return result

    def _import(self, db: Any, tasks: list[Task], result: ImportResult, *, prefix: str,
                actor: str, now: str) -> None:
        start = time.time_ns() // 1000  # whole microseconds: a float epoch cannot tell 1 µs apart
        present = self._give_ids(db, tasks, prefix, actor)
        for index, task in enumerate(tasks):
            if index in present:
                result.skipped += 1
                continue
            # A microsecond apart, so tasks from one file keep the file's order when sorted by age.
            task.created_at = task.created_at or iso_from_micros(start + index)
            task.updated_at = task.updated_at or task.created_at
            if task.status == "closed" and not task.closed_at:
                task.closed_at = task.updated_at
            old = db.execute("SELECT status, updated_at FROM tasks WHERE id = ?", (task.id,)).fetchone()
            if old is not None and sqlrows.epoch(task.updated_at) <= sqlrows.epoch(old["updated_at"]):
                result.skipped += 1
                continue
            sqlrows.upsert_task(db, task)
            sqlrows.insert_event(db, task.id, "imported", actor, old["status"] if old else "", task.status, at=now)
            result.ids.append(task.id)
            if old is None:
                result.created += 1
            else:
                result.updated += 1
        if any(d.type in GATING_DEP_TYPES for t in tasks for d in t.dependencies):
            sqlrows.refuse_cycles(db)
        if result.ids:
            sqlrows.refresh_all_blocked(db)

    @staticmethod
    def _give_ids(db: Any, tasks: list[Task], prefix: str, actor: str) -> set[int]:
        """Ids for tasks that come without one (markdown, task_queue.json); one that repeats a task
        already here (same title and description) takes that task's id and is left alone (the
        returned positions). Then "#N" in a dependency, the N-th task of the file, becomes its id."""
        present, given = set(), set()
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
        """Every task with its labels, dependencies and comments, ordered by id."""
        with self._tx() as db:
            deps: dict[str, list[Dependency]] = {}
            for r in db.execute("SELECT * FROM dependencies ORDER BY issue_id, created_at, depends_on_id"):
                deps.setdefault(r["issue_id"], []).append(sqlrows.dependency_from_row(r))
            comments: dict[str, list[Comment]] = {}
            for r in db.execute("SELECT * FROM comments ORDER BY task_id, seq"):
                comments.setdefault(r["task_id"], []).append(sqlrows.comment_from_row(r))
            rows = db.execute(f"SELECT {sqlrows.TASK_COLUMNS} FROM tasks t ORDER BY t.id").fetchall()
        for row in rows:
            task = sqlrows.row_to_task(row)
            task.dependencies = deps.get(task.id, [])
            task.comments = comments.get(task.id, [])
            yield task
