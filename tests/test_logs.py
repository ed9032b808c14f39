"""Attempt logs: cleaning, tails, following a growing file, and `gasworks logs [-f]`."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gasworks.logs import clean, follow, tail
from gasworks.project import find_project
from gasworks.store import NewTask


def test_lines_are_cleaned_before_anyone_shows_them():
    assert clean("\x1b[31mred\x1b[0m text\r\n") == "red text"
    assert clean("progress 10%\rprogress 100%") == "progress 100%"  # what was left on the screen
    assert clean("bell\x07 and \x1b]0;title\x07osc") == "bell\\x07 and osc"
    assert clean("tab\tkept") == "tab\tkept"


def test_tail_reads_the_last_lines_from_the_end(tmp_path):
    path = tmp_path / "a.log"
    assert tail(path) == []
    path.write_text("".join(f"line {n}\n" for n in range(5000)) + "\n\n", encoding="utf-8")
    assert tail(path, 3) == ["line 4997", "line 4998", "line 4999"]
    assert tail(path, 5, window=30) == ["line 4998", "line 4999"]  # a cut first line is never shown


def test_follow_yields_whole_lines_as_they_arrive_until_done(tmp_path):
    path = tmp_path / "b.log"
    steps = [b"first line\nsecond ", b"half\n\xc3", b"\xa9t\xc3\xa9\n", b"no newline at the end"]
    done = []

    def sleep(_seconds: float) -> None:
        """Each wait of the follower lets the 'agent' write its next piece; then it exits."""
        if steps:
            with open(path, "ab") as handle:
                handle.write(steps.pop(0))
        else:
            done.append(True)

    lines = list(follow(path, lambda: bool(done), poll=0, sleep=sleep))
    assert lines == ["first line", "second half", "été", "no newline at the end"]


@pytest.fixture
def attempt(project_dir):
    """A task with one attempt that is still running, its log begun."""
    project = find_project(project_dir)
    store = project.open_store()
    task = store.create_task(NewTask("logged"), prefix="gw", actor="tester")
    started = store.start_attempt(task.id, slot="w1", log_path="", branch="b", base_commit="")
    log = project.logs_dir / task.id / f"{started.id}.log"
    log.parent.mkdir(parents=True)
    log.write_text("one\ntwo\nthree\n", encoding="utf-8")
    store.set_attempt_process(started.id, 0, None, str(log))
    yield store, task.id, started.id, log
    store.close()


def test_logs_prints_the_latest_attempt(gw, attempt):
    _store, task_id, attempt_id, log = attempt
    assert gw("logs", task_id).stdout == "one\ntwo\nthree\n"
    assert gw("logs", task_id, "-n", "1").stdout == "three\n"
    data = gw.json("logs", task_id)
    assert (data["attempt"], data["outcome"], data["lines"], data["log"]) == (attempt_id, "running",
                                                                              ["one", "two", "three"], str(log))
    assert "has no attempt 99" in gw("logs", task_id, "--attempt", "99", code=3).stderr
    assert "--json prints the log once" in gw("logs", task_id, "-f", "--json", code=2).stderr


def test_logs_of_a_task_never_attempted_is_one_clear_line(gw):
    task_id = gw("create", "never run", "-q").stdout.strip()
    assert gw("logs", task_id, code=3).stderr == f"gasworks: error: {task_id} has no attempts yet\n"


def test_logs_follow_prints_what_the_agent_writes_until_the_attempt_ends(gw, attempt):
    store, task_id, attempt_id, log = attempt
    written = threading.Event()

    def agent() -> None:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("four\nfi")
            handle.flush()
            handle.write("ve\n")
        written.set()
        store.finish_attempt(attempt_id, outcome="success", exit_code=0)

    writer = threading.Timer(0.3, agent)
    writer.start()
    result = gw("logs", task_id, "-f", "-n", "2")
    writer.join()
    assert written.is_set()
    assert result.stdout == "two\nthree\nfour\nfive\n"
    assert result.stderr == f"attempt {attempt_id} ended: success (exit 0)\n"


def test_status_shows_each_running_slots_last_log_line(gw, attempt):
    _store, task_id, _attempt_id, _log = attempt
    out = gw("status").stdout
    assert f"w1   {task_id}" in out and out.splitlines()[1].endswith("three")
    assert Path(gw.json("status")["slots"][0]["log"]).name.endswith(".log")
