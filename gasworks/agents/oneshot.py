"""One agent, one task, here: what `gasworks agent-run` and Gas Town's `qwen-agent` do outside the fleet.

The launch is the dispatcher's: the agent's own LaunchSpec, started in its own process group with
no shell, the task text only in .current_task.txt. The judging is the dispatcher's too: from the
exit code and the commits made on top of where it started, never from the agent's word.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gasworks import attempt_repo, git, process, sandbox
from gasworks.agents import (
    ENDPOINT_DOWN_EXIT,
    TASK_FILE,
    Agent,
    AgentContext,
    get_agent,
)
from gasworks.config import Config
from gasworks.errors import GasworksError
from gasworks.project import STATE_DIR, ensure_excludes

# How agent-run exits, by outcome. 2 stays click's (a bad option); 1 also covers "could not start".
NO_CHANGE_EXIT = 4
EXIT_CODES = {"done": 0, "failed": 1, "timeout": 1, "error": 1, "no_change": NO_CHANGE_EXIT,
              "endpoint_down": ENDPOINT_DOWN_EXIT, "interrupted": 130}
STOP_GRACE_SECONDS = 5.0  # after SIGTERM to the agent's group, before SIGKILL
POLL_SECONDS = 0.05
SLOT = "agent-run"
ATTEMPT = 1  # its GASWORKS_ATTEMPT: with GASWORKS_WORKTREE, how its processes are found


@dataclass
class RunResult:
    status: str  # one of EXIT_CODES
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
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "task_id": self.task_id, "agent": self.agent,
                "checkout": str(self.checkout), "log": str(self.log), "base": self.base, "head": self.head,
                "commits": self.commits, "agent_exit": self.agent_exit, "note": self.note}

    def summary(self) -> str:
        what = {"done": f"done: {len(self.commits)} new commit(s)", "no_change": "no change: the agent made no commits",
                "failed": "failed", "timeout": "failed: stopped after the time limit", "error": "failed",
                "endpoint_down": "the model endpoint is down", "interrupted": "stopped by a signal"}[self.status]
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


@contextlib.contextmanager
def stop_on_signals(*names: str) -> Iterator[Callable[[], bool]]:
    """Handlers that only note the signal (SIGINT, SIGTERM, SIGHUP, ...); yields "was one received?"."""
    received: list[int] = []
    wanted = [getattr(signal, name) for name in names if hasattr(signal, name)]
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in wanted}
    try:
        yield lambda: bool(received)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_once(checkout: Path, task_text: str, config: Config, *, task_id: str = "", run_dir: Path | None = None,
             keep_out: tuple[str, ...] = (), stop: Callable[[], bool] = lambda: False,
             say: Callable[[str], None] = print) -> RunResult:
    """Run config.agent on task_text in the checkout around `checkout` and judge the outcome.

    Uncommitted leftovers are committed (except under `keep_out`) unless the run was stopped; `stop`
    is polled, and once it says so the agent's whole process group is ended."""
    checkout = git.toplevel(checkout)
    task_id = task_id or task_id_of(task_text)
    run_dir = run_dir or run_dir_for(checkout)
    base = git.run(["rev-parse", "--verify", "-q", "HEAD"], checkout, check=False).stdout.strip()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = run_dir / "logs" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', task_id)[:60]}-{stamp}-{os.getpid()}.log"
    result = RunResult("error", task_id, config.agent, checkout, log, base)
    if not base:
        result.note = f"{checkout} has no commit yet: commit something first"
        return result
    ensure_excludes(checkout)  # .current_task.txt and .aider* stay out of every commit
    dirty = [name for name in git.changed_files(checkout) if not _kept_out(name, keep_out)]
    if dirty:  # they would end up in the agent's commits, passed off as its work
        shown = ", ".join(dirty[:5]) + (", ..." if len(dirty) > 5 else "")
        result.note = f"the checkout has uncommitted changes ({shown}): commit or stash them first"
        return result
    git.write_new(checkout / TASK_FILE, task_text.encode("utf-8"))  # never through a committed link
    say(f"agent-run: {config.agent} agent on {task_id} in {checkout}; log: {log}")
    agent: Agent | None = None
    tree = git.checkout_tree(checkout)  # taken now: what the agent does to its .git is never followed
    private = run_dir / "git" / str(os.getpid()) if config.sandbox == "bwrap" else None
    try:
        agent = get_agent(config.agent, config)
        proc = _start(agent, config, result, run_dir, tree, private)
        if proc is None:
            return result
        deadline = time.monotonic() + config.attempt_timeout if config.attempt_timeout else None
        stopped = _wait(proc, deadline, stop)
        process.end_attempt(checkout, ATTEMPT)  # also what left its process group (setsid)
        result.agent_exit = proc.returncode
        if private is not None:  # its commits are in its own git dir: checked as they come in
            _take_commits(tree, private, base, config)
        _judge(result, tree, stopped, keep_out)
    except (GasworksError, OSError) as exc:
        result.status = "error"
        result.note = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
        close = getattr(agent, "close", None)
        if close is not None:
            close()
    return result


