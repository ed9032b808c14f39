"""The merge lock: one refinery at a time, over every host. A file lock keeps two refineries of
this host apart (and tells that a holder named with this host's name died); the store's lock keeps
hosts apart (PostgreSQL: an advisory lock, let go when its holder's connection dies)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil
from filelock import FileLock, Timeout

from gasworks.store import Locks

LOCK_NAME = "refinery"


@dataclass(frozen=True)
class Taken:
    """The lock was taken; `stopped` names the holder it was taken over from ("" when it was free)."""

    stopped: str = ""


class MergeLock:
    def __init__(self, store: Locks, path: Path, *, ttl: float, name: str = LOCK_NAME) -> None:
        self.store, self.name, self.ttl = store, name, ttl
        self.file_lock = FileLock(str(path))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"

    def acquire(self) -> Taken | None:
        """Taken, or None when another refinery holds it."""
        try:
            self.file_lock.acquire(timeout=0)
        except Timeout:
            return None
        taken, stopped = self.store.take_lock(self.name, self.owner, ttl=self.ttl)
        if taken:  # from a holder whose lease ran out, or (PostgreSQL) whose host died holding it
            return Taken(stopped)
        # We hold the file lock, so no live refinery on this host holds the store lock: a holder
        # named with this host's name died (kill -9) and its lock can be taken over at once.
        holder = self.store.lock_owner(self.name)
        if holder.split(":")[0] == socket.gethostname() and not alive(holder) and \
                self.store.take_lock_from(self.name, holder, self.owner, ttl=self.ttl):
            return Taken(holder)
        self.file_lock.release()
        return None

    def release(self) -> None:
        self.store.release_lock(self.name, self.owner)
        self.file_lock.release()


def alive(owner: str) -> bool:
    """Whether the process named in a lock owner (host:pid:...) still runs on this host."""
    parts = owner.split(":")
    return len(parts) > 1 and parts[1].isdigit() and psutil.pid_exists(int(parts[1]))
