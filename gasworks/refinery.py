"""Merging finished branches into the target branch, one at a time, never through the user's checkout.

This is the simple merge step: merge the branch onto the current tip in a dedicated integration
worktree, then move the target to that commit. Where the target is checked out (usually the
user's own checkout) it is advanced there with `git merge --ff-only`, which updates its files and
keeps unrelated local edits; git refuses when local edits touch incoming files, and then the merge
is held, nothing lost, until the user commits or stashes. Where the target is checked out nowhere,
a compare-and-set `update-ref` moves it, so a target that moved meanwhile is never overwritten.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from gasworks import git


class MergeOutcome(str, enum.Enum):
    MERGED = "merged"
    CONFLICT = "conflict"  # the branch does not merge cleanly onto the tip
    HELD = "held"          # the target's checkout has local edits in the way; try again later
    MOVED = "moved"        # the target moved while merging; try again at once


@dataclass
class MergeResult:
    outcome: MergeOutcome
    commit: str = ""
    files: list[str] = field(default_factory=list)
    message: str = ""


class Refinery:
    def __init__(self, root: Path, target: str, integration: Path, lock_file: Path) -> None:
        self.root = Path(root)
        self.target = target
        self.integration = Path(integration)
        self.lock = FileLock(str(lock_file))

    def ensure(self) -> None:
        registered = {Path(w["path"]).resolve() for w in git.worktrees(self.root)}
        if self.integration.resolve() not in registered:
            git.worktree_add(self.root, self.integration, git.rev_parse(self.root, self.target))

    def merge(self, branch: str, message: str, attempts: int = 3) -> MergeResult:
        """Merge branch into the target. Retries a few times when someone else moved the target meanwhile."""
        with self.lock:
            result = MergeResult(MergeOutcome.MOVED)
            for _ in range(attempts):
                result = self._merge_once(branch, message)
                if result.outcome is not MergeOutcome.MOVED:
                    break
            return result

    def _merge_once(self, branch: str, message: str) -> MergeResult:
        tip = git.rev_parse(self.root, self.target)
        git.detach_at(self.integration, tip)
        merged, conflicts = git.merge(self.integration, branch, message)
        if not merged:
            return MergeResult(MergeOutcome.CONFLICT, files=conflicts,
                               message=f"conflicts with {self.target} in {', '.join(conflicts)}")
        new = git.rev_parse(self.integration, "HEAD")
        checkout = self._checkout_of_target()
        if checkout is None:
            if git.update_ref(self.root, self.target, new, tip):
                return MergeResult(MergeOutcome.MERGED, new)
            return MergeResult(MergeOutcome.MOVED, message=f"{self.target} moved during the merge")
        if git.rev_parse(checkout, "HEAD") != tip:
            return MergeResult(MergeOutcome.MOVED, message=f"{self.target} moved during the merge")
        done, why = git.fast_forward(checkout, new)
        if done:
            return MergeResult(MergeOutcome.MERGED, new)
        return MergeResult(MergeOutcome.HELD, message=f"{checkout} has local changes in the way of the merge "
                                                       f"(commit or stash them): {why}")

    def _checkout_of_target(self) -> Path | None:
        for entry in git.worktrees(self.root):
            if entry["branch"] == self.target:
                return Path(entry["path"])
        return None
