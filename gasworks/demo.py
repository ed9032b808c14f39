"""`gasworks demo`: a throwaway repository with a task queue, and one task walked through it."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gasworks import git
from gasworks.errors import InvalidValueError
from gasworks.ingest import read_tasks
from gasworks.output import task_line, write_jsonl_file
from gasworks.project import init_project
from gasworks.store import NewTask

BACKLOG = """\
# Beads for analysis

## Add a subtract function
calc.py only adds. Add `subtract(a, b)` with a test.

## Add a multiply function
Add `multiply(a, b)` with a test.

## Document the calculator
Write a README section listing every function.
"""

CALC = '''def add(a, b):
    return a + b
'''

TEST_CALC = '''from calc import add


def test_add():
    assert add(2, 3) == 5
'''


def _make_repo(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise InvalidValueError(f"{directory} is not empty: choose another --dir")
    git.init_repo(directory)
    (directory / "calc.py").write_text(CALC, encoding="utf-8")
    (directory / "test_calc.py").write_text(TEST_CALC, encoding="utf-8")
    (directory / "BEADS_FOR_ANALYSIS.md").write_text(BACKLOG, encoding="utf-8")
    git.commit_all(directory, "A tiny calculator")


def run_demo(directory: Path | None, say: Callable[[str], None]) -> dict[str, Any]:
    directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="gasworks-demo-"))
    say(f"Creating a demo repository in {directory}")
    _make_repo(directory)
    project, _ = init_project(directory)
    store = project.open_store()
    prefix, actor = project.config.prefix, "demo"

    imported = store.import_tasks(read_tasks(directory / "BEADS_FOR_ANALYSIS.md"), prefix=prefix, actor=actor)
    say(f"Imported {imported.created} tasks from BEADS_FOR_ANALYSIS.md")
    docs_id = imported.ids[-1]
    epic = store.create_task(NewTask("Release 1.0", issue_type="epic", priority=1), prefix=prefix, actor=actor)
    changelog = store.create_task(NewTask("Write the changelog", parent=epic.id, priority=1), prefix=prefix,
                                  actor=actor)
    tag = store.create_task(NewTask("Tag the release", parent=epic.id, priority=1,
                                    deps=[(changelog.id, "blocks"), (docs_id, "blocks")]),
                            prefix=prefix, actor=actor)
    say(f"Planned epic {epic.id} with children {changelog.id} and {tag.id} (waits on {changelog.id}, {docs_id})")

    say("\nReady now (priority, then oldest first):")
    for task in store.ready():
        say("  " + task_line(task))

    task = store.claim_next("demo-agent", lease_seconds=project.config.lease_seconds, now=time.time())
    say(f"\ndemo-agent claimed {task.id} ({task.title}) with a {project.config.lease_seconds:.0f} s lease")
    (directory / "CHANGELOG.md").write_text("# Changelog\n\n## 1.0\n- First release.\n", encoding="utf-8")
    commit = git.commit_all(directory, f"{task.title} ({task.id})")
    store.close_task(task.id, actor="demo-agent", reason=f"Committed {commit[:10]}")
    say(f"demo-agent committed {commit[:10]} and closed {task.id}")

    say("\nReady now:")
    ready = store.ready()
    for item in ready:
        say("  " + task_line(item))
    exported = write_jsonl_file(store.export_tasks(), directory / ".beads" / "issues.jsonl")
    say(f"\nExported {exported} tasks to {directory / '.beads' / 'issues.jsonl'} (Beads JSONL)")
    command = "gasworks" if shutil.which("gasworks") else f"{sys.executable} -m gasworks"
    say(f"Try: cd {directory} && {command} ready && {command} dep tree {tag.id}")
    counts = store.counts()
    store.close()
    return {"directory": str(directory), "counts": counts, "ready": [t.id for t in ready],
            "closed": [task.id], "commit": commit}
