"""`gasworks demo` runs end to end in a fresh directory, as the README's first command does."""

from __future__ import annotations

import json
import subprocess
import sys

from gasworks import git
from tests.conftest import run_gasworks


def test_demo_creates_a_repo_and_a_fleet_works_the_backlog(tmp_path):
    target = tmp_path / "demo"
    result = run_gasworks(["demo", "--dir", str(target), "--agent", "fake", "--json"], tmp_path,
                          env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["exit_code"] == 0 and report["agent"] == "fake"
    assert (report["merged"], report["failed"], report["waiting"], report["attempts"]) == (8, 0, 0, 8)
    assert report["counts"]["closed"] == 8 and report["counts"]["open"] == 1  # the open one is the epic
    merged = git.run(["log", "--first-parent", "--format=%s", "main"], target).stdout.splitlines()
    assert len(merged) == 9
    order = [next(i for i, subject in enumerate(merged) if subject.endswith(f": Add {name} to calc.py"))
             for name in ("divide(a, b)", "multiply(a, b)", "subtract(a, b)")]
    assert order == sorted(order)  # newest first: each waited for the one before it
    for path in ("test_subtract.py", "test_divide.py", "powers.py", "parity.py", "stats.py", "greet.py"):
        assert (target / path).is_file(), path  # merged, and the demo checkout moved with main
    calc = (target / "calc.py").read_text()
    assert calc.index("def subtract") < calc.index("def multiply") < calc.index("def divide")  # one after another
    gate = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=target, capture_output=True, text=True)
    assert gate.returncode == 0 and "Ran 10 tests" in gate.stderr  # each task's tests came with it, and pass
    assert len((target / ".beads" / "issues.jsonl").read_text().splitlines()) == 9
    listed = json.loads(run_gasworks(["list", "--all", "--json"], target).stdout)
    assert {t["status"] for t in listed if t["issue_type"] != "epic"} == {"closed"}


def test_demo_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_gasworks(["demo", "--dir", str(tmp_path)], tmp_path)
    assert result.returncode == 1 and "not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_tasks_give_their_tests_to_a_real_agent_and_no_script(tmp_path):
    """The builtin agent reads the task as a user wrote it: the fake agent's script (which holds the
    answer) goes only to the fake agent."""
    from gasworks.agents import edits
    from gasworks.demo import BACKLOG, _description

    for _key, text, target, test_file, test, code, _waits in BACKLOG:
        description = _description(text, test_file, test, target, code, fake=False)
        assert "gasworks-fake" not in description and code not in description
        plan = edits.plan_edit(f"Task gw-1: {text}\n\nDescription:\n{description}", tmp_path)
        assert plan is not None and (plan.target, plan.given) == (target, {test_file: test})
        assert plan.function.split("(")[0] in test  # the function the tests call is the one it names
