"""The liveness property: whatever a human does during a real `gasworks run --until-done` (retry,
reopen, close, cancel, change priorities, add or remove dependencies, kill an agent, stop and start the
model endpoint), the run ends within a bound, and every task is then closed, or blocked (or waiting on
a blocked task) with a reason that `gasworks status` shows.

A bounded number of examples runs in CI; GASWORKS_LIVENESS_EXAMPLES asks for more, and
GASWORKS_LIVENESS_REPORT names a file that gets one JSON line per example (for the figures: sequences
tried, runs that ended, longest time to end).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gasworks import git
from gasworks.errors import GasworksError
from gasworks.project import init_project
from gasworks.store.sqlite import SQLiteStore
from gasworks.web import actions
from tests.fleet import agent_processes, fake_script
from tests.test_llm_clients import ScriptedServer

EXAMPLES = int(os.environ.get("GASWORKS_LIVENESS_EXAMPLES", "5"))
END_BOUND = 120.0  # seconds a run may take to end after the last human action
RACE_SECONDS = 3.0  # an action this close to the run's end may come after its decision to end
ENV = {**{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
       "GASWORKS_ACTOR": "human", "GASWORKS_RETRY_BACKOFF": "0"}
TASKS = [  # (title, fake script): quick, slow, failing, and two more; task 3 waits on task 2
    ("plain work", {}),
    ("slow work", {"sleep": 1.5}),
    ("fails every time", {"exit": 3}),
    ("waits on the failing one", {}),
    ("writes a file", {"sleep": 0.5, "write": {"notes/four.txt": "four\n"}}),
]

index = st.integers(0, len(TASKS) - 1)
ACTIONS = st.one_of(
    st.tuples(st.sampled_from(["retry", "update-open", "reopen", "close", "cancel"]), index),
    st.tuples(st.just("priority"), index, st.integers(0, 4)),
    st.tuples(st.sampled_from(["dep-add", "dep-rm"]), index, index),
    st.tuples(st.sampled_from(["kill-agent", "stop-endpoint", "start-endpoint"])),
    st.tuples(st.just("pause"), st.floats(0.05, 1.5)),
)


def gasworks(root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=root, capture_output=True, text=True,
                          timeout=60, env=ENV, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr, done.stderr  # refused actions say so in one line
    return done


class Human:
    """Acts on the fleet the ways a person can: the CLI, the dashboard's actions, signals, the server."""

    def __init__(self, root: Path, ids: list[str], server: ScriptedServer) -> None:
        self.root, self.ids, self.server = root, ids, server
        self.store = SQLiteStore(root / ".gasworks" / "gasworks.db")

    def act(self, action: tuple) -> None:
        name, *args = action
        ids = [self.ids[i] for i in args if isinstance(i, int) and not isinstance(i, bool)][:2]
        if name == "pause":
            time.sleep(args[0])
        elif name in ("retry", "cancel"):
            with contextlib.suppress(GasworksError):
                getattr(actions, name)(self.store, ids[0], actor="dashboard")
        elif name == "update-open":
            gasworks(self.root, "update", ids[0], "-s", "open")
        elif name in ("reopen", "close"):
            gasworks(self.root, name, ids[0])
        elif name == "priority":
            gasworks(self.root, "update", ids[0], "-p", str(args[1]))
        elif name == "dep-add":
            gasworks(self.root, "dep", "add", ids[0], ids[1])
        elif name == "dep-rm":
            gasworks(self.root, "dep", "rm", ids[0], ids[1])
        elif name == "kill-agent":
            for attempt in self.store.attempts(running=True):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if attempt.pid:
                        os.kill(attempt.pid, signal.SIGKILL)
        elif name == "stop-endpoint" and self.server is not None:
            self.server.stop()
            self.server = None
        elif name == "start-endpoint":
            self.start_endpoint()

    def start_endpoint(self) -> None:
        if self.server is None:
            self.server = ScriptedServer(self.port)

    @property
    def port(self) -> int:
        return int(json.loads((self.root / "port.json").read_text()))

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.store.close()


