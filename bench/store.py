"""Benchmark: ready() and claim_next() latency of the gasworks SQLite store vs a classic task_queue.json.

For each size N (default 10,000 and 100,000 tasks, 20% of them blocked) and each layout of the
blocked tasks it builds one workload and measures, in the same run:

* gasworks  -- `SQLiteStore.ready(limit=14)` and `SQLiteStore.claim_next(...)` on a fresh store
  in a temporary directory (seeded with `import_tasks`);
* classic   -- the way classic scripts keep a queue: the whole `task_queue.json` is `json.load`ed,
  scanned for the first pending task whose `depends_on` are all done (by priority, then file
  order, the same order gasworks uses), marked in_progress, and `json.dump`ed back whole through
  a temp file + `os.replace`. "ready" is the same load + scan for the first 14, without the write.

The two layouts (`--layout`, default both):

* spread -- random priorities 0-4; within each priority every fifth task (by age) waits on the
  nearest earlier unblocked task, so ready() and claims skip a few blocked tasks here and there;
* front  -- the worst case for the ready scan: every blocked task has the top priority 0, all
  unblocked ones 1-4, and all blocked tasks wait (`blocks`) on one open blocker of priority 4
  (the oldest task), so every ready() and claim must skip all N/5 blocked tasks before any work.

Both sides hold the same tasks and claim them in the same order (checked; a mismatch is reported).
Latency is wall-clock per call (`time.perf_counter`), median and p90, after one warm-up call.
Neither side fsyncs (gasworks runs WAL with synchronous=NORMAL; the classic script just replaces).
This is a printout only: nothing is asserted.

Run from the repository root:

    python bench/store.py                 # sizes 10,000 and 100,000, both layouts (about 1 min)
    python bench/store.py --quick         # sizes 1,000 and 10,000, fewer iterations
    python bench/store.py --sizes 50000   # choose sizes
    python bench/store.py --layout front  # only one layout (spread or front)
    python bench/store.py --json          # results as JSON on stdout
    python bench/store.py --no-claimers   # skip the concurrent claims table

Then, unless --no-claimers: claims per second with 1, 4 and 16 concurrent claimer processes on
SQLite and PostgreSQL side by side (bench/claim_rate.py; it starts a private PostgreSQL server
unless --pg-url names one).

Progress goes to stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import claim_rate  # bench/ is on sys.path when a script here runs
from common import counts, percentile, progress

from gasworks.models import Dependency, Task, iso_from_epoch
from gasworks.store.sqlite import SQLiteStore

READY_LIMIT = 14
BLOCKED_EVERY = 5  # 20%: the 3rd, 8th, 13th, ... task (by age; for spread, within each priority) is blocked
LAYOUTS = ("spread", "front")
READY_AIM_MS = 5.0
AIM_SIZE = 100_000
SEED_CHUNK = 10_000
START_EPOCH = 1_700_000_000  # created_at of the first task; each next task is one second younger
WORKER = "bench-worker"
LEASE_SECONDS = 600


# -- the workload --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """One task of the workload, in file order (which is also age order)."""

    id: str
    title: str
    priority: int
    created: int  # epoch seconds
    blocker: str | None  # id of the open task this one waits on, or None


@dataclass(frozen=True, slots=True)
class Iterations:
    ready: int
    claim: int
    classic_ready: int
    classic_claim: int


def task_id(index: int) -> str:
    return f"gw-{index:06x}"


def make_workload(n: int, layout: str, seed: int = 42) -> list[Spec]:
    if layout == "spread":
        return spread_workload(n, seed)
    if layout == "front":
        return front_workload(n, seed)
    raise ValueError(f"unknown layout {layout!r}")


def spread_workload(n: int, seed: int = 42) -> list[Spec]:
    """N tasks with random priorities 0-4; one in five of each priority waits on an open task.

    Blocked tasks sit at fixed places in every priority's age order, so ready() and claims must
    always skip some. A blocked task waits on the nearest earlier task that is not blocked itself,
    so blockers stay open (or in progress, which still blocks) and there are no cycles.
    """
    rng = random.Random(seed)
    seen_per_priority = [0] * 5
    specs: list[Spec] = []
    last_unblocked = ""
    for i in range(n):
        this_id, priority = task_id(i), rng.randint(0, 4)
        blocked = seen_per_priority[priority] % BLOCKED_EVERY == 2
        seen_per_priority[priority] += 1
        blocker = last_unblocked if blocked else None
        if blocker is None:
            last_unblocked = this_id
        specs.append(Spec(this_id, f"Task {i}", priority, START_EPOCH + i, blocker))
    return specs


def front_workload(n: int, seed: int = 42) -> list[Spec]:
    """N tasks where all the blocked ones come first in ready order: the worst case for the scan.

    The oldest task is the single blocker (open, priority 4). After it, every fifth task (by age)
    is blocked on it and has priority 0; all the others get random priorities 1-4. So ready()
    and every claim must step over all blocked tasks before they reach anything claimable.
    """
    rng = random.Random(seed)
    blocker = task_id(0)
    specs = [Spec(blocker, "Task 0", 4, START_EPOCH, None)]
    for i in range(1, n):
        blocked = i % BLOCKED_EVERY == 2
        priority = 0 if blocked else rng.randint(1, 4)
        specs.append(Spec(task_id(i), f"Task {i}", priority, START_EPOCH + i, blocker if blocked else None))
    return specs


def to_tasks(specs: list[Spec]) -> list[Task]:
    tasks = []
    for spec in specs:
        stamp = iso_from_epoch(spec.created)
        deps = [Dependency(spec.id, spec.blocker, "blocks", stamp)] if spec.blocker else []
        tasks.append(Task(id=spec.id, title=spec.title, description=f"Do {spec.title.lower()}.",
                          priority=spec.priority, created_at=stamp, updated_at=stamp, dependencies=deps))
    return tasks


def to_queue(specs: list[Spec]) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "title": s.title, "description": f"Do {s.title.lower()}.", "status": "pending",
         "priority": s.priority, "depends_on": [s.blocker] if s.blocker else []}
        for s in specs
    ]


# -- gasworks ------------------------------------------------------------------------------------


def seed_store(store: SQLiteStore, specs: list[Spec]) -> float:
    """Import the workload in chunks (one transaction each) and return the seconds it took."""
    start = time.perf_counter()
    for offset in range(0, len(specs), SEED_CHUNK):
        chunk = specs[offset:offset + SEED_CHUNK]
        store.import_tasks(to_tasks(chunk), prefix="gw", actor="bench")
        progress(f"  sqlite: {offset + len(chunk):,}/{len(specs):,} tasks")
    return time.perf_counter() - start


def gasworks_claim(store: SQLiteStore) -> str | None:
    task = store.claim_next(WORKER, lease_seconds=LEASE_SECONDS, now=time.time())
    return task.id if task else None


# -- classic task_queue.json ---------------------------------------------------------------------


def write_queue(path: Path, queue: list[dict[str, Any]]) -> None:
    """Rewrite the whole file: temp file next to it, then an atomic rename."""
    temp = path.with_suffix(".json.tmp")
    with temp.open("w", encoding="utf-8") as f:
        json.dump(queue, f, indent=2)
    os.replace(temp, path)


def load_queue(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def ready_items(queue: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Pending tasks whose dependencies are all done, by priority then file order."""
    status = {t["id"]: t["status"] for t in queue}
    candidates = (t for t in queue
                  if t["status"] == "pending" and all(status.get(d) == "done" for d in t["depends_on"]))
    return heapq.nsmallest(limit, candidates, key=lambda t: t["priority"])  # stable: keeps file order


