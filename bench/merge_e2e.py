"""End to end merge throughput (issue 20): from N finished branches to all landed, pre-gates
included, serial queue against the new policy, at two failure rates and with two gates, in one run.

For every (p, gate) pair it builds, in a temporary directory, a fresh repository on `main`, runs
`gasworks init`, makes N tasks in `merging` and their branches (one file each: `ok-NN.txt`, or
`bad-NN.txt` for the bad ones, which the gate fails on), and an agent worktree (slot) per branch,
made before the clock starts (a fleet has them already). Then it times two ways to land them:

* serial: every branch queued; the refinery with merge_batch_size = 1, gate_workers = 1, no pre-gate;
* policy: as the fleet hands finished branches over: each one, as the policy (pregate = "auto", from the
  failure rates measured so far) decides, is pre-gated in its own slot (`gasworks.gate.pregate`: the
  branch merged onto the current tip, gated on a clean tree), at most --slots at once, or queued at
  once; a branch that fails its pre-gate goes back to its agent (`witness.send_back`) and never enters
  the queue, one that passes is queued the moment it passes. The refinery thread (RefineryWorker)
  drains the queue meanwhile with merge_batch_size = "auto" and gate_workers = --workers.

Gates: "sleep" (sleeps --gate-seconds) and "cpu" (a CPU-bound suite: SHA-256 rounds calibrated to take
--gate-seconds of one idle core). Each gate run logs the tree it saw (`git rev-parse HEAD^{tree}`),
whether the tree was clean, where it ran and whether it passed. Checked for every configuration:
every first-parent commit on main since the start has a tree that a gate in an integration worktree
passed (pre-gate runs do not count); every good branch landed exactly once (its merge is in main's
history once, its file is on main); every bad one was sent back (its file is not on main).

    python bench/merge.py --end-to-end                    # 40 branches, 3 workers, 1 s gates (~6 min)
    python bench/merge.py --end-to-end --branches 20      # quicker
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import print_rows, progress
from merge import ACTOR, PREFIX, TARGET, bad_positions, file_name, git, make_branches, make_repo

from gasworks import git as gwgit
from gasworks.config import load_config
from gasworks.gate import pregate
from gasworks.project import init_project
from gasworks.refinery import Refinery, RefineryWorker
from gasworks.speculation import policy_for
from gasworks.store import NewTask
from gasworks.upstream import LocalUpstream
from gasworks.witness import send_back

RATES = (0.05, 0.3)
GATES = ("sleep", "cpu")
AIMS = {("sleep", 0.3): 3.0, ("sleep", 0.05): 4.0}
STALL_SECONDS = 60.0
GATE_SCRIPT = """\
import hashlib, json, pathlib, subprocess, sys, time
log, kind, amount = sys.argv[1], sys.argv[2], float(sys.argv[3])
start = time.time()
tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--ignored"], capture_output=True, text=True).stdout.strip()
bad = sorted(p.name for p in pathlib.Path(".").glob("bad-*"))
if kind == "sleep":
    time.sleep(amount)
else:  # the "test suite": hashing rounds, all CPU
    digest = b"x"
    for _ in range(int(amount)):
        digest = hashlib.sha256(digest).digest()
with open(log, "a", encoding="utf-8") as out:
    out.write(json.dumps({"tree": tree, "clean": not dirty, "cwd": str(pathlib.Path.cwd()), "passed": not bad,
                          "start": start, "end": time.time()}) + "\\n")
