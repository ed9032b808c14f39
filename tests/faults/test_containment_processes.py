"""Nothing an agent starts outlives its attempt, and a closed terminal (SIGHUP) stops `gasworks run` cleanly.

A hostile agent starts a child in a session of its own (setsid), out of reach of the agent's
process group, and exits. With or without the bwrap sandbox, in the fleet and in agent-run, the
child must be gone once the attempt is over. Real processes and real signals throughout.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import textwrap
import uuid
from pathlib import Path

import psutil
import pytest

from gasworks import git
from gasworks.store.sqlite import SQLiteStore
from tests.faults.test_sandbox import agent_run, need_bwrap
from tests.fleet import add, agent_processes, drain, make_dispatcher
from tests.test_refinery import queue_up
from tests.test_run_process import create, finish, running_attempts, statuses, wait_for

# Starts a child in a new session (setsid) that sleeps forever, waits until it runs, says so in
# the attempt's log, and exits; with --bare the child's environment is empty. The marker on the
# child's command line is how the test finds it: under bwrap the pid the agent sees is one of its
# own PID namespace.
SETSID_AGENT = textwrap.dedent('''
    import subprocess, sys

    marker, env = sys.argv[1], ({} if "--bare" in sys.argv else None)
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(10**6)",
                              marker], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             env=env)
    assert child.stdout.readline() == b"up\\n"
    print(f"SETSID CHILD {child.pid} runs", flush=True)
''')


def marked(token: str) -> list[psutil.Process]:
    """Live (not zombie) processes with the marker on their command line."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if token in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def marker():
    """A token for the command lines of what a test starts; whatever of it is left running is killed
    afterwards (what the old code left)."""
    token = f"gasworks-marked-{uuid.uuid4().hex}"
    yield token
    for proc in marked(token):
        proc.kill()


@pytest.fixture
def setsid_agent(tmp_path, marker) -> list[str]:
    """The hostile agent's command, its child marked."""
    script = tmp_path / "setsid_agent.py"
    script.write_text(SETSID_AGENT)
    return [sys.executable, str(script), marker]


def sandbox_or_skip(kind: str) -> str:
    if kind == "bwrap":
        need_bwrap()
    return kind


@pytest.mark.parametrize("kind, bare", [("none", False), ("bwrap", False), ("bwrap", True)],
                         ids=["none", "bwrap", "bwrap-empty-environment"])
def test_a_setsid_child_of_a_fleet_agent_ends_with_its_attempt(project_dir, setsid_agent, marker, kind, bare):
    """Under bwrap even a child that dropped the environment gasworks finds agents by is ended: the
    agent's PID namespace goes with it. (Without the sandbox such a child escapes.)"""
    dispatcher, _ = make_dispatcher(project_dir, agent="command", command=setsid_agent + ["--bare"] * bare,
                                    sandbox=sandbox_or_skip(kind), max_attempts=1)
    task_id = add(dispatcher, "leave a child behind")
    drain(dispatcher)
    attempt = dispatcher.store.attempts(task_id)[0]
    assert "SETSID CHILD" in Path(attempt.log_path).read_text(), "the agent did not start its child"
    assert attempt.outcome == "no_change"
    wait_for(lambda: not marked(marker), timeout=10, what="the setsid child to be ended")
    assert agent_processes(project_dir) == []


@pytest.mark.parametrize("kind", ["none", "bwrap"])
def test_a_setsid_child_of_an_agent_run_agent_ends_with_the_run(repo, tmp_path, setsid_agent, marker, kind):
    config = f'agent = "command"\nsandbox = "{sandbox_or_skip(kind)}"\ncommand = {json.dumps(setsid_agent)}\n'
    (repo / "gasworks.toml").write_text(config)
    git.commit_all(repo, "gasworks config")
    out = agent_run(repo, tmp_path, "Task gw-c1: leave a child behind\n", expect="no_change")
    assert "SETSID CHILD" in Path(out["log"]).read_text(), "the agent did not start its child"
    wait_for(lambda: not marked(marker), timeout=10, what="the setsid child to be ended")
    assert agent_processes(repo) == []


