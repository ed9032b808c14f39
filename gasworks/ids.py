"""Task ids the way Beads makes them: prefix, dash, short base36 hash; children get `.N`."""

from __future__ import annotations

import re

from gasworks.errors import InvalidValueError

MIN_HASH_LENGTH = 4
MAX_HASH_LENGTH = 8
NONCES_PER_LENGTH = 10
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# Ids end up in branch names and file paths, so anything else is refused at the door.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,19}$")
MAX_ID_LENGTH = 100


def base36(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of data. CPython's built-in SHA-256 where there is one (`_sha2` from 3.12):
    hashlib would load OpenSSL first, about 8 ms of a `gasworks create`. Imported here: only new ids
    need it, and most commands make none."""
    import importlib

    for name in ("_sha2", "_sha256"):
        try:
            return bytes(importlib.import_module(name).sha256(data).digest())
        except ImportError:
            continue
    import hashlib

    return hashlib.sha256(data).digest()


def hash_suffix(seed: str, length: int) -> str:
    number = int.from_bytes(sha256(seed.encode("utf-8", "surrogatepass"))[:8], "big")
    return base36(number, length)


def candidate_ids(prefix: str, seed: str):
    """Ids to try in order: 10 nonces at 4 chars, then 10 at 5, ... up to 8 (as Beads does)."""
    for length in range(MIN_HASH_LENGTH, MAX_HASH_LENGTH + 1):
        for nonce in range(NONCES_PER_LENGTH):
            yield f"{prefix}-{hash_suffix(f'{seed}|{nonce}', length)}"


def id_prefix(task_id: str) -> str:
    """The prefix of an id as bd reads it: before the last '-' when what follows (up to a child's
    '.N') looks like a number or a hash (bd-a1b2.3 -> bd, web-app-a3f8e9 -> web-app), else before
    the first (vc-baseline-test -> vc); "" without one."""
    head, _, tail = task_id.rpartition("-")
    if not head:
        return ""
    base = tail.split(".", 1)[0]
    looks_like_hash = 3 <= len(base) <= 8 and base.isalnum() and base.isascii() and base == base.lower() and (
        len(base) == 3 or any(c.isdigit() for c in base))
    return head if not base or base.isdigit() or looks_like_hash else task_id.partition("-")[0]


def child_id(parent_id: str, number: int) -> str:
    return f"{parent_id}.{number}"


def check_id(task_id: str) -> str:
    if not isinstance(task_id, str) or len(task_id) > MAX_ID_LENGTH or not _ID_RE.fullmatch(task_id):
        raise InvalidValueError(
            f"invalid task id {task_id!r}: use letters, digits, '-', '_' and '.'-separated parts, "
            f"at most {MAX_ID_LENGTH} characters"
        )
    return task_id


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        raise InvalidValueError(
            f"invalid id prefix {prefix!r}: use 1-20 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return prefix
