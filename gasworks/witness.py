"""The witness: what the dispatcher's loop asks before it acts, and the one retry policy.

- `retry_or_block`: the single decision, for the dispatcher (an attempt that failed) and the
  refinery (a branch the gate or a conflict sent back), of when a task goes back to the queue and
  when it needs a human instead.
- `ClaimGate`: whether new work may be claimed now: the circuit breaker (the model endpoints stopped
  answering), room in the log folder, and since when claiming has been stopped (the liveness rule).
- `overdue` and `Leases`: a running attempt past attempt_timeout or silent for stall_timeout; the
  claims of running agents renewed, and read often enough that a cancelled task's agent stops soon.
- `fail_attempt`, `left_as_is`, `lost_claim`: what becomes of a task whose attempt did not succeed,
  was overtaken by a person (the task closed, deferred or blocked meanwhile), or lost its claim.
- `probe_endpoints` (before a run claims anything) and `recover`: what a crashed run left behind,
  ended and requeued.

The clock is passed in (`now`); nothing here reads it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gasworks import git, process
from gasworks.errors import EndpointDownError, GitError
from gasworks.models import NOT_THE_TASKS_FAULT, Outcome, Status
from gasworks.store import AttemptLog, Attempts, Claims, TaskReader, TaskStatus, Tracking

NEEDS_HUMAN = "needs-human"
LOG_ROOM_NEEDED = 1 << 20  # bytes free in the log folder before another agent starts
ATTEMPTS_DIR = "attempts"  # sandboxed attempts' own git dirs, in .gasworks/
STALL_CHECK_SECONDS = 5.0
CLAIM_CHECK_SECONDS = 3.0  # how soon an agent whose task was cancelled (closed by hand) is stopped


@dataclass
class Watch:
    """What the witness keeps of one running attempt."""

    started: float
    renewed: float          # when its claim was last extended
    activity: tuple = ()    # (log size, worktree status) when last looked at, for stall detection
    active_at: float = 0.0  # when that last changed
    checked: float = 0.0    # when it was last looked at


def overdue(watch: Watch, now: float, config: Any, activity: Callable[[], tuple]) -> str:
    """How to stop a running attempt, if it must stop: "timeout" past attempt_timeout, "stalled"
    when neither its log nor its worktree changed for stall_timeout (`activity` is looked at every
    few seconds, not every tick), else ""."""
    if config.attempt_timeout and now - watch.started > config.attempt_timeout:
        return Outcome.TIMEOUT.value
    if not config.stall_timeout or now - watch.checked < min(STALL_CHECK_SECONDS, config.stall_timeout):
        return ""
    watch.checked = now
    sign = activity()
    if sign != watch.activity:
        watch.activity, watch.active_at = sign, now
    return Outcome.STALLED.value if now - watch.active_at > config.stall_timeout else ""


class SendsBack(AttemptLog, TaskStatus, Protocol):
    """What send_back uses of the store: the failed attempts, and sending the task back."""


class Recovery(TaskReader, TaskStatus, Attempts, Tracking, Protocol):
    """What recover uses of the store: the running attempts and claims a crashed run left."""


def activity(log: Path, worktree: git.Tree) -> tuple:
    """What changes while an agent works: its log's size and its worktree's status."""
    return log.stat().st_size if log.exists() else 0, git.status_signature(worktree)


class Leases:
    """The claims of running agents: extended every lease_seconds/3 (a write), and read every few
    seconds, so an agent whose task was cancelled or moved meanwhile stops now, not at renewal."""

    def __init__(self, store: Claims, config: Any) -> None:
        self.store, self.config = store, config
        self.checked = 0.0  # when the claims were last read

    def lost(self, held: list[tuple[str, str, Watch]], now: float) -> set[str]:
        """Of (task id, holder, watch) for each running agent, the task ids whose claim is gone."""
        claims: dict[str, str] | None = None
        if held and now - self.checked >= CLAIM_CHECK_SECONDS:
            claims = self.store.claims([task_id for task_id, _, _ in held])
            self.checked = now
        gone = set()
        for task_id, holder, watch in held:
            if claims is not None and claims.get(task_id) != holder:
                gone.add(task_id)
            elif now - watch.renewed >= self.config.lease_seconds / 3:
                if not self.store.renew_lease(task_id, holder, lease_seconds=self.config.lease_seconds, now=now):
                    gone.add(task_id)
                watch.renewed = now
        return gone


@dataclass(frozen=True)
class Retry:
    """What happens to a task whose attempt (or branch) failed: `status` "open" (after `wait`
    seconds) or "blocked" (labelled needs-human)."""

    status: str
    failures: int
    wait: float = 0.0


def retry_or_block(failures: int, config: Any, *, counts: bool = True) -> Retry:
    """`failures`: the task's failed attempts, this one included. One that is not the task's fault
    (`counts` false: an endpoint down, a shutdown) goes straight back; otherwise the task waits
    retry_backoff seconds, doubled per failure up to retry_backoff_max, and after max_attempts
    failures it needs a human."""
    if counts and failures >= config.max_attempts:
        return Retry(Status.BLOCKED, failures)
    wait = min(config.retry_backoff * 2 ** max(0, failures - 1), config.retry_backoff_max) if counts else 0.0
    return Retry(Status.OPEN, failures, wait)


def send_back(store: SendsBack, task_id: str, *, note: str, config: Any, now: float, say: Callable[[str], None],
              actor: str = "gasworks") -> str:
    """A task whose branch was refused goes back to open with the note (after the same wait as a
    failed attempt), or is blocked with label needs-human once its failed attempts reach
    max_attempts. Returns the new status."""
    retry = retry_or_block(store.failed_attempts(task_id), config)
    if retry.status == Status.BLOCKED:
        store.send_back(task_id, to_status=Status.BLOCKED, add_labels=[NEEDS_HUMAN], actor=actor,
                        note=f"{note}\n({retry.failures} failed attempts: giving up; labelled {NEEDS_HUMAN})")
        say(f"{task_id}: blocked after {retry.failures} failed attempts; labelled {NEEDS_HUMAN}")
        return Status.BLOCKED
    store.send_back(task_id, to_status=Status.OPEN, note=note, actor=actor,
                    retry_at=now + retry.wait if retry.wait else None)
    say(f"{task_id}: back to the queue ({_gist(note)})"
        + (f", next try in {retry.wait:g} s" if retry.wait else ""))
    return Status.OPEN


def fail_attempt(store: Any, attempt_id: int, task_id: str, outcome: str, code: int | None, note: str,
                 commits: Sequence[str] = (), *, config: Any, now: float, say: Callable[[str], None]) -> None:
    """Record an attempt that did not succeed; its task goes back to the queue (after the retry
    wait) or, after max_attempts failures of its own, is blocked with label needs-human. An orphaned
    attempt's task is someone else's claim now: it is left alone."""
    if outcome == Outcome.ORPHANED.value:
        store.finish_attempt(attempt_id, outcome=outcome, exit_code=code, commits=commits,
                             note="the claim was lost while the agent ran")
        return
    counts = outcome not in NOT_THE_TASKS_FAULT
    retry = retry_or_block(store.failed_attempts(task_id) + counts, config, counts=counts)
    if retry.status == Status.BLOCKED:
        store.finish_attempt(attempt_id, outcome=outcome, exit_code=code, commits=commits, task_status=Status.BLOCKED,
                             add_labels=[NEEDS_HUMAN], note=f"{note}; {retry.failures} failed attempts, giving up")
        say(f"{task_id}: blocked after {retry.failures} failed attempts ({note}); labelled {NEEDS_HUMAN}")
        return
    store.finish_attempt(attempt_id, outcome=outcome, exit_code=code, commits=commits, task_status=Status.OPEN,
                         note=note)
    if retry.wait:
        store.set_retry_at(task_id, now + retry.wait)
    say(f"{task_id}: attempt {outcome} ({note}); back to the queue"
        + (f", next try in {retry.wait:g} s" if retry.wait else ""))


def left_as_is(store: Any, attempt_id: int, task_id: str, outcome: str, code: int | None, commits: Sequence[str],
               say: Callable[[str], None], where: str) -> bool:
    """A task someone closed (cancelled), deferred or blocked while its agent ran is left as it is:
    the attempt is recorded and nothing is merged. Whether that was the case."""
    status = store.get_task(task_id).status
    if status in (Status.IN_PROGRESS, Status.OPEN) or outcome == Outcome.ORPHANED.value:
        return False
    store.finish_attempt(attempt_id, outcome=outcome, exit_code=code, commits=commits,
                         note=f"the task became {status} while its agent ran: left as it is")
    say(f"{where}: {task_id} became {status} while its agent ran; its work is not merged")
    return True


def lost_claim(store: Any, task_id: str, say: Callable[[str], None], where: str) -> Outcome:
    """Why to stop an agent whose claim is gone: its task was cancelled or moved by hand (interrupted:
    the task is left as it is), or lost to another worker after its lease ran out (orphaned)."""
    status = store.get_task(task_id).status
    if status in (Status.OPEN, Status.IN_PROGRESS):
        say(f"{where}: lost the claim on {task_id}; stopping its agent")
        return Outcome.ORPHANED
    say(f"{where}: {task_id} became {status} while its agent ran; stopping the agent")
    return Outcome.INTERRUPTED


def probe_endpoints(specs: list[dict], say: Callable[[str], None]) -> None:
    """Ask every model server the agent will use once, before anything is claimed: with none
    answering, the run stops here and says why, instead of failing attempts until someone looks."""
    if not specs:
        return
    from gasworks.llm import probe

    found = probe.probe_all(specs)
    if not any(p.ok for p in found):
        raise EndpointDownError(probe.explain(found) + "\nnothing was claimed")
    for endpoint in found:
        if not endpoint.ok:
            say(f"model endpoint {endpoint.line()}")


def _gist(note: str, width: int = 160) -> str:
    """A note in one line for the run's log: its first lines up to one that says something of its
    own (not just "The merge gate failed:"), joined."""
    lines = [line.strip() for line in note.splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    gist = lines[0]
    for line in lines[1:]:
        if not gist.endswith(":"):
            break
        gist = f"{gist} {line}"
    return gist if len(gist) <= width else gist[: width - 1] + "\u2026"


class ClaimGate:
    """Whether the fleet may claim new work now. Claiming pauses while the model endpoints do not
    answer (breaker_seconds between health checks) and while the log folder has no room: both
    failures would not be the tasks' fault, so no attempt is spent on them."""

    def __init__(self, config: Any, logs_dir: Path, say: Callable[[str], None],
                 healthy: Callable[[], bool] | None = None) -> None:
        self.config, self.logs_dir, self.say = config, logs_dir, say
        self.healthy = healthy      # the agent's health check of its endpoints, if it has one
        self.paused_until = 0.0     # the breaker: no claims before then
        self.logs_full = False      # the log folder had no room when last looked at
        self.stopped_since = 0.0    # since when claiming has been held back (0: it is not)

    def trip(self, now: float) -> None:
        """An agent found every endpoint down."""
        self.paused_until = now + self.config.breaker_seconds
        self.say(f"the model endpoints are not answering: no new tasks for {self.config.breaker_seconds:g} s")

    def open(self, now: float) -> bool:
        """Whether to claim this tick; says when that changes, and keeps since when it has not."""
        if now >= self.paused_until and self._model_answers(now) and self.room_for_logs():
            self.stopped_since = 0.0
            return True
        if not self.stopped_since:
            self.stopped_since = now
        return False

    def held_for(self, now: float) -> float:
        """How long claiming has been held back (0: it is not)."""
        return now - self.stopped_since if self.stopped_since else 0.0

    def _model_answers(self, now: float) -> bool:
        """After the breaker tripped, claim again only once a model endpoint answers a health check."""
        if not self.paused_until:
            return True
        if self.healthy is not None and not self.healthy():
            self.paused_until = now + self.config.breaker_seconds
            self.say(f"the model endpoints still do not answer; checking again in {self.config.breaker_seconds:g} s")
            return False
        self.paused_until = 0.0
        self.say("a model endpoint answers again: claiming tasks")
        return True

    def room_for_logs(self) -> bool:
        """Whether the log folder has room. Agents write their output there; on a full disk they fail
        through no fault of their task, so gasworks waits for space instead of using up attempts."""
        try:
            free = shutil.disk_usage(self.logs_dir).free
        except OSError:
            free = 0
        full = free < LOG_ROOM_NEEDED
        if full != self.logs_full:
            self.say(f"the log folder {self.logs_dir} is full ({free} bytes free): no new tasks until "
                     f"{LOG_ROOM_NEEDED >> 20} MiB is free" if full else
                     "the log folder has room again: claiming tasks")
        self.logs_full = full
        return not full


