"""Small helpers the benchmarks share: progress on stderr, plain tables, percentiles, a bounded
`gasworks run`, and the parsing of number options."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def run_bounded(argv: list[str], cwd: Path, env: dict[str, str], log_file: Path, timeout: float) -> tuple[int, float]:
    """Run argv (a `gasworks run`) with its output in log_file; (exit code, wall seconds). Past the
    timeout it is stopped as a user would: Ctrl+C twice, then a kill."""
    with open(log_file, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            progress(f"  WARNING: gasworks run took more than {timeout:.0f} s; stopping it")
            for _ in range(2):  # the first SIGINT stops claiming; the second ends running agents
                proc.send_signal(signal.SIGINT)
                time.sleep(1)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        return code, time.perf_counter() - start


def counts(text: str, what: str, high: int | None = None) -> list[int]:
    """A comma-separated option of whole numbers from 1 (up to high); `what` names them in errors."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
    if not values or any(value < 1 or (high is not None and value > high) for value in values):
        bound = f"{what} from 1 to {high}" if high is not None else f"positive {what}"
        raise argparse.ArgumentTypeError(f"expected {bound}, got {text!r}")
    return values


def positive(text: str) -> int:
    """A whole number from 1, for an option."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# -- running the command line ----------------------------------------------------------------

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def clean_env(**settings: str) -> dict[str, str]:
    """The environment for every subprocess: ours without GASWORKS_* settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    return {**env, **GIT_ENV, "GASWORKS_ACTOR": "bench", **settings}


def with_bytecode_cache(env: dict[str, str], folder: Path) -> dict[str, str]:
    """env with Python's bytecode cache on, kept in folder (not beside the sources): start-up is
    then measured as an installed package has it, even where PYTHONDONTWRITEBYTECODE is set."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(folder)}


def git(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], check=False, cwd=cwd, capture_output=True, text=True, env=clean_env(),
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def make_repo(root: Path, readme: str, branch: str = "main") -> None:
    """A fresh repository on branch with one commit (a README.md) and its own identity (no global
    config needed)."""
    root.mkdir()
    git(["init", "-q", "-b", branch], root)
    for key, value in (("user.name", "bench"), ("user.email", "bench@localhost"), ("commit.gpgsign", "false")):
        git(["config", key, value], root)
    (root / "README.md").write_text(f"{readme}\n", encoding="utf-8")
    git(["add", "README.md"], root)
    git(["commit", "-q", "-m", "Initial commit"], root)


def gasworks(args: list[str], cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "gasworks", *args], check=False, cwd=cwd, capture_output=True,
                            text=True, env=clean_env(), stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"gasworks {' '.join(args)} failed ({result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()}")
    return result.stdout


def emit(report: object, as_json: bool, show: Callable[[Any], None]) -> int:
    """The end of every bench: the report as JSON (--json) or as tables; exit code 0."""
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        show(report)
    return 0
