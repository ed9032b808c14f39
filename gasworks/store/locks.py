"""Named locks with a lease (the refinery's, so one host lands merges at a time): who holds one, taking it."""

from __future__ import annotations

import time

from gasworks.store.base import StoreBase


class LocksMixin(StoreBase):
    """A lock is a row: its owner and when its lease runs out."""

    # Whether a named lock's row, with its lease, decides who holds it (PostgreSQL: an advisory lock does).
    LEASES_DECIDE = True

    def lock_owner(self, name: str) -> str:
        with self._tx() as db:
            row = db.execute("SELECT owner FROM locks WHERE name = ?", (name,)).fetchone()
        return row[0] if row else ""

    def take_lock_from(self, name: str, dead_owner: str, owner: str, *, ttl: float) -> bool:
        """Take a lock whose holder is known to be dead (compare-and-set on that holder)."""
        with self._tx(write=True) as db:
            return db.execute("UPDATE locks SET owner = ?, expires_at = ? WHERE name = ? AND owner = ?",
                              (owner, time.time() + ttl, name, dead_owner)).rowcount == 1

    def acquire_lock(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> bool:
        """Take (or renew) a named lock unless someone else holds it unexpired."""
        return self.take_lock(name, owner, ttl=ttl, now=now)[0]

    def take_lock(self, name: str, owner: str, *, ttl: float, now: float | None = None) -> tuple[bool, str]:
        """Like acquire_lock; also says whom it was taken from: a holder whose lease ran out without
        letting go (a clean holder deletes its row), else ""."""
        now = time.time() if now is None else now
        with self._tx(write=True) as db:
            row = db.execute("SELECT owner, expires_at FROM locks WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != owner and self.LEASES_DECIDE and row[1] >= now:
                return False, ""
            db.execute("INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                       "SET owner = excluded.owner, expires_at = excluded.expires_at", (name, owner, now + ttl))
            return True, row[0] if row is not None and row[0] != owner else ""

    def release_lock(self, name: str, owner: str) -> None:
        with self._tx(write=True) as db:
            db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))
