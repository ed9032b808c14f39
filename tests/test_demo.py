"""`gasworks demo` runs end to end in a fresh directory, as the README's first command does."""

from __future__ import annotations

import json

from gasworks import git
from tests.conftest import run_gasworks


def test_demo_creates_a_repo_and_walks_a_task_through(tmp_path):
    target = tmp_path / "demo"
    result = run_gasworks(["demo", "--dir", str(target), "--json"], tmp_path, env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["closed"] == 1 and report["counts"]["open"] == 5
    assert len(report["ready"]) == 3
    assert git.run(["log", "--format=%s"], target).stdout.splitlines()[0].startswith("Write the changelog")
    lines = (target / ".beads" / "issues.jsonl").read_text().splitlines()
    assert len(lines) == 6
    listed = json.loads(run_gasworks(["ready", "--json"], target).stdout)
    assert [t["id"] for t in listed] == report["ready"]


def test_demo_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_gasworks(["demo", "--dir", str(tmp_path)], tmp_path)
    assert result.returncode == 1 and "not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
