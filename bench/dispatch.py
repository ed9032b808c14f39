"""Benchmark: orchestration overhead per task and tasks per minute of `gasworks run`, with the fake agent.

For each worker count (default 1, 4 and 14) it makes a fresh git repository in a temporary
directory, runs `gasworks init`, imports N independent tasks (default 42) from a classic
`task_queue.json` with `gasworks import`, and drains them with the real command line in a
subprocess:

    python -m gasworks run --agent fake --workers W --until-done

The shipped fake agent does the trivial work: it writes `fake/<task-id>.txt` and commits it, and
gasworks merges each branch into the target branch. Afterwards the benchmark checks that every
task is closed and that the target branch holds one commit and one file under `fake/` per task
(a warning is printed if not), then reads the store's records (`SQLiteStore.events()` and
`SQLiteStore.attempts()`) and two file timestamps of each task's attempt log:

    claim       the `status` event to in_progress (the dispatcher's claim_next)
    attempt     attempts.started_at, written before the worktree is reset for the task
    spawn       mtime of logs/<task>/, i.e. when gasworks created <attempt>.log in it, which
                process.spawn() does right before Popen (the directory changes only then)
    agent exit  mtime of <attempt>.log: the fake agent's last line ("committed"), printed just
                before it exits (interpreter shutdown after that is a few ms)
    noticed     attempts.ended_at: gasworks polls every 0.2 s (sleeping between ticks), and
                writes it after judging the attempt (git status, rev-list, detach)
    closed      the `status` event to closed, written right after the target branch moved

and reports per task:

    claim->start    claim -> spawn                 gasworks's work before the agent runs
    agent run       spawn -> agent exit            the fake agent itself (Python start-up,
                                                   import, one file, git add + commit)
    exit->merged    agent exit -> closed           gasworks's work after the agent, split into
                    = exit->noticed + noticed->closed  (poll wait + judging) and (the merge)

plus, per worker count, the wall time of the whole `gasworks run` command (start-up, worktree
creation, draining) and tasks per minute from it. psutil's process start time (attempts.pid_started)
is not used: on Linux it is derived from the boot time in whole seconds, so it can be off from the
wall clock by up to a second (it is reported as a diagnostic). File timestamps come from the
kernel's coarse clock; how far they lag the wall clock here is measured and printed.

This is a printout only: nothing is asserted. No network is used. Temporary directories are removed.

Run from the repository root:

    python bench/dispatch.py                  # 42 tasks at 1, 4 and 14 workers (about 30 s)
    python bench/dispatch.py --quick          # 14 tasks (about 10 s)
    python bench/dispatch.py --tasks 100      # choose the number of tasks
    python bench/dispatch.py --workers 1,2,8  # choose worker counts
    python bench/dispatch.py --json           # results as JSON on stdout
    python bench/dispatch.py --sandbox bwrap  # agents under bubblewrap (needs bwrap)
    python bench/dispatch.py --agent fake,shell  # also with a shell-script agent, and the ratio

`--agent shell` runs the same work as a POSIX shell script (agent = "command"): it writes the same
file and commits it with git, so the two differ only in the agent's own start-up and language.
Agents and gasworks run with Python's bytecode cache on (kept in the temporary directory), as an
installed package has it, even where PYTHONDONTWRITEBYTECODE is set.

Progress goes to stderr; the tables (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (  # bench/ is on sys.path here
    clean_env,
    counts,
    emit,
    gasworks,
    git,
    make_repo,
    percentile,
    positive,
    print_rows,
    progress,
    run_bounded,
    with_bytecode_cache,
)

from gasworks.fleet import run_fleet
from gasworks.models import parse_time
from gasworks.store.sqlite import SQLiteStore

DEFAULT_TASKS = 42
QUICK_TASKS = 14
DEFAULT_WORKERS = (1, 4, 14)
TARGET = "main"
POLL_SECONDS = inspect.signature(run_fleet).parameters["poll_seconds"].default
RUN_TIMEOUT_PER_TASK = 30.0  # generous: a run that takes longer than this per task is stopped
AGENTS = ("fake", "shell")
# The fake agent's default work in sh, for agent = "command": one file, one commit.
SHELL_AGENT = """\
set -e
cd "$2"
echo "shell agent on $1"
mkdir -p fake
printf 'done by the shell agent: %s\\n' "$1" > "fake/$1.txt"
git add -A
git -c core.hooksPath=/dev/null commit -q -m "fake: $1"
echo committed
"""


# -- running the command line ----------------------------------------------------------------


def seed_tasks(root: Path, queue_file: Path, n: int) -> list[str]:
    """`gasworks init`, then import n independent tasks from a task_queue.json; returns their ids."""
    gasworks(["init"], root)
    queue = [{"title": f"Bench task {i + 1:03d}", "description": "A trivial change for the dispatch benchmark.",
              "status": "pending"} for i in range(n)]
    queue_file.write_text(json.dumps(queue, indent=2), encoding="utf-8")
    summary = json.loads(gasworks(["import", str(queue_file), "--json"], root))
    if summary["created"] != n:
        raise RuntimeError(f"import created {summary['created']} tasks, expected {n}: {summary}")
    return list(summary["ids"])


@dataclass
class RunResult:
    code: int
    wall_seconds: float
    started_epoch: float
    output: str


def run_fleet_cli(root: Path, workers: int, log_file: Path, timeout: float, agent: str = "fake") -> RunResult:
    """`gasworks run --agent fake --workers W --until-done` (--agent command for the shell agent), timed
    from spawn to exit; output to a file."""
    kind = "command" if agent == "shell" else agent
    argv = [sys.executable, "-m", "gasworks", "run", "--agent", kind, "--workers", str(workers), "--until-done"]
    started_epoch = time.time()
    env = with_bytecode_cache(clean_env(), log_file.parent / "pycache")
    code, wall = run_bounded(argv, root, env, log_file, timeout)
    return RunResult(code, wall, started_epoch, log_file.read_text(encoding="utf-8", errors="replace"))


# -- reading the records ---------------------------------------------------------------------


def epoch(text: str) -> float:
    return parse_time(text).timestamp()


@dataclass
class TaskTimes:
    """Wall-clock instants (epoch seconds) of one task's successful attempt; None where unknown."""

    task_id: str
    status: str
    attempts: int
    claim: float | None = None
    attempt_row: float | None = None
    spawn: float | None = None
    agent_exit: float | None = None
    noticed: float | None = None
    closed: float | None = None
    pid_started: float | None = None
    problems: list[str] = field(default_factory=list)

    def span_ms(self, start: str, end: str) -> float | None:
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else (b - a) * 1000


