"""The store contract: one suite of each role (gasworks/store/roles.py) run against every backend:
SQLite, PostgreSQL (a private server, tests/pg.py; skipped, saying why, where it cannot start) and
the Beads tracker (BeadsStore over the bd stand-in, tests/fakebd.py). test_store_ready.py and
test_store_status.py are part of it: they run on the same backends.

Each backend comes as a Backend (tests/conftest.py): its store; `reopen()`, a second store on the same data (another
process of the same project: its own connection); `elsewhere()`, a store of another host (Beads:
its own mirror of the same bd; SQL: as reopen); and `failing()`, where the write transaction of a
change fails after the store made it (SQL: the batch it runs in raises; Beads: bd refuses it).
"""

from __future__ import annotations

import time

import pytest

from gasworks.errors import ClaimError, TrackerError, TransitionError
from gasworks.models import MergeStatus
from gasworks.store import NewTask, Store
from tests.conftest import Refused

LEASE = 60.0


def status_events(store: Store, task_id: str) -> list[tuple[str, str, str]]:
    return [(e.old_value, e.new_value, e.actor) for e in store.events(task_id) if e.kind == "status"]


# -- TaskReader and TaskGraph: the ready order, and what waits on what --------------------------


def test_ready_is_by_priority_then_age(backend):
    low, first_high, second_high = (backend.make(title, priority=p)
                                    for title, p in (("low", 3), ("high, older", 1), ("high, newer", 1)))
    assert [t.id for t in backend.store.ready()] == [first_high, second_high, low]
    assert [t.id for t in backend.store.ready(limit=1)] == [first_high]


def test_a_task_waits_until_what_blocks_it_is_closed(backend):
    store = backend.store
    blocker, waiting = backend.make("blocker"), backend.make("waiting", priority=0)
    store.add_dependency(waiting, blocker, actor="tester")
    assert [t.id for t in store.ready()] == [blocker]
    assert store.is_blocked(waiting) and store.blockers(waiting) == [blocker]
    assert [d.issue_id for d in store.dependents(blocker)] == [waiting]
    store.close_task(blocker, actor="tester", reason="done")
    assert [t.id for t in store.ready()] == [waiting]
    assert not store.is_blocked(waiting) and store.blockers(waiting) == []


def test_a_removed_dependency_no_longer_blocks(backend):
    store = backend.store
    blocker, waiting = backend.make("blocker"), backend.make("waiting")
    store.add_dependency(waiting, blocker, actor="tester")
    store.remove_dependency(waiting, blocker, actor="tester")
    assert {t.id for t in store.ready()} == {blocker, waiting}


# -- TaskEditor, EventLog and Bulk: making tasks, changing what they say, suggestions -----------------


def test_tasks_are_made_together_and_edited_each_change_with_its_event(backend):
    store = backend.store
    epic, child = store.create_tasks([NewTask("an epic", issue_type="epic", labels=["area"]),
                                      NewTask("a child", parent="#0", priority=1)], prefix="gw", actor="tester")
    assert child.id == f"{epic.id}.1" and child.labels == ["area"]  # a child takes its parent's labels
    assert [(d.issue_id, d.type) for d in store.dependents(epic.id)] == [(child.id, "parent-child")]
    edited = store.update_fields(child.id, actor="tester", title="the child", priority=0)
    assert (edited.title, edited.priority) == ("the child", 0)
    assert store.change_labels(child.id, actor="tester", add=["x"], remove=["area"]).labels == ["x"]
    assert store.add_comment(child.id, "looks fine", author="reviewer").text == "looks fine"
    assert [c.text for c in store.get_task(child.id).comments] == ["looks fine"]
    assert store.label_counts() == {"area": 1, "x": 1}
    kinds = [e.kind for e in store.events(child.id)]
    assert kinds[0] == "created" and [k for k in kinds if k in ("updated", "labels", "comment")] == \
        ["updated", "labels", "comment"]
    assert store.event_count("comment") == 1


