"""Three hosts (separate processes and clones) on one PostgreSQL store and one bare remote, each
with gate_workers = 2 (speculative gating) and one of them pre-gating: the queue drains with no
double landing, every bad branch goes back, and every first-parent commit of the target is a tree
that a gate in an integration worktree passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from gasworks import git
from gasworks.store import NewTask
from gasworks.store.postgres import PostgresStore
from tests.fleet import agent_processes, fake_script
from tests.test_multihost import setup_hosts

TASKS, BAD = 24, (4, 11, 17)
GATE = textwrap.dedent('''
    import json, pathlib, subprocess, sys, time
    log = sys.argv[1]
    tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--ignored"], capture_output=True, text=True).stdout
    bad = sorted(str(p) for p in pathlib.Path(".").glob("fake/bad-*"))
    time.sleep(0.3)
    with open(log, "a") as out:
        out.write(json.dumps({"tree": tree, "clean": not dirty.strip(), "passed": not bad,
                              "cwd": str(pathlib.Path.cwd())}) + "\\n")
    sys.exit(1 if bad else 0)
''')


def test_three_hosts_with_gate_workers_drain_one_queue_landing_only_gated_trees_once(tmp_path, pg_url):
    gate, log = tmp_path / "gate.py", tmp_path / "gate.log"
    gate.write_text(GATE)
    env = {**os.environ, "GASWORKS_STORE": pg_url, "GASWORKS_REMOTE": "origin", "GASWORKS_ACTOR": "tester",
           "GASWORKS_GATE": json.dumps([[sys.executable, str(gate), str(log)]]), "GASWORKS_GATE_WORKERS": "2",
           "GASWORKS_MERGE_BATCH_SIZE": "auto", "GASWORKS_MAX_ATTEMPTS": "1", "GASWORKS_RETRY_BACKOFF": "0"}
    hosts = setup_hosts(tmp_path, env)
    base = git.run(["rev-parse", "main"], tmp_path / "remote.git").stdout.strip()
    store = PostgresStore(pg_url)
    try:
        new = [NewTask(f"task {n}", description=fake_script(sleep=0.1, write={f"fake/bad-{n}.txt": "x"})
                       if n in BAD else fake_script(sleep=0.1)) for n in range(TASKS)]
        ids = [t.id for t in store.create_tasks(new, prefix="gw", actor="tester")]
        runs = [subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--host-id", f"h{n}", "--agent", "fake",
                                  "--workers", "2", "--until-done"], cwd=host,
                                 env={**env, "GASWORKS_PREGATE": "true" if n == 1 else "false"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for n, host in enumerate(hosts, start=1)]
        outputs = [run.communicate(timeout=300)[0] for run in runs]
        tasks = {t.id: t for t in store.list_tasks()}
        why = {t: [(a.outcome, a.note[:300]) for a in store.attempts(t)] for t in ids}
        merges = store.merges(limit=10_000)
        pregates = store.pregate_totals()
    finally:
        store.close()
    bad_ids = {ids[n] for n in BAD}
    for task_id in ids:
        expected = {"blocked", "open"} if task_id in bad_ids else {"closed"}
        assert tasks[task_id].status in expected, (task_id, tasks[task_id].status, why[task_id],
                                                   tasks[task_id].notes[-500:], [out[-3000:] for out in outputs])
    assert sum(1 for m in merges if m.status == "landed") == TASKS - len(BAD)
    remote = tmp_path / "remote.git"
    subjects = git.run(["log", "--format=%s", "main"], remote).stdout.splitlines()
    for task_id in ids:
        assert sum(s.startswith(f"Merge gasworks/{task_id}:") for s in subjects) == (task_id not in bad_ids), task_id
    files = git.run(["ls-tree", "-r", "--name-only", "main", "fake/"], remote).stdout.split()
    assert sorted(files) == sorted(f"fake/{task_id}.txt" for task_id in ids if task_id not in bad_ids)
    gated = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(r["clean"] for r in gated)
    passed = {r["tree"] for r in gated if r["passed"] and "integration" in r["cwd"]}
    for commit in git.run(["rev-list", "--first-parent", f"{base}..main"], remote).stdout.split():
        assert git.run(["rev-parse", f"{commit}^{{tree}}"], remote).stdout.strip() in passed, commit
    assert any("integration-2" in r["cwd"] for r in gated)  # a second gate worker was used
    assert pregates["runs"] >= 1  # host 1 pre-gated what it finished
    for host in hosts:
        assert agent_processes(host) == []
