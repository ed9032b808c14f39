"""kill -9 of `gasworks run` at random moments, then a restart: every task lands exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gasworks import git
from tests.fleet import agent_processes, fake_script

SEEDS = range(20)


def gasworks(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=root, capture_output=True, text=True,
                          timeout=180, **kwargs)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_at_a_random_moment_then_restart_loses_and_repeats_nothing(project_dir, seed):
    rng = random.Random(seed)
    ids = []
    for n in range(6):
        script = {"sleep": round(rng.uniform(0.0, 0.6), 2)}
        if n % 3 == 0:
            script["suggest"] = [f"follow-up {seed}-{n}"]
        result = gasworks(project_dir, "create", f"task {n}", "-q", "-d", fake_script(**script))
        ids.append(result.stdout.strip())
    run = subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--workers", "3"],
                           cwd=project_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "GASWORKS_RETRY_BACKOFF": "0"})
    time.sleep(rng.uniform(0.3, 3.0))  # somewhere in claims, agent runs, merges or suggestion ingest
    run.send_signal(signal.SIGKILL)
    run.wait()

    restart = subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--workers", "3",
                                "--until-done"], cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "GASWORKS_RETRY_BACKOFF": "0"})
    try:
        out, _ = restart.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        restart.send_signal(signal.SIGINT)
        out, _ = restart.communicate(timeout=60)
        state = gasworks(project_dir, "merges", "--json").stdout + gasworks(project_dir, "list", "--all").stdout
        pytest.fail(f"the restart did not finish:\n{out}\n{state}")
    assert restart.returncode == 0, out
    tasks = json.loads(gasworks(project_dir, "list", "--all", "--json").stdout)
    assert {t["status"] for t in tasks} == {"closed"}
    merged = git.run(["log", "--first-parent", "--format=%s", "main"], project_dir).stdout.splitlines()
    for task in tasks:  # exactly one merge per task, suggested follow-ups included
        assert sum(line.startswith(f"Merge gasworks/{task['id']}:") for line in merged) == 1, task["id"]
    assert all(line.startswith("Merge gasworks/") for line in merged[:-1]) and merged[-1] == "initial"
    tree = git.run(["ls-tree", "-r", "--name-only", "main", "fake/"], project_dir).stdout.split()
    assert sorted(tree) == sorted(f"fake/{t['id']}.txt" for t in tasks)
    titles = [t["title"] for t in tasks]
    assert len(titles) == len(set(titles))  # no suggestion ingested twice
    assert not git.is_dirty(project_dir) or git.changed_files(project_dir) == ["gasworks.toml"]
    assert agent_processes(project_dir) == []
