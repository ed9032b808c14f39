"""ready(): open, nothing unfinished in the way (blocks, parent chain, waits-for), by priority then age."""

from __future__ import annotations

import pytest

from gasworks.errors import TransitionError
from gasworks.models import Dependency, Task


@pytest.fixture
def store(backend):
    """Part of the store contract: SQLite, PostgreSQL, and Beads over the bd stand-in (conftest.backend)."""
    return backend.store


def ready_ids(store) -> list[str]:
    return [t.id for t in store.ready()]


def test_orders_by_priority_then_age(store, make):
    low = make("low", priority=3)
    first = make("first", priority=1)
    second = make("second", priority=1)
    top = make("top", priority=0)
    assert ready_ids(store) == [top, first, second, low]
    assert [t.id for t in store.ready(limit=2)] == [top, first]


def test_open_blocker_blocks_until_closed(store, make):
    blocker = make("blocker")
    waiting = make("waiting", deps=[(blocker, "blocks")])
    assert ready_ids(store) == [blocker]
    assert store.is_blocked(waiting) and store.blockers(waiting) == [blocker]
    store.close_task(blocker, actor="t")
    assert ready_ids(store) == [waiting]
    assert not store.is_blocked(waiting)


def test_in_progress_blocker_still_blocks(store, make):
    blocker = make("blocker")
    waiting = make("waiting", deps=[(blocker, "blocks")])
    store.claim(blocker, "agent", lease_seconds=60)
    assert ready_ids(store) == []
    store.close_task(blocker, actor="agent")
    assert ready_ids(store) == [waiting]


def test_links_do_not_block(store, make):
    other = make("other")
    related = make("related", deps=[(other, "related")])
    found = make("found", deps=[(other, "discovered-from")])
    assert set(ready_ids(store)) == {other, related, found}


def test_child_of_blocked_epic_is_blocked_transitively(store, make):
    gate = make("gate")
    epic = make("epic", issue_type="epic", deps=[(gate, "blocks")])
    child = make("child", parent=epic)
    grandchild = make("grandchild", parent=child)
    assert child == f"{epic}.1" and grandchild == f"{epic}.1.1"
    assert ready_ids(store) == [gate]
    store.close_task(gate, actor="t")
    # The epic itself is bookkeeping, never handed to an agent; its children are work.
    assert ready_ids(store) == [child, grandchild]


def test_open_children_do_not_block_each_other_or_need_the_epic_closed(store, make):
    epic = make("epic", issue_type="epic")
    a = make("a", parent=epic)
    b = make("b", parent=epic)
    assert ready_ids(store) == [a, b]


def test_closed_ancestor_does_not_pass_its_blockers_down(store, make, backend):
    backend.not_with("beads", "bd will not close a parent whose children are open")
    gate = make("gate")
    parent = make("parent", deps=[(gate, "blocks")])
    child = make("child", parent=parent)
    store.transition(parent, "closed", actor="t")
    assert child in ready_ids(store)


def test_only_open_status_is_ready(store, make):
    ids = {s: make(s) for s in ("open", "blocked", "deferred", "pinned", "in_progress")}
    for status, task_id in ids.items():
        if status != "open":
            store.transition(task_id, status, actor="t")
    assert ready_ids(store) == [ids["open"]]


def test_pinned_blocker_does_not_block(store, make):
    blocker = make("blocker")
    waiting = make("waiting", deps=[(blocker, "blocks")])
    store.transition(blocker, "pinned", actor="t")
    assert waiting in ready_ids(store)


def _imported(store, *tasks: Task) -> None:
    store.import_tasks(list(tasks), prefix="gw", actor="t")


