"""`gasworks run` as a real process: Ctrl+C once and twice, SIGTERM, kill -9 and restart, one run at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gasworks import git
from gasworks.store.sqlite import SQLiteStore
from tests.fleet import agent_processes, fake_script


def start_run(root: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gasworks", "run", "--agent", "fake", *args], cwd=root,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **env},
    )


def create(root: Path, title: str, **script) -> str:
    result = subprocess.run([sys.executable, "-m", "gasworks", "create", title, "-q",
                             *(["-d", fake_script(**script)] if script else [])],
                            cwd=root, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def running_attempts(root: Path) -> int:
    store = SQLiteStore(root / ".gasworks" / "gasworks.db")
    try:
        return sum(1 for a in store.attempts(running=True) if a.pid)
    finally:
        store.close()


def statuses(root: Path) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-m", "gasworks", "list", "--all", "--json"], cwd=root,
                            capture_output=True, text=True, check=True)
    return {t["id"]: t["status"] for t in json.loads(result.stdout)}


def finish(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def test_first_ctrl_c_lets_running_agents_finish_and_merge(project_dir):
    ids = [create(project_dir, f"slow {n}", sleep=2) for n in range(2)]
    waiting = create(project_dir, "never started")
    proc = start_run(project_dir, "--workers", "2", GASWORKS_GRACE_SECONDS="60")
    wait_for(lambda: running_attempts(project_dir) == 2, what="two agents running")
    proc.send_signal(signal.SIGINT)
    out = finish(proc)
    assert proc.returncode == 130, out
    assert "stopping: no new tasks" in out
    final = statuses(project_dir)
    assert [final[i] for i in ids] == ["closed", "closed"] and final[waiting] == "open"
    assert agent_processes(project_dir) == []


def test_second_ctrl_c_stops_agents_at_once_and_requeues(project_dir):
    ids = [create(project_dir, f"hangs {n}", hang=True) for n in range(2)]
    proc = start_run(project_dir, "--workers", "2", GASWORKS_GRACE_SECONDS="600")
    wait_for(lambda: running_attempts(project_dir) == 2, what="two agents running")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # still in its grace period
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out = finish(proc)
    assert time.monotonic() - started < 20 and proc.returncode == 130, out
    assert [statuses(project_dir)[i] for i in ids] == ["open", "open"]
    store = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    assert [a.outcome for i in ids for a in store.attempts(i)] == ["interrupted", "interrupted"]
    assert store.failed_attempts(ids[0]) == 0  # not the task's fault
    assert agent_processes(project_dir) == []


def test_sigterm_acts_like_the_first_ctrl_c_then_the_grace_ends(project_dir):
    task_id = create(project_dir, "hangs", hang=True)
    proc = start_run(project_dir, "--workers", "1", GASWORKS_GRACE_SECONDS="1")
    wait_for(lambda: running_attempts(project_dir) == 1, what="the agent running")
    proc.send_signal(signal.SIGTERM)
    out = finish(proc)
    assert proc.returncode == 130 and "stopping every running agent" in out, out
    assert statuses(project_dir)[task_id] == "open"
    assert agent_processes(project_dir) == []


def test_kill_9_then_restart_completes_the_queue_with_nothing_lost(project_dir):
    # The first three agents hang, so they are certainly alive when the second run starts however
    # loaded the machine is; their tasks are then rescripted to finish, for the attempts after them.
    ids = [create(project_dir, f"task {n}", hang=True) for n in range(6)]
    proc = start_run(project_dir, "--workers", "3")
    wait_for(lambda: running_attempts(project_dir) == 3, what="three agents running")
    proc.kill()
    proc.wait()
    assert len(agent_processes(project_dir)) >= 3  # agents live in their own sessions and outlive the dispatcher
    assert "in_progress" in statuses(project_dir).values()
    subprocess.run([sys.executable, "-m", "gasworks", "update", *ids, "-d", "finish at once"], cwd=project_dir,
                   capture_output=True, check=True, timeout=60)

    second = start_run(project_dir, "--workers", "3", "--until-done")
    out = finish(second, timeout=120)
    assert second.returncode == 0, out
    assert out.count("ended agent process") >= 3 and out.count("left running by a stopped dispatcher") >= 3
    assert set(statuses(project_dir).values()) == {"closed"}
    tree = git.run(["ls-tree", "-r", "--name-only", "main", "fake/"], project_dir).stdout.split()
    assert sorted(tree) == sorted(f"fake/{i}.txt" for i in ids)
    store = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    outcomes = [a.outcome for i in ids for a in store.attempts(i)]
    assert outcomes.count("orphaned") == 3 and outcomes.count("success") == 6
    assert agent_processes(project_dir) == []


def test_a_second_run_in_the_same_repo_is_refused(project_dir):
    create(project_dir, "hangs", hang=True)
    first = start_run(project_dir, "--workers", "1", GASWORKS_GRACE_SECONDS="0")
    wait_for(lambda: running_attempts(project_dir) == 1, what="the first run working")
    second = subprocess.run([sys.executable, "-m", "gasworks", "run", "--agent", "fake"], cwd=project_dir,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert f"another `gasworks run` (pid {first.pid}) is active" in second.stderr
    status = json.loads(subprocess.run([sys.executable, "-m", "gasworks", "status", "--json"], cwd=project_dir,
                                       capture_output=True, text=True, check=True).stdout)
    assert status["run_pid"] == first.pid and len(status["slots"]) == 1
    first.send_signal(signal.SIGINT)
    finish(first)
    assert agent_processes(project_dir) == []


@pytest.mark.parametrize("args, needle", [
    (["--agent", "aider"], "cannot find 'aider'"),
    (["--workers", "0"], "Invalid value for '-w' / '--workers'"),
])
def test_run_refuses_bad_setups_with_one_line(project_dir, args, needle):
    result = subprocess.run([sys.executable, "-m", "gasworks", "run", *args], cwd=project_dir,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and needle in result.stderr and "Traceback" not in result.stderr


def test_until_done_exit_code_says_whether_work_was_left(project_dir):
    good = create(project_dir, "fine")
    done = subprocess.run([sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--until-done"],
                          cwd=project_dir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(project_dir)[good] == "closed"
    bad = create(project_dir, "always fails", exit=4)
    after = create(project_dir, "waits for the failing one")
    subprocess.run([sys.executable, "-m", "gasworks", "dep", "add", after, bad], cwd=project_dir, check=True,
                   capture_output=True)
    left = subprocess.run([sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--until-done"],
                          cwd=project_dir, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GASWORKS_MAX_ATTEMPTS": "1"})
    assert left.returncode == 1, left.stdout + left.stderr
    assert statuses(project_dir)[bad] == "blocked" and statuses(project_dir)[after] == "open"
    assert "1 blocked" in left.stdout and "labelled needs-human" in left.stdout
