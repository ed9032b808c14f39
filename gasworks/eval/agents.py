"""Scripted agents of known quality, for measuring the eval harness itself (run as `command` agents).

    python -m gasworks.eval.agents oracle --suite S --map M --task-id ID --worktree DIR
    python -m gasworks.eval.agents flaky --p 0.6 --seed 1 --suite S --map M --task-id ID --worktree DIR

oracle makes each task's known solution (and adds its visible tests), so it should score 100%.
flaky does the same for a share `p` of the tasks, chosen by a seeded draw per task (the same task
and seed give the same choice on every attempt, so retries do not raise its rate); for the others
it writes the task's plausible wrong change, which may pass the visible tests but fails the
hidden ones. The map (written by the eval runner, outside the repository) says which suite task
each gasworks task is. A merge-conflict task (GASWORKS_RESOLVE_ONTO) is resolved by keeping both
sides, which is right for the shipped suites' appends. `--think` waits that many seconds first, as
a model would.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from gasworks.eval.suite import Edit, EvalTask, apply_edits, load_suite, wrong_edits


def succeeds(p: float, seed: int, where: str) -> bool:
    """The flaky agent's draw for one task: the same (seed, task) always gives the same answer."""
    return random.Random(f"{seed}:{where}").random() < p


def edits_for(task: EvalTask, right: bool) -> tuple[Edit, ...]:
    """The task's visible tests, then its solution (right) or its wrong change."""
    visible = tuple(Edit(path, write=content) for path, content in sorted(task.visible.items()))
    return visible + (task.solution if right else wrong_edits(task))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gasworks.eval.agents")
    parser.add_argument("kind", choices=["oracle", "flaky"])
    parser.add_argument("--suite", required=True)
    parser.add_argument("--map", required=True, type=Path)
    parser.add_argument("--task-id", required=True)
    parser.add_argument("--worktree", required=True, type=Path)
    parser.add_argument("--p", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--think", type=float, default=0.0)
    args = parser.parse_args(argv)
    from gasworks import git
    from gasworks.agents.fake import resolve_by_union

    time.sleep(args.think)
    onto = os.environ.get("GASWORKS_RESOLVE_ONTO")
    if onto:
        resolve_by_union(args.worktree, onto)
        return 0
    where = json.loads(args.map.read_text(encoding="utf-8")).get(args.task_id)
    if where is None:
        print(f"{args.kind}: {args.task_id} is not a task of the suite", file=sys.stderr)
        return 1
    project, _, key = where.partition("/")
    task = load_suite(args.suite).project(project).task(key)
    right = args.kind == "oracle" or succeeds(args.p, args.seed, where)
    if task.patch and right:
        git.apply_patch(args.worktree, task.patch)
    else:
        apply_edits(args.worktree, edits_for(task, right))
    git.commit_all(args.worktree, f"{task.title}\n\n({args.kind} agent)")
    print(f"{args.kind}: made {where}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
