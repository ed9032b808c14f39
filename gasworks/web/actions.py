"""What the dashboard and `gasworks top` may change: create, retry, stop, cancel, priority, review. Each goes
through the store's own methods, as the CLI's commands do, so the same checks and events apply."""

from __future__ import annotations

from typing import Protocol

from gasworks.errors import InvalidValueError, TransitionError
from gasworks.models import Status, Task, parse_issue_type, parse_priority
from gasworks.project import Project, task_prefix
from gasworks.store import Bulk, NewTask, Store, TaskEditor, TaskReader, TaskStatus
from gasworks.witness import NEEDS_HUMAN


class Edits(TaskReader, TaskEditor, TaskStatus, Bulk, Protocol):
    """What the dashboard's buttons change: tasks' fields, labels and status, and new tasks."""


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def create(project: Project, store: Edits, fields: dict[str, str], actor: str) -> Task:
    """A new task from the form: title, description, priority, type, deps (ids it waits on), labels."""
    title = fields.get("title", "").strip()
    if not title:
        raise InvalidValueError("a task needs a title")
    new = NewTask(title=title, description=fields.get("description", ""),
                  priority=parse_priority(fields.get("priority") or 2),
                  issue_type=parse_issue_type(fields.get("type") or "task"),
                  labels=_split(fields.get("labels", "")),
                  deps=[(store.resolve_id(target), "blocks") for target in _split(fields.get("deps", ""))])
    return store.create_task(new, prefix=task_prefix(project.config, store), actor=actor)


def retry(store: Edits, task_id: str, actor: str) -> Task:
    """Give a task another go: back to open now (no backoff wait), without the needs-human label."""
    task = store.get_task(store.resolve_id(task_id))
    if task.status in (Status.IN_PROGRESS, Status.MERGING):
        raise TransitionError(f"{task.id} is {task.status}: an agent or the merge queue has it already")
    if NEEDS_HUMAN in task.labels:
        store.change_labels(task.id, actor=actor, remove=[NEEDS_HUMAN])
    store.set_retry_at(task.id, None)
    if task.status != Status.OPEN:
        store.transition(task.id, Status.OPEN, actor=actor, reason="retried from the dashboard")
    return store.get_task(task.id)


def stop(store: Edits, task_id: str, actor: str) -> Task:
    """Stop the agent working on a task and keep the fleet from taking it again: the task becomes
    blocked (retry gives it back). A run reaches its agent through the store, as it does on a cancel:
    within seconds it sees the claim gone (witness.Leases), ends the agent's process group and records
    the attempt as interrupted; nothing of it is merged. Works from any terminal, for any host's run."""
    task = store.get_task(store.resolve_id(task_id))
    if task.status != Status.IN_PROGRESS:
        raise TransitionError(f"{task.id} is {task.status}: no agent works on it")
    return store.transition(task.id, Status.BLOCKED, actor=actor, expected=Status.IN_PROGRESS,
                            reason=f"its agent was stopped by {actor}")


def cancel(store: Edits, task_id: str, actor: str) -> Task:
    """Close a task as cancelled; a running agent's work on it is not merged."""
    return store.close_task(store.resolve_id(task_id), actor=actor, reason="cancelled from the dashboard")


def set_priority(store: Edits, task_id: str, value: str, actor: str) -> Task:
    return store.update_fields(store.resolve_id(task_id), actor=actor, priority=parse_priority(value))


def set_agent(store: Edits, task_id: str, agent: str, model: str, actor: str) -> Task:
    """Pick the agent and the model one task runs with (its labels agent:NAME and model:NAME; empty
    for the run's own), checked as the fleet checks them, in one change of its labels."""
    from gasworks.agents import AGENT_LABEL, MODEL_LABEL, task_choice

    task = store.get_task(store.resolve_id(task_id))
    wanted = [prefix + name.strip() for prefix, name in ((AGENT_LABEL, agent), (MODEL_LABEL, model)) if name.strip()]
    task_choice(Task(task.id, task.title, labels=wanted))
    old = [label for label in task.labels if label.startswith((AGENT_LABEL, MODEL_LABEL)) and label not in wanted]
    return store.change_labels(task.id, actor=actor, add=[label for label in wanted if label not in task.labels],
                               remove=old)


def approve(store: Store, task_id: str, actor: str) -> Task:
    """Let the task's finished branch, which waits for review, into the merge queue."""
    from gasworks import review

    merge, = review.approve(store, [task_id], actor=actor)
    return store.get_task(merge.task_id)


def reject(store: Store, task_id: str, note: str, actor: str) -> Task:
    """Send the task's finished branch back: the task reopens with the note for its next attempt."""
    from gasworks import review

    return review.reject(store, task_id, note, actor=actor)
