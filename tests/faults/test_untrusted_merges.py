"""Attacks on the merges of agents' heads (git.merge_commit, used by the merge queue and the
pre-gate) and on the pre-gate itself, which runs in the agent's own slot worktree after the agent
left it in whatever state it liked. The agent's commits, worktree and anything it wrote are
hostile: here they are prepared directly (real git, real worktrees), then gasworks's step runs and
each test checks what must not happen."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from gasworks import git
from gasworks.errors import GitError
from gasworks.gate import pregate
from gasworks.project import find_project
from tests.faults.test_containment import drain_one, hostile_dispatcher, hostile_task, main_has
from tests.faults.test_sandbox import need_bwrap

BRANCH = "gasworks/gw-1"
PASSING = "import unittest\n\n\nclass Main(unittest.TestCase):\n    def test_main(self):\n        pass\n"
FAILING = "import unittest\n\n\nclass Branch(unittest.TestCase):\n    def test_branch(self):\n        self.fail('no')\n"
UNITTEST = [sys.executable, "-m", "unittest", "discover", "-q"]


def commit(place: git.Where, files: dict[str, str], message: str = "commit") -> str:
    for name, text in files.items():
        (git.where(place) / name).parent.mkdir(parents=True, exist_ok=True)
        (git.where(place) / name).write_text(text)
    return git.commit_all(place, message)


def slot(root: Path, tmp_path: Path, files: dict[str, str]) -> tuple[git.Tree, str]:
    """A slot worktree whose agent committed `files` on its branch (then, as the fleet does, the
    slot is detached), and the target's tip, which moved on meanwhile."""
    path = tmp_path / "w1"
    git.worktree_add(root, path, "main")
    tree = git.linked_tree(root, path)
    git.run(["checkout", "-q", "-b", BRANCH], tree)
    commit(tree, files, "the agent's work")
    git.detach_at(tree, "HEAD")
    return tree, commit(root, {"tip.txt": "the tip moved on\n"}, "meanwhile on main")


def run_pregate(root: Path, tree: git.Tree, tip: str, gate: list[list[str]], **settings):
    config = find_project(root, overrides={"gate": gate, **settings}).config
    return pregate(config, root, tree, tip, root / ".gasworks" / "logs")


def evil_gitdir(tmp_path: Path, marker: Path) -> Path:
    """A git dir of the agent's making: its config and hooks name a program that notes each run,
    and its HEAD a commit of its own whose tree passes any gate."""
    evil = tmp_path / "evil"
    git.init_repo(evil)
    commit(evil, {"test_ok.py": PASSING}, "what the agent wants gated")
    program = tmp_path / "program.sh"
    program.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\nexit 0\n")
    program.chmod(0o755)
    hooks = evil / ".git" / "hooks"
    for hook in ("post-checkout", "pre-commit", "post-merge", "reference-transaction"):
        shutil.copy(program, hooks / hook)
    with open(evil / ".git" / "config", "a") as config:
        config.write(f"[core]\n\tfsmonitor = {program}\n\thooksPath = {hooks}\n\tpager = {program}\n"
                     f"[diff]\n\texternal = {program}\n")
    return evil / ".git"


# A gate that asks git where it is: what it finds must be the merge gasworks made, in the git dirs
# gasworks computed (a gate command may well run git: a check for a clean tree, pre-commit, ...).
ASK_GIT = ("import json, subprocess, sys\n"
           "def git(*args):\n"
           "    return subprocess.run(['git', *args], capture_output=True, text=True).stdout.split()\n"
           "git('status', '--porcelain')\n"
           "json.dump([git('rev-parse', 'HEAD^1', 'HEAD^2'), git('rev-parse', '--absolute-git-dir'), git('ls-files')],"
           " open(sys.argv[1], 'w'))\n")


@pytest.mark.parametrize("form", ["file", "link", "folder"])
def test_the_pregate_never_follows_a_git_dir_the_agent_pointed_its_worktree_at(project_dir, tmp_path, form):
    """The agent makes its worktree's `.git` a file saying `gitdir: <its own git dir>`, a link to it,
    or that git dir itself: the gate's git must still see the branch merged onto the tip, in the
    git dirs gasworks computed, and no program that git dir names runs."""
    marker, seen = tmp_path / "ran", tmp_path / "seen.txt"
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": PASSING})
    head = git.rev_parse(tree, "HEAD")
    evil = evil_gitdir(tmp_path, marker)
    pointer = tree.path / ".git"
    pointer.unlink()
    if form == "file":
        pointer.write_text(f"gitdir: {evil}\n")
    elif form == "link":
        pointer.symlink_to(evil)
    else:
        shutil.copytree(evil, pointer, symlinks=True)
    gated = run_pregate(project_dir, tree, tip, [[sys.executable, "-c", ASK_GIT, str(seen)]])
    assert gated.passed, gated.tail
    parents, gitdir, files = json.loads(seen.read_text())
    assert parents == [tip, head] and gitdir == [str(tree.gitdir)]
    assert sorted(files) == ["README.md", "gasworks.toml", "test_branch.py", "tip.txt"]
    assert not marker.exists(), marker.read_text()
    assert pointer.read_text() == f"gitdir: {tree.gitdir}\n"  # and put back for good


