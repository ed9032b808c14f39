"""`gasworks demo`: a sample repository with tests and a backlog of a dozen tasks, worked end to end.

By default the builtin agent runs on a local model server's coding model when one is up, else
on the embedded model (SmolLM2-135M, fetched once into the models folder): the whole loop is real
(worktrees, agent processes, model requests, the test gate, merges), and the tiny model's edits
are mostly useless, which the gate keeps out of main. `--agent fake` runs the same loop with the
scripted fake agent in seconds.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gasworks import git
from gasworks.agents import get_agent
from gasworks.dispatcher import Dispatcher
from gasworks.errors import InvalidValueError
from gasworks.fleet import run_fleet
from gasworks.output import task_line, write_jsonl_file
from gasworks.project import find_project, init_project
from gasworks.stats import run_summary, summary_line
from gasworks.store import NewTask

CALC = "def add(a, b):\n    return a + b\n"
TESTS = """import unittest

import calc


class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(calc.add(2, 3), 5)


if __name__ == "__main__":
    unittest.main()
"""
README = "# calc\n\nA tiny calculator, used by the gasworks demo.\n"
# The demo's gate: the tests pass, and there still are tests (an agent that empties the test file
# would otherwise pass by running none).
GATE = ("import sys, unittest; r = unittest.main(module=None, argv=['gate', 'discover', '-q'], exit=False).result;"
        " print(r.testsRun, 'tests ran'); sys.exit(0 if r.wasSuccessful() and r.testsRun >= 1 else 1)")


def _scripted(text: str, files: dict[str, str]) -> str:
    """The task text, with the fake agent's script (a real agent reads it as a hint)."""
    return f"{text}\n\n```gasworks-fake\n{json.dumps({'write': files})}\n```"


# (key, title, description, files the fake agent writes, keys it waits on)
BACKLOG = [
    ("sub", "Add a subtract function to calc.py", "Add `subtract(a, b)` next to `add`.",
     {"calc_sub.py": "def subtract(a, b):\n    return a - b\n"}, []),
    ("mul", "Add a multiply function", "Add `multiply(a, b)` in a new module.",
     {"calc_mul.py": "def multiply(a, b):\n    return a * b\n"}, []),
    ("div", "Add a divide function", "Add `divide(a, b)`; dividing by zero raises ZeroDivisionError.",
     {"calc_div.py": "def divide(a, b):\n    return a / b\n"}, ["mul"]),
    ("tsub", "Test subtract", "Add a unittest for subtract.",
     {"test_sub.py": "import unittest\n\nfrom calc_sub import subtract\n\n\nclass SubTest(unittest.TestCase):\n"
                     "    def test_sub(self):\n        self.assertEqual(subtract(5, 3), 2)\n"}, ["sub"]),
    ("tmul", "Test multiply", "Add a unittest for multiply.",
     {"test_mul.py": "import unittest\n\nfrom calc_mul import multiply\n\n\nclass MulTest(unittest.TestCase):\n"
                     "    def test_mul(self):\n        self.assertEqual(multiply(2, 3), 6)\n"}, ["mul"]),
    ("usage", "Write docs/usage.md", "Show how to call each function.",
     {"docs/usage.md": "# Usage\n\n    from calc import add\n    add(2, 3)  # 5\n"}, []),
    ("api", "Write docs/api.md", "List every function with one line each.",
     {"docs/api.md": "# API\n\n- add(a, b)\n- subtract(a, b)\n- multiply(a, b)\n- divide(a, b)\n"},
     ["sub", "mul", "div"]),
    ("contrib", "Write CONTRIBUTING.md", "How to run the tests: python -m unittest.",
     {"CONTRIBUTING.md": "# Contributing\n\nRun the tests with `python -m unittest`.\n"}, []),
    ("ignore", "Add a .gitignore", "Ignore __pycache__ and .venv.",
     {".gitignore": "__pycache__/\n.venv/\n"}, []),
    ("changelog", "Write CHANGELOG.md", "List what 1.0 brings.",
     {"CHANGELOG.md": "# Changelog\n\n## 1.0\n- subtract, multiply, divide, docs\n"}, ["api"]),
    ("notes", "Write the release notes", "RELEASE.md: one paragraph for 1.0.",
     {"RELEASE.md": "calc 1.0 adds subtract, multiply and divide.\n"}, ["changelog", "tsub", "tmul"]),
]


