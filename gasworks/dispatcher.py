"""The dispatcher: keeps N agents busy on ready tasks, each in its own worktree.

`tick(now)` is one pass, readable top to bottom: collect finished agents, renew leases,
merge finished branches, start agents in free slots. Durable truth is in the store; the only
state held here is the table of live child processes, and each of those is also an attempt
row (pid and start time), so a restart after a crash finds and ends them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gasworks import attempt_repo, git, logs, process, sandbox, witness
from gasworks.agents import (
    ENDPOINT_DOWN_EXIT,
    TASK_FILE,
    Agent,
    AgentContext,
    LaunchSpec,
    render_task_file,
)
from gasworks.config import Config
from gasworks.errors import EndpointDownError, GasworksError, GitError
from gasworks.gate import pregate
from gasworks.ingest import SUGGESTIONS_FILE, parse_suggestions
from gasworks.llm import probe
from gasworks.models import (
    AGENT_ASSIGNEE_PREFIX,
    FILES_LABEL,
    NOT_THE_TASKS_FAULT,
    MergeStatus,
    Outcome,
    Task,
)
from gasworks.project import Project, task_prefix
from gasworks.refinery import CONFLICT_LABEL, Refinery, RefineryWorker
from gasworks.store.sql import SQLStore
from gasworks.upstream import make_upstream
from gasworks.waits import Wait, WaitLog, clock, left_for_humans, minutes
from gasworks.witness import ATTEMPTS_DIR, NEEDS_HUMAN, ClaimGate, Watch
from gasworks.worktrees import Slot, WorktreePool, branch_for

WAKE_CHECK_SECONDS = 0.02
WAITS_CHECK_SECONDS = 5.0  # how often the run looks at what it waits on (said once a minute)


@dataclass
class Running:
    slot: Slot
    task_id: str
    attempt_id: int
    proc: subprocess.Popen
    watch: Watch           # its start, claim renewal and activity, for the witness
    base: str
    stop_reason: str = ""  # set when gasworks ends it: "timeout" or "interrupted"
    resolves: str = ""     # for a merge-conflict task: the task whose branch it works on
    files: frozenset[str] = frozenset()  # its `files:` labels, kept apart from other running tasks
    number: int = 0        # the attempt's number within its task (1: the first)


class Dispatcher:
    def __init__(self, project: Project, store: SQLStore, agent: Agent, config: Config,
                 say: Callable[[str], None] = print) -> None:
        self.project, self.store, self.agent, self.config, self.say = project, store, agent, config, say
        self.root = project.root
        self.pool = WorktreePool(self.root, config)
        self.upstream = make_upstream(self.root, config, project.state_dir)
        self.target = self.upstream.target
        self.refinery = Refinery(project, store, config, self.upstream, say=say)
        # Claims and attempts carry the host's name, so a restart here touches only its own.
        self.host_prefix = f"{config.host_id}/" if config.host_id else ""
        self.me = AGENT_ASSIGNEE_PREFIX + self.host_prefix
        self.worker: RefineryWorker | None = None  # None: tick() runs the merge queue itself
        self.running: dict[str, Running] = {}  # slot name -> live agent
        self.claims = ClaimGate(config, project.logs_dir, say, getattr(agent, "healthy", None))
        self.stopping = False
        self.bwrap = sandbox.find_bwrap() if config.sandbox == "bwrap" else ""
        self.leases = witness.Leases(store, config)
        self.waits = WaitLog(say)
        self.waits_checked = 0.0

    # -- start-up -------------------------------------------------------------------------

    def start(self) -> None:
        self.project.logs_dir.mkdir(parents=True, exist_ok=True)
        for line in self.recover():
            self.say(line)
        tip = self.upstream.tip()
        for line in self.pool.ensure(tip):
            self.say(line)
        self.refinery.ensure()
        self.agent.prepare(self.project.state_dir)
        self._probe_endpoints()

    def _probe_endpoints(self) -> None:
        """Ask every model server the agent will use once, before anything is claimed: with none
        answering, the run stops here and says why, instead of failing attempts until someone looks."""
        specs = self.agent.probe_targets()
        if not specs:
            return
        found = probe.probe_all(specs)
        if not any(p.ok for p in found):
            raise EndpointDownError(probe.explain(found) + "\nnothing was claimed")
        for endpoint in found:
            if not endpoint.ok:
                self.say(f"model endpoint {endpoint.line()}")

    def recover(self) -> list[str]:
        """End what a crashed run left behind: agent processes, unfinished attempts, claims."""
        return witness.recover(self.store, root=self.root, state_dir=self.project.state_dir,
                               slots=[slot.path for slot in self.pool.slots], integration=self.refinery.integration,
                               me=self.me, host_prefix=self.host_prefix)

    # -- the loop ---------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self._collect(now)
        self._renew(now)
        if self.worker is None:
            self.refinery.process(now)
        elif self.worker.error is not None:
            raise self.worker.error
        if not self.stopping and self.claims.open(now):
            self._refresh_upstream()
            self._fill(now)
        if now - self.waits_checked >= WAITS_CHECK_SECONDS:
            self.waits_checked = now
            self.waits.observe(now, self.current_waits(now))

    def _refresh_upstream(self) -> None:
        """See what other hosts landed, so new attempts start from it; a remote that does not answer
        for a moment is said, not fatal (attempts start from what was fetched last)."""
        try:
            self.upstream.refresh()
        except GasworksError as exc:
            self.say(f"could not fetch from the remote: {exc}")

    def busy(self, now: float) -> bool:
        """Whether anything can still move without a human: agents running, merges to make, or
        (unless stopping) ready work it can claim. Ready work it cannot claim, because the model
        endpoints are down or the log folder is full, and a merge held by edits in the user's
        checkout count for until_done_patience seconds."""
        if self.running or (self.worker is not None and self.worker.in_round):
            return True
        if self.refinery.aborting:
            return False
        if self.refinery.moving():  # finished work is merged even while stopping, within the grace
            return True
        held = self.refinery.held  # edits in the user's checkout: tried again every few seconds, for a while
        if held and not self.stopping and now - held.since < self.config.until_done_patience:
            return True
        if self.stopping:
            return False
        # Several hosts: a task another host works on comes back here if that host dies.
        elsewhere = self.config.remote and any(task.assignee.startswith(AGENT_ASSIGNEE_PREFIX)
                                               for task in self.store.list_tasks(statuses=["in_progress"]))
        if elsewhere:
            return True
        if not self.store.ready(limit=1):
            return False
        return self.claims.held_for(now) < self.config.until_done_patience or not self.claims.stopped_since

    def current_waits(self, now: float) -> list[Wait]:
        """What the run waits on right now, for the once-a-minute line."""
        found = []
        if self.claims.paused_until:
            found.append(Wait("endpoints", "the model endpoints do not answer: no new tasks until one does"))
        if self.claims.logs_full:
            found.append(Wait("logs", f"the log folder {self.project.logs_dir} is full: no new tasks"))
        found += [Wait(f"held:{task_id}", f"the merge of {task_id} waits: {why}")
                  for task_id, why in self.refinery.waiting().items()]
        if not found and not self.running and not self.refinery.moving():
            counts = self.store.counts()
            found.append(Wait("idle", f"nothing to do: {counts['ready']} ready, {counts['waiting']} waiting on "
                                      f"other work, {counts.get('blocked', 0)} blocked"))
        return found

    def left_over(self, now: float) -> list[str]:
        """What keeps the run from being done, for the end of an --until-done run: what waits on whom."""
        lines = []
        if self.claims.stopped_since and self.store.ready(limit=1):
            why = "the model endpoints do not answer" if self.claims.paused_until else "the log folder is full"
            lines.append(f"ready work was not started: {why} (since {clock(self.claims.stopped_since)}, "
                         f"{minutes(self.claims.held_for(now))})")
        lines += [f"the merge of {task_id} waits: {why}; it is tried again when the run starts again"
                  for task_id, why in self.refinery.waiting().items()]
        return lines + left_for_humans(self.store)

    def stop(self, *, hard: bool = False) -> None:
        """First call: claim nothing more, let agents finish. With hard: end every agent now."""
        self.stopping = True
        if hard:
            self.refinery.abort()
            for run in self.running.values():
                run.stop_reason = Outcome.INTERRUPTED.value
                process.terminate_group(run.proc.pid, hard=True)

    # -- steps ------------------------------------------------------------------------------

    def _fill(self, now: float) -> None:
        free = [slot for slot in self.pool.slots if slot.name not in self.running]
        if not free:
            return
        # Files of work in flight, looked up once a tick; each task claimed below adds its own.
        busy = set(self.refinery.files_in_flight()) if self.config.conflict_aware else set()
        for slot in free:
            if self.config.conflict_aware:
                busy.update(label for run in self.running.values() for label in run.files)
            task = self.store.claim_next(self.me + slot.name, lease_seconds=self.config.lease_seconds,
                                         now=now, avoid_labels=frozenset(busy))
            if task is None:
                return
            self._start(slot, task, now)

    def _start(self, slot: Slot, task: Task, now: float) -> None:
        resolves = self._conflict_of(task)
        branch = branch_for(resolves or task.id)
        base = self.upstream.take_branch(branch) if resolves else self.upstream.tip()
        attempt = self.store.start_attempt(task.id, slot=self.host_prefix + slot.name, log_path="", branch=branch,
                                           base_commit=base)
        log_path = self.project.logs_dir / task.id / f"{attempt.id}.log"
        try:
            if resolves:  # a conflict task works on the conflicting branch itself
                self.pool.checkout(slot, branch)
            else:
                self.pool.prepare(slot, task.id, base)
            task_file = slot.path / TASK_FILE
            git.write_new(task_file, render_task_file(task).encode("utf-8"))  # never through a committed link
            ctx = AgentContext(task.id, slot.path, task_file, slot.name, attempt.id, self.root,
                               self.project.state_dir)
            spec = self._sandboxed(self.agent.launch(ctx), slot, branch, log_path, attempt.id)
            env = {**os.environ, **spec.env, "GASWORKS_TASK_ID": task.id, "GASWORKS_SLOT": slot.name,
                   "GASWORKS_ATTEMPT": str(attempt.id), "GASWORKS_WORKTREE": str(slot.path),
                   "GASWORKS_USAGE_FILE": str(log_path.with_suffix(".usage.json")),
                   "GASWORKS_TRANSCRIPT_FILE": str(log_path.with_suffix(".transcript.jsonl")),
                   **({"GASWORKS_RESOLVE_ONTO": self.target} if resolves else {})}
            proc = process.spawn(spec.argv, cwd=slot.path, log_path=log_path, env=env)
        except (GasworksError, OSError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._finish_failed(attempt.id, task.id, Outcome.ERROR.value, None, f"could not start: {why}", now=now)
            return
        self.store.set_attempt_process(attempt.id, proc.pid, process.started_at(proc.pid), str(log_path))
        files = frozenset(label for label in task.labels if label.startswith(FILES_LABEL))
        self.running[slot.name] = Running(slot, task.id, attempt.id, proc, Watch(now, now, active_at=now, checked=now),
                                          base, resolves=resolves, files=files, number=attempt.number)
        self.say(f"{slot.name}: started {task.id} {task.title[:60]!r} (attempt {attempt.number})")

    def _sandboxed(self, spec: LaunchSpec, slot: Slot, branch: str, log_path: Path, attempt_id: int) -> LaunchSpec:
        """Under `sandbox = "bwrap"`, the same launch inside bubblewrap, committing into a git dir of
        the attempt's own (the repository's objects and refs stay read-only); otherwise as it is."""
        if not self.bwrap:
            return spec
        private = attempt_repo.private_gitdir(self.pool.tree(slot), self._attempt_dir(attempt_id), branch)
        return sandbox.sandboxed(spec, bwrap=self.bwrap, worktree=slot.path, branch=branch, log_dir=log_path.parent,
                                 repo_root=self.root, extra=self.config.sandbox_writable, private_git=private)

    def _attempt_dir(self, attempt_id: int) -> Path:
        return self.project.state_dir / ATTEMPTS_DIR / str(attempt_id)

    def _collect(self, now: float) -> None:
        for name, run in list(self.running.items()):
            if run.proc.poll() is None:
                why = "" if run.stop_reason else witness.overdue(run.watch, now, self.config,
                                                                 functools.partial(self._activity, run))
                if why:
                    run.stop_reason = why
                    process.terminate_group(run.proc.pid, hard=True)
                continue
            process.terminate_group(run.proc.pid, hard=True)  # whatever the agent left running
            process.end_attempt(run.slot.path, run.attempt_id)  # and what left its group (setsid)
            del self.running[name]
            self._judge(run, now)

    def _judge(self, run: Running, now: float) -> None:
        """Decide the outcome from the exit and the branch, not from the agent's word."""
        code = run.proc.returncode
        self._record_tokens(run)
        try:
            commits = self._gather(run)
        except GitError as exc:  # too big, failed git's checks, or cannot be committed (a FIFO, say)
            self._finish_failed(run.attempt_id, run.task_id, Outcome.FAILED.value, code,
                                f"its work was not taken in: {exc}", now=now)
            return
        if run.stop_reason:
            outcome = run.stop_reason
        elif code == ENDPOINT_DOWN_EXIT:
            outcome = Outcome.ENDPOINT_DOWN.value
            self.claims.trip(now)
        elif code != 0 and not self.claims.room_for_logs():  # it could not write its output
            outcome = Outcome.DISK_FULL.value
        elif code != 0:
            outcome = Outcome.FAILED.value
        elif not commits:
            outcome = Outcome.NO_CHANGE.value
        else:
            outcome = Outcome.SUCCESS.value
        if self._moved_by_hand(run, outcome, code, commits):
            return
        if outcome != Outcome.SUCCESS.value:
            note = {"no_change": "the agent made no commits", "timeout": "stopped after attempt_timeout",
                    "interrupted": "stopped by gasworks run shutting down",
                    "stalled": "no output and no file change for stall_timeout",
                    "endpoint_down": "the model could not be reached",
                    "disk_full": "the log folder is full"}.get(outcome, f"exit code {code}")
            self._finish_failed(run.attempt_id, run.task_id, outcome, code, note, commits, now=now)
            return
        if self.config.pregate and not run.resolves and self._pregate_fails(run, code, commits, now):
            return
        try:  # several hosts: the refinery may run on another one
            self.upstream.publish(branch_for(run.resolves or run.task_id))
        except GasworksError as exc:
            self._finish_failed(run.attempt_id, run.task_id, Outcome.ERROR.value, code,
                                f"could not push its branch: {exc}", commits, now=now)
            return
        if not self.config.auto_merge_worktrees:
            self.store.finish_attempt(run.attempt_id, outcome=outcome, exit_code=code, commits=commits,
                                      task_status="closed", note=f"branch {branch_for(run.task_id)} is ready; "
                                                                 "not merged (auto_merge_worktrees = false)")
            return
        if run.resolves:
            self.store.finish_attempt(run.attempt_id, outcome=outcome, exit_code=code, commits=commits,
                                      task_status="closed", note=f"resolved on {branch_for(run.resolves)}")
            self.say(f"{run.slot.name}: {run.task_id} resolved the conflict of {run.resolves}")
            if self.worker is not None:
                self.worker.wake()  # the resolved branch goes back into the queue
            return
        self.store.finish_attempt(run.attempt_id, outcome=outcome, exit_code=code, commits=commits,
                                  task_status="merging", note=f"{len(commits)} commit(s) to merge",
                                  merge_branch=branch_for(run.task_id))
        if self.worker is not None:
            self.worker.wake()
        self.say(f"{run.slot.name}: {run.task_id} finished with {len(commits)} commit(s); queued to merge")

    def _pregate_fails(self, run: Running, code: int | None, commits: list[str], now: float) -> bool:
        """`pregate = true`: the gate on the branch merged onto the tip, in the slot's own worktree.
        A failure goes back as a failed attempt with the gate's output; it never enters the queue."""
        found = pregate(self.config, self.root, self.pool.tree(run.slot), self.upstream.tip(),
                        self.project.logs_dir / "pregates")
        self.store.record_pregate(run.task_id, passed=found.passed, seconds=found.seconds,
                                  cpu_seconds=found.cpu_seconds, actor=self.me)
        if not found.passed:
            self._finish_failed(run.attempt_id, run.task_id, Outcome.GATE_FAILED.value, code,
                                f"the pre-gate failed:\n{found.tail}", commits, now=now)
        return not found.passed

    def _gather(self, run: Running) -> list[str]:
        """The agent's work as commits on its branch: its suggestions taken out, what it left
        uncommitted committed for it. Commits whose sum changes nothing (a file added and removed)
        are no change either."""
        worktree = self.pool.tree(run.slot)
        limit = int(self.config.max_file_mb * (1 << 20))
        folder = self._attempt_dir(run.attempt_id)
        if folder.is_dir():  # sandboxed: its commits are in its own git dir, checked as they come in
            try:
                head = attempt_repo.import_private(worktree, folder / "git", str(run.attempt_id), run.base, limit)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            if head:
                attempt_repo.move_branch(worktree, branch_for(run.resolves or run.task_id), head)
        self._take_suggestions(run)
        changed = git.changed_files(worktree)
        big = attempt_repo.oversized(worktree, run.base, "HEAD", limit, changed=changed)
        if big:
            raise GitError(f"files over max_file_mb ({self.config.max_file_mb:g} MiB): {', '.join(big[:5])}")
        if not run.stop_reason and changed:
            git.commit_all(worktree, f"gasworks: changes left uncommitted by the agent ({run.task_id})")
        commits = git.commits_between(worktree, run.base) if not git.same_tree(worktree, run.base, "HEAD") else []
        git.detach_at(worktree, "HEAD")  # free the branch, so another slot may take it later
        return commits

    def _moved_by_hand(self, run: Running, outcome: str, code: int | None, commits: list[str]) -> bool:
        """A task someone closed (cancelled), deferred or blocked while its agent ran is left as it is:
        the attempt is recorded and nothing is merged."""
        status = self.store.get_task(run.task_id).status
        if status in ("in_progress", "open") or outcome == Outcome.ORPHANED.value:
            return False
        self.store.finish_attempt(run.attempt_id, outcome=outcome, exit_code=code, commits=commits,
                                  note=f"the task became {status} while its agent ran: left as it is")
        self.say(f"{run.slot.name}: {run.task_id} became {status} while its agent ran; its work is not merged")
        return True

    def _finish_failed(self, attempt_id: int, task_id: str, outcome: str, code: int | None, note: str,
                       commits: Sequence[str] = (), *, now: float) -> None:
        if outcome == Outcome.ORPHANED.value:  # the claim is someone else's now: leave the task alone
            self.store.finish_attempt(attempt_id, outcome=outcome, exit_code=code, commits=commits,
                                      note="the claim was lost while the agent ran")
            return
        counts = outcome not in NOT_THE_TASKS_FAULT
        retry = witness.retry_or_block(self.store.failed_attempts(task_id) + counts, self.config, counts=counts)
        if retry.status == "blocked":
            self.store.finish_attempt(attempt_id, outcome=outcome, exit_code=code, commits=commits,
                                      task_status="blocked", add_labels=[NEEDS_HUMAN],
                                      note=f"{note}; {retry.failures} failed attempts, giving up")
            self.say(f"{task_id}: blocked after {retry.failures} failed attempts ({note}); labelled {NEEDS_HUMAN}")
            return
        self.store.finish_attempt(attempt_id, outcome=outcome, exit_code=code, commits=commits, task_status="open",
                                  note=note)
        if retry.wait:
            self.store.set_retry_at(task_id, now + retry.wait)
        self.say(f"{task_id}: attempt {outcome} ({note}); back to the queue"
                 + (f", next try in {retry.wait:g} s" if retry.wait else ""))

    def _activity(self, run: Running) -> tuple:
        """What changes while an agent works: its log's size and its worktree's status."""
        log = self.project.logs_dir / run.task_id / f"{run.attempt_id}.log"
        return log.stat().st_size if log.exists() else 0, git.status_signature(self.pool.tree(run.slot))

    def _take_suggestions(self, run: Running) -> None:
        """Follow-up ideas the agent appended to suggested_tasks.txt become tasks; the file itself is
        put back as it was at the base, so it never travels in the branch that gets merged."""
        text = git.take_file(self.pool.tree(run.slot), SUGGESTIONS_FILE, run.base)
        if not text:
            return
        titles, dropped = parse_suggestions(text)
        made, refused = self.store.add_suggestions(
            titles, source=run.resolves or run.task_id, prefix=task_prefix(self.config, self.store),
            actor=self.me + run.slot.name, max_per_task=self.config.max_suggestions_per_task,
            backlog_cap=self.config.max_suggested_backlog)
        lost = {k: v for k, v in {**dropped, **refused}.items() if v}
        self.say(f"{run.slot.name}: {len(made)} suggestion(s) from {run.task_id} became tasks"
                 + (f" (dropped: {', '.join(f'{v} {k}' for k, v in lost.items())})" if lost else ""))

    def _record_tokens(self, run: Running) -> None:
        """Agents that talk to a model report their token counts in a file; keep them with the attempt."""
        usage_file = self.project.logs_dir / run.task_id / f"{run.attempt_id}.usage.json"
        try:
            with logs.open_log(usage_file) as handle:  # the agent may have left a link or a FIFO there
                usage = json.loads(handle.read(1 << 16).decode("utf-8"))
            self.store.set_attempt_tokens(run.attempt_id, int(usage["prompt_tokens"]),
                                          int(usage["completion_tokens"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # agents that do not report tokens

    def _conflict_of(self, task: Task) -> str:
        """For a merge-conflict task the refinery made: the task whose branch it must fix."""
        if CONFLICT_LABEL not in task.labels:
            return ""
        found = [d.depends_on_id for d in task.dependencies if d.type == "discovered-from"]
        return found[0] if found and self.upstream.head(branch_for(found[0])) else ""

    def _renew(self, now: float) -> None:
        """Stop the agents whose claim is gone (see witness.Leases); extend the others'."""
        live = [run for run in self.running.values() if not run.stop_reason]
        gone = self.leases.lost([(run.task_id, self.me + run.slot.name, run.watch) for run in live], now)
        for run in live:
            if run.task_id in gone:
                self._claim_gone(run)

    def _claim_gone(self, run: Running) -> None:
        """Stop an agent whose claim is gone: cancelled or moved by hand (its attempt is recorded as
        interrupted and the task left as it is), or lost to another worker after its lease ran out."""
        status = self.store.get_task(run.task_id).status
        if status in ("open", "in_progress"):
            self.say(f"{run.slot.name}: lost the claim on {run.task_id}; stopping its agent")
            run.stop_reason = Outcome.ORPHANED.value
        else:
            self.say(f"{run.slot.name}: {run.task_id} became {status} while its agent ran; stopping the agent")
            run.stop_reason = Outcome.INTERRUPTED.value
        process.terminate_group(run.proc.pid, hard=True)

    def wait(self, seconds: float, interrupted: Callable[[], bool]) -> None:
        """Sleep until the next tick, waking early when an agent exits or a signal arrives."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not interrupted():
            if any(run.proc.poll() is not None for run in self.running.values()):
                return
            time.sleep(min(WAKE_CHECK_SECONDS, max(0.0, deadline - time.monotonic())))

    def snapshot(self, now: float) -> dict:
        """What the fleet is doing, for the progress display."""
        return {
            "slots": [self._slot_view(slot, now) for slot in self.pool.slots],
            "held": {m.task_id: self.refinery.held.message for m in self.refinery.held.merges}
            if self.refinery.held else {},
            "queue": [m.task_id for m in self.store.merges(statuses=[MergeStatus.QUEUED.value,
                                                                     MergeStatus.MERGING.value], oldest_first=True)],
            "counts": self.store.counts(),
        }

    def _slot_view(self, slot: Slot, now: float) -> dict:
        run = self.running.get(slot.name)
        if run is None:
            return {"slot": slot.name, "task": None, "elapsed": None, "last_line": ""}
        attempt_log = self.project.logs_dir / run.task_id / f"{run.attempt_id}.log"
        return {"slot": slot.name, "task": run.task_id, "attempt": run.number, "attempt_id": run.attempt_id,
                "elapsed": round(now - run.watch.started, 1), "last_line": logs.last_line(attempt_log)}


def run_fleet(dispatcher: Dispatcher, *, until_done: bool, poll_seconds: float = 0.2,
              on_tick: Callable[[float], None] = lambda now: None) -> int:
    """Repeat tick() until stopped (or, with until_done, until nothing is left to do).

    Signal handlers only count signals; the loop acts on them. The first SIGINT, SIGTERM or SIGHUP stops
    claiming and gives running agents grace_seconds to finish; the second, or the end of the grace,
    ends every agent's process group. Returns the exit code: 0 done, 1 work left blocked or
    failed, 130 stopped by a signal.
    """
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in process.STOP_SIGNALS}
    deadline = None
    handled = 0
    dispatcher.worker = RefineryWorker(dispatcher.refinery)
    try:
        dispatcher.start()
        dispatcher.worker.start()
        while True:
            now = time.time()
            if received and deadline is None:
                deadline = now + dispatcher.config.grace_seconds
                dispatcher.say(f"stopping: no new tasks; running agents get {dispatcher.config.grace_seconds:g} s "
                               "to finish (Ctrl+C again to stop them now)")
                dispatcher.stop()
            if deadline is not None and (len(received) > 1 or now >= deadline) and not dispatcher.refinery.aborting:
                dispatcher.say("stopping every running agent (and any merge gate) now")
                dispatcher.stop(hard=True)
            dispatcher.tick(now)
            on_tick(now)
            if (deadline is not None or until_done) and not dispatcher.busy(now):
                break
            dispatcher.wait(poll_seconds, interrupted=lambda: len(received) > handled)
            handled = len(received)
    finally:
        dispatcher.worker.stop(hard=bool(received))
        if dispatcher.worker.is_alive():
            dispatcher.worker.join()
        close = getattr(dispatcher.agent, "close", None)
        if close is not None:
            close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for line in getattr(dispatcher.store, "after_run", list)():  # tracker = beads: `bd sync`
        dispatcher.say(line)
    if received:
        return 130
    counts = dispatcher.store.counts()
    left = sum(counts.get(status, 0) for status in ("blocked", "waiting", "ready", "in_progress", "merging"))
    if until_done and left:
        dispatcher.say("left undone:")
        for line in dispatcher.left_over(time.time()):
            dispatcher.say(f"  {line}")
    return 1 if until_done and left else 0
