"""Several OS processes claim from one queue: every task is claimed exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from gasworks.models import Task, iso_from_epoch

CLAIMER = Path(__file__).with_name("claimer.py")


def test_four_processes_claim_1000_tasks_each_exactly_once(store, tmp_path):
    tasks = [Task(f"gw-{i:04x}", f"task {i}", priority=i % 5,
                  created_at=iso_from_epoch(1_700_000_000 + i), updated_at=iso_from_epoch(1_700_000_000 + i))
             for i in range(1000)]
    store.import_tasks(tasks, prefix="gw", actor="test")
    assert len(store.ready()) == 1000
    start = tmp_path / "go"
    workers = [
        subprocess.Popen([sys.executable, str(CLAIMER), getattr(store, "url", str(store.path)), f"worker-{n}",
                          str(start)], stdout=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    # Start all at once, only when every process is up, so they really race.
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.worker-{n}.ready").exists() for n in range(4)):
        assert time.monotonic() < deadline, "claimer processes did not start"
        time.sleep(0.01)
    start.touch()
    outputs = [w.communicate(timeout=240)[0].split() for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0]

    claimed = Counter(task_id for out in outputs for task_id in out)
    assert sorted(claimed) == sorted(t.id for t in tasks)
    assert set(claimed.values()) == {1}
    # Contention was real: more than one process got work.
    assert sum(1 for out in outputs if out) >= 2
    # The store agrees with what the workers saw: each task in_progress, held by the one who printed it.
    holders = {task_id: f"worker-{n}" for n, out in enumerate(outputs) for task_id in out}
    for task in store.list_tasks():
        assert task.status == "in_progress" and task.assignee == holders[task.id]
    claims = Counter(e.task_id for e in store.events(limit=10_000)
                     if e.kind == "status" and e.new_value == "in_progress")
    assert set(claims.values()) == {1} and len(claims) == 1000