def recover(store: Recovery, *, root: Path, state_dir: Path, slots: list[Path], integration: Path, me: str,
            host_prefix: str) -> list[str]:
    """End what a crashed run of this host left behind: agent processes still running in its
    worktrees, unfinished attempts, claims, half-done git operations. Returns what was done."""
    done = []
    for pid in process.find_agents(slots):
        process.kill(pid)
        done.append(f"ended agent process {pid} left running by a stopped dispatcher")
    done += store.reconcile(me)  # tracker = beads: the claims bd holds for this host
    for attempt in store.attempts(running=True):
        if not attempt.slot.startswith(host_prefix):
            continue  # another host's
        if attempt.pid and process.is_same_process(attempt.pid, attempt.pid_started):
            process.terminate_group(attempt.pid, hard=True)
        task = store.get_task(attempt.task_id)
        ours = task.status == Status.IN_PROGRESS and task.assignee.startswith(me)
        store.finish_attempt(attempt.id, outcome=Outcome.ORPHANED.value,
                             note="its dispatcher stopped without finishing it",
                             task_status=Status.OPEN if ours else None)
        done.append(f"requeued {attempt.task_id}: attempt {attempt.number} was left running by a stopped dispatcher")
    shutil.rmtree(state_dir / ATTEMPTS_DIR, ignore_errors=True)  # their agents are gone
    for path in [*slots, integration]:
        try:
            done += git.repair(git.linked_tree(root, path))
        except GitError:
            continue  # not made yet
    for task in store.list_tasks(statuses=[Status.IN_PROGRESS]):
        if task.assignee.startswith(me):
            store.transition(task.id, Status.OPEN, actor="gasworks", reason="claimed by a stopped dispatcher")
            done.append(f"requeued {task.id}: claimed by a stopped dispatcher")
    return done
