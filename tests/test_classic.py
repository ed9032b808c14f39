"""The classic scripts (`gasworks init --scripts`) run as before against a repository that has a
dispatch_config.json and a task_queue.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gasworks import git
from gasworks.store.sqlite import SQLiteStore
from tests.test_llm_clients import OpenAIProtocol, servers  # noqa: F401  (the fixture)
from tests.test_planner import plan_reply


def script(root: Path, name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`py NAME ARGS`, as the classic users run them: the script file, in the repository root."""
    return subprocess.run([sys.executable, name, *args], cwd=root, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, env={**os.environ, "GASWORKS_ACTOR": "tester", **(env or {})})


def classic_repo(repo: Path) -> None:
    (repo / "dispatch_config.json").write_text(json.dumps({
        "num_workers": 2, "worktree_placement": "sibling", "worktree_prefix": "classic-w", "branch": "main",
        "auto_merge_worktrees": True, "create_bead_on_merge_conflict": True, "merge_slot": ".merge.lock",
        "auto_retry_merge_on_conflict_close": True, "model": "ollama_chat/qwen2.5-coder:7b",
        "aider_cmd": "aider", "repo_root": "."}))
    (repo / "task_queue.json").write_text(json.dumps([
        {"id": 1, "title": "Add a greeting", "description": "hello", "status": "pending", "priority": 1},
        {"id": 2, "title": "Add a farewell", "description": "bye", "status": "pending", "depends_on": [1]},
        {"id": 3, "title": "Old work", "status": "done"}]))


def test_init_scripts_then_the_classic_dispatch_runs_the_queue(repo: Path):
    classic_repo(repo)
    made = subprocess.run([sys.executable, "-m", "gasworks", "init", "--scripts"], cwd=repo, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    for name in ("dispatch_workers.py", "split_task.py", "ingest_suggested_tasks.py"):
        assert f"wrote {name}" in made.stdout and (repo / name).exists()
    assert 'agent = "aider"' in (repo / "gasworks.toml").read_text()  # the classic setup ran Aider
    help_text = script(repo, "dispatch_workers.py", "--help")
    assert help_text.returncode == 0 and "--until-done" in help_text.stdout

    done = script(repo, "dispatch_workers.py", "--agent", "fake", "--until-done")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported task_queue.json: 3 created" in done.stdout
    assert (repo.parent / "classic-w1").is_dir()  # dispatch_config.json's sibling worktrees
    store = SQLiteStore(repo / ".gasworks" / "gasworks.db")
    try:
        tasks = {t.title: t for t in store.list_tasks()}
        assert {t.status for t in tasks.values()} == {"closed"}
        merged = git.run(["log", "--first-parent", "--format=%s", "main"], repo).stdout
        assert merged.index("Add a farewell") < merged.index("Add a greeting")  # newest first: order kept
        again = script(repo, "dispatch_workers.py", "--agent", "fake", "--until-done")
        assert again.returncode == 0 and "3 created" not in again.stdout and len(store.list_tasks()) == 3
    finally:
        store.close()


def test_the_classic_ingest_and_split_scripts(repo: Path, servers):  # noqa: F811 (the imported fixture)
    classic_repo(repo)
    assert subprocess.run([sys.executable, "-m", "gasworks", "init", "--scripts"], cwd=repo,
                          capture_output=True, timeout=60).returncode == 0
    (repo / "suggested_tasks.txt").write_text("Add a test for the greeting\nDocument the farewell\n")
    ingested = script(repo, "ingest_suggested_tasks.py")
    assert ingested.returncode == 0, ingested.stderr
    assert (repo / "suggested_tasks.txt").read_text() == ""  # cleared, as before

    server = servers()
    with open(repo / "gasworks.toml", "a", encoding="utf-8") as toml:
        toml.write(f'\nendpoints = [{{url = "{server.url}", kind = "openai", model = "planner"}}]\n')
    server.script(OpenAIProtocol.chat_path, plan_reply(
        {"title": "Write the parser", "description": "parse", "depends_on": []},
        {"title": "Test the parser", "description": "test", "depends_on": [1]}))
    split = script(repo, "split_task.py", "Parse the config files", env={"NO_PROXY": "127.0.0.1"})
    assert split.returncode == 0, split.stderr
    store = SQLiteStore(repo / ".gasworks" / "gasworks.db")
    try:
        titles = {t.title for t in store.list_tasks()}
        assert {"Add a test for the greeting", "Document the farewell", "Parse the config files",
                "Write the parser", "Test the parser"} <= titles
    finally:
        store.close()
