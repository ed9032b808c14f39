"""Liveness: a task a human sends back to the fleet is taken again, whichever route they use."""

from __future__ import annotations

import shutil
import time

import pytest

from gasworks.refinery import RefineryWorker
from gasworks.web import actions
from tests.fleet import add, drain_until, fake_script, make_dispatcher


@pytest.mark.parametrize("route", ["update -s open", "dashboard retry", "close, then reopen",
                                   "dashboard cancel, then reopen", "dashboard priority, then update -s open"])
def test_a_task_that_needed_a_human_is_taken_again_after_any_route_back(gw, project_dir, route):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, max_attempts=1)
    task_id = add(dispatcher, "fails the first time", description=fake_script(exit=3))
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "blocked")
    assert not dispatcher.store.get_task(task_id).assignee.startswith("gasworks:")
    gw("update", task_id, "-d", "plain work this time")
    if route == "update -s open":
        gw("update", task_id, "-s", "open")
    elif route == "dashboard retry":
        actions.retry(dispatcher.store, task_id, actor="web")
    elif route == "dashboard cancel, then reopen":
        actions.cancel(dispatcher.store, task_id, actor="web")
        gw("reopen", task_id)
    elif route == "dashboard priority, then update -s open":
        actions.set_priority(dispatcher.store, task_id, "0", actor="web")
        gw("update", task_id, "-s", "open")
    else:
        gw("close", task_id)
        gw("reopen", task_id)
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "closed"
                and len(dispatcher.store.attempts(task_id)) == 2)


def test_a_task_the_refinery_closed_and_a_human_reopens_is_taken_again(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    task_id = add(dispatcher, "lands, then is reopened")
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "closed")
    gw("update", task_id, "-d", fake_script(write={"more.txt": "more\n"}))
    gw("reopen", task_id)
    drain_until(dispatcher, lambda: len(dispatcher.store.attempts(task_id)) == 2
                and dispatcher.store.get_task(task_id).status == "closed")


def test_a_refused_claim_changes_nothing(gw, project_dir, monkeypatch):
    task_id = gw.json("create", "the original title", "-p", "2")["id"]
    monkeypatch.setenv("GASWORKS_ACTOR", "p1")
    gw("update", task_id, "--claim")
    monkeypatch.setenv("GASWORKS_ACTOR", "p2")
    refused = gw("update", task_id, "--claim", "-p", "0", "--title", "stolen", "--add-label", "mine", code=1)
    assert "claimed by p1" in refused.stderr
    task = gw.json("show", task_id)[0]
    assert (task["title"], task["priority"], task["assignee"], task.get("labels", [])) == \
        ("the original title", 2, "p1", [])


def test_claim_with_an_assignee_claims_for_that_name(gw, project_dir):
    task_id = gw.json("create", "for p3")["id"]
    gw("update", task_id, "--claim", "--assignee", "p3")
    task = gw.json("show", task_id)[0]
    assert (task["status"], task["assignee"]) == ("in_progress", "p3")


def test_a_refused_status_change_changes_nothing_else(gw, project_dir):
    task_id = gw.json("create", "stays as it was")["id"]
    gw("close", task_id)
    gw("update", task_id, "-s", "merging", "--title", "changed", code=1)
    gw("update", task_id, "-s", "no-such-status", "--title", "changed", code=1)
    assert gw.json("show", task_id)[0]["title"] == "stays as it was"


@pytest.mark.parametrize("trouble", ["a stale index.lock in the integration tree", "commit.gpgsign with no gpg"])
def test_a_merge_round_survives_what_git_left_or_was_told(project_dir, trouble):
    from gasworks import git

    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, merge_batch_size=1)
    if trouble.startswith("a stale"):
        (project_dir / ".git" / "worktrees" / "integration" / "index.lock").write_text("")
    else:
        git.run(["config", "commit.gpgsign", "true"], project_dir)
        git.run(["config", "gpg.program", str(project_dir / "no-such-gpg")], project_dir)
    task_id = add(dispatcher, "lands anyway")
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "closed")