def test_conditional_blocks_and_waits_for_gate_readiness(store, backend):
    backend.not_with("beads", "tasks live in bd, which imports them itself (`bd import`)")
    t0 = "2026-01-01T00:00:00Z"
    _imported(
        store,
        Task("x-gate", "gate task", created_at=t0, updated_at=t0),
        Task("x-cond", "conditional", created_at=t0, updated_at=t0,
             dependencies=[Dependency("x-cond", "x-gate", "conditional-blocks")]),
        Task("x-spawner", "spawner", issue_type="epic", created_at=t0, updated_at=t0),
        Task("x-spawner.1", "child one", created_at=t0, updated_at=t0,
             dependencies=[Dependency("x-spawner.1", "x-spawner", "parent-child")]),
        Task("x-spawner.2", "child two", created_at=t0, updated_at=t0,
             dependencies=[Dependency("x-spawner.2", "x-spawner", "parent-child")]),
        Task("x-all", "waits for all", created_at=t0, updated_at=t0,
             dependencies=[Dependency("x-all", "x-spawner", "waits-for")]),
        Task("x-any", "waits for any", created_at=t0, updated_at=t0,
             dependencies=[Dependency("x-any", "x-spawner", "waits-for",
                                      extra={"metadata": {"gate": "any-children"}})]),
    )
    assert set(ready_ids(store)) == {"x-gate", "x-spawner.1", "x-spawner.2"}
    store.close_task("x-spawner.1", actor="t")
    assert set(ready_ids(store)) == {"x-gate", "x-spawner.2", "x-any"}
    store.close_task("x-spawner.2", actor="t")
    store.close_task("x-gate", actor="t")
    assert set(ready_ids(store)) == {"x-cond", "x-any", "x-all"}


def test_missing_or_external_blocker_does_not_block(store, make, backend):
    backend.not_with("beads", "bd create --deps reads KIND:ID, so it cannot name an external:PROJECT:WHAT ref")
    waiting = make("waiting", deps=[("external:other:thing", "blocks")])
    assert ready_ids(store) == [waiting]


@pytest.mark.parametrize("issue_type", ["epic", "molecule", "gate"])
def test_bookkeeping_types_are_not_ready(store, make, issue_type, backend):
    if issue_type != "epic":
        backend.not_with("beads", "tasks live in bd, which imports them itself (`bd import`)")
    make("bookkeeping", issue_type=issue_type) if issue_type == "epic" else _imported(
        store, Task("x-b", "b", issue_type=issue_type))
    assert ready_ids(store) == []


def test_tasks_imported_without_times_keep_the_file_order(store, backend):
    """One microsecond apart, exactly: a float epoch gave some neighbours the same time, and then
    the random ids decided their order."""
    backend.not_with("beads", "tasks live in bd, which imports them itself (`bd import`)")
    from gasworks.models import Task

    tasks = [Task(id="", title=f"line {n:04d}") for n in range(3000)]
    store.import_tasks(tasks, prefix="gw", actor="t")
    assert [t.title for t in store.ready()] == [f"line {n:04d}" for n in range(3000)]


def test_slung_tasks_run_next_in_the_order_given_and_a_later_sling_goes_first(store, make):
    low, mid, high = make("low", priority=4), make("mid", priority=3), make("top", priority=0)
    blocker = make("blocker", priority=1)
    waiting = make("waits", priority=4, deps=[(blocker, "blocks")])
    store.sling([mid, low], actor="t", now=1000.0)
    assert [t.id for t in store.ready()] == [mid, low, high, blocker]
    store.sling([waiting, high], actor="t", now=1000.5)
    assert [t.id for t in store.ready()] == [high, mid, low, blocker]  # waits stays held back
    store.close_task(blocker, actor="t")
    assert [t.id for t in store.ready()][:2] == [waiting, high]
    assert store.claim_next("w1", lease_seconds=60).id == waiting
    assert [e.kind for e in store.events(mid)].count("slung") == 1


def test_a_closed_task_cannot_be_slung(store, make):
    done = make("done")
    store.close_task(done, actor="t")
    with pytest.raises(TransitionError, match="closed: reopen it first"):
        store.sling([done], actor="t")
