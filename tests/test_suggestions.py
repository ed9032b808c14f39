"""The self-improving loop: agents' follow-up ideas become tasks, once, within caps; scheduling keeps
tasks that touch the same files apart."""

from __future__ import annotations

import json
import time

from gasworks import git
from gasworks.ingest import parse_suggestions
from tests.conftest import run_gasworks
from tests.fleet import add, drain, fake_script, make_dispatcher


def test_parse_suggestions_drops_and_counts_the_junk():
    text = "- Add logging\n\n* add   LOGGING!\n1. Write docs\n" + "x" * 300 + "\nbad\x1b[31m line\n\t\n"
    kept, dropped = parse_suggestions(text)
    assert kept == ["Add logging", "Write docs"]
    assert dropped == {"blank": 2, "duplicate": 1, "too_long": 1, "control_characters": 1, "not_utf8": 0}


def test_suggestions_from_fourteen_worktrees_are_ingested_once_each(project_dir):
    dispatcher, lines = make_dispatcher(project_dir, num_workers=14, max_suggestions_per_task=2)
    open_task = add(dispatcher, "Already planned work", priority=4)
    dispatcher.store.transition(open_task, "deferred", actor="t")  # stays open-ish, never runs
    sources = [add(dispatcher, f"task {n}", description=fake_script(suggest=[
        "Add logging everywhere", f"Idea number {n}", "already planned work", f"Extra idea {n}"]))
        for n in range(14)]
    drain(dispatcher, limit=300)
    store = dispatcher.store
    suggested = store.list_tasks(labels=["suggested"])
    titles = sorted(t.title for t in suggested)
    assert titles.count("Add logging everywhere") == 1
    assert sorted(t for t in titles if t.startswith("Idea number")) == sorted(f"Idea number {n}" for n in range(14))
    # The one whose "Add logging" got in first had no room left (2 per task) for its extra idea.
    assert len([t for t in titles if t.startswith("Extra idea")]) == 13
    assert "already planned work" not in [t.lower() for t in titles]
    per_source: dict[str, int] = {}
    for task in suggested:
        full = store.get_task(task.id)
        assert full.priority == 3
        assert [d.type for d in full.dependencies] == ["discovered-from"]
        per_source[full.dependencies[0].depends_on_id] = per_source.get(full.dependencies[0].depends_on_id, 0) + 1
    assert sorted(per_source) == sorted(sources) and set(per_source.values()) == {2}
    assert "suggested_tasks.txt" not in git.run(["ls-tree", "-r", "--name-only", "main"], project_dir).stdout
    assert any("dropped:" in line and "over task cap" in line.replace("_", " ") for line in lines)


def test_a_committed_suggestion_file_is_kept_out_of_the_branch(project_dir):
    dispatcher, _ = make_dispatcher(project_dir)
    task_id = add(dispatcher, "commits its ideas", description=fake_script(
        write={"suggested_tasks.txt": "Commit me\n", "real.txt": "work\n"}))
    drain(dispatcher)
    assert [t.title for t in dispatcher.store.list_tasks(labels=["suggested"])] == ["Commit me"]
    tree = git.run(["ls-tree", "-r", "--name-only", "main"], project_dir).stdout.split()
    assert "real.txt" in tree and "suggested_tasks.txt" not in tree
    assert dispatcher.store.get_task(task_id).status == "closed"


def test_only_suggestions_is_no_change(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, max_attempts=1)
    task_id = add(dispatcher, "only ideas", description=fake_script(write={}, suggest=["An idea"]))
    drain(dispatcher)
    assert dispatcher.store.attempts(task_id)[0].outcome == "no_change"


def test_classic_root_file_workflow(project_dir):
    suggestions = project_dir / "suggested_tasks.txt"
    suggestions.write_text("Add a CLI\nAdd a CLI\n\nWrite tests for parse()\n")
    first = run_gasworks(["ingest", "--json"], project_dir)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert len(report["created"]) == 2 and report["dropped"]["duplicate"] == 1 and report["dropped"]["blank"] == 1
    assert suggestions.read_text() == ""
    suggestions.write_text("add a cli\nSomething new\n")
    again = json.loads(run_gasworks(["ingest", "--json"], project_dir).stdout)
    assert len(again["created"]) == 1 and again["dropped"]["already_open"] == 1
    listed = json.loads(run_gasworks(["list", "--label", "suggested", "--json"], project_dir).stdout)
    assert sorted(t["title"] for t in listed) == ["Add a CLI", "Something new", "Write tests for parse()"]
    missing = run_gasworks(["ingest", "nope.txt"], project_dir)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_backlog_cap_stops_runaway_growth(project_dir):
    (project_dir / "suggested_tasks.txt").write_text("\n".join(f"idea {n}" for n in range(10)))
    (project_dir / "gasworks.toml").write_text("max_suggested_backlog = 4\n")
    report = json.loads(run_gasworks(["ingest", "--json"], project_dir).stdout)
    assert len(report["created"]) == 4 and report["dropped"]["over_backlog_cap"] == 6