def test_a_merge_round_that_git_fails_puts_its_merges_back_in_the_queue(project_dir):
    import shutil

    dispatcher, lines = make_dispatcher(project_dir, num_workers=1)
    index = project_dir / ".git" / "worktrees" / "integration" / "index"
    index.unlink()
    index.mkdir()  # no git command can use this tree until it is fixed
    task_id = add(dispatcher, "waits, queued")
    drain_until(dispatcher, lambda: any("git failed" in line for line in lines))
    assert [m.status for m in dispatcher.store.merges(task_id=task_id)] == ["queued"]
    assert dispatcher.refinery.backoff_until > time.time()
    shutil.rmtree(index)
    dispatcher.refinery.backoff_until = 0.0
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "closed")


def test_a_gate_program_that_does_not_exist_stops_the_run_at_once_saying_so(project_dir):
    from tests.conftest import run_gasworks

    (project_dir / "gasworks.toml").write_text('gate = [["no-such-gate-program", "-q"]]\n')
    run_gasworks(["create", "a task"], project_dir)
    done = run_gasworks(["run", "--agent", "fake", "--workers", "1", "--until-done"], project_dir)
    assert done.returncode != 0
    assert "no-such-gate-program" in done.stderr and "not installed" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_list_status_all_lists_everything_and_an_unknown_status_is_an_error(gw, project_dir):
    kept = gw.json("create", "open one")["id"]
    done = gw.json("create", "closed one")["id"]
    gw("close", done)
    assert {t["id"] for t in gw.json("list", "--status", "all")} == {kept, done}
    refused = gw("list", "--status", "opne", code=1)
    assert "no task has status opne" in refused.stderr and "open" in refused.stderr


def test_a_store_cut_to_nothing_is_said_not_taken_for_an_empty_one(gw, project_dir):
    from tests.conftest import run_gasworks

    gw("create", "a task that must not seem gone")
    db = project_dir / ".gasworks" / "gasworks.db"
    for extra in (".gasworks/gasworks.db-wal", ".gasworks/gasworks.db-shm"):
        (project_dir / extra).unlink(missing_ok=True)
    db.write_bytes(b"")
    done = run_gasworks(["list"], project_dir)
    assert done.returncode != 0 and "is empty (0 bytes)" in done.stderr and "Traceback" not in done.stderr
    assert db.stat().st_size == 0  # left as it was, for the user to put back


def test_a_restart_on_another_branch_still_lands_queued_work_on_the_first_target(project_dir):
    from gasworks import git

    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    dispatcher.worker = RefineryWorker(dispatcher.refinery)  # never started: the branch stays queued
    task_id = add(dispatcher, "queued on main")
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "merging")
    git.run(["checkout", "-q", "-b", "my-feature"], project_dir)
    restarted, lines = make_dispatcher(project_dir, num_workers=1)
    assert restarted.target == "main"
    drain_until(restarted, lambda: restarted.store.get_task(task_id).status == "closed")
    assert git.run(["cat-file", "-e", f"main:fake/{task_id}.txt"], project_dir, check=False).returncode == 0
    assert git.run(["cat-file", "-e", f"my-feature:fake/{task_id}.txt"], project_dir, check=False).returncode != 0


def test_agent_runs_help_says_where_the_task_id_comes_from_as_it_really_parses_it(gw):
    from gasworks.agents.oneshot import task_id_of

    shown = " ".join(gw("agent-run", "--help").stdout.split())
    assert '"Task <id>: <title>"' in shown and "Task ID:" not in shown
    assert task_id_of("Task gw-a1b2: fix it\n") == "gw-a1b2"


