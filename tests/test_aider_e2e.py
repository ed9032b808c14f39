"""The real Aider, inside the dispatcher, against the embedded model's OpenAI-compatible endpoint.

Aider comes from PyPI (`aider-chat`, what the `[aider]` extra installs) into a virtual environment
of its own under .cache/ (its pinned dependencies would fight gasworks's own), made once and
reused; GASWORKS_TEST_AIDER names another `aider` to use. The tiny model's edit may well be empty:
what is checked is the plumbing, real processes end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import psutil
import pytest

from gasworks import git
from gasworks.store.sqlite import SQLiteStore
from tests.fleet import agent_processes

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "aider-venv"


@pytest.fixture(scope="session")
def aider() -> str:
    named = os.environ.get("GASWORKS_TEST_AIDER") or shutil.which("aider")
    if named:
        return named
    command = CACHE / ("Scripts" if sys.platform == "win32" else "bin") / "aider"
    if not command.exists():
        venv.create(CACHE, with_pip=True, clear=True)
        pip = CACHE / ("Scripts" if sys.platform == "win32" else "bin") / "pip"
        installed = subprocess.run([str(pip), "install", "-q", "aider-chat"], capture_output=True, text=True,
                                   timeout=900)
        if installed.returncode or not command.exists():
            why = f"could not install aider-chat: {installed.stderr.strip()[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(why)
            pytest.skip(why)
    return str(command)


@pytest.mark.timeout(1200)  # installing Aider the first time, then a real model on a small CPU
def test_aider_runs_in_the_fleet_on_the_embedded_model(project_dir: Path, aider: str):
    (project_dir / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    git.commit_all(project_dir, "a bug")
    before = git.rev_parse(project_dir, "main")
    with open(project_dir / "gasworks.toml", "a", encoding="utf-8") as toml:
        toml.write(f'\nagent = "aider"\nmodel = "embedded"\naider_cmd = {json.dumps([aider])}\n'
                   "embedded_parallel = 1\nembedded_ctx = 4096\nmax_attempts = 1\nattempt_timeout = 600\n")
    created = subprocess.run([sys.executable, "-m", "gasworks", "create", "Fix add() in calc.py: it must return "
                              "a + b", "-q"], cwd=project_dir, capture_output=True, text=True, timeout=60)
    task_id = created.stdout.strip()
    run = subprocess.Popen([sys.executable, "-m", "gasworks", "run", "--workers", "1", "--until-done"],
                           cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        out, _ = run.communicate(timeout=900)
    except subprocess.TimeoutExpired:  # stop it as a user would, so it ends Aider and the engine too
        run.send_signal(signal.SIGINT)
        run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=60)
        pytest.fail(f"the run did not finish:\n{out}")
    assert run.returncode in (0, 1), out

    store = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    try:
        attempts = store.attempts(task_id)
        task = store.get_task(task_id)
    finally:
        store.close()
    assert len(attempts) == 1 and attempts[0].ended_at, attempts
    attempt = attempts[0]
    log = Path(attempt.log_path).read_text(errors="replace")
    assert "Aider v" in log and "Model: openai/" in log  # the real Aider, on the embedded endpoint
    assert attempt.exit_code == 0  # Aider exits 0 whatever the model did: gasworks judged it from git
    if attempt.outcome == "success":  # the model changed something: it went through the merge queue
        assert task.status == "closed"
        assert git.run(["log", "--format=%s", "main"], project_dir).stdout.startswith(f"Merge gasworks/{task_id}")
    else:
        assert attempt.outcome == "no_change" and task.status == "blocked" and "needs-human" in task.labels
        assert git.rev_parse(project_dir, "main") == before  # nothing merged
    assert agent_processes(project_dir) == []
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if "serve-model" in " ".join(p.info["cmdline"] or [])
                 and str(project_dir) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []  # the embedded engine stops with the run
