"""docs/migrating.md: every command in its gasworks column runs, in order, and succeeds, against a
repository set up as the page describes (classic files, a bd-written .beads/issues.jsonl)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from gasworks import git
from tests.test_llm_clients import OpenAIProtocol, servers  # noqa: F401  (the fixture)
from tests.test_planner import plan_reply

DOC = Path(__file__).resolve().parent.parent / "docs" / "migrating.md"
STAMP = "2026-03-01T10:00:00Z"


def gasworks_column() -> list[str]:
    """The code in the last column of every table row, in order (header and rule rows left out)."""
    commands = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and cells[-1].startswith("`") and cells[-1].endswith("`"):
            commands.append(cells[-1].strip("`"))
    return commands


def issue(issue_id: str, title: str, **fields) -> dict:
    return {"id": issue_id, "title": title, "description": "", "status": "open", "priority": 2,
            "issue_type": "task", "created_at": STAMP, "updated_at": STAMP, **fields}


def beads_jsonl() -> str:
    """Issues as `bd export` writes them: one object a line, dependencies inline."""
    child = {"type": "parent-child", "created_at": STAMP, "created_by": "mayor"}
    records = [
        issue("bd-a1b2", "Add a greeting", priority=1, labels=["backend"]),
        issue("bd-c3d4", "Document the greeting"),
        issue("bd-e5f6", "Ship the parser", issue_type="epic"),
        issue("bd-e5f6.1", "Write the parser", dependencies=[{"issue_id": "bd-e5f6.1", "depends_on_id": "bd-e5f6",
                                                               **child}]),
        issue("bd-e5f6.2", "Test the parser", dependencies=[
            {"issue_id": "bd-e5f6.2", "depends_on_id": "bd-e5f6", **child},
            {"issue_id": "bd-e5f6.2", "depends_on_id": "bd-e5f6.1", "type": "blocks", "created_at": STAMP,
             "created_by": "mayor"}]),
    ]
    return "".join(json.dumps(record) + "\n" for record in records)


def set_up(repo: Path) -> None:
    (repo / "dispatch_config.json").write_text(json.dumps({"num_workers": 2, "branch": "main", "aider_cmd": "aider",
                                                           "model": "ollama_chat/qwen2.5-coder:7b"}))
    (repo / "task_queue.json").write_text(json.dumps([{"id": 1, "title": "Add a logo", "status": "pending"},
                                                      {"id": 2, "title": "Old work", "status": "done"}]))
    (repo / "BEADS_FOR_ANALYSIS.md").write_text("# Tasks\n\n- Tidy the imports\n- Add a changelog\n")
    (repo / ".beads").mkdir()
    (repo / ".beads" / "issues.jsonl").write_text(beads_jsonl())
    (repo / "suggested_tasks.txt").write_text("Add a test for the logo\n")
    (repo / "task.txt").write_text("Task demo: write a note\n")
    git.commit_all(repo, "the classic setup")


def argv_of(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "gasworks":
        return [sys.executable, "-m", "gasworks", *words[1:]]
    if words[0] == "py":  # the Windows launcher the classic users type; this Python here
        return [sys.executable, *words[1:]]
    raise AssertionError(f"docs/migrating.md: do not know how to run {command!r}")


def test_every_gasworks_command_on_the_migration_page_runs(repo: Path, servers):  # noqa: F811
    server = servers()
    server.script(OpenAIProtocol.chat_path, plan_reply(
        {"title": "Write the tokenizer", "description": "tokens", "depends_on": []},
        {"title": "Write the grammar", "description": "grammar", "depends_on": [1]}))
    set_up(repo)
    commands = gasworks_column()
    assert len(commands) >= 25 and commands[0] == "gasworks init --scripts"
    env = {**{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}, "GASWORKS_ACTOR": "tester",
           "GASWORKS_RETRY_BACKOFF": "0", "GASWORKS_ENDPOINTS": json.dumps(  # the model split_task.py asks
               [{"url": server.url, "kind": "openai", "model": "planner"}])}
    for command in commands:
        if command.startswith("gasworks agent-run"):  # it refuses a checkout with uncommitted changes
            git.run(["add", "-A"], repo)
            git.commit_all(repo, "before agent-run")
        done = subprocess.run(argv_of(command), cwd=repo, capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL, env=env)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, command
    exported = [json.loads(line) for line in (repo / "issues.jsonl").read_text().splitlines()]
    ids = {record["id"] for record in exported}
    assert {"bd-a1b2", "bd-c3d4", "bd-e5f6", "bd-e5f6.1", "bd-e5f6.2"} <= ids  # Beads's ids kept
    c3d4 = next(r for r in exported if r["id"] == "bd-c3d4")
    assert {"depends_on_id": "bd-a1b2", "type": "blocks"}.items() <= c3d4["dependencies"][0].items()
    assert re.search(r"Merge gasworks/", git.run(["log", "--format=%s", "main"], repo).stdout)
