"""Migrations: a blank file migrates to the full schema; a newer schema is refused, not damaged."""

from __future__ import annotations

import gc
import sqlite3

import pytest

from gasworks.errors import StoreError
from gasworks.store import NewTask
from gasworks.store.schema import SCHEMA_VERSION
from gasworks.store import sqlite as sqlite_store
from gasworks.store.sqlite import SQLiteStore


def _schema(path) -> dict[str, set[str]]:
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables}


def test_blank_database_migrates_to_the_full_schema(tmp_path):
    path = tmp_path / "gasworks.db"
    SQLiteStore(path).close()
    schema = _schema(path)
    assert set(schema) == {"tasks", "dependencies", "labels", "comments", "attempts", "events", "merges", "locks",
                           "gate_runs", "memories"}
    assert {"id", "title", "description", "design", "acceptance_criteria", "notes", "status", "priority",
            "issue_type", "assignee", "created_at", "updated_at", "closed_at", "close_reason",
            "lease_expires_at", "extra"} <= schema["tasks"]
    assert {"issue_id", "depends_on_id", "type", "gate"} <= schema["dependencies"]
    assert {"never_ready", "defer_ts"} <= schema["tasks"] and schema["memories"] == {"key", "value"}
    assert {"task_id", "slot", "started_at", "ended_at", "exit_code", "outcome", "log_path"} <= schema["attempts"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_does_not_migrate_again(tmp_path):
    path = tmp_path / "gasworks.db"
    SQLiteStore(path).close()
    before = _schema(path)
    SQLiteStore(path).close()
    assert _schema(path) == before


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "gasworks.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this gasworks understands"):
        SQLiteStore(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "gasworks.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        SQLiteStore(path)


def test_a_store_from_before_the_beads_columns_gets_them_filled_from_what_it_kept(tmp_path):
    """Flags, defer times and gates that rows kept in `extra` before migration 3 count at once."""
    from gasworks.store.schema import M001_INITIAL, M002_SLING_RANK, run_script

    path = tmp_path / "gasworks.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for script in (M001_INITIAL, M002_SLING_RANK):
        run_script(db, script)
    rows = [("x-pinned", '{"pinned": true}'), ("x-later", '{"defer_until": "2999-01-01T00:00:00Z"}'),
            ("x-plain", "{}"), ("x-any", "{}"), ("x-s", "{}"), ("x-s.1", "{}"), ("x-s.2", "{}")]
    db.executemany("INSERT INTO tasks (id, title, status, created_at, created_ts, updated_at, extra) "
                   "VALUES (?, 't', 'open', '2026-01-01T00:00:00Z', 0, '2026-01-01T00:00:00Z', ?)", rows)
    db.execute("UPDATE tasks SET status = 'closed' WHERE id = 'x-s.1'")
    edges = [("x-s.1", "x-s", "parent-child", "{}"), ("x-s.2", "x-s", "parent-child", "{}"),
             ("x-any", "x-s", "waits-for", '{"metadata": "{\\"gate\\":\\"any-children\\"}"}')]
    db.executemany("INSERT INTO dependencies (issue_id, depends_on_id, type, created_at, extra) "
                   "VALUES (?, ?, ?, '', ?)", edges)
    db.execute("PRAGMA user_version = 2")
    db.execute("COMMIT")
    db.close()
    store = SQLiteStore(path)
    assert {t.id for t in store.ready()} == {"x-plain", "x-any", "x-s", "x-s.2"}
    store.close()


def test_a_store_at_this_version_opens_and_reads_while_a_writer_holds_it(tmp_path, monkeypatch):
    """Opening checks the schema version without taking the write lock: `gasworks ready` answers in
    the middle of another process's write instead of waiting for it."""
    path = tmp_path / "gasworks.db"
    SQLiteStore(path).close()
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_SECONDS", 0.2)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        store = SQLiteStore(path)
        assert store.ready() == []
        store.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _wal_size(path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_closing_keeps_the_wal_and_loses_nothing(tmp_path):
    """The last connection's checkpoint on closing (fsyncs on every writing command) is not made:
    the WAL stays, and what was committed is all there for the next opener."""
    path = tmp_path / "gasworks.db"
    store = SQLiteStore(path)
    made = store.create_task(NewTask(title="kept"), actor="tester", prefix="gw")
    store.close()
    assert _wal_size(path) > 0
    reopened = SQLiteStore(path)
    assert [t.id for t in reopened.ready()] == [made.id]
    reopened.close()  # a reading close does not checkpoint either
    assert _wal_size(path) > 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT title FROM tasks").fetchall() == [("kept",)]
    db.close()


def test_a_store_dropped_without_close_keeps_the_wal_too(tmp_path):
    path = tmp_path / "gasworks.db"
    store = SQLiteStore(path)
    store.create_task(NewTask(title="kept"), actor="tester", prefix="gw")
    del store  # as the CLI leaves it: closed when dropped or at exit
    gc.collect()
    assert _wal_size(path) > 0
    db = sqlite3.connect(path)
    assert db.execute("SELECT title FROM tasks").fetchall() == [("kept",)]
    db.close()


def test_the_kept_wal_stays_small_and_loses_nothing(tmp_path):
    """A process that opens the store while no other has it open reads the whole WAL, and across
    processes SQLite never starts it over: a closing store checkpoints a WAL past WAL_KEEP_BYTES,
    so it stays small (always kept, it grew by every commit), and every commit is still there."""
    path = tmp_path / "gasworks.db"
    made = []
    for number in range(150):  # about 5 pages each: 3 MB of WAL if it were always kept
        store = SQLiteStore(path)
        made.append(store.create_task(NewTask(title=f"task {number}"), actor="tester", prefix="gw").id)
        store.close()
        assert _wal_size(path) <= sqlite_store.WAL_KEEP_BYTES + 20 * (4096 + 24)  # one commit more at most
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sorted(row[0] for row in db.execute("SELECT id FROM tasks")) == sorted(made)
    db.close()
