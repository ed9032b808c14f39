"""The task model, shaped like a Beads issue so `.beads/issues.jsonl` round-trips.

No I/O here: the store persists these, the CLI prints them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from gasworks.errors import InvalidValueError

if TYPE_CHECKING:
    from gasworks.records import Attempt as Attempt
    from gasworks.records import Event as Event
    from gasworks.records import Merge as Merge


class Word(str, enum.Enum):
    """A str Enum whose str() and format() give its value, as enum.StrEnum does from Python 3.11 on:
    f-strings, SQL parameters, JSON and bd arguments all see the plain word ("open", not "Status.OPEN")."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Status(Word):
    """Statuses gasworks acts on. Beads' other built-ins and custom statuses are stored as given."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    MERGING = "merging"  # gasworks: branch finished, waiting in the merge queue
    BLOCKED = "blocked"
    DEFERRED = "deferred"
    PINNED = "pinned"
    HOOKED = "hooked"
    CLOSED = "closed"


# Every status change goes through the store's transition(), which checks this table.
# A status missing here (a Beads custom status) may only go back to open or to closed.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.OPEN: frozenset({Status.IN_PROGRESS, Status.MERGING, Status.BLOCKED, Status.DEFERRED, Status.PINNED,
                            Status.HOOKED, Status.CLOSED}),
    Status.IN_PROGRESS: frozenset({Status.OPEN, Status.MERGING, Status.BLOCKED, Status.DEFERRED, Status.CLOSED}),
    Status.MERGING: frozenset({Status.OPEN, Status.BLOCKED, Status.CLOSED}),
    Status.BLOCKED: frozenset({Status.OPEN, Status.IN_PROGRESS, Status.MERGING, Status.DEFERRED, Status.CLOSED}),
    Status.DEFERRED: frozenset({Status.OPEN, Status.BLOCKED, Status.CLOSED}),
    Status.PINNED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.HOOKED: frozenset({Status.OPEN, Status.IN_PROGRESS, Status.CLOSED}),
    Status.CLOSED: frozenset({Status.OPEN}),
}
CUSTOM_STATUS_TARGETS: frozenset[str] = frozenset({Status.OPEN, Status.CLOSED})

# Statuses whose blockers no longer hold anyone back (Beads: closed and pinned).
DONE_STATUSES = (Status.CLOSED, Status.PINNED)


def allowed_targets(status: str) -> frozenset[str]:
    return ALLOWED_TRANSITIONS.get(status, CUSTOM_STATUS_TARGETS)


# The names the fleet claims tasks under (gasworks:w3, gasworks:host/w3): claims, not people.
AGENT_ASSIGNEE_PREFIX = "gasworks:"


def releases_claim(from_status: str, to_status: str, assignee: str) -> bool:
    """Whether a status change lets go of the assignee: a claim released back to open, or the
    fleet's own claim name on a task that leaves its hands (back to open, blocked, deferred), so
    that nothing stale keeps the fleet from taking the task again (agents take unassigned tasks)."""
    if to_status == Status.OPEN and from_status in (Status.IN_PROGRESS, Status.MERGING):
        return True
    return assignee.startswith(AGENT_ASSIGNEE_PREFIX) and to_status in (Status.OPEN, Status.BLOCKED, Status.DEFERRED)


class DepType(Word):
    BLOCKS = "blocks"
    PARENT_CHILD = "parent-child"
    RELATED = "related"
    DISCOVERED_FROM = "discovered-from"
    CONDITIONAL_BLOCKS = "conditional-blocks"
    WAITS_FOR = "waits-for"


# Edge types that gate readiness (Beads "AffectsReadyWork"); all others are plain links.
BLOCKING_DEP_TYPES = ("blocks", "conditional-blocks")
GATING_DEP_TYPES = ("blocks", "parent-child", "conditional-blocks", "waits-for")
# The types `gasworks dep add` offers; import accepts any non-empty type up to 50 chars.
CLI_DEP_TYPES = tuple(t.value for t in DepType)

ISSUE_TYPES = ("task", "bug", "feature", "epic", "chore")
# Beads types that are bookkeeping, never work for an agent: ready() leaves them out.
NON_WORK_TYPES = ("epic", "merge-request", "gate", "molecule", "message", "agent", "role", "rig")

# A task's expected files, as labels `files:<path>`: the scheduler keeps overlapping tasks apart.
FILES_LABEL = "files:"

PRIORITY_MIN, PRIORITY_MAX = 0, 4
DEFAULT_PRIORITY = 2


def parse_priority(value: Any) -> int:
    """Accept 0..4 or P0..P4 (as Beads does); anything else is a clear error."""
    text = str(value).strip()
    if text[:1] in ("P", "p"):
        text = text[1:]
    try:
        number = int(text)
    except ValueError:
        number = -1
    if isinstance(value, bool) or not PRIORITY_MIN <= number <= PRIORITY_MAX:
        raise InvalidValueError(f"invalid priority {value!r}: use 0-4 (0 is highest) or P0-P4")
    return number


def parse_issue_type(value: str) -> str:
    if value not in ISSUE_TYPES:
        raise InvalidValueError(f"invalid type {value!r}: use one of {', '.join(ISSUE_TYPES)}")
    return value


def now_iso() -> str:
    """UTC, microseconds, RFC 3339 with a Z: sorts as text and parses in Go and Python."""
    return iso_from_epoch(datetime.now(timezone.utc).timestamp())


def iso_from_epoch(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_from_micros(micros: int) -> str:
    """Exact to the microsecond (a float epoch is only good to about a quarter of one today)."""
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp as Beads writes them (nanoseconds, Z or an offset)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python before 3.11 takes exactly 3 or 6 fractional digits: Go writes 1 to 9.
    if "." in value:
        head, _, rest = value.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


@dataclass(slots=True)
class Dependency:
    """`issue_id` waits on `depends_on_id` (for parent-child: issue_id is the child)."""

    issue_id: str
    depends_on_id: str
    type: str = "blocks"
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # created_by, metadata, ... kept for export


@dataclass(slots=True)
class Comment:
    """A comment on a task, as Beads keeps them."""

    id: Any
    issue_id: str
    author: str
    text: str
    created_at: str


@dataclass(slots=True)
class Task:
    """One unit of work, with the fields of a Beads issue (beads.py turns it into a JSONL record)."""

    id: str
    title: str
    description: str = ""
    design: str = ""
    acceptance_criteria: str = ""
    notes: str = ""
    status: str = Status.OPEN
    priority: int = DEFAULT_PRIORITY
    issue_type: str = "task"
    assignee: str = ""
    created_at: str = ""
    updated_at: str = ""
    closed_at: str = ""
    close_reason: str = ""
    labels: list[str] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    lease_expires_at: float | None = None
    # Beads fields gasworks does not use, kept so an export gives them back unchanged.
    extra: dict[str, Any] = field(default_factory=dict)


class Outcome(Word):
    """How an attempt ended, decided by gasworks from the exit and the branch, not by the agent."""

    SUCCESS = "success"          # exited 0 with commits on its branch
    NO_CHANGE = "no_change"      # exited 0, nothing committed
    FAILED = "failed"            # non-zero exit
    TIMEOUT = "timeout"          # ran past attempt_timeout and was stopped
    STALLED = "stalled"          # no output and no file change for stall_timeout: stopped
    INTERRUPTED = "interrupted"  # stopped by Ctrl+C / SIGTERM of gasworks run
    ORPHANED = "orphaned"        # its dispatcher died; found and ended on the next start
    ERROR = "error"              # gasworks could not run it (worktree or agent setup failed)
    ENDPOINT_DOWN = "endpoint_down"  # the model could not be reached: not the task's fault
    DISK_FULL = "disk_full"      # failed while the log folder had no room: not the task's fault
    REFUSED = "refused"          # its branch touches what no branch may land (see refinery.guarded_paths)
    GATE_FAILED = "gate_failed"  # its branch failed the merge gate (the attempt's outcome, set by the refinery)


# Outcomes that are not the task's fault, so they do not count towards max_attempts.
NOT_THE_TASKS_FAULT = frozenset({Outcome.INTERRUPTED.value, Outcome.ORPHANED.value, Outcome.ENDPOINT_DOWN.value,
                                 Outcome.DISK_FULL.value})


class MergeStatus(Word):
    QUEUED = "queued"
    REVIEW = "review"            # waits for a human's approval before it is queued (`review = true`)
    MERGING = "merging"
    LANDED = "landed"
    CONFLICT = "conflict"        # does not merge cleanly; a conflict task was made
    RESOLVED = "resolved"        # its conflict task closed; the branch was queued again
    GATE_FAILED = "gate_failed"  # the gate failed with this branch; its task went back to open
    HELD = "held"                # waits for a human: git kept failing in merge rounds (see its note)
    DROPPED = "dropped"          # its task was closed or reopened meanwhile; nothing to land
    REFUSED = "refused"          # it touches what no branch may: gasworks's state or config, ignored files
    REJECTED = "rejected"        # a reviewer rejected it (its note says why); its task went back to open


# The records of what happened (events, attempts, merges) live in the records package and load on first
# use: no quick command but `show` makes one, and every dataclass costs its creation at each start
# (about a millisecond for each of these).
_RECORDS = ("Attempt", "Event", "Merge")


def __getattr__(name: str) -> Any:
    if name in _RECORDS:
        from gasworks import records

        value = globals()[name] = getattr(records, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
