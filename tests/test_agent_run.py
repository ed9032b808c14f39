"""`gasworks agent-run`: one agent on one task in the current checkout, judged by its commits.
Real git repos and real agent processes (the fake agent); the CLI runs in-process."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from gasworks import git, process
from gasworks.agents.oneshot import NO_CHANGE_EXIT, task_id_of
from tests.conftest import Cli


def task_file(tmp_path: Path, script: dict | None = None, task_id: str = "gw-t1") -> str:
    block = f"\n```gasworks-fake\n{json.dumps(script)}\n```\n" if script is not None else ""
    path = tmp_path / "task.txt"
    path.write_text(f"Task {task_id}: say hello\n\nDescription:\nWrite hello.{block}", encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def clean_checkout(request):
    """agent-run refuses a checkout with uncommitted changes: commit the gasworks.toml `init` wrote."""
    if "project_dir" in request.fixturenames:
        git.commit_all(request.getfixturevalue("project_dir"), "gasworks config")


def agent_run(gw: Cli, path: str, *args: str, code: int = 0) -> dict:
    result = gw("agent-run", "--task-file", path, "--agent", "fake", *args, "--json", code=code)
    return json.loads(result.stdout)


def test_done_exits_0_with_the_new_commits(gw, project_dir, tmp_path):
    base = git.rev_parse(project_dir, "HEAD")
    out = agent_run(gw, task_file(tmp_path, {"write": {"hello.txt": "hi\n"}}))
    assert out["status"] == "done" and out["exit_code"] == 0 and out["agent_exit"] == 0
    assert out["task_id"] == "gw-t1" and out["base"] == base
    assert out["commits"] == git.commits_between(project_dir, base) and len(out["commits"]) == 1
    log = Path(out["log"])
    assert log.is_file() and log.parent == project_dir / ".gasworks" / "agent-run" / "logs"
    assert "fake agent on gw-t1" in log.read_text()
    assert not git.is_dirty(project_dir)  # .current_task.txt is excluded from git


def test_text_output_says_where_the_log_went(gw, project_dir, tmp_path):
    result = gw("agent-run", "--task-file", task_file(tmp_path, {"write": {"a.txt": "a"}}), "--agent", "fake")
    assert result.stdout.startswith("gw-t1: done: 1 new commit(s); log: ")
    assert "log: " in result.stderr and "fake agent on gw-t1" in result.stderr


def test_no_change_has_its_own_exit_code(gw, project_dir, tmp_path):
    out = agent_run(gw, task_file(tmp_path, {"append": {}}), code=NO_CHANGE_EXIT)
    assert out["status"] == "no_change" and out["commits"] == []


def test_a_failing_agent_exits_1(gw, project_dir, tmp_path):
    out = agent_run(gw, task_file(tmp_path, {"write": {"a.txt": "a"}, "exit": 3}), code=1)
    assert out["status"] == "failed" and out["agent_exit"] == 3
    assert out["note"].startswith("agent exited 3")  # the note the fleet gives a failed attempt


def test_a_file_over_max_file_mb_fails_the_run_as_it_fails_an_attempt_of_the_fleet(gw, project_dir, tmp_path,
                                                                                   monkeypatch):
    """agent-run used to take in work of any size, which the fleet refuses (max_file_mb)."""
    monkeypatch.setenv("GASWORKS_MAX_FILE_MB", "1")
    out = agent_run(gw, task_file(tmp_path, {"write": {"big.txt": "x" * (3 << 20)}}), code=1)
    assert out["status"] == "failed" and out["outcome"] == "failed"
    assert "files over max_file_mb" in out["note"] and "big.txt (3 MiB)" in out["note"]


def test_the_agent_saying_the_endpoint_is_down_exits_75(gw, project_dir, tmp_path):
    out = agent_run(gw, task_file(tmp_path, {"append": {}, "exit": 75}), code=75)
    assert out["status"] == "endpoint_down"


def test_aider_with_ollama_down_exits_75_without_starting(gw, project_dir, tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port on 127.0.0.1 nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    marker = tmp_path / "aider-ran"
    fake_aider = tmp_path / "fake_aider.py"
    fake_aider.write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.setenv("GASWORKS_AGENT", "aider")
    monkeypatch.setenv("GASWORKS_AIDER_CMD", json.dumps([sys.executable, str(fake_aider)]))
    monkeypatch.setenv("GASWORKS_OLLAMA_API_BASE", f"http://127.0.0.1:{port}")
    result = gw("agent-run", "--task-file", task_file(tmp_path), "--json", code=75)
    out = json.loads(result.stdout)
    assert out["status"] == "endpoint_down" and out["agent"] == "aider"
    assert "did not answer" in out["note"]
    assert not marker.exists()


def test_time_limit_ends_the_whole_process_group(gw, project_dir, tmp_path):
    out = agent_run(gw, task_file(tmp_path, {"spawn_child": True, "hang": True}), "--timeout", "1", code=1)
    assert out["status"] == "timeout"
    deadline = time.monotonic() + 30
    while process.find_agents([project_dir]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.find_agents([project_dir]) == []


def test_keep_out_paths_are_never_committed(gw, project_dir, tmp_path):
    script = {"write": {"src.txt": "code\n", ".claude/commands/x.md": "gt's\n", ".runtime/session_id": "s\n"},
              "no_commit": True}
    out = agent_run(gw, task_file(tmp_path, script), "--keep-out", ".claude", "--keep-out", ".runtime")
    assert out["status"] == "done"
    committed = git.run(["show", "--name-only", "--format=", "HEAD"], project_dir).stdout.split()
    assert committed == ["src.txt"]
    assert sorted(git.changed_files(project_dir)) == [".claude/commands/x.md", ".runtime/session_id"]


def test_a_dirty_checkout_is_refused_before_the_agent_starts(gw, project_dir, tmp_path):
    (project_dir / "README.md").write_text("edited by hand\n")
    (project_dir / "notes.txt").write_text("mine\n")
    out = agent_run(gw, task_file(tmp_path, {"write": {"a.txt": "a"}}), code=1)
    assert out["status"] == "error"
    assert out["note"] == "the checkout has uncommitted changes (README.md, notes.txt): commit or stash them first"
    assert not (project_dir / "a.txt").exists()
    assert git.commits_between(project_dir, out["base"]) == []


def test_a_task_file_written_into_the_checkout_is_the_input_not_the_work(gw, project_dir):
    """`agent-run --task-file task.txt` with task.txt new in the checkout: not refused, never committed."""
    path = task_file(project_dir, {"write": {"a.txt": "a"}, "no_commit": True})
    out = agent_run(gw, "task.txt")
    assert out["status"] == "done", out["note"]
    committed = git.run(["show", "--name-only", "--format=", "HEAD"], project_dir).stdout.split()
    assert committed == ["a.txt"]
    assert git.changed_files(project_dir) == ["task.txt"] and Path(path).exists()


def test_outside_a_project_logs_go_to_the_git_directory(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    out = agent_run(Cli(), task_file(tmp_path, {"write": {"a.txt": "a"}}))
    assert out["status"] == "done"
    assert Path(out["log"]).parent == repo / ".git" / "gasworks" / "agent-run" / "logs"


def test_outside_a_git_checkout_is_one_line(gw, tmp_path, monkeypatch):
    path = task_file(tmp_path)
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = gw("agent-run", "--task-file", path, "--agent", "fake", code=1)
    assert result.stderr.strip().count("\n") == 0 and "not inside a git checkout" in result.stderr


def test_a_missing_task_file_is_one_line(gw, tmp_path):
    result = gw("agent-run", "--task-file", str(tmp_path / "nope.txt"), "--agent", "fake", code=1)
    assert "cannot read" in result.stderr and result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("text, expected", [("Task gw-a1b2.3: title\n", "gw-a1b2.3"), ("just text", "task"),
                                            ("Task : no id", "task")])
def test_task_id_from_the_first_line(text, expected):
    assert task_id_of(text) == expected
