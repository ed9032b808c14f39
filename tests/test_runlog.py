"""gasworks's own log: --verbose/--debug on stderr, a log file per `gasworks run`, nothing at start-up."""

from __future__ import annotations

import re
from pathlib import Path

from gasworks.runlog import KEEP_RUN_LOGS, RUN_LOGS_DIR
from tests.conftest import run_gasworks
from tests.test_startup import imported


def test_debug_shows_the_git_commands_and_no_flag_shows_nothing(project_dir):
    quiet = run_gasworks(["clean", "--dry-run"], project_dir)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = run_gasworks(["--debug", "clean", "--dry-run"], project_dir)
    assert loud.returncode == 0, loud.stderr
    assert re.search(r"DEBUG +gasworks: project .*: agent builtin", loud.stderr)
    assert re.search(r"DEBUG +gasworks: git for-each-ref .* in .*: exit 0", loud.stderr)
    assert loud.stdout == quiet.stdout
    verbose = run_gasworks(["--verbose", "clean", "--dry-run"], project_dir)
    assert verbose.returncode == 0 and "DEBUG" not in verbose.stderr


def test_a_run_says_where_its_log_is_and_the_log_has_what_it_showed(project_dir):
    folder = project_dir / ".gasworks" / RUN_LOGS_DIR
    folder.mkdir()
    for n in range(KEEP_RUN_LOGS + 5):  # older runs' logs: the oldest go
        (folder / f"run-20200101T0000{n:02d}Z-1.log").write_text("old\n")
    task_id = run_gasworks(["create", "a task", "-q"], project_dir).stdout.strip()
    result = run_gasworks(["--verbose", "run", "--until-done", "--agent", "fake", "-w", "1"], project_dir)
    assert result.returncode == 0, result.stderr
    shown = re.search(r"run log: (\S+)", result.stdout)
    assert shown, result.stdout
    log = Path(shown.group(1))
    assert log.parent == folder and log.is_file()
    text = log.read_text(encoding="utf-8")
    assert f"INFO    gasworks.run: w1: started {task_id}" in text and "merged into main" in text
    assert "DEBUG" not in text
    assert f"started {task_id}" not in result.stderr  # what the terminal showed is not said twice
    assert len(list(folder.glob("run-*.log"))) == KEEP_RUN_LOGS
    assert not (folder / "run-20200101T000000Z-1.log").exists()

    again = run_gasworks(["--debug", "run", "--until-done", "--agent", "fake", "-w", "1"], project_dir)
    log = Path(re.search(r"run log: (\S+)", again.stdout).group(1))
    assert "DEBUG   gasworks: git " in log.read_text(encoding="utf-8")


def test_the_quick_commands_do_not_import_logging(project_dir):
    modules, _ = imported(["-m", "gasworks", "ready"], project_dir)
    assert "logging" not in modules
    modules, _ = imported(["-m", "gasworks", "--debug", "ready"], project_dir)
    assert "logging" in modules
