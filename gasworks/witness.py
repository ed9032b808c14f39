"""The retry policy: when a failed task goes back to the queue, and when it needs a human instead."""

from __future__ import annotations

from collections.abc import Callable

from gasworks.store.sqlite import SQLiteStore

NEEDS_HUMAN = "needs-human"


def send_back(store: SQLiteStore, task_id: str, *, note: str, max_attempts: int,
              say: Callable[[str], None], actor: str = "gasworks") -> str:
    """Back to open with the note, or blocked with label needs-human once its failed attempts
    reach max_attempts. Returns the new status."""
    failures = store.failed_attempts(task_id)
    if failures >= max_attempts:
        store.send_back(task_id, to_status="blocked", add_labels=[NEEDS_HUMAN], actor=actor,
                        note=f"{note}\n({failures} failed attempts: giving up; labelled {NEEDS_HUMAN})")
        say(f"{task_id}: blocked after {failures} failed attempts; labelled {NEEDS_HUMAN}")
        return "blocked"
    store.send_back(task_id, to_status="open", note=note, actor=actor)
    say(f"{task_id}: back to the queue ({note.splitlines()[0] if note else 'no reason given'})")
    return "open"
