"""Running a task's hidden tests on a tree, and checking a suite before it measures anything: each
task's known solution passes the gate and the hidden tests; its wrong change fails the hidden tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gasworks import confined, git
from gasworks.errors import SuiteError
from gasworks.eval.suite import Edit, EvalTask, Suite, SuiteProject, apply_edits, wrong_edits

TEST_TIMEOUT = 300.0


def hidden_pass(tree: Path, task: EvalTask, folder: Path, command: list[str] | None = None) -> bool:
    """Whether the task's hidden tests pass on `tree`. By default they are written to `folder`
    (outside the tree) and unittest runs them with the tree as the working directory, so they
    import its code; with a command, they are written in place in the tree (then removed) and the
    command runs with their paths appended."""
    if command:
        return _in_place(tree, task, command)
    for name, content in task.hidden.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content, encoding="utf-8")
    result = _run([sys.executable, "-I", "-c", RUNNER, str(tree), "discover", "-q", "-s", str(folder), "-t",
                   str(folder), "-p", "*.py"], tree)
    return result is not None and result.returncode == 0 and b"Ran 0 tests" not in result.stderr


# unittest loaded before the tree goes on the path (isolated: no cwd, no PYTHON* variables), so a
# module the agents committed under a name of the runner's (unittest.py) cannot stand in for it.
RUNNER = "import sys, unittest; sys.path.insert(0, sys.argv.pop(1)); unittest.main(module=None)"


def _in_place(tree: Path, task: EvalTask, command: list[str]) -> bool:
    """The hidden tests written into the tree, run, and the tree put back. The tree is the agents'
    work: a link it holds at a test's path (or a folder above it) is never written or read through;
    one in place of a folder fails the tests."""
    try:
        kept = {name: confined.read_bytes(tree, name) for name in task.hidden}
    except OSError:
        return False
    try:
        for name, content in task.hidden.items():
            confined.write_text(tree, name, content)
        result = _run([*command, *sorted(task.hidden)], tree)
        return result is not None and result.returncode == 0
    except OSError:
        return False
    finally:
        for name, old in kept.items():
            try:
                if old is None:
                    confined.remove(tree, name)
                else:
                    confined.write_bytes(tree, name, old)
            except OSError:  # a folder above it is a link: nothing was written there
                pass


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess | None:
    """argv's result, or None when it ran past TEST_TIMEOUT."""
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, timeout=TEST_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    except OSError as exc:  # the suite names a program that cannot start: no test result to give
        raise SuiteError(f"cannot run {argv[0]!r} (the suite's gate or hidden_command): "
                         f"{exc.strerror or exc}") from None


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
        done = _run(argv, tree)
        if done is None or done.returncode != 0:
            return False
    return True


def _made(project: SuiteProject, task: EvalTask, right: bool, place: Path) -> Path:
    """The starting tree with the task's visible tests and its solution (right) or wrong change."""
    tree = place / "tree"
    start_tree(project, tree)
    if task.patch and right:
        git.init_repo(tree)  # so `git apply` works on this tree alone, wherever the scratch folder is
        git.apply_patch(tree, task.patch)
    visible = tuple(Edit(path, write=content) for path, content in sorted(task.visible.items()))
    apply_edits(tree, visible + (task.solution if right else wrong_edits(task)))
    return tree


def check_task(project: SuiteProject, task: EvalTask, scratch: Path) -> dict[str, Any]:
    """One task, each change made on a fresh copy of the starting tree."""
    right = _made(project, task, True, scratch / "right")
    wrong = _made(project, task, False, scratch / "wrong")
    found = {"task": f"{project.name}/{task.key}", "solution_passes_gate": _gate_passes(project, right),
             "solution_passes_hidden": hidden_pass(right, task, scratch / "hidden-right", project.hidden_argv()),
             "wrong_passes_gate": _gate_passes(project, wrong),
             "wrong_passes_hidden": hidden_pass(wrong, task, scratch / "hidden-wrong", project.hidden_argv())}
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
