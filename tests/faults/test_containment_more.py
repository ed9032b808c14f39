"""Containment, second round: attacks beyond the ones first reported (.gitattributes, .gitmodules,
odd paths, FIFOs, huge files, hard links, replace refs, history tricks). Each one by the hostile
`command` agent (tests/faults/hostile_agent.py) against real git and, where it matters, bubblewrap;
each test states what must (not) happen."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from gasworks import git
from tests.faults.test_containment import drain_one, hostile_dispatcher, hostile_task, main_has, merge_statuses
from tests.faults.test_sandbox import need_bwrap


def sandboxes() -> list:
    return ["none", pytest.param("bwrap", marks=pytest.mark.bwrap)]


@pytest.fixture(autouse=True)
def _bwrap_when_asked(request):
    if request.node.get_closest_marker("bwrap"):
        need_bwrap()


@pytest.mark.parametrize("sandbox", sandboxes())
def test_gitattributes_and_gitmodules_name_no_program_that_runs(project_dir, tmp_path, sandbox):
    """A committed .gitattributes names filter/diff/merge drivers and a .gitmodules an ext:: URL,
    while the user's own config recurses into submodules: nothing runs, the change lands as files."""
    marker = tmp_path / "ran"
    git.run(["config", "submodule.recurse", "true"], project_dir)
    git.run(["config", "filter.evil.smudge", f"touch {marker}"], project_dir)  # as if the user had one
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox)
    modules = f'[submodule "x"]\n\tpath = x\n\turl = ext::sh -c touch% {marker}\n'
    task_id = hostile_task(dispatcher, "attributes and modules", commit=True, gitlink="x",
                           files={".gitattributes": "* diff=evil merge=evil\nREADME.md filter=none\n",
                                  ".gitmodules": modules})
    drain_one(dispatcher, task_id)
    assert not marker.exists()
    assert dispatcher.store.get_task(task_id).status == "closed" and main_has(project_dir, ".gitmodules")


@pytest.mark.parametrize("sandbox", sandboxes())
def test_a_fifo_left_in_the_worktree_is_neither_read_nor_committed(project_dir, sandbox):
    """A FIFO where gasworks reads suggestions: reading it would block the run for good."""
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox)
    task_id = hostile_task(dispatcher, "a fifo", fifo="suggested_tasks.txt", files={"a.txt": "a\n"})
    drain_one(dispatcher, task_id)
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert main_has(project_dir, "a.txt") and not main_has(project_dir, "suggested_tasks.txt")


@pytest.mark.parametrize("sandbox", sandboxes())
def test_a_huge_file_fails_the_attempt_without_being_read(project_dir, sandbox):
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox, max_file_mb=10)
    task_id = hostile_task(dispatcher, "two gigabytes", sparse=["huge.bin", 2 << 30])
    started = time.monotonic()
    drain_one(dispatcher, task_id)
    attempt = dispatcher.store.attempts(task_id)[0]
    assert attempt.outcome == "failed" and "huge.bin (2048 MiB)" in attempt.note, attempt
    assert time.monotonic() - started < 60
    assert git.run(["count-objects", "-v"], project_dir).stdout.count("size-pack: 0")


def test_a_huge_file_committed_in_the_sandbox_is_refused_before_it_is_fetched(project_dir):
    need_bwrap()
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox="bwrap", max_file_mb=1)
    task_id = hostile_task(dispatcher, "commit 3 MiB", files={"big.txt": "x" * (3 << 20)}, commit=True)
    drain_one(dispatcher, task_id)
    attempt = dispatcher.store.attempts(task_id)[0]
    assert attempt.outcome == "failed" and "big.txt (3 MiB)" in attempt.note, attempt
    objects = git.run(["count-objects", "-v"], project_dir).stdout
    assert int(objects.split("size: ")[1].split()[0]) < 1024, objects  # KiB of loose objects


@pytest.mark.parametrize("sandbox", sandboxes())
def test_a_huge_file_added_and_removed_again_is_refused_too(project_dir, sandbox):
    """Only the branch's history holds it (the tree at its head does not): it would still land."""
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox, max_file_mb=1)
    task_id = hostile_task(dispatcher, "history only", history_big=3 << 20)
    drain_one(dispatcher, task_id)
    attempt = dispatcher.store.attempts(task_id)[0]
    assert attempt.outcome == "failed" and "in its history" in attempt.note, attempt


def test_a_hard_link_out_of_the_sandbox_cannot_be_made(project_dir, tmp_path):
    need_bwrap()
    target = tmp_path / "users-file"
    target.write_text("the user's\n")
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox="bwrap")
    task_id = hostile_task(dispatcher, "hard link", hardlink=["linked", str(target)], files={"a.txt": "a\n"},
                           commit=True)
    drain_one(dispatcher, task_id)
    log = Path(dispatcher.store.attempts(task_id)[0].log_path).read_text()
    assert "FAILED hardlink" in log
    assert target.read_text() == "the user's\n" and os.stat(target).st_nlink == 1


