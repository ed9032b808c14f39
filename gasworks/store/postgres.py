"""PostgreSQL store, for several hosts on one queue: the same SQL as SQLite (store/sql.py and the
modules it mixes in), run through psycopg 3.

Writes are serialised by a transaction-scoped advisory lock, exactly as SQLite's BEGIN
IMMEDIATE serialises them, so every invariant the SQLite store keeps holds here too. Claims are
the exception: they take no global lock but lock the one row they take (FOR UPDATE SKIP
LOCKED), so claimers on many hosts run side by side without waiting for each other.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gasworks.errors import ConfigError, StoreError
from gasworks.store import rows as sqlrows
from gasworks.store.schema import (
    BEADS_COLUMNS_VERSION,
    MIGRATIONS,
    SCHEMA_VERSION,
    for_postgres,
    run_script,
)
from gasworks.store.sql import SQLStore

WRITE_LOCK = 0x6761_7377  # "gasw": the advisory lock every serialised write holds
CONNECT_TIMEOUT_SECONDS = 10
# The expressions that differ from SQLite (see rows.py); everything else runs as written.
_REWRITES = {
    sqlrows.LABELS_JSON: "(SELECT coalesce(json_agg(label ORDER BY label), '[]')::text FROM labels l "
                         "WHERE l.task_id = t.id)",
    sqlrows.NOW_EPOCH: "extract(epoch from now())",
}
_PLACEHOLDER = re.compile(r"%|\?")


def _keepalive_settings(seconds: float) -> dict[str, dict[str, int]]:
    """TCP keepalive for both ends of a store connection: silent `seconds`, then 3 probes a third of
    that apart; unacknowledged data is given up on after as long (tcp_user_timeout, milliseconds)."""
    if seconds <= 0:
        return {"client": {}, "server": {}}
    idle = max(1, round(seconds))
    interval = max(1, idle // 3)
    return {"client": {"keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval,
                       "keepalives_count": 3},
            "server": {"tcp_keepalives_idle": idle, "tcp_keepalives_interval": interval, "tcp_keepalives_count": 3,
                       "tcp_user_timeout": (idle + 3 * interval) * 1000}}


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def translate(sql: str) -> str:
    """SQLite's SQL as psycopg takes it: `?` placeholders become `%s`, a literal % is doubled."""
    for sqlite_form, postgres_form in _REWRITES.items():
        sql = sql.replace(sqlite_form, postgres_form)
    return _PLACEHOLDER.sub(lambda m: "%s" if m.group() == "?" else "%%", sql)


class Row:
    """A result row addressed by position or by column name, like sqlite3.Row."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values, self._index = values, index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    index = {column.name: n for n, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


class _Connection:
    """The slice of sqlite3.Connection the store's SQL code uses, over a psycopg connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(translate(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if rows:
            with self.conn.cursor() as cursor:
                cursor.executemany(translate(sql), rows)


class PostgresStore(SQLStore):
    """The shared store for several hosts. Safe to share between threads; each process opens its own."""

    SKIP_LOCKED = " FOR UPDATE OF t SKIP LOCKED"
    LEASES_DECIDE = False

    def __init__(self, url: str, *, keepalive: float = 30.0) -> None:
        """`keepalive`: seconds the connection may sit silent before either end probes it. The
        server then drops a host that vanished without closing it (power loss, a cut cable), and
        with it that host's session locks (the refinery's), in about twice this, rather than after
        the kernel's default of two hours and more. 0 leaves both ends' settings as they are."""
        try:
            import psycopg
        except ImportError:
            raise ConfigError("a postgresql:// store needs psycopg: pip install 'gasworks[postgres]'") from None
        self.url, self.path = url, redact(url)
        self._errors = psycopg.Error
        self._lock = threading.RLock()
        probes = _keepalive_settings(keepalive)
        try:
            given = psycopg.conninfo.conninfo_to_dict(url)  # what the URL sets itself is left as it is
            options: dict[str, Any] = {k: v for k, v in probes["client"].items() if k not in given}
            self._conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory,
                                         connect_timeout=CONNECT_TIMEOUT_SECONDS, **options)
            for name, value in probes["server"].items():  # for this session only; ignored over a Unix socket
                self._conn.execute(f"SET {name} = {int(value)}")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the store {self.path}: {_first_line(exc)}") from None
        self._db = _Connection(self._conn)
        self._held: set[str] = set()  # named locks this connection holds as session advisory locks
        self._migrate()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self, write: bool = False, serial: bool = True) -> Iterator[_Connection]:
        with self._lock:
            if self._batch is not None:  # inside batch(): its transaction (this thread holds the lock)
                yield self._batch
                return
            try:
                self._conn.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if write and serial:
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            except self._errors as exc:
                self._rollback()
                raise StoreError(f"the store {self.path} failed: {_first_line(exc)}") from None
            try:
                yield self._db
            except self._errors as exc:
                self._rollback()
                raise StoreError(f"the store {self.path} failed: {_first_line(exc)}") from None
            except BaseException:
                self._rollback()
                raise
            try:
                self._conn.execute("COMMIT")
            except self._errors as exc:
                raise StoreError(f"the store {self.path} failed to commit: {_first_line(exc)}") from None

    # -- named locks: session advisory locks, released by PostgreSQL when the holder's connection
    # -- ends, so when a host dies the next host to ask takes over. The row says who holds it.

    def take_lock(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> tuple[bool, str]:
        with self._lock:
            if name in self._held:  # this connection holds it: for this owner, or another in this process?
                holder = self.lock_owner(name)
                if holder and holder != owner:
                    return False, ""
            else:
                try:
                    row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),)).fetchone()
                    got = bool(row and row[0])
                except self._errors as exc:
                    raise StoreError(f"the store {self.path} failed: {_first_line(exc)}") from None
                if not got:
                    return False, ""
                self._held.add(name)
            # The row now only says who holds it; one left by another owner: its holder died holding it.
            return super().take_lock(name, owner, ttl=ttl, now=now)

    def release_lock(self, name: str, owner: str) -> None:
        with self._lock:
            super().release_lock(name, owner)
            if name in self._held:
                self._held.discard(name)
                try:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))
                except self._errors:
                    pass  # the connection is gone, and the lock with it

    def take_lock_from(self, name: str, dead_owner: str, owner: str, *, ttl: float) -> bool:
        return False  # the advisory lock is the truth: acquire_lock succeeds once its holder is gone

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except self._errors:
            pass  # the connection is gone; the server rolled back on its own

    def _migrate(self) -> None:
        with self._tx(write=True) as db:
            db.execute("CREATE TABLE IF NOT EXISTS gasworks_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM gasworks_schema").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(f"the store {self.path} has schema version {version}, newer than this gasworks "
                                 f"understands ({SCHEMA_VERSION}): upgrade gasworks")
            for number in range(version, SCHEMA_VERSION):
                run_script(self._conn, for_postgres(MIGRATIONS[number]))
            if 0 < version < BEADS_COLUMNS_VERSION:
                sqlrows.backfill_beads_columns(db)
            if row is None:
                db.execute("INSERT INTO gasworks_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                db.execute("UPDATE gasworks_schema SET version = ?", (SCHEMA_VERSION,))


def lock_key(name: str) -> int:
    """A named lock's advisory lock key: 64 bits of its name's hash."""
    return int.from_bytes(hashlib.sha256(f"gasworks:{name}".encode()).digest()[:8], "big", signed=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
