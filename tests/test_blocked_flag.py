"""The stored `blocked` flag always equals Beads' definition, computed from scratch, after any write."""

from __future__ import annotations

import random

import pytest

from gasworks.errors import GasworksError
from gasworks.models import Dependency, Task
from gasworks.store import rows as store_rows

STATUSES = ["open", "in_progress", "blocked", "deferred", "pinned", "closed"]
EDGE_TYPES = ["blocks", "parent-child", "conditional-blocks", "waits-for", "related", "discovered-from"]


def assert_flags_match_definition(store) -> None:
    with store._tx() as db:
        rows = db.execute(f"SELECT t.id, t.blocked, {store_rows.BLOCKED_PREDICATE} FROM tasks t").fetchall()
    wrong = [(r[0], r[1], r[2]) for r in rows if r[1] != r[2]]
    assert wrong == [], f"stored vs. defined blocked flag differ: {wrong[:5]}"


@pytest.mark.parametrize("seed", range(6))
def test_random_writes_keep_the_flag_exact(store, seed):
    rng = random.Random(seed)
    ids: list[str] = []
    for step in range(250):
        action = rng.random()
        try:
            if action < 0.25 or len(ids) < 4:
                ids.append(store.create_task(
                    __import__("gasworks.store", fromlist=["NewTask"]).NewTask(
                        f"t{step}", parent=rng.choice(ids) if ids and rng.random() < 0.3 else "",
                        deps=[(rng.choice(ids), rng.choice(EDGE_TYPES))] if ids and rng.random() < 0.5 else []),
                    prefix="gw", actor="t").id)
            elif action < 0.55:
                a, b = rng.sample(ids, 2)
                store.add_dependency(a, b, rng.choice(EDGE_TYPES), actor="t")
            elif action < 0.65:
                task_id = rng.choice(ids)
                deps = store.get_task(task_id).dependencies
                if deps:
                    store.remove_dependency(task_id, rng.choice(deps).depends_on_id, actor="t")
            elif action < 0.75:
                store.claim_next(f"w{step}", lease_seconds=5, now=1000.0 + step)
                store.release_expired(now=1000.0 + step)
            else:
                store.transition(rng.choice(ids), rng.choice(STATUSES), actor="t")
        except GasworksError:
            pass  # refused cycles and transitions are part of the game
        assert_flags_match_definition(store)
    assert any(store.is_blocked(i) for i in ids) and store.ready()


def test_import_sets_the_flag_for_everything(store):
    tasks = [Task("x-a", "a"), Task("x-e", "epic", issue_type="epic",
                                    dependencies=[Dependency("x-e", "x-a", "blocks")]),
             Task("x-e.1", "child", dependencies=[Dependency("x-e.1", "x-e", "parent-child")]),
             Task("x-e.1.1", "grandchild", dependencies=[Dependency("x-e.1.1", "x-e.1", "parent-child")])]
    store.import_tasks(tasks, prefix="gw", actor="t")
    assert_flags_match_definition(store)
    assert [store.is_blocked(i) for i in ("x-a", "x-e", "x-e.1", "x-e.1.1")] == [False, True, True, True]
    store.close_task("x-a", actor="t")
    assert [t.id for t in store.ready()] == ["x-e.1", "x-e.1.1"]
    assert_flags_match_definition(store)
