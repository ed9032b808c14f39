"""A repository's history read for suites and exports: trees written out, patches made and applied."""

from __future__ import annotations

import os
from pathlib import Path

from gasworks.git.command import Where, run


def export_tree(repo: Path, rev: str, dest: Path) -> None:
    """Write the files of commit `rev` into `dest` (a new folder), leaving the repository's index,
    HEAD and checkout alone: the tree goes through an index file of its own."""
    dest.mkdir(parents=True)
    index = dest.parent / f".{dest.name}.index"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        run(["read-tree", rev], repo, env=env)
        run(["checkout-index", "-a", f"--prefix={dest}{os.sep}"], repo, env=env)
    finally:
        index.unlink(missing_ok=True)


def apply_patch(path: Where, patch: str) -> None:
    """Apply a unified diff to the checkout's files (not the index)."""
    run(["apply", "--whitespace=nowarn", "-"], path, stdin=patch)


def history(repo: Path, rev: str, count: int) -> list[str]:
    """The newest `count` commits reachable from rev that have exactly one parent, oldest first."""
    return run(["rev-list", "--min-parents=1", "--max-parents=1", f"--max-count={count}", "--reverse", rev, "--"],
               repo).stdout.split()


def commit_message(repo: Path, rev: str) -> str:
    return run(["log", "-1", "--format=%B", rev, "--"], repo).stdout.strip()


def file_at(repo: Path, rev: str, name: str) -> str | None:
    """A file's text at a commit; None when it has none there or it is not UTF-8 text."""
    found = run(["show", f"{rev}:{name}"], repo, check=False, errors="surrogateescape")
    if found.returncode != 0:
        return None
    try:
        found.stdout.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return found.stdout


def patch_between(repo: Path, base: str, head: str, paths: list[str]) -> str:
    """The patch from base to head of just these paths (binary changes included), for `git apply`."""
    return run(["diff", "--no-color", "--no-ext-diff", "--binary", base, head, "--", *paths], repo).stdout
