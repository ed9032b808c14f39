"""Every failed attempt says why in one line, and `show`, `status` and the board show it."""

from __future__ import annotations

import json
import sys

from gasworks import waits
from tests.fleet import add, drain, drain_until, make_dispatcher

FAILING = [sys.executable, "-c", "import sys; print('working on it'); "
           "print('boom: the widget is broken', file=sys.stderr); sys.exit(1)"]


def test_an_agent_that_exits_1_leaves_its_last_line_as_the_reason(gw, project_dir):
    dispatcher, lines = make_dispatcher(project_dir, num_workers=1, agent="command", command=FAILING,
                                        max_attempts=2, retry_backoff=600)
    task_id = add(dispatcher, "fails")
    drain_until(dispatcher, lambda: dispatcher.store.failed_attempts(task_id) == 1)
    reason = "failed: agent exited 1: boom: the widget is broken"
    assert any("agent exited 1: boom: the widget is broken" in line for line in lines)
    (shown,) = gw.json("show", task_id)
    assert shown["status"] == "open" and shown["reason"] == reason
    assert f"  reason: {reason}" in gw("show", task_id).stdout
    report = json.loads(gw("status", "--json").stdout)
    assert report["failed"] == [{"task": task_id, "reason": reason}]
    assert f"last attempt of {task_id}: {reason}" in gw("status").stdout


def test_a_task_whose_last_attempt_succeeded_has_no_reason(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    task_id = add(dispatcher, "works")
    drain(dispatcher)
    (shown,) = gw.json("show", task_id)
    assert shown["status"] == "closed" and shown["reason"] == ""
    assert json.loads(gw("status", "--json").stdout)["failed"] == []


def test_waits_for_humans_is_capped_however_many_tasks_are_blocked(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    store = dispatcher.store
    ids = [add(dispatcher, f"blocked {n}") for n in range(waits.LISTED + 5)]
    for task_id in ids:
        store.transition(task_id, "blocked", actor="test", reason="waits for the design review")
    lines = waits.left_for_humans(store)
    assert lines[0] == f"{ids[0]} is blocked: waits for the design review"
    assert len(lines) == waits.LISTED + 1 and lines[-1] == "... and 5 more blocked task(s)"
