"""Beads as the tracker: tasks live in bd, and gasworks reads and writes them through the `bd` CLI.

BeadsStore is the SQLite store kept as a local mirror (.gasworks/beads-mirror.db). bd is the
source of truth for tasks: their fields, status, assignee (the claim), labels and dependencies.
The mirror keeps what bd has no place for: attempts, the merge queue, locks, gate runs, events,
claim leases, retry backoff and sling order, and a copy of the tasks gasworks has seen, so those
rows have their task to point at.

- Reading: `bd ready --json` says what is ready (gasworks then applies its own order, backoff and
  conflict-aware choice to that set); open tasks of the mirror that bd no longer lists as ready are
  looked up with `bd show --json`. A task is looked up again with `bd show` when it is read and its
  copy is over a second old. A record from bd replaces the copy only when its `updated_at` is newer
  (ties keep the copy), so a stale read never undoes a claim made meanwhile.
- Writing: every change goes to bd first (`bd update --claim`, `bd update --status`, `bd close
  --reason`, `bd create`, `bd dep add`), inside the local transaction that records it. If bd
  refuses, that transaction rolls back and the mirror is unchanged. If gasworks dies after bd
  accepted a change and before its own commit, bd is ahead: the next read takes bd's record, and
  `gasworks run` starts by taking every in_progress issue claimed by its `gasworks:` assignees
  from bd (`bd list --status in_progress`), then requeues them as after any crash.
- gasworks's own `merging` status is bd `in_progress` plus the label `gasworks:merging`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from gasworks.beads import task_from_record
from gasworks.errors import AmbiguousIdError, ClaimError, InvalidValueError, NotFoundError, TrackerError
from gasworks.models import Dependency, Task, now_iso
from gasworks.store import NewTask
from gasworks.store import rows as sqlrows
from gasworks.store.bd import BdCli, BdResult, capped, csv_value
from gasworks.store.sql import _EDITABLE
from gasworks.store.sqlite import SQLiteStore

MERGING_LABEL = "gasworks:merging"
CLAIMER_PREFIX = "gasworks:"  # the dispatcher's assignees: gasworks:<host>/<slot>
REFRESH_SECONDS = 1.0
CLAIM_TRIES = 8
# Keys bd adds to its views of an issue; derived or about other issues, so not kept.
_VIEW_KEYS = frozenset({
    "schema_version", "dependency_count", "dependent_count", "comment_count", "parent", "dependents",
    "epic_total_children", "epic_closed_children", "epic_closeable", "blocked_by", "blocked_by_count", "_type",
})
_BD_FIELD_FLAGS = {"title": "title", "design": "design", "acceptance_criteria": "acceptance", "notes": "notes",
                   "priority": "priority", "issue_type": "type", "assignee": "assignee"}


class LostClaim(ClaimError):
    """bd refused a claim: someone else holds the issue, or it is no longer open."""

    def __init__(self, task_id: str, why: str) -> None:
        super().__init__(f"{task_id} could not be claimed in bd: {why}")
        self.task_id = task_id


def task_from_bd(record: dict[str, Any]) -> Task:
    """An issue as bd prints it (ready, show, list, create, update, close) as a Task."""
    fields = {key: value for key, value in record.items() if key not in _VIEW_KEYS}
    if isinstance(record.get("dependencies"), list):
        fields["dependencies"] = [_edge(str(record.get("id", "")), dep) for dep in record["dependencies"]]
    try:
        task = task_from_record(fields)
    except InvalidValueError as exc:
        raise TrackerError(f"bd answered an issue gasworks cannot read ({record.get('id', '?')}): {exc}") from None
    if not task.id:
        raise TrackerError("bd answered an issue without an id")
    if task.status == "in_progress" and MERGING_LABEL in task.labels:
        task.status = "merging"
    task.labels = [label for label in task.labels if label != MERGING_LABEL]
    return task


def _edge(issue_id: str, dep: Any) -> Any:
    """`bd show` lists the target issues themselves, each with the edge's `dependency_type`;
    `bd ready` and the JSONL list edge records. Both become edge records."""
    if not isinstance(dep, dict) or "depends_on_id" in dep:
        return dep
    return {"issue_id": issue_id, "depends_on_id": dep.get("id"), "type": dep.get("dependency_type") or "blocks"}


def _records(result: BdResult, what: str) -> list[dict[str, Any]]:
    data = result.data
    if data is None:
        return []
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in data):
        raise TrackerError(f"`{what}` answered something other than a list of issues")
    return data


def _label_flags(add: list[str] = (), remove: list[str] = ()) -> list[str]:
    return [f"--add-label={csv_value(label)}" for label in add] + \
           [f"--remove-label={csv_value(label)}" for label in remove]


class BeadsStore(SQLiteStore):
    """Tasks in bd, everything else in the SQLite mirror. Safe to share between threads: bd calls
    and the mirror writes that follow them hold the store's lock together."""

    tracker = "beads"

    def __init__(self, path: Path, bd: BdCli, *, sync: bool = True) -> None:
        super().__init__(path)
        self.bd = bd
        self.sync = sync
        self._local = threading.local()  # per thread: skip the push (a claim pushes itself), close --force
        self._refreshed = float("-inf")
        self._seen: dict[str, float] = {}
        self._claim_flag = True  # bd has `update --claim` (very old versions do not)

    # -- reading from bd --------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Mirror `bd ready`: what it lists is ready here; open tasks it does not list are looked up
        with `bd show` and, while still open, held back. At most once a second unless forced."""
        with self._lock:
            if not force and time.monotonic() - self._refreshed < REFRESH_SECONDS:
                return
            records = _records(self.bd.run(["ready"], ["--limit=0"]), "bd ready")
            ready = {record["id"] for record in records}
            with self._tx(write=True) as db:
                for record in records:
                    self._mirror(db, record)
                stale = [r[0] for r in db.execute("SELECT id FROM tasks WHERE status = 'open'") if r[0] not in ready]
            if stale:
                self._show(stale)
            with self._tx(write=True) as db:
                db.executemany("UPDATE tasks SET blocked = ? WHERE id = ? AND status = 'open'",
                               [(int(r[0] not in ready), r[0])
                                for r in db.execute("SELECT id FROM tasks WHERE status = 'open'").fetchall()])
            self._refreshed = time.monotonic()

    def _show(self, ids: list[str]) -> list[dict[str, Any]]:
        """`bd show IDS` into the mirror; ids bd does not know are left as they are."""
        try:
            records = _records(self.bd.run(["show"], [], ids), "bd show")
        except TrackerError as exc:
            if "not found" not in str(exc).lower():
                raise
            if len(ids) > 1:  # one of them is gone: the others one by one
                return [record for one in ids for record in self._show([one])]
            records = []
        with self._tx(write=True) as db:
            for record in records:
                self._mirror(db, record)
        seen = time.monotonic()
        self._seen.update(dict.fromkeys(ids, seen))
        return records

    def _mirror(self, db: Any, record: dict[str, Any]) -> Task | None:
        """Take bd's record of an issue unless the copy here is as new (then None). What a view of bd
        leaves out (labels, dependencies, comments) stays as it was; a claim's lease stays with it."""
        task = task_from_bd(record)
        old = db.execute("SELECT status, assignee, updated_at, lease_expires_at FROM tasks WHERE id = ?",
                         (task.id,)).fetchone()
        if old is not None and (not task.updated_at or
                                sqlrows.epoch(task.updated_at) <= sqlrows.epoch(old["updated_at"])):
            return None
        task.updated_at = task.updated_at or now_iso()
        task.created_at = task.created_at or task.updated_at
        if old is not None and not {"labels", "dependencies", "comments"} <= set(record):
            here = sqlrows.load_task(db, task.id)
            task.labels = task.labels if "labels" in record else here.labels
            task.dependencies = task.dependencies if "dependencies" in record else here.dependencies
            task.comments = task.comments if "comments" in record else here.comments
            if "labels" not in record and task.status == "in_progress" and old["status"] == "merging":
                task.status = "merging"
        sqlrows.upsert_task(db, task)
        if old is not None and old["lease_expires_at"] is not None and \
                (old["status"], old["assignee"]) == (task.status, task.assignee):
            db.execute("UPDATE tasks SET lease_expires_at = ? WHERE id = ?", (old["lease_expires_at"], task.id))
        if old is not None and old["status"] != task.status:
            sqlrows.insert_event(db, task.id, "status", "bd", old["status"], task.status, {"from": "bd"})
        sqlrows.refresh_blocked(db, sqlrows.affected_by_status(db, task.id))
        return task

    def get_task(self, task_id: str) -> Task:
        if time.monotonic() - self._seen.get(task_id, float("-inf")) >= REFRESH_SECONDS:
            with self._lock:
                self._show([task_id])
        return super().get_task(task_id)

    def resolve_id(self, text: str) -> str:
        """Whatever bd resolves (it takes partial ids too), looked up now."""
        with self._lock:
            try:
                records = _records(self.bd.run(["show"], [], [text]), "bd show")
            except TrackerError as exc:
                message = str(exc).lower()
                if "not found" in message or "no issue" in message:
                    raise NotFoundError(f"no task {text!r} in bd") from None
                if "ambiguous" in message or "multiple" in message:
                    raise AmbiguousIdError(str(exc)) from None
                raise
            if not records:
                raise NotFoundError(f"no task {text!r} in bd")
            with self._tx(write=True) as db:
                self._mirror(db, records[0])
            self._seen[records[0]["id"]] = time.monotonic()
            return records[0]["id"]

    def ready(self, limit: int | None = None) -> list[Task]:
        self.refresh()
        found = super().ready(limit)
        if not found:  # "nothing to do" ends a run: say it only after asking bd just now
            self.refresh(force=True)
            found = super().ready(limit)
        return found

    def list_tasks(self, *args: Any, **kwargs: Any) -> list[Task]:
        self.refresh()
        return super().list_tasks(*args, **kwargs)

    def counts(self) -> dict[str, int]:
        self.refresh()
        return super().counts()

    def export_tasks(self):
        self.refresh()
        return super().export_tasks()

    def reconcile(self, prefix: str) -> list[str]:
        """Take from bd every in_progress issue one of our assignees (`prefix`...) holds: after a crash
        between a claim in bd and its record here, the dispatcher then requeues it like any claim a
        stopped run left."""
        with self._lock:
            records = _records(self.bd.run(["list"], ["--status=in_progress", "--limit=0"]), "bd list")
            done = []
            with self._tx(write=True) as db:
                for record in records:
                    if not str(record.get("assignee") or "").startswith(prefix):
                        continue
                    before = db.execute("SELECT status FROM tasks WHERE id = ?", (record["id"],)).fetchone()
                    task = self._mirror(db, record)
                    if task is not None and (before is None or before[0] != task.status):
                        done.append(f"{task.id} is {task.status} in bd, claimed by {task.assignee}: taken from bd")
            return done

    def after_run(self) -> list[str]:
        """`bd sync` once a run ends (bd_sync = true), where the installed bd has the command."""
        if not self.sync:
            return []
        try:
            self.bd.run(["sync"], as_json=False)
        except TrackerError as exc:
            if "unknown command" in str(exc).lower():
                return ["this bd has no `bd sync` (it keeps issues in Dolt): nothing to sync"]
            return [f"bd sync did not finish: {exc}"]
        return ["ran `bd sync`"]

    # -- writing through bd -----------------------------------------------------------------

    def _actor_for(self, task_id: str, actor: str) -> str:
        """Who acts in bd: the gasworks claimer while it holds the task (bd fences a claim against
        others), else the caller."""
        with self._tx() as db:
            row = db.execute("SELECT status, assignee FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return _claimer_or(row["status"], row["assignee"], actor) if row else actor

    def _update(self, task_id: str, flags: list[str], *, actor: str, body: str | None = None) -> dict[str, Any]:
        result = self.bd.run(["update"], flags, [task_id], actor=actor, body=body)
        return _answer_for(result, task_id, "update")

    def _create(self, db: Any, new: NewTask, resolve: Any, prefix: str, actor: str) -> str:
        """`bd create`, then the mirror row (with the labels and edges asked for, which bd's answer
        leaves out). In a batch, issues bd created before a failure stay in bd."""
        parent = resolve(new.parent) if new.parent else ""
        deps = [(resolve(target), dep_type) for target, dep_type in new.deps]
        flags = [f"--priority={new.priority}", f"--type={new.issue_type}"]
        flags += [f"--{flag}={capped(value)}" for flag, value in (
            ("design", new.design), ("acceptance", new.acceptance_criteria), ("notes", new.notes),
            ("assignee", new.assignee)) if value]
        flags += [f"--labels={csv_value(label)}" for label in new.labels]
        if parent:
            flags.append(f"--parent={parent}")
        if deps:  # bare X: the new issue waits on X (`blocks:X` would turn the edge round)
            flags.append("--deps=" + ",".join(t if k == "blocks" else f"{k}:{t}" for t, k in deps))
        result = self.bd.run(["create"], flags, [capped(new.title)], actor=actor, body=new.description or None)
        records = _records(result, "bd create")
        if len(records) != 1:
            raise TrackerError("`bd create` answered no issue")
        task = task_from_bd(records[0])
        if "labels" not in records[0]:
            inherited = sqlrows.load_task(db, parent, full=False).labels if parent else []
            task.labels = list(dict.fromkeys([*new.labels, *inherited]))
        task.dependencies = [Dependency(task.id, target, dep_type) for target, dep_type in
                             ([(parent, "parent-child")] if parent else []) + deps]
        task.updated_at = task.updated_at or now_iso()
        task.created_at = task.created_at or task.updated_at
        sqlrows.upsert_task(db, task)
        sqlrows.refresh_blocked(db, [task.id])
        sqlrows.insert_event(db, task.id, "created", actor, new=task.status)
        self._seen[task.id] = time.monotonic()
        return task.id

    def add_suggestions(self, titles: list[str], **kwargs: Any) -> tuple[list[str], dict[str, int]]:
        self.refresh()
        return super().add_suggestions(titles, **kwargs)

    def update_fields(self, task_id: str, *, actor: str, **changes: Any) -> Task:
        unknown = set(changes) - set(_EDITABLE)
        if changes and not unknown and str(changes.get("title", "x")).strip():
            flags = [f"--{_BD_FIELD_FLAGS[name]}={capped(str(value))}" for name, value in changes.items()
                     if name != "description"]
            description = changes.get("description")
            if description == "":
                flags.append("--description=")
            self._update(task_id, flags, actor=self._actor_for(task_id, actor), body=description or None)
        return super().update_fields(task_id, actor=actor, **changes)  # the same refusals as ever, or the copy

    def change_labels(self, task_id: str, *, actor: str, add: list[str] = (), remove: list[str] = ()) -> Task:
        if add or remove:
            self._update(task_id, _label_flags(list(add), list(remove)), actor=self._actor_for(task_id, actor))
        return super().change_labels(task_id, actor=actor, add=add, remove=remove)

    def add_comment(self, task_id: str, text: str, *, author: str):
        self.bd.run(["comments", "add"], [], [task_id, capped(text)], actor=author)
        return super().add_comment(task_id, text, author=author)

    def _add_dependency(self, db: Any, issue_id: str, depends_on_id: str, dep_type: str, actor: str,
                        now: str) -> None:
        super()._add_dependency(db, issue_id, depends_on_id, dep_type, actor, now)  # checks cycles first
        self.bd.run(["dep", "add"], [f"--type={dep_type}"], [issue_id, depends_on_id], actor=actor)
        self._refreshed = float("-inf")

    def remove_dependency(self, issue_id: str, depends_on_id: str, *, actor: str) -> None:
        self.bd.run(["dep", "remove"], [], [issue_id, depends_on_id], actor=actor)
        self._refreshed = float("-inf")
        super().remove_dependency(issue_id, depends_on_id, actor=actor)

    def send_back(self, task_id: str, *, to_status: str, note: str, actor: str, add_labels: list[str] = ()) -> Task:
        flags = _label_flags(list(add_labels)) + ([f"--append-notes={capped(note)}"] if note else [])
        if flags:
            self._update(task_id, flags, actor=self._actor_for(task_id, actor))
        return super().send_back(task_id, to_status=to_status, note=note, actor=actor, add_labels=add_labels)

    def finish_attempt(self, attempt_id: int, *, add_labels: list[str] = (), **kwargs: Any):
        if add_labels:
            task_id = next((a.task_id for a in self.attempts(running=True) if a.id == attempt_id), "")
            if task_id:  # not yet recorded (a second reaper finds it ended and changes nothing)
                self._update(task_id, _label_flags(list(add_labels)), actor=self._actor_for(task_id, "gasworks"))
        return super().finish_attempt(attempt_id, add_labels=add_labels, **kwargs)

    def close_task(self, task_id: str, *, actor: str, reason: str = "", force: bool = False) -> Task:
        self._local.force = force
        try:
            return super().close_task(task_id, actor=actor, reason=reason, force=force)
        finally:
            self._local.force = False

    def import_tasks(self, *args: Any, **kwargs: Any):
        raise TrackerError("tasks live in bd here (tracker = \"beads\"): import with `bd import FILE`, or set "
                           "tracker = \"gasworks\" to keep them in .gasworks/gasworks.db")

    # -- status: every transition goes to bd too ---------------------------------------------

    def _transition(self, db: Any, task_id: str, to_status: str, *, actor: str, **kwargs: Any) -> None:
        """The local transition (checked against the table), then bd; bd refusing rolls it back."""
        current = sqlrows.load_task(db, task_id, full=False)
        super()._transition(db, task_id, to_status, actor=actor, **kwargs)
        if not getattr(self._local, "claimed", False):
            self._push(current, to_status, actor=actor, reason=kwargs.get("reason", ""))

    def _push(self, current: Task, to_status: str, *, actor: str, reason: str) -> None:
        who = _claimer_or(current.status, current.assignee, actor)
        was_merging = current.status == "merging"
        if to_status == "closed":
            force = ["--force"] if getattr(self._local, "force", False) else []
            result = self.bd.run(["close"], [f"--reason={capped(reason or 'Closed')}", *force], [current.id],
                                 actor=who)
            _answer_for(result, current.id, "close")
            self._refreshed = float("-inf")  # what it blocked may be ready now
            if was_merging:
                try:  # tidy only: a closed issue is never read as merging
                    self.bd.run(["update"], _label_flags(remove=[MERGING_LABEL]), [current.id], actor=who)
                except TrackerError:
                    pass
            return
        flags = [f"--status={'in_progress' if to_status == 'merging' else to_status}"]
        if to_status == "open" and current.status in ("in_progress", "merging"):
            flags.append("--assignee=")  # the claim is released
        if to_status == "merging" and not was_merging:
            flags += _label_flags(add=[MERGING_LABEL])
        elif was_merging and to_status != "merging":
            flags += _label_flags(remove=[MERGING_LABEL])
        self._update(current.id, flags, actor=who)
        self._refreshed = float("-inf")  # what bd holds ready may have changed with it

    def _claim(self, db: Any, task_id: str, assignee: str, lease_seconds: float, now: float) -> None:
        """Claim in bd first (its compare-and-set decides), then here with a lease."""
        if lease_seconds <= 0:
            raise InvalidValueError(f"lease must be positive, got {lease_seconds}")
        self._bd_claim(task_id, assignee)
        self._local.claimed = True
        try:
            super()._claim(db, task_id, assignee, lease_seconds, now)
        finally:
            self._local.claimed = False

    def _bd_claim(self, task_id: str, assignee: str) -> None:
        if not self._claim_flag:
            self._claim_by_status(task_id, assignee)
            return
        try:
            result = self.bd.run(["update"], ["--claim"], [task_id], actor=assignee)
        except TrackerError as exc:
            message = str(exc)
            if "unknown flag" in message and "claim" in message:
                self._claim_flag = False
                self._claim_by_status(task_id, assignee)
                return
            if "already claimed" in message.lower() or "claimable" in message.lower():
                raise LostClaim(task_id, message.split("failed: ", 1)[-1]) from None
            raise
        issue = next((r for r in _records(result, "bd update") if r["id"] == task_id), None)
        if issue is None or issue.get("status") != "in_progress" or issue.get("assignee") != assignee:
            raise LostClaim(task_id, result.warning or "bd did not hand it over")

    def _claim_by_status(self, task_id: str, assignee: str) -> None:
        """For a bd without `update --claim`: look, then set. Not atomic: two claimers may both win."""
        shown = next(iter(_records(self.bd.run(["show"], [], [task_id]), "bd show")), None)
        if shown is None or shown.get("status") != "open" or (shown.get("assignee") or assignee) != assignee:
            raise LostClaim(task_id, f"it is {shown.get('status') if shown else 'gone'}"
                                     f"{' for ' + shown['assignee'] if shown and shown.get('assignee') else ''}")
        self._update(task_id, ["--status=in_progress", f"--assignee={assignee}"], actor=assignee)

    def claim_next(self, assignee: str, *, lease_seconds: float, now: float | None = None,
                   avoid_labels: frozenset[str] = frozenset()) -> Task | None:
        """The next ready task in gasworks's order, claimed in bd; one someone else took meanwhile
        is looked up again and the next one tried."""
        self.refresh()
        for _ in range(CLAIM_TRIES):
            try:
                return super().claim_next(assignee, lease_seconds=lease_seconds, now=now, avoid_labels=avoid_labels)
            except LostClaim as lost:
                with self._lock:
                    self._show([lost.task_id])
        return None


def _claimer_or(status: str, assignee: str, actor: str) -> str:
    return assignee if status in ("in_progress", "merging") and assignee.startswith(CLAIMER_PREFIX) else actor


def _answer_for(result: BdResult, task_id: str, verb: str) -> dict[str, Any]:
    """The issue bd says it changed; bd versions that skip a failed id still exit 0, so none is an error."""
    data = result.data
    if isinstance(data, dict) and isinstance(data.get("closed"), list):  # close --suggest-next and friends
        data = data["closed"]
    found = next((r for r in _records(BdResult(data, ""), f"bd {verb}") if r["id"] == task_id), None)
    if found is None:
        raise TrackerError(f"`bd {verb} {task_id}` changed nothing" + (f": {result.warning}" if result.warning else ""))
    return found
