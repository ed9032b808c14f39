"""Faults around single agents, under a real `gasworks run`: agents killed with -9, agents that hang
or leave children, a model endpoint that goes away mid-run and comes back, a log folder that fills up.
Every test ends with every task landed exactly once (or blocked, where that is the point) and no
agent process left."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from gasworks import git
from gasworks.store.sqlite import SQLiteStore
from tests.fleet import agent_processes, fake_script

ENV = {**{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
       "GASWORKS_RETRY_BACKOFF": "0", "GASWORKS_ACTOR": "tester"}


def gasworks(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=root, capture_output=True, text=True,
                          timeout=120, env=ENV)


def create(root: Path, title: str, description: str = "") -> str:
    return gasworks(root, "create", title, "-q", "-d", description).stdout.strip()


def start_run(root: Path, *args: str, prefix: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Path]:
    out = root.parent / "run.out"
    with open(out, "w") as handle:
        run = subprocess.Popen([*prefix, sys.executable, "-m", "gasworks", "run", "--until-done", *args], cwd=root,
                               stdout=handle, stderr=subprocess.STDOUT, env=ENV)
    return run, out


def finish(run: subprocess.Popen, out: Path, timeout: float = 120) -> str:
    try:
        run.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
        pytest.fail(f"the run did not finish:\n{out.read_text()}")
    return out.read_text()


@contextlib.contextmanager
def open_store(root: Path):
    store = SQLiteStore(root / ".gasworks" / "gasworks.db")
    try:
        yield store
    finally:
        store.close()


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def assert_landed_once(root: Path, ids: list[str]) -> None:
    tasks = {t["id"]: t for t in json.loads(gasworks(root, "list", "--all", "--json").stdout)}
    assert {tasks[i]["status"] for i in ids} == {"closed"}, {i: tasks[i]["status"] for i in ids}
    merged = git.run(["log", "--first-parent", "--format=%s", "main"], root).stdout.splitlines()
    for task_id in ids:
        assert sum(line.startswith(f"Merge gasworks/{task_id}:") for line in merged) == 1, task_id
    assert agent_processes(root) == []


def test_agents_killed_with_sigkill_are_retried_and_every_task_lands_once(project_dir):
    ids = [create(project_dir, f"task {n}", fake_script(sleep=1.5)) for n in range(6)]
    run, out = start_run(project_dir, "--agent", "fake", "--workers", "3")
    killed: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while len(killed) < 4 and run.poll() is None and time.monotonic() < deadline:
        for pid in agent_processes(project_dir):
            try:
                task_id = psutil.Process(pid).environ().get("GASWORKS_TASK_ID", "")
                if task_id and task_id not in killed and len(killed) < 4:
                    os.kill(pid, signal.SIGKILL)
                    killed[task_id] = pid
            except (psutil.Error, ProcessLookupError):
                continue
        time.sleep(0.05)
    output = finish(run, out)
    assert run.returncode == 0, output
    assert len(killed) == 4
    assert_landed_once(project_dir, ids)
    with open_store(project_dir) as store:
        for task_id in killed:
            outcomes = [(a.outcome, a.exit_code) for a in store.attempts(task_id)]
            assert outcomes[0] == ("failed", -signal.SIGKILL) and outcomes[-1][0] == "success", outcomes


def test_an_agent_that_hangs_is_ended_and_one_that_leaves_children_has_them_ended(project_dir):
    with open(project_dir / "gasworks.toml", "a", encoding="utf-8") as toml:
        toml.write("\nattempt_timeout = 3\nmax_attempts = 1\n")
    hangs = create(project_dir, "hangs forever", fake_script(hang=True))
    spawns = create(project_dir, "leaves a child behind", fake_script(spawn_child=True))
    run, out = start_run(project_dir, "--agent", "fake", "--workers", "2")
    output = finish(run, out)
    assert run.returncode == 1, output  # the hanging task is left blocked for a human
    with open_store(project_dir) as store:
        assert [a.outcome for a in store.attempts(hangs)] == ["timeout"]
        assert store.get_task(hangs).status == "blocked" and "needs-human" in store.get_task(hangs).labels
    assert_landed_once(project_dir, [spawns])


# --- a model endpoint that goes away and comes back ------------------------------------------------------


class _Model(BaseHTTPRequestHandler):
    """A deterministic model for the builtin agent: write `model/<task>.txt`, then finish. HTTP/1.0, so
    no connection outlives its request and a stopped server is really gone."""

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        messages = body["messages"]
        task_id = re.search(r"Task (\S+):", messages[1]["content"]).group(1)
        wrote = any(m["role"] == "user" and m["content"].startswith("Wrote") for m in messages[2:])
        action = {"action": "finish", "summary": f"wrote model/{task_id}.txt"} if wrote else \
            {"action": "write_file", "path": f"model/{task_id}.txt", "content": f"{task_id}\n"}
        time.sleep(0.3)  # long enough that requests are in flight when the server goes away
        self._send({"id": "c", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(action)},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    def _send(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        pass


class ModelServer:
    def __init__(self, port: int = 0) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Model)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def use_model_server(root: Path, server: ModelServer, concurrency: int, settings: str) -> None:
    """Point the builtin agent at `server`, with a 1 s breaker and the extra TOML `settings`."""
    with open(root / "gasworks.toml", "a", encoding="utf-8") as toml:
        toml.write(f'\nendpoints = [{{url = "http://127.0.0.1:{server.port}", kind = "openai", model = "m", '
                   f'max_concurrency = {concurrency}}}]\nbreaker_seconds = 1\n{settings}\n')


def test_a_model_endpoint_that_goes_down_mid_run_and_comes_back(project_dir):
    server = ModelServer()
    use_model_server(project_dir, server, 3, "max_attempts = 1")
    ids = [create(project_dir, f"model task {n}") for n in range(8)]
    run, out = start_run(project_dir, "--agent", "builtin", "--workers", "3")
    db = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    try:
        wait_for(lambda: db.counts().get("closed", 0) >= 2, "two tasks to land while the model answers")
        server.stop()
        wait_for(lambda: any(a.outcome == "endpoint_down" for a in db.attempts()), "an agent to find it down")
        wait_for(lambda: "still do not answer" in out.read_text(), "a failed health check")
        server = ModelServer(server.port)
        output = finish(run, out)
        assert run.returncode == 0, output
        assert "a model endpoint answers again" in output
        down = [a for a in db.attempts() if a.outcome == "endpoint_down"]
        assert down and all(db.failed_attempts(task_id) == 0 for task_id in ids)  # max_attempts = 1: none counted
    finally:
        db.close()
        server.stop()
    assert_landed_once(project_dir, ids)
    tree = git.run(["ls-tree", "-r", "--name-only", "main", "model/"], project_dir).stdout.split()
    assert sorted(tree) == sorted(f"model/{task_id}.txt" for task_id in ids)


# --- a log folder with no room ------------------------------------------------------------------------------

FILLS_THE_DISK = textwrap.dedent('''
    import os, subprocess, sys
    from pathlib import Path

    worktree, marker = Path(sys.argv[1]), Path(sys.argv[2])
    logs = Path(os.environ["GASWORKS_USAGE_FILE"]).parent.parent
    if not marker.exists():  # the first attempt fills the log folder, then fails writing its output
        marker.write_text("filled")
        try:
            with open(logs / "filler", "wb") as handle:
                handle.write(b"x" * (8 << 20))
        except OSError:
            pass
        print("x" * 100000, flush=True)
        sys.exit(0)
    (worktree / "done.txt").write_text("done\\n")
    subprocess.run(["git", "add", "-A"], cwd=worktree, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "done"], cwd=worktree, check=True)
''')


def test_a_full_log_folder_pauses_claims_and_costs_no_attempt(project_dir, tmp_path):
    if shutil.which("bwrap") is None:  # it gives the run a small log folder of its own, a real tmpfs
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: .ci/run installs it (apt-get install bubblewrap)")
        pytest.skip("bubblewrap is not installed")
    script, marker = tmp_path / "fills.py", tmp_path / "marker"
    script.write_text(FILLS_THE_DISK)
    logs = project_dir / ".gasworks" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(project_dir / "gasworks.toml", "a", encoding="utf-8") as toml:
        command = json.dumps([sys.executable, str(script), "{worktree}", str(marker)])
        toml.write(f'\nagent = "command"\ncommand = {command}\nmax_attempts = 1\n')
    task_id = create(project_dir, "fills the disk once")
    bwrap = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", str(tmp_path), str(tmp_path),
             "--size", str(4 << 20), "--tmpfs", str(logs), "--"]
    run, out = start_run(project_dir, "--workers", "1", prefix=tuple(bwrap))
    wait_for(lambda: "is full" in out.read_text() or run.poll() is not None, "the run to find the log folder full")
    assert run.poll() is None, out.read_text()
    inside = next(p for p in psutil.Process(run.pid).children(recursive=True) if "gasworks" in " ".join(p.cmdline()))
    (Path(f"/proc/{inside.pid}/root") / logs.relative_to("/") / "filler").unlink()  # free space in its tmpfs
    output = finish(run, out)
    assert run.returncode == 0, output
    assert "the log folder has room again" in output
    with open_store(project_dir) as store:
        assert [a.outcome for a in store.attempts(task_id)] == ["disk_full", "success"]
    assert_landed_once(project_dir, [task_id])
