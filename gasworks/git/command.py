"""How gasworks runs git: argv lists, never a shell, no configured program, only the repository
gasworks computed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gasworks import runlog
from gasworks.errors import GitError

if TYPE_CHECKING:
    import subprocess


# Commits gasworks makes itself must work on a machine where git has no identity yet.
_FALLBACK_IDENTITY = ("-c", "user.name=gasworks", "-c", "user.email=gasworks@localhost")


# No program that configuration names ever runs for gasworks's own git commands: an agent may have
# written the config or hooks they would come from (filters stay: a committed .gitattributes can
# only pick among the drivers the user's own config defines).
_NO_PROGRAMS = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
                "-c", "diff.external=", "-c", "core.editor=false", "-c", "sequence.editor=false",
                "-c", "core.untrackedCache=false", "-c", "merge.autostash=false", "-c", "rebase.autoStash=false",
                "-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false", "-c", "submodule.recurse=false",
                "-c", "protocol.ext.allow=never")


# Inherited variables that would choose another repository, index or object store than the one
# gasworks computed.
_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                         "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES",
                         "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_EXTERNAL_DIFF", "GIT_PAGER",
                         "GIT_EDITOR", "GIT_SEQUENCE_EDITOR")


@dataclass(frozen=True)
class Tree:
    """A linked worktree gasworks made (an agent's slot, the integration tree), with the git dirs
    gasworks computed itself. Its `.git` file is never read: whatever an agent or a gate wrote there
    cannot choose the config, hooks or objects git uses for gasworks's own commands."""

    path: Path
    gitdir: Path   # <common>/worktrees/<name>: HEAD, index
    common: Path   # the repository's .git: objects, refs, config

    def __truediv__(self, name: str) -> Path:
        return self.path / name


Where = Path | Tree


def where(place: Where) -> Path:
    """The folder of a checkout, given as a path or a Tree."""
    return place.path if isinstance(place, Tree) else Path(place)


def run(args: list[str], cwd: Where, *, check: bool = True, makes_commits: bool = False,
        stdin: str | None = None, errors: str = "strict", env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess:
    """git with argv; `makes_commits` adds a stand-in identity where git has none configured;
    `errors` is how bytes of git's output that are not UTF-8 are decoded. In a Tree, git uses the
    git dirs gasworks computed; everywhere, no configured program (hook, fsmonitor, pager) runs."""
    import subprocess  # here: the quick commands (`gasworks ready` in a plain checkout) never run git

    identity = _FALLBACK_IDENTITY if makes_commits and not has_identity(cwd) else ()
    argv = ["git", *_NO_PROGRAMS, *identity, *args]
    base = {key: value for key, value in os.environ.items() if key not in _REPOSITORY_VARIABLES}
    base.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_NO_REPLACE_OBJECTS": "1",
                 "GIT_OPTIONAL_LOCKS": "0"})
    if isinstance(cwd, Tree):
        if cwd.path.is_symlink():  # swapped for a link by the agent: git would work in the folder it leads to
            raise GitError(f"{cwd.path} is a link now, not the worktree gasworks made: gasworks will not work there")
        base.update({"GIT_DIR": str(cwd.gitdir), "GIT_COMMON_DIR": str(cwd.common), "GIT_WORK_TREE": str(cwd.path)})
    try:
        result = subprocess.run(
            argv, cwd=where(cwd), capture_output=True, text=True, encoding="utf-8", errors=errors,
            **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
            env={**base, **(env or {})},
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    runlog.debug("git %s in %s: exit %s", " ".join(args), where(cwd), result.returncode)
    if check and result.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {(result.stderr or result.stdout).strip()}")
    return result


def has_identity(cwd: Where) -> bool:
    """Both user.name and user.email set (one git call: every commit gasworks makes asks)."""
    out = run(["config", "--get-regexp", r"^user\.(name|email)$"], cwd, check=False).stdout
    return {line.split(" ", 1)[0].lower() for line in out.splitlines()} >= {"user.name", "user.email"}
