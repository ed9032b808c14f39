"""transition(), claims and leases, dependency cycles, ids, events."""

from __future__ import annotations

import re

import pytest

from gasworks.errors import ClaimError, CycleError, InvalidValueError, NotFoundError, TransitionError
from gasworks.models import ALLOWED_TRANSITIONS, Task

# A dispatcher's claim (gasworks:<host>/<slot>): one whose lease ran out is released in bd too, acting as it.
DEAD = "gasworks:host/dead-agent"


@pytest.fixture
def store(backend):
    """Part of the store contract: SQLite, PostgreSQL, and Beads over the bd stand-in (conftest.backend)."""
    return backend.store


def test_transition_writes_an_event_in_the_same_transaction(store, make):
    task_id = make("t")
    store.transition(task_id, "blocked", actor="alice", reason="waiting on vendor")
    events = [e for e in store.events(task_id) if e.kind == "status"]
    assert [(e.old_value, e.new_value, e.actor) for e in events] == [("open", "blocked", "alice")]
    assert events[0].detail == {"reason": "waiting on vendor"}


def test_disallowed_transition_is_refused_and_names_the_choices(store, make):
    task_id = make("t")
    store.transition(task_id, "closed", actor="t")
    with pytest.raises(TransitionError, match=r"cannot go from closed to in_progress \(allowed: open\)"):
        store.transition(task_id, "in_progress", actor="t")
    assert store.get_task(task_id).status == "closed"
    assert [e.new_value for e in store.events(task_id) if e.kind == "status"] == ["closed"]


def test_every_table_entry_is_reachable_and_recorded(store, make):
    for source, targets in ALLOWED_TRANSITIONS.items():
        for target in targets:
            task_id = make(f"{source}->{target}")
            if source != "open":
                path = {"merging": ["in_progress"], "closed": []}.get(source, [])
                for step in [*path, source]:
                    store.transition(task_id, step, actor="t")
            store.transition(task_id, target, actor="t")
            assert store.get_task(task_id).status == target


def test_compare_and_set_on_expected_status(store, make):
    task_id = make("t")
    with pytest.raises(TransitionError, match="is open, not in_progress"):
        store.transition(task_id, "closed", actor="t", expected="in_progress")
    assert store.get_task(task_id).status == "open"


def test_close_sets_and_reopen_clears_closed_fields(store, make):
    task_id = make("t")
    closed = store.close_task(task_id, actor="t", reason="done and dusted")
    assert closed.status == "closed" and closed.closed_at and closed.close_reason == "done and dusted"
    reopened = store.transition(task_id, "open", actor="t")
    assert (reopened.closed_at, reopened.close_reason) == ("", "")
    assert store.close_task(task_id, actor="t").close_reason == "Closed"


def test_epic_with_open_children_needs_force(store, make):
    epic = make("epic", issue_type="epic")
    child = make("child", parent=epic)
    with pytest.raises(TransitionError, match=re.escape(child)):
        store.close_task(epic, actor="t")
    assert store.close_task(epic, actor="t", force=True).status == "closed"


def test_claim_sets_assignee_and_lease_and_is_never_doubled(store, make):
    task_id = make("t")
    task = store.claim(task_id, "agent-1", lease_seconds=60, now=1000.0)
    assert (task.status, task.assignee, task.lease_expires_at) == ("in_progress", "agent-1", 1060.0)
    with pytest.raises(ClaimError, match="already claimed by agent-1"):
        store.claim(task_id, "agent-2", lease_seconds=60, now=1001.0)
    # Even the same name may not claim twice: that is how double work starts.
    with pytest.raises(ClaimError, match="already claimed"):
        store.claim(task_id, "agent-1", lease_seconds=60, now=1001.0)


def test_claim_refuses_blocked_and_non_open(store, make):
    blocker = make("blocker")
    waiting = make("waiting", deps=[(blocker, "blocks")])
    with pytest.raises(ClaimError, match="blocked"):
        store.claim(waiting, "a", lease_seconds=60)
    store.close_task(blocker, actor="t")
    with pytest.raises(ClaimError, match="closed"):
        store.claim(blocker, "a", lease_seconds=60)
    with pytest.raises(NotFoundError):
        store.claim("gw-nope", "a", lease_seconds=60)


def test_claim_next_takes_ready_tasks_in_order_then_none(store, make):
    second = make("second", priority=2)
    first = make("first", priority=1)
    make("someone else's", assignee="bob")
    assert store.claim_next("a", lease_seconds=60).id == first
    assert store.claim_next("b", lease_seconds=60).id == second
    assert store.claim_next("c", lease_seconds=60) is None
    assert store.claim_next("bob", lease_seconds=60).title == "someone else's"


def test_claims_say_who_holds_the_tasks_still_in_progress(store, make):
    first, second, third = make("first"), make("second"), make("third")
    store.claim_next("a", lease_seconds=60)
    store.claim_next("b", lease_seconds=60)
    store.close_task(second, actor="someone", reason="cancelled", force=True)  # bd: b holds it
    assert store.claims([first, second, third, "gw-nope"]) == {first: "a"}
    assert store.claims([]) == {}


