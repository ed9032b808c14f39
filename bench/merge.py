"""Benchmark: how much the merge queue's batching saves, in wall time and gate runs, on a 2 s gate.

For each batch size (default 1, 4, 8 and "auto") it makes, in a temporary directory:

* a fresh git repository on `main` with one commit and its own identity (repository config), and
  `gasworks init` (`gasworks.project.init_project`);
* N finished branches (default 40) `gasworks/<task-id>`, each adding its own file `ok-NN.txt`,
  except B of them (default 2, at the 7th and the 29th branch: p = 0.05) that add `bad-NN.txt`,
  which makes the gate fail. The tasks are made with the store API (`SQLiteStore.create_task`),
  moved to `in_progress` and then `merging`, and queued in branch order with
  `SQLiteStore.enqueue_merge(task_id, branch, head)`. The branches are written by one
  `git fast-import` with fixed dates, so their commits are the same in every run;
* the gate: a Python command that sleeps `--gate-seconds` (default 2) and fails when any `bad*`
  file is in the worktree. Each run appends one line to a log outside the repository (the files it
  saw, its pass or fail, its start and end), so the benchmark counts real gate runs. (The sum of
  the merges' `gate_runs` is NOT that count: a batched run is counted on every merge in the batch.)

and drains the queue with the real refinery, in this process:

    Refinery(project, store, config, LocalUpstream(root, "main")).ensure(), then .process() until .moving() is False

with `load_config(root, overrides={"gate": [...], "merge_batch_size": K, "max_attempts": 1})`
(GASWORKS_* environment variables are ignored). The drain time is the wall time of that loop.
Afterwards it reads the store: merges landed, which tasks were sent back (merges `gate_failed`),
and checks that `main` holds every good file and no bad one.

From the gate log it also replays, run by run, which branches each gate run tested (the files a
run saw minus those already landed; nothing else moves `main` here), so it can show how the
refinery spent its gate runs: one per clean batch, and for a failing batch the failed run, the
"flaky gate" retry of the whole batch, and the bisection runs. A run that tested no branch is the
refinery's check of the untouched tip.

It prints one row per batch size with ratios to batch size 1 (speed-up = serial drain time /
batched drain time), the issue's aims next to the figures (at least 2.3x faster than serial at
K=4 and 2.5x at K=8; at most 0.5 gate runs per landed change), whether each is met, and where the
gate runs went. This is a printout only: nothing is asserted. No network is used. Temporary
directories are removed.

Run from the repository root:

    python bench/merge.py                       # 40 branches, 2 bad, 2 s gate, K = 1,4,8,auto (~3 min)
    python bench/merge.py --quick               # 16 branches, 1 bad, 0.5 s gate (~20 s)
    python bench/merge.py --batch-sizes 1,8     # choose batch sizes (1-32 or auto)
    python bench/merge.py --branches 80 --bad 4 --gate-seconds 1
    python bench/merge.py --bad-at 1,40         # choose which branches are bad (1-based)
    python bench/merge.py --json                # results as JSON on stdout
    python bench/merge.py --end-to-end          # pre-gates + speculative gating against serial (bench/merge_e2e.py)

Progress goes to stderr; the tables (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, print_rows, progress  # bench/ is on sys.path when a script here runs

from gasworks.config import load_config
from gasworks.models import MergeStatus
from gasworks.project import init_project
from gasworks.refinery import Refinery
from gasworks.store import NewTask
from gasworks.upstream import LocalUpstream

DEFAULT_BRANCHES, DEFAULT_BAD, DEFAULT_GATE_SECONDS = 40, 2, 2.0
QUICK_BRANCHES, QUICK_BAD, QUICK_GATE_SECONDS = 16, 1, 0.5
DEFAULT_BATCH_SIZES = ("1", "4", "8", "auto")
FIRST_BAD, BAD_STEP = 7, 22  # default bad branches: the 7th, 29th, 51st, ... (1-based)
SEED = 20240607              # for --bad counts whose default positions run past --branches
TARGET = "main"
PREFIX = "gw"
ACTOR = "bench"
FIXED_DATE = "1700000000 +0000"
IDENTITY = ("bench", "bench@localhost")
AIMS = {"speed_up": {"4": 2.3, "8": 2.5}, "max_runs_per_landed": 0.5}
STALL_SECONDS = 30.0  # the refinery did nothing for this long while work is pending: give up
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_AUTHOR_NAME": IDENTITY[0],
           "GIT_AUTHOR_EMAIL": IDENTITY[1], "GIT_COMMITTER_NAME": IDENTITY[0], "GIT_COMMITTER_EMAIL": IDENTITY[1],
           "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE}

# The gate. argv[1] is this script; then the log file and the seconds. It looks at the files the
# benchmark's branches add (ok-NN.txt, bad-NN.txt) in its working directory (the integration worktree).
GATE_SCRIPT = """\
import json, pathlib, sys, time
log, seconds = sys.argv[1], float(sys.argv[2])
start = time.time()
seen = sorted(p.name for p in pathlib.Path('.').iterdir() if p.name.startswith(('ok-', 'bad-')))
bad = [name for name in seen if name.startswith('bad')]
time.sleep(seconds)
with open(log, 'a', encoding='utf-8') as out:
    out.write(json.dumps({'start': start, 'end': time.time(), 'seen': seen, 'passed': not bad}) + '\\n')