def _running_titles(dispatcher) -> list[str]:
    return sorted(dispatcher.store.get_task(run.task_id).title for run in dispatcher.running.values())


def test_tasks_touching_the_same_files_are_not_run_together_while_other_work_is_ready(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=2)
    slow = fake_script(sleep=2)
    a = add(dispatcher, "edit x first", description=slow, labels=["files:x.py"], priority=1)
    b = add(dispatcher, "edit x again", description=slow, labels=["files:x.py"], priority=1)
    add(dispatcher, "edit y", description=slow, labels=["files:y.py"], priority=2)
    dispatcher.tick(time.time())
    assert _running_titles(dispatcher) == ["edit x first", "edit y"]
    avoided = [e for e in dispatcher.store.events(b) if e.kind == "overlap_avoided"]
    assert len(avoided) == 1 and dispatcher.store.get_task(b).status == "open"
    assert dispatcher.store.get_task(a).status == "in_progress"
    dispatcher.stop(hard=True)
    drain(dispatcher)


def test_overlapping_work_still_runs_when_nothing_else_is_ready(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=2)
    slow = fake_script(sleep=2)
    add(dispatcher, "edit x first", description=slow, labels=["files:x.py"])
    add(dispatcher, "edit x again", description=slow, labels=["files:x.py"])
    dispatcher.tick(time.time())
    assert _running_titles(dispatcher) == ["edit x again", "edit x first"]
    dispatcher.stop(hard=True)
    drain(dispatcher)


def test_without_conflict_awareness_overlapping_tasks_run_together(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=2, conflict_aware=False)
    slow = fake_script(sleep=2)
    add(dispatcher, "edit x first", description=slow, labels=["files:x.py"], priority=1)
    add(dispatcher, "edit x again", description=slow, labels=["files:x.py"], priority=1)
    add(dispatcher, "edit y", description=slow, labels=["files:y.py"], priority=2)
    dispatcher.tick(time.time())
    assert _running_titles(dispatcher) == ["edit x again", "edit x first"]
    dispatcher.stop(hard=True)
    drain(dispatcher)


def test_files_stay_busy_until_the_branch_lands(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    first = add(dispatcher, "edit x", labels=["files:x.py"], priority=1)
    second = add(dispatcher, "edit x too", labels=["files:x.py"], priority=2)
    add(dispatcher, "edit y", labels=["files:y.py"], priority=3)
    assert dispatcher.store.acquire_lock("refinery", "someone else", ttl=600)  # the merge queue stands still
    deadline = time.monotonic() + 30
    while dispatcher.store.get_task(first).status != "merging":
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline
        time.sleep(0.05)
    dispatcher.tick(time.time())
    # "edit x" has not landed: "edit x too" would start from a tip without it, so "edit y" goes first.
    assert _running_titles(dispatcher) == ["edit y"]
    assert [e.kind for e in dispatcher.store.events(second)].count("overlap_avoided") >= 1
    dispatcher.store.release_lock("refinery", "someone else")
    drain(dispatcher)
    assert {t.status for t in dispatcher.store.list_tasks()} == {"closed"}


def test_until_done_waits_for_resolved_conflicts_to_land(project_dir):
    for name in ("one", "two", "three"):
        run_gasworks(["create", f"write {name}", "-d", fake_script(write={"same.txt": f"{name}\n"})], project_dir)
    result = run_gasworks(["run", "--agent", "fake", "--workers", "3", "--until-done"], project_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = json.loads(run_gasworks(["list", "--all", "--json"], project_dir).stdout)
    assert {t["status"] for t in listed} == {"closed"} and any("merge-conflict" in t.get("labels", []) for t in listed)
    fixers = [t for t in listed if "merge-conflict" in t.get("labels", [])]
    assert all("files:same.txt" in t["labels"] for t in fixers)
    assert sorted(git.run(["show", "main:same.txt"], project_dir).stdout.split()) == ["one", "three", "two"]
