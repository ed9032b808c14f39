"""What bd users type without thinking, typed at gasworks: each habit here failed before gasworks took it
(issue 19). The flags and JSON shapes follow bd's own command definitions (steveyegge/beads cmd/bd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, run_gasworks

STAMP = "2026-03-01T10:00:00Z"


def run_gasworks_with_input(args: list[str], cwd: Path, text: str) -> subprocess.CompletedProcess:
    """`gasworks ARGS` as a user runs it, with `text` piped to it."""
    done = subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=cwd, capture_output=True, text=True,
                          input=text, timeout=120, env={**os.environ, "GASWORKS_ACTOR": "tester"})
    assert done.returncode == 0, done.stderr
    return done


def bd_record(issue_id: str, title: str, **fields) -> str:
    return json.dumps({"id": issue_id, "title": title, "status": "open", "priority": 2, "issue_type": "task",
                       "created_at": STAMP, "updated_at": STAMP, **fields})


@pytest.fixture
def bd_issues(project_dir: Path, gw: Cli) -> dict[str, str]:
    """bd's issues imported: a blocker with a comment, what it blocks, a closed one; by name."""
    lines = [
        bd_record("bd-a1b2", "Add a greeting", priority=1, description="Say hello to the user",
                  comments=[{"id": 1, "issue_id": "bd-a1b2", "author": "ann", "text": "Use the house style\nplease",
                             "created_at": STAMP}]),
        bd_record("bd-c3d4", "Document the greeting", dependencies=[
            {"issue_id": "bd-c3d4", "depends_on_id": "bd-a1b2", "type": "blocks", "created_at": STAMP}]),
        bd_record("bd-e5f6", "Old work", status="closed", closed_at=STAMP, close_reason="done"),
    ]
    (project_dir / "issues.jsonl").write_text("\n".join(lines) + "\n")
    gw("import", "issues.jsonl")
    return {"greeting": "bd-a1b2", "docs": "bd-c3d4", "old": "bd-e5f6"}


def test_json_before_the_command_as_bd_takes_it(project_dir: Path, bd_issues):
    done = run_gasworks(["--json", "ready"], project_dir)
    assert done.returncode == 0, done.stderr
    assert [task["id"] for task in json.loads(done.stdout)] == ["bd-a1b2"]
    assert json.loads(run_gasworks(["--json", "list", "--all"], project_dir).stdout)[2]["id"] == "bd-e5f6"


def test_errors_are_json_under_json_as_bd_gives_them(gw: Cli, project_dir: Path):
    for args in (["show", "gw-zzzz", "--json"], ["--json", "show", "gw-zzzz"]):
        done = run_gasworks(args, project_dir)
        assert done.returncode == 3 and json.loads(done.stdout) == {"error": "no task 'gw-zzzz'"}
        assert done.stderr == "gasworks: error: no task 'gw-zzzz'\n"  # the one line stays on stderr
    assert run_gasworks(["show", "gw-zzzz"], project_dir).stdout == ""  # without --json, nothing on stdout


def test_show_takes_several_ids_gives_an_array_and_prints_comments(gw: Cli, bd_issues):
    shown = gw.json("show", "bd-a1b2", "bd-c3d4")
    assert [task["id"] for task in shown] == ["bd-a1b2", "bd-c3d4"]
    assert shown[0]["comments"][0]["text"] == "Use the house style\nplease" and shown[1]["blocked_by"] == ["bd-a1b2"]
    assert [task["id"] for task in gw.json("show", "bd-a1b2")] == ["bd-a1b2"]  # one id: an array of one, as bd
    text = gw("show", "bd-a1b2").stdout
    assert "Comments:" in text and "ann" in text and "    Use the house style\n    please\n" in text
    refused = gw("show", "bd-a1b2", "bd-nope", code=3)
    assert refused.stdout == "" and "no task 'bd-nope'" in refused.stderr


