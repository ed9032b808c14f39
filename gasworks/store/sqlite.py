"""SQLite store: WAL, one connection per process, every write in one BEGIN IMMEDIATE transaction."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gasworks.errors import StoreError
from gasworks.store import rows as sqlrows
from gasworks.store.schema import (
    BEADS_COLUMNS_VERSION,
    MIGRATIONS,
    SCHEMA_VERSION,
    run_script,
)
from gasworks.store.sql import SQLStore

BUSY_TIMEOUT_SECONDS = 30.0


class SQLiteStore(SQLStore):
    """The default store. Safe to share between threads; each process opens its own."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        wal = self.path.with_name(self.path.name + "-wal")
        if self.path.is_file() and self.path.stat().st_size == 0 and not (wal.is_file() and wal.stat().st_size):
            # SQLite would take it for a new, empty store, and every task would seem gone
            raise StoreError(f"the store {self.path} is empty (0 bytes): it was cut short (a full disk, a copy "
                             "gone wrong). Put back a copy, or remove the file to start an empty store")
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a crash of gasworks never loses a commit; only power loss may.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            folder = self.path.parent
            if folder.is_dir() and not os.access(folder, os.W_OK):
                raise StoreError(f"cannot open the store {self.path}: its folder {folder} is read-only, and "
                                 "gasworks writes there even to read (SQLite keeps its shared-memory file beside "
                                 "the store); make the folder writable") from None
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = False, serial: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; writes (claims too: SQLite has no row locks) take the write lock up
        front, so they never interleave."""
        with self._lock:
            if self._batch is not None:  # inside batch(): its transaction (this thread holds the lock)
                yield self._batch
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"the store {self.path} is busy: {exc}") from None
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx(write=True) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} has schema version {version}, newer than this gasworks "
                    f"understands ({SCHEMA_VERSION}): upgrade gasworks"
                )
            for number in range(version, SCHEMA_VERSION):
                run_script(db, MIGRATIONS[number])
            if 0 < version < BEADS_COLUMNS_VERSION:
                sqlrows.backfill_beads_columns(db)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
