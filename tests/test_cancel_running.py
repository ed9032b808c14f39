"""Cancelling (closing) a task while its agent runs: `gasworks close` or the dashboard's Cancel."""

from __future__ import annotations

from gasworks import git
from gasworks.web.actions import cancel
from tests.test_dispatcher import add, drain, drain_until, fake_script, make_dispatcher


def test_a_task_closed_while_its_agent_runs_is_left_closed_and_not_merged(project_dir):
    """The agent's finish used to move the closed task to merging, which raised and ended `gasworks run`."""
    dispatcher, lines = make_dispatcher(project_dir)
    task_id = add(dispatcher, "slow", description=fake_script(sleep=1))
    other = add(dispatcher, "quick")
    drain_until(dispatcher, lambda: any(run.task_id == task_id for run in dispatcher.running.values()))
    cancel(dispatcher.store, task_id, actor="tester")
    drain(dispatcher)
    store = dispatcher.store
    task = store.get_task(task_id)
    assert (task.status, task.close_reason) == ("closed", "cancelled from the dashboard")
    [attempt] = store.attempts(task_id)
    assert attempt.outcome == "success" and attempt.note == "the task became closed while its agent ran: left as it is"
    assert store.merges(task_id=task_id) == []
    assert git.run(["ls-tree", "main", f"fake/{task_id}.txt"], project_dir).stdout == ""
    assert store.get_task(other).status == "closed"  # the rest of the fleet went on
    assert any(f"{task_id} became closed while its agent ran" in line for line in lines)
