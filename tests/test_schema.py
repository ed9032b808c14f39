"""Migrations: a blank file migrates to the full schema; a newer schema is refused, not damaged."""

from __future__ import annotations

import sqlite3

import pytest

from gasworks.errors import StoreError
from gasworks.store.schema import SCHEMA_VERSION
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
