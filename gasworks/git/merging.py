"""Merges, rebases and fast-forwards, and conflicts found without touching a worktree."""

from __future__ import annotations

import os
from pathlib import Path

from gasworks.errors import GitError
from gasworks.git.command import Where, run
from gasworks.git.refs import merge_base


def merge(path: Where, branch: str, message: str) -> tuple[bool, list[str]]:
    """Merge branch into what is checked out at path. Returns (merged, conflicting files); aborts on conflict."""
    merged, conflicts = merge_keeping_conflicts(path, branch, message)
    if not merged:
        run(["merge", "--abort"], path, check=False)
    return merged, conflicts


def merge_keeping_conflicts(path: Where, branch: str, message: str) -> tuple[bool, list[str]]:
    """Merge branch in at path; on conflict leave the merge in progress and return the conflicted files."""
    import tempfile  # here, like shutil below: the quick commands (`gasworks ready`) never load them

    # The message may hold task text, so it goes through a file, never the command line.
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".msg", delete=False) as handle:
        handle.write(message)
    try:
        result = run(["merge", "--no-ff", "--no-edit", "-F", handle.name, branch], path, check=False,
                     makes_commits=True)
    finally:
        os.unlink(handle.name)
    if result.returncode == 0:
        return True, []
    conflicts = run(["diff", "--name-only", "--diff-filter=U"], path, check=False).stdout.split()
    if not conflicts:
        run(["merge", "--abort"], path, check=False)  # nothing to resolve: leave no merge behind
        raise GitError(f"git merge failed: {(result.stderr or result.stdout).strip()}")
    return False, conflicts


def fast_forward(path: Where, commit: str) -> tuple[bool, str]:
    """`git merge --ff-only` at path (updates files too); git refuses if local edits would be overwritten.
    Never an autostash: re-applying the user's edits could leave conflict markers in their files."""
    result = run(["merge", "-q", "--ff-only", "--no-autostash", commit], path, check=False)
    return result.returncode == 0, (result.stderr or result.stdout).strip()


def trial_merge(path: Path, tip: str, head: str) -> list[str]:
    """Files that conflict when head is merged into tip, found without touching any worktree."""
    result = run(["merge-tree", "--write-tree", "--name-only", "--no-messages", tip, head], path, check=False)
    if result.returncode == 0:
        return []
    if result.returncode == 1:
        return [line for line in result.stdout.splitlines()[1:] if line.strip()]
    raise GitError(f"git merge-tree failed (git 2.38 or newer is needed): {result.stderr.strip()}")


def rebase_onto(path: Where, onto: str, head: str) -> bool:
    """Replay head's own commits onto `onto`, detached, at path. False (and aborted) on conflict."""
    base = merge_base(path, onto, head)
    result = run(["rebase", "-q", "--onto", onto, base, head], path, check=False, makes_commits=True)
    if result.returncode != 0:
        run(["rebase", "--abort"], path, check=False)
        return False
    return True


def conflict_markers(path: Where, old: str, new: str) -> list[str]:
    """`git diff --check` lines that report leftover conflict markers between two commits."""
    result = run(["diff", "--check", old, new], path, check=False)
    return [line for line in result.stdout.splitlines() if "conflict marker" in line]


def merge_commit(path: Where, ours: str, theirs: str, message: str) -> str | None:
    """The merge of theirs into ours made as a commit without touching any worktree (`merge-tree`,
    the same merge `git merge` makes); None when they conflict."""
    result = run(["merge-tree", "--write-tree", "--no-messages", ours, theirs], path, check=False)
    if result.returncode == 1:
        return None
    if result.returncode != 0:
        raise GitError(f"git merge-tree failed (git 2.38 or newer is needed): {result.stderr.strip()}")
    tree = result.stdout.split()[0]
    return run(["commit-tree", tree, "-p", ours, "-p", theirs, "-F", "-"], path, makes_commits=True,
               stdin=message).stdout.strip()


def enclose(path: Where, base: str, stacked: str, message: str) -> str:
    """One commit with stacked's tree whose first parent is base and second stacked: a batch
    stacked as several merges lands as one first-parent commit, the exact tree that was gated."""
    tree = run(["rev-parse", f"{stacked}^{{tree}}"], path).stdout.strip()
    return run(["commit-tree", tree, "-p", base, "-p", stacked, "-F", "-"], path, makes_commits=True,
               stdin=message).stdout.strip()