def _make_repo(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise InvalidValueError(f"{directory} is not empty: choose another --dir")
    git.init_repo(directory)
    for name, text in (("calc.py", CALC), ("test_calc.py", TESTS), ("README.md", README)):
        (directory / name).write_text(text, encoding="utf-8")
    git.commit_all(directory, "A tiny calculator with a test")


def _seed(directory: Path, say: Callable[[str], None]) -> None:
    project, _ = init_project(directory)
    with open(directory / "gasworks.toml", "a", encoding="utf-8") as toml:  # .beads/ will hold only an export
        toml.write('\n# The demo\'s tasks live here; .beads/issues.jsonl is an export of them.\ntracker = "gasworks"\n')
    store = project.open_store()
    prefix, actor = project.config.prefix, "demo"
    epic = store.create_task(NewTask("Release calc 1.0", issue_type="epic", priority=1), prefix=prefix, actor=actor)
    ids: dict[str, str] = {}
    for key, title, text, files, waits in BACKLOG:
        task = store.create_task(NewTask(title, description=_scripted(text, files), parent=epic.id,
                                         deps=[(ids[k], "blocks") for k in waits]), prefix=prefix, actor=actor)
        ids[key] = task.id
    say(f"Seeded epic {epic.id} with {len(ids)} tasks; {len(store.ready())} ready now:")
    for task in store.ready():
        say("  " + task_line(task))
    store.close()


def run_demo(directory: Path | None, say: Callable[[str], None], *, agent: str = "builtin",
             workers: int = 4) -> dict[str, Any]:
    directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="gasworks-demo-"))
    say(f"Creating a sample repository in {directory}")
    _make_repo(directory)
    _seed(directory, say)
    overrides = {"agent": agent, "num_workers": workers, "grace_seconds": 5, "max_attempts": 1,
                 "gate": [[sys.executable, "-c", GATE]], "agent_max_steps": 8,
                 "embedded_parallel": workers}
    project = find_project(directory, overrides=overrides)
    found = None
    if agent == "builtin" and not project.config.endpoints and project.config.autodetect:
        from gasworks.llm.probe import autodetect

        found = autodetect(workers, say)  # a local model server's coding model, said which and why
        if found is not None:
            project = find_project(directory, overrides={**overrides, "endpoints": [found]})
    store = project.open_store()
    model = "the embedded model (SmolLM2-135M: it proves the loop, it cannot really code)" \
        if agent == "builtin" and not project.config.endpoints else f"the {agent} agent"
    if found is not None:
        model = f"{found['model']} at {found['url']}"
    say(f"\nRunning {workers} agents on {model}, every branch gated by the tests:")
    started, clock = time.time(), time.monotonic()
    dispatcher = Dispatcher(project, store, get_agent(agent, project.config), project.config,
                            say=lambda line: say("  " + line))
    code = run_fleet(dispatcher, until_done=True)
    summary = run_summary(store, started, time.monotonic() - clock)
    summary["failed"] = summary["blocked"]  # the demo gives each task one attempt: failed tasks are blocked
    exported = write_jsonl_file(store.export_tasks(), directory / ".beads" / "issues.jsonl")
    line = summary_line(summary)
    say("\n" + line[0].upper() + line[1:] + ".")
    command = "gasworks" if shutil.which("gasworks") else f"{sys.executable} -m gasworks"
    say(f"Exported {exported} tasks to .beads/issues.jsonl. Look around:\n"
        f"  cd {directory}\n  git log --oneline --first-parent main\n"
        f"  {command} list --all\n  {command} merges\n  ls .gasworks/logs/*/   # each attempt's log and transcript")
    store.close()
    return {"directory": str(directory), "exit_code": code, "agent": agent, **summary}
