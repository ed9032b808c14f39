"""The store's logic, written once in SQL that both backends run (see sqlite.py and postgres.py).

Here: tasks and their status (creating, editing, dependencies, transitions, claims, leases). The
other nouns each have a module mixed into SQLStore: queries, attempts, merges, locks, import_export.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from gasworks import ids
from gasworks.errors import (
    ClaimError,
    CycleError,
    InvalidValueError,
    NotFoundError,
    TransitionError,
)
from gasworks.models import (
    DONE_STATUSES,
    GATING_DEP_TYPES,
    Comment,
    Task,
    allowed_targets,
    now_iso,
    releases_claim,
)
from gasworks.store import NewTask, Store
from gasworks.store import rows as sqlrows
from gasworks.store.attempts import AttemptsMixin
from gasworks.store.board import BoardMixin
from gasworks.store.import_export import ImportExportMixin
from gasworks.store.locks import LocksMixin
from gasworks.store.merges import MergeQueueMixin
from gasworks.store.queries import QueriesMixin
from gasworks.store.tracker import OWN_ROWS, Tracker

_EDITABLE = ("title", "description", "design", "acceptance_criteria", "notes", "priority", "issue_type", "assignee")


class SQLStore(QueriesMixin, AttemptsMixin, MergeQueueMixin, LocksMixin, ImportExportMixin, BoardMixin, Store):
    """The store's logic in SQL that SQLite and PostgreSQL both run. A backend subclass opens the
    connection and supplies `_tx()` (see StoreBase). It inherits Tracking's no-op bodies."""

    # Appended to the claim queries: PostgreSQL's FOR UPDATE ... SKIP LOCKED; SQLite needs none.
    SKIP_LOCKED = ""
    # Where the tasks are kept: here (OWN_ROWS), or in bd (BeadsStore); told of every change to one.
    tracker: Tracker = OWN_ROWS

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
        sqlrows.insert_event(db, task_id, "created", actor, new="open", at=now)
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

    # -- status: transitions, claims, leases ------------------------------------------------

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
        if to_status == "closed":
            sets.update(closed_at=now, close_reason=reason or "Closed")
        elif current.status == "closed":
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
            self._transition(db, task_id, "closed", actor=actor, reason=reason, force=force)
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
