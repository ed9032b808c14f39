"""Benchmark: how long the everyday commands take to answer, against `python -c pass` on the same machine.

In a fresh git repository in a temporary directory it runs `gasworks init`, creates some tasks,
then times, in rounds, each of these as a subprocess of the same interpreter as this script
(`python -m gasworks ...`, which is what the `gasworks` entry point runs):

    python -c pass                  the floor: interpreter start-up with this environment's site
                                    (in a development checkout that includes the editable install's
                                    import hook, about half of it here)
    gasworks ready --json
    gasworks list
    gasworks show ID
    gasworks create TITLE           a new task every round
    gasworks update ID --claim      the task this round created
    gasworks close ID               the same task
    fake agent                      `python -m gasworks.agents.fake TASK_FILE` on a task whose script
                                    leaves the work uncommitted (start-up, import, one file written)

Every round runs each of them once, in that order, so load on the machine falls on all of them
alike; the load average is printed, as other work on the machine moves every figure. Python's
bytecode cache is on (in the temporary directory), as for an installed package, even where
PYTHONDONTWRITEBYTECODE is set; one warm-up round fills it. It prints the median and p90 wall time
of each and the ratio of its median to the median of `python -c pass` measured in the same run.
The goal is every ratio within 3x. Nothing is asserted.

Run from the repository root (PYTHONPATH chooses which gasworks is measured, as for every bench):

    python bench/startup.py               # 15 rounds (about 15 s)
    python bench/startup.py --rounds 40   # more rounds
    python bench/startup.py --json        # results as JSON on stdout

Progress goes to stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (  # bench/ is on sys.path here
    clean_env,
    emit,
    gasworks,
    make_repo,
    percentile,
    positive,
    print_rows,
    progress,
    with_bytecode_cache,
)

DEFAULT_ROUNDS = 15
SEED_TASKS = 20
GOAL = 3.0
FAKE_SCRIPT = '```gasworks-fake\n{"no_commit": true}\n```\n'


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one run of argv, and its stdout; a failure stops the bench."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} failed ({result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()}")
    return elapsed, result.stdout


def make_project(root: Path) -> str:
    """A repository with a gasworks project and SEED_TASKS tasks; returns the id of one of them."""
    make_repo(root, "start-up benchmark repository")
    gasworks(["init"], root)
    ids = [gasworks(["create", f"Seeded task {i + 1:02d}", "-d", "Something to list.", "-q"], root).strip()
           for i in range(SEED_TASKS)]
    return ids[len(ids) // 2]


def one_round(root: Path, shown: str, task_file: Path, env: dict[str, str]) -> dict[str, float]:
    """Each command once; a task created here is claimed and closed here."""
    python = sys.executable
    times = {"python -c pass": timed([python, "-c", "pass"], root, env)[0]}

    def run(name: str, args: list[str]) -> str:
        times[name], out = timed([python, "-m", "gasworks", *args], root, env)
        return out

    run("ready --json", ["ready", "--json"])
    run("list", ["list"])
    run("show", ["show", shown])
    created = run("create", ["create", "Bench task", "-d", "Made by bench/startup.py."])
    new_id = created.split()[1].rstrip(":")  # "Created gw-xxxx: Bench task"
    run("update --claim", ["update", new_id, "--claim"])
    run("close", ["close", new_id, "-r", "done"])
    fake_env = {**env, "GASWORKS_TASK_ID": "bench-fake", "GASWORKS_WORKTREE": str(root)}
    times["fake agent"] = timed([python, "-m", "gasworks.agents.fake", str(task_file)], root, fake_env)[0]
    return times


def measure(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gasworks-bench-startup-") as tmp:
        env = with_bytecode_cache(clean_env(), Path(tmp) / "pycache")
        root = Path(tmp) / "repo"
        progress(f"making a repository with {SEED_TASKS} tasks")
        shown = make_project(root)
        task_file = Path(tmp) / "task.txt"
        task_file.write_text(f"Task bench-fake: write a file\n\n{FAKE_SCRIPT}", encoding="utf-8")
        one_round(root, shown, task_file, env)  # warm-up: writes the bytecode cache, fills the page cache
        samples: dict[str, list[float]] = {}
        for index in range(rounds):
            progress(f"round {index + 1} of {rounds}")
            for name, seconds in one_round(root, shown, task_file, env).items():
                samples.setdefault(name, []).append(seconds * 1000)
    floor = statistics.median(samples["python -c pass"])
    rows = [{"command": name, "median_ms": round(statistics.median(values), 1),
             "p90_ms": round(percentile(values, 90), 1),
             "ratio": round(statistics.median(values) / floor, 2)} for name, values in samples.items()]
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"python": sys.executable, "rounds": rounds, "goal_ratio": GOAL, "load_average": load, "results": rows}


def print_table(report: dict[str, Any]) -> None:
    goal = report["goal_ratio"]
    print_rows(("command", "median ms", "p90 ms", "x python -c pass", f"within {goal:g}x"),
               [(r["command"], f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{r['ratio']:.2f}",
                 "yes" if r["ratio"] <= goal else "NO") for r in report["results"]])
    print()
    print(f"{report['rounds']} rounds, each command once per round; every command runs as `{report['python']} "
          "-m gasworks ...`,\nthe same interpreter as `python -c pass`, in a repository holding "
          f"{SEED_TASKS} tasks or more.\nLoad average (1, 5, 15 min) at the end: {report['load_average']}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive, default=DEFAULT_ROUNDS,
                        help=f"times each command runs (default {DEFAULT_ROUNDS})")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    return emit(measure(args.rounds), args.json, print_table)


if __name__ == "__main__":
    sys.exit(main())
