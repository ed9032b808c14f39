"""The fleet view, rendered to a captured console from a known fleet state."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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


# -- `gasworks status --watch` ----------------------------------------------------------------

WATCH_REPORT = {
    "root": "/repo", "run_pid": 4242,
    "slots": [{"slot": "w1", "task": "gw-a1b2", "title": "Add a subtract function", "attempt": 2, "try": 2,
               "elapsed": 125.0, "quiet": 75.0, "tokens_in": 12000, "tokens_out": 345,
               "last_line": "editing calc.py", "started_at": "", "pid": 1, "log": ""}],
    "idle_slots": ["w2"],
    "merge_queue": [{"task": "gw-c3d4", "status": "merging", "queued_at": "", "note": ""},
                    {"task": "gw-e5f6", "status": "queued", "queued_at": "", "note": ""}],
    "recent_merges": [{"task": "gw-g7h8", "status": "landed", "ended_at": "", "gate_runs": 1, "conflict_task": "",
                       "note": ""},
                      {"task": "gw-i9j0", "status": "conflict", "ended_at": "", "gate_runs": 0,
                       "conflict_task": "gw-k1l2", "note": "calc.py"}],
    "counts": {"closed": 5, "in_progress": 1, "merging": 2, "ready": 3, "waiting": 1},
    "needs_human": 1,
    "waiting_on_humans": ["gw-zz is blocked: 3 failed attempts [needs-human]"],
    "throughput": {"closed_last_10_min": 2, "closed_last_hour": 5},
}


def render(renderable, width: int = 160) -> str:
    console = Console(record=True, width=width)
    console.print(renderable)
    return console.export_text()


def test_watch_view_shows_a_row_per_slot_the_merge_queue_counts_and_throughput():
    from gasworks.status import watch_view

    lines = render(watch_view(WATCH_REPORT)).splitlines()
    assert lines[0] == "gasworks run: active (pid 4242) in /repo"
    assert lines[1].split() == ["slot", "task", "title", "attempt", "elapsed", "quiet", "tokens", "in/out", "last",
                                "log", "line"]
    assert lines[2].split() == ["w1", "gw-a1b2", "Add", "a", "subtract", "function", "2", "2m", "05s",
                                "1m", "15s", "12,000/345", "editing", "calc.py"]
    assert lines[3].split() == ["w2", "idle"]
    assert lines[4] == "merge queue: gw-c3d4 merging, gw-e5f6 queued"
    assert lines[5].split() == ["landed", "gw-g7h8", "(gate", "runs", "1)"]
    assert lines[6].split() == ["conflict", "gw-i9j0", "->", "gw-k1l2", "(gate", "runs", "0)", "calc.py"]
    assert lines[7] == "tasks: 5 closed, 1 in_progress, 2 merging, 3 ready, 1 waiting"
    assert lines[8] == "1 blocked task(s) need a human (label needs-human)"
    assert lines[9] == "  gw-zz is blocked: 3 failed attempts [needs-human]"
    assert lines[10] == "throughput: 2 closed in the last 10 min, 5 in the last hour"


def test_watch_view_of_a_known_fleet_state_in_the_store(project_dir):
    """A running attempt as the dispatcher records it: the view reads the store and the log files only."""
    import json
    import os

    from gasworks.models import parse_time
    from gasworks.project import find_project
    from gasworks.status import status_report, watch_view
    from gasworks.store import NewTask

    project = find_project(project_dir)
    store = project.open_store()
    task = store.create_task(NewTask("Fix the [bold]parser[/bold] [/]"), prefix="gw", actor="tester")
    first = store.start_attempt(task.id, slot="w3", log_path="", branch="b", base_commit="")
    store.finish_attempt(first.id, outcome="failed", exit_code=1)
    attempt = store.start_attempt(task.id, slot="w3", log_path="", branch="b", base_commit="")
    log = project.logs_dir / task.id / f"{attempt.id}.log"
    log.parent.mkdir(parents=True)
    log.write_text("reading calc.py\n\x1b[32mwriting [red]calc.py[/]\x1b[0m\n\n", encoding="utf-8")
    log.with_suffix(".usage.json").write_text(json.dumps({"prompt_tokens": 900, "completion_tokens": 80}))
    store.set_attempt_process(attempt.id, os.getpid(), None, str(log))
    started = parse_time(attempt.started_at).timestamp()
    os.utime(log, (started + 10, started + 10))

    report = status_report(project, store, now=started + 90)
    [slot] = report["slots"]
    assert (slot["slot"], slot["task"], slot["try"], slot["elapsed"], slot["quiet"]) == ("w3", task.id, 2, 90.0, 80.0)
    assert (slot["last_line"], slot["tokens_in"], slot["tokens_out"]) == ("writing [red]calc.py[/]", 900, 80)
    assert report["run_pid"] is None and report["idle_slots"] == []  # no `gasworks run` here: no idle slots
    text = render(watch_view(report), width=200)
    row = next(line for line in text.splitlines() if line.startswith("w3"))
    assert row.split() == ["w3", task.id, "Fix", "the", "[bold]parser[/bold]", "[/]", "2",  # its second attempt
                           "1m", "30s", "1m", "20s", "900/80", "writing", "[red]calc.py[/]"]
    assert text.splitlines()[0] == f"gasworks run: not running in {project.root}"
    store.close()


def test_markup_in_task_titles_and_log_lines_is_shown_as_it_is():
    """A log line or title with rich markup in it ("[/]") crashed `gasworks run`'s live view."""
    import io

    snapshot = {"slots": [{"slot": "w1", "task": "gw-a1b2", "attempt": 1, "elapsed": 1.0,
                           "last_line": "[/] [bold]not bold"}],
                "held": {"gw-c3d4": "[/] held"}, "counts": {}}
    text = render(fleet_table(snapshot))
    assert "[/] [bold]not bold" in text and "[/] held" in text
    view = FleetView(live=True)
    view.console = Console(record=True, file=io.StringIO(), width=120)
    view.say("w1: started gw-a1b2 'fix [/] parsing'")
    assert "w1: started gw-a1b2 'fix [/] parsing'" in view.console.export_text()


