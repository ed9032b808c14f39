"""SQLite store: WAL, one connection per process, every write in one BEGIN IMMEDIATE transaction."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import weakref
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
# The largest WAL a closing store keeps (about 128 pages); a larger one is checkpointed (see close_keeping_wal).
WAL_KEEP_BYTES = 512 * 1024


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
            # closed by close(), or when the store is dropped, or at exit, whichever comes first
            self._closer = weakref.finalize(self, close_keeping_wal, self._conn, self.path)
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
        self._closer()

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
        # A store at this version (nearly every open) needs no write lock: one read of the header.
        if self._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
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


def close_keeping_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Close conn without the checkpoint SQLite's last connection makes on closing. That checkpoint
    copies the WAL into the store and deletes it (two fsyncs), and the next write then starts a new WAL
    (a third): about 20 ms of every command that writes, on an ordinary disk, and the checkpoint falls
    on reading commands too once a WAL is kept. So the WAL is kept, as SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE
    does; SQLite checkpoints it when a commit takes it past 1000 pages. A commit is as safe as before
    (synchronous=NORMAL: a crash of gasworks never loses one; a power loss may lose the latest, and
    never damages the store). Copy the store with `gasworks export`, or with its -wal file.

    A WAL past WAL_KEEP_BYTES is checkpointed on closing, as SQLite does: a process that opens the
    store while no other has it open reads all of the WAL (SQLite rebuilds its index, the -shm file,
    which that first opener resets; about 4 µs a page), and a checkpoint made in another process
    never lets the next one start the WAL over (that rebuild forgets it), so a WAL always kept grows
    without end and every command reads all of it."""
    try:
        wal_bytes = path.with_name(path.name + "-wal").stat().st_size
    except OSError:  # none (another process's close checkpointed and removed it)
        wal_bytes = 0
    if wal_bytes > WAL_KEEP_BYTES:
        conn.close()
        return
    if sys.version_info >= (3, 12):
        conn.setconfig(sqlite3.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, True)
        conn.close()
        return
    # Before 3.12 that setting is out of reach: a read-only connection, open while conn closes, makes
    # conn not the last one (it holds the store's shared lock), and a read-only connection never checkpoints.
    try:
        reader = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        conn.close()
        return
    try:
        reader.execute("PRAGMA user_version").fetchall()  # takes the shared lock (reads no schema)
    except sqlite3.Error:
        pass
    conn.close()
    reader.close()
