"""Driving the fleet in tests: a dispatcher on the fake agent, ticked until a condition holds, and the
processes it left. Shared by the dispatcher, refinery, liveness and fault tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from gasworks.agents import get_agent
from gasworks.dispatcher import Dispatcher
from gasworks.project import find_project
from gasworks.store import NewTask


def fake_script(**script) -> str:
    return f"```gasworks-fake\n{json.dumps(script)}\n```\n"


def make_dispatcher(root: Path, **overrides) -> tuple[Dispatcher, list[str]]:
    settings = {"agent": "fake", "num_workers": 2, "retry_backoff": 0, **overrides}
    project = find_project(root, overrides=settings)
    lines: list[str] = []
    dispatcher = Dispatcher(project, project.open_store(), get_agent(project.config.agent, project.config),
                            project.config,
                            say=lines.append)
    dispatcher.start()
    return dispatcher, lines


def drain(dispatcher: Dispatcher, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        dispatcher.tick(time.time())
        if not dispatcher.busy(time.time()):
            return
        assert time.monotonic() < deadline, "the fleet did not finish in time"
        time.sleep(0.05)


def add(dispatcher: Dispatcher, title: str, **fields) -> str:
    return dispatcher.store.create_task(NewTask(title, **fields), prefix="gw", actor="test").id


def agent_processes(root: Path) -> list[int]:
    """Live agents (and their children) that gasworks started for the repository at root."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            where = proc.environ().get("GASWORKS_WORKTREE", "")
            if where.startswith(str(root)) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def drain_until(dispatcher: Dispatcher, condition, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