def test_watch_refreshes_a_live_table_on_a_terminal(project_dir):
    import io

    from gasworks.project import find_project
    from gasworks.status import watch

    project = find_project(project_dir)
    store = project.open_store()
    pauses: list[float] = []
    console = Console(record=True, file=io.StringIO(), width=120, force_terminal=True)
    watch(project, store, interval=2.5, count=3, as_json=False, live=True, sleep=pauses.append, console=console)
    assert pauses == [2.5, 2.5]
    assert "gasworks run: not running" in console.export_text()
    store.close()


def test_status_watch_without_a_terminal_prints_the_report_each_time(gw):
    import json

    lines = gw("status", "--watch", "--count", "2", "--interval", "0.1", "--json").stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["run_pid"] is None for line in lines)
    text = gw("status", "--watch", "--count", "2", "--interval", "0.1").stdout
    assert text.count("gasworks run: not running") == 2


def test_looking_at_the_status_never_takes_the_run_lock(project_dir):
    """A run starting while someone looks must not be refused: status reads the pid file only."""
    from filelock import FileLock

    from gasworks.project import active_run, find_project

    project = find_project(project_dir)
    lock = FileLock(str(project.state_dir / "run.lock"))
    lock.acquire(timeout=0)  # as a starting run holds it, before it has written its pid file
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "gasworks", "run"])
    try:
        assert active_run(project) is None
        (project.state_dir / "run.pid").write_text(str(stand_in.pid))
        assert active_run(project) == stand_in.pid
    finally:
        lock.release()
        stand_in.kill()
        stand_in.wait()
    (project.state_dir / "run.pid").write_text("999999999")  # a run killed -9 left its pid file
    assert active_run(project) is None


def test_a_run_started_by_a_classic_script_is_seen_and_a_reused_pid_is_not(project_dir):
    """`py dispatch_workers.py` has no "gasworks" in its command line; a pid is told apart from a
    reused one by the process being older than the pid file."""
    from gasworks.project import active_run, find_project

    project = find_project(project_dir)
    pid_file = project.state_dir / "run.pid"
    script = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "dispatch_workers.py"])
    try:
        pid_file.write_text(str(script.pid))
        assert active_run(project) == script.pid
        written = time.time() - 30  # a pid file from before this process started: the run died, its pid reused
        os.utime(pid_file, (written, written))
        assert active_run(project) is None
    finally:
        script.kill()
        script.wait()


def test_idle_slots_are_the_runs_own_however_it_was_started(project_dir):
    """The slot count used to be read off the run's command line (`run -w N`): a run started as
    `py dispatch_workers.py -w 3` showed the configured 14 slots, 11 of them idle forever."""
    from gasworks.project import find_project, run_lock
    from gasworks.status import status_report

    project = find_project(project_dir, overrides={"num_workers": 3})
    with run_lock(project):
        report = status_report(find_project(project_dir), project.open_store())
        assert report["run_pid"] == os.getpid() and report["idle_slots"] == ["w1", "w2", "w3"]
    assert status_report(find_project(project_dir), project.open_store())["idle_slots"] == []