def test_suggestions_become_linked_tasks_except_those_that_repeat_open_work(backend):
    store = backend.store
    source = backend.make("Fix the parser")
    made, dropped = store.add_suggestions(["fix the parser", "Add docs for the parser", "Add a fuzzer"],
                                          source=source, prefix="gw", actor="agent", max_per_task=1, backlog_cap=10)
    assert dropped == {"already_open": 1, "over_task_cap": 1, "over_backlog_cap": 0}
    suggested = store.get_task(made[0])
    assert (suggested.title, suggested.labels, suggested.priority) == ("Add docs for the parser", ["suggested"], 3)
    assert [(d.depends_on_id, d.type) for d in suggested.dependencies] == [(source, "discovered-from")]
    assert store.common_prefix() == "gw"


# -- TaskStatus: every transition writes its event in the same transaction -----------------------


def test_a_transition_writes_its_event_with_it(backend):
    store = backend.store
    task_id = backend.make("a task")
    moved = store.transition(task_id, "blocked", actor="tester", reason="waits on a person")
    assert moved.status == "blocked" and store.get_task(task_id).status == "blocked"
    assert status_events(store, task_id)[-1] == ("open", "blocked", "tester")
    assert [e.detail.get("reason") for e in store.events(task_id) if e.kind == "status"][-1] == "waits on a person"


def test_a_refused_transition_changes_nothing_and_writes_no_event(backend):
    store = backend.store
    task_id = backend.make("a task")
    store.close_task(task_id, actor="tester")
    before = status_events(store, task_id)
    with pytest.raises(TransitionError, match="allowed: open"):
        store.transition(task_id, "in_progress", actor="tester")
    with pytest.raises(TransitionError, match="is closed, not open"):
        store.transition(task_id, "open", actor="tester", expected="open")
    assert store.get_task(task_id).status == "closed"
    assert status_events(store, task_id) == before


def test_a_transition_whose_transaction_fails_leaves_no_status_and_no_event(backend):
    store = backend.store
    task_id = backend.make("a task")
    with pytest.raises((Refused, TrackerError)):
        with backend.failing():
            store.transition(task_id, "blocked", actor="tester")
    assert status_events(store, task_id) == []
    assert store.get_task(task_id).status == "open"


def test_send_back_moves_the_task_with_its_note_and_holds_it_back_until_retry_at(backend):
    store = backend.store
    task_id = backend.make("a task")
    store.claim(task_id, "gasworks:w1", lease_seconds=LEASE, now=1000.0)
    back = store.send_back(task_id, to_status="open", note="the gate failed", actor="gasworks",
                           add_labels=["retried"], retry_at=2000.0)
    assert back.status == "open" and "the gate failed" in back.notes and "retried" in back.labels
    assert back.assignee == ""
    assert store.claim_next("gasworks:w2", lease_seconds=LEASE, now=1500.0) is None
    assert store.claim_next("gasworks:w2", lease_seconds=LEASE, now=2001.0).id == task_id


# -- Claims: one holder at a time, with a lease ----------------------------------------------------


def test_a_claimed_task_cannot_be_claimed_again_from_another_host(backend):
    mine, theirs = backend.store, backend.elsewhere()
    task_id = backend.make("one task")
    assert [t.id for t in theirs.ready()] == [task_id]  # the other store has seen it open
    claimed = mine.claim_next("gasworks:a", lease_seconds=LEASE)
    assert claimed is not None and (claimed.id, claimed.status, claimed.assignee) == \
        (task_id, "in_progress", "gasworks:a")
    with pytest.raises(ClaimError):
        theirs.claim(task_id, "gasworks:b", lease_seconds=LEASE)
    assert theirs.claim_next("gasworks:b", lease_seconds=LEASE) is None
    assert mine.get_task(task_id).assignee == "gasworks:a"
    assert mine.claims([task_id]) == {task_id: "gasworks:a"}


