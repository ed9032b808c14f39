"""Review before merge: a finished branch waits for a human's approval before the merge queue.

With `review = true`, or on a task labelled `review`, the dispatcher hands a finished (and, with
`pregate = true`, pre-gated) branch over as a merge in status "review", which the refinery never
takes. `approve` queues it; `reject` ends it as rejected and sends the task back to open with the
reviewer's note kept as a comment, which the agent's next attempt reads in its task file.
"""

from __future__ import annotations

from gasworks.errors import InvalidValueError, TransitionError
from gasworks.models import Merge, MergeStatus, Status, Task
from gasworks.store import MergeLog, Store

REVIEW_LABEL = "review"  # a task with this label waits for review even when the `review` key is off


def wanted(review: bool, task: Task) -> bool:
    """Whether this task's finished branch waits for review: the key on, or the task's label."""
    return review or REVIEW_LABEL in task.labels


def waiting(store: MergeLog, task_id: str) -> Merge:
    """The task's merge that waits for review, or a one-line error saying it has none."""
    found = store.merges(task_id=task_id, statuses=[MergeStatus.REVIEW.value], limit=1)
    if not found:
        raise TransitionError(f"{task_id} does not wait for review")
    return found[0]


def approve(store: Store, task_ids: list[str], *, actor: str) -> list[Merge]:
    """Queue the waiting branches of these tasks to merge, all or none (one transaction)."""
    with store.batch():
        ids = [store.resolve_id(task_id) for task_id in task_ids]
        return [store.review_merge(waiting(store, task_id).id, MergeStatus.QUEUED.value, actor=actor,
                                   note=f"approved by {actor}") for task_id in ids]


def reject(store: Store, task_id: str, note: str, *, actor: str) -> Task:
    """End the waiting merge as rejected and send the task back to open for another attempt, the
    reviewer's note kept on the merge and as a comment (one transaction)."""
    note = note.strip()
    if not note:
        raise InvalidValueError("a rejection needs a note saying what to change (--note)")
    with store.batch():
        task_id = store.resolve_id(task_id)
        store.review_merge(waiting(store, task_id).id, MergeStatus.REJECTED.value, actor=actor, note=note)
        store.transition(task_id, Status.OPEN, actor=actor, expected=Status.MERGING,
                         reason=f"rejected in review: {note}")
        store.add_comment(task_id, f"Rejected in review: {note}", author=actor)
        return store.get_task(task_id)


def latest_note(store: MergeLog, task_id: str) -> str:
    """The note of the task's latest rejection, for its next attempt's task file ("" when none)."""
    found = store.merges(task_id=task_id, statuses=[MergeStatus.REJECTED.value], limit=1)
    return found[0].note if found else ""
