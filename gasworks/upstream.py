"""Where finished work goes: the target branch in this repository (one host), or the target branch
on a shared git remote (several hosts, `remote = "origin"`). The dispatcher starts attempts from
`tip()` and `publish()`es finished branches; the refinery merges onto `tip()` and `move()`s the
target, always by compare-and-set, so a target that moved meanwhile is re-tested, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol

from gasworks import git
from gasworks.config import Config
from gasworks.errors import ConfigError
from gasworks.worktrees import BRANCH_PREFIX, target_branch, target_name

FETCH_EVERY_SECONDS = 1.0  # how stale the view of the remote may get between fetches
LANDING_FILE = "landing.json"  # a fast-forward of the user's checkout under way


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

    def drop(self, *branches: str) -> None:
        """Landed task branches are deleted (locally in one git call)."""

    def in_the_way(self, paths: list[str]) -> list[str]:
        """Those of a change's paths that landing would overwrite or delete in the user's checkout
        although they are not tracked there (ignored or untracked files)."""

    def repair(self) -> list[str]:
        """Repair what a landing killed halfway left behind; what was done."""


class LocalUpstream:
    """One host: the target is a branch of this repository, usually checked out by the user."""

    def __init__(self, root: Path, target: str, state_dir: Path | None = None) -> None:
        self.root, self.target = root, target
        self.state_dir = state_dir  # where a landing under way is noted (.gasworks/)
        self.common: Path | None = None  # the repository's git dir, once looked up

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
        refuses when they are in the way, and the merge is held); elsewhere a compare-and-set. Held
        too, with what to do, while the user's checkout is busy (a rebase, merge, bisect) or has
        untracked or ignored files that the landing would overwrite or delete."""
        busy = self._busy()
        if busy:
            return "held", busy
        checkout = self._checkout()
        if checkout is None:
            return ("landed", "") if git.update_ref(self.root, self.target, candidate, tip) else ("moved", "")
        if git.rev_parse(checkout, "HEAD") != tip:
            return "moved", ""
        paths = git.changed_paths(self.root, tip, candidate)
        in_way = untracked_in_the_way(checkout, paths)
        if in_way:
            return "held", f"{checkout} has untracked or ignored files where the change lands: " \
                           f"{', '.join(in_way[:10])}; move them away (gasworks never overwrites them)"
        with self._landing(checkout, tip, candidate, paths):
            done, why = git.fast_forward(checkout, candidate)
        if done:
            return "landed", ""
        return "held", f"{checkout} has local changes in the way ({why.splitlines()[-1] if why else ''}); " \
                       f"commit or stash them: {', '.join(_files_in(why)) or 'see git status'}"

    def in_the_way(self, paths: list[str]) -> list[str]:
        checkout = self._checkout()
        return untracked_in_the_way(checkout, paths) if checkout is not None else []

    def _checkout(self) -> Path | None:
        """Where the target is checked out (usually the user's checkout), if anywhere."""
        return next((Path(w["path"]) for w in git.worktrees(self.root) if w["branch"] == self.target), None)

    def _busy(self) -> str:
        """Why the target cannot move now: a checkout of it is in the middle of a rebase, merge,
        cherry-pick, revert or bisect (during a rebase or bisect of the target, HEAD is detached
        but the branch is still the user's)."""
        self.common = self.common or git.git_common_dir(self.root)
        for checkout, gitdir in git.checkout_gitdirs(self.root, self.common):
            on_target = git.busy_branch(gitdir) == self.target or _on(gitdir, self.target)
            found = git.unfinished(gitdir) if on_target else None
            if found:
                what, fix = found
                return f"in {checkout}, {what} on {self.target}: {fix}; the merge waits until then"
        return ""

    @contextlib.contextmanager
    def _landing(self, checkout: Path, tip: str, candidate: str, paths: list[str]) -> Iterator[None]:
        """A note that a fast-forward is under way, so that one killed halfway (a stale index.lock, a
        half-updated checkout) is repaired at the next start by repair()."""
        note = self.state_dir / LANDING_FILE if self.state_dir else None
        if note is not None:
            note.write_text(json.dumps({"checkout": str(checkout), "tip": tip, "candidate": candidate,
                                        "paths": paths}), encoding="utf-8", errors="surrogateescape")
        try:
            yield
        finally:
            if note is not None:
                note.unlink(missing_ok=True)

    def repair(self) -> list[str]:
        """After a crash during a landing: remove the index.lock the killed git left and put every
        file of the change back as HEAD has it (the fast-forward only ever touched those, and only
        when the user had no edits in them). Returns what was done."""
        note = self.state_dir / LANDING_FILE if self.state_dir else None
        if note is None or not note.exists():
            return []
        found = json.loads(note.read_text(encoding="utf-8", errors="surrogateescape"))
        checkout = Path(found["checkout"])
        done = [f"a landing in {checkout} was stopped halfway; repairing it"]
        gitdir = next((g for c, g in git.checkout_gitdirs(self.root) if c.resolve() == checkout.resolve()), None)
        if gitdir is not None and (gitdir / "index.lock").exists():
            (gitdir / "index.lock").unlink()
            done.append(f"removed the index.lock it left in {checkout}")
        restored = git.restore_paths(checkout, found["paths"], found["candidate"])
        if restored:
            done.append(f"put {len(restored)} file(s) back as {git.rev_parse(checkout, 'HEAD')[:12]} has them: "
                        f"{', '.join(restored[:10])}")
        note.unlink()
        return done

    def drop(self, *branches: str) -> None:
        if branches:
            git.run(["branch", "-D", *branches], self.root, check=False)