print('broken by', bad) if bad else print('ok')
sys.exit(1 if bad else 0)
"""


# -- the repository and the queue ------------------------------------------------------------



def git(args: list[str], cwd: Path, stdin: bytes | None = None) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GASWORKS_"))}, **GIT_ENV}
    result = subprocess.run(["git", *args], check=False, cwd=cwd, capture_output=True, env=env,
                            **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}))
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode()


def make_repo(root: Path) -> str:
    """A fresh repository on `main` with one commit (fixed date, so the same id every run)."""
    root.mkdir()
    git(["init", "-q", "-b", TARGET], root)
    for key, value in (("user.name", IDENTITY[0]), ("user.email", IDENTITY[1]), ("commit.gpgsign", "false")):
        git(["config", key, value], root)
    (root / "README.md").write_text("merge queue benchmark repository\n", encoding="utf-8")
    git(["add", "README.md"], root)
    git(["commit", "-q", "-m", "Initial commit"], root)
    return git(["rev-parse", "HEAD"], root).strip()


def file_name(index: int, bad: bool) -> str:
    return f"{'bad' if bad else 'ok'}-{index + 1:02d}.txt"


def make_branches(root: Path, base: str, names: list[str]) -> dict[str, str]:
    """One commit on `base` per branch, adding one file, all in a single `git fast-import`; returns heads.
    names: (branch, file) pairs in order."""
    stream = bytearray()
    for branch, path in names:
        message = f"Add {path}\n".encode()
        content = f"{path}: one change of the merge benchmark\n".encode()
        stream += (f"commit refs/heads/{branch}\n"
                   f"author {IDENTITY[0]} <{IDENTITY[1]}> {FIXED_DATE}\n"
                   f"committer {IDENTITY[0]} <{IDENTITY[1]}> {FIXED_DATE}\n"
                   f"data {len(message)}\n").encode() + message
        stream += f"from {base}\nM 100644 inline {path}\ndata {len(content)}\n".encode() + content + b"\n"
    git(["fast-import", "--quiet", "--done"], root, stdin=bytes(stream) + b"done\n")
    heads = git(["for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/gasworks/"], root)
    return dict(line.split() for line in heads.splitlines())


def bad_positions(branches: int, bad: int) -> list[int]:
    """The default bad branches (1-based): the 7th, 29th, 51st, ...; a seeded sample if those do not fit."""
    spread = [FIRST_BAD + BAD_STEP * k for k in range(bad)]
    if all(p <= branches for p in spread):
        return spread
    return sorted(random.Random(f"{SEED}:{branches}:{bad}").sample(range(1, branches + 1), bad))


def queue_branches(root: Path, store: Any, positions: set[int], branches: int) -> list[dict[str, Any]]:
    """Tasks (created, in_progress, merging), their branches, and the merge queue in branch order."""
    tasks = []
    for index in range(branches):
        is_bad = index + 1 in positions
        path = file_name(index, is_bad)
        task = store.create_task(NewTask(f"Add {path}", description="A change for the merge benchmark."),
                                 prefix=PREFIX, actor=ACTOR)
        store.transition(task.id, "in_progress", actor=ACTOR, reason="the benchmark's agent")
        store.transition(task.id, "merging", actor=ACTOR, expected="in_progress", reason="finished")
        tasks.append({"position": index + 1, "task_id": task.id, "branch": f"gasworks/{task.id}", "file": path,
                      "bad": is_bad})
    heads = make_branches(root, git(["rev-parse", TARGET], root).strip(), [(t["branch"], t["file"]) for t in tasks])
    for task in tasks:
        task["head"] = heads[task["branch"]]
        store.enqueue_merge(task["task_id"], task["branch"], task["head"])
    return tasks


# -- one run -------------------------------------------------------------------------------


def drain(refinery: Refinery) -> tuple[float, int, str]:
    """process() until nothing is pending; (wall seconds, rounds that did something, problem or '')."""
    started = time.perf_counter()
    rounds, idle_since = 0, None
    while refinery.moving():
        if refinery.process():
            rounds, idle_since = rounds + 1, None
            continue
        idle_since = idle_since or time.monotonic()
        if time.monotonic() - idle_since > STALL_SECONDS:
            return time.perf_counter() - started, rounds, f"the refinery did nothing for {STALL_SECONDS:.0f} s"
        time.sleep(0.05)
    return time.perf_counter() - started, rounds, ""


def replay_gate_log(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each gate run with the branches it tested (files seen minus files landed before it)."""
    landed: set[str] = set()
    runs = []
    for line in lines:
        tested = sorted(set(line["seen"]) - landed)
        runs.append({"tested": tested, "passed": line["passed"], "seconds": round(line["end"] - line["start"], 3)})
        if line["passed"]:
            landed |= set(tested)
    return runs