def task_times(store: SQLiteStore, task_id: str) -> TaskTimes:
    task = store.get_task(task_id)
    attempts = store.attempts(task_id)
    times = TaskTimes(task_id, task.status, len(attempts))
    success = [a for a in attempts if a.outcome == "success"]
    if not success:
        times.problems.append(f"{task_id}: no successful attempt ({[a.outcome for a in attempts]})")
        return times
    attempt = success[-1]
    times.attempt_row = epoch(attempt.started_at)
    times.noticed = epoch(attempt.ended_at) if attempt.ended_at else None
    times.pid_started = attempt.pid_started
    events = store.events(task_id, limit=1000)
    claims = [e for e in events if e.kind == "status" and e.new_value == "in_progress"
              and epoch(e.created_at) <= times.attempt_row]
    closes = [e for e in events if e.kind == "status" and e.new_value == "closed"]
    times.claim = epoch(claims[-1].created_at) if claims else None
    times.closed = epoch(closes[-1].created_at) if closes else None
    log = Path(attempt.log_path) if attempt.log_path else None
    if log and log.is_file():
        times.agent_exit = log.stat().st_mtime
        if attempt is attempts[-1]:  # the directory's mtime is the creation of its newest log: this one
            times.spawn = log.parent.stat().st_mtime
    else:
        times.problems.append(f"{task_id}: attempt log {attempt.log_path!r} not found")
    return times


def read_times(root: Path, task_ids: list[str]) -> list[TaskTimes]:
    store = SQLiteStore(root / ".gasworks" / "gasworks.db")
    try:
        return [task_times(store, task_id) for task_id in task_ids]
    finally:
        store.close()


