"""Small pure pieces: timestamps as Beads writes them, priorities, ids."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from gasworks.errors import InvalidValueError
from gasworks.ids import check_id, check_prefix
from gasworks.models import (
    DepType,
    MergeStatus,
    Outcome,
    Status,
    allowed_targets,
    iso_from_epoch,
    parse_priority,
    parse_time,
)


@pytest.mark.parametrize("text, expected", [
    ("2026-01-08T20:53:38.854621789-08:00", datetime(2026, 1, 9, 4, 53, 38, 854621, timezone.utc)),
    ("2026-01-08T20:51:10.5-08:00", datetime(2026, 1, 9, 4, 51, 10, 500000, timezone.utc)),
    ("2026-04-18T16:19:12Z", datetime(2026, 4, 18, 16, 19, 12, tzinfo=timezone.utc)),
    ("2026-04-18T16:19:12", datetime(2026, 4, 18, 16, 19, 12, tzinfo=timezone.utc)),
])
def test_parse_time_reads_go_rfc3339(text, expected):
    assert parse_time(text) == expected


def test_iso_round_trips():
    moment = 1_764_000_000.123456
    assert abs(parse_time(iso_from_epoch(moment)).timestamp() - moment) < 1e-6
    assert iso_from_epoch(moment).endswith("Z")
    assert parse_time(iso_from_epoch(moment)) - parse_time(iso_from_epoch(moment - 1)) == timedelta(seconds=1)


@pytest.mark.parametrize("value, expected", [(0, 0), ("4", 4), ("P1", 1), ("p3", 3)])
def test_priority_accepts_numbers_and_p_forms(value, expected):
    assert parse_priority(value) == expected


@pytest.mark.parametrize("value", [5, -1, "P9", "high", True, "1.5"])
def test_priority_refuses_the_rest(value):
    with pytest.raises(InvalidValueError, match="use 0-4"):
        parse_priority(value)


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-help", "a..b", "a/b", "x" * 101, "gw-1\n"])
def test_ids_that_could_escape_a_path_or_branch_are_refused(bad):
    with pytest.raises(InvalidValueError):
        check_id(bad)


def test_good_ids_and_prefixes():
    assert check_id("bd-1ep6e.1.2") == "bd-1ep6e.1.2"
    assert check_prefix("my-app") == "my-app"
    with pytest.raises(InvalidValueError):
        check_prefix("Bad")


MEMBERS = [member for kind in (Status, MergeStatus, Outcome, DepType) for member in kind]


@pytest.mark.parametrize("member", MEMBERS, ids=repr)
def test_state_enums_read_as_their_plain_word(member):
    """What reaches bd's command line, a message, JSON or a log is the word itself, never "Status.OPEN"."""
    word = member.value
    assert type(word) is str
    assert f"{member}" == str(member) == "%s" % member == format(member) == word
    assert f"{member:>20}" == f"{word:>20}"
    assert f"--status={member}" == f"--status={word}"
    for options in ({}, {"indent": 2}, {"ensure_ascii": False, "indent": 2}):
        assert json.dumps({member: [member]}, **options) == json.dumps({word: [word]}, **options)
    assert member == word and {word: 1}[member] == 1 and {member: 1}[word] == 1


def test_state_enums_go_to_sqlite_as_text(tmp_path):
    db = sqlite3.connect(tmp_path / "t.db")
    db.execute("CREATE TABLE t (s TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [(member,) for member in MEMBERS])
    db.commit()
    assert db.execute("SELECT s, typeof(s) FROM t").fetchall() == [(m.value, "text") for m in MEMBERS]
    assert db.execute("SELECT count(*) FROM t WHERE s = ?", (Status.IN_PROGRESS,)).fetchone() == (1,)


def test_state_enums_go_to_postgres_as_text(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n int, s text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO t VALUES (%s, %s)", list(enumerate(MEMBERS)))
        assert conn.execute("SELECT s FROM t ORDER BY n").fetchall() == [(m.value,) for m in MEMBERS]
        assert conn.execute("SELECT %s::text", (Outcome.GATE_FAILED,)).fetchone() == ("gate_failed",)


def test_transitions_are_looked_up_by_word_or_member():
    assert allowed_targets("merging") == allowed_targets(Status.MERGING)
    assert "closed" in allowed_targets("open") and Status.OPEN in allowed_targets("closed")
    assert allowed_targets("needs-review") == {"open", "closed"}  # a Beads custom status
