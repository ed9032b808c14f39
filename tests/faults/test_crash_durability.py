"""kill -9 in the middle of an import or a suggestion ingest: the store holds the old state or the
new one, never half of it, and the same command run again finishes the job."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECORDS = 20000


def beads_file(path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for n in range(RECORDS):
            handle.write(json.dumps({"id": f"bd-{n:05x}", "title": f"task {n}", "status": "open", "priority": n % 5,
                                     "issue_type": "task", "created_at": "2026-01-01T00:00:00Z",
                                     "updated_at": "2026-01-01T00:00:00Z"}) + "\n")
    return path


def task_count(root: Path) -> int:
    db = sqlite3.connect(root / ".gasworks" / "gasworks.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT count(*) FROM tasks").fetchone()[0]
    finally:
        db.close()


def kill_midway(root: Path, args: list[str], delay: float) -> int | None:
    """Start `gasworks ARGS`, kill -9 it after delay seconds; its exit code if it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "gasworks", *args], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode if proc.returncode != -signal.SIGKILL else None


@pytest.mark.parametrize("seed", range(6))
def test_kill_9_during_an_import_leaves_all_or_nothing(project_dir, tmp_path, seed):
    source = beads_file(tmp_path / "issues.jsonl")
    kill_midway(project_dir, ["import", str(source)], random.Random(seed).uniform(0.2, 1.5))
    assert task_count(project_dir) in (0, RECORDS)
    again = subprocess.run([sys.executable, "-m", "gasworks", "import", str(source)], cwd=project_dir,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert task_count(project_dir) == RECORDS


@pytest.mark.parametrize("seed", range(4))
def test_kill_9_during_a_suggestion_ingest_leaves_all_or_nothing(project_dir, tmp_path, seed):
    ideas = tmp_path / "suggested_tasks.txt"
    ideas.write_text("".join(f"follow-up idea number {n}\n" for n in range(150)), encoding="utf-8")
    kill_midway(project_dir, ["ingest", str(ideas)], random.Random(seed).uniform(0.2, 0.8))
    assert task_count(project_dir) in (0, 150)
    again = subprocess.run([sys.executable, "-m", "gasworks", "ingest", str(ideas)], cwd=project_dir,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert task_count(project_dir) == 150  # none twice: titles already present are skipped