def _take_commits(tree: git.Tree, private: Path, base: str, config: Config) -> None:
    """Bring what a sandboxed agent committed into the checkout's branch (see attempt_repo.import_private)."""
    head = attempt_repo.import_private(tree, private / "git", f"agent-run-{os.getpid()}", base,
                              int(config.max_file_mb * (1 << 20)))
    if head:
        attempt_repo.move_branch(tree, git.current_branch(tree), head)


def _kept_out(name: str, keep_out: tuple[str, ...]) -> bool:
    return any(name == path.rstrip("/") or name.startswith(path.rstrip("/") + "/") for path in keep_out)


def _start(agent: Agent, config: Config, result: RunResult, run_dir: Path, tree: git.Tree,
           private: Path | None) -> subprocess.Popen | None:
    """Prepare and launch the agent, or (None) record why not: the model endpoint does not answer."""
    state_dir = run_dir / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    agent.prepare(state_dir)
    if not _model_answers(agent, config):
        result.status = "endpoint_down"
        result.note = "the model endpoint did not answer; the agent was not started"
        return None
    checkout = result.checkout
    ctx = AgentContext(result.task_id, checkout, checkout / TASK_FILE, SLOT, ATTEMPT, checkout, state_dir)
    spec = agent.launch(ctx)
    if private is not None:  # what the fleet's agents get: nothing outside this checkout is writable
        branch = git.current_branch(tree)
        objects_at = sandbox.SHARED_OBJECTS if tree.gitdir == tree.common else None  # a main checkout
        spec = sandbox.sandboxed(spec, bwrap=sandbox.find_bwrap(), worktree=checkout, branch=branch,
                                 log_dir=run_dir, repo_root=git.main_root(checkout), extra=config.sandbox_writable,
                                 private_git=attempt_repo.private_gitdir(tree, private, branch, objects_at=objects_at))
    env = {**os.environ, **spec.env, "GASWORKS_TASK_ID": result.task_id, "GASWORKS_SLOT": SLOT,
           "GASWORKS_ATTEMPT": str(ATTEMPT), "GASWORKS_WORKTREE": str(checkout),
           "GASWORKS_USAGE_FILE": str(result.log.with_suffix(".usage.json")),
           "GASWORKS_TRANSCRIPT_FILE": str(result.log.with_suffix(".transcript.jsonl"))}
    return process.spawn(spec.argv, cwd=checkout, log_path=result.log, env=env)


def _model_answers(agent: Agent, config: Config) -> bool:
    """Whether the model can be reached. Aider exits 0 even when it cannot reach Ollama, so for Aider
    on an Ollama model gasworks asks the server itself before starting it."""
    check = getattr(agent, "healthy", None)
    if check is not None:
        return bool(check())
    if config.agent == "aider" and config.model.startswith(("ollama_chat/", "ollama/")):
        import httpx

        try:
            httpx.get(config.ollama_api_base.rstrip("/") + "/api/version", timeout=5.0)
        except httpx.HTTPError:
            return False
    return True


def _wait(proc: subprocess.Popen, deadline: float | None, stop: Callable[[], bool]) -> str:
    """Wait for the agent; "" if it exited by itself, else why it was ended ("interrupted", "timeout").
    Either way nothing of its process group is left running afterwards."""
    reason = ""
    while proc.poll() is None:
        if stop():
            reason = "interrupted"
        elif deadline is not None and time.monotonic() > deadline:
            reason = "timeout"
        if reason:
            process.terminate_group(proc.pid)
            try:
                proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            break
        time.sleep(POLL_SECONDS)
    process.terminate_group(proc.pid, hard=True)  # whatever it left running
    proc.wait()
    return reason


def _judge(result: RunResult, checkout: git.Tree, stopped: str, keep_out: tuple[str, ...]) -> None:
    if not stopped:
        git.commit_leftovers(checkout, f"gasworks: changes left uncommitted by the agent ({result.task_id})",
                             keep_out)
    result.head = git.rev_parse(checkout, "HEAD")
    # Commits whose sum changes nothing (a file added and removed) are no change either.
    same = git.same_tree(checkout, result.base, "HEAD")
    result.commits = [] if same else git.commits_between(checkout, result.base)
    code = result.agent_exit
    if stopped:
        result.status = stopped
    elif code == ENDPOINT_DOWN_EXIT:
        result.status, result.note = "endpoint_down", "the agent could not reach the model"
    elif code != 0:
        result.status, result.note = "failed", f"the agent exited with {code}"
    else:
        result.status = "done" if result.commits else "no_change"
