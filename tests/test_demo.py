"""`gasworks demo` runs end to end in a fresh directory, as the README's first command does."""

from __future__ import annotations

import json

from gasworks import git
from tests.conftest import run_gasworks


def test_demo_creates_a_repo_and_a_fleet_works_the_backlog(tmp_path):
    target = tmp_path / "demo"
    result = run_gasworks(["demo", "--dir", str(target), "--agent", "fake", "--json"], tmp_path,
                          env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["exit_code"] == 0 and report["agent"] == "fake"
    assert (report["merged"], report["failed"], report["waiting"], report["attempts"]) == (11, 0, 0, 11)
    assert report["counts"]["closed"] == 11 and report["counts"]["open"] == 1  # the open one is the epic
    merged = git.run(["log", "--first-parent", "--format=%s", "main"], target).stdout.splitlines()
    assert len(merged) == 12 and merged[0].endswith(": Write the release notes")
    for path in ("calc_sub.py", "calc_mul.py", "calc_div.py", "docs/api.md", "CHANGELOG.md", "RELEASE.md"):
        assert (target / path).is_file(), path  # merged, and the demo checkout moved with main
    assert len((target / ".beads" / "issues.jsonl").read_text().splitlines()) == 12
    listed = json.loads(run_gasworks(["list", "--all", "--json"], target).stdout)
    assert {t["status"] for t in listed if t["issue_type"] != "epic"} == {"closed"}


def test_demo_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_gasworks(["demo", "--dir", str(tmp_path)], tmp_path)
    assert result.returncode == 1 and "not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
