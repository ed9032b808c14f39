"""gasworks.worktrees: the pool of git worktrees, on real repositories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gasworks import git
from gasworks.config import Config
from gasworks.errors import GitError
from gasworks.project import ensure_excludes
from gasworks.worktrees import WorktreePool, branch_for


def registered(root: Path) -> set[Path]:
    return {Path(w["path"]).resolve() for w in git.worktrees(root)} - {root.resolve()}


def pool_of(root: Path, **settings) -> WorktreePool:
    return WorktreePool(root, Config(**{"num_workers": 3, **settings}))


def test_branch_for_prefixes_gasworks():
    assert branch_for("gw-a1b2.1") == "gasworks/gw-a1b2.1"


# -- ensure


def test_ensure_creates_inside_worktrees(repo):
    done = pool_of(repo).ensure("main")
    paths = [repo / "worktrees" / f"w{n}" for n in (1, 2, 3)]
    assert done == [f"created worktree w{n} at {p}" for n, p in zip((1, 2, 3), paths)]
    assert registered(repo) == {p.resolve() for p in paths}
    head = git.rev_parse(repo, "main")
    for path in paths:
        assert (path / "README.md").read_text() == "hello\n"
        assert git.rev_parse(path, "HEAD") == head


def test_second_ensure_creates_nothing_and_keeps_files(repo):
    pool_of(repo).ensure("main")
    note = repo / "worktrees" / "w2" / "note.txt"
    note.write_text("keep me\n")
    assert pool_of(repo).ensure("main") == []
    assert note.read_text() == "keep me\n"
    assert len(registered(repo)) == 3


def test_sibling_worktrees_use_the_repo_name(tmp_path):
    root = tmp_path / "parent" / "app"
    git.init_repo(root)
    (root / "a.txt").write_text("a\n")
    git.commit_all(root, "first")
    pool_of(root, num_workers=2, worktree_placement="sibling").ensure("main")
    assert sorted(p.name for p in root.parent.iterdir()) == ["app", "app-w1", "app-w2"]
    assert not (root / "worktrees").exists()
    assert registered(root) == {(root.parent / "app-w1").resolve(), (root.parent / "app-w2").resolve()}


def test_sibling_worktrees_with_a_custom_prefix(tmp_path):
    root = tmp_path / "parent" / "app"
    git.init_repo(root)
    (root / "a.txt").write_text("a\n")
    git.commit_all(root, "first")
    pool_of(root, num_workers=2, worktree_placement="sibling", worktree_prefix="agent-").ensure("main")
    assert sorted(p.name for p in root.parent.iterdir()) == ["agent-1", "agent-2", "app"]
    assert (root.parent / "agent-2" / "a.txt").read_text() == "a\n"


def test_stale_registration_is_pruned_and_recreated(repo):
    pool_of(repo).ensure("main")
    w2 = repo / "worktrees" / "w2"
    shutil.rmtree(w2)
    done = pool_of(repo).ensure("main")
    assert done == [f"created worktree w2 at {w2}"]
    assert (w2 / "README.md").read_text() == "hello\n"
    assert len(registered(repo)) == 3


def test_leftover_directory_with_files_is_refused_and_kept(repo):
    w1 = repo / "worktrees" / "w1"
    w1.mkdir(parents=True)
    (w1 / "precious.txt").write_text("mine\n")
    with pytest.raises(GitError) as info:
        pool_of(repo).ensure("main")
    assert str(w1) in str(info.value)
    assert (w1 / "precious.txt").read_text() == "mine\n"
    assert w1.resolve() not in registered(repo)


def test_leftover_file_in_a_slot_is_refused_and_kept(repo):
    w1 = repo / "worktrees" / "w1"
    w1.parent.mkdir()
    w1.write_text("notes\n")
    with pytest.raises(GitError):
        pool_of(repo, num_workers=1).ensure("main")
    assert w1.read_text() == "notes\n"


def test_separate_git_repository_in_a_slot_is_not_deleted(tmp_path):
    root = tmp_path / "parent" / "app"
    git.init_repo(root)
    (root / "a.txt").write_text("a\n")
    git.commit_all(root, "first")
    clone = root.parent / "app-w1"  # the user's own repository, named like a slot
    git.init_repo(clone)
    (clone / "precious.txt").write_text("mine\n")
    git.commit_all(clone, "someone else's work")
    with pytest.raises(GitError):
        pool_of(root, num_workers=1, worktree_placement="sibling").ensure("main")
    assert (clone / "precious.txt").read_text() == "mine\n"


def test_empty_leftover_directory_is_replaced(repo):
    w1 = repo / "worktrees" / "w1"
    w1.mkdir(parents=True)
    done = pool_of(repo, num_workers=1).ensure("main")
    assert done == [f"removed a stale worktree directory {w1}", f"created worktree w1 at {w1}"]
    assert (w1 / "README.md").read_text() == "hello\n"
    assert registered(repo) == {w1.resolve()}


# -- prepare


@pytest.fixture
def pool(repo):
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "code.py").write_text("x = 1\n")
    git.commit_all(repo, "ignore logs")
    ensure_excludes(repo)
    pool = pool_of(repo, num_workers=2)
    pool.ensure("main")
    return pool


def test_prepare_puts_the_slot_on_a_fresh_branch_at_base(repo, pool):
    (repo / "new.txt").write_text("new\n")
    base = git.commit_all(repo, "moved on")
    slot = pool.slots[0]
    assert pool.prepare(slot, "gw-a1b2", "main") == "gasworks/gw-a1b2"
    assert git.current_branch(slot.path) == "gasworks/gw-a1b2"
    assert git.rev_parse(slot.path, "HEAD") == base
    assert (slot.path / "new.txt").read_text() == "new\n"


def test_prepare_cleans_untracked_ignored_and_modified_files(pool):
    slot = pool.slots[0]
    (slot.path / "code.py").write_text("x = 2\n")
    (slot.path / "junk.txt").write_text("junk\n")
    (slot.path / "build.log").write_text("log\n")
    (slot.path / "sub").mkdir()
    (slot.path / "sub" / "deep.txt").write_text("deep\n")
    pool.prepare(slot, "gw-1", "main")
    assert (slot.path / "code.py").read_text() == "x = 1\n"
    assert not (slot.path / "junk.txt").exists()
    assert not (slot.path / "build.log").exists()
    assert not (slot.path / "sub").exists()
    assert not git.is_dirty(slot.path)


def test_second_prepare_for_another_task(repo, pool):
    slot = pool.slots[1]
    pool.prepare(slot, "gw-1", "main")
    (slot.path / "one.txt").write_text("one\n")
    first = git.commit_all(slot.path, "task one")
    assert pool.prepare(slot, "gw-2", "main") == "gasworks/gw-2"
    assert git.current_branch(slot.path) == "gasworks/gw-2"
    assert git.rev_parse(slot.path, "HEAD") == git.rev_parse(repo, "main")
    assert not (slot.path / "one.txt").exists()
    assert git.rev_parse(repo, "gasworks/gw-1") == first


def test_prepare_again_for_the_same_task_starts_over(repo, pool):
    slot = pool.slots[0]
    pool.prepare(slot, "gw-1", "main")
    (slot.path / "one.txt").write_text("one\n")
    git.commit_all(slot.path, "attempt one")
    pool.prepare(slot, "gw-1", "main")
    assert git.rev_parse(repo, "gasworks/gw-1") == git.rev_parse(repo, "main")
    assert not (slot.path / "one.txt").exists()


def test_prepare_refuses_a_task_id_that_is_no_branch_name(pool):
    with pytest.raises(GitError) as info:
        pool.prepare(pool.slots[0], "gw..1", "main")
    assert "'gw..1'" in str(info.value)


def test_root_checkout_is_never_changed(repo, pool):
    (repo / "code.py").write_text("x = 'dirty'\n")
    (repo / "scratch.txt").write_text("wip\n")
    head, branch = git.rev_parse(repo, "HEAD"), git.current_branch(repo)
    status = git.run(["status", "--porcelain", "--untracked-files=all"], repo).stdout
    for slot in pool.slots:
        pool.prepare(slot, f"gw-{slot.name}", "main")
        (slot.path / "code.py").write_text("x = 3\n")
        git.commit_all(slot.path, "work")
        pool.prepare(slot, f"gw-{slot.name}-again", "main")
    pool.ensure("main")
    assert git.rev_parse(repo, "HEAD") == head
    assert git.current_branch(repo) == branch == "main"
    assert (repo / "code.py").read_text() == "x = 'dirty'\n"
    assert (repo / "scratch.txt").read_text() == "wip\n"
    assert git.run(["status", "--porcelain", "--untracked-files=all"], repo).stdout == status