def test_a_lease_is_renewed_by_its_holder_and_released_when_it_runs_out(backend):
    store = backend.store
    task_id = backend.make("a task")
    store.claim(task_id, "gasworks:a", lease_seconds=10, now=1000.0)
    assert store.renew_lease(task_id, "gasworks:a", lease_seconds=10, now=1005.0)
    assert not store.renew_lease(task_id, "gasworks:b", lease_seconds=10, now=1005.0)
    assert store.release_expired(now=1014.0) == []  # renewed until 1015
    assert store.release_expired(now=1016.0) == [task_id]
    assert store.get_task(task_id).status == "open"
    assert not store.renew_lease(task_id, "gasworks:a", lease_seconds=10, now=1017.0)
    assert store.claim_next("gasworks:b", lease_seconds=10, now=1017.0).id == task_id


# -- Attempts: started, recorded, finished once ---------------------------------------------------


def test_an_attempt_is_started_recorded_and_finished_once_moving_its_task(backend):
    store = backend.store
    task_id = backend.make("a task")
    store.claim(task_id, "gasworks:w1", lease_seconds=LEASE)
    attempt = store.start_attempt(task_id, slot="w1", log_path="", branch="gasworks/x", base_commit="abc")
    store.set_attempt_process(attempt.id, 4242, 1.5, "/logs/1.log")
    store.set_attempt_tokens(attempt.id, 100, 20)
    running = store.attempts(running=True)
    assert [(a.id, a.pid, a.log_path, a.tokens_in, a.tokens_out) for a in running] == \
        [(attempt.id, 4242, "/logs/1.log", 100, 20)]
    done = store.finish_attempt(attempt.id, outcome="failed", exit_code=1, note="tests failed",
                                task_status="open", add_labels=["flaky"])
    assert done.ended_at and done.outcome == "failed" and done.exit_code == 1
    task = store.get_task(task_id)
    assert (task.status, task.assignee) == ("open", "") and "flaky" in task.labels
    assert store.attempts(running=True) == [] and store.failed_attempts(task_id) == 1
    again = store.finish_attempt(attempt.id, outcome="success", task_status="closed")  # a second reaper
    assert again.outcome == "failed" and store.get_task(task_id).status == "open"
    kinds = [e.kind for e in store.events(task_id)]
    assert kinds.index("attempt_started") < kinds.index("attempt_finished")


# -- MergeQueue: queued in order, landed as one compare-and-set --------------------------------------


def merging_task(backend, title: str) -> str:
    task_id = backend.make(title)
    backend.store.claim(task_id, "gasworks:w1", lease_seconds=LEASE)
    backend.store.transition(task_id, "merging", actor="gasworks:w1")
    return task_id


def test_merges_queue_in_order_and_landing_closes_their_tasks(backend):
    store = backend.store
    first, second = merging_task(backend, "first"), merging_task(backend, "second")
    queued = [store.enqueue_merge(first, "gasworks/a", "c1"), store.enqueue_merge(second, "gasworks/b", "c2")]
    waiting = store.merges(statuses=[MergeStatus.QUEUED.value], oldest_first=True)
    assert [(m.task_id, m.branch, m.head) for m in waiting] == \
        [(first, "gasworks/a", "c1"), (second, "gasworks/b", "c2")]
    store.update_merge(queued[0].id, status=MergeStatus.MERGING.value)
    assert store.merge(queued[0].id).status == MergeStatus.MERGING.value
    store.record_gate_run([m.id for m in queued], seconds=2.0, passed=True)
    moved: list[str] = []
    outcome = store.land([m.id for m in queued], "f" * 40, lambda: (moved.append("target"), ("landed", ""))[1],
                         actor="refinery")
    assert outcome == ("landed", "") and moved == ["target"]
    assert [store.get_task(t).status for t in (first, second)] == ["closed", "closed"]
    assert {m.status for m in store.merges(task_id=first)} == {MergeStatus.LANDED.value}
    assert store.merge(queued[1].id).landed_commit == "f" * 40
    assert store.gate_run_totals() == {"runs": 1, "failed": 0, "seconds": 2.0}


