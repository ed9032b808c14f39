"""Named locks (the refinery's): who holds them, and whom a lock was taken from."""

from __future__ import annotations

import time

from gasworks.store.postgres import PostgresStore


def test_a_lock_let_go_cleanly_is_not_reported_as_taken_over(store):
    assert store.take_lock("refinery", "a", ttl=60, now=1000) == (True, "")
    assert store.take_lock("refinery", "b", ttl=60, now=1001) == (False, "")
    assert store.take_lock("refinery", "a", ttl=60, now=1002) == (True, "")  # renewing is not a takeover
    store.release_lock("refinery", "a")
    assert store.take_lock("refinery", "b", ttl=60, now=1003) == (True, "")


def test_on_sqlite_a_lease_that_ran_out_is_taken_over_naming_its_holder(tmp_path):
    from gasworks.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "s.db")
    try:
        assert store.take_lock("refinery", "a", ttl=60, now=1000) == (True, "")
        assert store.take_lock("refinery", "b", ttl=60, now=1061) == (True, "a")
    finally:
        store.close()


def test_on_postgresql_the_lock_goes_with_its_holders_connection(pg_url):
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        assert first.take_lock("refinery", "host-1", ttl=3600) == (True, "")
        assert second.take_lock("refinery", "host-2", ttl=3600) == (False, "")  # the lease does not matter
        first.close()  # its host dies: PostgreSQL ends the session and the advisory lock with it
        deadline = time.monotonic() + 30  # the server's backend for that session exits a moment later
        while (taken := second.take_lock("refinery", "host-2", ttl=3600)) == (False, ""):
            assert time.monotonic() < deadline, "the dead session's lock was never released"
            time.sleep(0.05)
        assert taken == (True, "host-1")
        assert second.lock_owner("refinery") == "host-2"
        second.release_lock("refinery", "host-2")
        third = PostgresStore(pg_url)
        try:
            assert third.take_lock("refinery", "host-3", ttl=3600) == (True, "")
        finally:
            third.close()
    finally:
        second.close()