def classic_ready(path: Path) -> list[str]:
    return [t["id"] for t in ready_items(load_queue(path), READY_LIMIT)]


def classic_claim(path: Path) -> str | None:
    queue = load_queue(path)
    first = ready_items(queue, 1)
    if not first:
        return None
    first[0]["status"] = "in_progress"
    write_queue(path, queue)
    return first[0]["id"]


# -- measuring -----------------------------------------------------------------------------------


def time_calls(call: Callable[[], Any], times: int) -> tuple[list[float], list[Any]]:
    """One warm-up call, then `times` timed calls; returns the latencies in ms and the results."""
    results = [call()]
    latencies = []
    for _ in range(times):
        start = time.perf_counter()
        results.append(call())
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies, results



def summary(latencies: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(latencies), 4), "p90_ms": round(percentile(latencies, 90), 4),
            "runs": len(latencies)}


@dataclass(frozen=True, slots=True)
class Side:
    """What one side measured: latencies of ready() and claims, the first ready list, the claim order."""

    ready_ms: list[float]
    claim_ms: list[float]
    first_ready: list[str]
    claimed: list[str | None]


def bench_gasworks(directory: Path, specs: list[Spec], iterations: Iterations) -> tuple[Side, float]:
    """Seed a fresh store, time ready() and claim_next(); returns the measurements and the seed time."""
    store = SQLiteStore(directory / "gasworks.db")
    try:
        seed_seconds = seed_store(store, specs)
        progress(f"  seeded in {seed_seconds:.1f} s; timing ready() and claim_next()")
        ready_ms, ready_results = time_calls(lambda: [t.id for t in store.ready(limit=READY_LIMIT)],
                                             iterations.ready)
        claim_ms, claimed = time_calls(lambda: gasworks_claim(store), iterations.claim)
    finally:
        store.close()
    return Side(ready_ms, claim_ms, ready_results[0], claimed), seed_seconds