def group_rounds(runs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs grouped into refinery rounds: a round's later runs test subsets of its first run's branches
    (the retry, the bisection halves, the tip check with none)."""
    rounds: list[list[dict[str, Any]]] = []
    for run in runs:
        if rounds and set(run["tested"]) <= set(rounds[-1][0]["tested"]):
            rounds[-1].append(run)
        else:
            rounds.append([run])
    return rounds


def describe_rounds(rounds: list[list[dict[str, Any]]]) -> dict[str, Any]:
    clean = [r for r in rounds if r[0]["passed"]]
    failing = [r for r in rounds if not r[0]["passed"]]
    retries = sum(1 for r in failing if len(r) > 1 and r[1]["tested"] == r[0]["tested"] and len(r[0]["tested"]) > 1)
    tip_checks = sum(1 for r in rounds for run in r if not run["tested"])
    failing_runs = sum(len(r) for r in failing)
    return {
        "rounds": len(rounds),
        "first_try_sizes": [len(r[0]["tested"]) for r in rounds],
        "clean_rounds": len(clean),
        "runs_in_clean_rounds": sum(len(r) for r in clean),
        "failing_rounds": len(failing),
        "runs_in_failing_rounds": failing_runs,
        "runs_per_failing_round": [len(r) for r in failing],
        "retry_runs": retries,
        "tip_check_runs": tip_checks,
        "bisection_runs": failing_runs - len(failing) - retries - tip_checks,
        "sequence": " | ".join(" ".join(f"{len(run['tested'])}{'+' if run['passed'] else 'x'}" for run in r)
                               for r in rounds),
    }


def bench_batch_size(size: str, branches: int, positions: list[int], gate_seconds: float) -> dict[str, Any]:
    progress(f"batch size {size}: {branches} branches, bad at {', '.join(map(str, positions))}, "
             f"gate {gate_seconds:g} s")
    with tempfile.TemporaryDirectory(prefix="gasworks-bench-merge-") as tmp:
        root, gate_log = Path(tmp) / "repo", Path(tmp) / "gate.log"
        setup_started = time.perf_counter()
        make_repo(root)
        project, _ = init_project(root)
        gate = [sys.executable, "-c", GATE_SCRIPT, str(gate_log), repr(gate_seconds)]
        config = load_config(root, env={}, overrides={"gate": [gate], "merge_batch_size": size if size == "auto"
                                                      else int(size), "max_attempts": 1})
        store = project.open_store()
        try:
            tasks = queue_branches(root, store, set(positions), branches)
            setup_seconds = time.perf_counter() - setup_started
            progress(f"  set up in {setup_seconds:.2f} s; draining the queue")
            said: list[str] = []
            refinery = Refinery(project, store, config, LocalUpstream(root, TARGET), say=said.append)
            refinery.ensure()
            wall, process_rounds, problem = drain(refinery)
            progress(f"  drained in {wall:.1f} s")
            merges = {m.task_id: m for m in store.merges()}
            statuses = {t["task_id"]: store.get_task(t["task_id"]).status for t in tasks}
        finally:
            store.close()
        tree = set(git(["ls-tree", "--name-only", TARGET], root).split())
        log_lines = [json.loads(line) for line in gate_log.read_text(encoding="utf-8").splitlines()] \
            if gate_log.exists() else []

    runs = replay_gate_log(log_lines)
    landed = [t for t in tasks if merges[t["task_id"]].status == MergeStatus.LANDED.value]
    sent_back = [t for t in tasks if merges[t["task_id"]].status == MergeStatus.GATE_FAILED.value]
    other = [t for t in tasks if t not in landed and t not in sent_back]
    warnings = [problem] if problem else []
    if other:
        warnings.append(f"{len(other)} merges neither landed nor failed the gate: "
                        + ", ".join(f"#{t['position']} {merges[t['task_id']].status}" for t in other[:5]))
    expected_files = {t["file"] for t in tasks if not t["bad"]}
    present = {name for name in tree if name.startswith(("ok-", "bad-"))}
    if present != expected_files:
        warnings.append(f"{TARGET} holds {sorted(present - expected_files)[:5]} it should not and lacks "
                        f"{sorted(expected_files - present)[:5]}")
    if [t["position"] for t in sent_back] != positions:
        warnings.append(f"sent back {[t['position'] for t in sent_back]}, expected exactly {positions}")
    for t in tasks:
        want = "closed" if t in landed else ("open", "blocked")
        if (statuses[t["task_id"]] != want) if isinstance(want, str) else (statuses[t["task_id"]] not in want):
            warnings.append(f"task #{t['position']} ({t['task_id']}) is {statuses[t['task_id']]} after "
                            f"its merge {merges[t['task_id']].status}")
    gate_total = sum(r["seconds"] for r in runs)
    return {
        "batch_size": size,
        "branches": branches,
        "bad_positions": positions,
        "setup_seconds": round(setup_seconds, 2),
        "drain_seconds": round(wall, 2),
        "gate_runs": len(runs),
        "gate_seconds_total": round(gate_total, 2),
        "overhead_seconds": round(wall - gate_total, 2),
        "overhead_per_run_seconds": round((wall - gate_total) / len(runs), 3) if runs else None,
        "merges_gate_runs_sum": sum(m.gate_runs for m in merges.values()),
        "landed": len(landed),
        "gate_runs_per_landed": round(len(runs) / len(landed), 3) if landed else None,
        "sent_back": [{"position": t["position"], "task_id": t["task_id"], "status": statuses[t["task_id"]]}
                      for t in sent_back],
        "refinery_rounds": process_rounds,
        "gate_rounds": describe_rounds(group_rounds(runs)),
        "refinery_said": [line for line in said if "batch of" in line or "back to the queue" in line
                          or "blocked" in line or "fails on" in line],
        "warnings": warnings,
    }


# -- output ----------------------------------------------------------------------------------



def fmt(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def add_ratios(report: dict[str, Any]) -> None:
    base = next((r for r in report["results"] if r["batch_size"] == "1"), None)
    for r in report["results"]:
        r["speed_up"] = round(base["drain_seconds"] / r["drain_seconds"], 2) if base and r["drain_seconds"] else None
        r["gate_runs_vs_serial"] = round(r["gate_runs"] / base["gate_runs"], 2) if base and base["gate_runs"] else None
        # the best the same gate runs could do with no overhead at all: serial runs / these runs
        r["speed_up_if_no_overhead"] = round(base["gate_runs"] / r["gate_runs"], 2) if base and r["gate_runs"] \
            else None
    aims = []
    for size, aim in AIMS["speed_up"].items():
        r = next((r for r in report["results"] if r["batch_size"] == size), None)
        if r is None or r["speed_up"] is None:
            aims.append({"aim": f"speed-up at K={size} >= {aim}x", "value": None, "met": None})
        else:
            aims.append({"aim": f"speed-up at K={size} >= {aim}x", "value": r["speed_up"], "met": r["speed_up"] >= aim})
    for r in report["results"]:
        if r["batch_size"] != "1" and r["gate_runs_per_landed"] is not None:
            limit = AIMS["max_runs_per_landed"]
            aims.append({"aim": f"gate runs per landed change at K={r['batch_size']} <= {limit}",
                         "value": r["gate_runs_per_landed"], "met": r["gate_runs_per_landed"] <= limit})
    report["aims"] = aims


def print_tables(report: dict[str, Any]) -> None:
    results = report["results"]
    print(f"{report['branches']} branches, bad at {', '.join(map(str, report['bad_positions']))} "
          f"(p = {len(report['bad_positions']) / report['branches']:.3f}), gate {report['gate_seconds']:g} s, "
          f"max_attempts 1, {report['cpu_count']} CPU core(s)")
    print()
    header = ("batch", "drain s", "speed-up", "gate runs", "runs vs K=1", "no-overhead speed-up", "landed",
              "runs/landed", "sent back (branch #)", "overhead s/run", "sum merges.gate_runs")
    rows = []
    for r in results:
        rows.append((r["batch_size"], f"{r['drain_seconds']:.1f}", fmt(r["speed_up"], "x"), str(r["gate_runs"]),
                     fmt(r["gate_runs_vs_serial"]), fmt(r["speed_up_if_no_overhead"], "x"), str(r["landed"]),
                     fmt(r["gate_runs_per_landed"]),
                     ", ".join(str(s["position"]) for s in r["sent_back"]) or "-",
                     fmt(r["overhead_per_run_seconds"]), str(r["merges_gate_runs_sum"])))
    print_rows(header, rows)
    print()
    print("The issue's aims:")
    for aim in report["aims"]:
        verdict = "n/a (not measured)" if aim["met"] is None else ("MET" if aim["met"] else "NOT MET")
        value = "-" if aim["value"] is None else (f"{aim['value']:.2f}x" if "speed-up" in aim["aim"]
                                                  else f"{aim['value']:.2f}")
        print(f"  {aim['aim']:<44} measured {value:>7}   {verdict}")
    print()
    print("Where the gate runs went (per round: branches tested by each run, + passed, x failed):")
    header = ("batch", "rounds", "first-try sizes", "clean rounds (runs)", "failing rounds", "runs per failing round",
              "retries", "bisection", "tip checks")
    rows = []
    for r in results:
        g = r["gate_rounds"]
        sizes = sorted(set(g["first_try_sizes"]))
        rows.append((r["batch_size"], str(g["rounds"]), ",".join(map(str, sizes)) if len(sizes) <= 4 else
                     f"{min(sizes)}-{max(sizes)}", f"{g['clean_rounds']} ({g['runs_in_clean_rounds']})",
                     str(g["failing_rounds"]), ",".join(map(str, g["runs_per_failing_round"])) or "-",
                     str(g["retry_runs"]), str(g["bisection_runs"]), str(g["tip_check_runs"])))
    print_rows(header, rows)
    for r in results:
        if r["batch_size"] != "1":
            print(f"  K={r['batch_size']}: {r['gate_rounds']['sequence']}")
    print(f"""
What the numbers are:
  drain s        wall time of the refinery loop (process() until nothing is pending), in this process.
  speed-up       drain s at K=1 / drain s at this K. no-overhead speed-up = gate runs at K=1 / gate runs
                 here: what the same gate runs would give if nothing but the gate took time.
  gate runs      real runs of the gate command (one log line each). sum merges.gate_runs counts a batched
                 run once per merge in the batch (and the tip check on the blamed merge), so it is larger.
  overhead s/run (drain s - time inside the gate) / gate runs: gate start-up (a Python interpreter), trial
                 merges, stacking the batch in the integration worktree, the fast-forward of {TARGET}, the store.
  retries        a failing batch is gated once more as a whole before bisecting ("flaky gates happen").
  bisection      runs on halves of a failing batch (a half that passes lands at once; a single branch
                 left over after its sibling half passed is blamed without a run of its own).
  tip checks     runs of the gate on the untouched tip before blaming a branch (skipped when the tip is
                 the last commit that passed).
One run per batch size: other load on the machine moves the drain times a little.""")
    warnings = [(r["batch_size"], w) for r in results for w in r["warnings"]]
    print()
    if warnings:
        for size, warning in warnings:
            print(f"WARNING (K={size}): {warning}")
    else:
        print(f"Checked: every good branch landed ({TARGET} holds its file), no bad file landed, and exactly "
              f"the bad branches were sent back.")


# -- command line ----------------------------------------------------------------------------


def parse_sizes(text: str) -> list[str]:
    sizes = [part.strip() for part in text.split(",") if part.strip()]
    for size in sizes:
        if size != "auto" and not (size.isdigit() and 1 <= int(size) <= 32):
            raise argparse.ArgumentTypeError(f"expected batch sizes from 1 to 32 or auto, got {text!r}")
    if not sizes:
        raise argparse.ArgumentTypeError("expected at least one batch size")
    return [str(int(s)) if s != "auto" else s for s in sizes]


def parse_positions(text: str) -> list[int]:
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated branch numbers, got {text!r}") from None


def non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more), got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=parse_sizes, default=list(DEFAULT_BATCH_SIZES),
                        help="comma-separated merge_batch_size values (default 1,4,8,auto)")
    parser.add_argument("--branches", type=non_negative, help=f"branches in the queue (default {DEFAULT_BRANCHES}, "
                                                             f"{QUICK_BRANCHES} with --quick)")
    parser.add_argument("--bad", type=non_negative, help=f"branches that fail the gate (default {DEFAULT_BAD}, "
                                                        f"{QUICK_BAD} with --quick)")
    parser.add_argument("--bad-at", type=parse_positions,
                        help=f"which branches are bad, 1-based (default the {FIRST_BAD}th, "
                             f"{FIRST_BAD + BAD_STEP}th, ...; overrides --bad)")
    parser.add_argument("--gate-seconds", type=positive_float,
                        help=f"how long one gate run takes (default {DEFAULT_GATE_SECONDS:g}, "
                             f"{QUICK_GATE_SECONDS:g} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_BRANCHES} branches, {QUICK_BAD} bad, a {QUICK_GATE_SECONDS:g} s gate")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--end-to-end", action="store_true",
                        help="instead: N finished branches -> all landed, pre-gates included, serial against the "
                             "new policy (pre-gate + speculative gate workers) at p = 0.05 and 0.3, with a sleep gate "
                             "and a CPU-bound gate (default 40 branches, 1 s gates); see bench/merge_e2e.py")
    parser.add_argument("--workers", type=non_negative, default=3, help="gate_workers for --end-to-end (default 3)")
    parser.add_argument("--slots", type=non_negative, default=8,
                        help="agent slots pre-gating at once for --end-to-end (default 8)")
    args = parser.parse_args(argv)
    if args.end_to_end:
        from merge_e2e import print_report, run_all

        args.branches = args.branches or DEFAULT_BRANCHES
        args.gate_seconds = args.gate_seconds if args.gate_seconds is not None else 1.0
        if args.workers < 1 or args.slots < 1:
            parser.error("--workers and --slots must be at least 1")
        return emit(run_all(args), args.json, print_report)
    branches = args.branches if args.branches is not None else (QUICK_BRANCHES if args.quick else DEFAULT_BRANCHES)
    bad = args.bad if args.bad is not None else (QUICK_BAD if args.quick else DEFAULT_BAD)
    gate_seconds = args.gate_seconds if args.gate_seconds is not None else \
        (QUICK_GATE_SECONDS if args.quick else DEFAULT_GATE_SECONDS)
    if branches < 1:
        parser.error("--branches must be at least 1")
    positions = args.bad_at if args.bad_at is not None else (bad_positions(branches, bad) if bad <= branches
                                                             else None)
    if positions is None or any(not 1 <= p <= branches for p in positions):
        parser.error(f"bad branches must be numbered 1 to {branches}")

    results = [bench_batch_size(size, branches, positions, gate_seconds) for size in args.batch_sizes]
    report = {
        "branches": branches,
        "bad_positions": positions,
        "gate_seconds": gate_seconds,
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "results": results,
    }
    add_ratios(report)
    return emit(report, args.json, print_tables)


if __name__ == "__main__":
    sys.exit(main())
