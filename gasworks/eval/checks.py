"""Running a task's hidden tests on a tree, and checking a suite before it measures anything: each
task's known solution passes the gate and the hidden tests; its wrong change fails the hidden tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gasworks import git
from gasworks.eval.suite import Edit, EvalTask, Suite, SuiteProject, apply_edits, wrong_edits

TEST_TIMEOUT = 300.0


def hidden_pass(tree: Path, task: EvalTask, folder: Path) -> bool:
    """Whether the task's hidden tests pass on `tree`. They are written to `folder` (outside the
    tree) and run with the tree as the working directory, so they import its code."""
    for name, content in task.hidden.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content, encoding="utf-8")
    try:
        result = subprocess.run([sys.executable, "-m", "unittest", "discover", "-q", "-s", str(folder), "-t",
                                 str(folder), "-p", "*.py"], cwd=tree, capture_output=True, timeout=TEST_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and b"Ran 0 tests" not in result.stderr


def start_tree(project: SuiteProject, root: Path) -> None:
    """The project's starting files in `root` (a new folder)."""
    if project.source:
        git.export_tree(Path(project.source["repo"]), project.source["rev"], root)
        return
    for name, content in project.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def _gate_passes(project: SuiteProject, tree: Path) -> bool:
    for argv in project.gate_argv():
        done = subprocess.run(argv, cwd=tree, capture_output=True, timeout=TEST_TIMEOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            return False
    return True


def _made(project: SuiteProject, task: EvalTask, edits: tuple[Edit, ...], place: Path) -> Path:
    tree = place / "tree"
    start_tree(project, tree)
    if task.patch and edits == task.solution:
        git.init_repo(tree)
        git.apply_patch(tree, task.patch)
    visible = tuple(Edit(path, write=content) for path, content in sorted(task.visible.items()))
    apply_edits(tree, visible + edits)
    return tree


def check_task(project: SuiteProject, task: EvalTask, scratch: Path) -> dict[str, Any]:
    """One task, each change made on a fresh copy of the starting tree."""
    right = _made(project, task, task.solution, scratch / "right")
    wrong = _made(project, task, wrong_edits(task), scratch / "wrong")
    found = {"task": f"{project.name}/{task.key}", "solution_passes_gate": _gate_passes(project, right),
             "solution_passes_hidden": hidden_pass(right, task, scratch / "hidden-right"),
             "wrong_passes_gate": _gate_passes(project, wrong),
             "wrong_passes_hidden": hidden_pass(wrong, task, scratch / "hidden-wrong")}
    shutil.rmtree(scratch, ignore_errors=True)
    return found


def check_suite(suite: Suite, scratch: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every task checked; (the findings, the problems: what would make the suite measure wrong)."""
    findings, problems = [], []
    for project in suite.projects:
        for task in project.tasks:
            found = check_task(project, task, scratch / project.name / task.key)
            findings.append(found)
            if not found["solution_passes_gate"]:
                problems.append(f"{found['task']}: the known solution fails the gate")
            if not found["solution_passes_hidden"]:
                problems.append(f"{found['task']}: the known solution fails the hidden tests")
            if found["wrong_passes_hidden"]:
                problems.append(f"{found['task']}: the wrong change passes the hidden tests")
    return findings, problems
