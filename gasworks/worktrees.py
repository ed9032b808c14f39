"""The worktree pool: one git worktree per slot, made once and reused; never the user's own checkout."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gasworks import git
from gasworks.config import Config
from gasworks.errors import ConfigError, GitError

BRANCH_PREFIX = "gasworks/"


@dataclass(frozen=True)
class Slot:
    name: str   # w1 .. wN
    path: Path


def branch_for(task_id: str) -> str:
    return f"{BRANCH_PREFIX}{task_id}"


TARGET_FILE = "target"  # in .gasworks/: the branch work lands on, as the first run found it


def target_name(root: Path, config: Config, state_dir: Path | None = None) -> str:
    """The configured branch; else the one the first run here found checked out, kept in state_dir
    (so that checking out another branch later never sends queued work there); else the one checked
    out now."""
    if config.branch:
        return config.branch
    kept = state_dir / TARGET_FILE if state_dir is not None else None
    if kept is not None and kept.is_file():
        return kept.read_text(encoding="utf-8").strip() or "main"
    name = git.current_branch(root) or "main"
    if kept is not None and kept.parent.is_dir():
        git.write_new(kept, f"{name}\n".encode())
    return name


def target_branch(root: Path, config: Config, state_dir: Path | None = None) -> str:
    """target_name(), which must exist here."""
    name = target_name(root, config, state_dir)
    if not git.branch_exists(root, name):
        known = ", ".join(git.branches(root)) or "none (make a first commit)"
        raise ConfigError(f"target branch {name!r} does not exist (branches: {known}); set `branch` in "
                          f"gasworks.toml, or remove .gasworks/{TARGET_FILE} to use the branch checked out")
    return name


class WorktreePool:
    def __init__(self, root: Path, config: Config) -> None:
        self.root = Path(root)
        self.config = config
        self.slots = [Slot(f"w{n}", self._path(n)) for n in range(1, config.num_workers + 1)]
        self._trees: dict[str, git.Tree] = {}

    def tree(self, slot: Slot) -> git.Tree:
        """The slot's worktree with the git dirs computed from the repository, never from its .git
        file (which the agent working there can rewrite)."""
        if slot.name not in self._trees:
            self._trees[slot.name] = git.linked_tree(self.root, slot.path)
        return self._trees[slot.name]

    def _path(self, number: int) -> Path:
        if self.config.worktree_placement == "inside":
            return self.root / "worktrees" / f"w{number}"
        return self.root.parent / f"{self.config.worktree_stem(self.root)}{number}"

    def slot_number(self, path: Path) -> int | None:
        """The number of the pool's slot at path, also one beyond num_workers (a run with more
        workers made it), else None."""
        inside = self.config.worktree_placement == "inside"
        folder, stem = (self.root / "worktrees", "w") if inside else (self.root.parent,
                                                                       self.config.worktree_stem(self.root))
        path = Path(path)
        digits = path.name[len(stem):] if path.name.startswith(stem) else ""
        return int(digits) if digits.isdigit() and path.parent.resolve() == folder.resolve() else None

    def ensure(self, base: str) -> list[str]:
        """Create missing worktrees at `base`, after pruning stale registrations. Returns what was done."""
        git.worktree_prune(self.root)
        self._trees.clear()
        registered = {Path(w["path"]).resolve() for w in git.worktrees(self.root)}
        done = []
        for slot in self.slots:
            if slot.path.resolve() in registered:
                continue
            if slot.path.exists() or slot.path.is_symlink():
                if not self._is_leftover(slot.path):
                    raise GitError(f"{slot.path} exists and is not a worktree of this repository; move it away")
                shutil.rmtree(slot.path)
                done.append(f"removed a stale worktree directory {slot.path}")
            slot.path.parent.mkdir(parents=True, exist_ok=True)
            git.worktree_add(self.root, slot.path, base)
            done.append(f"created worktree {slot.name} at {slot.path}")
        return done

    def _is_leftover(self, path: Path) -> bool:
        """Only an empty directory, or a half-made worktree of this repository, may be removed: its
        `.git` is a file pointing into this repository's .git/worktrees/. Anything else is someone's."""
        if path.is_symlink() or not path.is_dir():
            return False
        if not any(path.iterdir()):
            return True
        marker = path / ".git"
        if not marker.is_file() or marker.is_symlink():
            return False
        text = marker.read_text(encoding="utf-8", errors="replace").strip()
        if not text.startswith("gitdir:"):
            return False
        gitdir = Path(text[len("gitdir:"):].strip())
        gitdir = (path / gitdir if not gitdir.is_absolute() else gitdir).resolve()
        return gitdir.parent == (git.git_common_dir(self.root) / "worktrees").resolve()

    def checkout(self, slot: Slot, branch: str) -> None:
        """Put the slot on an existing branch (a conflict task works on the branch it must fix)."""
        git.clean_checkout(self.tree(slot), branch)

    def prepare(self, slot: Slot, task_id: str, base: str) -> str:
        """Reset the slot to `base` on a fresh branch gasworks/<task-id>, untracked files removed."""
        branch = branch_for(task_id)
        if not git.valid_branch_name(self.root, branch):
            raise GitError(f"task id {task_id!r} does not make a valid branch name")
        git.reset_to(self.tree(slot), branch, base)
        return branch
