"""The only module that runs git. Always argv lists, never a shell."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gasworks.errors import GitError, NotARepoError

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
        base.update({"GIT_DIR": str(cwd.gitdir), "GIT_COMMON_DIR": str(cwd.common), "GIT_WORK_TREE": str(cwd.path)})
    try:
        result = subprocess.run(
            argv, cwd=where(cwd), capture_output=True, text=True, encoding="utf-8", errors=errors,
            **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
            env={**base, **(env or {})},
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and result.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {(result.stderr or result.stdout).strip()}")
    return result


def has_identity(cwd: Where) -> bool:
    return all(
        run(["config", "--get", key], cwd, check=False).returncode == 0 for key in ("user.name", "user.email")
    )


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


def ref_exists(path: Path, ref: str) -> bool:
    return run(["show-ref", "--verify", "-q", ref], path, check=False).returncode == 0


def set_ref(path: Path, ref: str, commit: str) -> None:
    run(["update-ref", ref, commit], path)


def init_repo(path: Path, branch: str = "main") -> None:
    path.mkdir(parents=True, exist_ok=True)
    run(["init", "-q", "-b", branch], path)


def commit_all(path: Where, message: str) -> str:
    """Stage everything and commit; returns the new commit id. The message goes via stdin."""
    run(["add", "-A"], path)
    # No hooks: these commit an agent's leftovers; the merge gate is what checks the work.
    run(["commit", "-q", "--no-verify", "-F", "-"], path, makes_commits=True, stdin=message)
    return run(["rev-parse", "HEAD"], path).stdout.strip()


def commit_leftovers(path: Where, message: str, keep_out: tuple[str, ...] = ()) -> str:
    """Commit every uncommitted change except those under the `keep_out` paths (another tool's
    files, such as Gas Town's .claude/ and .runtime/); returns the commit, or "" if nothing was left."""
    run(["add", "-A", "--", ".", *(f":(exclude){name}" for name in keep_out)], path)
    if run(["diff", "--cached", "--quiet"], path, check=False).returncode == 0:
        return ""
    run(["commit", "-q", "--no-verify", "-F", "-"], path, makes_commits=True, stdin=message)
    return run(["rev-parse", "HEAD"], path).stdout.strip()


def toplevel(path: Path) -> Path:
    """The root of the checkout (main or linked worktree) that contains `path`."""
    result = run(["rev-parse", "--show-toplevel"], path, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise NotARepoError(f"{path} is not inside a git checkout (run it in a clone or a worktree)")
    return Path(result.stdout.strip())


def user_name(path: Path) -> str:
    return run(["config", "--get", "user.name"], path, check=False).stdout.strip()


def rev_parse(path: Where, rev: str) -> str:
    return run(["rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], path).stdout.strip()


def current_branch(path: Where) -> str:
    """The branch checked out at path, or "" when HEAD is detached."""
    result = run(["symbolic-ref", "-q", "--short", "HEAD"], path, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def branches(path: Path) -> list[str]:
    return run(["for-each-ref", "--format=%(refname:short)", "refs/heads/"], path).stdout.split()


def branch_exists(path: Path, name: str) -> bool:
    return run(["show-ref", "--verify", "-q", f"refs/heads/{name}"], path, check=False).returncode == 0


def valid_branch_name(path: Path, name: str) -> bool:
    return run(["check-ref-format", "--branch", name], path, check=False).returncode == 0


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


def is_dirty(path: Where) -> bool:
    return bool(run(["status", "--porcelain", "--untracked-files=all"], path).stdout.strip())


def changed_files(path: Where) -> list[str]:
    """Paths with uncommitted changes (tracked or not), as `git status` reports them."""
    lines = run(["status", "--porcelain", "-z", "--untracked-files=all"], path).stdout.split("\0")
    return [line[3:] for line in lines if len(line) > 3]


def commits_between(path: Where, base: str, head: str = "HEAD") -> list[str]:
    return run(["rev-list", "--reverse", f"{base}..{head}"], path).stdout.split()


def diff(path: Where, base: str, head: str, max_chars: int = 200_000) -> str:
    """The patch from commit base to commit head, cut at max_chars; "" when either is not a commit
    here (gone after a gc, or not a hash at all)."""
    if not all(len(c) >= 4 and all(ch in "0123456789abcdef" for ch in c) for c in (base, head)):
        return ""
    result = run(["diff", "--no-color", "--no-ext-diff", "--stat", "--patch", base, head, "--"], path,
                 check=False, errors="replace")
    text = result.stdout if result.returncode == 0 else ""
    return text if len(text) <= max_chars else text[:max_chars] + f"\n... (cut at {max_chars} characters)\n"


def detach_at(path: Where, commit: str) -> None:
    run(["checkout", "-q", "-f", "--detach", commit], path)


def merge(path: Where, branch: str, message: str) -> tuple[bool, list[str]]:
    """Merge branch into what is checked out at path. Returns (merged, conflicting files); aborts on conflict."""
    merged, conflicts = merge_keeping_conflicts(path, branch, message)
    if not merged:
        run(["merge", "--abort"], path, check=False)
    return merged, conflicts


def fast_forward(path: Where, commit: str) -> tuple[bool, str]:
    """`git merge --ff-only` at path (updates files too); git refuses if local edits would be overwritten.
    Never an autostash: re-applying the user's edits could leave conflict markers in their files."""
    result = run(["merge", "-q", "--ff-only", "--no-autostash", commit], path, check=False)
    return result.returncode == 0, (result.stderr or result.stdout).strip()


def update_ref(root: Path, branch: str, new: str, old: str) -> bool:
    """Compare-and-set a branch that is not checked out anywhere: moves only if it still points at old."""
    return run(["update-ref", f"refs/heads/{branch}", new, old], root, check=False).returncode == 0


def trial_merge(path: Path, tip: str, head: str) -> list[str]:
    """Files that conflict when head is merged into tip, found without touching any worktree."""
    result = run(["merge-tree", "--write-tree", "--name-only", "--no-messages", tip, head], path, check=False)
    if result.returncode == 0:
        return []
    if result.returncode == 1:
        return [line for line in result.stdout.splitlines()[1:] if line.strip()]
    raise GitError(f"git merge-tree failed (git 2.38 or newer is needed): {result.stderr.strip()}")


def merge_base(path: Where, a: str, b: str) -> str:
    """The best common ancestor of two commits; "" when they share no history."""
    return run(["merge-base", a, b], path, check=False).stdout.strip()


def rebase_onto(path: Where, onto: str, head: str) -> bool:
    """Replay head's own commits onto `onto`, detached, at path. False (and aborted) on conflict."""
    base = merge_base(path, onto, head)
    result = run(["rebase", "-q", "--onto", onto, base, head], path, check=False, makes_commits=True)
    if result.returncode != 0:
        run(["rebase", "--abort"], path, check=False)
        return False
    return True


def has_merge_commits(path: Where, base: str, head: str) -> bool:
    return bool(run(["rev-list", "--merges", f"{base}..{head}"], path).stdout.strip())


def conflict_markers(path: Where, old: str, new: str) -> list[str]:
    """`git diff --check` lines that report leftover conflict markers between two commits."""
    result = run(["diff", "--check", old, new], path, check=False)
    return [line for line in result.stdout.splitlines() if "conflict marker" in line]


def merge_commit(path: Where, ours: str, theirs: str, message: str) -> str | None:
    """The merge of theirs into ours made as a commit without touching any worktree (`merge-tree`,
    the same merge `git merge` makes); None when they conflict."""
    result = run(["merge-tree", "--write-tree", "--no-messages", ours, theirs], path, check=False)
    if result.returncode == 1:
        return None
    if result.returncode != 0:
        raise GitError(f"git merge-tree failed (git 2.38 or newer is needed): {result.stderr.strip()}")
    tree = result.stdout.split()[0]
    return run(["commit-tree", tree, "-p", ours, "-p", theirs, "-F", "-"], path, makes_commits=True,
               stdin=message).stdout.strip()


def checkout_branch(tree: Tree, branch: str, commit: str) -> None:
    """The tree a clean checkout of a fresh `branch` at commit: nothing else left in it."""
    run(["checkout", "-q", "-f", "-B", branch, commit], tree)
    run(["clean", "-q", "-ffdx"], tree)


def enclose(path: Where, base: str, stacked: str, message: str) -> str:
    """One commit with stacked's tree whose first parent is base and second stacked: a batch
    stacked as several merges lands as one first-parent commit, the exact tree that was gated."""
    tree = run(["rev-parse", f"{stacked}^{{tree}}"], path).stdout.strip()
    return run(["commit-tree", tree, "-p", base, "-p", stacked, "-F", "-"], path, makes_commits=True,
               stdin=message).stdout.strip()


def is_ancestor(path: Where, older: str, newer: str) -> bool:
    return run(["merge-base", "--is-ancestor", older, newer], path, check=False).returncode == 0


def merge_keeping_conflicts(path: Where, branch: str, message: str) -> tuple[bool, list[str]]:
    """Merge branch in at path; on conflict leave the merge in progress and return the conflicted files."""
    import tempfile  # here, like shutil below: the quick commands (`gasworks ready`) never load them

    # The message may hold task text, so it goes through a file, never the command line.
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".msg", delete=False) as handle:
        handle.write(message)
    try:
        result = run(["merge", "--no-ff", "--no-edit", "-F", handle.name, branch], path, check=False,
                     makes_commits=True)
    finally:
        os.unlink(handle.name)
    if result.returncode == 0:
        return True, []
    conflicts = run(["diff", "--name-only", "--diff-filter=U"], path, check=False).stdout.split()
    if not conflicts:
        run(["merge", "--abort"], path, check=False)  # nothing to resolve: leave no merge behind
        raise GitError(f"git merge failed: {(result.stderr or result.stdout).strip()}")
    return False, conflicts


def clean_checkout(path: Where, branch: str) -> None:
    """Check out an existing branch at path, with local changes and untracked files removed."""
    discard_changes(path)
    run(["checkout", "-q", "-f", branch], path)


def same_tree(path: Where, a: str, b: str) -> bool:
    return run(["rev-parse", f"{a}^{{tree}}"], path).stdout == run(["rev-parse", f"{b}^{{tree}}"], path).stdout


def take_file(path: Where, name: str, base: str) -> str:
    """The lines a worktree added to `name` since `base`, with the file put back as it was at base
    (or removed, if base had none), in the working tree and the index."""
    current = where(path) / name
    if current.is_symlink() or not current.is_file():  # a link could make gasworks read any file
        return ""
    # Bytes that are not UTF-8 come back as lone surrogates, for the caller to drop; never an exception.
    text = current.read_bytes().decode("utf-8", "surrogateescape")
    old = run(["show", f"{base}:{name}"], path, check=False, errors="surrogateescape")
    if old.returncode == 0:
        run(["checkout", base, "--", name], path)
        old_lines = set(old.stdout.splitlines())
        return "\n".join(line for line in text.splitlines() if line not in old_lines)
    run(["rm", "-q", "--cached", "--ignore-unmatch", "--", name], path)
    current.unlink()
    return text


def status_signature(path: Where) -> str:
    """What `git status` says of a worktree, with the size and time of each changed file, to tell
    whether anything in it changed since the last look."""
    lines = run(["status", "--porcelain", "-z", "--untracked-files=all"], path, check=False).stdout.split("\0")
    parts = []
    for line in filter(None, lines):
        try:
            info = (where(path) / line[3:]).lstat()
            parts.append(f"{line}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            parts.append(line)
    return "\n".join(parts)


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


def changed_paths(path: Where, old: str, new: str) -> list[str]:
    """Paths that differ between two commits, each side of a rename on its own. Names that are not
    UTF-8 come back with surrogate escapes, which the os functions turn back into the same bytes."""
    out = run(["diff", "--name-only", "-z", "--no-renames", old, new, "--"], path, errors="surrogateescape").stdout
    return [name for name in out.split("\0") if name]


def tracked_paths(path: Where) -> set[str]:
    """Every path in the index of the checkout at path."""
    out = run(["ls-files", "-z", "--full-name"], path, errors="surrogateescape").stdout
    return {name for name in out.split("\0") if name}


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


def restore_paths(checkout: Path, paths: list[str], candidate: str) -> list[str]:
    """Put these files back as HEAD has them, after a fast-forward to `candidate` was killed halfway
    (it touches only the change's files, and only when the user had no edits in them). A file HEAD
    lacks is removed only when it holds exactly what `candidate` has (the killed git wrote it).
    Returns the paths put back."""
    if not paths:
        return []
    literal = ["--literal-pathspecs"]
    head_has = set(filter(None, run([*literal, "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *paths], checkout,
                                    errors="surrogateescape").stdout.split("\0")))
    differ = set(filter(None, run([*literal, "diff", "--name-only", "-z", "--no-renames", "HEAD", "--", *paths],
                                  checkout, errors="surrogateescape").stdout.split("\0")))
    back = sorted(differ & head_has)
    if back:
        run([*literal, "checkout", "-q", "HEAD", "--", *back], checkout)
    for name in sorted(set(paths) - head_has):
        target = checkout / name
        if target.is_symlink() or not target.is_file():
            continue
        ours = run(["rev-parse", "-q", "--verify", f"{candidate}:{name}"], checkout, check=False,
                   errors="surrogateescape").stdout.strip()
        if ours and run(["hash-object", "--no-filters", "--", str(target)], checkout).stdout.strip() == ours:
            run([*literal, "rm", "-q", "--cached", "--ignore-unmatch", "--", name], checkout)
            target.unlink()
            back.append(name)
    return back


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


def restore_pointer(tree: Tree) -> None:
    """Write the worktree's `.git` file as git made it, whatever is there now (a file pointing at a
    git dir an agent or a gate made, a folder, a link), without following a link."""
    pointer = tree.path / ".git"
    wanted = f"gitdir: {tree.gitdir}\n".encode()
    if pointer.is_symlink() or not pointer.is_file() or pointer.read_bytes() != wanted:
        write_new(pointer, wanted)


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
