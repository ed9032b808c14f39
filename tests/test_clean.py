"""`gasworks clean`: the branches and worktrees finished tasks left behind go; nothing still in play does,
and nothing an agent left in a worktree (a `.git` file, a link) makes it remove anything outside."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from gasworks import git
from gasworks.project import find_project
from gasworks.worktrees import WorktreePool
from tests.fleet import add, drain, fake_script, make_dispatcher


def _branches(root: Path) -> set[str]:
    return set(git.branch_heads(root, "gasworks/"))


def test_clean_removes_branches_of_finished_tasks_and_keeps_those_still_in_play(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, max_attempts=1)
    store = dispatcher.store
    failed = add(dispatcher, "fails for good", description=fake_script(exit=3))
    drain(dispatcher)
    assert store.get_task(failed).status == "blocked"
    tip = git.rev_parse(project_dir, "HEAD")
    merged = add(dispatcher, "cancelled, its branch left behind")
    waiting = add(dispatcher, "open, its branch made by hand")
    queued = add(dispatcher, "closed, but a merge still waits on its branch")
    for task_id in (merged, waiting, queued):
        git.run(["branch", f"gasworks/{task_id}", tip], project_dir)
    store.enqueue_merge(queued, f"gasworks/{queued}", tip)
    for task_id in (merged, queued):
        store.close_task(task_id, actor="test")
    before = _branches(project_dir)
    assert {f"gasworks/{t}" for t in (merged, failed, waiting, queued)} == before

    planned = gw.json("clean", "--dry-run")
    assert sorted(planned["branches"]) == sorted([f"gasworks/{merged}", f"gasworks/{failed}"])
    assert any(f"gasworks/{queued}: a merge waits on it" in line for line in planned["left"])
    assert _branches(project_dir) == before  # a dry run changes nothing

    text = gw("clean").stdout
    assert f"deleted branch gasworks/{merged}" in text and f"left: branch gasworks/{queued}" in text
    assert _branches(project_dir) == before - {f"gasworks/{merged}", f"gasworks/{failed}"}
    assert json.loads(gw("clean", "--json").stdout)["done"] == []
    assert "nothing to clean" in gw("clean").stdout


def test_clean_leaves_the_branch_of_a_running_task(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    task_id = add(dispatcher, "runs long", description=fake_script(hang=True))
    dispatcher.tick(0)
    try:
        dispatcher.store.close_task(task_id, actor="test", force=True)  # cancelled while its agent runs
        planned = gw.json("clean", "--dry-run")
        assert planned["branches"] == []
        assert any(f"gasworks/{task_id}: a running attempt uses it" in line for line in planned["left"])
    finally:
        dispatcher.stop(hard=True)
        drain(dispatcher)


def _spare_slot(project_dir: Path, monkeypatch) -> Path:
    """Three slot worktrees made, then num_workers lowered to 2: the third is spare."""
    project = find_project(project_dir, overrides={"num_workers": 3})
    pool = WorktreePool(project.root, project.config)
    pool.ensure(git.rev_parse(project_dir, "HEAD"))
    monkeypatch.setenv("GASWORKS_NUM_WORKERS", "2")
    return pool.slots[2].path


def _precious(tmp_path: Path) -> Path:
    """Something of the user's outside the repository and its state."""
    outside = tmp_path / "precious"
    git.init_repo(outside)
    (outside / "thesis.txt").write_text("years of work\n", encoding="utf-8")
    git.commit_all(outside, "mine")
    return outside


def naive_clean(worktree: Path) -> None:
    """What a naive clean does: asks git inside the worktree for its git dir, removes the worktree
    where it really is, then that git dir."""
    found = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=worktree, capture_output=True,
                           text=True, check=False).stdout.strip()
    shutil.rmtree(os.path.realpath(worktree))
    if found and os.path.isdir(found):
        shutil.rmtree(found)


def test_clean_removes_a_spare_worktree_and_keeps_the_slots_in_use(gw, project_dir, monkeypatch):
    spare = _spare_slot(project_dir, monkeypatch)
    planned = gw.json("clean", "--dry-run")
    assert planned["worktrees"] == [str(spare)]
    assert f"removed worktree {spare}" in gw("clean").stdout
    assert not spare.exists()
    assert [Path(w["path"]).name[-1] for w in git.worktrees(project_dir)[1:]] == ["1", "2"]


def test_a_git_file_pointing_elsewhere_makes_a_naive_clean_delete_it_but_not_ours(gw, project_dir, tmp_path,
                                                                                   monkeypatch):
    outside = _precious(tmp_path)
    spare = _spare_slot(project_dir, monkeypatch)
    git.write_new(spare / ".git", f"gitdir: {outside / '.git'}\n".encode())  # what a hostile agent writes
    copy = tmp_path / "copy"
    shutil.copytree(spare, copy)
    naive_clean(copy)
    assert not (outside / ".git").exists()  # the naive clean deleted the user's other repository
    git.init_repo(outside)  # put it back for ours
    git.commit_all(outside, "mine")
    git.write_new(spare / ".git", f"gitdir: {outside / '.git'}\n".encode())

    assert f"removed worktree {spare}" in gw("clean").stdout
    assert (outside / ".git" / "HEAD").is_file() and (outside / "thesis.txt").is_file()
    assert git.rev_parse(outside, "HEAD")
    assert not spare.exists() and len(git.worktrees(project_dir)) == 3


def test_a_worktree_swapped_for_a_link_makes_a_naive_clean_delete_its_target_but_not_ours(gw, project_dir,
                                                                                          tmp_path, monkeypatch):
    outside = _precious(tmp_path)
    spare = _spare_slot(project_dir, monkeypatch)
    decoy = tmp_path / "decoy"
    shutil.copytree(outside, decoy)
    link = tmp_path / "link"
    link.symlink_to(decoy)
    naive_clean(link)
    assert not decoy.exists()  # the naive clean followed the link

    shutil.rmtree(spare)
    spare.symlink_to(outside)  # the slot's folder is now a link to the user's folder
    (outside / "escape").symlink_to(tmp_path)  # and a link inside it leads further out
    result = gw("clean")
    assert f"left: worktree {spare}: {spare} is not a folder" in result.stdout
    assert (outside / "thesis.txt").read_text() == "years of work\n" and (tmp_path / "precious").is_dir()


def test_links_inside_a_worktree_and_attempt_dirs_are_removed_not_followed(gw, project_dir, tmp_path, monkeypatch):
    outside = _precious(tmp_path)
    spare = _spare_slot(project_dir, monkeypatch)
    (spare / "escape").symlink_to(outside)
    (spare / "deep").mkdir()
    (spare / "deep" / "thesis.txt").symlink_to(outside / "thesis.txt")
    attempts = project_dir / ".gasworks" / "attempts"
    attempts.mkdir()
    (attempts / "41").symlink_to(outside)  # a crashed sandboxed attempt's folder, swapped for a link
    (attempts / "42").mkdir()
    (attempts / "42" / "git").symlink_to(outside / ".git")
    text = gw("clean").stdout
    assert f"removed {attempts / '41'}" in text and f"removed {attempts / '42'}" in text
    assert not spare.exists() and not list(attempts.iterdir())
    assert (outside / "thesis.txt").read_text() == "years of work\n" and (outside / ".git" / "HEAD").is_file()
