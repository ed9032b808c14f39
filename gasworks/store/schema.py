"""Schema migrations for the SQLite store: an ordered list, version kept in PRAGMA user_version.

Never edit a migration that has shipped; append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _run(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, and a migration must be all-or-nothing.
    for statement in script.split(";\n"):
        if statement.strip():
            db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            design TEXT NOT NULL DEFAULT '',
            acceptance_criteria TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'open',
            priority INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 4),
            issue_type TEXT NOT NULL DEFAULT 'task',
            assignee TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            created_ts REAL NOT NULL,          -- created_at as epoch seconds, for ordering by age
            updated_at TEXT NOT NULL,
            closed_at TEXT NOT NULL DEFAULT '',
            close_reason TEXT NOT NULL DEFAULT '',
            lease_expires_at REAL,             -- epoch seconds; NULL = no lease
            blocked INTEGER NOT NULL DEFAULT 0,  -- kept up to date on every write, so ready() is an index scan
            retry_at REAL,                     -- epoch seconds: a failed task waits (backoff) until then
            extra TEXT NOT NULL DEFAULT '{}'   -- Beads fields gasworks does not use, for round-trips
        );
        CREATE INDEX tasks_ready ON tasks (status, blocked, priority, created_ts, id);
        CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status = 'in_progress';

        -- issue_id waits on depends_on_id, one edge per pair as in Beads.
        CREATE TABLE dependencies (
            issue_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            depends_on_id TEXT NOT NULL,
            type TEXT NOT NULL DEFAULT 'blocks',
            created_at TEXT NOT NULL,
            extra TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (issue_id, depends_on_id)
        ) WITHOUT ROWID;
        CREATE INDEX dependencies_target ON dependencies (depends_on_id, type);

        CREATE TABLE labels (
            task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            PRIMARY KEY (task_id, label)
        ) WITHOUT ROWID;
        CREATE INDEX labels_label ON labels (label);

        CREATE TABLE comments (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL,                  -- Beads comment id (int before v1.0, UUID after), as JSON
            task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            author TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE INDEX comments_task ON comments (task_id);

        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            slot TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL,
            ended_at TEXT NOT NULL DEFAULT '',
            exit_code INTEGER,
            outcome TEXT NOT NULL DEFAULT '',
            log_path TEXT NOT NULL DEFAULT '',
            branch TEXT NOT NULL DEFAULT '',
            base_commit TEXT NOT NULL DEFAULT '',  -- the target tip the attempt started from
            commits TEXT NOT NULL DEFAULT '[]',
            note TEXT NOT NULL DEFAULT '',
            pid INTEGER,
            pid_started REAL,
            tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX attempts_task ON attempts (task_id);
        CREATE INDEX attempts_running ON attempts (ended_at) WHERE ended_at = '';

        -- The merge queue: one row per finished branch waiting to land, served oldest first.
        CREATE TABLE merges (
            id INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL,
            branch TEXT NOT NULL,
            head TEXT NOT NULL,                -- the branch commit queued
            status TEXT NOT NULL DEFAULT 'queued',  -- queued, merging, landed, conflict, gate_failed, held, dropped
            queued_at TEXT NOT NULL,
            started_at TEXT NOT NULL DEFAULT '',
            ended_at TEXT NOT NULL DEFAULT '',
            trial TEXT NOT NULL DEFAULT '',    -- clean or conflict (read-only trial merge against the tip)
            gate_runs INTEGER NOT NULL DEFAULT 0,
            gate_seconds REAL NOT NULL DEFAULT 0,
            batch_size INTEGER NOT NULL DEFAULT 0,
            landed_commit TEXT NOT NULL DEFAULT '',
            conflict_task TEXT NOT NULL DEFAULT '',
            note TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX merges_queue ON merges (status, id);
        CREATE INDEX merges_task ON merges (task_id);

        -- Every run of the merge gate, with the merges it tested (a batch shares one run).
        CREATE TABLE gate_runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            seconds REAL NOT NULL,
            passed INTEGER NOT NULL,
            on_tip INTEGER NOT NULL DEFAULT 0,  -- run on the untouched tip, to tell a broken target
            merge_ids TEXT NOT NULL DEFAULT '[]'
        );

        -- Named locks with an owner and an expiry (the refinery's, across processes and hosts).
        CREATE TABLE locks (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at REAL NOT NULL
        );

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL DEFAULT '',
            old_value TEXT NOT NULL DEFAULT '',
            new_value TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE INDEX events_task ON events (task_id, id);
        """
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial]
SCHEMA_VERSION = len(MIGRATIONS)