def test_attempts_are_numbered_per_task_in_the_run_log_logs_and_json(gw, project_dir):
    dispatcher, lines = make_dispatcher(project_dir, num_workers=1, max_attempts=1)
    add(dispatcher, "another task first")  # takes the global attempt id 1
    drain_until(dispatcher, lambda: not dispatcher.store.ready(limit=5) and not dispatcher.running)
    task_id = add(dispatcher, "fails once", description=fake_script(exit=3))
    drain_until(dispatcher, lambda: len(dispatcher.store.attempts(task_id)) >= 1 and not dispatcher.running)
    assert any(f"started {task_id}" in line and "(attempt 1)" in line for line in lines), lines
    shown = gw.json("logs", task_id, "--attempt", "1")
    assert shown["attempt"] == 1 and shown["attempt_id"] == dispatcher.store.attempts(task_id)[0].id != 1
    assert "has no attempt 2 (it has 1)" in gw("logs", task_id, "--attempt", "2", code=3).stderr


@pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap (scripts/system-deps installs it)")
def test_a_read_only_state_folder_is_one_clear_line_not_a_traceback(gw, project_dir):
    """Root ignores file modes, so the folder is made read-only the way a mount does it."""
    import subprocess
    import sys

    gw("create", "a task")
    state = project_dir / ".gasworks"
    for args in (["list"], ["ready", "--json"], ["run", "--agent", "fake", "--until-done"]):
        done = subprocess.run(["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--ro-bind", str(state),
                               str(state), sys.executable, "-m", "gasworks", *args], cwd=project_dir,
                              capture_output=True, text=True, timeout=60)
        assert "Traceback" not in done.stderr, done.stderr
        if done.returncode == 0 and args[0] != "run":
            continue  # SQLite can read while another process keeps its shared-memory file
        assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "read-only" in done.stderr.lower(), done.stderr


def test_a_merge_the_gate_refused_is_taken_again_after_merge_retry(gw, project_dir, tmp_path):
    import sys

    red = tmp_path / "gate-is-red"
    red.write_text("a flaky outside cause\n")
    gate = [sys.executable, "-c", f"import pathlib, sys; sys.exit(1 if pathlib.Path({str(red)!r}).exists() "
                                  "and pathlib.Path('fake').exists() else 0)"]  # the tip alone passes
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, max_attempts=1, gate=[gate])
    task_id = add(dispatcher, "refused by a red gate")
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "blocked")
    red.unlink()
    gw("merge-retry", task_id)
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "closed")
    assert len(dispatcher.store.attempts(task_id)) == 1  # its branch landed; no agent ran again


def test_a_task_a_human_reopens_in_bd_is_taken_again(tmp_path, repo, monkeypatch):
    """With the Beads tracker, a blocked task sent back with `bd update --status open` runs again."""
    import json
    import os
    import subprocess

    from gasworks.project import init_project
    from tests import fakebd
    from tests.conftest import run_gasworks

    fakebd.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBD_LOG", str(tmp_path / "bd-calls.jsonl"))

    def bd(*args: str):
        done = subprocess.run(["bd", *args], cwd=repo, capture_output=True, text=True, check=True)
        return json.loads(done.stdout) if "--json" in args else done.stdout

    bd("init", "--prefix=demo")
    init_project(repo)
    (repo / "gasworks.toml").write_text("max_attempts = 1\nretry_backoff = 0\n")
    task_id = bd("create", "--json", "--title=fails at first", f"--description={fake_script(exit=3)}")["id"]
    first = run_gasworks(["run", "--agent", "fake", "--until-done", "--workers", "1"], repo)
    assert first.returncode == 1 and bd("show", "--json", task_id)[0]["status"] == "blocked", first.stdout
    bd("update", "--json", task_id, "--status=open", "--description=plain work this time")
    again = run_gasworks(["run", "--agent", "fake", "--until-done", "--workers", "1"], repo)
    assert again.returncode == 0, again.stdout + again.stderr
    assert bd("show", "--json", task_id)[0]["status"] == "closed"
