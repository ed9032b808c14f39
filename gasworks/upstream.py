"""Where finished work goes: the target branch in this repository (one host), or the target branch
on a shared git remote (several hosts, `remote = "origin"`). The dispatcher starts attempts from
`tip()` and `publish()`es finished branches; the refinery merges onto `tip()` and `move()`s the
target, always by compare-and-set, so a target that moved meanwhile is re-tested, never overwritten.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

from gasworks import git
from gasworks.config import Config
from gasworks.errors import ConfigError
from gasworks.worktrees import BRANCH_PREFIX, target_branch, target_name

FETCH_EVERY_SECONDS = 1.0  # how stale the view of the remote may get between fetches


class Upstream(Protocol):
    target: str

    def refresh(self, force: bool = False) -> None:
        """See what other hosts pushed (a no-op for one host)."""

    def tip(self) -> str: ...

    def head(self, branch: str) -> str | None:
        """The commit a task branch points at, as the refinery sees it; None when it is gone."""

    def publish(self, branch: str) -> None:
        """Make a finished branch visible to the refinery, wherever it runs."""

    def take_branch(self, branch: str) -> str:
        """Bring a task branch here to work on it (a conflict task); its commit."""

    def move(self, tip: str, candidate: str) -> tuple[str, str]:
        """Move the target from tip to candidate: ("landed" | "moved" | "held", why)."""

    def drop(self, branch: str) -> None:
        """A landed task branch is deleted."""


class LocalUpstream:
    """One host: the target is a branch of this repository, usually checked out by the user."""

    def __init__(self, root: Path, target: str) -> None:
        self.root, self.target = root, target

    def refresh(self, force: bool = False) -> None:
        pass

    def tip(self) -> str:
        return git.rev_parse(self.root, self.target)

    def head(self, branch: str) -> str | None:
        return git.rev_parse(self.root, branch) if git.branch_exists(self.root, branch) else None

    def publish(self, branch: str) -> None:
        pass

    def take_branch(self, branch: str) -> str:
        return git.rev_parse(self.root, branch)

    def move(self, tip: str, candidate: str) -> tuple[str, str]:
        """Where the target is checked out, `merge --ff-only` there (keeps unrelated local edits; git
        refuses when they are in the way, and the merge is held); elsewhere a compare-and-set."""
        checkout = next((Path(w["path"]) for w in git.worktrees(self.root) if w["branch"] == self.target), None)
        if checkout is None:
            return ("landed", "") if git.update_ref(self.root, self.target, candidate, tip) else ("moved", "")
        if git.rev_parse(checkout, "HEAD") != tip:
            return "moved", ""
        done, why = git.fast_forward(checkout, candidate)
        if done:
            return "landed", ""
        return "held", f"{checkout} has local changes in the way ({why.splitlines()[-1] if why else ''}); " \
                       f"commit or stash them: {', '.join(_files_in(why)) or 'see git status'}"

    def drop(self, branch: str) -> None:
        git.run(["branch", "-D", branch], self.root, check=False)


class RemoteUpstream:
    """Several hosts: the target and the finished task branches live on a shared remote (a bare
    repository). Task branches are pushed there; the target moves only by a push with a lease."""

    def __init__(self, root: Path, remote: str, target: str) -> None:
        self.root, self.remote, self.target = root, remote, target
        self.fetched_at = 0.0
        # The dispatcher and the refinery thread share this clone: two fetches at once fight over
        # the same remote-tracking refs, so every remote operation here takes this lock.
        self.lock = threading.RLock()

    def tracking(self, branch: str) -> str:
        return f"refs/remotes/{self.remote}/{branch}"

    def refresh(self, force: bool = False) -> None:
        with self.lock:
            if not force and time.monotonic() - self.fetched_at < FETCH_EVERY_SECONDS:
                return
            # Prune, so a landed branch another host deleted is gone here too.
            git.fetch(self.root, self.remote, ["--prune",
                                               f"+refs/heads/{self.target}:{self.tracking(self.target)}",
                                               f"+refs/heads/{BRANCH_PREFIX}*:{self.tracking(BRANCH_PREFIX)}*"])
            self.fetched_at = time.monotonic()

    def tip(self) -> str:
        return git.rev_parse(self.root, self.tracking(self.target))

    def head(self, branch: str) -> str | None:
        ref = self.tracking(branch)
        return git.rev_parse(self.root, ref) if git.ref_exists(self.root, ref) else None

    def publish(self, branch: str) -> None:
        with self.lock:
            git.push(self.root, self.remote, f"+refs/heads/{branch}:refs/heads/{branch}")
            git.set_ref(self.root, self.tracking(branch), git.rev_parse(self.root, branch))

    def take_branch(self, branch: str) -> str:
        with self.lock:
            self.refresh(force=True)
            head = self.head(branch)
            if head is None:
                raise ConfigError(f"{branch} is not on {self.remote}")
            git.run(["branch", "-f", branch, head], self.root)
            return head

    def move(self, tip: str, candidate: str) -> tuple[str, str]:
        with self.lock:
            landed, why = git.push_with_lease(self.root, self.remote, candidate, self.target, tip)
            if not landed:
                self.refresh(force=True)
                return "moved", why
            git.set_ref(self.root, self.tracking(self.target), candidate)
            return "landed", ""

    def drop(self, branch: str) -> None:
        with self.lock:
            git.delete_remote_branch(self.root, self.remote, branch)
            git.run(["branch", "-D", branch], self.root, check=False)
            git.run(["update-ref", "-d", self.tracking(branch)], self.root, check=False)


def make_upstream(root: Path, config: Config) -> Upstream:
    if not config.remote:
        return LocalUpstream(root, target_branch(root, config))
    if not git.has_remote(root, config.remote):
        raise ConfigError(f"remote = {config.remote!r}: this repository has no such git remote (git remote add "
                          f"{config.remote} URL)")
    target = target_name(root, config)
    upstream = RemoteUpstream(root, config.remote, target)
    upstream.refresh(force=True)
    if not git.ref_exists(root, upstream.tracking(target)):
        raise ConfigError(f"target branch {target!r} does not exist on {config.remote}; push it or set `branch`")
    return upstream


def _files_in(message: str) -> list[str]:
    """The file names git lists (indented by a tab) in a refusal message."""
    return [line.strip() for line in message.splitlines() if line.startswith("\t")]
