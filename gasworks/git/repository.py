"""The repository around a path: its main checkout, git dirs, checkouts, and what is unfinished in them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from gasworks.errors import NotARepoError
from gasworks.git.command import run


def main_root(path: Path) -> Path:
    """The main checkout of the repository containing `path`, even from inside a linked worktree."""
    path = Path(path)
    if not path.is_dir():
        raise NotARepoError(f"{path} is not a directory")
    plain = _plain_checkout(path)
    if plain is not None:
        return plain
    result = run(["rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"], path, check=False)
    if result.returncode != 0:
        raise NotARepoError(f"{path} is not inside a git repository (run `git init` first)")
    lines = result.stdout.splitlines()
    if len(lines) < 2:
        raise NotARepoError(f"{path} is inside a bare git repository; gasworks needs a checkout")
    common = Path(lines[0])
    return common.parent if common.name == ".git" else Path(lines[1])


def _plain_checkout(path: Path) -> Path | None:
    """The top of the ordinary checkout around path, as `git rev-parse --show-toplevel` gives it, read
    from the file system without starting git: the nearest folder holding a `.git` folder that is a
    repository of this user's with the default layout. None wherever git must say: a `.git` file (a
    linked worktree, a submodule), a `.git` link, core.worktree or a bare flag in its config, another
    owner (git's safe.directory check), a path inside a `.git` folder, or no `.git` found."""
    real = path.resolve()
    if ".git" in real.parts or not hasattr(os, "getuid"):
        return None
    for folder in (real, *real.parents):
        dot = folder / ".git"
        if not (dot.exists() or dot.is_symlink()):
            continue
        if dot.is_symlink() or not dot.is_dir() or dot.stat().st_uid != os.getuid() \
                or not (dot / "HEAD").is_file() or not (dot / "objects").is_dir():
            return None
        try:
            config = (dot / "config").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return folder if not _UNUSUAL_LAYOUT.search(config) else None
    return None


# Config lines that may move the work tree away from the folder holding `.git` (a bare line other
# than the `bare = false` git init writes, a worktree line, an included file): git is asked instead.
_UNUSUAL_LAYOUT = re.compile(r"^\s*(?:worktree\b|bare\b(?!\s*=\s*false\s*$)|\[include)", re.IGNORECASE | re.MULTILINE)


def git_common_dir(root: Path) -> Path:
    return Path(run(["rev-parse", "--path-format=absolute", "--git-common-dir"], root).stdout.strip())


def toplevel(path: Path) -> Path:
    """The root of the checkout (main or linked worktree) that contains `path`."""
    result = run(["rev-parse", "--show-toplevel"], path, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise NotARepoError(f"{path} is not inside a git checkout (run it in a clone or a worktree)")
    return Path(result.stdout.strip())


def user_name(path: Path) -> str:
    return run(["config", "--get", "user.name"], path, check=False).stdout.strip()


def init_repo(path: Path, branch: str = "main") -> None:
    path.mkdir(parents=True, exist_ok=True)
    run(["init", "-q", "-b", branch], path)


def commit_paths(worktree: Path, branch_folder: str) -> list[Path]:
    """What `git commit` in a linked worktree writes outside it: the worktree's own admin folder,
    the object store, and the ref and reflog folders of branches under branch_folder."""
    lines = run(["rev-parse", "--path-format=absolute", "--absolute-git-dir", "--git-common-dir"],
                worktree).stdout.splitlines()
    admin, common = Path(lines[0]), Path(lines[1])
    paths = [admin, common / "objects", common / "refs" / "heads" / branch_folder,
             common / "logs" / "refs" / "heads" / branch_folder]
    for folder in paths:
        folder.mkdir(parents=True, exist_ok=True)
    return paths


def checkout_gitdirs(root: Path, common: Path | None = None) -> list[tuple[Path, Path]]:
    """(checkout, its git dir) for the main checkout and every linked worktree of the repository
    (whose common git dir may be given, known already)."""
    common = common or git_common_dir(root)
    found = [(root, common)]
    admin_root = common / "worktrees"
    for admin in sorted(admin_root.iterdir()) if admin_root.is_dir() else []:
        try:
            found.append((Path((admin / "gitdir").read_text(encoding="utf-8").strip()).parent, admin))
        except OSError:
            continue
    return found


# What a checkout's git dir holds while an operation is unfinished, and what the user does about it.
_UNFINISHED = (
    ("rebase-merge", "a rebase is in progress", "finish it with `git rebase --continue` or `git rebase --abort`"),
    ("rebase-apply", "a rebase or `git am` is in progress", "finish it (`git rebase --continue`, `git am "
                                                             "--continue`) or abort it"),
    ("MERGE_HEAD", "a merge is in progress", "commit it or run `git merge --abort`"),
    ("CHERRY_PICK_HEAD", "a cherry-pick is in progress", "run `git cherry-pick --continue` or `--abort`"),
    ("REVERT_HEAD", "a revert is in progress", "run `git revert --continue` or `--abort`"),
    ("BISECT_LOG", "a bisect is in progress", "end it with `git bisect reset`"),
    ("index.lock", "its index is locked (a git command runs, or one was killed)",
     "wait for it; if no git command runs, remove the index.lock file"),
)


def unfinished(gitdir: Path) -> tuple[str, str] | None:
    """(what, what to do) when the checkout of this git dir is in the middle of something."""
    for name, what, fix in _UNFINISHED:
        if (gitdir / name).exists():
            return what, fix
    return None


def busy_branch(gitdir: Path) -> str:
    """The branch a rebase or bisect in progress in this git dir works on ("" if none): HEAD is
    detached meanwhile, but the branch is still the user's."""
    for name in ("rebase-merge/head-name", "rebase-apply/head-name", "BISECT_START"):
        try:
            return (gitdir / name).read_text(encoding="utf-8").strip().removeprefix("refs/heads/")
        except OSError:
            continue
    return ""
