"""Cancelling (closing) a task while its agent runs: `gasworks close` or the dashboard's Cancel."""

from __future__ import annotations

import psutil

from gasworks import git
from gasworks import witness as witness_module
from gasworks.web.actions import cancel
from tests.fleet import add, drain, drain_until, fake_script, make_dispatcher


def test_a_task_closed_while_its_agent_runs_is_left_closed_and_not_merged(project_dir, monkeypatch):
    """The agent's finish used to move the closed task to merging, which raised and ended `gasworks run`.
    (Here the agent finishes before the dispatcher looks at the claim again.)"""
    monkeypatch.setattr(witness_module, "CLAIM_CHECK_SECONDS", float("inf"))
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


def test_cancelling_stops_the_agent_within_seconds_not_at_the_next_lease_renewal(project_dir):
    """The claim used to be looked at only when renewed, every lease_seconds/3 (300 s by default), so a
    cancelled task's agent ran on for minutes."""
    dispatcher, lines = make_dispatcher(project_dir)
    assert dispatcher.config.lease_seconds == 900
    task_id = add(dispatcher, "endless", description=fake_script(sleep=600))
    drain_until(dispatcher, lambda: any(run.task_id == task_id for run in dispatcher.running.values()))
    [pid] = [run.proc.pid for run in dispatcher.running.values() if run.task_id == task_id]
    cancel(dispatcher.store, task_id, actor="tester")
    drain(dispatcher, limit=60)
    [attempt] = dispatcher.store.attempts(task_id)
    assert attempt.outcome == "interrupted"
    assert attempt.note == "the task became closed while its agent ran: left as it is"
    assert dispatcher.store.get_task(task_id).status == "closed"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert any(f"{task_id} became closed while its agent ran; stopping the agent" in line for line in lines)
