"""An attempt's own git dir: what a sandboxed agent commits into, and how its work is brought into
the repository, checked. Also the size check every attempt's work passes. The git commands go
through git.run, like every other."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gasworks import git
from gasworks.errors import GitError

# The whole config of an attempt's own git dir: gasworks writes it before and again after the agent.
_PRIVATE_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n[gc]\n\tauto = 0\n"
IMPORT_REF = "refs/gasworks-import"


def private_gitdir(tree: git.Tree, folder: Path, branch: str, objects_at: Path | None = None) -> Path:
    """A git dir of the attempt's own, for an agent in the sandbox: new objects go to its own folder
    (the repository's objects are read through an alternate, read-only), and its refs are private
    copies, so it can neither change an existing object nor move another branch. Its HEAD is
    `branch`, at the commit the slot's branch points at, and its index the slot's. The agent sees
    it through `folder/dotgit`, which the sandbox binds over the worktree's .git file (or, in a
    main checkout, the git dir itself over its .git folder, the repository's objects then seen at
    `objects_at`)."""
    if folder.exists():
        shutil.rmtree(folder)
    gitdir = folder / "git"
    for name in ("objects/info", "refs/heads", "refs/tags", "info"):
        (gitdir / name).mkdir(parents=True)
    (gitdir / "objects" / "info" / "alternates").write_text(f"{objects_at or tree.common / 'objects'}\n",
                                                            encoding="utf-8")
    heads = git.run(["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/"], tree).stdout
    (gitdir / "packed-refs").write_text("# pack-refs with: sorted\n" + "".join(
        f"{line}\n" for line in sorted(heads.splitlines(), key=lambda line: line.split(" ", 1)[1])), encoding="utf-8")
    head = f"ref: refs/heads/{branch}" if branch else git.rev_parse(tree, "HEAD")  # "": a detached HEAD
    (gitdir / "HEAD").write_text(f"{head}\n", encoding="utf-8")
    (gitdir / "config").write_text(_PRIVATE_CONFIG, encoding="utf-8")
    for source, name in ((tree.gitdir / "index", "index"), (tree.common / "info" / "exclude", "info/exclude")):
        if source.is_file():
            shutil.copyfile(source, gitdir / name)
    (folder / "dotgit").write_text(f"gitdir: {gitdir}\n", encoding="utf-8")
    return gitdir


def import_private(tree: git.Tree, gitdir: Path, attempt: str, base: str, limit: int) -> str:
    """What the agent committed in its own git dir, brought into the repository with every new
    object checked (`fetch.fsckObjects`: well-formed, no `.git` path in a tree, all connected);
    returns the commit its HEAD names, or "" when it names none. Commits bringing a file over limit
    bytes are refused before anything is fetched. The agent has ended: its git dir's config, hooks
    and pointers are written over first, so nothing it put there is obeyed."""
    _sanitize(gitdir, tree)
    found = git.run(["rev-parse", "--verify", "-q", "HEAD^{commit}"], gitdir, check=False, env={"GIT_DIR": str(gitdir)})
    head = found.stdout.strip()
    if found.returncode != 0 or len(head) not in (40, 64):
        return ""
    big = oversized(gitdir, base, head, limit, env={"GIT_DIR": str(gitdir)})
    if big:
        raise GitError(f"it committed files over the size limit: {', '.join(big[:5])}")
    git.write_new(gitdir / IMPORT_REF, f"{head}\n".encode())
    temporary = f"refs/gasworks/import/{attempt}"
    strict = [item for name in ("hasDotgit", "hasDotdot", "hasDotgitmodules", "badTree", "missingTree")
              for item in ("-c", f"fetch.fsck.{name}=error")]
    result = git.run([*strict, "-c", "fetch.fsckObjects=true", "fetch", "-q", "--no-tags", "--no-write-fetch-head",
                  "--no-recurse-submodules", str(gitdir), f"+{IMPORT_REF}:{temporary}"], tree, check=False)
    git.run(["update-ref", "-d", temporary], tree, check=False)
    if result.returncode != 0:
        raise GitError(f"its commits failed git's checks: {(result.stderr or result.stdout).strip()[-300:]}")
    return head


def _sanitize(gitdir: Path, tree: git.Tree) -> None:
    """Write over everything in an attempt's git dir that could make git run a program, read another
    repository or see other history: config, hooks, commondir, grafts, shallow, replace refs, alternates."""
    for name in ("objects", "objects/info", "refs", "info"):  # real folders, so nothing below leads out
        folder = gitdir / name
        if folder.is_symlink() or not folder.is_dir():
            if folder.is_symlink() or folder.exists():
                folder.unlink()
            folder.mkdir()
    for name in ("hooks", "commondir", "info/grafts", "shallow", "refs/replace", "objects/info/http-alternates",
                 "config.worktree", "gitdir"):
        target = gitdir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.is_symlink() or target.exists():
            target.unlink()
    git.write_new(gitdir / "config", _PRIVATE_CONFIG.encode())
    git.write_new(gitdir / "objects" / "info" / "alternates", f"{tree.common / 'objects'}\n".encode())


def move_branch(tree: git.Tree, branch: str, commit: str) -> None:
    """Point the branch checked out in tree (or its detached HEAD, for branch "") at commit, its index
    matching; files untouched."""
    git.run(["update-ref", f"refs/heads/{branch}", commit] if branch else ["update-ref", "--no-deref", "HEAD", commit],
        tree)
    git.run(["reset", "-q"], tree)


def oversized(place: git.Where, base: str, head: str, limit: int, *, env: dict[str, str] | None = None,
              changed: list[str] | None = None) -> list[str]:
    """Files that commits base..head bring in (and, in a checkout, files left uncommitted) larger than
    limit bytes, as "path (N MiB)". Sizes come from git's object headers and the file system, never
    by reading the files. `changed`: the uncommitted paths, when the caller has them already."""
    found = []
    raw = git.run(["diff", "--raw", "-z", "--no-renames", "--no-abbrev", base, head, "--"], place, env=env,
              errors="surrogateescape").stdout.split("\0")
    blobs = {fields.split()[3]: name for fields, name in zip(raw[::2], raw[1::2]) if fields.startswith(":")
             and fields.split()[3].strip("0")}
    if blobs:
        sizes = git.run(["cat-file", "--batch-check=%(objectname) %(objectsize)"], place, env=env,
                    stdin="".join(f"{oid}\n" for oid in blobs)).stdout.split("\n")
        found += [f"{blobs[oid]} ({int(size) >> 20} MiB)" for oid, _, size in (line.partition(" ") for line in sizes)
                  if size.isdigit() and int(size) > limit]
    # Also what history alone carries (a big file added, then removed again): a fetch would bring it.
    listed = git.run(["rev-list", "--objects", f"--filter=blob:limit={limit + 1}", "--filter-print-omitted", head,
                  "--not", base, "--"], place, env=env, check=False).stdout.split("\n")
    if not found:
        found += [f"an object {line[1:13]} in its history" for line in listed if line.startswith("~")]
    if env is None:
        folder = git.where(place)
        for name in git.changed_files(place) if changed is None else changed:
            try:
                size = os.lstat(folder / name).st_size
            except OSError:
                continue
            if size > limit:
                found.append(f"{name} ({size >> 20} MiB)")
    return found
