"""`gasworks eval`: the shipped suites measure what they claim, the scripted agents score their known
rates through the whole real loop (`gasworks run` in throwaway repositories), and the table, the
JSON and the dashboard's chart agree with what the stores recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gasworks import git
from gasworks.eval.agents import succeeds
from gasworks.eval.checks import check_suite
from gasworks.eval.report import wilson
from gasworks.eval.runner import Configuration
from gasworks.eval.suite import load_suite
from gasworks.project import find_project
from tests.conftest import run_gasworks

TOKEN = "test-token"


def test_the_shipped_suites_solutions_pass_and_their_wrong_changes_fail(tmp_path):
    """Each task's known solution passes the gate and the hidden tests, and its wrong change fails the
    hidden tests, every change made alone on the starting tree; some wrong changes pass the gate."""
    small, large = load_suite("small"), load_suite("large")
    assert small.task_count() == 12 and large.task_count() == 40 and len(large.projects) == 3
    findings, problems = check_suite(large, tmp_path)
    assert problems == []
    assert {f["task"] for f in findings} >= {f"numbers/{t.key}" for t in small.projects[0].tasks}
    sneaky = [f for f in findings if f["wrong_passes_gate"]]
    assert 0 < len(sneaky) < len(findings)  # the gate catches some wrong changes, not all


def test_wilson_interval():
    low, high = wilson(6, 10)
    assert (round(low, 4), round(high, 4)) == (0.3127, 0.8318)
    assert wilson(0, 0) == (0.0, 1.0) and wilson(10, 10)[1] == 1.0


def test_the_flaky_agents_draws_are_seeded_and_near_p():
    draws = [succeeds(0.6, 7, f"numbers/task{n}") for n in range(4000)]
    assert draws == [succeeds(0.6, 7, f"numbers/task{n}") for n in range(4000)]
    assert 0.57 < sum(draws) / len(draws) < 0.63


def _store_figures(root: Path, ids: dict[str, str]) -> dict[str, int]:
    """What one run's store says, counted here independently of the harness."""
    store = find_project(root).open_store()
    try:
        merges, attempts = store.merges(limit=100_000), store.attempts(limit=100_000)
        return {"merged": len({m.task_id for m in merges if m.status == "landed" and m.task_id in ids}),
                "attempts": len(attempts), "gate_failures": sum(m.status == "gate_failed" for m in merges),
                "conflicts": sum(m.trial == "conflict" for m in merges),
                "tokens": sum(a.tokens_in + a.tokens_out for a in attempts)}
    finally:
        store.close()


def _table(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("configuration"))
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith("results appended"):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def test_one_command_compares_two_agents_and_two_worker_counts(project_dir, tmp_path):
    workdir = tmp_path / "eval"
    done = run_gasworks(["eval", "--agent", "oracle,flaky:0.5", "-w", "1", "-w", "3", "--tasks", "6", "--seed", "3",
                         "--dir", str(workdir)], project_dir, timeout=600)
    assert done.returncode == 0, done.stderr
    table = _table(done.stdout)
    labels = ["oracle w1", "oracle w3", "flaky:0.5 w1", "flaky:0.5 w3"]
    assert list(table) == labels
    tasks = load_suite("small").projects[0].tasks[:6]
    right = sum(succeeds(0.5, 3, f"numbers/{t.key}") for t in tasks)
    assert 0 < right < 6  # this seed makes a mix, so both agents' rows say something
    for label in labels:
        cells = table[label]
        place = workdir / f"{Configuration(label.split()[0], '', int(label[-1])).slug}-r0"
        ids = json.loads((place / "numbers.map.json").read_text())
        found = _store_figures(place / "numbers", ids)
        correct = 6 if label.startswith("oracle") else right
        assert cells[0].startswith(f"{correct}/6 ")
        assert cells[1:5] == [f"{found['merged']}/6", str(found["attempts"]), str(found["gate_failures"]),
                              str(found["conflicts"])]
        assert found["attempts"] >= 6 and (found["merged"] == 6 or label.startswith("flaky"))
    # the same figures went to the project's results file, which the dashboard's stats page charts
    project = find_project(project_dir)
    from gasworks.web.app import create_app

    with TestClient(create_app(project, token=TOKEN, actor="tester"), base_url="http://127.0.0.1") as client:
        assert client.get(f"/?token={TOKEN}").status_code == 200
        [saved] = client.get("/api/stats").json()["evals"]
        page = client.get("/stats").text
    assert [row["configuration"] for row in saved["configurations"]] == labels
    assert [row["attempts"] for row in saved["configurations"]] == [int(table[label][2]) for label in labels]
    assert page.count("<svg") == 6 and "Tasks correct (hidden tests)" in page and "flaky:0.5 w3" in page