@pytest.mark.parametrize("sandbox", ["none", pytest.param("bwrap", marks=pytest.mark.bwrap)])
def test_in_the_fleet_the_pregate_after_a_hostile_agent_runs_no_program_it_named(project_dir, tmp_path, sandbox):
    """The same, end to end: the hostile agent points its worktree's `.git` at a git dir of its own
    (config and hooks naming a program), the fleet takes its work and pre-gates it with a gate
    that runs git there."""
    if sandbox == "bwrap":
        need_bwrap()
    marker = tmp_path / "outside" / "ran"
    marker.parent.mkdir()
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox, pregate=True, gate=[["git", "status"]])
    ignored = ".evil/\nhook.sh\nhooks/\n"  # its git dir stays out of the work taken in
    task_id = hostile_task(dispatcher, "escape through .git", files={"work.txt": "work\n", ".gitignore": ignored},
                           evil_gitdir=str(marker))
    drain_one(dispatcher, task_id)
    pregates = dispatcher.store.pregate_totals()
    assert (pregates["runs"], pregates["failed"]) == (1, 0), dispatcher.store.attempts(task_id)
    assert not marker.exists(), marker.read_text()


def test_hooks_and_programs_in_the_repositorys_own_config_never_run_for_the_pregate(project_dir, tmp_path):
    """Unsandboxed, an agent can write the shared git dir's hooks and config: gasworks's own git
    commands (the merge, the checkout, the clean) run none of what they name."""
    marker = tmp_path / "ran"
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": PASSING})
    program = tmp_path / "program.sh"
    program.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\nexit 0\n")
    program.chmod(0o755)
    for hook in ("post-checkout", "post-merge", "pre-commit", "reference-transaction"):
        shutil.copy(program, tree.common / "hooks" / hook)
    for key in ("core.fsmonitor", "core.pager", "diff.external", "core.editor", "sequence.editor"):
        git.run(["config", key, str(program)], project_dir)
    assert run_pregate(project_dir, tree, tip, [UNITTEST]).passed
    assert not marker.exists(), marker.read_text()


LEFTOVERS = {
    "an ignored module that shadows unittest": ({".gitignore": "unittest.py\n"},
                                                {"unittest.py": "raise SystemExit(0)\n"}),
    "an edit to a tracked test, uncommitted": ({}, {"test_branch.py": PASSING}),
    "an ignored folder of tests": ({".gitignore": "cache/\n"}, {"cache/__init__.py": "",
                                                                  "cache/test_x.py": "raise SystemExit(0)\n"}),
}


@pytest.mark.parametrize("leftover", sorted(LEFTOVERS))
def test_nothing_the_agent_left_in_its_worktree_reaches_the_pregate(project_dir, tmp_path, leftover):
    """The branch's own test fails, and the agent leaves something in the worktree (ignored, so the
    fleet never commits it, or an edit) that would make the gate pass: the pre-gate runs on a clean
    checkout of the merge, so the branch fails there as it will in the merge queue."""
    committed, left = LEFTOVERS[leftover]
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": FAILING, **committed})
    for name, text in left.items():
        (tree.path / name).parent.mkdir(parents=True, exist_ok=True)
        (tree.path / name).write_text(text)
    gated = run_pregate(project_dir, tree, tip, [UNITTEST])
    assert not gated.passed and "test_branch" in gated.tail
    assert git.run(["status", "--porcelain", "--ignored"], tree).stdout == ""  # left clean afterwards


WRITE_OUTPUT = [sys.executable, "-c", "open('out.txt', 'w').write('the gate wrote this\\n')"]


def test_a_link_the_agent_left_in_its_worktree_never_makes_the_gate_write_outside(project_dir, tmp_path):
    """The gate writes a build output the project ignores; the agent leaves a link there to a file
    of the user's: the pre-gate's tree holds no link, so the file is left alone."""
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    commit(project_dir, {".gitignore": "out.txt\n"}, "ignore the build output")
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": PASSING})
    (tree.path / "out.txt").symlink_to(victim)
    assert run_pregate(project_dir, tree, tip, [WRITE_OUTPUT]).passed
    assert victim.read_text() == "the user's file\n"


