"""SQLite store: WAL, one connection per process, every write in one BEGIN IMMEDIATE transaction."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gasworks import ids
from gasworks.errors import (
    AmbiguousIdError,
    ClaimError,
    CycleError,
    InvalidValueError,
    NotFoundError,
    StoreError,
    TransitionError,
)
from gasworks.models import (
    BLOCKING_DEP_TYPES,
    DONE_STATUSES,
    GATING_DEP_TYPES,
    NON_WORK_TYPES,
    Comment,
    Dependency,
    Event,
    Task,
    allowed_targets,
    iso_from_epoch,
    now_iso,
    parse_time,
)
from gasworks.store import ImportResult, NewTask
from gasworks.store.schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_SECONDS = 30.0
_EDITABLE = ("title", "description", "design", "acceptance_criteria", "notes", "priority", "issue_type", "assignee")

_TASK_COLUMNS = (
    "t.id, t.title, t.description, t.design, t.acceptance_criteria, t.notes, t.status, t.priority, "
    "t.issue_type, t.assignee, t.created_at, t.updated_at, t.closed_at, t.close_reason, "
    "t.lease_expires_at, t.extra, "
    "(SELECT json_group_array(label) FROM labels l WHERE l.task_id = t.id) AS labels"
)


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_DONE = _sql_list(DONE_STATUSES)
# A task is blocked when it, or any ancestor through parent-child that is not done, has
# a `blocks` edge to an unfinished task, or a `waits-for` gate whose children are unfinished.
_BLOCKED_PREDICATE = f"""EXISTS (
    WITH RECURSIVE anc(id) AS (
        SELECT t.id
        UNION
        SELECT d.depends_on_id FROM dependencies d
        JOIN anc ON d.issue_id = anc.id
        JOIN tasks p ON p.id = d.depends_on_id
        WHERE d.type = 'parent-child' AND p.status NOT IN ({_DONE})
    )
    SELECT 1 FROM anc JOIN dependencies d ON d.issue_id = anc.id
    WHERE (d.type IN ({_sql_list(BLOCKING_DEP_TYPES)}) AND EXISTS (
              SELECT 1 FROM tasks b WHERE b.id = d.depends_on_id AND b.status NOT IN ({_DONE})))
       OR (d.type = 'waits-for' AND (
              CASE WHEN json_extract(d.extra, '$.metadata.gate') = 'any-children'
              THEN EXISTS (SELECT 1 FROM dependencies c WHERE c.depends_on_id = d.depends_on_id
                           AND c.type = 'parent-child')
                   AND NOT EXISTS (SELECT 1 FROM dependencies c JOIN tasks ct ON ct.id = c.issue_id
                           WHERE c.depends_on_id = d.depends_on_id AND c.type = 'parent-child'
                           AND ct.status = 'closed')
              ELSE EXISTS (SELECT 1 FROM dependencies c JOIN tasks ct ON ct.id = c.issue_id
                           WHERE c.depends_on_id = d.depends_on_id AND c.type = 'parent-child'
                           AND ct.status NOT IN ({_DONE}))
              END))
)"""
_READY_WHERE = (
    f"t.status = 'open' AND t.issue_type NOT IN ({_sql_list(NON_WORK_TYPES)}) AND NOT {_BLOCKED_PREDICATE}"
)
_READY_ORDER = "ORDER BY t.priority, t.created_ts, t.id"


class _DryRun(Exception):
    """Raised inside a transaction to roll it back on purpose."""


def _epoch(timestamp: str) -> float:
    return parse_time(timestamp).timestamp()


def _row_to_task(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"], title=row["title"], description=row["description"], design=row["design"],
        acceptance_criteria=row["acceptance_criteria"], notes=row["notes"], status=row["status"],
        priority=row["priority"], issue_type=row["issue_type"], assignee=row["assignee"],
        created_at=row["created_at"], updated_at=row["updated_at"], closed_at=row["closed_at"],
        close_reason=row["close_reason"], lease_expires_at=row["lease_expires_at"],
        extra=json.loads(row["extra"]), labels=json.loads(row["labels"] or "[]"),
    )


class SQLiteStore:
    """The default store. Safe to share between threads; each process opens its own."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a crash of gasworks never loses a commit; only power loss may.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction; writes take the write lock up front so claims never interleave."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"the store {self.path} is busy: {exc}") from None
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx(write=True) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} has schema version {version}, newer than this gasworks "
                    f"understands ({SCHEMA_VERSION}): upgrade gasworks"
                )
            for number in range(version, SCHEMA_VERSION):
                MIGRATIONS[number](db)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def schema_version(self) -> int:
        with self._tx() as db:
            return db.execute("PRAGMA user_version").fetchone()[0]

    @staticmethod
    def _event(db: sqlite3.Connection, task_id: str, kind: str, actor: str, old: str = "", new: str = "",
               detail: dict[str, Any] | None = None, at: str | None = None) -> None:
        db.execute(
            "INSERT INTO events (task_id, kind, actor, old_value, new_value, detail, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (task_id, kind, actor, old, new, json.dumps(detail or {}, ensure_ascii=False), at or now_iso()),
        )

    # -- reading ----------------------------------------------------------------------------

    def _load(self, db: sqlite3.Connection, task_id: str, full: bool = True) -> Task:
        row = db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.id = ?", (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no task {task_id!r}")
        task = _row_to_task(row)
        if full:
            task.dependencies = [
                Dependency(task_id, r["depends_on_id"], r["type"], r["created_at"], json.loads(r["extra"]))
                for r in db.execute(
                    "SELECT * FROM dependencies WHERE issue_id = ? ORDER BY created_at, depends_on_id", (task_id,)
                )
            ]
            task.comments = [
                Comment(json.loads(r["id"]), task_id, r["author"], r["text"], r["created_at"])
                for r in db.execute("SELECT * FROM comments WHERE task_id = ? ORDER BY seq", (task_id,))
            ]
        return task

    def get_task(self, task_id: str) -> Task:
        with self._tx() as db:
            return self._load(db, task_id)

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
                f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE {_READY_WHERE} {_READY_ORDER} LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [_row_to_task(r) for r in rows]

    def is_blocked(self, task_id: str) -> bool:
        with self._tx() as db:
            row = db.execute(f"SELECT {_BLOCKED_PREDICATE} FROM tasks t WHERE t.id = ?", (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no task {task_id!r}")
        return bool(row[0])

    def blockers(self, task_id: str) -> list[str]:
        """Unfinished tasks this one waits on directly (for messages and `show`)."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT d.depends_on_id FROM dependencies d JOIN tasks b ON b.id = d.depends_on_id "
                f"WHERE d.issue_id = ? AND d.type IN ({_sql_list(BLOCKING_DEP_TYPES)}) "
                f"AND b.status NOT IN ({_DONE}) ORDER BY d.depends_on_id",
                (task_id,),
            ).fetchall()
        return [r[0] for r in rows]

    def list_tasks(self, statuses: list[str] | None = None, labels: list[str] | None = None,
                   issue_type: str | None = None, assignee: str | None = None,
                   limit: int | None = None, include_closed: bool = True) -> list[Task]:
        where, params = ["1"], []
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
        params.append(-1 if limit is None else limit)
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE {' AND '.join(where)} {_READY_ORDER} LIMIT ?", params
            ).fetchall()
        return [_row_to_task(r) for r in rows]

    def dependents(self, task_id: str) -> list[Dependency]:
        with self._tx() as db:
            return [
                Dependency(r["issue_id"], task_id, r["type"], r["created_at"], json.loads(r["extra"]))
                for r in db.execute(
                    "SELECT * FROM dependencies WHERE depends_on_id = ? ORDER BY issue_id", (task_id,)
                )
            ]

    def dependency_tree(self, task_id: str, max_depth: int = 20) -> dict[str, Any]:
        """What a task waits on, recursively: {id, title, status, type, children, repeated}."""
        with self._tx() as db:
            root = self._load(db, task_id, full=False)
            seen: set[str] = set()

            def node(task_id: str, title: str, status: str, dep_type: str, depth: int) -> dict[str, Any]:
                out = {"id": task_id, "title": title, "status": status, "type": dep_type, "children": []}
                if task_id in seen or depth >= max_depth:
                    out["repeated"] = task_id in seen
                    return out
                seen.add(task_id)
                for r in db.execute(
                    "SELECT d.depends_on_id, d.type, t.title, t.status FROM dependencies d "
                    "LEFT JOIN tasks t ON t.id = d.depends_on_id WHERE d.issue_id = ? ORDER BY d.depends_on_id",
                    (task_id,),
                ).fetchall():
                    out["children"].append(
                        node(r[0], r[2] or "(not in this store)", r[3] or "", r[1], depth + 1)
                    )
                return out

            return node(root.id, root.title, root.status, "", 0)

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

    def counts(self) -> dict[str, int]:
        with self._tx() as db:
            rows = db.execute("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status").fetchall()
            ready = db.execute(f"SELECT count(*) FROM tasks t WHERE {_READY_WHERE}").fetchone()[0]
        return {**{r[0]: r[1] for r in rows}, "ready": ready}

    # -- creating and editing ---------------------------------------------------------------

    def create_task(self, new: NewTask, *, prefix: str, actor: str) -> Task:
        ids.check_prefix(prefix)
        if not new.title.strip():
            raise InvalidValueError("a task needs a non-empty title")
        now = now_iso()
        with self._tx(write=True) as db:
            labels = list(new.labels)
            if new.parent:
                parent = self._load(db, new.parent, full=False)
                task_id = self._next_child_id(db, parent.id)
                labels = parent.labels + [label for label in labels if label not in parent.labels]
            else:
                task_id = self._new_id(db, prefix, f"{new.title}|{new.description}|{actor}|{time.time_ns()}")
            db.execute(
                "INSERT INTO tasks (id, title, description, design, acceptance_criteria, notes, status, priority, "
                "issue_type, assignee, created_at, created_ts, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)",
                (task_id, new.title, new.description, new.design, new.acceptance_criteria, new.notes,
                 new.priority, new.issue_type, new.assignee, now, _epoch(now), now),
            )
            db.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", [(task_id, lb) for lb in labels])
            self._event(db, task_id, "created", actor, new="open", at=now)
            if new.parent:
                self._add_dependency(db, task_id, new.parent, "parent-child", actor, now)
            for target, dep_type in new.deps:
                self._add_dependency(db, task_id, target, dep_type, actor, now)
            return self._load(db, task_id)

    @staticmethod
    def _new_id(db: sqlite3.Connection, prefix: str, seed: str) -> str:
        for candidate in ids.candidate_ids(prefix, seed):
            if not db.execute("SELECT 1 FROM tasks WHERE id = ?", (candidate,)).fetchone():
                return candidate
        raise StoreError(f"could not find a free id with prefix {prefix!r}")  # 60 collisions in a row

    @staticmethod
    def _next_child_id(db: sqlite3.Connection, parent_id: str) -> str:
        # Children sort between "parent." and "parent/" ('/' follows '.' in ASCII).
        rows = db.execute("SELECT id FROM tasks WHERE id > ? AND id < ?", (parent_id + ".", parent_id + "/"))
        numbers = [int(rest) for (child,) in rows if (rest := child[len(parent_id) + 1:]).isdigit()]
        return ids.child_id(parent_id, max(numbers, default=0) + 1)

    def update_fields(self, task_id: str, *, actor: str, **changes: Any) -> Task:
        unknown = set(changes) - set(_EDITABLE)
        if unknown:
            raise InvalidValueError(f"cannot update {', '.join(sorted(unknown))}: editable are {', '.join(_EDITABLE)}")
        if "title" in changes and not str(changes["title"]).strip():
            raise InvalidValueError("a task needs a non-empty title")
        now = now_iso()
        with self._tx(write=True) as db:
            self._load(db, task_id, full=False)
            if changes:
                assignments = ", ".join(f"{name} = ?" for name in changes)
                db.execute(f"UPDATE tasks SET {assignments}, updated_at = ? WHERE id = ?",
                           (*changes.values(), now, task_id))
                self._event(db, task_id, "updated", actor, detail={"fields": sorted(changes)}, at=now)
            return self._load(db, task_id)

    def change_labels(self, task_id: str, *, actor: str, add: list[str] = (), remove: list[str] = ()) -> Task:
        now = now_iso()
        with self._tx(write=True) as db:
            self._load(db, task_id, full=False)
            db.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", [(task_id, lb) for lb in add])
            db.executemany("DELETE FROM labels WHERE task_id = ? AND label = ?", [(task_id, lb) for lb in remove])
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
            self._event(db, task_id, "labels", actor, detail={"added": list(add), "removed": list(remove)}, at=now)
            return self._load(db, task_id)

    def add_comment(self, task_id: str, text: str, *, author: str) -> Comment:
        now = now_iso()
        with self._tx(write=True) as db:
            self._load(db, task_id, full=False)
            seq = db.execute("INSERT INTO comments (id, task_id, author, text, created_at) VALUES ('', ?, ?, ?, ?)",
                             (task_id, author, text, now)).lastrowid
            db.execute("UPDATE comments SET id = ? WHERE seq = ?", (json.dumps(seq), seq))
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
            self._event(db, task_id, "comment", author, at=now)
        return Comment(seq, task_id, author, text, now)

    # -- dependencies -----------------------------------------------------------------------

    def add_dependency(self, issue_id: str, depends_on_id: str, dep_type: str = "blocks", *, actor: str) -> None:
        with self._tx(write=True) as db:
            self._load(db, issue_id, full=False)
            self._add_dependency(db, issue_id, depends_on_id, dep_type, actor, now_iso())

    def _add_dependency(self, db: sqlite3.Connection, issue_id: str, depends_on_id: str, dep_type: str,
                        actor: str, now: str) -> None:
        if issue_id == depends_on_id:
            raise CycleError(f"a task cannot depend on itself ({issue_id})")
        if not depends_on_id.startswith("external:"):
            self._load(db, depends_on_id, full=False)
        if dep_type in GATING_DEP_TYPES:
            path = self._gating_path(db, depends_on_id, issue_id)
            if path:
                cycle = " -> ".join([issue_id, *path])
                raise CycleError(f"dependency cycle: {cycle} (adding {issue_id} -> {depends_on_id} would close it)")
        db.execute(
            "INSERT INTO dependencies (issue_id, depends_on_id, type, created_at, extra) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (issue_id, depends_on_id) DO UPDATE SET type = excluded.type",
            (issue_id, depends_on_id, dep_type, now, json.dumps({"created_by": actor} if actor else {})),
        )
        db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, issue_id))
        self._event(db, issue_id, "dependency_added", actor, new=depends_on_id, detail={"type": dep_type}, at=now)

    @staticmethod
    def _gating_path(db: sqlite3.Connection, start: str, goal: str) -> list[str]:
        """A path start -> ... -> goal along gating edges, or [] (breadth-first, so the shortest)."""
        gating = _sql_list(GATING_DEP_TYPES)
        previous: dict[str, str | None] = {start: None}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                for (nxt,) in db.execute(
                    f"SELECT depends_on_id FROM dependencies WHERE issue_id = ? AND type IN ({gating})", (node,)
                ):
                    if nxt in previous:
                        continue
                    previous[nxt] = node
                    if nxt == goal:
                        path = [nxt]
                        while previous[path[-1]] is not None:
                            path.append(previous[path[-1]])
                        return list(reversed(path))
                    following.append(nxt)
            frontier = following
        return [start] if start == goal else []

    def remove_dependency(self, issue_id: str, depends_on_id: str, *, actor: str) -> None:
        now = now_iso()
        with self._tx(write=True) as db:
            gone = db.execute("DELETE FROM dependencies WHERE issue_id = ? AND depends_on_id = ?",
                              (issue_id, depends_on_id)).rowcount
            if not gone:
                raise NotFoundError(f"{issue_id} does not depend on {depends_on_id}")
            db.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, issue_id))
            self._event(db, issue_id, "dependency_removed", actor, old=depends_on_id, at=now)

    # -- status: transitions, claims, leases ------------------------------------------------

    def transition(self, task_id: str, to_status: str, *, actor: str, expected: str | None = None,
                   reason: str = "") -> Task:
        """The one way a status changes: checked against ALLOWED_TRANSITIONS, compare-and-set, event row."""
        with self._tx(write=True) as db:
            self._transition(db, task_id, to_status, actor=actor, expected=expected, reason=reason)
            return self._load(db, task_id)

    def _transition(self, db: sqlite3.Connection, task_id: str, to_status: str, *, actor: str,
                    expected: str | None = None, reason: str = "", assignee: str | None = None,
                    lease_expires_at: float | None = None, detail: dict[str, Any] | None = None) -> None:
        current = self._load(db, task_id, full=False)
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
        self._event(db, task_id, "status", actor, current.status, to_status,
                    {**({"reason": reason} if reason else {}), **(detail or {})}, at=now)

    def close_task(self, task_id: str, *, actor: str, reason: str = "", force: bool = False) -> Task:
        with self._tx(write=True) as db:
            if not force:
                open_children = [
                    r[0] for r in db.execute(
                        f"SELECT d.issue_id FROM dependencies d JOIN tasks c ON c.id = d.issue_id "
                        f"WHERE d.depends_on_id = ? AND d.type = 'parent-child' AND c.status NOT IN ({_DONE}) "
                        f"ORDER BY d.issue_id", (task_id,))
                ]
                if open_children:
                    raise TransitionError(
                        f"{task_id} has unfinished children ({', '.join(open_children[:5])}): close them "
                        "first or use --force"
                    )
            self._transition(db, task_id, "closed", actor=actor, reason=reason)
            return self._load(db, task_id)

    def claim_next(self, assignee: str, *, lease_seconds: float, now: float | None = None) -> Task | None:
        """Atomically take the first ready task nobody else is assigned to, with a lease."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            self._release_expired(db, now)
            row = db.execute(
                f"SELECT t.id FROM tasks t WHERE {_READY_WHERE} AND t.assignee IN ('', ?) {_READY_ORDER} LIMIT 1",
                (assignee,),
            ).fetchone()
            if row is None:
                return None
            self._claim(db, row[0], assignee, lease_seconds, now)
            return self._load(db, row[0])

    def claim(self, task_id: str, assignee: str, *, lease_seconds: float, now: float | None = None) -> Task:
        """Claim one task. Fails if it is claimed (by anyone, even the same name), blocked or not open."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            self._release_expired(db, now)
            task = self._load(db, task_id, full=False)
            if task.status == "in_progress":
                raise ClaimError(f"{task_id} is already claimed by {task.assignee or 'someone'}")
            if task.status != "open":
                raise ClaimError(f"{task_id} is {task.status}, only open tasks can be claimed")
            if task.assignee not in ("", assignee):
                raise ClaimError(f"{task_id} is assigned to {task.assignee}")
            if db.execute(f"SELECT {_BLOCKED_PREDICATE} FROM tasks t WHERE t.id = ?", (task_id,)).fetchone()[0]:
                raise ClaimError(f"{task_id} is blocked by unfinished dependencies")
            self._claim(db, task_id, assignee, lease_seconds, now)
            return self._load(db, task_id)

    def _claim(self, db: sqlite3.Connection, task_id: str, assignee: str, lease_seconds: float, now: float) -> None:
        if lease_seconds <= 0:
            raise InvalidValueError(f"lease must be positive, got {lease_seconds}")
        self._transition(db, task_id, "in_progress", actor=assignee, expected="open", assignee=assignee,
                         lease_expires_at=now + lease_seconds, detail={"claim": True, "lease_seconds": lease_seconds})

    def renew_lease(self, task_id: str, assignee: str, *, lease_seconds: float, now: float | None = None) -> bool:
        """Extend a live claim. False when the claim is gone (expired and released, or taken)."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            return db.execute(
                "UPDATE tasks SET lease_expires_at = ? WHERE id = ? AND status = 'in_progress' AND assignee = ? "
                "AND lease_expires_at IS NOT NULL AND lease_expires_at >= ?",
                (now + lease_seconds, task_id, assignee, now),
            ).rowcount == 1

    def release_expired(self, now: float | None = None) -> list[str]:
        """Put tasks whose claim lease ran out back to open (idempotent)."""
        with self._tx(write=True) as db:
            return self._release_expired(db, time.time() if now is None else now)

    def _release_expired(self, db: sqlite3.Connection, now: float) -> list[str]:
        expired = [r[0] for r in db.execute(
            "SELECT id FROM tasks WHERE status = 'in_progress' AND lease_expires_at < ?", (now,)
        ).fetchall()]
        for task_id in expired:
            self._transition(db, task_id, "open", actor="gasworks", expected="in_progress",
                             reason="lease expired", detail={"lease_expired": True})
        return expired

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

    def _import(self, db: sqlite3.Connection, tasks: list[Task], result: ImportResult, *, prefix: str,
                actor: str, now: str) -> None:
        start = time.time()
        for index, task in enumerate(tasks):
            if not task.id:
                if db.execute("SELECT 1 FROM tasks WHERE title = ? AND description = ?",
                              (task.title, task.description)).fetchone():
                    result.skipped += 1
                    continue
                task.id = self._new_id(db, prefix, f"{task.title}|{task.description}|{actor}|{time.time_ns()}")
            # A microsecond apart, so tasks from one file keep the file's order when sorted by age.
            task.created_at = task.created_at or iso_from_epoch(start + index / 1e6)
            task.updated_at = task.updated_at or task.created_at
            if task.status == "closed" and not task.closed_at:
                task.closed_at = task.updated_at
            old = db.execute("SELECT status, updated_at FROM tasks WHERE id = ?", (task.id,)).fetchone()
            if old is not None and _epoch(task.updated_at) <= _epoch(old["updated_at"]):
                result.skipped += 1
                continue
            self._upsert(db, task)
            self._event(db, task.id, "imported", actor, old["status"] if old else "", task.status, at=now)
            result.ids.append(task.id)
            if old is None:
                result.created += 1
            else:
                result.updated += 1
        if any(d.type in GATING_DEP_TYPES for t in tasks for d in t.dependencies):
            self._refuse_cycles(db)

    @staticmethod
    def _upsert(db: sqlite3.Connection, task: Task) -> None:
        db.execute(
            "INSERT INTO tasks (id, title, description, design, acceptance_criteria, notes, status, priority, "
            "issue_type, assignee, created_at, created_ts, updated_at, closed_at, close_reason, extra) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "title = excluded.title, description = excluded.description, design = excluded.design, "
            "acceptance_criteria = excluded.acceptance_criteria, notes = excluded.notes, status = excluded.status, "
            "priority = excluded.priority, issue_type = excluded.issue_type, assignee = excluded.assignee, "
            "created_at = excluded.created_at, created_ts = excluded.created_ts, updated_at = excluded.updated_at, "
            "closed_at = excluded.closed_at, close_reason = excluded.close_reason, extra = excluded.extra, "
            "lease_expires_at = NULL",
            (task.id, task.title, task.description, task.design, task.acceptance_criteria, task.notes, task.status,
             task.priority, task.issue_type, task.assignee, task.created_at, _epoch(task.created_at),
             task.updated_at, task.closed_at, task.close_reason, json.dumps(task.extra, ensure_ascii=False)),
        )
        for table in ("labels", "dependencies", "comments"):
            db.execute(f"DELETE FROM {table} WHERE {'issue_id' if table == 'dependencies' else 'task_id'} = ?",
                       (task.id,))
        db.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", [(task.id, lb) for lb in task.labels])
        db.executemany(
            "INSERT OR REPLACE INTO dependencies (issue_id, depends_on_id, type, created_at, extra) "
            "VALUES (?, ?, ?, ?, ?)",
            [(task.id, d.depends_on_id, d.type, d.created_at, json.dumps(d.extra, ensure_ascii=False))
             for d in task.dependencies],
        )
        db.executemany(
            "INSERT INTO comments (id, task_id, author, text, created_at) VALUES (?, ?, ?, ?, ?)",
            [(json.dumps(c.id), task.id, c.author, c.text, c.created_at) for c in task.comments],
        )

    @staticmethod
    def _refuse_cycles(db: sqlite3.Connection) -> None:
        graph: dict[str, list[str]] = {}
        for source, target in db.execute(
            f"SELECT issue_id, depends_on_id FROM dependencies WHERE type IN ({_sql_list(GATING_DEP_TYPES)})"
        ):
            graph.setdefault(source, []).append(target)
        state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
        for root in graph:
            if root in state:
                continue
            stack, path = [(root, iter(graph.get(root, ())))], [root]
            state[root] = 1
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    state[node] = 2
                    stack.pop()
                    path.pop()
                elif state.get(child) == 1:
                    cycle = path[path.index(child):] + [child]
                    raise CycleError(f"dependency cycle: {' -> '.join(cycle)}")
                elif child not in state:
                    state[child] = 1
                    stack.append((child, iter(graph.get(child, ()))))
                    path.append(child)

    def export_tasks(self) -> Iterator[Task]:
        """Every task with its labels, dependencies and comments, ordered by id."""
        with self._tx() as db:
            deps: dict[str, list[Dependency]] = {}
            for r in db.execute("SELECT * FROM dependencies ORDER BY issue_id, created_at, depends_on_id"):
                deps.setdefault(r["issue_id"], []).append(
                    Dependency(r["issue_id"], r["depends_on_id"], r["type"], r["created_at"], json.loads(r["extra"]))
                )
            comments: dict[str, list[Comment]] = {}
            for r in db.execute("SELECT * FROM comments ORDER BY task_id, seq"):
                comments.setdefault(r["task_id"], []).append(
                    Comment(json.loads(r["id"]), r["task_id"], r["author"], r["text"], r["created_at"])
                )
            rows = db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks t ORDER BY t.id").fetchall()
        for row in rows:
            task = _row_to_task(row)
            task.dependencies = deps.get(task.id, [])
            task.comments = comments.get(task.id, [])
            yield task
