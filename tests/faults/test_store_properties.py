"""Random sequences of store operations keep the store's invariants (hypothesis, stateful)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gasworks.errors import GasworksError
from gasworks.models import DONE_STATUSES
from gasworks.store import NewTask
from gasworks.store import rows as store_rows
from gasworks.store.sqlite import SQLiteStore

STATUSES = ["open", "in_progress", "blocked", "deferred", "closed", "pinned", "merging"]
DEP_TYPES = ["blocks", "parent-child", "related", "waits-for", "discovered-from"]


class StoreMachine(RuleBasedStateMachine):
    @initialize()
    def open_store(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.store = SQLiteStore(Path(self.dir.name) / "gasworks.db")
        self.ids: list[str] = []
        self.clock = 1000.0

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    @rule(priority=st.integers(0, 4), parent=st.booleans())
    def create(self, priority: int, parent: bool) -> None:
        new = NewTask(f"task {len(self.ids)}", priority=priority,
                      parent=self.ids[-1] if parent and self.ids else "")
        self.ids.append(self.store.create_task(new, prefix="gw", actor="h").id)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), worker=st.sampled_from(["w1", "w2", "w3"]))
    def claim(self, data: st.DataObject, worker: str) -> None:
        self.clock += data.draw(st.floats(0, 30))
        self.store.claim_next(worker, lease_seconds=20, now=self.clock)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), status=st.sampled_from(STATUSES))
    def transition(self, data: st.DataObject, status: str) -> None:
        try:
            self.store.transition(data.draw(st.sampled_from(self.ids)), status, actor="h")
        except GasworksError:
            pass

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def close_or_reopen(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.ids))
        try:
            if self.store.get_task(task_id).status == "closed":
                self.store.transition(task_id, "open", actor="h")
            else:
                self.store.close_task(task_id, actor="h", force=True)
        except GasworksError:
            pass

    @precondition(lambda self: len(self.ids) >= 2)
    @rule(data=st.data(), dep_type=st.sampled_from(DEP_TYPES), remove=st.booleans())
    def dependency(self, data: st.DataObject, dep_type: str, remove: bool) -> None:
        a, b = data.draw(st.lists(st.sampled_from(self.ids), min_size=2, max_size=2, unique=True))
        try:
            if remove:
                self.store.remove_dependency(a, b, actor="h")
            else:
                self.store.add_dependency(a, b, dep_type, actor="h")
        except GasworksError:
            pass  # cycles and missing edges are refused

    @invariant()
    def ready_tasks_have_nothing_open_in_the_way(self) -> None:
        if not hasattr(self, "store"):
            return
        for task in self.store.ready():
            assert task.status == "open" and not self.store.blockers(task.id)
        with self.store._tx() as db:
            rows = db.execute(f"SELECT t.id, t.blocked, {store_rows.BLOCKED_PREDICATE} FROM tasks t").fetchall()
        assert all(row[1] == row[2] for row in rows)

    @invariant()
    def a_task_is_held_by_at_most_one_worker_at_a_time(self) -> None:
        if not hasattr(self, "store"):
            return
        for task_id in self.ids:
            holder = None
            for event in self.store.events(task_id, limit=10_000):
                if event.kind != "status":
                    continue
                if event.new_value == "in_progress" and event.detail.get("claim"):
                    assert holder is None, f"{task_id} claimed by {event.actor} while {holder} held it"
                    holder = event.actor
                elif event.old_value == "in_progress":
                    holder = None

    @invariant()
    def every_status_change_has_its_event(self) -> None:
        if not hasattr(self, "store"):
            return
        for task in self.store.list_tasks():
            changes = [e for e in self.store.events(task.id, limit=10_000) if e.kind == "status"]
            assert (changes[-1].new_value if changes else "open") == task.status
            for before, after in zip(changes, changes[1:]):
                assert after.old_value == before.new_value
            if task.status in DONE_STATUSES and task.status == "closed":
                assert task.closed_at


StoreMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_store_invariants = StoreMachine.TestCase


class PostgresStoreMachine(StoreMachine):
    """The same rules and invariants on the PostgreSQL store, a fresh database per example."""

    new_database = None  # set by the test from the session's server

    @initialize()
    def open_store(self) -> None:
        from gasworks.store.postgres import PostgresStore

        self.store = PostgresStore(type(self).new_database())
        self.ids = []
        self.clock = 1000.0

    def teardown(self) -> None:
        self.store.close()


def test_store_invariants_on_postgres(pg_server):
    from hypothesis.stateful import run_state_machine_as_test

    PostgresStoreMachine.new_database = pg_server.new_database
    run_state_machine_as_test(PostgresStoreMachine, settings=settings(
        max_examples=25, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]))
