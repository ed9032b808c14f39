"""Beads as the tracker: tasks live in bd, and gasworks reads and writes them through the `bd` CLI.

BeadsStore is the SQLite store kept as a local mirror (.gasworks/beads-mirror.db). bd is the
source of truth for tasks: their fields, status, assignee (the claim), labels and dependencies.
The mirror keeps what bd has no place for: attempts, the merge queue, locks, gate runs, events,
claim leases, retry backoff and sling order, and a copy of the tasks gasworks has seen, so those
rows have their task to point at.

- Reading: the copy, refreshed from bd first (beads_mirror.py); gasworks applies its own order,
  backoff and conflict-aware choice to what bd says is ready.
- Writing: every change goes to bd (BeadsTracker, through beads_writer.py) inside the local
  transaction that records it. If bd refuses, that transaction rolls back and the mirror is
  unchanged. If gasworks dies after bd accepted a change and before its own commit, bd is ahead:
  the next read takes bd's record, and `gasworks run` starts by taking every in_progress issue
  claimed by its `gasworks:` assignees from bd (`bd list --status in_progress`), then requeues
  them as after any crash.
- bd's records and flags are translated in beads_records.py; gasworks's own `merging` status is
  bd `in_progress` plus the label `gasworks:merging`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from gasworks.errors import TrackerError
from gasworks.models import Task
from gasworks.store import NewTask
from gasworks.store.bd import BdCli, capped
from gasworks.store.beads_mirror import BeadsMirror
from gasworks.store.beads_records import field_flags, label_flags
from gasworks.store.beads_writer import BeadsWriter, LostClaim
from gasworks.store.sqlite import SQLiteStore
from gasworks.store.tracker import Tracker

CLAIM_TRIES = 8
P = ParamSpec("P")
R = TypeVar("R")


def _refreshed_first(read: Callable[Concatenate[SQLiteStore, P], R]) -> Callable[Concatenate[BeadsStore, P], R]:
    """A read of the copy, after `bd ready` was mirrored (at most once a second)."""
    @functools.wraps(read)
    def reader(self: BeadsStore, *args: P.args, **kwargs: P.kwargs) -> R:
        self.refresh()
        return read(self, *args, **kwargs)
    return reader


class BeadsTracker(Tracker):
    """bd's half of every change to a task, made inside the mirror's transaction that records the
    other half: bd refusing rolls that back."""

    def __init__(self, bd: BdCli, mirror: BeadsMirror) -> None:
        self.bd, self.mirror, self.writer = bd, mirror, BeadsWriter(bd)

    def create(self, db: Any, new: NewTask, parent: str, deps: list[tuple[str, str]], actor: str) -> str:
        """In a batch, issues bd created before a failure stay in bd."""
        record = self.writer.create(new, parent, deps, actor=actor)
        return self.mirror.take_created(db, record, new, parent, deps, actor)

    def status(self, db: Any, current: Task, to_status: str, *, actor: str, reason: str, force: bool,
               claimer: str | None) -> None:
        if claimer is not None:
            self.writer.claim(current.id, claimer)  # bd's compare-and-set decides
        else:
            self.writer.change_status(current, to_status, actor=actor, reason=reason, force=force)
        self.mirror.expire()  # a close may have made others ready; any status may change `bd ready`

    def update(self, db: Any, task_id: str, *, actor: str, fields: dict[str, Any] | None = None,
               add_labels: Sequence[str] = (), remove_labels: Sequence[str] = (), note: str = "") -> None:
        flags = field_flags(fields or {}) + label_flags(list(add_labels), list(remove_labels)) + \
            ([f"--append-notes={capped(note)}"] if note else [])
        self.writer.update(task_id, flags, actor=self.mirror.actor_for(db, task_id, actor),
                           body=(fields or {}).get("description") or None)

    def comment(self, db: Any, task_id: str, text: str, *, author: str) -> None:
        self.bd.run(["comments", "add"], [], [task_id, capped(text)], actor=author)

    def dependency(self, db: Any, issue_id: str, depends_on_id: str, dep_type: str | None, *, actor: str) -> None:
        if dep_type is None:
            self.bd.run(["dep", "remove"], [], [issue_id, depends_on_id], actor=actor)
        else:
            self.bd.run(["dep", "add"], [f"--type={dep_type}"], [issue_id, depends_on_id], actor=actor)
        self.mirror.expire()


class BeadsStore(SQLiteStore):
    """Tasks in bd, everything else in the SQLite mirror: the SQLite store with a BeadsTracker,
    whose reads refresh the copy from bd first. Safe to share between threads: bd calls and the
    mirror writes that follow them hold the store's lock together."""

    def __init__(self, path: Path, bd: BdCli, *, sync: bool = True) -> None:
        super().__init__(path)
        self.bd = bd
        self.sync = sync
        self.mirror = BeadsMirror(bd, self._tx, self._lock)
        self.tracker = BeadsTracker(bd, self.mirror)

    # -- reading: the copy, refreshed from bd -------------------------------------------------

    list_tasks = _refreshed_first(SQLiteStore.list_tasks)
    counts = _refreshed_first(SQLiteStore.counts)
    export_tasks = _refreshed_first(SQLiteStore.export_tasks)
    add_suggestions = _refreshed_first(SQLiteStore.add_suggestions)  # it drops ideas that repeat open tasks

    def refresh(self, force: bool = False) -> None:
        """Mirror `bd ready` now, or (unless forced) if it was not read within the last second."""
        self.mirror.refresh(force)

    def get_task(self, task_id: str) -> Task:
        self.mirror.show_if_stale(task_id)
        return super().get_task(task_id)

    def claims(self, task_ids: list[str]) -> dict[str, str]:
        """Read from bd itself (one `bd show`): a task closed there while its agent runs is a cancel."""
        if task_ids:
            self.mirror.show(task_ids)
        return super().claims(task_ids)

    def resolve_id(self, text: str) -> str:
        return self.mirror.resolve(text)

    def ready(self, limit: int | None = None) -> list[Task]:
        self.refresh()
        found = super().ready(limit)
        if not found:  # "nothing to do" ends a run: say it only after asking bd just now
            self.refresh(force=True)
            found = super().ready(limit)
        return found

    def claim_next(self, assignee: str, *, lease_seconds: float, now: float | None = None,
                   avoid_labels: frozenset[str] = frozenset()) -> Task | None:
        """The next ready task in gasworks's order, claimed in bd; one someone else took meanwhile
        is looked up again and the next one tried."""
        self.refresh()
        for _ in range(CLAIM_TRIES):
            try:
                return super().claim_next(assignee, lease_seconds=lease_seconds, now=now, avoid_labels=avoid_labels)
            except LostClaim as lost:
                self.mirror.show([lost.task_id])
        return None

    def import_tasks(self, *args: Any, **kwargs: Any) -> Any:
        raise TrackerError("tasks live in bd here (tracker = \"beads\"): import with `bd import FILE`, or set "
                           "tracker = \"gasworks\" to keep them in .gasworks/gasworks.db")

    # -- Tracking: the run's edges -------------------------------------------------------------

    def reconcile(self, prefix: str) -> list[str]:
        return self.mirror.reconcile(prefix)

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