def untracked_in_the_way(checkout: Path, paths: list[str]) -> list[str]:
    """Paths (or their parent folders) that the change would create, replace or delete but that
    exist in the checkout untracked or ignored: git treats ignored files as expendable and would
    overwrite or remove them (a `.env`, a `.venv/`, gasworks's own `.gasworks/`)."""
    tracked = git.tracked_paths(checkout)
    found = []
    for name in paths:
        parts = PurePosixPath(name).parts
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            try:
                is_folder = stat.S_ISDIR(os.lstat(checkout / prefix).st_mode)
            except OSError:
                break  # nothing there: nothing below it either
            if depth == len(parts):  # the file itself: ours only if tracked (and not a folder now)
                if is_folder or prefix not in tracked:
                    found.append(prefix)
            elif not is_folder:  # a file or link where the change needs a folder
                if prefix not in tracked:
                    found.append(prefix)
                break  # never look through a link
    return sorted(set(found))


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

    def in_the_way(self, paths: list[str]) -> list[str]:
        return []  # no checkout here is updated: each host's users pull the target themselves

    def repair(self) -> list[str]:
        return []

    def drop(self, *branches: str) -> None:
        with self.lock:
            for branch in branches:
                git.delete_remote_branch(self.root, self.remote, branch)
                git.run(["update-ref", "-d", self.tracking(branch)], self.root, check=False)
            if branches:
                git.run(["branch", "-D", *branches], self.root, check=False)


def make_upstream(root: Path, config: Config, state_dir: Path | None = None) -> Upstream:
    """Where work lands; state_dir (.gasworks/) keeps the note of a landing under way."""
    if not config.remote:
        return LocalUpstream(root, target_branch(root, config, state_dir), state_dir=state_dir)
    if not git.has_remote(root, config.remote):
        raise ConfigError(f"remote = {config.remote!r}: this repository has no such git remote (git remote add "
                          f"{config.remote} URL)")
    target = target_name(root, config, state_dir)
    upstream = RemoteUpstream(root, config.remote, target)
    upstream.refresh(force=True)
    if not git.ref_exists(root, upstream.tracking(target)):
        raise ConfigError(f"target branch {target!r} does not exist on {config.remote}; push it or set `branch`")
    return upstream


def _on(gitdir: Path, branch: str) -> bool:
    """Whether the checkout of this git dir has branch checked out (its HEAD, read as git writes it)."""
    try:
        return (gitdir / "HEAD").read_text(encoding="utf-8").strip() == f"ref: refs/heads/{branch}"
    except OSError:
        return False


def _files_in(message: str) -> list[str]:
    """The file names git lists (indented by a tab) in a refusal message."""
    return [line.strip() for line in message.splitlines() if line.startswith("\t")]
