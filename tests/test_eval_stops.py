"""`gasworks eval` when a run does not end by itself: a default time limit scaled by the tasks, a row
stopped by its timeout or by Ctrl+C says so in the table and the JSON, --keep keeps the throwaway
repositories, a failure of the harness itself keeps them and prints where, and a task whose
merge conflict never resolves ends blocked, counted, instead of running for ever."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from gasworks.eval.runner import Configuration
from gasworks.project import find_project
from tests.conftest import run_gasworks
from tests.fleet import agent_processes
from tests.test_conflict_rounds import STUBBORN
from tests.test_eval import _table


def _private_tmp(tmp_path: Path) -> dict[str, str]:
    """The eval's temporary folder inside the test's, so nothing it keeps is left behind."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {"TMPDIR": str(tmp_path / "tmp")}


def test_the_default_timeout_scales_with_the_tasks_and_the_kind_of_agent():
    from gasworks.eval.runner import default_timeout

    real, scripted = Configuration("builtin", "", 4), Configuration("flaky:0.6", "", 4)
    assert default_timeout(real, 12, 0.0) == 300 + 12 * 600
    assert default_timeout(scripted, 12, 0.0) == 300 + 12 * 60
    assert default_timeout(scripted, 12, 5.0) == 300 + 12 * 75
    assert default_timeout(real, 40, 0.0) > default_timeout(real, 12, 0.0)
    help_text = run_gasworks(["eval", "--help"], Path.cwd()).stdout
    assert "--timeout" in help_text and "per task" in help_text and "--keep" in help_text


def test_a_run_stopped_by_its_timeout_is_named_in_its_row_and_kept_with_keep(project_dir, tmp_path):
    """The scripted agent thinks far longer than the run may take: the row says `timeout`, the exit
    status is 1, and the results file has the same row; --keep prints where the repositories are."""
    done = run_gasworks(["eval", "--agent", "oracle", "-w", "1", "--tasks", "2", "--think", "60", "--timeout", "3",
                         "--keep"], project_dir, env=_private_tmp(tmp_path), timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    table = _table(done.stdout)
    assert table["oracle w1"][-1] == "timeout" and table["oracle w1"][1] == "0/2", done.stdout
    assert "stopped: that row's figures count only what was done" in done.stdout
    kept = Path(re.search(r"^repositories kept in (.+)$", done.stdout, re.M).group(1))
    assert kept.is_relative_to(tmp_path) and (kept / "oracle_w1-r0" / "numbers" / ".gasworks").is_dir()
    assert "started ev-" in (kept / "oracle_w1-r0" / "numbers.run.log").read_text(encoding="utf-8")
    saved = (find_project(project_dir).state_dir / "eval" / "results.jsonl").read_text(encoding="utf-8")
    [row] = json.loads(saved)["configurations"]
    assert (row["stopped"], row["stopped_runs"], row["merged"]) == ("timeout", 1, 0)
    from starlette.testclient import TestClient

    from gasworks.web.app import create_app

    app = create_app(find_project(project_dir), token="t", actor="tester")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/?token=t").status_code == 200
        assert "oracle w1 <span class=\"muted\">(stopped: timeout; partial)</span>" in client.get("/stats").text


def _wait_for(condition, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_ctrl_c_stops_the_running_configuration_reports_it_and_runs_no_more(tmp_path):
    workdir = tmp_path / "eval"
    log = workdir / "oracle_w1-r0" / "numbers.run.log"
    proc = subprocess.Popen([sys.executable, "-m", "gasworks", "eval", "--agent", "oracle,flaky:0.6", "-w", "1",
                             "--tasks", "2", "--think", "120", "--dir", str(workdir), "--json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GASWORKS_ACTOR": "tester"})
    try:
        _wait_for(lambda: log.is_file() and "started ev-" in log.read_text(encoding="utf-8"), 120,
                  "the first run's agent never started")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + err
    report = json.loads(out)
    assert report["interrupted"] is True and report["not_run"] == ["flaky:0.6 w1"]
    [row] = report["configurations"]
    assert row["configuration"] == "oracle w1" and row["stopped"] == "interrupted" and row["merged"] == 0
    [run] = report["runs"]
    assert run["stopped"] == "interrupted" and run["exit_code"] is None
    assert not agent_processes(workdir)  # the run and its agents were stopped, not left behind


TEST = "import unittest\n\nfrom calc import {name}\n\n\nclass T(unittest.TestCase):\n" \
       "    def test_it(self):\n        self.assertEqual({name}(), {value})\n"


def test_a_failure_of_the_harness_itself_keeps_the_repositories_and_says_where(tmp_path):
    """A suite whose hidden tests name a program that is not there: one line, and the folder kept."""
    suite = tmp_path / "broken.toml"
    suite.write_text('name = "broken"\nhidden_command = ["gasworks-no-such-program"]\n'
                     '[files]\n"calc.py" = "def one():\\n    return 1\\n"\n'
                     f'"test_one.py" = {json.dumps(TEST.format(name="one", value=1))}\n'
                     '[[task]]\nkey = "two"\ntitle = "Add two() to calc.py"\ndescription = "two() returns 2."\n'
                     f'[task.visible]\n"test_two.py" = {json.dumps(TEST.format(name="two", value=2))}\n'
                     '[task.hidden]\n"hidden_two.py" = "from calc import two\\n"\n'
                     '[[task.solution]]\npath = "calc.py"\nappend = "\\ndef two():\\n    return 2\\n"\n',
                     encoding="utf-8")
    done = run_gasworks(["eval", "--suite", str(suite), "-w", "1"], tmp_path, env=_private_tmp(tmp_path),
                        timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "cannot run 'gasworks-no-such-program'" in done.stderr
    kept = Path(re.search(r"repositories and logs are kept in (.+)$", done.stderr, re.M).group(1))
    assert kept.is_relative_to(tmp_path) and (kept / "oracle_w1-r0" / "broken" / "calc.py").is_file()


def test_a_conflict_that_never_resolves_ends_the_run_and_is_counted_blocked(tmp_path):
    """An agent that rewrites a conflicted file whole: the fleet gives up after max_conflict_rounds,
    the run ends by itself, and the row counts the task blocked (not merged, not correct)."""
    base = tmp_path / "base.toml"
    base.write_text(f"command = {json.dumps(STUBBORN)}\nmax_conflict_rounds = 1\n", encoding="utf-8")
    done = run_gasworks(["eval", "--agent", "command", "--config", str(base), "-w", "2", "--tasks", "2", "--json"],
                        tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    [row], [run] = report["configurations"], report["runs"]
    assert (row["merged"], row["blocked"], row["conflicts"], row["stopped"]) == (1, 1, 2, None), row
    assert run["exit_code"] == 1 and run["stopped"] == ""  # work left for a human: the run ended, not stopped
    [blocked] = [task for task in run["tasks"].values() if task["status"] == "blocked"]
    assert not blocked["merged"] and not blocked["correct"]
