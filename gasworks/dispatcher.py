"""The dispatcher: keeps N agents busy on ready tasks, each in its own worktree.

`tick(now)` is one pass, readable top to bottom: collect finished agents, renew leases,
merge finished branches, start agents in free slots. Durable truth is in the store; the only
state held here is the table of live child processes, and each of those is also an attempt
row (pid and start time), so a restart after a crash finds and ends them. Each agent runs as
attempt.AttemptRun runs it; where a finished attempt's branch goes (pre-gate, review, merge
queue) is handover.py's, and what becomes of a task whose attempt failed is the witness's
(witness.py); the top loop, which reads the clock and acts on signals, is fleet.run_fleet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from gasworks import git, process, review, sandbox, waits, witness
from gasworks.agents import TASK_FILE, Agent, AgentContext, TaskAgents, render_task_file
from gasworks.attempt import Sandbox, note
from gasworks.config import Config
from gasworks.errors import GasworksError, GitError
from gasworks.handover import Handover, Running
from gasworks.ingest import SUGGESTIONS_FILE, parse_suggestions
from gasworks.models import AGENT_ASSIGNEE_PREFIX, FILES_LABEL, Outcome, Task
from gasworks.project import Project, task_prefix
from gasworks.refinery import CONFLICT_LABEL, Refinery, RefineryWorker
from gasworks.store import Store
from gasworks.upstream import make_upstream
from gasworks.waits import WaitLog
from gasworks.witness import ATTEMPTS_DIR, ClaimGate, Watch
from gasworks.worktrees import Slot, WorktreePool, branch_for

WAITS_CHECK_SECONDS = 5.0  # how often the run looks at what it waits on (said once a minute)


def take_suggestions(store: Store, config: Config, actor: str, say: Callable[[str], None], run: Running) -> None:
    """Follow-up ideas the agent appended to suggested_tasks.txt become tasks; the file itself is
    put back as it was at the base, so it never travels in the branch that gets merged."""
    text = git.take_file(run.tree, SUGGESTIONS_FILE, run.base)
    if not text:
        return
    titles, dropped = parse_suggestions(text)
    made, refused = store.add_suggestions(
        titles, source=run.resolves or run.task_id, prefix=task_prefix(config, store),
        actor=actor + run.slot.name, max_per_task=config.max_suggestions_per_task,
        backlog_cap=config.max_suggested_backlog)
    lost = {k: v for k, v in {**dropped, **refused}.items() if v}
    say(f"{run.slot.name}: {len(made)} suggestion(s) from {run.task_id} became tasks"
        + (f" (dropped: {', '.join(f'{v} {k}' for k, v in lost.items())})" if lost else ""))


class Dispatcher:
    def __init__(self, project: Project, store: Store, agent: Agent, config: Config,
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
        self.claims = ClaimGate(config, project.logs_dir, say, agent.healthy)
        self.agents = TaskAgents(agent, config, project.state_dir)  # a task's `agent:`/`model:` labels
        self.stopping = False
        self.box = Sandbox(sandbox.find_bwrap(), self.root, tuple(config.sandbox_writable)) \
            if config.sandbox == "bwrap" else None
        self.leases = witness.Leases(store, config)
        self.waits = WaitLog(say)
        self.waits_checked = 0.0
        self.handover = Handover(store, config, self.upstream, self.pool, self.root, project.logs_dir, self.me,
                                 self.running, say, self._wake)

    # -- start-up -------------------------------------------------------------------------

    def start(self) -> None:
        self.project.logs_dir.mkdir(parents=True, exist_ok=True)
        # What a crashed run left behind: agent processes, unfinished attempts, claims.
        for line in witness.recover(self.store, root=self.root, state_dir=self.project.state_dir,
                                    slots=[slot.path for slot in self.pool.slots],
                                    integration=self.refinery.integration, me=self.me, host_prefix=self.host_prefix):
            self.say(line)
        for line in self.pool.ensure(self.upstream.tip()):
            self.say(line)
        self.refinery.ensure()
        self.agent.prepare(self.project.state_dir)
        witness.probe_endpoints(self.agent.probe_targets(), self.say)

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
            self.waits.observe(now, waits.current(self))

    def _refresh_upstream(self) -> None:
        """See what other hosts landed, so new attempts start from it; a remote that does not answer
        for a moment is said, not fatal (attempts start from what was fetched last)."""
        try:
            self.upstream.refresh()
        except GasworksError as exc:
            self.say(f"could not fetch from the remote: {exc}")

    def busy(self, now: float) -> bool:
        """Whether anything can still move without a human (see waits.busy)."""
        return waits.busy(self, now)

    def stop(self, *, hard: bool = False) -> None:
        """First call: claim nothing more, let agents finish. With hard: end every agent now."""
        self.stopping = True
        if hard:
            self.refinery.abort()
            for run in self.running.values():
                run.stop(Outcome.INTERRUPTED)

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
        try:
            if resolves:  # a conflict task works on the conflicting branch itself
                self.pool.checkout(slot, branch)
            else:
                self.pool.prepare(slot, task.id, base)
            run = Running(task_id=task.id, attempt_id=attempt.id, slot_name=slot.name, tree=self.pool.tree(slot),
                          branch=branch, base=base, log=self.project.logs_dir / task.id / f"{attempt.id}.log",
                          private=self.project.state_dir / ATTEMPTS_DIR / str(attempt.id) if self.box else None,
                          slot=slot, watch=Watch(now, now, active_at=now, checked=now), resolves=resolves,
                          files=frozenset(label for label in task.labels if label.startswith(FILES_LABEL)),
                          number=attempt.number)
            task_file = slot.path / TASK_FILE
            text = render_task_file(task, review_note=review.latest_note(self.store, task.id))
            git.write_new(task_file, text.encode("utf-8"))  # never through a committed link
            ctx = AgentContext(task.id, slot.path, task_file, slot.name, attempt.id, self.root, self.project.state_dir)
            proc = run.start(self.agents.for_task(task), ctx, box=self.box,
                             env={"GASWORKS_RESOLVE_ONTO": self.target} if resolves else None)
        except (GasworksError, OSError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.handover.failed(attempt.id, task.id, Outcome.ERROR, None, f"could not start: {why}", now=now)
            return
        self.store.set_attempt_process(attempt.id, proc.pid, process.started_at(proc.pid), str(run.log))
        self.running[slot.name] = run
        self.say(f"{slot.name}: started {task.id} {task.title[:60]!r} (attempt {attempt.number})")

    def _collect(self, now: float) -> None:
        for name, run in list(self.running.items()):
            if run.pregating is not None:
                if run.pregating.done():
                    del self.running[name]
                    self.handover.pregated(run, now)
                continue
            if run.proc is not None and run.proc.poll() is None:
                why = "" if run.stop_reason else witness.overdue(run.watch, now, self.config,
                                                                 functools.partial(witness.activity, run.log, run.tree))
                if why:
                    run.stop(Outcome(why))
                continue
            run.reap()
            del self.running[name]
            self._judge(run, now)

    def _judge(self, run: Running, now: float) -> None:
        """Decide the outcome from the exit and the branch, not from the agent's word."""
        code = run.proc.returncode if run.proc is not None else None
        tokens = run.usage()
        if tokens is not None:
            self.store.set_attempt_tokens(run.attempt_id, *tokens)
        try:
            suggestions = functools.partial(take_suggestions, self.store, self.config, self.me, self.say, run)
            commits = run.take_work(int(self.config.max_file_mb * (1 << 20)), before_commit=suggestions)
            git.detach_at(run.tree, "HEAD")  # free the branch, so another slot may take it later
        except GitError as exc:  # too big, failed git's checks, or cannot be committed (a FIFO, say)
            self.handover.failed(run.attempt_id, run.task_id, Outcome.FAILED, code,
                                 f"its work was not taken in: {exc}", now=now)
            return
        outcome = run.decide(commits, disk_full=lambda: not self.claims.room_for_logs())
        if outcome == Outcome.ENDPOINT_DOWN:
            self.claims.trip(now)
        if witness.left_as_is(self.store, run.attempt_id, run.task_id, outcome.value, code, commits, self.say,
                              run.slot.name):
            return
        if outcome != Outcome.SUCCESS:
            self.handover.failed(run.attempt_id, run.task_id, outcome, code, note(outcome, code, run.log), commits,
                                 now=now)
            return
        self.handover.finished(run, code, commits, now)

    def _wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def _conflict_of(self, task: Task) -> str:
        """For a merge-conflict task the refinery made: the task whose branch it must fix."""
        if CONFLICT_LABEL not in task.labels:
            return ""
        found = [d.depends_on_id for d in task.dependencies if d.type == "discovered-from"]
        return found[0] if found and self.upstream.head(branch_for(found[0])) else ""

    def _renew(self, now: float) -> None:
        """Stop the agents whose claim is gone (see witness.Leases and witness.lost_claim); extend the others'."""
        live = [run for run in self.running.values() if not run.stop_reason]
        gone = self.leases.lost([(run.task_id, self.me + run.slot.name, run.watch) for run in live], now)
        for run in live:
            if run.task_id in gone:
                run.stop(witness.lost_claim(self.store, run.task_id, self.say, run.slot.name))
