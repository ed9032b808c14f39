"""A `command` agent for the conflict-rounds tests: by default it never really resolves a merge
conflict, as a small model that rewrites a file whole does.

    python stubborn_agent.py WORKTREE [--takes-target-in SIGNALS]

A task (GASWORKS_TASK_ID names it): writes `shared.txt` with a line of its own and commits, so two
tasks begun from the same tip conflict. A merge-conflict task (GASWORKS_RESOLVE_ONTO set): rewrites
`shared.txt` with another line of its own and commits, without ever taking the target in, so the
branch conflicts again every time it is queued.

With --takes-target-in, a merge-conflict task is resolved properly instead (the target merged in,
both sides kept), then the agent writes SIGNALS/<task id>.merged and waits for SIGNALS/go before
it exits: a test moves the target meanwhile, so the branch conflicts again although its
resolution held.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from gasworks import git
from gasworks.agents.fake import resolve_by_union


def main() -> int:
    worktree = Path(sys.argv[1])
    signals = Path(sys.argv[3]) if sys.argv[2:3] == ["--takes-target-in"] else None
    task_id = os.environ["GASWORKS_TASK_ID"]
    onto = os.environ.get("GASWORKS_RESOLVE_ONTO")
    if onto and signals is not None:
        resolve_by_union(worktree, onto)
        (signals / f"{task_id}.merged").write_text("", encoding="utf-8")
        deadline = time.monotonic() + 120
        while not (signals / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return 0
    line = f"rewritten whole by {task_id}" if onto else f"written by {task_id}"
    (worktree / "shared.txt").write_text(line + "\n", encoding="utf-8")
    git.commit_all(worktree, line)
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
