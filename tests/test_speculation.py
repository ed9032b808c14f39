"""Speculative parallel gating (gate_workers), the policy that sizes it, and the pre-gate in an
agent's own worktree. Real git repositories, a real refinery, real gate processes."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import psutil

from gasworks import git
from gasworks.config import load_config
from gasworks.project import init_project
from gasworks.refinery import Refinery
from gasworks.speculation import choose_policy
from gasworks.stats import fleet_stats, stats_lines
from gasworks.store import NewTask
from gasworks.upstream import LocalUpstream
from tests.conftest import run_gasworks
from tests.fleet import add, agent_processes, drain, drain_until, fake_script, make_dispatcher

# Records what it gated (the tree id, whether the tree was clean, when) and fails on any bad* file.
RECORDING_GATE = textwrap.dedent('''
    import json, pathlib, subprocess, sys, time
    log, seconds = sys.argv[1], float(sys.argv[2])
    start = time.time()
    tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--ignored"], capture_output=True, text=True).stdout
    bad = sorted(p.name for p in pathlib.Path(".").glob("bad*"))
    time.sleep(seconds)
    with open(log, "a") as out:
        out.write(json.dumps({"tree": tree, "clean": not dirty.strip(), "passed": not bad,
                              "cwd": str(pathlib.Path.cwd()), "start": start, "end": time.time()}) + "\\n")
    sys.exit(1 if bad else 0)
''')
GATE_NO_BAD = [sys.executable, "-c",
               "import pathlib, sys; bad = sorted(p.name for p in pathlib.Path('.').glob('bad*'));"
               " print('broken by', bad) if bad else print('ok'); sys.exit(1 if bad else 0)"]


def test_the_policy_speculates_as_deep_as_pays_and_batches_only_when_failures_are_rare() -> None:
    rough = choose_policy([True] * 7 + [False] * 3, 1.0, 3, "auto")
    assert (rough.batch, rough.depth) == (1, 3) and "failure rate 30%" in rough.why
    calm = choose_policy([True] * 20, 1.0, 3, "auto")
    assert (calm.batch, calm.depth) == (8, 3)
    assert choose_policy([True] * 20, 1.0, 1, "auto").depth == 1  # one gate worker: no speculation
    assert choose_policy([True] * 20, 0.01, 3, 4).depth == 1  # a gate that costs nothing: not worth stacking
    awful = choose_policy([False] * 10, 1.0, 8, 1)
    assert awful.depth < 8 and (awful.batch, awful.depth) == (1, 1)  # 100% failure: the 2nd is never needed
    assert choose_policy([], None, 3, "auto").depth == 3  # nothing measured yet: assumed 10%
    assert choose_policy([], None, 3, "auto").batch == 4  # as before
    assert choose_policy([], None, 3, "auto", pregated=True).batch == 8  # pre-gated: assumed 5%


def make_queue(root: Path, store, files: list[str]) -> list[str]:
    """Tasks in `merging` with one branch each adding one file, queued in order; their ids."""
    ids = []
    tip = git.rev_parse(root, "main")
    for name in files:
        task = store.create_task(NewTask(f"add {name}"), prefix="gw", actor="test")
        store.transition(task.id, "in_progress", actor="test", reason="test")
        store.transition(task.id, "merging", actor="test", expected="in_progress", reason="test")
        git.run(["checkout", "-q", "-b", f"gasworks/{task.id}", tip], root)
        (root / name).write_text(f"{name}\n")
        git.run(["add", name], root)
        git.run(["commit", "-q", "-m", f"add {name}"], root)
        head = git.rev_parse(root, "HEAD")
        git.run(["checkout", "-q", "main"], root)
        store.enqueue_merge(task.id, f"gasworks/{task.id}", head)
        ids.append(task.id)
    return ids


def gated_runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def assert_only_gated_trees_landed(root: Path, runs: list[dict], base: str) -> None:
    passed = {r["tree"] for r in runs if r["passed"] and "integration" in r["cwd"]}
    commits = git.run(["rev-list", "--first-parent", f"{base}..main"], root).stdout.split()
    assert commits
    for commit in commits:
        assert git.run(["rev-parse", f"{commit}^{{tree}}"], root).stdout.strip() in passed, commit


def test_three_gate_workers_gate_at_once_land_only_gated_trees_and_regate_what_a_failure_invalidated(repo: Path):
    project, _ = init_project(repo)
    log = repo.parent / "gate.log"
    gate = [sys.executable, "-c", RECORDING_GATE, str(log), "0.4"]
    config = load_config(repo, env={}, overrides={"gate": [gate], "gate_workers": 3, "merge_batch_size": "auto",
                                                  "max_attempts": 1})
    store = project.open_store()
    base = git.rev_parse(repo, "main")
    files = [f"ok-{n}.txt" if n not in (3, 7) else f"bad-{n}.txt" for n in range(1, 13)]
    ids = make_queue(repo, store, files)
    said: list[str] = []
    refinery = Refinery(project, store, config, LocalUpstream(repo, "main"), say=said.append)
    refinery.ensure()
    deadline = time.monotonic() + 120
    while refinery.moving():
        refinery.process(time.time())
        assert time.monotonic() < deadline, said
    statuses = {m.task_id: m.status for m in store.merges()}
    for task_id, name in zip(ids, files):
        assert statuses[task_id] == ("gate_failed" if name.startswith("bad") else "landed"), (name, said)
    landed = git.run(["ls-tree", "--name-only", "main"], repo).stdout.split()
    assert sorted(n for n in landed if n != "README.md") == sorted(n for n in files if n.startswith("ok"))
    log_lines = git.run(["log", "--format=%s%n%b", "main"], repo).stdout
    for task_id, name in zip(ids, files):  # every good branch's merge is in the history exactly once
        assert log_lines.count(f"Merge gasworks/{task_id}:") == (0 if name.startswith("bad") else 1)
    runs = gated_runs(log)
    assert all(r["clean"] for r in runs)
    assert_only_gated_trees_landed(repo, runs, base)
    lanes = {r["cwd"] for r in runs}
    assert len(lanes) > 1  # more than one lane was used ...
    overlapping = [(a, b) for a in runs for b in runs if a is not b and a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping  # ... at the same time
    store.close()


def test_a_failing_pregate_sends_the_branch_back_before_it_is_queued_and_stats_show_its_cost(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, gate=[GATE_NO_BAD], pregate=True, max_attempts=1)
    good = add(dispatcher, "good change")
    bad = add(dispatcher, "breaks the build", description=fake_script(write={"bad-1.txt": "x"}))
    drain(dispatcher)
    store = dispatcher.store
    assert store.get_task(good).status == "closed"
    assert store.merges(task_id=bad) == []  # it never entered the queue
    attempt = store.attempts(bad)[-1]
    assert attempt.outcome == "gate_failed" and "the pre-gate failed" in attempt.note and "broken by" in attempt.note
    totals = store.pregate_totals()
    assert totals["runs"] == 2 and totals["failed"] == 1 and totals["cpu_seconds"] > 0
    assert any(line.startswith("pre-gates      2 run, 1 failed") for line in stats_lines(fleet_stats(store)))
    # the slots are back on their branches, clean
    for slot in dispatcher.pool.slots:
        assert git.run(["status", "--porcelain"], slot.path).stdout == ""
    result = run_gasworks(["merges"], project_dir)
    assert result.returncode == 0 and "policy: batches of" in result.stdout, result.stderr


def test_gate_workers_is_validated(project_dir):
    result = run_gasworks(["merges"], project_dir, env={"GASWORKS_GATE_WORKERS": "0"})
    assert result.returncode != 0 and "gate_workers" in (result.stderr + result.stdout)
    assert "Traceback" not in result.stderr


# Holds the gate of a tree that has hold.txt until a `release` file appears in the marks folder (60 s at most),
# noting its start (with its pid) and its end there; any other tree passes at once.
HOLDING_GATE = textwrap.dedent('''
    import os, pathlib, sys, time
    marks = pathlib.Path(sys.argv[1])
    if pathlib.Path("hold.txt").exists():
        (marks / "started").write_text(str(os.getpid()))
        deadline = time.time() + 60
        while not (marks / "release").exists() and time.time() < deadline:
            time.sleep(0.05)
        (marks / "ended").write_text("")
''')


def holding_dispatcher(project_dir: Path, marks: Path):
    marks.mkdir()
    dispatcher, lines = make_dispatcher(project_dir, gate=[[sys.executable, "-c", HOLDING_GATE, str(marks)]],
                                        pregate=True, max_attempts=1)
    held = add(dispatcher, "held at its pre-gate", description=fake_script(write={"hold.txt": "x"}))
    drain_until(dispatcher, lambda: (marks / "started").exists())
    return dispatcher, held


def test_a_slow_pregate_runs_in_the_background_while_the_other_slot_starts_and_finishes(project_dir, tmp_path):
    marks = tmp_path / "marks"
    dispatcher, held = holding_dispatcher(project_dir, marks)
    other = add(dispatcher, "another change")
    drain_until(dispatcher, lambda: dispatcher.store.get_task(other).status == "closed")
    assert not (marks / "ended").exists()  # all the while, the first slot's pre-gate was still running
    assert dispatcher.store.get_task(held).status == "in_progress"
    (marks / "release").write_text("")
    drain(dispatcher)
    assert dispatcher.store.get_task(held).status == "closed"
    assert dispatcher.store.pregate_totals()["failed"] == 0


def test_a_hard_stop_during_a_pregate_ends_the_gate_and_leaves_the_slot_clean(project_dir, tmp_path):
    marks = tmp_path / "marks"
    dispatcher, held = holding_dispatcher(project_dir, marks)
    gate_pid = int((marks / "started").read_text())
    assert psutil.pid_exists(gate_pid) and not (marks / "ended").exists()
    dispatcher.stop(hard=True)
    drain(dispatcher)
    assert agent_processes(project_dir) == []
    assert not (marks / "ended").exists()  # ended by the stop, not by its own end
    attempt = dispatcher.store.attempts(held)[-1]
    assert attempt.outcome == "interrupted" and "pre-gate" in attempt.note
    assert dispatcher.store.merges(task_id=held) == [] and dispatcher.store.pregate_totals()["runs"] == 0
    for slot in dispatcher.pool.slots:
        assert git.run(["status", "--porcelain"], slot.path).stdout == ""


def test_pregate_auto_pre_gates_only_when_failures_are_common_judged_also_by_the_pre_gates_own_results():
    often = choose_policy([True] * 7 + [False] * 3, 1.0, 3, "auto", pregated="auto")
    assert often.pregate and "pre-gates: 30% of branches fail" in often.why
    rare = choose_policy([True] * 19 + [False], 1.0, 3, "auto", pregated="auto", cpu_share=0.2)
    assert not rare.pregate and "no pre-gate: 5% of branches fail" in rare.why
    # ... unless the gate mostly waits (a sleep, I/O): then every slot gates at once for almost nothing
    assert choose_policy([True] * 19 + [False], 1.0, 3, "auto", pregated="auto", cpu_share=0.05).pregate
    # pre-gated, the queue sees few failures: the pre-gates' own failure rate keeps pre-gating on
    assert choose_policy([True] * 20, 1.0, 3, "auto", pregated="auto", pregate_history=[True] * 6 + [False] * 4).pregate
    assert not choose_policy([True] * 7 + [False] * 3, 0.01, 3, "auto", pregated="auto").pregate  # gates cost nothing
    assert choose_policy([], None, 3, "auto", pregated="auto").pregate  # nothing measured: assumed 10%
    assert choose_policy([True] * 20, 1.0, 3, "auto", pregated=True).pregate  # true and false are obeyed
    assert not choose_policy([False] * 20, 1.0, 3, "auto", pregated=False).pregate
    # pre-gates that stopped paying: the queue is sized by what they found, before any gate of its own
    assert choose_policy([], 1.0, 3, "auto", pregated="auto", pregate_history=[True] * 19 + [False],
                         cpu_share=0.9).batch == 8


def test_pregate_auto_in_the_fleet_pre_gates_while_failures_are_common_and_merges_says_why(project_dir):
    config_file = project_dir / "gasworks.toml"  # where `gasworks merges` reads it too
    config_file.write_text('pregate = "auto"\n' + config_file.read_text(encoding="utf-8"), encoding="utf-8")
    dispatcher, lines = make_dispatcher(project_dir, gate=[GATE_NO_BAD], max_attempts=1)
    assert dispatcher.config.pregate == "auto"
    store = dispatcher.store
    for number in range(1, 4):  # 3 of 3 pre-gated branches failed: pre-gating stays on
        add(dispatcher, f"breaks the build {number}", description=fake_script(write={f"bad-{number}.txt": "x"}))
    drain(dispatcher)
    assert store.pregate_totals() == {**store.pregate_totals(), "runs": 3, "failed": 3}
    assert store.merges() == []
    result = run_gasworks(["merges", "--json"], project_dir)
    policy = json.loads(result.stdout)["policy"]
    assert policy["pregate"] and "pre-gates: 100% of branches fail" in policy["why"], result.stderr
    result = run_gasworks(["merges"], project_dir)
    assert "gated at once, pre-gated;" in result.stdout


def test_the_tracked_paths_of_a_checkout_are_read_again_once_its_index_changes(repo: Path):
    assert "new.txt" not in git.tracked_paths(repo)
    assert git.tracked_paths(repo) == git.tracked_paths(repo)  # the second from the cache
    (repo / "new.txt").write_text("x\n")
    git.run(["add", "new.txt"], repo)
    assert "new.txt" in git.tracked_paths(repo)
    git.run(["rm", "-q", "--cached", "new.txt"], repo)
    assert "new.txt" not in git.tracked_paths(repo)