def check_target(root: Path, task_ids: list[str]) -> list[str]:
    """One commit and one file under fake/ per task on the target branch; returns warnings."""
    warnings = []
    files = set(git(["ls-tree", "-r", "--name-only", TARGET, "--", "fake/"], root).stdout.split())
    expected = {f"fake/{task_id}.txt" for task_id in task_ids}
    if files != expected:
        missing, extra = sorted(expected - files), sorted(files - expected)
        warnings.append(f"{TARGET} has {len(files)} files under fake/, expected {len(expected)}"
                        + (f"; missing {missing[:5]}" if missing else "") + (f"; extra {extra[:5]}" if extra else ""))
    commits = int(git(["rev-list", "--count", "--no-merges", TARGET, "--", "fake/"], root).stdout.strip())
    if commits != len(task_ids):
        warnings.append(f"{TARGET} has {commits} commits touching fake/, expected {len(task_ids)}")
    return warnings


# -- measuring -------------------------------------------------------------------------------



def summary(values: list[float | None]) -> dict[str, Any] | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return {"median_ms": round(statistics.median(known), 1), "p90_ms": round(percentile(known, 90), 1),
            "max_ms": round(max(known), 1), "n": len(known)}


SPANS = {  # name -> (from, to)
    "claim_to_start": ("claim", "spawn"),
    "claim_to_attempt_row": ("claim", "attempt_row"),
    "attempt_row_to_spawn": ("attempt_row", "spawn"),
    "agent_run": ("spawn", "agent_exit"),
    "exit_to_merged": ("agent_exit", "closed"),
    "exit_to_noticed": ("agent_exit", "noticed"),
    "noticed_to_closed": ("noticed", "closed"),
    "claim_to_closed": ("claim", "closed"),
}


def bench_workers(workers: int, n: int, sandbox: str = "none", agent: str = "fake") -> dict[str, Any]:
    progress(f"workers={workers}, tasks={n}, sandbox={sandbox}, agent={agent}: making a repository and "
             "importing the tasks")
    with tempfile.TemporaryDirectory(prefix="gasworks-bench-dispatch-") as tmp:
        root = Path(tmp) / "repo"
        make_repo(root, "dispatch benchmark repository", TARGET)
        task_ids = seed_tasks(root, Path(tmp) / "task_queue.json", n)
        with open(root / "gasworks.toml", "a", encoding="utf-8") as config:
            config.write(f'\nsandbox = "{sandbox}"\n')
            if agent == "shell":
                (Path(tmp) / "agent.sh").write_text(SHELL_AGENT, encoding="utf-8")
                config.write(f'command = ["sh", {json.dumps(str(Path(tmp) / "agent.sh"))}, "{{task_id}}", '
                             '"{worktree}"]\n')
        progress(f"  running gasworks run --agent {agent} --workers {workers} --until-done")
        run = run_fleet_cli(root, workers, Path(tmp) / "run.log", timeout=60 + RUN_TIMEOUT_PER_TASK * n,
                            agent=agent)
        progress(f"  exit code {run.code} after {run.wall_seconds:.1f} s; reading the records")
        warnings = [] if run.code == 0 else [f"gasworks run exited with {run.code}; its last lines:\n"
                                             + "\n".join(run.output.splitlines()[-10:])]
        times = read_times(root, task_ids)
        not_closed = [t.task_id for t in times if t.status != "closed"]
        if not_closed:
            warnings.append(f"{len(not_closed)} of {n} tasks are not closed: {not_closed[:5]}")
        for t in times:
            warnings.extend(t.problems)
        retried = [t.task_id for t in times if t.attempts > 1]
        if retried:
            warnings.append(f"{len(retried)} tasks needed more than one attempt: {retried[:5]}")
        warnings.extend(check_target(root, task_ids))
        merges = int(git(["rev-list", "--count", "--merges", TARGET], root).stdout.strip())
        leftover = [line for line in git(["status", "--porcelain"], root).stdout.splitlines()
                    if line.strip() and line != "?? gasworks.toml"]  # written by `gasworks init`, not committed
        if leftover:
            warnings.append(f"the main checkout is not clean after the run: {leftover[:5]}")
    for warning in warnings:
        progress(f"  WARNING: {warning}")

    claims = [t.claim for t in times if t.claim is not None]
    closes = [t.closed for t in times if t.closed is not None]
    drain = (max(closes) - min(claims)) if claims and closes else None
    offsets = [(t.pid_started - t.spawn) * 1000 for t in times if t.pid_started is not None and t.spawn is not None]
    return {
        "workers": workers,
        "agent": agent,
        "tasks": n,
        "exit_code": run.code,
        "wall_seconds": round(run.wall_seconds, 2),
        "tasks_per_minute": round(n / run.wall_seconds * 60, 1),
        "startup_seconds": round(min(claims) - run.started_epoch, 2) if claims else None,
        "drain_seconds": round(drain, 2) if drain is not None else None,
        "drain_tasks_per_minute": round(n / drain * 60, 1) if drain else None,
        "closed": n - len(not_closed),
        "merge_commits": merges,
        "spans": {name: summary([t.span_ms(a, b) for t in times]) for name, (a, b) in SPANS.items()},
        "pid_started_minus_spawn_ms": round(statistics.median(offsets), 1) if offsets else None,
        "warnings": warnings,
    }


