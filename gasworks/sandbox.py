"""The optional agent sandbox (`sandbox = "bwrap"`): bubblewrap shows an agent's whole process tree
the file system read-only, with a private /tmp, except its own worktree and what a commit there
writes. So a confused or hostile agent cannot change the user's checkout, other worktrees, the
store or the target branch, and nothing it starts outlives it (its own PID namespace). The network
is left alone: agents talk to model servers."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from gasworks import git
from gasworks.errors import ConfigError
from gasworks.launch import LaunchSpec

PRIVATE_TMP = Path("/tmp")
# Where a main checkout's objects appear, read-only, to an agent whose .git is its own git dir.
SHARED_OBJECTS = PRIVATE_TMP / ".gasworks-objects"
# No automatic `git gc` inside the sandbox: it would want to write all over the shared git folder.
GIT_ENV = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0"}


def find_bwrap() -> str:
    found = shutil.which("bwrap")
    if not sys.platform.startswith("linux") or not found:
        raise ConfigError("sandbox = \"bwrap\" needs bubblewrap on Linux (Debian/Ubuntu: apt-get install "
                          "bubblewrap); or set sandbox = \"none\"")
    return found


def wrap(argv: list[str], *, bwrap: str, writable: Iterable[Path], readable: Iterable[Path] = (),
         overlays: Iterable[tuple[str, Path, Path]] = ()) -> list[str]:
    """argv run under bubblewrap: everything read-only, /tmp a fresh empty tmpfs, `writable` bound
    read-write. Paths under /tmp that the agent must see (its interpreter, the repository) are
    bound back read-only first, so the tmpfs does not hide them. Each (mode, source, target) of
    `overlays` is bound over target last (a worktree's .git file)."""
    # Its own PID namespace (with a /proc of its own): when the agent ends, the kernel ends every
    # process in it, also those that left its process group with setsid.
    command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "--proc", "/proc",
               "--tmpfs", str(PRIVATE_TMP), "--die-with-parent"]
    seen: set[tuple[str, Path]] = set()
    for mode, paths in (("--ro-bind", readable), ("--bind", writable)):
        for path in sorted({Path(p).resolve() for p in paths}, key=lambda p: len(p.parts)):
            if mode == "--ro-bind" and not path.is_relative_to(PRIVATE_TMP):
                continue  # already visible, read-only, through the root bind
            if (mode, path) not in seen and path.exists():
                seen.add((mode, path))
                command += [mode, str(path), str(path)]
    for mode, source, target in overlays:
        command += [mode, str(Path(source).resolve()), str(Path(target).absolute())]
    return [*command, "--", *argv]


def sandboxed(spec: LaunchSpec, *, bwrap: str, worktree: Path, branch: str, log_dir: Path, repo_root: Path,
              extra: Iterable[Path] = (), private_git: Path | None = None) -> LaunchSpec:
    """The agent's launch inside bubblewrap. Writable: its worktree, its log folder, what the agent
    declares it needs and `extra` (sandbox_writable), and for its commits either `private_git` (the
    attempt's own git dir, from attempt_repo.private_gitdir, seen through its `dotgit` file bound over the
    worktree's .git file: the repository's objects and refs stay read-only) or, without one, what
    a commit on `branch` writes in the git folder (agent-run in a Gas Town worktree)."""
    log_dir.mkdir(parents=True, exist_ok=True)  # its usage and transcript files go there
    if private_git is not None and (worktree / ".git").is_dir():  # a main checkout (agent-run)
        commits = [private_git]
        overlays = [("--bind", private_git, worktree / ".git"),
                    ("--ro-bind", git.git_common_dir(worktree) / "objects", SHARED_OBJECTS)]
    elif private_git is not None:
        commits, overlays = [private_git], [("--ro-bind", private_git.parent / "dotgit", worktree / ".git")]
    else:
        commits, overlays = git.commit_paths(worktree, branch.rpartition("/")[0]), []
    writable = [worktree, log_dir, *commits, *spec.writable, *extra]
    argv = wrap(spec.argv, bwrap=bwrap, writable=writable, readable=readable_paths(spec.argv, repo_root),
                overlays=overlays)
    return LaunchSpec(argv, {**spec.env, **GIT_ENV, "TMPDIR": str(PRIVATE_TMP)})


def gate_argv(argv: list[str], *, bwrap: str, tree: git.Tree, repo_root: Path, extra: Iterable[Path] = (),
              pointer: Path) -> list[str]:
    """A gate command under bubblewrap: it runs the branch's own code, so it may write only the
    integration tree (its .git file bound read-only from `pointer`) and `extra`, with a private /tmp."""
    return wrap(argv, bwrap=bwrap, writable=[tree.path, *extra], readable=readable_paths(argv, repo_root),
                overlays=[("--ro-bind", pointer, tree.path / ".git")])


def readable_paths(argv: list[str], repo_root: Path) -> list[Path]:
    """What an agent must see, wherever it lives: the repository, this Python, its packages and
    gasworks itself (the agents gasworks ships run on them), its program's folder and the files
    its command line names."""
    import gasworks

    paths = [repo_root, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent,
             Path(gasworks.__file__).parent.parent,  # an editable install's source tree
             *(Path(entry) for entry in sys.path if entry and Path(entry).is_absolute())]
    if argv and Path(argv[0]).is_absolute():
        paths.append(Path(argv[0]).parent)
    return paths + [Path(arg) for arg in argv[1:] if Path(arg).is_absolute() and Path(arg).exists()]