def test_expired_lease_is_released_and_the_task_claimable_again(store, make):
    task_id = make("t")
    store.claim(task_id, DEAD, lease_seconds=10, now=1000.0)
    assert store.release_expired(now=1005.0) == []
    assert store.renew_lease(task_id, DEAD, lease_seconds=10, now=1005.0)
    assert store.release_expired(now=1014.0) == []
    assert store.release_expired(now=1016.0) == [task_id]
    assert store.release_expired(now=1016.0) == []  # idempotent
    task = store.get_task(task_id)
    assert (task.status, task.assignee, task.lease_expires_at) == ("open", "", None)
    assert not store.renew_lease(task_id, DEAD, lease_seconds=10, now=1017.0)
    assert store.claim_next("new-agent", lease_seconds=10, now=1017.0).id == task_id
    kinds = [(e.old_value, e.new_value, e.detail.get("lease_expired")) for e in store.events(task_id)
             if e.kind == "status"]
    assert kinds == [("open", "in_progress", None), ("in_progress", "open", True), ("open", "in_progress", None)]


def test_claim_next_reaps_expired_leases_itself(store, make):
    task_id = make("t")
    store.claim(task_id, DEAD, lease_seconds=10, now=1000.0)
    assert store.claim_next("b", lease_seconds=10, now=1005.0) is None
    assert store.claim_next("b", lease_seconds=10, now=1011.0).id == task_id


def test_lease_must_be_positive(store, make):
    with pytest.raises(InvalidValueError):
        store.claim(make("t"), "a", lease_seconds=0)


def test_cycle_is_refused_with_the_cycle_named(store, make):
    a = make("a")
    b = make("b", deps=[(a, "blocks")])
    c = make("c", deps=[(b, "blocks")])
    with pytest.raises(CycleError, match=f"{a} -> {c} -> {b} -> {a}"):
        store.add_dependency(a, c, "blocks", actor="t")
    with pytest.raises(CycleError, match="itself"):
        store.add_dependency(a, a, "blocks", actor="t")
    assert store.blockers(a) == []


def test_cycle_through_parent_child_is_refused(store, make):
    epic = make("epic", issue_type="epic")
    child = make("child", parent=epic)
    with pytest.raises(CycleError):
        store.add_dependency(epic, child, "blocks", actor="t")


def test_links_may_form_loops(store, make):
    a = make("a")
    b = make("b", deps=[(a, "related")])
    store.add_dependency(a, b, "related", actor="t")
    assert {t.id for t in store.ready()} == {a, b}


def test_import_leaves_out_the_edge_that_closes_a_blocking_cycle_as_beads_does(store, backend):
    backend.not_with("beads", "tasks live in bd, which imports them itself (`bd import`)")
    from gasworks.models import Dependency

    tasks = [Task("x-a", "a", dependencies=[Dependency("x-a", "x-b", "blocks")]),
             Task("x-b", "b", dependencies=[Dependency("x-b", "x-a", "blocks")])]
    result = store.import_tasks(tasks, prefix="gw", actor="t")
    assert result.created == 2
    assert result.warnings == ["skipped dependency x-b -> x-a (blocks): it would close a cycle of blocking edges"]
    assert [d.depends_on_id for d in store.get_task("x-b").dependencies] == []
    assert [t.id for t in store.ready()] == ["x-b"]


def test_ids_have_prefix_and_four_base36_chars_and_children_count_up(store, make):
    first = make("one")
    assert re.fullmatch(r"gw-[0-9a-z]{4}", first)
    ids = {make(f"task {i}") for i in range(300)}
    assert len(ids) == 300 and all(re.fullmatch(r"gw-[0-9a-z]{4,8}", i) for i in ids)
    epic = make("epic", issue_type="epic")
    assert [make(f"c{i}", parent=epic) for i in range(3)] == [f"{epic}.1", f"{epic}.2", f"{epic}.3"]


def test_id_grows_on_collision(store, make, monkeypatch, backend):
    backend.not_with("beads", "bd makes the ids")
    from gasworks import ids

    monkeypatch.setattr(ids, "NONCES_PER_LENGTH", 1)
    monkeypatch.setattr(ids, "hash_suffix", lambda seed, length: "z" * length)
    assert make("a") == "gw-zzzz"
    assert make("b") == "gw-zzzzz"


def test_children_inherit_parent_labels(store, make):
    epic = make("epic", issue_type="epic", labels=["area:ui"])
    child = make("child", parent=epic, labels=["extra"])
    assert store.get_task(child).labels == ["area:ui", "extra"]


def test_update_fields_and_labels(store, make):
    task_id = make("t", labels=["a"])
    store.update_fields(task_id, actor="t", title="new title", priority=0, notes="n")
    store.change_labels(task_id, actor="t", add=["b"], remove=["a"])
    task = store.get_task(task_id)
    assert (task.title, task.priority, task.notes, task.labels) == ("new title", 0, "n", ["b"])
    with pytest.raises(InvalidValueError, match="cannot update status"):
        store.update_fields(task_id, actor="t", status="closed")


def test_resolve_partial_ids(store, make):
    task_id = make("t")
    assert store.resolve_id(task_id[:5]) == task_id
    with pytest.raises(NotFoundError):
        store.resolve_id("zz-nothing")


def test_unknown_status_from_beads_can_only_go_to_open_or_closed(store, backend):
    backend.not_with("beads", "tasks live in bd, which imports them itself (`bd import`)")
    store.import_tasks([Task("x-c", "custom", status="review")], prefix="gw", actor="t")
    with pytest.raises(TransitionError, match="allowed: closed, open"):
        store.transition("x-c", "in_progress", actor="t")
    assert store.transition("x-c", "open", actor="t").status == "open"
