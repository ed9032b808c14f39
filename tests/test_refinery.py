"""The merge queue: trial merges, gates, batches and bisection, a moving target, one refinery at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gasworks import git
from tests.fleet import add, drain, fake_script, make_dispatcher

# Fails when any file named bad* is in the tree: the agent that wrote it "broke the build".
GATE_NO_BAD = [sys.executable, "-c",
               "import pathlib, sys; bad = sorted(p.name for p in pathlib.Path('.').glob('bad*'));"
               " print('broken by', bad) if bad else print('ok'); sys.exit(1 if bad else 0)"]


def queue_up(dispatcher, count: int) -> None:
    """Let agents finish while another "refinery" holds the lock, so `count` branches wait in the queue."""
    assert dispatcher.store.acquire_lock("refinery", "someone else", ttl=600)
    deadline = time.monotonic() + 60
    while len(dispatcher.store.merges(statuses=["queued"])) < count:
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline, "the agents did not finish"
        time.sleep(0.05)
    assert [m.status for m in dispatcher.store.merges()] == ["queued"] * count
    dispatcher.store.release_lock("refinery", "someone else")


def test_gate_failure_sends_back_only_that_task_with_the_output(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, gate=[GATE_NO_BAD], max_attempts=1)
    good = add(dispatcher, "good change")
    bad = add(dispatcher, "breaks the build", description=fake_script(write={"bad-1.txt": "x"}))
    drain(dispatcher)
    store = dispatcher.store
    assert store.get_task(good).status == "closed"
    failed = store.get_task(bad)
    assert failed.status == "blocked" and "needs-human" in failed.labels
    assert "The merge gate failed" in failed.notes and "broken by ['bad-1.txt']" in failed.notes
    assert store.attempts(bad)[-1].outcome == "gate_failed"
    assert git.run(["ls-tree", "--name-only", "main"], project_dir).stdout.count("bad-1.txt") == 0
    assert [m.status for m in store.merges(task_id=bad)] == ["gate_failed"]


def test_trial_merge_catches_a_conflict_without_a_gate_run(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, gate=[GATE_NO_BAD], num_workers=2)
    a = add(dispatcher, "one", description=fake_script(write={"same.txt": "one\n"}))
    b = add(dispatcher, "two", description=fake_script(write={"same.txt": "two\n"}))
    drain(dispatcher)
    store = dispatcher.store
    conflicted = [m for t in (a, b) for m in store.merges(task_id=t) if m.trial == "conflict"]
    assert len(conflicted) == 1 and conflicted[0].gate_runs == 0
    assert sorted(git.run(["show", "main:same.txt"], project_dir).stdout.splitlines()) == ["one", "two"]


def test_batch_of_eight_with_two_bad_lands_six_and_bisects_to_exactly_the_two(project_dir):
    # One worker, so the branches queue in task order and the bisection path is known.
    dispatcher, lines = make_dispatcher(project_dir, gate=[GATE_NO_BAD], num_workers=1, merge_batch_size=8,
                                        max_attempts=1)
    ids = [add(dispatcher, f"change {n}", description=fake_script(write={
        (f"bad-{n}.txt" if n in (2, 5) else f"ok-{n}.txt"): "x"})) for n in range(8)]
    queue_up(dispatcher, 8)
    drain(dispatcher)
    store = dispatcher.store
    statuses = [store.get_task(i).status for i in ids]
    assert statuses == ["closed", "closed", "blocked", "closed", "closed", "blocked", "closed", "closed"]
    tree = git.run(["ls-tree", "--name-only", "main"], project_dir).stdout.split()
    assert sorted(p for p in tree if p.startswith(("ok", "bad"))) == [f"ok-{n}.txt" for n in (0, 1, 3, 4, 6, 7)]
    # 8 fail; 0-3 fail; 0-1 pass; 2 fails alone; 3-7 fail; 3-4 pass; 5 fails alone; 6-7 pass.
    assert store.gate_run_totals()["runs"] == 8
    assert [store.merges(task_id=i)[0].batch_size for i in ids] == [8] * 8
    assert [store.merges(task_id=i)[0].gate_runs for i in ids] == [3, 3, 3, 4, 3, 3, 3, 3]
    assert any("8 branches failed the gate together" in line for line in lines)


def test_one_flaky_gate_run_blames_no_branch_in_a_batch(project_dir):
    marker = project_dir.parent / "flaked"
    flaky = [sys.executable, "-c", f"import pathlib, sys; m = pathlib.Path({str(marker)!r});"
                                   " first = not m.exists(); m.write_text('x'); sys.exit(1 if first else 0)"]
    dispatcher, _ = make_dispatcher(project_dir, gate=[flaky], num_workers=1, merge_batch_size=4, max_attempts=1)
    ids = [add(dispatcher, f"change {n}") for n in range(4)]
    queue_up(dispatcher, 4)
    drain(dispatcher)
    store = dispatcher.store
    assert [store.get_task(i).status for i in ids] == ["closed"] * 4
    # 4 fail (the flake); 0-1 pass; 2 passes alone; 3 passes alone: each blame needs a failure alone.
    assert store.gate_run_totals() == {"runs": 4, "failed": 1, "seconds": store.gate_run_totals()["seconds"]}


SOMEONE_ELSE_COMMITS = """
import os, pathlib, subprocess
marker = pathlib.Path(MARKER)
if not marker.exists():  # the first gate run only: meanwhile, someone else moves main
    marker.write_text("x")
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], check=True, capture_output=True, text=True).stdout
    env = {**os.environ, "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x", "GIT_COMMITTER_NAME": "x",
           "GIT_COMMITTER_EMAIL": "x@x"}
    tree = git("rev-parse", "main^{tree}").strip()
    new = subprocess.run(["git", "-C", ROOT, "commit-tree", tree, "-p", "main", "-m", "someone else"], env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    git("update-ref", "refs/heads/main", new)
    if CHECKED_OUT:
        git("reset", "-q", "--hard", new)
"""


@pytest.mark.parametrize("checked_out", [True, False], ids=["main-checked-out", "main-checked-out-nowhere"])
def test_target_moved_by_someone_else_is_retested_never_overwritten(project_dir, checked_out):
    if not checked_out:
        git.run(["checkout", "-q", "-b", "work"], project_dir)
    script = (f"MARKER = {str(project_dir.parent / 'moved-once')!r}\nROOT = {str(project_dir)!r}\n"
              f"CHECKED_OUT = {checked_out}\n{SOMEONE_ELSE_COMMITS}")
    dispatcher, _ = make_dispatcher(project_dir, gate=[[sys.executable, "-c", script]], branch="main")
    task_id = add(dispatcher, "lands after a retest")
    drain(dispatcher)
    store = dispatcher.store
    assert store.get_task(task_id).status == "closed"
    log = git.run(["log", "--format=%s", "main"], project_dir).stdout.splitlines()
    assert "someone else" in log and log[0].startswith(f"Merge gasworks/{task_id}")
    merge = store.merges(task_id=task_id)[0]
    assert merge.status == "landed" and merge.gate_runs == 2
    assert git.is_ancestor(project_dir, git.rev_parse(project_dir, "main~1"), merge.landed_commit)


def test_gate_failing_on_the_target_itself_files_one_bug_and_blames_no_branch(project_dir):
    always_fails = [sys.executable, "-c", "import sys; print('red on main'); sys.exit(3)"]
    dispatcher, lines = make_dispatcher(project_dir, gate=[always_fails])
    first = add(dispatcher, "innocent one")
    second = add(dispatcher, "innocent two")
    deadline = time.monotonic() + 60
    while len(dispatcher.store.merges(statuses=["queued"])) < 2 or dispatcher.running:
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline
        time.sleep(0.05)
    dispatcher.tick(time.time())
    store = dispatcher.store
    bugs = store.list_tasks(labels=["gate-broken"])
    assert len(bugs) == 1 and bugs[0].priority == 0 and "red on main" in store.get_task(bugs[0].id).description
    assert {store.get_task(first).status, store.get_task(second).status} == {"merging"}
    assert [a.outcome for t in (first, second) for a in store.attempts(t)] == ["success", "success"]
    dispatcher.tick(time.time())  # the tip has not moved: the queue waits, no more gate runs
    assert sum(m.gate_runs for t in (first, second) for m in store.merges(task_id=t)) == 2


def test_conflict_markers_never_land(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, max_attempts=1)
    task_id = add(dispatcher, "commits a marker", description=fake_script(
        write={"notes.txt": "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> other\n"}))
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "blocked"
    assert "leftover conflict marker" in dispatcher.store.get_task(task_id).notes
    assert "notes.txt" not in git.run(["ls-tree", "--name-only", "main"], project_dir).stdout


def test_merges_and_merge_retry_from_the_cli(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, gate=[GATE_NO_BAD], max_attempts=1)
    bad = add(dispatcher, "breaks the build", description=fake_script(write={"bad-x.txt": "x"}))
    drain(dispatcher)
    run = lambda *args: subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=project_dir,  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    report = json.loads(run("merges", "--json").stdout)
    assert report["queue"] == [] and report["recent"][0]["task_id"] == bad
    assert report["recent"][0]["status"] == "gate_failed" and report["recent"][0]["gate_runs"] == 2
    assert report["stats"]["gate_failed"] == 1 and report["stats"]["gate_runs"] == 2  # its own, and the tip's
    # The user fixes the branch by hand, then asks for another try.
    worktree = project_dir / "fixer"
    git.run(["worktree", "add", "-q", str(worktree), f"gasworks/{bad}"], project_dir)
    git.run(["rm", "-q", "bad-x.txt"], worktree)
    git.commit_all(worktree, "remove the bad file")
    git.run(["worktree", "remove", str(worktree)], project_dir)
    retried = run("merge-retry", bad, "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["status"] == "queued"
    assert run("merge-retry", bad).stderr.startswith("gasworks: error: ") and "already in the merge queue" in \
        run("merge-retry", bad).stderr
    done = run("refinery", "--once")
    assert done.returncode == 0, done.stderr
    assert dispatcher.store.get_task(bad).status == "closed"
    assert "merged into main" in done.stdout


def test_two_refinery_processes_never_merge_at_the_same_time(project_dir):
    record = project_dir.parent / "gate-log.txt"
    slow_gate = [sys.executable, "-c",
                 "import os, time\n"
                 f"log = open({str(record)!r}, 'a')\n"
                 "log.write(f'start {time.time()}\\n'); log.flush(); time.sleep(0.4)\n"
                 "log.write(f'end {time.time()}\\n')"]
    dispatcher, _ = make_dispatcher(project_dir, gate=[slow_gate], num_workers=4)
    ids = [add(dispatcher, f"change {n}") for n in range(4)]
    queue_up(dispatcher, 4)
    config = json.dumps([slow_gate])
    procs = [subprocess.Popen([sys.executable, "-m", "gasworks", "refinery", "--once"], cwd=project_dir,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**__import__("os").environ, "GASWORKS_GATE": config}) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    store = dispatcher.store
    assert {store.get_task(i).status for i in ids} == {"closed"}
    assert all(len(store.merges(task_id=i, statuses=["landed"])) == 1 for i in ids)
    spans, start = [], None
    for line in Path(record).read_text().splitlines():
        kind, stamp = line.split()
        if kind == "start":
            assert start is None, "two gates ran at once"
            start = float(stamp)
        else:
            spans.append((start, float(stamp)))
            start = None
    assert len(spans) == 4


def test_a_merge_lock_left_by_a_killed_refinery_on_this_host_is_taken_over(project_dir):
    import socket

    dispatcher, lines = make_dispatcher(project_dir)
    dead = f"{socket.gethostname()}:999999999:1"  # no such pid: its refinery was killed
    assert dispatcher.store.acquire_lock("refinery", dead, ttl=3600)
    task_id = add(dispatcher, "lands anyway")
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert any(f"took over the merge lock of a stopped refinery ({dead})" in line for line in lines)


def test_a_merge_lock_held_by_a_live_process_is_respected(project_dir):
    import os
    import socket

    dispatcher, _ = make_dispatcher(project_dir)
    alive = f"{socket.gethostname()}:{os.getppid()}:1"
    assert dispatcher.store.acquire_lock("refinery", alive, ttl=3600)
    add(dispatcher, "waits")
    for _ in range(20):
        dispatcher.tick(time.time())
        time.sleep(0.05)
    assert [m.status for m in dispatcher.store.merges()] == ["queued"]
    dispatcher.store.release_lock("refinery", alive)
    drain(dispatcher)


def test_a_conflict_task_names_the_conflicting_files_not_labels(project_dir):
    """Its description listed `files:same.txt` (the scheduler's labels) where the files belong."""
    dispatcher, _ = make_dispatcher(project_dir, num_workers=2)
    for text in ("one", "two"):
        add(dispatcher, text, description=fake_script(write={"same.txt": f"{text}\n"}), labels=["files:other.py"])
    drain(dispatcher)
    (conflict,) = dispatcher.store.list_tasks(labels=["merge-conflict"])
    assert "Conflicting files:\n- same.txt\n\n" in conflict.description, conflict.description
    assert set(conflict.labels) == {"merge-conflict", "files:other.py", "files:same.txt"}


def test_a_branch_head_not_here_yet_waits_in_the_queue_and_is_never_judged_unrelated(project_dir):
    """Several hosts: a merge can name a head another host pushed before this one fetched it. git
    merge-base then fails; that must not read as "shares no history" (the task refused for good)."""
    dispatcher, lines = make_dispatcher(project_dir, max_attempts=1)
    store = dispatcher.store
    task_id = add(dispatcher, "pushed by another host")
    store.transition(task_id, "in_progress", actor="tester")
    store.transition(task_id, "merging", actor="tester")
    store.enqueue_merge(task_id, f"gasworks/{task_id}", "1" * 40)  # a commit this repository does not have
    dispatcher.refinery.process(time.time())
    assert [m.status for m in store.merges(task_id=task_id)] == ["queued"], store.merges(task_id=task_id)
    assert store.get_task(task_id).status == "merging"
    assert not any("shares no history" in line for line in lines)


def test_a_branch_already_in_the_target_lands_once_never_merged_again(project_dir):
    """kill -9 between the target's move and the store's record of it leaves the merge `merging`; a
    restart queues it again. Its branch is in the target already: recorded landed, no second merge."""
    dispatcher, lines = make_dispatcher(project_dir, max_attempts=1)
    task_id = add(dispatcher, "landed just before a crash")
    queue_up(dispatcher, 1)
    git.run(["merge", "--no-ff", "-q", "-m", f"Merge gasworks/{task_id}: by the killed run", f"gasworks/{task_id}"],
            project_dir)
    drain(dispatcher)
    subjects = git.run(["log", "--format=%s", "main"], project_dir).stdout.splitlines()
    assert sum(s.startswith(f"Merge gasworks/{task_id}:") for s in subjects) == 1, subjects
    assert [m.status for m in dispatcher.store.merges(task_id=task_id)] == ["landed"]
    assert dispatcher.store.get_task(task_id).status == "closed"