def make_repo(root: Path, port: int) -> list[str]:
    git.init_repo(root)
    (root / "README.md").write_text("hello\n")
    git.commit_all(root, "initial")
    init_project(root)
    (root / "gasworks.toml").write_text(
        f'endpoints = [{{url = "http://127.0.0.1:{port}", kind = "openai", model = "test-model"}}]\n'
        "max_attempts = 2\nbreaker_seconds = 1\nuntil_done_patience = 30\ngrace_seconds = 5\n")
    (root / "port.json").write_text(str(port))
    with open(root / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("port.json\n")
    ids = [gasworks(root, "create", title, "-q", "-d", fake_script(**script) if script else "plain").stdout.strip()
           for title, script in TASKS]
    gasworks(root, "dep", "add", ids[3], ids[2])
    return ids


def settled(root: Path, store: SQLiteStore) -> tuple[bool, str]:
    """Whether the state is final: every task closed, or blocked or waiting with a reason that
    `gasworks status` shows. Returns (settled, why not)."""
    shown = json.loads(gasworks(root, "status", "--json").stdout)["waiting_on_humans"]
    for task in store.list_tasks():
        if task.status == "closed":
            continue
        if task.status == "blocked":
            if not any(line.startswith(f"{task.id} is blocked: ") for line in shown):
                return False, f"{task.id} is blocked, but status does not say why: {shown}"
            continue
        if task.status == "open" and task.id not in {t.id for t in store.ready()}:
            if not any(line.startswith(f"{task.id} waits on ") for line in shown):
                return False, f"{task.id} waits, but status does not say on what: {shown}"
            continue
        return False, f"{task.id} is left {task.status}" + (" and ready" if task.status == "open" else "")
    return True, ""


def end_of(run: subprocess.Popen, out: Path, bound: float) -> tuple[int, float]:
    started = time.monotonic()
    try:
        code = run.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
        raise AssertionError(f"the run did not end within {bound:g} s:\n{out.read_text()[-3000:]}") from None
    return code, time.monotonic() - started


def start_run(root: Path, out: Path) -> subprocess.Popen:
    with open(out, "a") as handle:
        return subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--until-done", "--agent", "fake",
                                 "--workers", "2"], cwd=root, stdout=handle, stderr=subprocess.STDOUT, env=ENV,
                                stdin=subprocess.DEVNULL)


@pytest.mark.timeout(60 * EXAMPLES + 120)  # the whole property, every example: about 5-15 s each
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ACTIONS, max_size=8))
def test_every_run_ends_and_leaves_every_task_done_or_waiting_on_a_human_for_a_reason(sequence):
    with tempfile.TemporaryDirectory(prefix="gasworks-liveness-") as folder:
        root = Path(folder) / "repo"
        ids = make_repo(root, (server := ScriptedServer()).port)
        human = Human(root, ids, server)
        out = Path(folder) / "run.out"
        run = start_run(root, out)
        try:
            acted: list[float] = []
            exited = None  # when the run was first seen to have ended
            for action in sequence:
                human.act(action)
                acted.append(time.monotonic())
                if exited is None and run.poll() is not None:
                    exited = time.monotonic()
            human.start_endpoint()  # a person who stopped it starts it again
            code, waited = end_of(run, out, END_BOUND)
            exited = exited or time.monotonic()
            done, why = settled(root, human.store)
            reruns = 0
            if not done and any(abs(exited - when) < RACE_SECONDS for when in acted):
                reruns = 1  # the act came as the run decided to end: a person would start it again
                code, _ = end_of(start_run(root, out), out, END_BOUND)
                done, why = settled(root, human.store)
            output = out.read_text()
            assert done, f"{why}\nactions: {sequence}\n{output[-3000:]}"
            first_end = next((line for line in output.splitlines() if "tasks: " in line), "")
            # The first run ended only when nothing could move without a human (or when it could not
            # start: every endpoint down): what it saw left is settled, whatever came after.
            assert "no model endpoint answers" in output or (
                " 0 ready" in first_end and "in_progress" not in first_end and "merging" not in first_end
            ) or "ready work was not started" in output, f"{first_end}\n{output[-3000:]}"
            all_closed = all(t.status == "closed" for t in human.store.list_tasks())
            assert code == (0 if all_closed else 1), output[-3000:]
            assert all_closed or "left undone:" in output
            assert not agent_processes(root)
            report = os.environ.get("GASWORKS_LIVENESS_REPORT")
            if report:
                with open(report, "a") as lines:
                    lines.write(json.dumps({"actions": [a[0] for a in sequence], "ended": True, "code": code,
                                            "seconds_to_end": round(waited, 2), "reruns": reruns,
                                            "first_run_left": first_end.split("tasks: ", 1)[-1]}) + "\n")
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
            human.close()