def fs_clock_lag_ms(directory: Path, seconds: float = 0.2) -> float | None:
    """How far a new file's mtime can lag the wall clock (the kernel's coarse clock), measured.

    Files are created one after another and only stat()ed afterwards, as gasworks's logs are: on
    recent kernels a file whose times were read since its last change gets a fine-grained time next.
    """
    made = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        path = directory / f"probe{len(made)}"
        before = time.time_ns()
        path.touch()
        made.append((path, before))
        time.sleep(0.0005)
    lags = [before - path.stat().st_mtime_ns for path, before in made]
    return round(max(0, max(lags)) / 1e6, 1) if lags else None


# -- output ----------------------------------------------------------------------------------



def med_p90(span: dict[str, Any] | None) -> tuple[str, str]:
    if span is None:
        return "-", "-"
    return f"{span['median_ms']:.0f}", f"{span['p90_ms']:.0f}"



def speed_up(result: dict[str, Any], results: list[dict[str, Any]]) -> str:
    base = next((r for r in results if r["workers"] == 1 and r.get("agent") == result.get("agent")), None)
    if base is None:
        return "n/a"
    return f"{base['wall_seconds'] / result['wall_seconds']:.2f}x"


def print_agent_ratios(results: list[dict[str, Any]]) -> None:
    """With both agents measured: the fake agent's wall time over the shell agent's, per worker count."""
    shell = {r["workers"]: r for r in results if r["agent"] == "shell"}
    rows = [(str(r["workers"]), f"{r['wall_seconds']:.1f}", f"{shell[r['workers']]['wall_seconds']:.1f}",
             f"{r['wall_seconds'] / shell[r['workers']]['wall_seconds']:.2f}x")
            for r in results if r["agent"] == "fake" and r["workers"] in shell]
    if rows:
        print()
        print("The fake agent (Python) against the same work as a shell script, wall time of the whole run:")
        print_rows(("workers", "fake s", "shell s", "fake / shell"), rows)