@pytest.mark.bwrap
def test_a_link_the_branch_commits_never_makes_a_sandboxed_pregate_write_outside(project_dir, tmp_path):
    """The same link committed on the branch is part of the tree that is gated; under sandbox =
    "bwrap" the pre-gate's gate can write its own tree only, so what it writes through the link
    never reaches the user's file."""
    need_bwrap()
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": PASSING})
    (tree.path / "out.txt").symlink_to(victim)
    git.commit_all(tree, "a link out")
    git.detach_at(tree, "HEAD")
    run_pregate(project_dir, tree, tip, [WRITE_OUTPUT], sandbox="bwrap")  # it writes into a /tmp of its own
    assert victim.read_text() == "the user's file\n"


REWRITE_POINTER = ("import os, sys\nos.remove('.git')\nopen('.git', 'w').write('gitdir: ' + sys.argv[1] + '\\n')\n")


def test_a_gate_that_rewrites_the_git_file_leaves_it_pointing_where_gasworks_says(project_dir, tmp_path):
    """The gate runs the branch's code; unsandboxed it can rewrite the worktree's `.git`. Whether the
    slot is detached or on its branch, the pre-gate puts it back: git run there later (by the user,
    say) must not use the agent's git dir."""
    marker = tmp_path / "ran"
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": PASSING})
    git.run(["checkout", "-q", BRANCH], tree)  # on its branch this time
    evil = evil_gitdir(tmp_path, marker)
    assert run_pregate(project_dir, tree, tip, [[sys.executable, "-c", REWRITE_POINTER, str(evil)]]).passed
    assert (tree.path / ".git").read_text() == f"gitdir: {tree.gitdir}\n"
    assert git.current_branch(tree.path) == BRANCH


# -- the merge commit itself ----------------------------------------------------------------------

def tree_commit(root: Path, entries: str, parent: str) -> str:
    """A commit on parent whose tree the agent made with git's plumbing (`mktree` lines; `{blob}`,
    `{inner}` (a tree holding `config`) and `{link}` (a link's target, outside) filled in)."""
    blob = git.run(["hash-object", "-w", "--stdin"], root, stdin="[core]\n\tfsmonitor = planted\n").stdout.strip()
    link = git.run(["hash-object", "-w", "--stdin"], root, stdin=str(root.parent / "outside")).stdout.strip()
    inner = git.run(["mktree"], root, stdin=f"100644 blob {blob}\tconfig\n120000 blob {link}\tpost-checkout\n")
    tree = git.run(["mktree"], root, stdin=entries.format(blob=blob, inner=inner.stdout.strip(), link=link))
    return git.run(["commit-tree", tree.stdout.strip(), "-p", parent, "-m", "hostile"], root,
                   makes_commits=True).stdout.strip()


HOSTILE_TREES = {
    "a .. folder": "040000 tree {inner}\t..\n",
    "a .git folder": "040000 tree {inner}\t.git\n",
    "a .GIT folder": "040000 tree {inner}\t.GIT\n",
    "a link and a folder of one name": "120000 blob {link}\tout\n040000 tree {inner}\tout\n",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_TREES))
def test_a_tree_made_with_plumbing_is_merged_as_objects_and_never_checked_out_outside(project_dir, tmp_path, kind):
    """Unsandboxed, an agent's commits go into the repository unchecked: a tree naming `..` or
    `.git`, or a link and a folder under one name. The merge is made without a worktree; checking
    it out (pre-gate, merge queue) is refused or stays inside; no config, hook or outside file is
    written."""
    outside = project_dir.parent / "outside"
    outside.mkdir()
    config = (project_dir / ".git" / "config").read_bytes()
    hooks = sorted(os.listdir(project_dir / ".git" / "hooks"))
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": PASSING})
    base = git.rev_parse(tree, "HEAD")
    hostile = tree_commit(project_dir, HOSTILE_TREES[kind] + "100644 blob {blob}\tok.txt\n", base)
    merged = git.merge_commit(project_dir, tip, hostile, "the merge queue's merge")
    assert merged is not None
    try:
        git.clean_detach(tree, merged)
    except GitError as exc:
        assert "invalid path" in str(exc)
    assert list(outside.iterdir()) == [] and not (tree.path.parent / "config").exists()
    assert (project_dir / ".git" / "config").read_bytes() == config
    assert sorted(os.listdir(project_dir / ".git" / "hooks")) == hooks
    assert not (tree.gitdir / "config").exists() and not (tree.gitdir / "hooks").exists()


