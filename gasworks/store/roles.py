"""The store's seams: one small Protocol per role a caller plays, and `Store`, all of them at once.

A caller is typed against the narrowest role it needs (the dashboard reads through `StoreView`,
the witness renews leases through `Claims`), so the type checker says what it touches. Every
backend (SQLiteStore, PostgresStore, BeadsStore) implements `Store`, and tests/test_store_contract.py
runs one suite of each role against each of them.

`Tracking` is the one optional capability: what an outside tracker (bd) does at the edges of a
run. Its methods have no-op bodies, which a store that keeps its own tasks inherits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from gasworks.models import Comment, Dependency, Task

if TYPE_CHECKING:  # store/__init__.py imports this module; records.py loads on first use
    from gasworks.records import Attempt, Event, Merge
    from gasworks.store.values import ImportResult, NewTask
    from gasworks.store.board import BoardFilter


class TaskReader(Protocol):
    """The queue as it reads: one task, the ready ones, a filtered list, how many of each."""

    def get_task(self, task_id: str) -> Task: ...

    def resolve_id(self, text: str) -> str: ...

    def ready(self, limit: int | None = None) -> list[Task]: ...

    def list_tasks(self, statuses: list[str] | None = None, labels: list[str] | None = None,
                   issue_type: str | None = None, assignee: str | None = None,
                   limit: int | None = None, include_closed: bool = True, *, priority: int | None = None,
                   title: str | None = None, description: str | None = None, text: str | None = None,
                   blocked: bool = False) -> list[Task]: ...

    def counts(self) -> dict[str, int]: ...

    def export_tasks(self) -> Iterator[Task]: ...

    def blocked_with_reasons(self, limit: int) -> tuple[list[tuple[Task, str]], int]: ...

    def waiting(self, limit: int) -> tuple[list[Task], int]: ...

    def closed_times(self, since: str = "") -> list[str]: ...


class TaskGraph(Protocol):
    """What waits on what."""

    def is_blocked(self, task_id: str) -> bool: ...

    def blockers(self, task_id: str) -> list[str]: ...

    def dependents(self, task_id: str) -> list[Dependency]: ...

    def dependency_tree(self, task_id: str, max_depth: int = 20) -> dict[str, Any]: ...

    def depends_on(self, task_ids: Sequence[str]) -> dict[str, list[tuple[str, str, str]]]: ...


class Board(Protocol):
    """The dashboard's board: tasks by column, searched, filtered and paged in the store."""

    def board_counts(self, shown: BoardFilter) -> dict[str, int]: ...

    def board_page(self, column: str, shown: BoardFilter, *, offset: int, limit: int) -> list[Task]: ...


class Dependencies(TaskGraph, Protocol):
    """Adding and removing what waits on what."""

    def add_dependency(self, issue_id: str, depends_on_id: str, dep_type: str = "blocks", *,
                       actor: str) -> None: ...

    def remove_dependency(self, issue_id: str, depends_on_id: str, *, actor: str) -> None: ...


class TaskEditor(Protocol):
    """Making tasks and changing what they say (never their status)."""

    def create_task(self, new: NewTask, *, prefix: str, actor: str) -> Task: ...

    def create_tasks(self, news: list[NewTask], *, prefix: str, actor: str) -> list[Task]: ...

    def update_fields(self, task_id: str, *, actor: str, **changes: Any) -> Task: ...

    def change_labels(self, task_id: str, *, actor: str, add: Sequence[str] = (),
                      remove: Sequence[str] = ()) -> Task: ...

    def add_comment(self, task_id: str, text: str, *, author: str) -> Comment: ...


class TaskStatus(Protocol):
    """Status changes (each with its event, in one transaction) and the queue's order."""

    def transition(self, task_id: str, to_status: str, *, actor: str, expected: str | None = None,
                   reason: str = "") -> Task: ...

    def close_task(self, task_id: str, *, actor: str, reason: str = "", force: bool = False) -> Task: ...

    def send_back(self, task_id: str, *, to_status: str, note: str, actor: str,
                  add_labels: Sequence[str] = (), retry_at: float | None = None) -> Task: ...

    def set_retry_at(self, task_id: str, when: float | None) -> None: ...

    def sling(self, task_ids: list[str], *, actor: str, now: float | None = None) -> list[Task]: ...


class Claims(Protocol):
    """Taking work with a lease, and keeping or losing the lease."""

    def claim_next(self, assignee: str, *, lease_seconds: float, now: float | None = None,
                   avoid_labels: frozenset[str] = frozenset()) -> Task | None: ...

    def claim(self, task_id: str, assignee: str, *, lease_seconds: float, now: float | None = None) -> Task: ...

    def claims(self, task_ids: list[str]) -> dict[str, str]: ...

    def renew_lease(self, task_id: str, assignee: str, *, lease_seconds: float,
                    now: float | None = None) -> bool: ...

    def release_expired(self, now: float | None = None) -> list[str]: ...


class AttemptLog(Protocol):
    """Agent attempts as they are read: the list, and how many failed."""

    def attempts(self, task_id: str | None = None, *, running: bool = False,
                 limit: int = 1000) -> list[Attempt]: ...

    def failed_attempts(self, task_id: str) -> int: ...

    def failure_reasons(self, task_ids: Sequence[str] | None = None, *, open_only: bool = False,
                        limit: int = 1000) -> dict[str, tuple[str, str]]: ...


