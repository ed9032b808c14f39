"""Beads as the tracker: tasks live in bd, and gasworks reads and writes them through the `bd` CLI.

BeadsStore is the SQLite store kept as a local mirror (.gasworks/beads-mirror.db). bd is the
source of truth for tasks: their fields, status, assignee (the claim), labels and dependencies.
The mirror keeps what bd has no place for: attempts, the merge queue, locks, gate runs, events,
claim leases, retry backoff and sling order, and a copy of the tasks gasworks has seen, so those
rows have their task to point at.

- Reading: the copy, refreshed from bd first (beads_mirror.py); gasworks applies its own order,
  backoff and conflict-aware choice to what bd says is ready.
- Writing: every change goes to bd first (beads_writer.py), inside the local transaction that
  records it. If bd refuses, that transaction rolls back and the mirror is unchanged. If gasworks
  dies after bd accepted a change and before its own commit, bd is ahead: the next read takes bd's
  record, and `gasworks run` starts by taking every in_progress issue claimed by its `gasworks:`
  assignees from bd (`bd list --status in_progress`), then requeues them as after any crash.
- bd's records and flags are translated in beads_records.py; gasworks's own `merging` status is
  bd `in_progress` plus the label `gasworks:merging`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gasworks.errors import InvalidValueError, TrackerError
from gasworks.models import Task
from gasworks.store import NewTask
from gasworks.store import rows as sqlrows
from gasworks.store.bd import BdCli, capped
from gasworks.store.beads_mirror import BeadsMirror
from gasworks.store.beads_records import field_flags, label_flags
from gasworks.store.beads_writer import BeadsWriter, LostClaim
from gasworks.store.sql import _EDITABLE
from gasworks.store.sqlite import SQLiteStore

CLAIM_TRIES = 8


def _refreshed_first(read: Callable[..., Any]) -> Callable[..., Any]:
    """A read of the copy, after `bd ready` was mirrored (at most once a second)."""
    @functools.wraps(read)
    def reader(self: BeadsStore, *args: Any, **kwargs: Any) -> Any:
        self.refresh()
        return read(self, *args, **kwargs)
    return reader


class BeadsStore(SQLiteStore):
    """Tasks in bd, everything else in the SQLite mirror. Safe to share between threads: bd calls
    and the mirror writes that follow them hold the store's lock together."""

    tracker = "beads"

    def __init__(self, path: Path, bd: BdCli, *, sync: bool = True) -> None:
        super().__init__(path)
        self.bd = bd
        self.sync = sync
        self.mirror = BeadsMirror(bd, self._tx, self._lock)
        self.writer = BeadsWriter(bd)
        self._local = threading.local()  # per thread: skip the push (a claim pushes itself), close --force

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

    # -- writing: bd first, then the copy, in one local transaction ---------------------------

    def _update(self, task_id: str, flags: list[str], *, actor: str, body: str | None = None) -> None:
        self.writer.update(task_id, flags, actor=self.mirror.actor_for(task_id, actor), body=body)

    def _create(self, db: Any, new: NewTask, resolve: Any, prefix: str, actor: str) -> str:
        """In a batch, issues bd created before a failure stay in bd."""
        parent = resolve(new.parent) if new.parent else ""
        deps = [(resolve(target), dep_type) for target, dep_type in new.deps]
        record = self.writer.create(new, parent, deps, actor=actor)
        return self.mirror.take_created(db, record, new, parent, deps, actor)

    def update_fields(self, task_id: str, *, actor: str, **changes: Any) -> Task:
        unknown = set(changes) - set(_EDITABLE)
        if changes and not unknown and str(changes.get("title", "x")).strip():
            self._update(task_id, field_flags(changes), actor=actor, body=changes.get("description") or None)
        return super().update_fields(task_id, actor=actor, **changes)  # the same refusals as ever, or the copy

    def change_labels(self, task_id: str, *, actor: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Task:
        if add or remove:
            self._update(task_id, label_flags(list(add), list(remove)), actor=actor)
        return super().change_labels(task_id, actor=actor, add=add, remove=remove)

    def add_comment(self, task_id: str, text: str, *, author: str):
        self.bd.run(["comments", "add"], [], [task_id, capped(text)], actor=author)
        return super().add_comment(task_id, text, author=author)

    def _add_dependency(self, db: Any, issue_id: str, depends_on_id: str, dep_type: str, actor: str,
                        now: str) -> None:
        super()._add_dependency(db, issue_id, depends_on_id, dep_type, actor, now)  # checks cycles first
        self.bd.run(["dep", "add"], [f"--type={dep_type}"], [issue_id, depends_on_id], actor=actor)
        self.mirror.expire()

    def remove_dependency(self, issue_id: str, depends_on_id: str, *, actor: str) -> None:
        self.bd.run(["dep", "remove"], [], [issue_id, depends_on_id], actor=actor)
        self.mirror.expire()
        super().remove_dependency(issue_id, depends_on_id, actor=actor)

    def send_back(self, task_id: str, *, to_status: str, note: str, actor: str, add_labels: Sequence[str] = (),
                  retry_at: float | None = None) -> Task:
        flags = label_flags(list(add_labels)) + ([f"--append-notes={capped(note)}"] if note else [])
        if flags:
            self._update(task_id, flags, actor=actor)
        return super().send_back(task_id, to_status=to_status, note=note, actor=actor, add_labels=add_labels,
                                 retry_at=retry_at)

    def finish_attempt(self, attempt_id: int, *, add_labels: Sequence[str] = (), **kwargs: Any):
        if add_labels:
            task_id = next((a.task_id for a in self.attempts(running=True) if a.id == attempt_id), "")
            if task_id:  # not yet recorded (a second reaper finds it ended and changes nothing)
                self._update(task_id, label_flags(list(add_labels)), actor="gasworks")
        return super().finish_attempt(attempt_id, add_labels=add_labels, **kwargs)

    def close_task(self, task_id: str, *, actor: str, reason: str = "", force: bool = False) -> Task:
        self._local.force = force  # for the `bd close` in _transition
        try:
            return super().close_task(task_id, actor=actor, reason=reason, force=force)
        finally:
            self._local.force = False

    def import_tasks(self, *args: Any, **kwargs: Any):
        raise TrackerError("tasks live in bd here (tracker = \"beads\"): import with `bd import FILE`, or set "
                           "tracker = \"gasworks\" to keep them in .gasworks/gasworks.db")

    def _transition(self, db: Any, task_id: str, to_status: str, *, actor: str, **kwargs: Any) -> None:
        """The local transition (checked against the table), then bd; bd refusing rolls it back."""
        current = sqlrows.load_task(db, task_id, full=False)
        super()._transition(db, task_id, to_status, actor=actor, **kwargs)
        if not getattr(self._local, "claimed", False):
            self.writer.change_status(current, to_status, actor=actor, reason=kwargs.get("reason", ""),
                                      force=getattr(self._local, "force", False))
            self.mirror.expire()  # a close may have made others ready; any status may change `bd ready`

    def _claim(self, db: Any, task_id: str, assignee: str, lease_seconds: float, now: float) -> None:
        """Claim in bd first (its compare-and-set decides), then here with a lease."""
        if lease_seconds <= 0:
            raise InvalidValueError(f"lease must be positive, got {lease_seconds}")
        self.writer.claim(task_id, assignee)
        self._local.claimed = True  # the claim is in bd already: _transition pushes nothing
        try:
            super()._claim(db, task_id, assignee, lease_seconds, now)
        finally:
            self._local.claimed = False
