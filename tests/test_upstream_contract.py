"""The Upstream contract: one suite that both implementations pass. LocalUpstream (the target is a
branch of this repository, checked out by the user or nowhere) and RemoteUpstream (the target and
the task branches live on a shared bare repository, seen by two hosts' clones)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gasworks import git
from gasworks.upstream import LocalUpstream, RemoteUpstream, Upstream


@dataclass
class Setup:
    upstream: Upstream
    root: Path            # where this host works (branches are made here)
    other: Upstream       # the same target as another host (or another process) sees it
    other_root: Path


def commit_on(root: Path, base: str, name: str, branch: str | None = None) -> str:
    """A commit on base adding `name`, made without touching any checkout; on `branch` if given."""
    blob = git.run(["hash-object", "-w", "--stdin"], root, stdin=f"{name}\n").stdout.strip()
    base_tree = git.run(["rev-parse", f"{base}^{{tree}}"], root).stdout.strip()
    entries = git.run(["ls-tree", base_tree], root).stdout
    tree = git.run(["mktree"], root, stdin=entries + f"100644 blob {blob}\t{name}\n").stdout.strip()
    commit = git.run(["commit-tree", tree, "-p", base, "-m", f"add {name}"], root).stdout.strip()
    if branch:
        git.run(["branch", "-f", branch, commit], root)
    return commit


def local(tmp_path: Path, checked_out: bool) -> Setup:
    root = tmp_path / "repo"
    git.init_repo(root)
    (root / "README.md").write_text("hello\n", encoding="utf-8")
    git.commit_all(root, "initial")
    if not checked_out:
        git.run(["checkout", "-q", "--detach"], root)
    state = tmp_path / "state"
    state.mkdir()
    return Setup(LocalUpstream(root, "main", state_dir=state), root, LocalUpstream(root, "main"), root)


def remote(tmp_path: Path) -> Setup:
    bare, seed = tmp_path / "remote.git", tmp_path / "seed"
    git.run(["init", "-q", "--bare", "-b", "main", str(bare)], tmp_path)
    git.init_repo(seed)
    (seed / "README.md").write_text("hello\n", encoding="utf-8")
    git.commit_all(seed, "initial")
    git.run(["push", "-q", str(bare), "main"], seed)
    hosts = []
    for name in ("a", "b"):
        git.run(["clone", "-q", str(bare), str(tmp_path / name)], tmp_path)
        upstream = RemoteUpstream(tmp_path / name, "origin", "main")
        upstream.refresh(force=True)
        hosts.append(upstream)
    return Setup(hosts[0], tmp_path / "a", hosts[1], tmp_path / "b")


@pytest.fixture(params=["local-checked-out", "local-nowhere", "remote"])
def setup(request, tmp_path: Path) -> Setup:
    if request.param == "remote":
        return remote(tmp_path)
    return local(tmp_path, checked_out=request.param == "local-checked-out")


def test_tip_is_the_target_and_a_missing_branch_has_no_head(setup: Setup) -> None:
    assert setup.upstream.target == "main"
    assert setup.upstream.tip() == git.rev_parse(setup.root, "main")
    assert setup.upstream.head("gasworks/gw-none") is None


def test_a_published_branch_is_seen_by_the_other_side_and_can_be_taken(setup: Setup) -> None:
    head = commit_on(setup.root, setup.upstream.tip(), "one.txt", branch="gasworks/gw-1")
    setup.upstream.publish("gasworks/gw-1")
    assert setup.upstream.head("gasworks/gw-1") == head
    setup.other.refresh(force=True)
    assert setup.other.head("gasworks/gw-1") == head
    assert setup.other.take_branch("gasworks/gw-1") == head
    assert git.rev_parse(setup.other_root, "gasworks/gw-1") == head


def test_move_is_a_compare_and_set(setup: Setup) -> None:
    tip = setup.upstream.tip()
    first = commit_on(setup.root, tip, "one.txt")
    assert setup.upstream.move(tip, first)[0] == "landed"
    assert setup.upstream.tip() == first
    setup.other.refresh(force=True)
    assert setup.other.tip() == first
    # The other side still believes in the old tip: its move must not overwrite the landed commit.
    stale = commit_on(setup.root, tip, "two.txt")
    outcome, _ = setup.upstream.move(tip, stale)
    assert outcome == "moved"
    setup.upstream.refresh(force=True)
    assert setup.upstream.tip() == first


def test_a_move_by_the_other_side_is_seen_after_refresh_and_makes_ours_lose(setup: Setup) -> None:
    tip = setup.upstream.tip()
    theirs = commit_on(setup.other_root, tip, "theirs.txt")
    assert setup.other.move(tip, theirs)[0] == "landed"
    ours = commit_on(setup.root, tip, "ours.txt")
    assert setup.upstream.move(tip, ours)[0] == "moved"
    setup.upstream.refresh(force=True)
    assert setup.upstream.tip() == theirs


def test_dropped_branches_are_gone(setup: Setup) -> None:
    names = ["gasworks/gw-2", "gasworks/gw-3"]
    for name in names:
        commit_on(setup.root, setup.upstream.tip(), f"{name[-4:]}.txt", branch=name)
        setup.upstream.publish(name)
    setup.upstream.drop(*names)  # a batch's branches, at once
    setup.upstream.refresh(force=True)
    setup.other.refresh(force=True)
    for name in names:
        assert setup.upstream.head(name) is None and setup.other.head(name) is None


def test_nothing_in_the_way_and_nothing_to_repair_in_a_clean_setup(setup: Setup) -> None:
    assert setup.upstream.in_the_way(["one.txt", "dir/two.txt"]) == []
    assert setup.upstream.repair() == []
