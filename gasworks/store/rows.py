"""Statements and row helpers the store composes (both backends); every function takes an open connection.

Nothing here opens or commits a transaction: the store's `_tx()` does, around these.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from gasworks import ids
from gasworks.beads import ANY_CHILDREN, defer_epoch, gate, never_ready
from gasworks.errors import NotFoundError, StoreError
from gasworks.models import (
    BLOCKING_DEP_TYPES,
    DONE_STATUSES,
    GATING_DEP_TYPES,
    NON_WORK_TYPES,
    Comment,
    Dependency,
    Task,
    now_iso,
    parse_time,
)

if TYPE_CHECKING:
    from gasworks.records import Attempt, Merge

# The two expressions that differ between SQLite and PostgreSQL; postgres.py swaps them.
LABELS_JSON = "(SELECT json_group_array(label) FROM labels l WHERE l.task_id = t.id)"
NOW_EPOCH = "((julianday('now') - 2440587.5) * 86400.0)"

TASK_COLUMNS = (
    "t.id, t.title, t.description, t.design, t.acceptance_criteria, t.notes, t.status, t.priority, "
    "t.issue_type, t.assignee, t.created_at, t.updated_at, t.closed_at, t.close_reason, "
    f"t.lease_expires_at, t.extra, {LABELS_JSON} AS labels"
)


def sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


DONE = sql_list(DONE_STATUSES)


def _waits_for_unmet(edge: str) -> str:
    """SQL: the `waits-for` edge `edge` still holds its task back: the target has an unfinished child,
    and (for an any-children gate) none closed yet."""
    children = f"SELECT 1 FROM dependencies c JOIN tasks ct ON ct.id = c.issue_id " \
               f"WHERE c.depends_on_id = {edge}.depends_on_id AND c.type = 'parent-child'"
    return f"""(EXISTS ({children} AND ct.status NOT IN ({DONE}))
        AND NOT ({edge}.gate = '{ANY_CHILDREN}' AND EXISTS ({children} AND ct.status = 'closed')))"""


def _holds_back(edge: str) -> str:
    """SQL: the dependency row `edge` holds its task back by itself (a blocker or gate unfinished)."""
    return f"""((({edge}.type IN ({sql_list(BLOCKING_DEP_TYPES)}) AND EXISTS (
            SELECT 1 FROM tasks b WHERE b.id = {edge}.depends_on_id AND b.status NOT IN ({DONE})))
        OR ({edge}.type = 'waits-for' AND {_waits_for_unmet(edge)})))"""


# Beads' definition, computed from scratch: t is blocked when it is not done and it, or any
# not-done ancestor through parent-child, has an edge that holds it back. The reference for
# the stored `blocked` flag; used to fill it in bulk and to check it in tests.
BLOCKED_PREDICATE = f"""(CASE WHEN t.status NOT IN ({DONE}) AND EXISTS (
    WITH RECURSIVE anc(id) AS (
        SELECT t.id
        UNION
        SELECT d.depends_on_id FROM dependencies d
        JOIN anc ON d.issue_id = anc.id
        JOIN tasks p ON p.id = d.depends_on_id
        WHERE d.type = 'parent-child' AND p.status NOT IN ({DONE})
    )
    SELECT 1 FROM anc JOIN dependencies d ON d.issue_id = anc.id WHERE {_holds_back("d")}
) THEN 1 ELSE 0 END)"""

# The same, one step deep: uses the parents' stored flags, so refreshing one task is cheap.
_BLOCKED_LOCALLY = f"""(CASE WHEN t.status NOT IN ({DONE}) AND (
    EXISTS (SELECT 1 FROM dependencies d WHERE d.issue_id = t.id AND {_holds_back("d")})
    OR EXISTS (SELECT 1 FROM dependencies d JOIN tasks p ON p.id = d.depends_on_id
               WHERE d.issue_id = t.id AND d.type = 'parent-child' AND p.blocked = 1)) THEN 1 ELSE 0 END)"""

# Deferred (Beads' defer_until, while in the future): the task itself, or its parent.
_DEFERRED = f"""(coalesce(t.defer_ts, 0) > {NOW_EPOCH} OR EXISTS (
    SELECT 1 FROM dependencies dp JOIN tasks p ON p.id = dp.depends_on_id
    WHERE dp.issue_id = t.id AND dp.type = 'parent-child' AND p.defer_ts > {NOW_EPOCH}))"""
_OPEN_WORK = f"t.status = 'open' AND t.never_ready = 0 AND t.issue_type NOT IN ({sql_list(NON_WORK_TYPES)})"
READY_WHERE = f"{_OPEN_WORK} AND t.blocked = 0 AND NOT {_DEFERRED}"
WAITING_WHERE = f"{_OPEN_WORK} AND (t.blocked = 1 OR {_DEFERRED})"
READY_ORDER = "ORDER BY t.rank, t.priority, t.created_ts, t.id"
# A task's edges in the order its file listed them; edges added since come after, oldest first.
DEPENDENCY_ORDER = "pos, created_at, depends_on_id"



def epoch(timestamp: str) -> float:
    return parse_time(timestamp).timestamp()


def row_to_task(row: Any) -> Task:
    return Task(
        id=row["id"], title=row["title"], description=row["description"], design=row["design"],
        acceptance_criteria=row["acceptance_criteria"], notes=row["notes"], status=row["status"],
        priority=row["priority"], issue_type=row["issue_type"], assignee=row["assignee"],
        created_at=row["created_at"], updated_at=row["updated_at"], closed_at=row["closed_at"],
        close_reason=row["close_reason"], lease_expires_at=row["lease_expires_at"],
        extra=json.loads(row["extra"]), labels=json.loads(row["labels"] or "[]"),
    )




def dependency_from_row(row: Any) -> Dependency:
    return Dependency(row["issue_id"], row["depends_on_id"], row["type"], row["created_at"], json.loads(row["extra"]))


def comment_from_row(row: Any) -> Comment:
    return Comment(json.loads(row["id"]), row["task_id"], row["author"], row["text"], row["created_at"])


def attempt_from_row(row: Any) -> Attempt:
    from gasworks.records import Attempt  # here: records load on first use (see models.py)

    return Attempt(
        id=row["id"], task_id=row["task_id"], slot=row["slot"], started_at=row["started_at"],
        ended_at=row["ended_at"], exit_code=row["exit_code"], outcome=row["outcome"], log_path=row["log_path"],
        branch=row["branch"], base_commit=row["base_commit"], commits=json.loads(row["commits"]),
        note=row["note"], pid=row["pid"], pid_started=row["pid_started"], tokens_in=row["tokens_in"],
        tokens_out=row["tokens_out"], number=row["attempt_number"],
    )


# Every attempt row with its number within its task (the first attempt of a task is 1).
ATTEMPT_COLUMNS = ("*, (SELECT count(*) FROM attempts earlier WHERE earlier.task_id = attempts.task_id "
                   "AND earlier.id <= attempts.id) AS attempt_number")


def load_attempt(db: Any, attempt_id: int) -> Attempt:
    row = db.execute(f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no attempt {attempt_id}")
    return attempt_from_row(row)


def merge_from_row(row: Any) -> Merge:
    from gasworks.records import Merge  # here: records load on first use (see models.py)

    return Merge(**{key: row[key] for key in row.keys()})


def load_merge(db: Any, merge_id: int) -> Merge:
    row = db.execute("SELECT * FROM merges WHERE id = ?", (merge_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no merge {merge_id}")
    return merge_from_row(row)


def insert_event(db: Any, task_id: str, kind: str, actor: str, old: str = "", new: str = "",
                 detail: dict[str, Any] | None = None, at: str | None = None) -> None:
    db.execute(
        "INSERT INTO events (task_id, kind, actor, old_value, new_value, detail, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (task_id, kind, actor, old, new, json.dumps(detail or {}, ensure_ascii=False), at or now_iso()),
    )


def load_task(db: Any, task_id: str, full: bool = True) -> Task:
    row = db.execute(f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = ?", (task_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no task {task_id!r}")
    task = row_to_task(row)
    if full:
        task.dependencies = [
            dependency_from_row(r) for r in db.execute(
                f"SELECT * FROM dependencies WHERE issue_id = ? ORDER BY {DEPENDENCY_ORDER}", (task_id,)
            )
        ]
        task.comments = [
            comment_from_row(r) for r in db.execute("SELECT * FROM comments WHERE task_id = ? ORDER BY seq", (task_id,))
        ]
    return task


def new_id(db: Any, prefix: str, seed: str, taken: AbstractSet[str] = frozenset()) -> str:
    """A free id: in no row, nor in `taken` (ids handed out for rows not written yet)."""
    for candidate in ids.candidate_ids(prefix, seed):
        if candidate not in taken and not db.execute("SELECT 1 FROM tasks WHERE id = ?", (candidate,)).fetchone():
            return candidate
    raise StoreError(f"could not find a free id with prefix {prefix!r}")  # 60 collisions in a row


def next_child_id(db: Any, parent_id: str) -> str:
    # Children sort between "parent." and "parent/" ('/' follows '.' in ASCII).
    rows = db.execute("SELECT id FROM tasks WHERE id > ? AND id < ?", (parent_id + ".", parent_id + "/"))
    numbers = [int(rest) for (child,) in rows if (rest := child[len(parent_id) + 1:]).isdigit()]
    return ids.child_id(parent_id, max(numbers, default=0) + 1)


def gating_path(db: Any, start: str, goal: str) -> list[str]:
    """A path start -> ... -> goal along gating edges, or [] (breadth-first, so the shortest)."""
    gating = sql_list(GATING_DEP_TYPES)
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


def upsert_task(db: Any, task: Task) -> None:
    """Write a whole task as a file carries it. As in Beads, one edge per pair: a later edge to
    the same target is ignored."""
    db.execute(
        "INSERT INTO tasks (id, title, description, design, acceptance_criteria, notes, status, priority, "
        "issue_type, assignee, created_at, created_ts, updated_at, closed_at, close_reason, extra, never_ready, "
        "defer_ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "title = excluded.title, description = excluded.description, design = excluded.design, "
        "acceptance_criteria = excluded.acceptance_criteria, notes = excluded.notes, status = excluded.status, "
        "priority = excluded.priority, issue_type = excluded.issue_type, assignee = excluded.assignee, "
        "created_at = excluded.created_at, created_ts = excluded.created_ts, updated_at = excluded.updated_at, "
        "closed_at = excluded.closed_at, close_reason = excluded.close_reason, extra = excluded.extra, "
        "never_ready = excluded.never_ready, defer_ts = excluded.defer_ts, lease_expires_at = NULL",
        (task.id, task.title, task.description, task.design, task.acceptance_criteria, task.notes, task.status,
         task.priority, task.issue_type, task.assignee, task.created_at, epoch(task.created_at),
         task.updated_at, task.closed_at, task.close_reason, json.dumps(task.extra, ensure_ascii=False),
         int(never_ready(task.extra)), defer_epoch(task.extra)),
    )
    for table in ("labels", "dependencies", "comments"):
        db.execute(f"DELETE FROM {table} WHERE {'issue_id' if table == 'dependencies' else 'task_id'} = ?",
                   (task.id,))
    db.executemany("INSERT INTO labels VALUES (?, ?) ON CONFLICT DO NOTHING", [(task.id, lb) for lb in task.labels])
    db.executemany(
        "INSERT INTO dependencies (issue_id, depends_on_id, type, created_at, extra, gate, pos) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (issue_id, depends_on_id) DO NOTHING",
        [(task.id, d.depends_on_id, d.type, d.created_at, json.dumps(d.extra, ensure_ascii=False), gate(d.extra), pos)
         for pos, d in enumerate(task.dependencies)],
    )
    db.executemany(
        "INSERT INTO comments (id, task_id, author, text, created_at) VALUES (?, ?, ?, ?, ?)",
        [(json.dumps(c.id), task.id, c.author, c.text, c.created_at) for c in task.comments],
    )


def blocking_graph(db: Any, leave_out: set[str]) -> dict[str, set[str]]:
    """The blocks/conditional-blocks edges stored, but for those of the tasks in `leave_out`:
    issue_id -> the ids it waits on."""
    graph: dict[str, set[str]] = {}
    for source, target in db.execute(
        f"SELECT issue_id, depends_on_id FROM dependencies WHERE type IN ({sql_list(BLOCKING_DEP_TYPES)})"
    ):
        if source not in leave_out:
            graph.setdefault(source, set()).add(target)
    return graph


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def dependency_tree(db: Any, task_id: str, max_depth: int = 20) -> dict[str, Any]:
    """What a task waits on, recursively: {id, title, status, type, children, repeated}."""
    root = load_task(db, task_id, full=False)
    seen: set[str] = set()

    def node(task_id: str, title: str, status: str, dep_type: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {"id": task_id, "title": title, "status": status, "type": dep_type, "children": []}
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


def refresh_blocked(db: Any, seeds: list[str]) -> None:
    """Bring the stored `blocked` flag of `seeds` up to date, and of every descendant whose flag follows.

    Callers seed the tasks whose own inputs changed: see `affected_by_status` and `affected_by_edge`.
    The gating graph has no cycles (they are refused), so this ends.
    """
    queue = list(dict.fromkeys(seeds))
    while queue:
        task_id = queue.pop()
        row = db.execute(f"SELECT t.blocked, {_BLOCKED_LOCALLY} FROM tasks t WHERE t.id = ?", (task_id,)).fetchone()
        if row is None or row[0] == row[1]:
            continue
        db.execute("UPDATE tasks SET blocked = ? WHERE id = ?", (row[1], task_id))
        queue.extend(r[0] for r in db.execute(
            "SELECT issue_id FROM dependencies WHERE depends_on_id = ? AND type = 'parent-child'", (task_id,)))


def affected_by_status(db: Any, task_id: str) -> list[str]:
    """Tasks whose flag may change when `task_id` changes status: itself, what it blocks, and what
    waits for the children of its parents (it is one of those children)."""
    return [task_id, *(r[0] for r in db.execute(
        f"""SELECT issue_id FROM dependencies WHERE depends_on_id = ? AND type IN ({sql_list(BLOCKING_DEP_TYPES)})
            UNION
            SELECT w.issue_id FROM dependencies pc JOIN dependencies w ON w.depends_on_id = pc.depends_on_id
            WHERE pc.issue_id = ? AND pc.type = 'parent-child' AND w.type = 'waits-for'""",
        (task_id, task_id)))]


def affected_by_edge(db: Any, issue_id: str, depends_on_id: str, dep_type: str) -> list[str]:
    """Tasks whose flag may change when the edge issue_id -> depends_on_id is added or removed."""
    if dep_type != "parent-child":
        return [issue_id]
    # A new or lost child changes whether the parent's waits-for gates are met.
    return [issue_id, *(r[0] for r in db.execute(
        "SELECT issue_id FROM dependencies WHERE depends_on_id = ? AND type = 'waits-for'", (depends_on_id,)))]


def refresh_all_blocked(db: Any) -> None:
    """Recompute every flag from the definition (after a bulk import)."""
    db.execute(f"UPDATE tasks SET blocked = (SELECT {BLOCKED_PREDICATE} FROM tasks t WHERE t.id = tasks.id)")


def backfill_beads_columns(db: Any) -> None:
    """Fill the columns migration 3 added from the Beads fields rows already keep in `extra`."""
    for task_id, extra in db.execute("SELECT id, extra FROM tasks WHERE extra != '{}'").fetchall():
        fields = json.loads(extra)
        db.execute("UPDATE tasks SET never_ready = ?, defer_ts = ? WHERE id = ?",
                   (int(never_ready(fields)), defer_epoch(fields), task_id))
    for issue_id, target, extra in db.execute(
            "SELECT issue_id, depends_on_id, extra FROM dependencies WHERE type = 'waits-for'").fetchall():
        db.execute("UPDATE dependencies SET gate = ? WHERE issue_id = ? AND depends_on_id = ?",
                   (gate(json.loads(extra)), issue_id, target))
    refresh_all_blocked(db)
