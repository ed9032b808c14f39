"""Attacks on the paths where a model's output becomes files: the built-in agent's edit-and-test
loop (gasworks.agents.edits: the model's code is written into the worktree, then the project's
checks run it) and the eval's hidden-test run on the tree the agents made (gasworks.eval.checks).
Each attack is one a hostile model or branch can make; each test checks the harm does not happen."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from gasworks import confined, git
from gasworks.agents import STANDING_INSTRUCTIONS, edits
from gasworks.agents.builtin import Budget, EditAgent, Finished
from gasworks.errors import GitError
from gasworks.eval.checks import hidden_pass
from gasworks.eval.suite import EvalTask
from gasworks.llm.pool import pool_from_specs
from tests.test_llm_clients import MODEL, OpenAIProtocol, servers  # noqa: F401  (the fixture)

CALC = "def add(a, b):\n    return a + b\n"
VICTIM_TEXT = "the user's file, outside the worktree\n"


def _task(target: str, module: str) -> str:
    test = (f"import unittest\n\nfrom {module} import subtract\n\n\nclass SubtractTest(unittest.TestCase):\n"
            "    def test_subtract(self):\n        self.assertEqual(subtract(5, 3), 2)\n")
    return (f"Task gw-1: Add subtract(a, b) to {target}\n\nDescription:\nAdd subtract(a, b) to {target}: a minus b.\n\n"
            f"The tests it must pass, test_subtract.py:\n```python\n{test}```\n\n{STANDING_INSTRUCTIONS}")


def _edit_agent(worktree: Path, server, target: str, task: str) -> EditAgent:
    git.init_repo(worktree)
    (worktree / target).parent.mkdir(parents=True, exist_ok=True)
    (worktree / target).write_text(CALC)
    git.commit_all(worktree, "calc")
    pool = pool_from_specs([{"url": server.url, "kind": "openai", "model": MODEL, "max_concurrency": 1}])
    return EditAgent(pool, worktree, Budget(max_steps=2), worktree.parent / "t.jsonl",
                     plan=edits.plan_edit(task, worktree), checks=[[sys.executable, "-m", "unittest", "-q"]])


# The model's first answer: when the checks call it, it puts a link where its own file (or the folder
# above it) was, leading outside the worktree, and fails, so that a second try follows.
PLANT_FILE_LINK = ("```python\ndef subtract(a, b):\n    import os\n    os.unlink(__file__)\n"
                   "    os.symlink({victim!r}, __file__)\n    return a + b\n")
PLANT_FOLDER_LINK = ("```python\ndef subtract(a, b):\n    import os, shutil\n    here = os.path.dirname(__file__)\n"
                     "    shutil.rmtree(here)\n    os.symlink({victim!r}, here)\n    return a + b\n")
RIGHT = "```python\ndef subtract(a, b):\n    return a - b\n"


def test_a_link_the_models_code_planted_at_its_file_is_never_written_or_read_through(tmp_path, servers):  # noqa: F811
    """Before each try the file is put back as it was, and the try's code merged into it: both
    wrote through a link the last try's code left there (the checks run that code), overwriting a
    file of the user's outside the worktree with the model's code."""
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    server = servers()
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply(PLANT_FILE_LINK.format(victim=str(victim))),
                  OpenAIProtocol.reply(RIGHT))
    worktree = tmp_path / "w"
    agent = _edit_agent(worktree, server, "calc.py", _task("calc.py", "calc"))
    with pytest.raises(Finished, match="after 2 tries"):
        asyncio.run(agent.run(_task("calc.py", "calc")))
    assert victim.read_text() == VICTIM_TEXT
    assert not (worktree / "calc.py").is_symlink() and "return a - b" in (worktree / "calc.py").read_text()
    bodies = server.bodies(OpenAIProtocol.chat_path)
    assert VICTIM_TEXT not in str(bodies)  # nor was the user's file shown to the model


def test_a_link_the_models_code_planted_in_place_of_a_folder_is_never_written_through(tmp_path, servers):  # noqa: F811
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "calc.py").write_text(VICTIM_TEXT)
    server = servers()
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply(PLANT_FOLDER_LINK.format(victim=str(outside))),
                  OpenAIProtocol.reply(RIGHT))
    worktree = tmp_path / "w"
    (worktree / "pkg").mkdir(parents=True)
    (worktree / "pkg" / "__init__.py").write_text("")
    agent = _edit_agent(worktree, server, "pkg/calc.py", _task("pkg/calc.py", "pkg.calc"))
    with pytest.raises(OSError):  # the file cannot be put back: the attempt fails, nothing is written
        asyncio.run(agent.run(_task("pkg/calc.py", "pkg.calc")))
    assert sorted(p.name for p in outside.iterdir()) == ["calc.py"]
    assert (outside / "calc.py").read_text() == VICTIM_TEXT


def test_a_task_cannot_point_the_edit_or_its_given_tests_outside_the_worktree(tmp_path):
    """Task text is not only the user's: agents suggest tasks. Neither the file to change nor a
    file the task gives in full may lie outside the worktree, in .git, or behind a link there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    worktree = tmp_path / "w"
    worktree.mkdir()
    (worktree / "link.py").symlink_to(outside / "victim.py")
    (worktree / "lib").symlink_to(outside)
    for named in ("link.py", "lib/mod.py", "../outside/victim.py", f"{outside}/victim.py", ".git/hooks/pre.py"):
        plan = edits.plan_edit(f"Task gw-1: Fix {named}\n", worktree)
        assert plan is None or plan.target not in (named, named.lstrip("/")), (named, plan)
    given = edits.plan_edit("Task gw-2: Fix calc.py\n\nlib/test_x.py:\n```python\nX = 1\n```\n", worktree)
    assert given is not None and given.given == {}