class Attempts(AttemptLog, Protocol):
    """Recording agent attempts: started, their process and tokens, how they ended."""

    def start_attempt(self, task_id: str, *, slot: str, log_path: str, branch: str, base_commit: str,
                      pid: int | None = None, pid_started: float | None = None) -> Attempt: ...

    def set_attempt_process(self, attempt_id: int, pid: int, pid_started: float | None,
                            log_path: str) -> None: ...

    def set_attempt_tokens(self, attempt_id: int, tokens_in: int, tokens_out: int) -> None: ...

    def finish_attempt(self, attempt_id: int, *, outcome: str, exit_code: int | None = None,
                       commits: Sequence[str] = (), note: str = "", task_status: str | None = None,
                       actor: str = "gasworks", add_labels: Sequence[str] = (),
                       merge_branch: str = "", merge_status: str = "queued") -> Attempt: ...

    def set_attempt_outcome(self, attempt_id: int, outcome: str, note: str) -> None: ...


class MergeLog(Protocol):
    """The merge queue as it is read: merges, one merge, gate run totals."""

    def merges(self, *, statuses: list[str] | None = None, task_id: str | None = None,
               limit: int = 1000, oldest_first: bool = False) -> list[Merge]: ...

    def merge(self, merge_id: int) -> Merge: ...

    def gate_run_totals(self) -> dict[str, float]: ...

    def merge_counts(self) -> dict[str, int]: ...

    def pregate_totals(self, last: int | None = None) -> dict[str, float]: ...


class MergeQueue(MergeLog, Protocol):
    """The merge queue as the refinery works it: enqueue, update, land, count gate runs."""

    def enqueue_merge(self, task_id: str, branch: str, head: str) -> Merge: ...

    def update_merge(self, merge_id: int, **fields: Any) -> Merge: ...

    def land(self, merge_ids: list[int], commit: str, move: Callable[[], tuple[str, str]], *,
             actor: str) -> tuple[str, str]: ...

    def record_gate_run(self, merge_ids: list[int], *, seconds: float, passed: bool,
                        on_tip: bool = False) -> None: ...

    def record_pregate(self, task_id: str, *, passed: bool, seconds: float, cpu_seconds: float,
                       actor: str) -> None: ...


class Reviews(Protocol):
    """A human's verdict on a finished branch that waits for review before the merge queue."""

    def review_merge(self, merge_id: int, to_status: str, *, actor: str, note: str = "") -> Merge: ...


class Locks(Protocol):
    """Named locks with a lease (the refinery's)."""

    def lock_owner(self, name: str) -> str: ...

    def acquire_lock(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> bool: ...

    def take_lock(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> tuple[bool, str]: ...

    def take_lock_from(self, name: str, dead_owner: str, owner: str, *, ttl: float) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...


class EventLog(Protocol):
    """What happened: the events, and counts of labels and kinds."""

    def events(self, task_id: str | None = None, limit: int = 100) -> list[Event]: ...

    def event_count(self, kind: str) -> int: ...

    def label_counts(self) -> dict[str, int]: ...


class Bulk(Protocol):
    """Tasks in bulk: import, memories, agents' suggestions, and the id prefix in use."""

    def import_tasks(self, tasks: list[Task], *, prefix: str, actor: str, dry_run: bool = False,
                     memories: dict[str, str] | None = None) -> ImportResult: ...

    def memories(self) -> dict[str, str]: ...

    def add_suggestions(self, titles: list[str], *, source: str | None, prefix: str, actor: str,
                        max_per_task: int, backlog_cap: int,
                        priority: int = 3) -> tuple[list[str], dict[str, int]]: ...

    def common_prefix(self, newest: int = 1000) -> str | None: ...


class Tracking(Protocol):
    """Optional: what an outside tracker holding the tasks does at a run's edges. The bodies here
    are what a store that keeps its own tasks does: nothing."""

    def reconcile(self, prefix: str) -> list[str]:
        """Take the claims the tracker holds for assignees starting with `prefix` (after a crash
        between a claim there and its record here); what was taken, as lines to show."""
        return []

    def after_run(self) -> list[str]:
        """Once a run ends (bd: `bd sync`); what was done, as lines to show."""
        return []


class StoreView(TaskReader, TaskGraph, AttemptLog, MergeLog, EventLog, Board, Protocol):
    """Everything a page or a report reads, and nothing that writes."""


class Store(StoreView, Dependencies, TaskEditor, TaskStatus, Claims, Attempts, MergeQueue, Reviews, Locks, Bulk,
            Tracking, Protocol):
    """All the roles: what open_store() and Project.open_store() return."""

    path: Any  # where it is, for messages: a file, or a URL without its password

    def batch(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


__all__ = ["AttemptLog", "Attempts", "Bulk", "Claims", "Dependencies", "EventLog", "Locks", "MergeLog", "MergeQueue",
           "Reviews", "Store", "StoreView", "TaskEditor", "TaskGraph", "TaskReader", "TaskStatus", "Tracking"]
