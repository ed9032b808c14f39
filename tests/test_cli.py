"""The `gasworks` command as a user drives it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gasworks import git
from tests.conftest import Cli, run_gasworks


def test_init_sets_up_once_and_is_harmless_twice(repo):
    first = run_gasworks(["init"], repo)
    assert first.returncode == 0, first.stderr
    assert (repo / ".gasworks" / "gasworks.db").is_file() and (repo / ".gasworks" / "logs").is_dir()
    config = (repo / "gasworks.toml").read_text()
    assert config.lstrip().startswith("#") and 'prefix = "gw"' in config
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert ".gasworks/" in exclude and "worktrees/" in exclude
    (repo / "gasworks.toml").write_text('prefix = "app"\n')
    second = run_gasworks(["init", "--json"], repo)
    assert second.returncode == 0 and json.loads(second.stdout)["actions"] == []
    assert (repo / ".git" / "info" / "exclude").read_text().splitlines() == exclude
    assert (repo / "gasworks.toml").read_text() == 'prefix = "app"\n'
    assert git.run(["status", "--porcelain"], repo).stdout == "?? gasworks.toml\n"


@pytest.mark.parametrize("args", [["init"], ["ready"], ["create", "x"]])
def test_outside_a_repo_is_one_clear_line(tmp_path, args):
    result = run_gasworks(args, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("gasworks: error: ") and "not inside a git repository" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_not_initialized_says_what_to_do(repo):
    result = run_gasworks(["list"], repo)
    assert result.returncode == 1 and "run `gasworks init`" in result.stderr


@pytest.mark.parametrize("args, code, needle", [
    (["show", "gw-zzzz"], 3, "no task 'gw-zzzz'"),
    (["create", "t", "-p", "7"], 2, "invalid priority"),
    (["create", "t", "--deps", "frob:gw-1"], 1, "unknown dependency kind 'frob'"),
    (["update", "gw-zzzz", "--title", "x"], 3, "no task"),
    (["import", "missing.jsonl"], 1, "no such file"),
])
def test_user_mistakes_exit_non_zero_without_traceback(project_dir, args, code, needle):
    result = run_gasworks(args, project_dir)
    assert result.returncode == code, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_invalid_config_names_the_key_and_the_choices(project_dir):
    (project_dir / "gasworks.toml").write_text('prefx = "x"\n')
    result = run_gasworks(["list"], project_dir)
    assert result.returncode == 1
    assert "gasworks.toml: unknown key 'prefx' (accepted keys: agent, endpoints, autodetect," in result.stderr
    (project_dir / "gasworks.toml").write_text('prefix = "Bad Prefix"\n')
    assert "key 'prefix'" in run_gasworks(["list"], project_dir).stderr
    (project_dir / "gasworks.toml").write_text("prefix = \n")
    assert "not valid TOML" in run_gasworks(["list"], project_dir).stderr


def test_create_show_update_close_reopen(gw: Cli):
    created = gw.json("create", "Fix the parser", "-d", "It chokes on tabs", "-p", "P1", "-t", "bug",
                      "-l", "area:parser,urgent")
    task_id = created["id"]
    assert created["priority"] == 1 and created["issue_type"] == "bug"
    assert created["labels"] == ["area:parser", "urgent"]
    shown = gw.json("show", task_id[:6])[0]
    assert shown["description"] == "It chokes on tabs" and shown["events"][0]["kind"] == "created"
    [updated] = gw.json("update", task_id, "--title", "Fix the tab parser", "--priority", "0", "--notes", "n",
                        "--add-label", "x", "--remove-label", "urgent")
    assert (updated["title"], updated["priority"], updated["labels"]) == ("Fix the tab parser", 0,
                                                                        ["area:parser", "x"])
    [claimed] = gw.json("update", task_id, "--claim")
    assert (claimed["status"], claimed["assignee"]) == ("in_progress", "tester")
    assert gw("update", task_id, "--claim", code=1).stderr.startswith("gasworks: error: ")
    closed = gw.json("close", task_id, "--reason", "fixed in abc123")
    assert closed[0]["status"] == "closed" and closed[0]["close_reason"] == "fixed in abc123"
    assert gw.json("reopen", task_id)[0]["status"] == "open"
    text = gw("show", task_id).stdout
    assert "Fix the tab parser" in text and "status -> " not in text and "open -> in_progress" in text


def test_status_change_goes_through_the_transition_table(gw: Cli):
    task_id = gw("create", "t", "-q").stdout.strip()
    gw("close", task_id)
    result = gw("update", task_id, "--status", "in_progress", code=1)
    assert "cannot go from closed to in_progress (allowed: open)" in result.stderr


def test_ready_list_and_filters(gw: Cli):
    a = gw("create", "first", "-p", "1", "-q").stdout.strip()
    b = gw("create", "second", "-p", "1", "--deps", a, "-l", "ui", "-q").stdout.strip()
    c = gw("create", "third", "-p", "3", "-q").stdout.strip()
    assert [t["id"] for t in gw.json("ready")] == [a, c]
    assert [t["id"] for t in gw.json("ready", "-n", "1")] == [a]
    assert [t["id"] for t in gw.json("list", "--label", "ui")] == [b]
    gw("close", c)
    assert [t["id"] for t in gw.json("list")] == [a, b]
    assert [t["id"] for t in gw.json("list", "--all")] == [a, b, c]
    assert [t["id"] for t in gw.json("list", "--status", "closed")] == [c]
    assert "first" in gw("ready").stdout


def test_epic_children_and_dep_commands(gw: Cli):
    epic = gw("create", "Release", "-t", "epic", "-q").stdout.strip()
    one = gw("create", "changelog", "--parent", epic, "-q").stdout.strip()
    two = gw("create", "tag", "--parent", epic, "--deps", one, "-q").stdout.strip()
    assert (one, two) == (f"{epic}.1", f"{epic}.2")
    other = gw("create", "other", "-q").stdout.strip()
    added = gw.json("dep", "add", two, other, "--type", "related")
    assert added == {"status": "added", "issue_id": two, "depends_on_id": other, "type": "related"}
    cycle = gw("dep", "add", one, two, code=1)
    assert f"dependency cycle: {one} -> {two} -> {one}" in cycle.stderr
    tree = gw.json("dep", "tree", two)
    assert {(c["id"], c["type"]) for c in tree["children"]} == {(one, "blocks"), (epic, "parent-child"),
                                                                 (other, "related")}
    text = gw("dep", "tree", two).stdout
    assert text.splitlines()[0].startswith(f"{two} (open) tag") and "└── " in text
    gw("dep", "rm", two, other)
    assert gw("dep", "rm", two, other, code=3).stderr.startswith("gasworks: error: ")
    assert gw("close", epic, code=1).stderr.count("unfinished children") == 1
    gate = gw("create", "gate", "-q").stdout.strip()
    gw("dep", "add", epic, gate)
    assert "blocked: through a parent" in gw("show", one).stdout
    assert f"blocked by: {gate}" in gw("show", epic).stdout


def test_description_file_and_stdin(gw: Cli, tmp_path: Path):
    (tmp_path / "desc.md").write_text("from a file\n")
    a = gw.json("create", "a", "--description-file", str(tmp_path / "desc.md"))
    assert a["description"] == "from a file\n"
    b = gw.runner.invoke(__import__("gasworks.cli").cli.cli, ["create", "b", "--description-file", "-", "--json"],
                         input="from stdin")
    assert json.loads(b.stdout)["description"] == "from stdin"


def test_export_import_round_trip_through_files(gw: Cli, project_dir: Path):
    a = gw("create", "alpha", "-q").stdout.strip()
    gw("create", "beta", "--deps", a, "-l", "x", "-q")
    result = gw("export", "-o", ".beads/issues.jsonl")
    assert "exported 2 tasks" in result.stderr
    exported = (project_dir / ".beads" / "issues.jsonl").read_text()
    assert exported == gw("export").stdout and len(exported.splitlines()) == 2
    summary = gw.json("import", ".beads/issues.jsonl")
    assert (summary["created"], summary["updated"], summary["skipped"]) == (0, 0, 2)


def test_import_reports_the_bad_line_and_writes_nothing(project_dir: Path):
    (project_dir / "in.jsonl").write_text('{"id":"x-1","title":"a"}\n{"id":"x-2"\n')
    result = run_gasworks(["import", "in.jsonl"], project_dir)
    assert result.returncode == 1 and "in.jsonl:2: not valid JSON" in result.stderr
    assert json.loads(run_gasworks(["list", "--all", "--json"], project_dir).stdout) == []


def test_import_markdown_and_queue_from_the_cli(gw: Cli, project_dir: Path):
    (project_dir / "BEADS_FOR_ANALYSIS.md").write_text("# Tasks\n- one\n- two\n")
    (project_dir / "task_queue.json").write_text('[{"title": "three", "status": "pending"}]')
    assert gw.json("import", "BEADS_FOR_ANALYSIS.md")["created"] == 2
    assert gw.json("import", "task_queue.json", "--dry-run")["created"] == 1
    assert gw.json("import", "task_queue.json")["created"] == 1
    assert [t["title"] for t in gw.json("ready")] == ["one", "two", "three"]


def test_hostile_text_is_stored_faithfully_and_shown_safely(gw: Cli):
    title = "$(rm -rf ~) `id`; echo | cat \u202eevil\U0001f600 \x1b[31mred"
    task_id = gw.json("create", title, "-d", "--help\n../../etc/passwd")["id"]
    shown = gw.json("show", task_id)[0]
    assert shown["title"] == title and shown["description"] == "--help\n../../etc/passwd"
    text = gw("show", task_id).stdout
    assert "\x1b" not in text and "\\x1b[31mred" in text


def test_from_inside_a_linked_worktree_the_main_store_is_used(gw: Cli, project_dir: Path, monkeypatch):
    task_id = gw("create", "shared", "-q").stdout.strip()
    git.run(["worktree", "add", "-q", "worktrees/w1"], project_dir)
    monkeypatch.chdir(project_dir / "worktrees" / "w1")
    assert [t["id"] for t in gw.json("ready")] == [task_id]


def test_help_explains_commands():
    result = Cli()("--help")
    for command in ("init", "create", "ready", "list", "show", "update", "close", "reopen", "dep", "export",
                    "import", "demo"):
        assert f"  {command}" in result.stdout
