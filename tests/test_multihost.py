"""Three hosts (separate processes, separate clones) share one PostgreSQL store and one bare git
remote: 60 tasks land exactly once, one refinery works at a time, and when the host holding the
merge lock is killed another takes the lock over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg

from gasworks import git
from gasworks.store import NewTask
from gasworks.store.postgres import PostgresStore
from tests.fleet import agent_processes, fake_script

TASKS = 60
# The merge gate: fails loudly if two refineries ever run it at once (the marker is shared).
GATE = textwrap.dedent('''
    import os, sys, time
    marker, log = sys.argv[1], sys.argv[2]
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with open(log, "a") as handle:
            handle.write("OVERLAP\\n")
        sys.exit(1)
    try:
        time.sleep(0.3)
        with open(log, "a") as handle:
            handle.write(f"gate {os.getcwd()}\\n")
    finally:
        os.close(fd)
        os.unlink(marker)
''')


def setup_hosts(tmp_path: Path, env: dict[str, str]) -> list[Path]:
    bare, seed = tmp_path / "remote.git", tmp_path / "seed"
    git.run(["init", "-q", "--bare", "-b", "main", str(bare)], tmp_path)
    git.init_repo(seed)
    (seed / "README.md").write_text("shared\n")
    git.commit_all(seed, "initial")
    git.run(["push", "-q", str(bare), "main"], seed)
    hosts = []
    for n in (1, 2, 3):
        host = tmp_path / f"h{n}"
        git.run(["clone", "-q", str(bare), str(host)], tmp_path)
        init = subprocess.run([sys.executable, "-m", "gasworks", "init"], cwd=host, env=env, capture_output=True,
                              text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        assert "using the store postgresql://" in init.stdout
        hosts.append(host)
    return hosts


def refinery_holder(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT owner FROM locks WHERE name = 'refinery'").fetchone()
    return row[0] if row else ""


def test_three_hosts_share_one_queue_and_hand_the_merge_lock_over(tmp_path, pg_url):
    gate = tmp_path / "gate.py"
    gate.write_text(GATE)
    env = {**os.environ, "GASWORKS_STORE": pg_url, "GASWORKS_REMOTE": "origin", "GASWORKS_ACTOR": "tester",
           "GASWORKS_GATE": json.dumps([[sys.executable, str(gate), str(tmp_path / "gate.marker"),
                                         str(tmp_path / "gate.log")]]),
           "GASWORKS_MERGE_BATCH_SIZE": "4", "GASWORKS_LEASE_SECONDS": "6", "GASWORKS_RETRY_BACKOFF": "0"}
    hosts = setup_hosts(tmp_path, env)
    store = PostgresStore(pg_url)
    try:
        ids = [t.id for t in store.create_tasks([NewTask(f"task {n}", description=fake_script(sleep=0.2))
                                                 for n in range(TASKS)], prefix="gw", actor="tester")]
        runs, outs = {}, {}
        for n, host in enumerate(hosts, start=1):
            outs[n] = open(tmp_path / f"h{n}.out", "w")
            runs[n] = subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--host-id", f"h{n}", "--agent",
                                        "fake", "--workers", "3", "--until-done"], cwd=host, env=env,
                                       stdout=outs[n], stderr=subprocess.STDOUT)
        # Kill the host that holds the merge lock, in the middle of a round, once some work has landed.
        killed = None
        deadline = time.monotonic() + 120
        while killed is None:
            assert time.monotonic() < deadline, "no refinery round to interrupt"
            holder = refinery_holder(pg_url)
            pid = int(holder.split(":")[1]) if holder else 0
            owner = next((n for n, run in runs.items() if run.pid == pid), None)
            if owner and store.counts().get("closed", 0) >= 15:
                runs[owner].send_signal(signal.SIGKILL)
                runs[owner].wait()
                killed = owner
            time.sleep(0.02)
        for n, run in runs.items():
            if n != killed:
                assert run.wait(timeout=240) == 0, (tmp_path / f"h{n}.out").read_text()
        survivors = "".join((tmp_path / f"h{n}.out").read_text() for n in runs if n != killed)
        assert "took over the merge lock of a stopped refinery" in survivors
        # The killed host comes back: it ends the agents it left and finds nothing left to do.
        again = subprocess.run([sys.executable, "-m", "gasworks", "run", "--host-id", f"h{killed}", "--agent",
                                "fake", "--workers", "3", "--until-done"], cwd=hosts[killed - 1], env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr

        tasks = {t.id: t for t in store.list_tasks()}
        assert {tasks[i].status for i in ids} == {"closed"}
        assert len(tasks) == TASKS  # no conflict or bug tasks were needed
    finally:
        store.close()
        for out in outs.values():
            out.close()
    # (a batch lands as one first-parent commit, the gated tree; its branches' merges are behind it)
    landed = git.run(["log", "--format=%s", "main"], tmp_path / "remote.git").stdout.splitlines()
    for task_id in ids:
        assert sum(line.startswith(f"Merge gasworks/{task_id}:") for line in landed) == 1, task_id
    tree = git.run(["ls-tree", "-r", "--name-only", "main", "fake/"], tmp_path / "remote.git").stdout.split()
    assert sorted(tree) == sorted(f"fake/{task_id}.txt" for task_id in ids)
    gate_log = (tmp_path / "gate.log").read_text()
    assert "OVERLAP" not in gate_log and gate_log.count("gate ") >= TASKS // 4
    assert {line.split()[1].split("/h")[1][0] for line in gate_log.splitlines()} != {str(killed)}  # others gated
    for host in hosts:
        assert agent_processes(host) == []