def test_update_several_ids_all_or_nothing(gw: Cli, bd_issues):
    updated = gw.json("update", "bd-a1b2", "bd-c3d4", "-p", "0", "--add-label", "ui")
    assert [(t["id"], t["priority"], t["labels"]) for t in updated] == [("bd-a1b2", 0, ["ui"]), ("bd-c3d4", 0, ["ui"])]
    refused = gw("update", "bd-a1b2", "bd-nope", "--title", "renamed", code=3)
    assert "no task 'bd-nope'" in refused.stderr
    refused = gw("update", "bd-a1b2", "bd-e5f6", "--status", "in_progress", code=1)  # bd-e5f6 is closed
    assert "bd-e5f6 cannot go from closed to in_progress" in refused.stderr
    assert gw.json("show", "bd-a1b2")[0]["status"] == "open"  # the first id did not move either


def test_close_several_ids_all_or_nothing(gw: Cli, bd_issues):
    assert "no task 'bd-nope'" in gw("close", "bd-a1b2", "bd-nope", code=3).stderr
    assert [t["id"] for t in gw.json("list", "--status", "closed")] == ["bd-e5f6"]  # nothing more closed
    closed = gw.json("close", "bd-a1b2", "bd-c3d4", "-r", "shipped")
    assert [(t["status"], t["close_reason"]) for t in closed] == [("closed", "shipped")] * 2


def test_reopen_with_a_reason_keeps_it_as_a_comment(gw: Cli, bd_issues):
    reopened = gw.json("reopen", "bd-e5f6", "--reason", "it came back")
    assert reopened[0]["status"] == "open" and reopened[0]["comments"][-1]["text"] == "it came back"
    assert "no task 'bd-nope'" in gw("reopen", "bd-a1b2", "bd-nope", "-r", "x", code=3).stderr


def test_description_from_body_file_stdin_and_dash(gw: Cli, project_dir: Path, bd_issues, tmp_path: Path):
    body = "It's \"quoted\"\nand long\n"
    (tmp_path / "body.md").write_text(body)
    assert gw.json("create", "a", "--body-file", str(tmp_path / "body.md"))["description"] == body
    for flags in (["--stdin"], ["--body-file", "-"], ["-d", "-"]):
        done = run_gasworks_with_input(["create", "b", *flags, "--json"], project_dir, "from a pipe\n")
        assert json.loads(done.stdout)["description"] == "from a pipe\n", flags
    [updated] = json.loads(run_gasworks_with_input(["update", "bd-a1b2", "--stdin", "--json"], project_dir,
                                                   "new words").stdout)
    assert updated["description"] == "new words"
    both = gw("create", "c", "-d", "x", "--body-file", str(tmp_path / "body.md"), code=1)
    assert "give the description one way, not --description and --body-file" in both.stderr


def test_label_add_remove_list_and_list_all(gw: Cli, bd_issues):
    added = gw.json("label", "add", "bd-a1b2", "bd-c3d4", "needs-review")
    assert added == [{"status": "added", "issue_id": i, "label": "needs-review"} for i in ("bd-a1b2", "bd-c3d4")]
    assert gw.json("label", "list", "bd-c3d4") == ["needs-review"]
    assert gw.json("label", "list-all") == [{"label": "needs-review", "count": 2}]
    assert "no task 'bd-nope'" in gw("label", "add", "bd-a1b2", "bd-nope", "x", code=3).stderr
    assert gw.json("label", "list", "bd-a1b2") == ["needs-review"]  # the x was not added either
    gw("label", "remove", "bd-a1b2", "needs-review")
    assert gw.json("label", "list", "bd-a1b2") == []
    assert "bd-a1b2 has no labels" in gw("label", "list", "bd-a1b2").stderr
    assert "needs-review  1 task" in gw("label", "list-all").stdout


def test_blocked_lists_what_holds_each_task_back(gw: Cli, bd_issues):
    [row] = gw.json("blocked")
    assert (row["id"], row["blocked_by"], row["blocked_by_count"]) == ("bd-c3d4", ["bd-a1b2"], 1)
    assert "blocked by bd-a1b2" in gw("blocked").stdout
    gw("close", "bd-a1b2")
    assert gw.json("blocked") == [] and "no blocked tasks" in gw("blocked").stderr


