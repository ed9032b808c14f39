"""A `command` agent that never really resolves a merge conflict, as a small model that rewrites a
file whole does: the conflict-rounds tests run it.

    python stubborn_agent.py WORKTREE

A task (GASWORKS_TASK_ID names it): writes `shared.txt` with a line of its own and commits, so two
tasks begun from the same tip conflict. A merge-conflict task (GASWORKS_RESOLVE_ONTO set): rewrites
`shared.txt` with another line of its own and commits, without ever bringing the target in, so
the branch conflicts again every time it is queued.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gasworks import git


def main() -> int:
    worktree = Path(sys.argv[1])
    task_id = os.environ["GASWORKS_TASK_ID"]
    resolving = os.environ.get("GASWORKS_RESOLVE_ONTO")
    line = f"rewritten whole by {task_id}" if resolving else f"written by {task_id}"
    (worktree / "shared.txt").write_text(line + "\n", encoding="utf-8")
    git.commit_all(worktree, line)
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
