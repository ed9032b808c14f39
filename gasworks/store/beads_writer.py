"""gasworks's changes to issues, made in bd: create, update, close and claim as bd commands.

Each change checks bd's answer: a bd that skips an issue it cannot change still exits 0, and a
change bd did not make must fail here, so the store's transaction rolls back with it.
"""

from __future__ import annotations

from typing import Any

from gasworks.errors import ClaimError, TrackerError
from gasworks.models import Status, Task
from gasworks.store import NewTask
from gasworks.store.bd import BdCli, capped
from gasworks.store.beads_records import (
    MERGING_LABEL,
    answer_for,
    claimer_or,
    create_flags,
    label_flags,
    records,
    status_flags,
)


class LostClaim(ClaimError):
    """bd refused a claim: someone else holds the issue, or it is no longer open."""

    def __init__(self, task_id: str, why: str) -> None:
        super().__init__(f"{task_id} could not be claimed in bd: {why}")
        self.task_id = task_id


class BeadsWriter:
    """bd's half of every change to a task; the store records the other half in the mirror."""

    def __init__(self, bd: BdCli) -> None:
        self.bd = bd
        self._claim_flag = True  # bd has `update --claim` (very old versions do not)

    def update(self, task_id: str, flags: list[str], *, actor: str, body: str | None = None) -> dict[str, Any]:
        result = self.bd.run(["update"], flags, [task_id], actor=actor, body=body)
        return answer_for(result, task_id, "update")

    def create(self, new: NewTask, parent: str, deps: list[tuple[str, str]], *, actor: str) -> dict[str, Any]:
        """`bd create` with parent and dependencies resolved to ids; bd's record of the new issue."""
        result = self.bd.run(["create"], create_flags(new, parent, deps), [capped(new.title)], actor=actor,
                             body=new.description or None)
        found = records(result, "bd create")
        if len(found) != 1:
            raise TrackerError("`bd create` answered no issue")
        return found[0]

    def change_status(self, current: Task, to_status: str, *, actor: str, reason: str, force: bool) -> None:
        """`current` (as the mirror had it) to `to_status` in bd, acted by its claimer while it holds it."""
        who = claimer_or(current.status, current.assignee, actor)
        if to_status != Status.CLOSED:
            self.update(current.id, status_flags(current, to_status), actor=who)
            return
        result = self.bd.run(["close"], [f"--reason={capped(reason or 'Closed')}", *(["--force"] if force else [])],
                             [current.id], actor=who)
        answer_for(result, current.id, "close")
        if current.status == Status.MERGING:
            try:  # tidy only: a closed issue is never read as merging
                self.bd.run(["update"], label_flags(remove=[MERGING_LABEL]), [current.id], actor=who)
            except TrackerError:
                pass

    def claim(self, task_id: str, assignee: str) -> None:
        """bd's compare-and-set `update --claim`; LostClaim when bd hands the issue to nobody or someone else."""
        if not self._claim_flag:
            self._claim_by_status(task_id, assignee)
            return
        try:
            result = self.bd.run(["update"], ["--claim"], [task_id], actor=assignee)
        except TrackerError as exc:
            message = str(exc)
            if "unknown flag" in message and "claim" in message:
                self._claim_flag = False
                self._claim_by_status(task_id, assignee)
                return
            if "already claimed" in message.lower() or "claimable" in message.lower():
                raise LostClaim(task_id, message.split("failed: ", 1)[-1]) from None
            raise
        issue = next((r for r in records(result, "bd update") if r["id"] == task_id), None)
        if issue is None or issue.get("status") != Status.IN_PROGRESS or issue.get("assignee") != assignee:
            raise LostClaim(task_id, result.warning or "bd did not hand it over")

    def _claim_by_status(self, task_id: str, assignee: str) -> None:
        """For a bd without `update --claim`: look, then set. Not atomic: two claimers may both win."""
        shown = next(iter(records(self.bd.run(["show"], [], [task_id]), "bd show")), None)
        if shown is None or shown.get("status") != Status.OPEN or (shown.get("assignee") or assignee) != assignee:
            raise LostClaim(task_id, f"it is {shown.get('status') if shown else 'gone'}"
                                     f"{' for ' + shown['assignee'] if shown and shown.get('assignee') else ''}")
        self.update(task_id, ["--status=in_progress", f"--assignee={assignee}"], actor=assignee)
