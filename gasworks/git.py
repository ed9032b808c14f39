"""The only module that runs git. Always argv lists, never a shell."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gasworks.errors import GitError, NotARepoError

# Commits gasworks makes itself must work on a machine where git has no identity yet.
_FALLBACK_IDENTITY = ("-c", "user.name=gasworks", "-c", "user.email=gasworks@localhost")


def run(args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["git", *args]
    try:
        result = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and result.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {(result.stderr or result.stdout).strip()}")
    return result


def has_identity(cwd: Path) -> bool:
    return all(
        run(["config", "--get", key], cwd, check=False).returncode == 0 for key in ("user.name", "user.email")
    )


def main_root(path: Path) -> Path:
    """The main checkout of the repository containing `path`, even from inside a linked worktree."""
    path = Path(path)
    if not path.is_dir():
        raise NotARepoError(f"{path} is not a directory")
    result = run(["rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"], path, check=False)
    if result.returncode != 0:
        raise NotARepoError(f"{path} is not inside a git repository (run `git init` first)")
    lines = result.stdout.splitlines()
    if len(lines) < 2:
        raise NotARepoError(f"{path} is inside a bare git repository; gasworks needs a checkout")
    common = Path(lines[0])
    return common.parent if common.name == ".git" else Path(lines[1])


def git_common_dir(root: Path) -> Path:
    return Path(run(["rev-parse", "--path-format=absolute", "--git-common-dir"], root).stdout.strip())


def init_repo(path: Path, branch: str = "main") -> None:
    path.mkdir(parents=True, exist_ok=True)
    run(["init", "-q", "-b", branch], path)


def commit_all(path: Path, message: str) -> str:
    """Stage everything and commit; returns the new commit id. The message goes via stdin."""
    run(["add", "-A"], path)
    argv = ["git", *(_FALLBACK_IDENTITY if not has_identity(path) else ()), "commit", "-q", "-F", "-"]
    result = subprocess.run(argv, cwd=path, input=message, capture_output=True, text=True)
    if result.returncode != 0:
        raise GitError(f"git commit failed: {(result.stderr or result.stdout).strip()}")
    return run(["rev-parse", "HEAD"], path).stdout.strip()


def user_name(path: Path) -> str:
    return run(["config", "--get", "user.name"], path, check=False).stdout.strip()
