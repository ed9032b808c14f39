"""A suite from a repository's history: each commit that changes tests and code becomes a task.

The task starts from the commit's parent (a project of its own, `[source]`), its description is
the commit's message, its hidden tests are the test files as the commit left them, and its known
solution is the commit's change to the other files. The gate runs the repository's tests, and
the hidden tests run in place in the final tree (`hidden_command`, their paths appended).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gasworks import git

# Test files by the usual names: test_*.py, *_test.py, anything under a tests/ or test/ folder.
TEST_FILE = re.compile(r"(?:^|/)(?:test_[^/]*\.py|[^/]*_test\.py|tests?/[^/]+\.py)$")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def commit_task(repo: Path, commit: str, pattern: re.Pattern[str]) -> dict[str, Any] | None:
    """The task one commit makes, or None when it changes no test file or nothing else."""
    parent = f"{commit}^"
    changed = git.changed_paths(repo, parent, commit)
    tests = [p for p in changed if pattern.search(p)]
    code = [p for p in changed if p not in tests]
    hidden = {p: git.file_at(repo, commit, p) for p in tests}
    if not code or not any(text is not None for text in hidden.values()):
        return None
    message = git.commit_message(repo, commit)
    return {"key": commit[:12], "title": (message.splitlines() or [commit[:12]])[0][:200],
            "description": message, "patch": git.patch_between(repo, parent, commit, code),
            "hidden": {p: text for p, text in hidden.items() if text is not None},
            "parent": git.rev_parse(repo, parent)}


def suite_text(repo: Path, rev: str, count: int, test_command: list[str], name: str,
               pattern: re.Pattern[str] = TEST_FILE) -> tuple[str, int]:
    """The suite file's text and how many tasks it holds, from the newest `count` commits up to rev."""
    lines = [f"# Made by `gasworks eval-import` from {_quoted(str(repo))} at {rev}: one project per commit.",
             f"name = {_quoted(name)}", ""]
    made = 0
    for commit in git.history(repo, rev, count):
        task = commit_task(repo, commit, pattern)
        if task is None:
            continue
        made += 1
        argv = ", ".join(map(_quoted, test_command))
        lines += ["[[project]]", f"name = {_quoted('c-' + task['key'])}", f"gate = [[{argv}]]",
                  f"hidden_command = [{argv}]",
                  f"source = {{repo = {_quoted(str(repo))}, rev = {_quoted(task['parent'])}}}", "",
                  "[[project.task]]", *(f"{key} = {_quoted(task[key])}" for key in ("key", "title", "description",
                                                                                       "patch")),
                  "[project.task.hidden]", *(f"{_quoted(p)} = {_quoted(t)}" for p, t in task["hidden"].items()), ""]
    return "\n".join(lines), made
