"""The remote several hosts share: fetch, push, and a compare-and-set push."""

from __future__ import annotations

from pathlib import Path

from gasworks.git.command import run


def has_remote(root: Path, remote: str) -> bool:
    return run(["remote", "get-url", remote], root, check=False).returncode == 0


def fetch(root: Path, remote: str, refspecs: list[str]) -> None:
    """Fetch from the shared remote, every new object checked (other hosts' agents made them)."""
    run(["-c", "fetch.fsckObjects=true", "fetch", "-q", "--no-tags", "--no-recurse-submodules", remote, *refspecs],
        root)


def push(root: Path, remote: str, refspec: str) -> None:
    run(["push", "-q", remote, refspec], root)


def push_with_lease(root: Path, remote: str, commit: str, branch: str, expected: str) -> tuple[bool, str]:
    """Move the remote's branch to commit only if it still points at expected (compare-and-set on
    the remote: --force-with-lease with an explicit value, never a blind force)."""
    result = run(["push", "-q", "--porcelain", f"--force-with-lease=refs/heads/{branch}:{expected}", remote,
                  f"{commit}:refs/heads/{branch}"], root, check=False)
    return result.returncode == 0, (result.stderr or result.stdout).strip()


def delete_remote_branch(root: Path, remote: str, branch: str) -> None:
    run(["push", "-q", remote, "--delete", f"refs/heads/{branch}"], root, check=False)
