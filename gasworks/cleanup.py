"""`gasworks clean`: what finished tasks leave behind (their branches, worktrees of slots no run has
any more, sandboxed attempts' git dirs), found and removed.

Only what no one can still need goes: the branch of a task that is closed, or blocked for good (it
carries needs-human), that no running attempt, no worktree and no pending merge uses. A worktree
goes only when it is a pool slot beyond num_workers and no run is active. Everything under a
worktree or an attempt's git dir was written by an agent: paths come from the repository and the
config, never from a worktree's `.git` file, and no link is followed (see git.remove_worktree).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gasworks import git
from gasworks.errors import GitError
from gasworks.models import MergeStatus, Status
from gasworks.project import Project, active_run
from gasworks.witness import ATTEMPTS_DIR, NEEDS_HUMAN
from gasworks.worktrees import BRANCH_PREFIX, WorktreePool

# Merges that may still need their branch: waiting (for review or in the queue), merging, held for a
# human, or waiting on the conflict task whose close queues the branch again.
PENDING_MERGES = (MergeStatus.REVIEW, MergeStatus.QUEUED, MergeStatus.MERGING, MergeStatus.HELD, MergeStatus.CONFLICT)


@dataclass
class CleanPlan:
    branches: list[tuple[str, str]] = field(default_factory=list)  # (branch, the commit it points at)
    worktrees: list[git.Tree] = field(default_factory=list)
    attempt_dirs: list[Path] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # what was kept, and why

    def as_dict(self) -> dict[str, Any]:
        return {"branches": [name for name, _ in self.branches], "worktrees": [str(t.path) for t in self.worktrees],
                "attempt_dirs": [str(p) for p in self.attempt_dirs], "left": list(self.left)}


def finished_for_good(task: Any) -> bool:
    """Closed (done or cancelled), or blocked after its attempts ran out (labelled needs-human)."""
    return task.status == Status.CLOSED or (task.status == Status.BLOCKED and NEEDS_HUMAN in task.labels)


def plan(project: Project, store: Any) -> CleanPlan:
    """What `clean` would remove now, and what it leaves and why. Changes nothing."""
    root, found = project.root, CleanPlan()
    run_pid = active_run(project)
    found.worktrees = _spare_worktrees(project) if not run_pid else []
    if run_pid:
        found.left.append(f"worktrees: a run is active (pid {run_pid}); they are left alone")
    going = {tree.path for tree in found.worktrees}
    checked_out = {w["branch"] for w in git.worktrees(root) if w["branch"] and Path(w["path"]) not in going}
    checked_out |= {git.busy_branch(admin) for path, admin in git.checkout_gitdirs(root) if path not in going}
    running = store.attempts(running=True)
    in_use = {a.branch for a in running}
    pending = {m.branch for m in store.merges(statuses=list(PENDING_MERGES), limit=1 << 30)}
    tasks = {task.id: task for task in store.list_tasks()}
    for branch, commit in sorted(git.branch_heads(root, BRANCH_PREFIX).items()):
        task = tasks.get(branch[len(BRANCH_PREFIX):])
        why = ("its task is not in the store" if task is None
               else "" if finished_for_good(task) else None)
        if why is None:
            continue  # the branch of a task still in play: not clean's business, not worth a line
        why = why or ("a running attempt uses it" if branch in in_use else "it is checked out in a worktree"
                      if branch in checked_out else "a merge waits on it" if branch in pending else "")
        if why:
            found.left.append(f"branch {branch}: {why}")
        else:
            found.branches.append((branch, commit))
    found.attempt_dirs = _spare_attempt_dirs(project, {a.id for a in running}, found.left)
    return found


def _spare_worktrees(project: Project) -> list[git.Tree]:
    """Pool slots beyond num_workers (a run with more workers made them), as gasworks registered them."""
    pool = WorktreePool(project.root, project.config)
    common = git.git_common_dir(project.root)
    spare = []
    for checkout, admin in git.checkout_gitdirs(project.root, common)[1:]:
        number = pool.slot_number(checkout)
        if number is not None and number > project.config.num_workers:
            spare.append(git.Tree(checkout, admin, common))
    return spare


def _spare_attempt_dirs(project: Project, running: set[int], left: list[str]) -> list[Path]:
    """Sandboxed attempts' own git dirs that no running attempt uses (a crash left them)."""
    folder = project.state_dir / ATTEMPTS_DIR
    if folder.is_symlink():
        left.append(f"{folder} is a link: left as it is")
        return []
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if not (entry.name.isdigit() and int(entry.name) in running))


def carry_out(project: Project, found: CleanPlan) -> tuple[list[str], list[str]]:
    """Remove what the plan found, one thing at a time: (what was done, what was left and why). A
    branch is deleted only if it still points where the plan saw it."""
    done, left = [], list(found.left)
    for tree in found.worktrees:
        try:
            git.remove_worktree(tree)
            done.append(f"removed worktree {tree.path}")
        except (GitError, OSError) as exc:
            left.append(f"worktree {tree.path}: {exc}")
    if found.worktrees:
        git.worktree_prune(project.root)
    for branch, commit in found.branches:
        if git.delete_branch(project.root, branch, commit):
            done.append(f"deleted branch {branch} (was {commit[:12]})")
        else:
            left.append(f"branch {branch}: it moved meanwhile")
    for entry in found.attempt_dirs:
        try:
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink()  # the link itself, never what it points at
            else:
                shutil.rmtree(entry)
            done.append(f"removed {entry}")
        except OSError as exc:
            left.append(f"{entry}: {exc.strerror or exc}")
    return done, left
