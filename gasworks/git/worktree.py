"""Linked worktrees: listed, added, reset, repaired, and their `.git` pointers kept as gasworks made them."""

from __future__ import annotations

import os
from pathlib import Path

from gasworks.errors import GitError
from gasworks.git.command import Tree, Where, run
from gasworks.git.repository import checkout_gitdirs, git_common_dir


def worktrees(root: Path) -> list[dict[str, str]]:
    """Registered worktrees: [{path, head, branch}], the main checkout first."""
    entries: list[dict[str, str]] = []
    for line in run(["worktree", "list", "--porcelain"], root).stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            entries.append({"path": value, "head": "", "branch": ""})
        elif key == "HEAD" and entries:
            entries[-1]["head"] = value
        elif key == "branch" and entries:
            entries[-1]["branch"] = value.removeprefix("refs/heads/")
    return entries


def worktree_add(root: Path, path: Path, commit: str) -> None:
    run(["worktree", "add", "-q", "--detach", str(path), commit], root)


def worktree_prune(root: Path) -> None:
    run(["worktree", "prune"], root)


def checkout_tree(path: Path) -> Tree:
    """The checkout around path with its git dirs as git finds them now: taken before an agent runs
    there and used afterwards, so whatever the agent does to its `.git` is not followed."""
    lines = run(["rev-parse", "--path-format=absolute", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"],
                path).stdout.splitlines()
    return Tree(Path(lines[0]), Path(lines[1]), Path(lines[2]))


def linked_tree(root: Path, path: Path) -> Tree:
    """The Tree of the linked worktree at path, its git dirs found from the repository at root (whose
    own .git folder is the user's), never from the worktree's `.git` file."""
    common = git_common_dir(root)
    wanted = Path(path).absolute()
    linked = checkout_gitdirs(root, common)[1:]
    # the folder git names after the worktree first, should another claim the same path
    for checkout, admin in sorted(linked, key=lambda found: found[1].name != wanted.name):
        if checkout == wanted or checkout.resolve() == wanted.resolve():
            return Tree(wanted, admin, common)
    raise GitError(f"{path} is not a registered worktree of {root} (git worktree prune, then run gasworks again)")


def remove_worktree(tree: Tree) -> None:
    """Delete a linked worktree and its registration, from the git dirs gasworks computed (its `.git`
    file is never read) and never following a link: a worktree that is a link, or lies behind one,
    is refused; links inside it are removed, not followed."""
    import shutil

    admin = tree.gitdir
    if admin.parent != tree.common / "worktrees" or admin.is_symlink():
        raise GitError(f"{admin} is not a worktree registration of this repository")
    path = Path(tree.path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise GitError(f"{path} is not a folder (a link, or a file): left as it is")
    if path.exists():
        if path.resolve() != path.parent.resolve() / path.name:
            raise GitError(f"{path} lies behind a link: left as it is")
        shutil.rmtree(path)  # removes links inside, never what they point at
    if admin.is_dir():
        shutil.rmtree(admin)


def reset_to(path: Where, branch: str, commit: str) -> None:
    """Make the worktree at path a clean checkout of a fresh `branch` at `commit`."""
    discard_changes(path)
    run(["checkout", "-q", "-f", "-B", branch, commit], path)


def discard_changes(path: Where) -> None:
    """Drop local changes and untracked (also ignored) files in the worktree at path (a Tree's `.git`
    file written back as gasworks made it, too)."""
    if isinstance(path, Tree):
        restore_pointer(path)
    run(["reset", "-q", "--hard"], path)
    run(["clean", "-q", "-ffdx"], path)


def detach_at(path: Where, commit: str) -> None:
    run(["checkout", "-q", "-f", "--detach", commit], path)


def clean_checkout(path: Where, branch: str) -> None:
    """Check out an existing branch at path, with local changes and untracked files removed."""
    discard_changes(path)
    run(["checkout", "-q", "-f", branch], path)


def clean_detach(tree: Tree, commit: str) -> None:
    """The tree checked out at commit, detached, with nothing else in it: no local change, no untracked
    or ignored file, nothing an earlier gate run left (a conftest.py, a cache), and its `.git` file
    pointing where gasworks says."""
    restore_pointer(tree)
    try:
        run(["checkout", "-q", "-f", "--detach", commit], tree)  # -f: every tracked file as commit has it
        run(["clean", "-q", "-ffdx"], tree)
    except GitError:  # what git itself cannot remove (a path too long for it): emptied without git
        import shutil

        for entry in tree.path.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        run(["checkout", "-q", "-f", "--detach", commit], tree)
        run(["reset", "-q", "--hard"], tree)


def repair(tree: Tree) -> list[str]:
    """Undo what a killed git left in a worktree: a stale index.lock, a merge or rebase half done.
    Call only when no git runs there (gasworks has just ended every agent). Returns what it did."""
    if not tree.gitdir.is_dir():
        return []
    done = []
    lock = tree.gitdir / "index.lock"
    if lock.exists():
        lock.unlink()
        done.append(f"removed a stale index.lock in {tree.path}")
    if (tree.gitdir / "rebase-merge").exists() or (tree.gitdir / "rebase-apply").exists():
        run(["rebase", "--abort"], tree, check=False)
        done.append(f"aborted a rebase left half done in {tree.path}")
    if (tree.gitdir / "MERGE_HEAD").exists():
        run(["merge", "--abort"], tree, check=False)
        done.append(f"aborted a merge left half done in {tree.path}")
    return done


def restore_pointer(tree: Tree) -> None:
    """Write the worktree's `.git` file as git made it, whatever is there now (a file pointing at a
    git dir an agent or a gate made, a folder, a link), without following a link. A worktree that
    is itself a link now (an agent swapped it for one to a folder of the user's) is refused: a
    checkout and `git clean -ffdx` there would work in that folder."""
    if tree.path.is_symlink() or not tree.path.is_dir():
        raise GitError(f"{tree.path} is no longer a folder (a link, or a file): gasworks will not work there")
    pointer = tree.path / ".git"
    wanted = f"gitdir: {tree.gitdir}\n".encode()
    if not _holds(pointer, wanted):
        write_new(pointer, wanted)


def _holds(path: Path, data: bytes) -> bool:
    """Whether path is a plain file holding exactly data; at most that much is read (an agent may
    have left a file of a terabyte there, sparse)."""
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(len(data) + 1) == data


def write_new(path: Path, data: bytes) -> None:
    """Create path with data, never following a link: whatever was at path (a committed symlink to
    the user's ~/.bashrc, say) is replaced, not written through."""
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def checkout_branch(tree: Tree, branch: str, commit: str) -> None:
    """The tree a clean checkout of a fresh `branch` at commit: nothing else left in it, and its
    `.git` file pointing where gasworks says (a gate that ran there may have rewritten it)."""
    restore_pointer(tree)
    run(["checkout", "-q", "-f", "-B", branch, commit], tree)
    run(["clean", "-q", "-ffdx"], tree)
