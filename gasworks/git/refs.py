"""Branches, refs and commits: read, compared, moved by compare-and-set."""

from __future__ import annotations

from pathlib import Path

from gasworks.errors import GitError
from gasworks.git.command import Where, run


def ref_exists(path: Path, ref: str) -> bool:
    return run(["show-ref", "--verify", "-q", ref], path, check=False).returncode == 0


def set_ref(path: Path, ref: str, commit: str) -> None:
    run(["update-ref", ref, commit], path)


def rev_parse(path: Where, rev: str) -> str:
    return run(["rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], path).stdout.strip()


def current_branch(path: Where) -> str:
    """The branch checked out at path, or "" when HEAD is detached."""
    result = run(["symbolic-ref", "-q", "--short", "HEAD"], path, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def branches(path: Path) -> list[str]:
    return run(["for-each-ref", "--format=%(refname:short)", "refs/heads/"], path).stdout.split()


def branch_exists(path: Path, name: str) -> bool:
    return run(["show-ref", "--verify", "-q", f"refs/heads/{name}"], path, check=False).returncode == 0


def valid_branch_name(path: Path, name: str) -> bool:
    return run(["check-ref-format", "--branch", name], path, check=False).returncode == 0


def update_ref(root: Path, branch: str, new: str, old: str) -> bool:
    """Compare-and-set a branch that is not checked out anywhere: moves only if it still points at old."""
    return run(["update-ref", f"refs/heads/{branch}", new, old], root, check=False).returncode == 0


def is_ancestor(path: Where, older: str, newer: str) -> bool:
    return run(["merge-base", "--is-ancestor", older, newer], path, check=False).returncode == 0


def merge_base(path: Where, a: str, b: str) -> str:
    """The best common ancestor of two commits; "" when they share no history. Any other failure
    (a commit not here yet: another host's branch not fetched; a lock) raises GitError: a branch is
    never judged unrelated because git could not answer."""
    result = run(["merge-base", a, b], path, check=False)
    if result.returncode == 1 and not result.stdout.strip():
        return ""
    if result.returncode != 0:
        raise GitError(f"git merge-base failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def commits_between(path: Where, base: str, head: str = "HEAD") -> list[str]:
    return run(["rev-list", "--reverse", f"{base}..{head}"], path).stdout.split()


def has_merge_commits(path: Where, base: str, head: str) -> bool:
    return bool(run(["rev-list", "--merges", f"{base}..{head}"], path).stdout.strip())


def same_tree(path: Where, a: str, b: str) -> bool:
    return run(["rev-parse", f"{a}^{{tree}}"], path).stdout == run(["rev-parse", f"{b}^{{tree}}"], path).stdout


def branch_heads(root: Path, folder: str) -> dict[str, str]:
    """The local branches under `folder` (as "gasworks/"), each with the commit it points at."""
    out = run(["for-each-ref", "--format=%(objectname) %(refname)", f"refs/heads/{folder}"], root).stdout
    return {ref.removeprefix("refs/heads/"): sha for sha, _, ref in (line.partition(" ") for line in out.splitlines())}


def delete_branch(root: Path, name: str, expected: str) -> bool:
    """Delete a branch if it still points at `expected` (compare-and-set); False if it moved."""
    return run(["update-ref", "-d", f"refs/heads/{name}", expected], root, check=False).returncode == 0
