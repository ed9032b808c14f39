"""`gasworks demo`: a throwaway repository with a backlog, worked by a small fleet of fake agents.

The fake agent fakes only the intelligence: each task's description scripts what it writes.
Everything else is the real thing: the store, worktrees, agent processes, merges into main.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gasworks import git
from gasworks.agents import get_agent
from gasworks.dispatcher import Dispatcher, run_fleet
from gasworks.errors import InvalidValueError
from gasworks.ingest import read_tasks
from gasworks.output import task_line, write_jsonl_file
from gasworks.project import find_project, init_project
from gasworks.store import NewTask


def _scripted(text: str, **script: Any) -> str:
    return f"{text}\n\n```gasworks-fake\n{json.dumps(script)}\n```"


def _backlog() -> str:
    sections = [
        ("Add a subtract function", "calc.py only adds. Add `subtract(a, b)`.",
         {"subtract.py": "def subtract(a, b):\n    return a - b\n"}),
        ("Add a multiply function", "Add `multiply(a, b)`.",
         {"multiply.py": "def multiply(a, b):\n    return a * b\n"}),
        ("Document the calculator", "Write a docs page listing every function.",
         {"docs/functions.md": "# Functions\n\n- add\n- subtract\n- multiply\n"}),
    ]
    parts = ["# Beads for analysis\n"]
    parts += [f"## {title}\n{_scripted(text, write=files)}\n" for title, text, files in sections]
    return "\n".join(parts)


CALC = "def add(a, b):\n    return a + b\n"


def _make_repo(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise InvalidValueError(f"{directory} is not empty: choose another --dir")
    git.init_repo(directory)
    (directory / "calc.py").write_text(CALC, encoding="utf-8")
    (directory / "BEADS_FOR_ANALYSIS.md").write_text(_backlog(), encoding="utf-8")
    git.commit_all(directory, "A tiny calculator")


def _plan(directory: Path, say: Callable[[str], None]) -> str:
    project, _ = init_project(directory)
    store = project.open_store()
    prefix, actor = project.config.prefix, "demo"
    imported = store.import_tasks(read_tasks(directory / "BEADS_FOR_ANALYSIS.md"), prefix=prefix, actor=actor)
    say(f"Imported {imported.created} tasks from BEADS_FOR_ANALYSIS.md")
    docs_id = imported.ids[-1]
    epic = store.create_task(NewTask("Release 1.0", issue_type="epic", priority=1), prefix=prefix, actor=actor)
    changelog = store.create_task(NewTask("Write the changelog", parent=epic.id, priority=1, description=_scripted(
        "List what 1.0 brings.", write={"CHANGELOG.md": "# Changelog\n\n## 1.0\n- subtract, multiply, docs\n"})),
        prefix=prefix, actor=actor)
    tag = store.create_task(NewTask("Write the release notes", parent=epic.id, priority=1,
                                    deps=[(changelog.id, "blocks"), (docs_id, "blocks")],
                                    description=_scripted("After the changelog and the docs.",
                                                          write={"RELEASE.md": "Version 1.0 is out.\n"})),
                            prefix=prefix, actor=actor)
    say(f"Planned epic {epic.id}: {changelog.id}, then {tag.id} (which also waits for {docs_id})")
    say("\nReady now (priority, then oldest first):")
    for task in store.ready():
        say("  " + task_line(task))
    store.close()
    return tag.id


def run_demo(directory: Path | None, say: Callable[[str], None]) -> dict[str, Any]:
    directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="gasworks-demo-"))
    say(f"Creating a demo repository in {directory}")
    _make_repo(directory)
    last = _plan(directory, say)

    say("\nRunning 3 fake agents until the queue is empty:")
    project = find_project(directory, overrides={"agent": "fake", "num_workers": 3, "grace_seconds": 5})
    store = project.open_store()
    dispatcher = Dispatcher(project, store, get_agent("fake", project.config), project.config,
                            say=lambda line: say("  " + line))
    code = run_fleet(dispatcher, until_done=True)
    log = git.run(["log", "--oneline", "--first-parent", "main"], directory).stdout.splitlines()
    say(f"\nmain now ({len(log)} commits, newest first):")
    for line in log:
        say("  " + line)
    exported = write_jsonl_file(store.export_tasks(), directory / ".beads" / "issues.jsonl")
    say(f"\nExported {exported} tasks to .beads/issues.jsonl (Beads JSONL)")
    command = "gasworks" if shutil.which("gasworks") else f"{sys.executable} -m gasworks"
    say(f"Look around: cd {directory} && {command} list --all && {command} show {last}")
    counts = store.counts()
    store.close()
    return {"directory": str(directory), "exit_code": code, "counts": counts, "log": log}