def test_search_finds_text_in_id_title_and_description(gw: Cli, bd_issues):
    assert [t["id"] for t in gw.json("search", "GREETING")] == ["bd-a1b2", "bd-c3d4"]
    assert [t["id"] for t in gw.json("search", "hello to")] == ["bd-a1b2"]  # in the description
    assert [t["id"] for t in gw.json("search", "old", "--status", "closed")] == ["bd-e5f6"]
    assert [t["id"] for t in gw.json("search", "--query", "e5f6")] == ["bd-e5f6"]  # closed ones too, and ids
    assert gw.json("search", "100%") == [] and gw.json("search", "greet_ng") == []  # no wildcards
    assert "Found 2 tasks matching 'greeting':" in gw("search", "greeting").stdout


def test_list_by_priority_and_title(gw: Cli, bd_issues):
    assert [t["id"] for t in gw.json("list", "--priority", "P1")] == ["bd-a1b2"]
    assert [t["id"] for t in gw.json("list", "-p", "2")] == ["bd-c3d4"]
    assert [t["id"] for t in gw.json("list", "--title", "DOCUMENT")] == ["bd-c3d4"]
    assert [t["id"] for t in gw.json("list", "--title-contains", "greeting")] == ["bd-a1b2", "bd-c3d4"]
    assert [t["id"] for t in gw.json("list", "--desc-contains", "hello")] == ["bd-a1b2"]


def test_new_tasks_keep_the_prefix_of_the_imported_issues(gw: Cli, project_dir: Path, bd_issues):
    assert gw.json("create", "Add a farewell")["id"].startswith("bd-")
    (project_dir / "gasworks.toml").write_text('prefix = "gw"\n')  # set there: it wins
    assert gw.json("create", "Another")["id"].startswith("gw-")


def test_without_other_tasks_new_ids_start_with_gw(gw: Cli):
    assert gw.json("create", "first")["id"].startswith("gw-")


def test_help_explains_the_new_commands():
    top = Cli()("--help").stdout
    assert all(f"  {command}" in top for command in ("search", "blocked", "label")) and "--json" in top
    assert all(f"  {command}" in Cli()("label", "--help").stdout for command in ("add", "remove", "list", "list-all"))
    for command in ("search", "blocked", "show", "update", "close", "reopen", "label"):
        assert "(like `bd" in " ".join(Cli()(command, "--help").stdout.split()), command


@pytest.mark.parametrize("task_id, prefix", [
    ("bd-a1b2", "bd"), ("bd-a1b2.3", "bd"), ("web-app-a3f8e9", "web-app"), ("beads-vscode-1", "beads-vscode"),
    ("my-cool-app-123", "my-cool-app"), ("bd-a3f", "bd"), ("vc-baseline-test", "vc"), ("nodash", ""),
])
def test_an_id_prefix_is_read_as_bd_reads_it(task_id: str, prefix: str):
    from gasworks.ids import id_prefix

    assert id_prefix(task_id) == prefix  # the examples of bd's ExtractIssuePrefix


def test_the_prefix_most_tasks_carry_wins(gw: Cli, project_dir: Path):
    lines = [bd_record(i, f"t{n}") for n, i in enumerate(["web-app-a3f8e9", "web-app-b4c5", "bd-a1b2"])]
    (project_dir / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    gw("import", "mixed.jsonl")
    assert gw.json("create", "next")["id"].startswith("web-app-")


def test_a_batch_is_one_transaction_on_every_backend(store):
    from gasworks.errors import NotFoundError
    from gasworks.store import NewTask

    a, b = (store.create_task(NewTask(title), prefix="gw", actor="t") for title in ("a", "b"))
    with pytest.raises(NotFoundError), store.batch():
        store.close_task(a.id, actor="t")
        store.update_fields(b.id, actor="t", title="changed")
        store.get_task("gw-none")
    assert (store.get_task(a.id).status, store.get_task(b.id).title) == ("open", "b")
    assert [e.kind for e in store.events(a.id)] == ["created"]  # its events went with it
    with store.batch():
        store.close_task(a.id, actor="t")
        store.update_fields(b.id, actor="t", title="changed")
    assert (store.get_task(a.id).status, store.get_task(b.id).title) == ("closed", "changed")


def test_the_prefix_is_counted_over_the_newest_tasks(store):
    from gasworks.store import NewTask

    for prefix in ("aa", "aa", "aa", "bb", "bb"):
        store.create_task(NewTask(f"a {prefix} task"), prefix=prefix, actor="t")
    assert store.common_prefix() == "aa" and store.common_prefix(newest=2) == "bb"
