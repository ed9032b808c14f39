"""The witness: one retry-or-block decision for attempts and refused branches, and the claim gate, the
clock passed in."""

from __future__ import annotations

import sys
import time

from gasworks.config import Config
from gasworks.witness import ClaimGate, retry_or_block
from tests.fleet import add, make_dispatcher


def test_failures_wait_longer_each_time_then_need_a_human():
    config = Config(max_attempts=3, retry_backoff=10, retry_backoff_max=25)
    assert [(r.status, r.wait) for r in (retry_or_block(n, config) for n in (1, 2, 3))] == \
        [("open", 10), ("open", 20), ("blocked", 0)]
    assert retry_or_block(3, Config(max_attempts=3, retry_backoff=10, retry_backoff_max=15), counts=False).wait == 0
    assert retry_or_block(2, Config(max_attempts=5, retry_backoff=10, retry_backoff_max=15)).wait == 15


def test_the_claim_gate_pauses_for_the_breaker_and_says_since_when(tmp_path):
    said: list[str] = []
    answers = [False, True]
    gate = ClaimGate(Config(breaker_seconds=30), tmp_path, said.append, healthy=lambda: answers.pop(0))
    assert gate.open(1000.0) and gate.held_for(1000.0) == 0
    gate.trip(1000.0)
    assert not gate.open(1010.0) and gate.held_for(1040.0) == 30  # paused; held since 1010
    assert not gate.open(1031.0)  # the health check fails: paused again
    assert "still do not answer" in said[-1]
    assert gate.open(1062.0) and gate.held_for(1062.0) == 0
    assert said[-1] == "a model endpoint answers again: claiming tasks"


def test_a_branch_the_gate_refuses_waits_like_a_failed_attempt_before_its_next_try(project_dir):
    """The refinery sent a task back with no wait at all, while a failed attempt waited retry_backoff:
    two retry policies. Now both wait the same."""
    fails_with_branch = [sys.executable, "-c", "import pathlib, sys; sys.exit(1 if pathlib.Path('fake').exists() "
                                               "else 0)"]
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, gate=[fails_with_branch], retry_backoff=60)
    task_id = add(dispatcher, "refused by the gate")
    deadline = time.monotonic() + 60
    while dispatcher.store.get_task(task_id).status != "open" or dispatcher.running \
            or not dispatcher.store.attempts(task_id):
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for _ in range(10):
        dispatcher.tick(time.time())
        time.sleep(0.05)
    assert len(dispatcher.store.attempts(task_id)) == 1  # not taken again within retry_backoff


def test_an_attempt_is_overdue_past_its_timeout_or_when_silent_for_the_stall_timeout():
    from gasworks.witness import Watch, overdue

    config = Config(attempt_timeout=100, stall_timeout=20)
    watch = Watch(started=0.0, renewed=0.0, active_at=0.0, checked=0.0)
    signs = iter([(1, "a"), (1, "a"), (1, "a")])
    assert overdue(watch, 6.0, config, lambda: next(signs)) == ""         # changed: active at 6
    assert overdue(watch, 7.0, config, lambda: next(signs)) == ""         # not looked at again so soon
    assert overdue(watch, 12.0, config, lambda: next(signs)) == ""        # same as at 6
    assert overdue(watch, 27.0, config, lambda: next(signs)) == "stalled"  # 21 s with no change
    assert overdue(Watch(0.0, 0.0), 101.0, config, lambda: ()) == "timeout"


def test_the_run_log_says_why_a_branch_was_sent_back_not_just_that_the_gate_failed(tmp_path):
    """It said "back to the queue (The merge gate failed:)", cut at the colon."""
    from gasworks.store import NewTask
    from gasworks.store.sqlite import SQLiteStore
    from gasworks.witness import send_back

    store = SQLiteStore(tmp_path / "gasworks.db")
    task = store.create_task(NewTask("t"), prefix="gw", actor="test")
    store.transition(task.id, "in_progress", actor="test")
    said: list[str] = []
    send_back(store, task.id, note="The merge gate failed:\n\nFAILED test_calc.py::test_sub - assert 1 == 2\n",
              config=Config(retry_backoff=0), now=1000.0, say=said.append)
    assert said == [f"{task.id}: back to the queue (The merge gate failed: FAILED test_calc.py::test_sub - "
                    "assert 1 == 2)"]
