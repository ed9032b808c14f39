"""The dispatcher driven tick by tick, with the fake agent, real git and real subprocesses."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from gasworks import git
from tests.fleet import add, agent_processes, drain, drain_until, fake_script, make_dispatcher


def test_fourteen_slots_drain_fifty_tasks_with_dependencies(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=14)
    ids: list[str] = []
    for n in range(50):
        deps = [(ids[n - 7], "blocks")] if n >= 7 else []  # seven chains, seven deep
        ids.append(add(dispatcher, f"task {n}", deps=deps, priority=n % 3))
    drain(dispatcher, limit=300)

    store = dispatcher.store
    assert {t.status for t in store.list_tasks()} == {"closed"}
    tree = git.run(["ls-tree", "-r", "--name-only", "main"], project_dir).stdout.split()
    assert sorted(p for p in tree if p.startswith("fake/")) == sorted(f"fake/{i}.txt" for i in ids)
    events = store.events(limit=100_000)
    merged_at = {e.task_id: e.id for e in events if e.kind == "status" and e.new_value == "closed"}
    for n in range(7, 50):
        starts = [e.id for e in events if e.kind == "attempt_started" and e.task_id == ids[n]]
        assert starts and min(starts) > merged_at[ids[n - 7]], f"{ids[n]} started before its blocker merged"
    assert len({e.task_id for e in events if e.kind == "attempt_started"}) == 50
    assert git.changed_files(project_dir) == ["gasworks.toml"]  # the user's checkout: clean, and up to date


def test_outcomes_are_judged_from_git_not_from_the_agent(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, num_workers=4, max_attempts=5)
    leftover = add(dispatcher, "leaves changes uncommitted",
                   description=fake_script(write={"left.txt": "x\n"}, no_commit=True))
    nothing = add(dispatcher, "changes nothing", description=fake_script(write={}))
    failing = add(dispatcher, "exits 1 after committing", description=fake_script(exit=1))
    drain_until(dispatcher, lambda: len(dispatcher.store.attempts(nothing)) >= 1
                and len(dispatcher.store.attempts(failing)) >= 1
                and dispatcher.store.get_task(leftover).status == "closed")
    dispatcher.stop()
    drain(dispatcher)

    store = dispatcher.store
    assert git.run(["show", "main:left.txt"], project_dir).stdout == "x\n"
    first = {task: store.attempts(task)[0] for task in (leftover, nothing, failing)}
    assert (first[leftover].outcome, len(first[leftover].commits)) == ("success", 1)
    assert (first[nothing].outcome, first[nothing].commits, first[nothing].note) == \
        ("no_change", [], "the agent made no commits")
    assert (first[failing].outcome, first[failing].exit_code) == ("failed", 1)
    assert store.get_task(nothing).status == "open" and store.get_task(failing).status == "open"
    assert not git.run(["ls-tree", "-r", "--name-only", "main", "fake/"], project_dir).stdout.strip()
    assert Path(first[failing].log_path).read_text().startswith("fake agent on")


def test_failed_attempts_are_capped_then_the_task_needs_a_human(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, max_attempts=2)
    task_id = add(dispatcher, "always fails", description=fake_script(exit=7))
    drain(dispatcher)
    task = dispatcher.store.get_task(task_id)
    assert task.status == "blocked" and "needs-human" in task.labels
    assert [a.outcome for a in dispatcher.store.attempts(task_id)] == ["failed", "failed"]
    assert any("blocked after 2 failed attempts" in line for line in lines)


def test_timeout_ends_the_agent_and_its_children(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, attempt_timeout=1.5, max_attempts=1)
    task_id = add(dispatcher, "hangs", description=fake_script(spawn_child=True, hang=True))
    drain(dispatcher, limit=60)
    attempt = dispatcher.store.attempts(task_id)[0]
    assert attempt.outcome == "timeout"
    assert dispatcher.store.get_task(task_id).status == "blocked"
    assert not psutil.pid_exists(attempt.pid) or psutil.Process(attempt.pid).status() == psutil.STATUS_ZOMBIE
    assert agent_processes(project_dir) == []


def test_children_an_agent_leaves_behind_are_ended(project_dir):
    dispatcher, _ = make_dispatcher(project_dir)
    task_id = add(dispatcher, "spawns a child and exits", description=fake_script(spawn_child=True))
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert agent_processes(project_dir) == []


def test_dirty_user_checkout_keeps_its_edits_and_gets_the_merge(project_dir):
    (project_dir / "README.md").write_text("my unsaved edit\n")
    (project_dir / "notes.txt").write_text("untracked, mine\n")
    head_before = git.rev_parse(project_dir, "HEAD")
    dispatcher, _ = make_dispatcher(project_dir)
    task_id = add(dispatcher, "add a file")
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert (project_dir / "README.md").read_text() == "my unsaved edit\n"
    assert (project_dir / "notes.txt").read_text() == "untracked, mine\n"
    assert (project_dir / "fake" / f"{task_id}.txt").is_file()  # the checkout's files moved with main
    assert git.current_branch(project_dir) == "main" and git.rev_parse(project_dir, "HEAD") != head_before
    assert not git.run(["diff", "--cached", "--name-only"], project_dir).stdout.strip()


def test_merge_waits_while_local_edits_are_in_the_way_and_loses_nothing(project_dir):
    (project_dir / "README.md").write_text("my unsaved edit\n")
    dispatcher, lines = make_dispatcher(project_dir)
    task_id = add(dispatcher, "rewrite the readme", description=fake_script(write={"README.md": "agent's\n"}))
    drain_until(dispatcher, lambda: dispatcher.refinery.held is not None)
    assert dispatcher.store.get_task(task_id).status == "merging"
    assert (project_dir / "README.md").read_text() == "my unsaved edit\n"
    assert any("merge queue held" in line and "README.md" in line for line in lines)
    # The user puts the file back; the next try (a few seconds later) merges.
    (project_dir / "README.md").write_text("hello\n")
    dispatcher.refinery.held.next_try = 0.0
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert (project_dir / "README.md").read_text() == "agent's\n"


def test_target_checked_out_nowhere_moves_by_compare_and_set(project_dir):
    git.run(["checkout", "-q", "-b", "work"], project_dir)
    dispatcher, _ = make_dispatcher(project_dir, branch="main")
    task_id = add(dispatcher, "lands on main")
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert git.run(["show", f"main:fake/{task_id}.txt"], project_dir).returncode == 0
    assert git.current_branch(project_dir) == "work" and not (project_dir / "fake").exists()


def test_two_agents_editing_the_same_lines_make_one_conflict_task_then_both_land(project_dir):
    dispatcher, lines = make_dispatcher(project_dir)
    first = add(dispatcher, "one", description=fake_script(write={"same.txt": "one\n"}))
    second = add(dispatcher, "two", description=fake_script(write={"same.txt": "two\n"}))
    drain(dispatcher)
    store = dispatcher.store
    conflict_tasks = store.list_tasks(labels=["merge-conflict"])
    assert len(conflict_tasks) == 1
    fixer = store.get_task(conflict_tasks[0].id)
    loser = next(d.depends_on_id for d in fixer.dependencies if d.type == "discovered-from")
    assert loser in (first, second) and fixer.priority == 1 and fixer.status == "closed"
    assert fixer.title == f"Resolve merge conflict: gasworks/{loser}" and "same.txt" in fixer.description
    assert {store.get_task(first).status, store.get_task(second).status} == {"closed"}
    assert sorted(git.run(["show", "main:same.txt"], project_dir).stdout.splitlines()) == ["one", "two"]
    merges = store.merges(task_id=loser, oldest_first=True)
    assert [(m.status, m.trial) for m in merges] == [("resolved", "conflict"), ("landed", "clean")]
    assert merges[0].conflict_task == fixer.id and merges[0].gate_runs == 0


def test_missing_target_branch_is_a_clear_error(project_dir):
    from gasworks.errors import ConfigError

    with pytest.raises(ConfigError, match=r"target branch 'trunk' does not exist \(branches: main\)"):
        make_dispatcher(project_dir, branch="trunk")


def test_failed_tasks_wait_longer_after_each_failure(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, retry_backoff=20, max_attempts=3)
    task_id = add(dispatcher, "fails", description=fake_script(exit=1))
    drain_until(dispatcher, lambda: dispatcher.store.attempts(task_id)
                and dispatcher.store.attempts(task_id)[0].ended_at)
    assert any("next try in 20 s" in line for line in lines)
    for _ in range(5):
        dispatcher.tick(time.time())
    assert len(dispatcher.store.attempts(task_id)) == 1  # held back by the backoff
    dispatcher.tick(time.time() + 21)
    drain_until(dispatcher, lambda: len(dispatcher.store.attempts(task_id)) == 2
                and dispatcher.store.attempts(task_id)[1].ended_at, limit=60)
    assert any("next try in 40 s" in line for line in lines)


def test_a_silent_agent_is_stopped_as_stalled(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, stall_timeout=1.0, max_attempts=1)
    task_id = add(dispatcher, "hangs quietly", description=fake_script(hang=True))
    drain(dispatcher, limit=60)
    attempt = dispatcher.store.attempts(task_id)[0]
    assert attempt.outcome == "stalled" and dispatcher.store.get_task(task_id).status == "blocked"
    assert agent_processes(project_dir) == []


def test_start_up_repairs_what_killed_git_processes_left(project_dir):
    dispatcher, _ = make_dispatcher(project_dir)
    slot = dispatcher.pool.slots[0].path
    lock = Path(git.run(["rev-parse", "--absolute-git-dir"], slot).stdout.strip()) / "index.lock"
    lock.write_text("")
    integration = dispatcher.refinery.integration
    (project_dir / "clash.txt").write_text("main\n")
    git.commit_all(project_dir, "main side")
    git.run(["checkout", "-q", "-b", "side", "main~1"], integration)
    (integration / "clash.txt").write_text("side\n")
    git.commit_all(integration, "side side")
    git.run(["merge", "main"], integration, check=False)  # stops half done, with a conflict
    again, lines = make_dispatcher(project_dir)
    assert f"removed a stale index.lock in {slot}" in lines
    assert f"aborted a merge left half done in {integration}" in lines
    task_id = add(again, "works after the repair")
    drain(again)
    assert again.store.get_task(task_id).status == "closed"