def test_model_text_never_reaches_the_check_commands(tmp_path):
    """The checks are the gate's argv: nothing of the model's reply or of the failure it caused is
    put on a command line, and no shell ever reads one."""
    marker = tmp_path / "ran"
    record = tmp_path / "argv.txt"
    check = [sys.executable, "-c", f"import sys; open({str(record)!r}, 'w').write(repr(sys.argv))", "x"]
    worktree = tmp_path / "w"
    worktree.mkdir()
    plan = edits.EditPlan("calc.py", function="subtract(a, b)")
    hostile = f'def subtract(a, b):\n    """$(touch {marker}); touch {marker} `touch {marker}`"""\n    return a - b\n'
    edits.apply(worktree, plan, hostile)
    assert edits.run_checks(worktree, [check], timeout=60) == (True, "")
    assert record.read_text() == repr(["-c", "x"]) and not marker.exists()


# -- the eval: hidden tests written into the agents' tree ---------------------------------------

HIDDEN = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_x(self):\n        pass\n"


def _tree_with_links(tmp_path: Path, links: dict[str, Path]) -> Path:
    """The final tree the eval exports from a branch that committed these links."""
    tree = tmp_path / "final"
    tree.mkdir()
    for name, target in links.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).symlink_to(target)
    return tree


def test_hidden_tests_written_into_the_tree_never_go_through_a_link_it_holds(tmp_path):
    """With a hidden_command the tests are written into the final tree, then removed: a link the
    branch committed at a test's path made the eval write the hidden tests where the branch chose
    (leaked, for the agents of a later run to read), and leave them there."""
    leak = tmp_path / "leak" / "test_hidden.py"
    leak.parent.mkdir()
    tree = _tree_with_links(tmp_path, {"test_hidden.py": leak})
    task = EvalTask("k", "t", "d", visible={}, hidden={"test_hidden.py": HIDDEN})
    command = [sys.executable, "-m", "unittest", "-q"]
    assert hidden_pass(tree, task, tmp_path / "unused", command)
    assert not leak.exists()
    assert not (tree / "test_hidden.py").exists()  # the tree put back (the link is the branch's, not needed)


def test_hidden_tests_fail_when_a_folder_of_their_path_is_a_link(tmp_path):
    """A link in place of the tests' folder had them written outside the tree (and run from there)."""
    outside, seen = tmp_path / "outside", tmp_path / "seen.txt"
    outside.mkdir()
    probe = f"import os; open({str(seen)!r}, 'w').write(repr(os.listdir({str(outside)!r})))"
    tree = _tree_with_links(tmp_path, {"tests": outside})
    task = EvalTask("k", "t", "d", visible={}, hidden={"tests/test_hidden.py": HIDDEN})
    assert not hidden_pass(tree, task, tmp_path / "unused", [sys.executable, "-c", probe])
    assert list(outside.iterdir()) == [] and not seen.exists()  # never written there, nor run at all