def bench_classic(directory: Path, specs: list[Spec], iterations: Iterations) -> tuple[Side, float, int]:
    """Write task_queue.json, time the classic ready and claim; also returns write seconds and file size."""
    path = directory / "task_queue.json"
    progress("  writing task_queue.json; timing classic ready and claim")
    start = time.perf_counter()
    write_queue(path, to_queue(specs))
    write_seconds = time.perf_counter() - start
    file_bytes = path.stat().st_size
    ready_ms, ready_results = time_calls(lambda: classic_ready(path), iterations.classic_ready)
    claim_ms, claimed = time_calls(lambda: classic_claim(path), iterations.classic_claim)
    return Side(ready_ms, claim_ms, ready_results[0], claimed), write_seconds, file_bytes


def same_order(gasworks: Side, classic: Side) -> bool:
    """Same first ready list, and the same claims for as many as both sides made."""
    shared = min(len(gasworks.claimed), len(classic.claimed))
    return gasworks.first_ready == classic.first_ready and gasworks.claimed[:shared] == classic.claimed[:shared]


def bench_size(n: int, layout: str, iterations: Iterations, seed: int) -> dict[str, Any]:
    specs = make_workload(n, layout, seed)
    blocked = sum(s.blocker is not None for s in specs)
    progress(f"N={n:,}, layout {layout}: seeding SQLite store ({blocked:,} blocked)")
    with tempfile.TemporaryDirectory(prefix="gasworks-bench-") as tmp:
        gasworks, seed_seconds = bench_gasworks(Path(tmp), specs, iterations)
        classic, write_seconds, file_bytes = bench_classic(Path(tmp), specs, iterations)

    same = same_order(gasworks, classic)
    if not same:
        progress(f"  WARNING: gasworks and classic disagree on which tasks are ready (N={n:,}, layout {layout})")
    return {
        "n": n,
        "layout": layout,
        "blocked": blocked,
        "seed_seconds": round(seed_seconds, 3),
        "classic_file_bytes": file_bytes,
        "classic_write_seconds": round(write_seconds, 3),
        "same_order": same,
        "ready": {"gasworks": summary(gasworks.ready_ms), "classic": summary(classic.ready_ms)},
        "claim": {"gasworks": summary(gasworks.claim_ms), "classic": summary(classic.claim_ms)},
    }


# -- output --------------------------------------------------------------------------------------



def ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for result in results:
        for op, label in (("ready", f"ready({READY_LIMIT})"), ("claim", "claim")):
            gw, cl = result[op]["gasworks"], result[op]["classic"]
            rows.append((f"{result['n']:,}", result["layout"], label, ms(gw["median_ms"]), ms(gw["p90_ms"]),
                         ms(cl["median_ms"]), ms(cl["p90_ms"]), f"{cl['median_ms'] / gw['median_ms']:,.0f}x",
                         f"{gw['runs']}/{cl['runs']}"))
    return rows


def print_table(results: list[dict[str, Any]]) -> None:
    header = ("N", "layout", "operation", "gasworks med ms", "p90 ms", "classic med ms", "p90 ms", "speed-up",
              "runs gw/cl")
    rows = [header, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("speed-up = classic median / gasworks median. classic = whole task_queue.json read "
          "(and, for claim, rewritten) per call.")
    print("layout: spread = blocked tasks spread over all priorities; "
          "front = all blocked tasks at priority 0, waiting on one blocker.")
    for result in results:
        print(f"N={result['n']:,} {result['layout']}: {result['blocked']:,} blocked; "
              f"SQLite seeded in {result['seed_seconds']:.1f} s; "
              f"task_queue.json {result['classic_file_bytes'] / 1e6:.1f} MB"
              + ("" if result["same_order"] else "; WARNING: the two sides disagreed on ready order"))
    print(aim_line(results))


def aim_line(results: list[dict[str, Any]]) -> str:
    aim = f"Aim (ready({READY_LIMIT}) under {READY_AIM_MS:g} ms at {AIM_SIZE:,} tasks)"
    at_aim = [r for r in results if r["n"] == AIM_SIZE]
    if not at_aim:
        return f"{aim}: not measured in this run."
    verdicts = []
    for result in at_aim:
        median = result["ready"]["gasworks"]["median_ms"]
        verdict = "MET" if median < READY_AIM_MS else "NOT MET"
        verdicts.append(f"{result['layout']} {verdict} -- median {median:.3f} ms")
    return f"{aim}: " + "; ".join(verdicts) + "."


# -- command line --------------------------------------------------------------------------------


def iterations_for(n: int, layout: str, quick: bool) -> Iterations:
    """Fewer runs where a call is slow: classic at 100k, and gasworks in the front layout at 100k.

    In the front layout every gasworks call steps over all N/5 blocked tasks (tens of ms at 100k);
    the classic side reads the whole file either way, so its cost hardly depends on the layout.
    """
    if quick:
        return Iterations(ready=50, claim=50, classic_ready=10, classic_claim=10)
    large = n >= 100_000
    gasworks = 50 if large and layout == "front" else 200
    classic = 20 if large else 50
    return Iterations(ready=gasworks, claim=gasworks, classic_ready=classic, classic_claim=classic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda text: counts(text, "task counts"),
                        help="comma-separated task counts (default 10000,100000)")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,10000 and fewer iterations")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--layout", choices=LAYOUTS,
                        help="where the blocked tasks sit: spread or front (default: both)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for priorities and blocked tasks")
    parser.add_argument("--no-claimers", action="store_true",
                        help="skip the concurrent claims table (SQLite vs PostgreSQL, bench/claim_rate.py)")
    claim_rate.add_arguments(parser)
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [10_000, 100_000])
    layouts = [args.layout] if args.layout else list(LAYOUTS)

    results = [bench_size(n, layout, iterations_for(n, layout, args.quick), args.seed)
               for n in sizes for layout in layouts]
    claims = [] if args.no_claimers else claim_rate.run(args.claimers, args.claim_tasks, args.pg_url)
    if args.json:
        print(json.dumps({"ready_limit": READY_LIMIT, "layouts": layouts, "results": results,
                          "concurrent_claims": claims}, indent=2))
    else:
        print_table(results)
        if claims:
            claim_rate.print_table(claims)
    return 0


if __name__ == "__main__":
    sys.exit(main())
