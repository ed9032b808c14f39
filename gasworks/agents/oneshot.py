"""One agent, one task, here: what `gasworks agent-run` and Gas Town's `qwen-agent` do outside the fleet.

The launch is the dispatcher's: the agent's own LaunchSpec, started in its own process group with
no shell, the task text only in .current_task.txt. The judging is the dispatcher's too: from the
exit code and the commits made on top of where it started, never from the agent's word.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gasworks import git, sandbox
from gasworks.agents import ENDPOINT_DOWN_EXIT, TASK_FILE, Agent, AgentContext, get_agent
from gasworks.attempt import NOTES, AttemptRun, Sandbox, kept_out, note
from gasworks.config import Config
from gasworks.errors import GasworksError, GitError
from gasworks.models import Outcome
from gasworks.project import STATE_DIR, ensure_excludes

# How agent-run exits, by outcome. 2 stays click's (a bad option); 1 also covers "could not start".
NO_CHANGE_EXIT = 4
EXIT_CODES = {Outcome.SUCCESS: 0, Outcome.FAILED: 1, Outcome.TIMEOUT: 1, Outcome.ERROR: 1,
              Outcome.NO_CHANGE: NO_CHANGE_EXIT, Outcome.ENDPOINT_DOWN: ENDPOINT_DOWN_EXIT, Outcome.INTERRUPTED: 130}
# agent-run's documented word for each outcome (`status` in --json): the outcome's own, but "done" for success.
STATUS_WORDS = {Outcome.SUCCESS: "done"}
STOP_GRACE_SECONDS = 5.0  # after SIGTERM to the agent's group, before SIGKILL
POLL_SECONDS = 0.05
SLOT = "agent-run"
ATTEMPT = 1  # its GASWORKS_ATTEMPT: with GASWORKS_WORKTREE, how its processes are found


@dataclass
class RunResult:
    outcome: Outcome  # one of EXIT_CODES
    task_id: str
    agent: str
    checkout: Path
    log: Path
    base: str
    head: str = ""
    commits: list[str] = field(default_factory=list)
    agent_exit: int | None = None
    note: str = ""

    @property
    def status(self) -> str:
        return STATUS_WORDS.get(self.outcome, self.outcome.value)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "outcome": self.outcome.value, "exit_code": self.exit_code,
                "task_id": self.task_id, "agent": self.agent, "checkout": str(self.checkout), "log": str(self.log),
                "base": self.base, "head": self.head, "commits": self.commits, "agent_exit": self.agent_exit,
                "note": self.note}

    def summary(self) -> str:
        what = {Outcome.SUCCESS: f"done: {len(self.commits)} new commit(s)",
                Outcome.NO_CHANGE: f"no change: {NOTES[Outcome.NO_CHANGE]}", Outcome.INTERRUPTED: "stopped by a signal",
                Outcome.ENDPOINT_DOWN: "the model endpoint is down"}.get(self.outcome, "failed")
        return f"{what}{f' ({self.note})' if self.note else ''}; log: {self.log}"


def run_dir_for(checkout: Path) -> Path:
    """Where runs keep their logs and agent state: .gasworks/agent-run in a gasworks project, else
    gasworks/agent-run in the repository's git directory. Never the working tree, so neither the
    agent's commits nor Gas Town's safety-net commit in `gt done` can pick them up."""
    root = git.main_root(checkout)
    if (root / STATE_DIR).is_dir():
        return root / STATE_DIR / "agent-run"
    return git.git_common_dir(checkout) / "gasworks" / "agent-run"


def task_id_of(text: str) -> str:
    """The id in a task file's first line as gasworks writes it ("Task gw-a1b2: title"), else "task"."""
    match = re.match(r"Task ([A-Za-z0-9][\w.-]*):", text)
    return match.group(1) if match else "task"