RUN = [sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--workers", "1"]


def grace_of_one_second() -> dict[str, str]:
    return {**os.environ, "GASWORKS_GRACE_SECONDS": "1"}


def assert_stopped_cleanly(root: Path, task_id: str) -> None:
    """The task back in the queue, its attempt recorded as interrupted, no agent left running."""
    assert statuses(root)[task_id] == "open"
    store = SQLiteStore(root / ".gasworks" / "gasworks.db")
    try:
        assert [a.outcome for a in store.attempts(task_id)] == ["interrupted"]
    finally:
        store.close()
    assert agent_processes(root) == []


@pytest.fixture
def reaper(project_dir):
    """Runs to end after the test, and whatever agents they left (what the old code did)."""
    runs: list[subprocess.Popen] = []
    yield runs.append
    for run in runs:
        if run.poll() is None:
            run.kill()
            run.wait()
    for pid in agent_processes(project_dir):
        psutil.Process(pid).kill()


def test_sighup_stops_gasworks_run_like_sigterm(project_dir, reaper):
    """SIGHUP's default action ends Python at once: no cleanup, the task left in progress and its
    agent running on."""
    task_id = create(project_dir, "hangs", hang=True)
    run = subprocess.Popen(RUN, cwd=project_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True, env=grace_of_one_second())
    reaper(run)
    wait_for(lambda: running_attempts(project_dir) == 1, what="the agent running")
    run.send_signal(signal.SIGHUP)
    out = finish(run)
    assert run.returncode == 130, out
    assert "stopping: no new tasks" in out and "stopping every running agent" in out, out
    assert_stopped_cleanly(project_dir, task_id)


def _take_terminal() -> None:
    """In the child: its stdin, a pty, becomes the controlling terminal of its new session."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _drain(master: int) -> None:
    try:
        while os.read(master, 65536):
            pass
    except BlockingIOError:
        pass


def test_closing_its_terminal_stops_gasworks_run_cleanly(project_dir, reaper):
    """The real thing: the terminal `gasworks run` shows its live view in goes away. The kernel sends
    SIGHUP, and from then on every write to the terminal fails; the run must still end its agent."""
    task_id = create(project_dir, "hangs", hang=True)
    master, terminal = pty.openpty()
    os.set_blocking(master, False)
    run = subprocess.Popen(RUN, cwd=project_dir, stdin=terminal, stdout=terminal, stderr=terminal,
                           start_new_session=True, preexec_fn=_take_terminal, env=grace_of_one_second())
    reaper(run)
    os.close(terminal)
    # Read what it shows meanwhile, so the terminal's buffer never fills and blocks it.
    wait_for(lambda: _drain(master) or running_attempts(project_dir) == 1, what="the agent running")
    os.close(master)  # the terminal window closes
    run.wait(timeout=60)
    assert run.returncode == 130
    assert_stopped_cleanly(project_dir, task_id)


def test_sighup_stops_the_refinery_and_its_gate(project_dir, marker):
    """`gasworks refinery` had no handlers at all: SIGHUP or SIGTERM ended it at once and its gate
    command, in a session of its own, ran on. Now the gate is ended and the branch requeued."""
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    task_id = add(dispatcher, "waits for the merge queue")
    queue_up(dispatcher, 1)
    dispatcher.store.close()
    gate = [[sys.executable, "-c", "import time; time.sleep(10**6)", marker]]
    run = subprocess.Popen([sys.executable, "-m", "gasworks", "refinery"], cwd=project_dir,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True, env={**os.environ, "GASWORKS_GATE": json.dumps(gate)})
    try:
        wait_for(lambda: bool(marked(marker)), what="the gate running")
        run.send_signal(signal.SIGHUP)
        out = finish(run)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, out
    wait_for(lambda: not marked(marker), timeout=10, what="the gate to be ended")
    store = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    try:
        assert [m.status for m in store.merges(task_id=task_id)] == ["queued"]
        assert store.get_task(task_id).status == "merging"
    finally:
        store.close()
