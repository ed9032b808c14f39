"""Small pure pieces: timestamps as Beads writes them, priorities, ids."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gasworks.errors import InvalidValueError
from gasworks.ids import check_id, check_prefix
from gasworks.models import iso_from_epoch, parse_priority, parse_time


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
