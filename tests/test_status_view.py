"""The fleet view, rendered to a captured console from a known fleet state."""

from __future__ import annotations

from rich.console import Console

from gasworks.status import FleetView, fleet_table


def test_fleet_table_shows_each_slot_the_counts_and_held_merges():
    snapshot = {
        "slots": [
            {"slot": "w1", "task": "gw-a1b2", "attempt": 3, "elapsed": 42.4, "last_line": "editing calc.py"},
            {"slot": "w2", "task": None, "elapsed": None, "last_line": ""},
        ],
        "held": {"gw-c3d4": "/repo has local changes in the way of the merge"},
        "counts": {"closed": 5, "in_progress": 1, "ready": 2, "waiting": 0},
    }
    console = Console(record=True, width=120)
    console.print(fleet_table(snapshot))
    text = console.export_text()
    lines = text.splitlines()
    assert lines[0].split() == ["slot", "task", "attempt", "elapsed", "last", "log", "line"]
    assert lines[1].split() == ["w1", "gw-a1b2", "3", "42s", "editing", "calc.py"]
    assert lines[2].split() == ["w2", "idle"]
    assert "5 closed, 1 in_progress, 2 ready, 0 waiting" in text
    assert "merge waits gw-c3d4: /repo has local changes" in text


def test_plain_view_prints_timestamped_lines(capsys):
    view = FleetView(live=False)
    with view:
        view.say("w1: started gw-a1b2")
        view.update({"slots": [], "held": {}, "counts": {}})
    out = capsys.readouterr().out
    assert out.endswith(" w1: started gw-a1b2\n") and out[2] == ":" and out[5] == ":"
