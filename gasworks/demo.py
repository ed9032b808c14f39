"""`gasworks demo`: a sample repository with tests and a backlog of eight tasks, worked end to end.

Each task is one a user would write ("Add subtract(a, b) to calc.py: it returns a minus b.") and
gives the tests it must pass; the gate runs every test. By default the builtin agent runs on a
local model server's coding model when one is up, else on the embedded model (SmolLM2-135M,
fetched once into the models folder), which its edit-and-test loop (gasworks.agents.edits) gets
most of these small tasks done with: the def line given, the tests run after each try, a failed
try sampled again. The whole loop is real (worktrees, agent processes, model requests, the test
gate, merges). `--agent fake` runs the same loop with the scripted fake agent in seconds.
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
IGNORE = "__pycache__/\n.venv/\n"
# The demo's gate: the tests pass, and there still are tests (an agent that empties the test file
# would otherwise pass by running none).
GATE = ("import sys, unittest; r = unittest.main(module=None, argv=['gate', 'discover', '-q'], exit=False).result;"
        " print(r.testsRun, 'tests ran'); sys.exit(0 if r.wasSuccessful() and r.testsRun >= 1 else 1)")


def _test(module: str, function: str, *checks: str) -> str:
    """A test file for `function` of `module`: one test method, or one per blank-separated group."""
    methods: list[str] = []
    body: list[str] = []
    for check in (*checks, ""):
        if check:
            body.append(f"        self.{check}\n")
        elif body:
            name = "test_" + function if not methods else f"test_{function}_{len(methods) + 1}"
            methods.append(f"    def {name}(self):\n" + "".join(body))
            body = []
    return (f"import unittest\n\nfrom {module} import {function}\n\n\nclass {function.title().replace('_', '')}Test"
            f"(unittest.TestCase):\n" + "\n".join(methods))


# (the task as a user writes it, the file to change, the test file the task gives, its text, the code
#  the fake agent appends, keys it waits on), by key. Each task's tests check what it asks for;
# tasks on one file wait on each other, so that their branches do not clash.
BACKLOG = [
    ("sub", "Add subtract(a, b) to calc.py: it returns a minus b.", "calc.py", "test_subtract.py",
     _test("calc", "subtract", "assertEqual(subtract(5, 3), 2)", "assertEqual(subtract(3, 5), -2)"),
     "def subtract(a, b):\n    return a - b\n", []),
    ("mul", "Add multiply(a, b) to calc.py: it returns a times b.", "calc.py", "test_multiply.py",
     _test("calc", "multiply", "assertEqual(multiply(4, 3), 12)", "assertEqual(multiply(-2, 3), -6)"),
     "def multiply(a, b):\n    return a * b\n", ["sub"]),
    ("div", "Add divide(a, b) to calc.py: a divided by b; dividing by zero raises ZeroDivisionError.", "calc.py",
     "test_divide.py",
     _test("calc", "divide", "assertEqual(divide(6, 3), 2)", "", "assertRaises(ZeroDivisionError, divide, 1, 0)"),
     "def divide(a, b):\n    return a / b\n", ["mul"]),
    ("square", "Add square(x) to powers.py: it returns x times x.", "powers.py", "test_powers.py",
     _test("powers", "square", "assertEqual(square(3), 9)", "assertEqual(square(-4), 16)"),
     "def square(x):\n    return x * x\n", []),
    ("even", "Add is_even(n) to parity.py: True when n is even, else False.", "parity.py", "test_parity.py",
     _test("parity", "is_even", "assertTrue(is_even(4))", "assertFalse(is_even(7))"),
     "def is_even(n):\n    return n % 2 == 0\n", []),
    ("avg", "Add average(numbers) to stats.py: the mean of a list of numbers.", "stats.py", "test_average.py",
     _test("stats", "average", "assertEqual(average([1, 2, 3]), 2)", "assertEqual(average([5]), 5)"),
     "def average(numbers):\n    return sum(numbers) / len(numbers)\n", []),
    ("largest", "Add largest(numbers) to stats.py: the largest number of a list.", "stats.py", "test_largest.py",
     _test("stats", "largest", "assertEqual(largest([3, 9, 2]), 9)", "assertEqual(largest([-5, -1]), -1)"),
     "def largest(numbers):\n    return max(numbers)\n", ["avg"]),
    ("greet", "Add greet(name) to greet.py: it returns 'Hello, NAME!' for the given name.", "greet.py",
     "test_greet.py", _test("greet", "greet", "assertEqual(greet('Ada'), 'Hello, Ada!')"),
     "def greet(name):\n    return f'Hello, {name}!'\n", []),
]


def _description(text: str, test_file: str, test: str, target: str, code: str, fake: bool) -> str:
    """The task as a user writes it: what to do, and the tests it must pass (given in full). For the
    fake agent, its script too: it writes those tests and appends the code."""
    description = f"{text}\n\nThe tests it must pass, {test_file}:\n```python\n{test}```\n"
    if fake:
        script = {"write": {test_file: test}, "append": {target: "\n\n" + code}}
        description += f"\n```gasworks-fake\n{json.dumps(script)}\n```\n"
    return description


def _make_repo(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise InvalidValueError(f"{directory} is not empty: choose another --dir")
    git.init_repo(directory)
    for name, text in (("calc.py", CALC), ("test_calc.py", TESTS), ("README.md", README), (".gitignore", IGNORE)):
        (directory / name).write_text(text, encoding="utf-8")
    git.commit_all(directory, "A tiny calculator with a test")


def _seed(directory: Path, say: Callable[[str], None], fake: bool) -> None:
    project, _ = init_project(directory)
    with open(directory / "gasworks.toml", "a", encoding="utf-8") as toml:  # .beads/ will hold only an export
        toml.write('\n# The demo\'s tasks live here; .beads/issues.jsonl is an export of them.\ntracker = "gasworks"\n')
    store = project.open_store()
    prefix, actor = project.config.prefix, "demo"
    epic = store.create_task(NewTask("Release calc 1.0", issue_type="epic", priority=1), prefix=prefix, actor=actor)
    ids: dict[str, str] = {}
    for key, text, target, test_file, test, code, waits in BACKLOG:
        title = text.split(":")[0]
        task = store.create_task(NewTask(title, description=_description(text, test_file, test, target, code, fake),
                                         parent=epic.id,
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
    _seed(directory, say, fake=agent == "fake")
    overrides = {"agent": agent, "num_workers": workers, "grace_seconds": 5, "max_attempts": 1,
                 "gate": [[sys.executable, "-c", GATE]], "agent_max_steps": 8,
                 "attempt_timeout": 900,  # bounds the demo on a busy machine: no task takes longer
                 "embedded_parallel": workers}
    project = find_project(directory, overrides=overrides)
    found = None
    if agent == "builtin" and not project.config.endpoints and project.config.autodetect:
        from gasworks.llm.probe import autodetect

        found = autodetect(workers, say)  # a local model server's coding model, said which and why
        if found is not None:
            project = find_project(directory, overrides={**overrides, "endpoints": [found]})
    store = project.open_store()
    model = "the embedded model (SmolLM2-135M, tiny: each agent tries, runs the tests, tries again)" \
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
