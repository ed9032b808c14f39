"""A checkout's changes: committed, listed, compared, taken back."""

from __future__ import annotations

from pathlib import Path

from gasworks.git.command import Where, run, where


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


def is_dirty(path: Where) -> bool:
    return bool(run(["status", "--porcelain", "--untracked-files=all"], path).stdout.strip())


def changed_files(path: Where) -> list[str]:
    """Paths with uncommitted changes (tracked or not), as `git status` reports them."""
    lines = run(["status", "--porcelain", "-z", "--untracked-files=all"], path).stdout.split("\0")
    return [line[3:] for line in lines if len(line) > 3]


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


def diff(path: Where, base: str, head: str, max_chars: int = 200_000) -> str:
    """The patch from commit base to commit head, cut at max_chars; "" when either is not a commit
    here (gone after a gc, or not a hash at all)."""
    if not all(len(c) >= 4 and all(ch in "0123456789abcdef" for ch in c) for c in (base, head)):
        return ""
    result = run(["diff", "--no-color", "--no-ext-diff", "--stat", "--patch", base, head, "--"], path,
                 check=False, errors="replace")
    text = result.stdout if result.returncode == 0 else ""
    return text if len(text) <= max_chars else text[:max_chars] + f"\n... (cut at {max_chars} characters)\n"


def changed_paths(path: Where, old: str, new: str) -> list[str]:
    """Paths that differ between two commits, each side of a rename on its own. Names that are not
    UTF-8 come back with surrogate escapes, which the os functions turn back into the same bytes."""
    out = run(["diff", "--name-only", "-z", "--no-renames", old, new, "--"], path, errors="surrogateescape").stdout
    return [name for name in out.split("\0") if name]


_TRACKED: dict[Path, tuple[tuple[int, ...], frozenset[str]]] = {}  # checkout -> (its index's stat, paths)


def tracked_paths(path: Where) -> frozenset[str]:
    """Every path in the index of the checkout at path. Read again only when a main checkout's index
    file changed (git replaces it on every write: a new inode, size or time), so the merge queue's
    check of every branch it admits does not list the user's checkout each time."""
    checkout = where(path).resolve()
    try:
        found = (checkout / ".git" / "index").stat()
        key: tuple[int, ...] | None = (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
    except OSError:  # a linked worktree (.git is a file), or no index yet: not cached
        key = None
    if key is not None and checkout in _TRACKED and _TRACKED[checkout][0] == key:
        return _TRACKED[checkout][1]
    out = run(["ls-files", "-z", "--full-name"], path, errors="surrogateescape").stdout
    paths = frozenset(name for name in out.split("\0") if name)
    if key is not None:
        _TRACKED[checkout] = (key, paths)
    return paths


def take_file(path: Where, name: str, base: str, limit: int = 1 << 20) -> str:
    """The lines a worktree added to `name` since `base` (within its first `limit` bytes), with the
    file put back as it was at base (or removed, if base had none), in the working tree and the index."""
    current = where(path) / name
    if current.is_symlink() or not current.is_file():  # a link could make gasworks read any file
        return ""
    with open(current, "rb") as handle:  # never whole: an agent may leave a sparse terabyte there
        data = handle.read(limit + 1)
    if len(data) > limit:
        data = data[:data.rfind(b"\n", 0, limit) + 1]  # whole lines only
    # Bytes that are not UTF-8 come back as lone surrogates, for the caller to drop; never an exception.
    text = data.decode("utf-8", "surrogateescape")
    old = run(["show", f"{base}:{name}"], path, check=False, errors="surrogateescape")
    if old.returncode == 0:
        run(["checkout", base, "--", name], path)
        old_lines = set(old.stdout.splitlines())
        return "\n".join(line for line in text.splitlines() if line not in old_lines)
    run(["rm", "-q", "--cached", "--ignore-unmatch", "--", name], path)
    current.unlink()
    return text


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