def test_a_module_the_branch_names_like_the_test_runner_never_stands_in_for_it(tmp_path):
    """The hidden tests run with the final tree as the working directory, so they import its code:
    a unittest.py the branch committed there was imported instead of the real runner, and every
    hidden test of the run passed, whatever the code did."""
    tree = tmp_path / "final"
    tree.mkdir()
    (tree / "calc.py").write_text("def add(a, b):\n    return 0\n")
    (tree / "unittest.py").write_text("raise SystemExit(0)\n")
    hidden = ("import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n    def test_add(self):\n"
              "        self.assertEqual(add(2, 2), 4)\n")
    task = EvalTask("k", "t", "d", visible={}, hidden={"test_hidden.py": hidden})
    assert not hidden_pass(tree, task, tmp_path / "hidden")
    (tree / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    assert hidden_pass(tree, task, tmp_path / "hidden2")  # the tree's own modules are still what the tests import


def _hostile_repo(tmp_path: Path, entries: str) -> tuple[Path, str]:
    """A repository whose commit holds a tree made with git's plumbing (`mktree` lines)."""
    repo = tmp_path / "repo"
    git.init_repo(repo)
    blob = git.run(["hash-object", "-w", "--stdin"], repo, stdin="planted\n").stdout.strip()
    inner = git.run(["mktree"], repo, stdin=f"100644 blob {blob}\tconfig\n").stdout.strip()
    tree = git.run(["mktree"], repo, stdin=entries.format(blob=blob, inner=inner)).stdout.strip()
    commit = git.run(["commit-tree", tree, "-m", "hostile"], repo, makes_commits=True).stdout.strip()
    return repo, commit


@pytest.mark.parametrize("name", ["..", ".git", ".GIT"])
def test_an_exported_tree_never_writes_above_or_into_git_dirs(tmp_path, name):
    """The eval exports the target branch's final tree (all the agents' work) with git: a tree entry
    named `..` or `.git` is refused, nothing is written outside the export."""
    repo, commit = _hostile_repo(tmp_path, f"040000 tree {{inner}}\t{name}\n100644 blob {{blob}}\tok.txt\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(GitError, match="invalid path"):
        git.export_tree(repo, commit, scratch / "final")
    assert [p.name for p in scratch.iterdir()] == ["final"] and not (scratch / "config").exists()


def test_a_patch_never_writes_outside_the_tree(tmp_path):
    """A patch applied to a tree (a suite's known solution, a scripted agent's change) is refused
    where it names a path above the tree or one behind a link the tree holds."""
    tree = tmp_path / "tree"
    git.init_repo(tree)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree / "lib").symlink_to(outside)
    for path in ("../outside/evil.py", "lib/evil.py", ".git/hooks/post-checkout"):
        patch = f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+planted\n"
        with pytest.raises(GitError):
            git.apply_patch(tree, patch)
    assert list(outside.iterdir()) == [] and not (tree / ".git" / "hooks" / "post-checkout").exists()


@pytest.mark.parametrize("relative", [True, False], ids=["relative to each folder", "each folder checked"])
def test_confined_files_are_never_reached_through_a_link(tmp_path, monkeypatch, relative):
    """Both ways gasworks.confined works (the second is Windows's, tried here on this system)."""
    monkeypatch.setattr(confined, "_RELATIVE", relative and confined._RELATIVE)
    root, outside = tmp_path / "in", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "victim.txt").write_text(VICTIM_TEXT)
    (root / "file.txt").symlink_to(outside / "victim.txt")
    (root / "folder").symlink_to(outside)
    for name in ("../x", "/etc/passwd", ""):
        with pytest.raises(OSError):
            confined.write_text(root, name, "x")
    assert confined.read_text(root, "file.txt") is None and confined.read_text(root, "folder/victim.txt") is None
    with pytest.raises(OSError):
        confined.write_text(root, "folder/victim.txt", "x")
    confined.remove(root, "folder/victim.txt")
    confined.write_text(root, "file.txt", "mine\n")
    confined.write_text(root, "new/deeper/file.txt", "deep\n")
    assert (outside / "victim.txt").read_text() == VICTIM_TEXT and sorted(os.listdir(outside)) == ["victim.txt"]
    assert not (root / "file.txt").is_symlink() and confined.read_text(root, "file.txt") == "mine\n"
    assert confined.read_text(root, "new/deeper/file.txt") == "deep\n"
    confined.remove(root, "file.txt")
    assert not (root / "file.txt").exists() and not (tmp_path / "x").exists()