def run_once(checkout: Path, task_text: str, config: Config, *, task_id: str = "", run_dir: Path | None = None,
             keep_out: tuple[str, ...] = (), stop: Callable[[], bool] = lambda: False,
             say: Callable[[str], None] = print) -> RunResult:
    """Run config.agent on task_text in the checkout around `checkout` and judge the outcome, as the
    fleet runs and judges an attempt (attempt.AttemptRun).

    Uncommitted leftovers are committed (except under `keep_out`) unless the run was stopped; `stop`
    is polled, and once it says so the agent's whole process group is ended."""
    checkout = git.toplevel(checkout)
    task_id = task_id or task_id_of(task_text)
    run_dir = run_dir or run_dir_for(checkout)
    base = git.run(["rev-parse", "--verify", "-q", "HEAD"], checkout, check=False).stdout.strip()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = run_dir / "logs" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', task_id)[:60]}-{stamp}-{os.getpid()}.log"
    result = RunResult(Outcome.ERROR, task_id, config.agent, checkout, log, base)
    if not base:
        result.note = f"{checkout} has no commit yet: commit something first"
        return result
    ensure_excludes(checkout)  # .current_task.txt and .aider* stay out of every commit
    dirty = [name for name in git.changed_files(checkout) if not kept_out(name, keep_out)]
    if dirty:  # they would end up in the agent's commits, passed off as its work
        shown = ", ".join(dirty[:5]) + (", ..." if len(dirty) > 5 else "")
        result.note = f"the checkout has uncommitted changes ({shown}): commit or stash them first"
        return result
    git.write_new(checkout / TASK_FILE, task_text.encode("utf-8"))  # never through a committed link
    say(f"agent-run: {config.agent} agent on {task_id} in {checkout}; log: {log}")
    agent: Agent | None = None
    tree = git.checkout_tree(checkout)  # taken now: what the agent does to its .git is never followed
    run = AttemptRun(task_id=task_id, attempt_id=ATTEMPT, slot_name=SLOT, tree=tree, branch=git.current_branch(tree),
                     base=base, log=log, private=run_dir / "git" / str(os.getpid()) if config.sandbox == "bwrap"
                     else None)
    try:
        agent = get_agent(config.agent, config)
        if _start(agent, config, run, run_dir):
            _wait(run, config.attempt_timeout, stop)
            _judge(run, result, config, keep_out)
        else:
            result.outcome = Outcome.ENDPOINT_DOWN
            result.note = "the model endpoint did not answer; the agent was not started"
    except (GasworksError, OSError) as exc:
        result.outcome = Outcome.ERROR
        result.note = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    finally:
        if run.private is not None:
            shutil.rmtree(run.private, ignore_errors=True)
        if agent is not None:
            agent.close()
    return result


def _start(agent: Agent, config: Config, run: AttemptRun, run_dir: Path) -> bool:
    """Prepare and launch the agent; False (not started) when its model endpoint does not answer."""
    state_dir = run_dir / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    agent.prepare(state_dir)
    if not agent.healthy():
        return False
    ctx = AgentContext(run.task_id, run.worktree, run.worktree / TASK_FILE, SLOT, ATTEMPT, run.worktree, state_dir)
    # Sandboxed, it gets what the fleet's agents get: nothing outside this checkout is writable.
    box = Sandbox(sandbox.find_bwrap(), git.main_root(run.worktree), tuple(config.sandbox_writable)) \
        if run.private is not None else None
    run.start(agent, ctx, box=box, log_dir=run_dir)
    return True


def _wait(run: AttemptRun, timeout: float, stop: Callable[[], bool]) -> None:
    """Wait for the agent, ending its process group on `stop` (interrupted) or past `timeout` seconds
    (0: none). Either way nothing it started is left running afterwards."""
    proc = run.proc
    assert proc is not None
    deadline = time.monotonic() + timeout if timeout else None
    while proc.poll() is None:
        reason = Outcome.INTERRUPTED if stop() else \
            Outcome.TIMEOUT if deadline is not None and time.monotonic() > deadline else None
        if reason is not None:
            run.stop(reason, hard=False)
            try:
                proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            break
        time.sleep(POLL_SECONDS)
    run.reap()  # whatever it left running, in its process group or out of it (setsid)


def _judge(run: AttemptRun, result: RunResult, config: Config, keep_out: tuple[str, ...]) -> None:
    result.agent_exit = run.proc.returncode if run.proc is not None else None
    try:
        result.commits = run.take_work(int(config.max_file_mb * (1 << 20)), keep_out=keep_out)
    except GitError as exc:  # too big, failed git's checks, or cannot be committed: as the fleet judges it
        result.outcome, result.note = Outcome.FAILED, f"its work was not taken in: {exc}"
        return
    result.head = git.rev_parse(run.tree, "HEAD")
    result.outcome = run.decide(result.commits)
    if result.outcome not in (Outcome.SUCCESS, Outcome.NO_CHANGE, Outcome.INTERRUPTED):
        result.note = note(result.outcome, result.agent_exit, result.log)
