"""Beads as the tracker: tasks live in bd and gasworks works them through the `bd` CLI.

bd cannot be installed here, so `bd` on PATH is tests/fakebd.py, a stand-in that keeps
.beads/issues.jsonl and answers with bd's JSON shapes, flags, exit codes and error JSON; it
records every argv, so the tests see exactly what gasworks ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gasworks import git
from gasworks.errors import NotFoundError, TrackerError
from gasworks.project import find_project, init_project
from tests import fakebd
from tests.conftest import Cli, run_gasworks
from tests.fleet import fake_script

BARE_SWITCHES = {"--json", "--claim", "--force"}


@pytest.fixture
def bd_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in `bd` first on PATH; returns the file it records every call in."""
    fakebd.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "bd-calls.jsonl"
    monkeypatch.setenv("FAKEBD_LOG", str(log))
    return log


@pytest.fixture
def beads_repo(repo: Path, bd_log: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bd(repo, "init", "--prefix=demo")
    init_project(repo)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("GASWORKS_ACTOR", "tester")
    return repo


def bd(root: Path, *args: str) -> Any:
    result = subprocess.run(["bd", *args], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def new_issue(root: Path, title: str, *flags: str) -> str:
    return bd(root, "create", "--json", f"--title={title}", *flags)["id"]


def issues(root: Path) -> dict[str, dict]:
    lines = (root / ".beads" / "issues.jsonl").read_text(encoding="utf-8").splitlines()
    return {issue["id"]: issue for issue in map(json.loads, filter(None, lines))}


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def edges(issue: dict) -> set[tuple[str, str, str]]:
    return {(d["issue_id"], d["depends_on_id"], d["type"]) for d in issue.get("dependencies", [])}


def landed(root: Path, task_id: str) -> int:
    """How many merges of the task are on main."""
    return git.run(["log", "main", "--format=%B"], root).stdout.count(f"Task {task_id}.")


def test_the_fleet_works_tasks_that_live_in_bd(beads_repo, bd_log):
    first = new_issue(beads_repo, "Write the first file")
    second = new_issue(beads_repo, "Write the second file",
                       f"--description={fake_script(suggest=['Document the second file'])}")
    third = new_issue(beads_repo, "Build on the first", "--priority=0")
    bd(beads_repo, "dep", "add", "--json", third, first)

    result = run_gasworks(["run", "--agent", "fake", "--until-done", "--workers", "2"], beads_repo)

    assert result.returncode == 0, result.stdout + result.stderr
    found = issues(beads_repo)
    suggestion = next(i for i in found.values() if i["title"] == "Document the second file")
    assert "suggested" in suggestion["labels"]
    assert (suggestion["id"], second, "discovered-from") in edges(suggestion)
    assert set(found) == {first, second, third, suggestion["id"]}
    for issue in found.values():
        assert issue["status"] == "closed" and issue["close_reason"].startswith("Merged as "), issue
        assert "gasworks:merging" not in issue.get("labels", [])
        assert landed(beads_repo, issue["id"]) == 1
    said = result.stdout.splitlines()
    assert min(n for n, line in enumerate(said) if f"started {third}" in line) > \
        min(n for n, line in enumerate(said) if f"{first}: merged into" in line)  # it waited on first
    assert "ran `bd sync`" in result.stdout
    closes = [argv for argv in calls(bd_log) if argv[0] == "close"]
    assert len(closes) == 4 and all(any(a.startswith("--actor=gasworks:") for a in argv) for argv in closes)


def test_task_text_never_reaches_bd_where_it_could_be_read_as_an_option(beads_repo, bd_log, tmp_path):
    gw = Cli()
    script = fake_script(suggest=["--version", "$(touch pwned-by-a-suggestion)"])
    gw("create", "-d", script, "--", "--help")
    gw("create", "-d", "-", "--", "$(touch pwned)", input="-")  # -d -: from stdin, as in bd; the text is "-"
    gw("create", "--design", "--json", "--", "--json")

    result = run_gasworks(["run", "--agent", "fake", "--until-done", "--workers", "2"], beads_repo)

    assert result.returncode == 0, result.stdout + result.stderr
    found = {issue["title"]: issue for issue in issues(beads_repo).values()}
    assert set(found) == {"--help", "$(touch pwned)", "--json", "--version", "$(touch pwned-by-a-suggestion)"}
    assert all(issue["status"] == "closed" for issue in found.values())
    assert found["$(touch pwned)"]["description"] == "-" and found["--json"]["design"] == "--json"
    assert list(tmp_path.rglob("pwned*")) == []
    texts = (set(found) | {"-"}) - BARE_SWITCHES  # a title "--json" in place of the switch would lose the title
    for argv in calls(bd_log):
        words = 2 if argv[0] in ("dep", "comments") else 1
        options = argv[words:argv.index("--")] if "--" in argv else argv[words:]
        assert not texts & set(options), argv
        assert all(o.startswith("--") and ("=" in o or o in BARE_SWITCHES) for o in options), argv


@pytest.mark.parametrize("errors_on_stdout", [False, True])
def test_a_failing_bd_is_one_clear_error_line(beads_repo, errors_on_stdout):
    new_issue(beads_repo, "Something to do")
    env = {"FAKEBD_FAIL": "ready", **({"FAKEBD_ERRORS_ON_STDOUT": "1"} if errors_on_stdout else {})}
    line = "gasworks: error: `bd ready` failed: database is locked (fake failure)\n"

    listed = run_gasworks(["ready"], beads_repo, env=env)
    assert (listed.returncode, listed.stderr) == (1, line)

    fleet = run_gasworks(["run", "--agent", "fake", "--until-done"], beads_repo, env=env)
    assert (fleet.returncode, fleet.stderr) == (1, line)


def test_a_missing_bd_is_one_clear_error_line(repo, monkeypatch):
    (repo / ".beads").mkdir()
    (repo / "gasworks.toml").write_text('tracker = "beads"\nbd_cmd = ["no-such-bd-here"]\n', encoding="utf-8")
    _, said = init_project(repo)
    assert said[-1] == "tracker = \"beads\", but 'no-such-bd-here' is not installed: install Beads (bd) or set " \
                       "bd_cmd to where it is"
    result = run_gasworks(["create", "Anything"], repo)
    assert result.returncode == 1
    assert result.stderr == ("gasworks: error: `bd create` failed: 'no-such-bd-here' was not found: install "
                             "Beads (bd), set bd_cmd to where it is, or set tracker = \"gasworks\"\n")


def test_auto_picks_bd_when_the_repository_has_beads_and_bd_is_installed(repo, bd_log):
    bd(repo, "init", "--prefix=demo")
    assert "tasks live in Beads" in run_gasworks(["init"], repo).stdout
    task_id = run_gasworks(["create", "Through bd", "-q"], repo).stdout.strip()
    assert task_id.startswith("demo-") and issues(repo)[task_id]["title"] == "Through bd"
    shown = json.loads(run_gasworks(["show", task_id, "--json"], repo).stdout)[0]
    assert shown["title"] == "Through bd"


def test_without_bd_on_path_tasks_stay_in_the_own_store_and_init_says_how_to_keep_in_step(repo, tmp_path):
    subprocess.run([str(fakebd.install(tmp_path / "elsewhere")), "init", "--prefix=demo"], cwd=repo, check=True,
                   capture_output=True)
    said = run_gasworks(["init"], repo).stdout
    assert "found .beads/, but tasks live in .gasworks/gasworks.db (bd is not installed)" in said
    assert "`gasworks import .beads/issues.jsonl` and `gasworks export -o .beads/issues.jsonl`" in said
    assert run_gasworks(["create", "Local", "-q"], repo).stdout.startswith("gw-")
    assert issues(repo) == {}


def test_tracker_gasworks_ignores_the_beads_folder(repo, bd_log):
    bd(repo, "init", "--prefix=demo")
    (repo / "gasworks.toml").write_text('tracker = "gasworks"\n', encoding="utf-8")
    assert "(tracker = \"gasworks\")" in run_gasworks(["init"], repo).stdout
    assert run_gasworks(["create", "Local", "-q"], repo).stdout.startswith("gw-")
    assert issues(repo) == {} and [argv[0] for argv in calls(bd_log)] == ["init"]


def test_an_unknown_tracker_is_refused_naming_the_choices(repo):
    init_project(repo)
    (repo / "gasworks.toml").write_text('tracker = "bd"\n', encoding="utf-8")
    result = run_gasworks(["list"], repo)
    assert result.returncode == 1
    assert "key 'tracker': use \"auto\" (bd when the repository has .beads/ and bd is installed), \"gasworks\"" \
           in result.stderr


def test_import_and_export_point_to_bd_when_tasks_live_there(beads_repo):
    new_issue(beads_repo, "In bd")
    assert "export them with `bd export`" in run_gasworks(["export"], beads_repo).stderr
    (beads_repo / "tasks.md").write_text("# A task\n", encoding="utf-8")
    assert "import with `bd import FILE`" in run_gasworks(["import", "tasks.md"], beads_repo).stderr


def test_a_claim_bd_took_but_gasworks_never_recorded_is_taken_back_when_a_run_starts(beads_repo):
    task_id = new_issue(beads_repo, "Claimed just before a crash")
    bd(beads_repo, "update", "--json", "--actor=gasworks:w1", "--claim", "--", task_id)  # then gasworks died

    result = run_gasworks(["run", "--agent", "fake", "--until-done", "--workers", "1"], beads_repo,
                          env={"FAKEBD_NO_SYNC": "1"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{task_id} is in_progress in bd, claimed by gasworks:w1: taken from bd" in result.stdout
    assert f"requeued {task_id}: claimed by a stopped dispatcher" in result.stdout
    assert issues(beads_repo)[task_id]["status"] == "closed" and landed(beads_repo, task_id) == 1
    assert "this bd has no `bd sync`" in result.stdout


def test_a_task_someone_else_claims_first_is_passed_over_for_the_next(beads_repo, monkeypatch):
    taken = new_issue(beads_repo, "Wanted by two", "--priority=0")
    other = new_issue(beads_repo, "Next in line", "--priority=1")
    monkeypatch.setenv("FAKEBD_STEAL", taken)
    store = find_project(beads_repo).open_store()

    claimed = store.claim_next("gasworks:w1", lease_seconds=60)

    assert claimed.id == other and claimed.status == "in_progress"
    assert store.get_task(taken).assignee == "someone-else"
    assert issues(beads_repo)[other]["assignee"] == "gasworks:w1"
    assert store.renew_lease(other, "gasworks:w1", lease_seconds=60)


def test_merging_is_in_progress_with_a_label_in_bd_and_closing_removes_it(beads_repo, bd_log):
    task_id = new_issue(beads_repo, "Finish and merge")
    project = find_project(beads_repo)
    store = project.open_store()
    store.claim_next("gasworks:w1", lease_seconds=60)
    attempt = store.start_attempt(task_id, slot="w1", log_path="", branch="gasworks/x", base_commit="abc")
    store.finish_attempt(attempt.id, outcome="success", commits=["c1"], task_status="merging",
                         merge_branch="gasworks/x")

    in_bd = issues(beads_repo)[task_id]
    assert (in_bd["status"], in_bd["assignee"], in_bd["labels"]) == ("in_progress", "gasworks:w1",
                                                                     ["gasworks:merging"])
    seen_fresh = project.open_store().get_task(task_id)
    assert (seen_fresh.status, seen_fresh.labels) == ("merging", [])

    store.transition(task_id, "closed", actor="refinery", expected="merging", reason="Merged as abc123")
    in_bd = issues(beads_repo)[task_id]
    assert (in_bd["status"], in_bd["close_reason"], in_bd.get("labels", [])) == ("closed", "Merged as abc123", [])
    close = next(argv for argv in calls(bd_log) if argv[0] == "close")
    assert "--actor=gasworks:w1" in close and "--reason=Merged as abc123" in close


def test_a_refused_status_change_in_bd_changes_nothing_here(beads_repo, monkeypatch):
    task_id = new_issue(beads_repo, "Stays as it was")
    store = find_project(beads_repo).open_store()
    store.claim_next("gasworks:w1", lease_seconds=60)
    monkeypatch.setenv("FAKEBD_FAIL", "update")
    with pytest.raises(TrackerError, match="`bd update demo-.*` failed: database is locked"):
        store.transition(task_id, "blocked", actor="tester")
    assert store.get_task(task_id).status == "in_progress"
    assert [e.kind for e in store.events(task_id)].count("status") == 1  # only the claim


def test_a_bd_without_claim_falls_back_to_setting_the_status(beads_repo, bd_log, monkeypatch):
    task_id = new_issue(beads_repo, "Old bd")
    monkeypatch.setenv("FAKEBD_NO_CLAIM", "1")
    store = find_project(beads_repo).open_store()
    assert store.claim_next("gasworks:w1", lease_seconds=60).id == task_id
    assert issues(beads_repo)[task_id]["assignee"] == "gasworks:w1"
    assert any("--status=in_progress" in argv and "--assignee=gasworks:w1" in argv for argv in calls(bd_log))


def test_plans_and_conflict_tasks_keep_their_edges_and_labels_in_bd(beads_repo):
    from gasworks.store import NewTask

    store = find_project(beads_repo).open_store()
    epic, child, after = store.create_tasks([
        NewTask("A plan", issue_type="epic"),
        NewTask("Step one", parent="#0", labels=["files:a, b.py"]),
        NewTask("Step two", parent="#0", deps=[("#1", "blocks")]),
    ], prefix="gw", actor="planner")
    found = issues(beads_repo)
    assert (child.id, after.id) == (f"{epic.id}.1", f"{epic.id}.2")
    assert found[child.id]["labels"] == ["files:a, b.py"]
    assert edges(found[after.id]) == {(after.id, epic.id, "parent-child"), (after.id, child.id, "blocks")}
    assert [t.id for t in store.ready()] == [child.id]
    assert {(d.depends_on_id, d.type) for d in store.get_task(after.id).dependencies} == \
        {(epic.id, "parent-child"), (child.id, "blocks")}


def test_the_demo_keeps_its_tasks_in_its_own_store_though_bd_is_installed(tmp_path, bd_log):
    target = tmp_path / "demo"
    made = run_gasworks(["demo", "--dir", str(target), "--agent", "fake", "--json"], tmp_path)
    assert made.returncode == 0, made.stderr
    listed = json.loads(run_gasworks(["list", "--all", "--json"], target).stdout)
    from gasworks.demo import BACKLOG

    # the demo's tasks and their epic; .beads/issues.jsonl there is only an export
    assert len(listed) == len(BACKLOG) + 1 and calls(bd_log) == []


def test_what_bd_unblocks_when_gasworks_closes_a_blocker_is_ready_at_once(beads_repo):
    blocker = new_issue(beads_repo, "Blocker")
    waiting = new_issue(beads_repo, "Waits for the blocker")  # never ready so far: gasworks has not seen it
    bd(beads_repo, "dep", "add", "--json", waiting, blocker)
    store = find_project(beads_repo).open_store()
    assert [t.id for t in store.ready()] == [blocker]

    store.claim_next("gasworks:w1", lease_seconds=60)
    store.close_task(blocker, actor="gasworks:w1", reason="done")

    assert [t.id for t in store.ready()] == [waiting]  # a run deciding it is done must not miss it


def test_an_id_bd_does_not_know_is_not_found(beads_repo):
    """bd says "Issue X not found", then its JSON error over several lines; only that last line,
    "}", used to reach the user: `bd show nope-zzz` failed: }."""
    store = find_project(beads_repo).open_store()
    with pytest.raises(NotFoundError, match="no task 'nope-zzz' in bd"):
        store.resolve_id("nope-zzz")
    shown = run_gasworks(["show", "nope-zzz"], beads_repo)
    assert shown.returncode != 0 and "no task 'nope-zzz' in bd" in shown.stderr and "Traceback" not in shown.stderr


def test_a_task_deleted_in_bd_is_not_offered_and_breaks_nothing(beads_repo):
    kept, gone = new_issue(beads_repo, "Keep me"), new_issue(beads_repo, "Delete me")
    store = find_project(beads_repo).open_store()
    assert {task.id for task in store.ready()} == {kept, gone}
    path = beads_repo / ".beads" / "issues.jsonl"  # as `bd delete` leaves it (the stand-in keeps no tombstones)
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if gone not in line))
    store.refresh(force=True)
    assert [task.id for task in store.ready()] == [kept]


def test_an_agent_that_outlasts_the_claim_checks_keeps_its_claim_and_cancelling_in_bd_stops_it(beads_repo):
    """The dispatcher reads its running tasks' claims every few seconds: a claim held in bd reads as
    its own (the agent runs on), and `bd close` by someone else reads as a cancel (the agent stops)."""
    slow = new_issue(beads_repo, "Take a while", f"--description={fake_script(sleep=7)}")
    endless = new_issue(beads_repo, "Never ends", f"--description={fake_script(sleep=600)}")
    log = beads_repo.parent / "run.log"
    with open(log, "w") as out:
        run = subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--workers", "2"],
                               cwd=beads_repo, stdout=out, stderr=subprocess.STDOUT)
    try:
        store = find_project(beads_repo).open_store()
        deadline = time.monotonic() + 90
        while issues(beads_repo)[slow]["status"] != "closed":
            assert time.monotonic() < deadline and run.poll() is None, log.read_text()
            time.sleep(0.2)
        subprocess.run(["bd", "close", endless, "--reason=Not wanted", "--force"], cwd=beads_repo, check=True,
                       capture_output=True)
        while not store.attempts(endless) or not store.attempts(endless)[0].ended_at:
            assert time.monotonic() < deadline and run.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
    output = log.read_text()
    assert [a.outcome for a in store.attempts(slow)] == ["success"], output
    assert [a.outcome for a in store.attempts(endless)] == ["interrupted"], output
    assert f"{endless} became closed while its agent ran" in output