def test_a_path_too_long_for_the_file_system_goes_back_without_stalling_the_queue(project_dir):
    """A branch (made with git's plumbing, as no checkout can hold it) whose path is longer than any
    file system takes: git cannot merge it in the integration tree; the branch is refused, and the
    queue goes on."""
    from gasworks.store import NewTask
    from tests.faults.hostile_agent import long_path

    side = project_dir.parent / "side"
    git.run(["worktree", "add", "-q", "-b", "gasworks/gw-long", str(side), "main"], project_dir)
    long_path(side, 25)
    dispatcher, _ = hostile_dispatcher(project_dir)
    store = dispatcher.store
    task = store.create_task(NewTask("long path"), prefix="gw", actor="test")
    store.transition(task.id, "merging", actor="test")
    store.enqueue_merge(task.id, "gasworks/gw-long", git.rev_parse(side, "HEAD"))
    follow = hostile_task(dispatcher, "the next one lands", files={"b.txt": "b\n"}, commit=True)
    drain_one(dispatcher, follow)

    assert merge_statuses(dispatcher, task.id) == ["refused"]
    assert "could not apply" in store.get_task(task.id).notes
    assert dispatcher.store.get_task(follow).status == "closed"


@pytest.mark.parametrize("sandbox", sandboxes())
def test_a_commit_no_checkout_can_hold_fails_the_attempt_not_the_run(project_dir, sandbox):
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox)
    task_id = hostile_task(dispatcher, "long path", long_path=25)
    drain_one(dispatcher, task_id)
    assert dispatcher.store.attempts(task_id)[0].outcome in ("no_change", "failed")
    assert not main_has(project_dir, "deep")


def test_odd_names_land_as_plain_files(project_dir):
    """Newlines, a case-only twin of README.md, a name that looks like an option, and 3,000 files."""
    many = {f"many/f{n:04}.txt": f"{n}\n" for n in range(3000)}
    odd = {"a\nb.txt": "newline\n", "readme.md": "twin\n", "--help": "option\n", "sp ace\t.txt": "tab\n"}
    dispatcher, _ = hostile_dispatcher(project_dir)
    task_id = hostile_task(dispatcher, "odd names", files={**odd, **many}, commit=True)
    drain_one(dispatcher, task_id, limit=120)
    assert dispatcher.store.get_task(task_id).status == "closed"
    for name, text in odd.items():
        assert (project_dir / name).read_text() == text
    assert (project_dir / "README.md").read_text() == "hello\n"
    assert len(list((project_dir / "many").iterdir())) == 3000


def test_a_replace_ref_made_in_the_sandbox_never_reaches_the_repository(project_dir):
    need_bwrap()
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox="bwrap")
    task_id = hostile_task(dispatcher, "replace README", replace=["main:README.md", "replaced\n"],
                           files={"a.txt": "a\n"}, commit=True)
    drain_one(dispatcher, task_id)
    assert "DONE replace" in Path(dispatcher.store.attempts(task_id)[0].log_path).read_text()
    assert not git.run(["for-each-ref", "refs/replace/"], project_dir).stdout.strip()
    shown = subprocess.run(["git", "show", "main:README.md"], cwd=project_dir, capture_output=True, text=True)
    assert shown.stdout == "hello\n"  # the user's own git, which would honour a replace ref


def test_a_commit_dated_in_the_future_lands_like_any_other(project_dir, monkeypatch):
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2099-01-01T00:00:00")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2099-01-01T00:00:00")
    dispatcher, _ = hostile_dispatcher(project_dir)
    task_id = hostile_task(dispatcher, "from the future", files={"future.txt": "x\n"}, commit=True)
    drain_one(dispatcher, task_id)
    assert dispatcher.store.get_task(task_id).status == "closed" and main_has(project_dir, "future.txt")


@pytest.mark.parametrize("sandbox", sandboxes())
def test_a_nested_repository_left_in_the_worktree_is_not_followed(project_dir, tmp_path, sandbox):
    """An agent leaves sub/.git (a repository of its own, with hooks that would write a marker):
    gasworks records it at most as a submodule entry and runs nothing of it."""
    marker = tmp_path / "ran"
    hook = f"#!/bin/sh\necho ran >> {marker}\n"
    dispatcher, _ = hostile_dispatcher(project_dir, sandbox=sandbox)
    files = {"sub/.git/HEAD": "ref: refs/heads/main\n", "sub/.git/config": f"[core]\n\tfsmonitor = {marker}.sh\n",
             "sub/.git/hooks/post-checkout": hook, "sub/work.txt": "w\n", "top.txt": "t\n"}
    task_id = hostile_task(dispatcher, "nested repository", files=files)
    drain_one(dispatcher, task_id)
    assert not marker.exists()
    assert not main_has(project_dir, "sub/.git/config")