def test_a_sixty_percent_agent_measures_sixty_percent_within_its_interval(tmp_path):
    done = run_gasworks(["eval", "--agent", "flaky:0.6", "--repeat", "3", "-w", "4", "--json", "--seed", "11"],
                        tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [row] = report["configurations"]
    keys = [t.key for t in load_suite("small").projects[0].tasks]
    drawn = sum(succeeds(0.6, 11 + repeat, f"numbers/{key}") for repeat in range(3) for key in keys)
    assert (row["tasks"], row["correct"]) == (36, drawn)
    low, high = row["correct_ci"]
    assert low <= 0.6 <= high and high - low < 0.35
    assert row["merged"] >= row["correct"] and row["gate_failures"] > 0  # some wrong changes fail the gate
    assert report["saved_to"] is None and report["workdir"] is None  # not in a project; nothing kept
    assert not list(tmp_path.iterdir())


def test_mistakes_are_one_line_errors(tmp_path):
    for args, words in ((["--agent", "gpt"], "unknown agent 'gpt'"), (["--agent", "flaky:2"], "P must be"),
                        (["--suite", "nope"], "no suite 'nope'"), (["-w", "0"], "--workers")):
        done = run_gasworks(["eval", *args], tmp_path)
        assert done.returncode != 0 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[files]\n"a.py" = ""\n[[task]]\nkey = "k"\ntitle = "t"\n', encoding="utf-8")
    done = run_gasworks(["eval", "--suite", str(bad)], tmp_path)
    assert done.returncode != 0 and "no known solution" in done.stderr


@pytest.mark.parametrize("agent", ["builtin", "aider"])
def test_a_bad_base_config_stops_the_eval_before_any_repository_is_made(tmp_path, agent):
    config = tmp_path / "base.toml"
    config.write_text("num_ctx = 3\n", encoding="utf-8")
    done = run_gasworks(["eval", "--agent", agent, "--config", str(config), "--dir", str(tmp_path / "w")], tmp_path)
    assert done.returncode != 0 and "num_ctx" in done.stderr
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())


def _history_repo(path: Path) -> Path:
    git.init_repo(path)
    (path / "mathx.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    (path / "tests").mkdir()
    (path / "tests" / "__init__.py").write_text("", encoding="utf-8")
    (path / "tests" / "test_add.py").write_text(ADD_TEST, encoding="utf-8")
    git.commit_all(path, "add()")
    with open(path / "mathx.py", "a", encoding="utf-8") as handle:
        handle.write("\n\ndef sub(a, b):\n    return a - b\n")
    (path / "tests" / "test_sub.py").write_text(ADD_TEST.replace("add", "sub").replace("5", "-1"), encoding="utf-8")
    git.commit_all(path, "Add sub()\n\nsub(a, b) is a minus b.")
    (path / "README.md").write_text("mathx\n", encoding="utf-8")
    git.commit_all(path, "A readme: no test, no task")
    return path


ADD_TEST = "import unittest\n\nfrom mathx import add\n\n\nclass T(unittest.TestCase):\n" \
           "    def test_it(self):\n        self.assertEqual(add(2, 3), 5)\n"


def test_a_suite_from_history_checks_and_runs(tmp_path):
    repo = _history_repo(tmp_path / "history")
    out = tmp_path / "mine.toml"
    done = run_gasworks(["eval-import", str(out), "--repo", str(repo), "--test-command", "python -m unittest -q"],
                        tmp_path)
    assert done.returncode == 0 and "1 task(s)" in done.stdout, done.stderr
    [project] = load_suite(str(out)).projects
    [task] = project.tasks
    assert task.title == "Add sub()" and "a minus b" in task.description and list(task.hidden) == ["tests/test_sub.py"]
    assert "def sub" in task.patch and "test_sub" not in task.patch  # the hidden tests are not in the solution
    checked = run_gasworks(["eval-check", "--suite", str(out), "--json"], tmp_path)
    assert checked.returncode == 0 and json.loads(checked.stdout)["problems"] == [], checked.stdout
    ran = run_gasworks(["eval", "--suite", str(out), "--agent", "oracle,flaky:0", "-w", "1", "--json"], tmp_path,
                       timeout=300)
    assert ran.returncode == 0, ran.stderr
    oracle, flaky = json.loads(ran.stdout)["configurations"]
    assert (oracle["correct"], oracle["merged"], flaky["correct"], flaky["merged"]) == (1, 1, 0, 0)
    again = run_gasworks(["eval-import", str(out), "--repo", str(repo)], tmp_path)
    assert again.returncode != 0 and "exists" in again.stderr