sys.exit(1 if bad else 0)
"""


def calibrate(seconds: float) -> int:
    """SHA-256 rounds that take `seconds` of CPU here."""
    rounds, digest, started = 200_000, b"x", time.process_time()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return int(rounds * seconds / max(time.process_time() - started, 1e-6))


def setup(tmp: Path, branches: int, bad: set[int], gate: list[str], mode: str, workers: int) -> dict[str, Any]:
    root = tmp / "repo"
    make_repo(root)
    project, _ = init_project(root)
    overrides: dict[str, Any] = {"gate": [gate], "max_attempts": 1, "retry_backoff": 0}
    overrides.update({"merge_batch_size": 1, "gate_workers": 1} if mode == "serial" else
                     {"merge_batch_size": "auto", "gate_workers": workers, "pregate": "auto"})
    config = load_config(root, env={}, overrides=overrides)
    store = project.open_store()
    tasks = []
    for index in range(branches):
        task = store.create_task(NewTask(f"Add {file_name(index, index + 1 in bad)}"), prefix=PREFIX, actor=ACTOR)
        store.transition(task.id, "in_progress", actor=ACTOR, reason="the benchmark's agent")
        tasks.append({"task_id": task.id, "branch": f"gasworks/{task.id}", "file": file_name(index, index + 1 in bad),
                      "bad": index + 1 in bad})
    base = git(["rev-parse", TARGET], root).strip()
    heads = make_branches(root, base, [(t["branch"], t["file"]) for t in tasks])
    for t in tasks:
        t["head"] = heads[t["branch"]]
        if mode != "serial":  # the agent's slot, on its branch
            git(["worktree", "add", "-q", str(tmp / "slots" / t["task_id"]), t["branch"]], root)
    return {"root": root, "project": project, "config": config, "store": store, "tasks": tasks, "base": base}


def land_all(env: dict[str, Any], slots: int, mode: str) -> tuple[str, float]:
    """Every branch to the queue and the queue drained by the fleet's refinery thread (RefineryWorker);
    (what went wrong, seconds spent pre-gating, summed over the slots).

    serial: all queued at once. policy: as in the fleet (handover.Handover.finished), each finished branch
    asks the policy (pregate = "auto") whether to pre-gate; if so it is gated in its own slot, at most
    `slots` at once, while the refinery goes on landing what is queued. A branch that passes is
    queued the moment it passes; one that fails goes back to its agent (`witness.send_back`) and
    never enters the queue."""
    root, config, store = env["root"], env["config"], env["store"]
    said: list[str] = []
    refinery = Refinery(env["project"], store, config, LocalUpstream(root, TARGET), say=said.append)
    refinery.ensure()
    env["refinery"], worker = refinery, RefineryWorker(refinery, idle_seconds=0.02)
    waiting = list(env["tasks"]) if mode != "serial" else []

    def queue(task: dict[str, Any]) -> None:  # the agent's attempt ends: its task to `merging`, its branch queued
        store.transition(task["task_id"], "merging", actor=ACTOR, expected="in_progress", reason="finished")
        store.enqueue_merge(task["task_id"], task["branch"], task["head"])
        worker.wake()

    for t in env["tasks"] if mode == "serial" else []:
        queue(t)
    running: dict[Future, dict[str, Any]] = {}
    pregating, last, moved_at = 0.0, None, time.monotonic()
    worker.start()
    try:
        with ThreadPoolExecutor(max_workers=slots) as pool:
            while waiting or running or refinery.moving() or worker.in_round:
                if worker.error is not None:
                    raise worker.error
                while waiting and len(running) < slots:
                    task = waiting.pop(0)
                    if not policy_for(store, config).pregate:
                        queue(task)
                        continue
                    tree = gwgit.linked_tree(root, root.parent / "slots" / task["task_id"])
                    running[pool.submit(pregate, config, root, tree, gwgit.rev_parse(root, TARGET),
                                        env["project"].logs_dir / "pregates")] = task
                for future in [f for f in running if f.done()]:
                    task, found = running.pop(future), future.result()
                    pregating += found.seconds
                    store.record_pregate(task["task_id"], passed=found.passed, seconds=found.seconds,
                                         cpu_seconds=found.cpu_seconds, actor=ACTOR)
                    if found.passed:
                        queue(task)
                    else:
                        send_back(store, task["task_id"], note=f"the pre-gate failed:\n{found.tail}", config=config,
                                  now=time.time(), say=lambda line: None, actor=ACTOR)
                seen = (len(waiting), len(running), tuple(sorted(store.merge_counts().items())))
                if seen != last:
                    last, moved_at = seen, time.monotonic()
                elif time.monotonic() - moved_at > STALL_SECONDS:
                    return (f"nothing moved for {STALL_SECONDS:.0f} s: {last}, waiting on {refinery.waiting()}, "
                            f"said: {[line for line in said if line.startswith('merge queue:')][-3:]}"), pregating
                time.sleep(0.02)
    finally:
        worker.stop()
        worker.join()
    return "", pregating


def check(env: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """The guarantees; what broke them."""
    root, problems = env["root"], []
    passed = {r["tree"] for r in runs if r["passed"] and "integration" in r["cwd"]}
    first_parent = git(["rev-list", "--first-parent", f"{env['base']}..{TARGET}"], root).split()
    ungated = [c for c in first_parent if git(["rev-parse", f"{c}^{{tree}}"], root).strip() not in passed]
    if ungated:
        problems.append(f"{len(ungated)} first-parent commit(s) whose tree no gate passed: {ungated[:3]}")
    if not all(r["clean"] for r in runs):
        problems.append("a gate ran on a tree that was not clean")
    subjects = git(["log", "--format=%s", TARGET], root).splitlines()
    files = set(git(["ls-tree", "--name-only", TARGET], root).split())
    for t in env["tasks"]:
        landed = sum(s.startswith(f"Merge {t['branch']}:") for s in subjects)
        if t["bad"] and (t["file"] in files or env["store"].get_task(t["task_id"]).status == "closed"):
            problems.append(f"bad {t['file']} was not sent back")
        if not t["bad"] and (landed != 1 or t["file"] not in files):
            problems.append(f"good {t['file']} landed {landed} time(s)")
    return problems


def run_one(p: float, gate_kind: str, mode: str, args: Any, amount: float) -> dict[str, Any]:
    bad_count = round(p * args.branches)
    bad = set(bad_positions(args.branches, bad_count))
    progress(f"p={p:g} gate={gate_kind} {mode}: {args.branches} branches, {bad_count} bad")
    with tempfile.TemporaryDirectory(prefix="gasworks-bench-e2e-") as name:
        tmp = Path(name)
        log = tmp / "gate.log"
        gate = [sys.executable, "-c", GATE_SCRIPT, str(log), gate_kind, repr(amount)]
        env = setup(tmp, args.branches, bad, gate, mode, args.workers)
        store = env["store"]
        try:
            started = time.perf_counter()
            problem, pregate_seconds = land_all(env, args.slots, mode)
            wall = time.perf_counter() - started
            policy = env["refinery"].policy()
            runs = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
            problems = ([problem] if problem else []) + check(env, runs)
            totals = store.pregate_totals()
        finally:
            store.close()
    progress(f"  {wall:.1f} s" + (f"; PROBLEMS: {problems}" if problems else ""))
    return {"p": p, "gate": gate_kind, "mode": mode, "seconds": round(wall, 2),
            "pregate_seconds": round(pregate_seconds, 2),  # summed over the slots, overlapping the queue
            "queue_gate_runs": sum(1 for r in runs if "integration" in r["cwd"]),
            "pregate_runs": totals["runs"], "pregate_cpu_seconds": totals["cpu_seconds"],
            "policy": policy.why if mode != "serial" else "serial", "problems": problems}


def run_all(args: Any) -> dict[str, Any]:
    amount = {"sleep": args.gate_seconds, "cpu": float(calibrate(args.gate_seconds))}
    results = [run_one(p, g, mode, args, amount[g]) for g in GATES for p in RATES for mode in ("serial", "policy")]
    rows = []
    for g in GATES:
        for p in RATES:
            serial, new = (next(r for r in results if (r["p"], r["gate"], r["mode"]) == (p, g, m))
                           for m in ("serial", "policy"))
            aim = AIMS.get((g, p))
            ratio = serial["seconds"] / new["seconds"] if new["seconds"] else 0.0
            rows.append({"p": p, "gate": g, "serial_seconds": serial["seconds"], "policy_seconds": new["seconds"],
                         "speed_up": round(ratio, 2), "aim": aim, "met": None if aim is None else ratio >= aim})
    return {"branches": args.branches, "workers": args.workers, "slots": args.slots,
            "gate_seconds": args.gate_seconds, "cpu_count": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else os.cpu_count(), "results": results, "ratios": rows}


def print_report(report: dict[str, Any]) -> None:
    print(f"End to end: {report['branches']} finished branches -> all landed; policy = pre-gates in "
          f"{report['slots']} slots + {report['workers']} gate workers; gates {report['gate_seconds']:g} s; "
          f"{report['cpu_count']} CPU core(s)")
    print()
    print_rows(("p", "gate", "serial s", "policy s", "speed-up", "aim", "verdict"),
               [(f"{r['p']:g}", r["gate"], f"{r['serial_seconds']:.1f}", f"{r['policy_seconds']:.1f}",
                 f"{r['speed_up']:.2f}x", "-" if r["aim"] is None else f">= {r['aim']:g}x",
                 "-" if r["met"] is None else ("MET" if r["met"] else "NOT MET")) for r in report["ratios"]])
    print()
    print_rows(("p", "gate", "mode", "seconds", "pre-gate s", "queue gate runs", "pre-gates", "pre-gate CPU s"),
               [(f"{r['p']:g}", r["gate"], r["mode"], f"{r['seconds']:.1f}", f"{r['pregate_seconds']:.1f}",
                 str(r["queue_gate_runs"]), str(r["pregate_runs"]), f"{r['pregate_cpu_seconds']:.1f}")
                for r in report["results"]])
    print()
    for r in report["results"]:
        if r["mode"] != "serial":
            print(f"  policy at p={r['p']:g}, {r['gate']} gate: {r['policy']}")
    problems = [(r, problem) for r in report["results"] for problem in r["problems"]]
    print()
    for r, problem in problems:
        print(f"FAILED CHECK (p={r['p']:g}, {r['gate']}, {r['mode']}): {problem}")
    if not problems:
        print("Checked in every configuration: every first-parent commit on main is a tree a gate passed, every "
              "gate ran on a clean tree, every good branch landed exactly once, every bad one was sent back.")