def test_a_merge_whose_task_changed_meanwhile_does_not_land_or_move_the_target(backend):
    store = backend.store
    task_id = merging_task(backend, "cancelled during its gate")
    merge = store.enqueue_merge(task_id, "gasworks/a", "c1")
    store.close_task(task_id, actor="tester", reason="cancelled")
    moved: list[str] = []
    outcome, why = store.land([merge.id], "f" * 40, lambda: (moved.append("target"), ("landed", ""))[1],
                              actor="refinery")
    assert outcome == "changed" and f"{task_id} is closed" in why and moved == []
    assert store.merge(merge.id).status == MergeStatus.QUEUED.value


# -- Locks: one holder, let go cleanly, taken over when the holder is gone --------------------------


def test_a_lock_has_one_holder_until_it_is_let_go(backend):
    mine, theirs = backend.store, backend.reopen()
    assert mine.take_lock("refinery", "a", ttl=30) == (True, "")
    assert mine.take_lock("refinery", "a", ttl=30) == (True, "")  # renewed by its holder: not a takeover
    assert not theirs.acquire_lock("refinery", "b", ttl=30)
    assert theirs.take_lock("refinery", "b", ttl=30) == (False, "")
    assert theirs.lock_owner("refinery") == "a"
    mine.release_lock("refinery", "a")
    assert theirs.take_lock("refinery", "b", ttl=30) == (True, "")  # let go cleanly: taken from nobody
    assert mine.lock_owner("refinery") == "b"


def test_a_lock_whose_holder_is_gone_is_taken_over_naming_it(backend):
    mine, theirs = backend.store, backend.reopen()
    assert mine.acquire_lock("refinery", "a", ttl=30, now=1000.0)
    assert not theirs.acquire_lock("refinery", "b", ttl=30, now=1010.0)
    if backend.kind == "postgres":
        mine.close()  # there the advisory lock decides: it goes with its holder's connection, which the
    deadline = time.monotonic() + 30  # server ends a moment later; SQLite and bd: the lease ran out
    while (taken := theirs.take_lock("refinery", "b", ttl=30, now=1031.0)) == (False, ""):
        assert backend.kind == "postgres" and time.monotonic() < deadline, "the lock was never taken over"
        time.sleep(0.05)
    assert taken == (True, "a")
    assert theirs.lock_owner("refinery") == "b"
    theirs.release_lock("refinery", "b")
    assert backend.reopen().take_lock("refinery", "c", ttl=30) == (True, "")


# -- Tracking: the optional capability --------------------------------------------------------------


def test_a_store_keeping_its_own_tasks_does_nothing_at_a_runs_edges(backend):
    if backend.kind == "beads":
        pytest.skip("bd keeps the tasks here: see the next test")
    task_id = backend.make("a task")
    backend.store.claim(task_id, "gasworks:w1", lease_seconds=LEASE)
    assert backend.store.reconcile("gasworks:") == []
    assert backend.store.after_run() == []
    assert backend.store.get_task(task_id).status == "in_progress"


def test_with_bd_a_run_takes_back_bds_claims_and_syncs_at_its_end(backend):
    if backend.kind != "beads":
        pytest.skip("only an outside tracker has claims of its own to take")
    store = backend.store
    task_id = backend.make("claimed in bd, never recorded here")
    bd = store.bd
    bd.run(["update"], ["--claim"], [task_id], actor="gasworks:w1")
    taken = store.reconcile("gasworks:")
    assert taken == [f"{task_id} is in_progress in bd, claimed by gasworks:w1: taken from bd"]
    assert store.reconcile("gasworks:") == []  # taken once
    assert store.after_run() == ["ran `bd sync`"]