def print_tables(report: dict[str, Any]) -> None:
    results = report["results"]
    header = ("agent", "workers", "tasks", "wall s", "tasks/min", "speed-up", "claim->start med ms", "p90 ms",
              "exit->merged med ms", "p90 ms")
    rows = []
    for r in results:
        rows.append((r["agent"], str(r["workers"]), str(r["tasks"]), f"{r['wall_seconds']:.1f}",
                     f"{r['tasks_per_minute']:.1f}", speed_up(r, results), *med_p90(r["spans"]["claim_to_start"]),
                     *med_p90(r["spans"]["exit_to_merged"])))
    print_rows(header, rows)
    print()
    print("Where the time goes (median / p90 ms per task):")
    header = ("agent", "workers", "start-up s", "drain s", "drain tasks/min", "claim->attempt", "attempt->spawn",
              "agent run", "exit->noticed", "noticed->closed", "claim->closed")
    rows = []
    for r in results:
        spans = r["spans"]
        cells = [r["agent"], str(r["workers"]), f"{r['startup_seconds']}", f"{r['drain_seconds']}",
                 f"{r['drain_tasks_per_minute']}"]
        for name in ("claim_to_attempt_row", "attempt_row_to_spawn", "agent_run", "exit_to_noticed",
                     "noticed_to_closed", "claim_to_closed"):
            cells.append(" / ".join(med_p90(spans[name])))
        rows.append(tuple(cells))
    print_rows(header, rows)
    print()
    poll = f"{report['poll_seconds'] * 1000:.0f} ms"
    lag = report["fs_mtime_lag_ms"]
    print(f"""\
What the numbers include (all from the store's records and the attempt log's timestamps):
  wall s          the whole `gasworks run --until-done` process: Python start-up, recovery, creating
                  one worktree per worker plus the integration worktree, draining, exit. tasks/min and
                  speed-up use it. start-up s = process start -> first claim; drain s = first claim ->
                  last close.
  claim->start    claim (status -> in_progress) -> the attempt log's creation right before Popen: the
                  attempt row, resetting the worktree to a fresh branch (git), writing the task file.
                  No poll wait: the dispatcher starts a task right after claiming it.
                  = claim->attempt + attempt->spawn.
  agent run       spawn -> the fake agent's last log line: Python start-up, importing gasworks, one
                  file, git add + commit. The agent's own time, not gasworks's overhead.
  exit->merged    the agent's last log line (it exits a few ms later) -> status closed, written right
                  after the target branch moved. = exit->noticed + noticed->closed.
  exit->noticed   until attempts.ended_at. Includes the wait for the next poll (gasworks sleeps
                  {poll} between ticks, so 0-{poll} plus whatever the tick is doing: merging other
                  branches, starting other agents) AND the judging before ended_at is written (git
                  status, rev-list, detach). So ended_at - started_at is NOT the agent's run time.
                  With one worker the wait is phase-locked: an agent starts at the end of a tick, so
                  it is about {poll} - agent run whenever the agent takes less than {poll}.
  noticed->closed the merge: merging the branch in the integration worktree, fast-forwarding the
                  checkout of {TARGET}, recording the close. Merges are one at a time.
  File mtimes come from the kernel's coarse clock: here they read up to {lag} ms early (measured),
  so claim->start can be up to that much short and exit->merged up to that much long.
  psutil's process start time (attempts.pid_started) is not used: here it differs from the spawn
  instant by {report['pid_started_minus_spawn_ms']} ms (median), as psutil derives it from the boot time, which
  Linux gives in whole seconds.
One run per worker count: other load on the machine moves these numbers from run to run.
This machine has {report['cpu_count']} CPU core(s): the dispatcher, every agent and every git command share
them, and merges are serial, so the speed-up is bounded by about {report['cpu_count']}x however many workers
run; with more workers than cores, per-task overheads grow because processes wait for a CPU.""")
    print_agent_ratios(results)
    warnings = [(r["workers"], w) for r in results for w in r["warnings"]]
    if warnings:
        print()
        for workers, warning in warnings:
            print(f"WARNING (workers={workers}): {warning}")
    else:
        print(f"Checked: every task closed, and {TARGET} has one commit and one file under fake/ per task.")


# -- command line ----------------------------------------------------------------------------


def agent_names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or set(names) - set(AGENTS):
        raise argparse.ArgumentTypeError(f"expected agents from {', '.join(AGENTS)}, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=lambda text: counts(text, "worker counts", 256),
                        default=list(DEFAULT_WORKERS), help="comma-separated worker counts (default 1,4,14)")
    parser.add_argument("--tasks", type=positive, help=f"tasks per run (default {DEFAULT_TASKS}, "
                                                       f"{QUICK_TASKS} with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TASKS} tasks per run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--sandbox", choices=["none", "bwrap"], default="none",
                        help="run the agents (and gates) under bubblewrap, as sandbox = \"bwrap\" does")
    parser.add_argument("--agent", type=agent_names, default=["fake"],
                        help="comma-separated agents: fake (default) and shell (the same work as a shell script)")
    args = parser.parse_args(argv)
    n = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)

    with tempfile.TemporaryDirectory(prefix="gasworks-bench-clock-") as tmp:
        lag = fs_clock_lag_ms(Path(tmp))
    results = [bench_workers(workers, n, args.sandbox, agent) for agent in args.agent for workers in args.workers]
    offsets = [r["pid_started_minus_spawn_ms"] for r in results if r["pid_started_minus_spawn_ms"] is not None]
    report = {
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "poll_seconds": POLL_SECONDS,
        "fs_mtime_lag_ms": lag,
        "pid_started_minus_spawn_ms": statistics.median(offsets) if offsets else None,
        "results": results,
    }
    return emit(report, args.json, print_tables)


if __name__ == "__main__":
    sys.exit(main())