def test_a_committed_gitattributes_picks_no_merge_driver_for_the_merge_commit(project_dir, tmp_path):
    """The user defines a merge driver (for their own files); the branch's .gitattributes names it
    for every file, and both sides change the same file, so a merge runs the driver wherever the
    branch's attributes count. git.merge_commit reads attributes from the user's checkout only."""
    marker = tmp_path / "ran"
    git.run(["config", "merge.mine.driver", f"touch {marker}; false"], project_dir)
    commit(project_dir, {"shared.txt": "a\nb\nc\n"}, "a shared file")
    tree, _ = slot(project_dir, tmp_path, {".gitattributes": "* merge=mine\n", "shared.txt": "a\nb\nC\n"})
    tip = commit(project_dir, {"shared.txt": "A\nb\nc\n"}, "main changes it too")
    merged = git.merge_commit(project_dir, tip, git.rev_parse(tree, "HEAD"), "merge")
    assert merged is not None and not marker.exists()
    assert git.run(["show", f"{merged}:shared.txt"], project_dir).stdout == "A\nb\nC\n"
    # The attack is real: merged in a checkout of the branch, where its attributes count, it runs.
    git.run(["checkout", "-q", "--detach", git.rev_parse(tree, "HEAD")], tree)
    assert not git.merge(tree, tip, "merge")[0] and marker.exists()


def swapped_slot(root: Path, tmp_path: Path, name: str) -> tuple[git.Tree, str, Path]:
    """A slot whose agent, unsandboxed, swapped its whole worktree for a link to a folder of the
    user's holding the file `name`; (the tree, the tip, that folder)."""
    users = tmp_path / "users-folder"
    users.mkdir()
    (users / name).write_text("the user's own\n")
    tree, tip = slot(root, tmp_path, {"test_branch.py": PASSING})
    shutil.rmtree(tree.path)
    tree.path.symlink_to(users)
    return tree, tip, users


def test_a_worktree_the_agent_replaced_with_a_link_is_never_worked_in(project_dir, tmp_path):
    """The pre-gate's checkout and `git clean -ffdx` in a worktree swapped for a link wrote the
    branch's files into the user's folder and deleted everything else in it."""
    tree, tip, users = swapped_slot(project_dir, tmp_path, "thesis.tex")
    with pytest.raises(GitError, match="link"):
        run_pregate(project_dir, tree, tip, [UNITTEST])
    assert sorted(p.name for p in users.iterdir()) == ["thesis.tex"]


def test_the_work_of_an_agent_that_swapped_its_worktree_for_a_link_is_not_taken(project_dir, tmp_path):
    """Taking an agent's work commits what it left uncommitted: in a worktree swapped for a link,
    that committed the user's private files onto the branch, to be merged."""
    tree, _, users = swapped_slot(project_dir, tmp_path, "id_rsa")
    with pytest.raises(GitError, match="link"):
        git.commit_leftovers(tree, "changes left uncommitted by the agent")
    assert "id_rsa" not in git.run(["log", "--all", "--name-only", "--format="], project_dir).stdout
    assert sorted(p.name for p in users.iterdir()) == ["id_rsa"]


def test_a_huge_git_file_left_in_the_worktree_is_replaced_without_being_read(project_dir, tmp_path):
    """A sparse terabyte at `.git`: read whole to see whether it points where gasworks says, it raised
    MemoryError out of the pre-gate (and out of the next reset of the slot), ending `gasworks run`."""
    tree, tip = slot(project_dir, tmp_path, {"test_branch.py": PASSING})
    pointer = tree.path / ".git"
    pointer.unlink()
    with open(pointer, "wb") as handle:
        handle.truncate(1 << 40)
    assert run_pregate(project_dir, tree, tip, [UNITTEST]).passed
    assert pointer.read_text() == f"gitdir: {tree.gitdir}\n"


def test_a_huge_suggestions_file_is_taken_without_being_read_whole(project_dir):
    """The agent leaves a sparse terabyte where it may suggest follow-up tasks: read whole, it
    raised MemoryError out of taking the agent's work, ending `gasworks run`. Its first lines count."""
    dispatcher, _ = hostile_dispatcher(project_dir)
    task_id = hostile_task(dispatcher, "a terabyte of suggestions", files={"suggested_tasks.txt": "Write the docs\n",
                                                                         "a.txt": "a\n"},
                           sparse=["suggested_tasks.txt", 1 << 40])
    drain_one(dispatcher, task_id)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert "Write the docs" in [t.title for t in dispatcher.store.list_tasks()]
    assert main_has(project_dir, "a.txt") and not main_has(project_dir, "suggested_tasks.txt")
