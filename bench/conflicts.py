"""Benchmark: what conflict-aware scheduling saves in merge conflicts and wall time, with the fake agent.

Tasks carry `files:<path>` labels naming the files they expect to touch. With `conflict_aware = true`
(the default) the dispatcher's claim (`SQLiteStore.claim_next(..., avoid_labels=...)`) passes over a
ready task whose files a running task holds, while other ready work exists, and records each
pass-over as an `overlap_avoided` event. This benchmark runs the same work twice, once with
`conflict_aware = true` and once with `false`, and compares the merge conflicts and the time.

For each mode it makes, in a temporary directory, a fresh git repository on `main` whose first
commit holds F small files (default 8: `file1.txt` .. `file8.txt`, four lines each), runs
`gasworks init`, and imports N tasks (default 40) from a Beads JSONL file with `gasworks import`.
Task i edits one file, or two (about a third of the tasks), chosen with a fixed seed, so both modes
get exactly the same tasks, in the same order. Each task's description scripts the shipped fake
agent with a fenced block

    ```gasworks-fake
    {"write": {"file3.txt": "<the file with lines 2 and 3 naming task i>"}, "sleep": 0.5}
    ```

so every task rewrites the SAME lines (2 and 3) of its files with content of its own: two tasks on
one file that start from the same tip conflict when the second is merged. Its labels are
`files:file3.txt` (one per file) and `bench`. Then it drains the queue with the real command line in
a subprocess:

    GASWORKS_CONFLICT_AWARE=true|false python -m gasworks run --agent fake --workers W --until-done

Every other setting is the default (other GASWORKS_* variables are removed from the environment):
in particular `create_bead_on_merge_conflict = true`, so a conflict becomes a "Resolve merge
conflict" task (label `merge-conflict`) that the fake agent resolves by merging `main` into the
branch and keeping both sides; when it closes, the branch is queued again
(`auto_retry_merge_on_conflict_close`). No gate is configured.

When `gasworks run --until-done` exits leaving conflicted branches whose conflict task has closed
but which were never queued again (a refinery round would queue them; see "stranded" below), the
benchmark runs the same command again in the same repository (while that makes progress, at most 20
runs in all), so that every task can finish; each such exit is reported as a note. Anything else
(a run that fails otherwise, tasks left unclosed, branches not landed, conflict markers on `main`,
a dirty checkout, counts that disagree) is reported as a warning.

Afterwards it reads `gasworks merges --all --json` and the store (`SQLiteStore`) and reports per mode:

    runs, exit      `gasworks run --until-done` processes and their exit codes
    stranded        branches the first run left behind as described above
    wall s          each `gasworks run --until-done` process, start to exit, and their sum
    conflicts       merges whose trial merge was "conflict" (a re-queued branch can conflict again)
    conflict tasks  tasks with the label merge-conflict (one per conflict)
    overlaps avoided  `overlap_avoided` events: claims that passed over a task overlapping a running one
    attempts        all agent attempts (the original tasks' plus the conflict tasks')
    closed          original tasks closed at the end (a warning is printed for any that is not)

and the ratios aware / unaware of conflicts, wall time (the sum) and attempts. It also checks that
every original task's branch landed, that `main` has no conflict markers and that the main checkout
is clean, and sorts each conflict of an original branch by what its task's base commit missed (an
overlapping task that had landed by the trial merge): that task RAN ALONGSIDE this one (their
attempts overlapped in time: what conflict-aware claiming is meant to prevent), or it had finished
when this one started, and its branch was waiting IN THE MERGE QUEUE, or it was AWAITING the
RESOLUTION of its own conflict. A branch queued again after its conflict was resolved, which
conflicts again, counts as a "re-merge". The attempts' started_at/ended_at, the merges'
queued_at/ended_at and base commits (git merge-base --is-ancestor) decide this. For conflicts of
tasks that ran alongside, it also checks whether, when the later of the two was claimed, an
unclaimed task overlapping no running one was ready ("other work ready": 0 when claiming avoided
overlaps as designed).

This is a printout only: nothing is asserted. No network is used. Temporary directories are removed.

Run from the repository root:

    python bench/conflicts.py                   # 40 tasks over 8 files, 8 workers (about 30 s)
    python bench/conflicts.py --quick           # 16 tasks (about 15 s)
    python bench/conflicts.py --tasks 60 --workers 4 --files 12
    python bench/conflicts.py --seed 7          # another draw of files per task
    python bench/conflicts.py --json            # results as JSON on stdout

Progress goes to stderr; the tables (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (  # bench/ is on sys.path here
    clean_env,
    emit,
    gasworks,
    git,
    positive,
    print_rows,
    progress,
    run_bounded,
)

from gasworks.config import load_config
from gasworks.models import Attempt, Merge, iso_from_epoch, parse_time
from gasworks.store.sqlite import SQLiteStore

DEFAULT_TASKS = 40
QUICK_TASKS = 16
DEFAULT_WORKERS = 8
DEFAULT_FILES = 8
DEFAULT_SEED = 2024
TWO_FILE_SHARE = 1 / 3     # tasks that edit two files; the rest edit one
AGENT_SLEEP = 0.5          # seconds each fake agent waits before committing
TARGET = "main"
CREATED_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: the imported tasks' created_at, one second apart
PREFIX = "gw"
FILES_LABEL = "files:"
CONFLICT_LABEL = "merge-conflict"
BENCH_LABEL = "bench"
MODES = (("aware", True), ("unaware", False))
RUN_TIMEOUT_PER_TASK = 15.0  # generous: a run that takes longer than this per task is stopped
MAX_RUNS = 20                # `gasworks run --until-done` again while it leaves resolved branches behind
MARKERS = ("<<<<<<< ", "=======", ">>>>>>> ", "||||||| ")


# -- running the command line ----------------------------------------------------------------


def file_name(index: int) -> str:
    return f"file{index + 1}.txt"


def file_text(name: str, task: str | None = None) -> str:
    """Four lines; a task rewrites lines 2 and 3 (the same lines for every task) with its own text."""
    middle = [f"{name} line 2: {task} was here\n", f"{name} line 3: {task} was here\n"] if task else \
        [f"{name} line 2: original\n", f"{name} line 3: original\n"]
    return f"{name} line 1\n" + "".join(middle) + f"{name} line 4\n"


def make_repo(root: Path, files: int) -> None:
    """A fresh repository on `main` holding the files, with its own identity (no global config needed)."""
    root.mkdir()
    git(["init", "-q", "-b", TARGET], root)
    for key, value in (("user.name", "bench"), ("user.email", "bench@localhost"), ("commit.gpgsign", "false"),
                       ("merge.conflictStyle", "merge")):  # the fake agent's resolution expects 2-way markers
        git(["config", key, value], root)
    names = [file_name(i) for i in range(files)]
    for name in names:
        (root / name).write_text(file_text(name), encoding="utf-8")
    git(["add", *names], root)
    git(["commit", "-q", "-m", "Initial commit"], root)


@dataclass(frozen=True)
class Spec:
    """One synthetic task: its id and the files it edits."""

    task_id: str
    files: tuple[str, ...]


def make_specs(n: int, files: int, seed: int) -> list[Spec]:
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        count = 2 if files > 1 and rng.random() < TWO_FILE_SHARE else 1
        chosen = sorted(rng.sample(range(files), count))
        specs.append(Spec(f"{PREFIX}-c{i + 1:03d}", tuple(file_name(f) for f in chosen)))
    return specs


def beads_record(index: int, spec: Spec) -> dict[str, Any]:
    script = {"write": {name: file_text(name, spec.task_id) for name in spec.files}, "sleep": AGENT_SLEEP}
    description = (f"Rewrite lines 2 and 3 of {' and '.join(spec.files)} (conflict benchmark).\n\n"
                   f"```gasworks-fake\n{json.dumps(script)}\n```\n")
    stamp = iso_from_epoch(CREATED_EPOCH + index)  # oldest first = the order of the list
    return {"id": spec.task_id, "title": f"Edit {' and '.join(spec.files)} ({spec.task_id})",
            "description": description, "status": "open", "priority": 2, "issue_type": "task",
            "labels": [*(f"{FILES_LABEL}{name}" for name in spec.files), BENCH_LABEL],
            "created_at": stamp, "updated_at": stamp}


def seed_tasks(root: Path, jsonl: Path, specs: list[Spec]) -> None:
    """`gasworks init`, then import the tasks from a Beads JSONL file."""
    gasworks(["init"], root)
    jsonl.write_text("".join(json.dumps(beads_record(i, s)) + "\n" for i, s in enumerate(specs)), encoding="utf-8")
    summary = json.loads(gasworks(["import", str(jsonl), "--format", "beads", "--json"], root))
    if summary["created"] != len(specs) or sorted(summary["ids"]) != sorted(s.task_id for s in specs):
        raise RuntimeError(f"import created {summary['created']} tasks, expected {len(specs)}: {summary}")


@dataclass
class RunResult:
    code: int
    wall_seconds: float
    output: str


def run_fleet_cli(root: Path, workers: int, aware: bool, log_file: Path, timeout: float) -> RunResult:
    """`gasworks run --agent fake --workers W --until-done` with GASWORKS_CONFLICT_AWARE, timed; output to a file."""
    argv = [sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--workers", str(workers), "--until-done"]
    env = clean_env(GASWORKS_CONFLICT_AWARE="true" if aware else "false")
    code, wall = run_bounded(argv, root, env, log_file, timeout)
    return RunResult(code, wall, log_file.read_text(encoding="utf-8", errors="replace"))


# -- reading the records ---------------------------------------------------------------------


def epoch(text: str) -> float:
    return parse_time(text).timestamp()


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    return git(["merge-base", "--is-ancestor", older, newer], root, check=False).returncode == 0


CAUSES = ("running", "queued", "resolving", "re-merge", "other")


def classify_conflicts(root: Path, specs: list[Spec], merges: list[Merge],
                       attempts: dict[str, list[Attempt]]) -> tuple[dict[str, int], list[float], list[str]]:
    """For each conflict of an original branch, what its task's base commit missed (see the docstring).

    Returns the counts by cause, for the "queued" cause the gaps (ms) between the overlapping task's
    attempt being judged (attempts.ended_at, right before its branch is queued) and this task's
    attempt starting, and one line per conflict."""
    by_id = {s.task_id: s for s in specs}
    ordered = sorted(merges, key=lambda m: m.id)
    landed = {m.task_id: m for m in ordered if m.status == "landed"}
    rows: dict[str, list[Merge]] = {}
    for m in ordered:
        rows.setdefault(m.task_id, []).append(m)
    kinds = dict.fromkeys(CAUSES, 0)
    kinds["running_other_ready"] = 0
    gaps: list[float] = []
    details = []
    spans = [(tid, epoch(a.started_at), epoch(a.ended_at)) for tid in by_id for a in attempts.get(tid, [])
             if a.ended_at]
    first_start = {tid: min(s0 for t, s0, _ in spans if t == tid) for tid in by_id if tid in attempts}

    def other_ready(task_id: str, at: float) -> list[str]:
        """Original tasks not yet claimed at `at` whose files no running original task held then: what
        conflict-aware claiming should have taken instead of task_id (conflict tasks hold no files)."""
        held = {f for t, s0, e0 in spans if t != task_id and s0 < at < e0 for f in by_id[t].files}
        return [t for t in by_id if t != task_id and first_start.get(t, float("inf")) > at
                and not set(by_id[t].files) & held]

    for m in ordered:
        if m.trial != "conflict" or m.task_id not in by_id:
            continue
        if rows[m.task_id][0].id != m.id:
            kinds["re-merge"] += 1
            continue
        own = [a for a in attempts.get(m.task_id, []) if a.outcome == "success" and a.commits
               and a.commits[-1] == m.head]
        if not own or not m.started_at:
            kinds["other"] += 1
            continue
        mine = own[-1]
        start, end = epoch(mine.started_at), epoch(mine.ended_at)
        found: dict[str, list[str]] = {"running": [], "queued": [], "resolving": []}
        waited: list[float] = []
        alternatives: list[str] = []
        for other, merge in landed.items():
            if other == m.task_id or other not in by_id or not set(by_id[other].files) & set(by_id[m.task_id].files):
                continue
            if not merge.ended_at or epoch(merge.ended_at) > epoch(m.started_at):
                continue  # landed after this trial merge: not what it conflicted with
            if not merge.landed_commit or is_ancestor(root, merge.landed_commit, mine.base_commit):
                continue  # this task started from a tip that already had it
            theirs = [a for a in attempts.get(other, []) if a.outcome == "success" and a.ended_at]
            if not theirs:
                continue
            their_start = epoch(theirs[-1].started_at)
            if their_start < end and epoch(theirs[-1].ended_at) > start:
                found["running"].append(other)  # the two attempts overlapped in time
                later, at = (m.task_id, start) if start >= their_start else (other, their_start)
                ready = other_ready(later, at)
                if ready:
                    alternatives.append(f"{later} was claimed while {ready[0]} (no overlap) was ready")
            elif epoch(theirs[-1].ended_at) <= start:
                if any(epoch(r.queued_at) <= start and (not r.ended_at or epoch(r.ended_at) > start)
                       for r in rows.get(other, [])):
                    found["queued"].append(other)
                    waited.append((start - epoch(theirs[-1].ended_at)) * 1000)
                else:
                    found["resolving"].append(other)
        kind = next((k for k in ("running", "queued", "resolving") if found[k]), "other")
        kinds[kind] += 1
        if kind == "queued":
            gaps.extend(waited)
        if kind == "running" and alternatives:
            kinds["running_other_ready"] += 1
        parts = [f"ran alongside {', '.join(found['running'])}" if found["running"] else "",
                 f"started while {', '.join(found['queued'])} waited in the merge queue" if found["queued"] else "",
                 f"started while {', '.join(found['resolving'])} waited for a conflict to be resolved"
                 if found["resolving"] else "", *dict.fromkeys(alternatives)]
        details.append(f"{m.task_id} ({', '.join(by_id[m.task_id].files)}): "
                       + ("; ".join(p for p in parts if p) or "nothing overlapping was missing (?)"))
    return kinds, gaps, details


def resolved_but_not_queued(root: Path) -> tuple[list[str], int]:
    """Tasks whose merge ended in a conflict whose conflict task is closed, not queued again (what a
    refinery round does next, `Refinery._resolved_conflicts`, left undone when `gasworks run` exited),
    and the number of merge rows in the store."""
    store = SQLiteStore(root / ".gasworks" / "gasworks.db")
    try:
        merges = store.merges(limit=1_000_000)
        return sorted(m.task_id for m in merges if m.status == "conflict" and m.conflict_task
                      and store.get_task(m.conflict_task).status == "closed"), len(merges)
    finally:
        store.close()


def read_results(root: Path, specs: list[Spec]) -> dict[str, Any]:
    merges_json = json.loads(gasworks(["merges", "--all", "--json"], root))
    store = SQLiteStore(root / ".gasworks" / "gasworks.db")
    try:
        original_ids = [s.task_id for s in specs]
        tasks = {t.id: t for t in store.list_tasks(include_closed=True)}
        conflict_tasks = [t for t in tasks.values() if CONFLICT_LABEL in t.labels]
        all_attempts = store.attempts(limit=1_000_000)
        attempts: dict[str, list[Attempt]] = {}
        for a in all_attempts:
            attempts.setdefault(a.task_id, []).append(a)
        merges = store.merges(limit=1_000_000)
        overlaps = store.event_count("overlap_avoided")
        extra = [t.id for t in tasks.values() if t.id not in original_ids and CONFLICT_LABEL not in t.labels]
    finally:
        store.close()
    conflicts_store = sum(1 for m in merges if m.trial == "conflict")
    kinds, gaps, details = classify_conflicts(root, specs, merges, attempts)
    not_closed = {tid: tasks[tid].status if tid in tasks else "missing" for tid in original_ids
                  if tid not in tasks or tasks[tid].status != "closed"}
    landed = {m.task_id for m in merges if m.status == "landed"}
    return {
        "conflicts": merges_json["stats"]["conflicts"],
        "conflicts_in_store": conflicts_store,
        "conflict_rate": merges_json["stats"]["conflict_rate"],
        "conflict_tasks": len(conflict_tasks),
        "conflict_tasks_closed": sum(1 for t in conflict_tasks if t.status == "closed"),
        "overlaps_avoided": overlaps,
        "attempts": len(all_attempts),
        "attempts_original": sum(len(attempts.get(tid, [])) for tid in original_ids),
        "attempts_conflict_tasks": sum(len(attempts.get(t.id, [])) for t in conflict_tasks),
        "attempt_outcomes": count_by(a.outcome or "running" for a in all_attempts),
        "merges": len(merges),
        "merges_landed": merges_json["stats"]["landed"],
        "closed": len(original_ids) - len(not_closed),
        "not_closed": not_closed,
        "not_landed": [tid for tid in original_ids if tid not in landed],
        "other_tasks": extra,
        "conflict_causes": kinds,
        "queued_gap_ms": {"median": round(statistics.median(gaps), 1), "max": round(max(gaps), 1), "n": len(gaps)}
        if gaps else None,
        "conflict_details": details,
    }


def count_by(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def check_repo(root: Path, files: int) -> list[str]:
    """No conflict markers on main, and a clean main checkout; returns warnings."""
    warnings = []
    for i in range(files):
        name = file_name(i)
        text = git(["show", f"{TARGET}:{name}"], root).stdout
        marked = [line for line in text.splitlines() if line.startswith(MARKERS)]
        if marked:
            warnings.append(f"{TARGET}:{name} has conflict markers: {marked[:3]}")
    leftover = [line for line in git(["status", "--porcelain"], root).stdout.splitlines()
                if line.strip() and line != "?? gasworks.toml"]  # written by `gasworks init`, not committed
    if leftover:
        warnings.append(f"the main checkout is not clean after the run: {leftover[:5]}")
    return warnings


# -- measuring -------------------------------------------------------------------------------


def bench_mode(name: str, aware: bool, specs: list[Spec], workers: int, files: int) -> dict[str, Any]:
    n = len(specs)
    progress(f"conflict_aware={str(aware).lower()}: {n} tasks over {files} files, {workers} workers")
    with tempfile.TemporaryDirectory(prefix=f"gasworks-bench-conflicts-{name}-") as tmp:
        root = Path(tmp) / "repo"
        make_repo(root, files)
        seed_tasks(root, Path(tmp) / "issues.jsonl", specs)
        config = load_config(root, env=clean_env(GASWORKS_CONFLICT_AWARE="true" if aware else "false"))
        if config.conflict_aware != aware or not config.create_bead_on_merge_conflict:
            raise RuntimeError(f"unexpected configuration: conflict_aware={config.conflict_aware}, "
                               f"create_bead_on_merge_conflict={config.create_bead_on_merge_conflict}")
        runs: list[RunResult] = []
        stranded: list[list[str]] = []  # per run: branches left behind with their conflict task closed
        warnings, notes = [], []
        rows_before = 0  # merge rows in the store: a run that adds none made no progress
        while True:
            progress(f"  running GASWORKS_CONFLICT_AWARE={str(aware).lower()} gasworks run --agent fake "
                     f"--workers {workers} --until-done" + (f" (again: run {len(runs) + 1})" if runs else ""))
            run = run_fleet_cli(root, workers, aware, Path(tmp) / f"run{len(runs) + 1}.log",
                                timeout=60 + RUN_TIMEOUT_PER_TASK * n)
            runs.append(run)
            left, merge_rows = resolved_but_not_queued(root)
            stranded.append(left)
            progressed = merge_rows > rows_before
            rows_before = merge_rows
            progress(f"  exit code {run.code} after {run.wall_seconds:.1f} s"
                     + (f"; {len(left)} branch(es) left behind with their conflict task closed" if left else ""))
            again = run.code != 0 and left and len(runs) < MAX_RUNS and progressed
            if again:
                notes.append(f"run {len(runs)} exited with {run.code}, leaving {len(left)} conflicted branch(es) "
                                f"whose conflict task had closed, never queued again ({', '.join(left[:8])}); "
                                "running `gasworks run --until-done` again")
            elif run.code != 0:
                warnings.append(f"gasworks run (run {len(runs)}) exited with {run.code}; its last lines:\n    "
                                + "\n    ".join(run.output.splitlines()[-12:]))
            if not again:
                break
        progress("  reading the records")
        result = read_results(root, specs)
        warnings.extend(check_repo(root, files))
    if result["not_closed"]:
        shown = ", ".join(f"{tid} {status}" for tid, status in list(result["not_closed"].items())[:8])
        warnings.append(f"{len(result['not_closed'])} of {n} original tasks are not closed: {shown}")
    if result["not_landed"]:
        warnings.append(f"{len(result['not_landed'])} of {n} original branches did not land: "
                        f"{result['not_landed'][:8]}")
    if result["conflicts"] != result["conflicts_in_store"]:
        warnings.append(f"`gasworks merges --json` counts {result['conflicts']} conflicts, the store "
                        f"{result['conflicts_in_store']}")
    if result["conflict_tasks"] != result["conflicts"]:
        warnings.append(f"{result['conflicts']} conflicts but {result['conflict_tasks']} conflict tasks")
    if result["other_tasks"]:
        warnings.append(f"tasks neither imported nor made for a conflict: {result['other_tasks'][:8]}")
    for note in notes:
        progress(f"  NOTE: {note}")
    for warning in warnings:
        progress(f"  WARNING: {warning}")
    return {"mode": name, "conflict_aware": aware, "tasks": n, "workers": workers, "files": files,
            "exit_code": runs[-1].code, "exit_codes": [r.code for r in runs], "runs": len(runs),
            "wall_seconds": round(sum(r.wall_seconds for r in runs), 2),
            "wall_seconds_per_run": [round(r.wall_seconds, 2) for r in runs],
            "stranded_after_first_run": len(stranded[0]), **result, "notes": notes, "warnings": warnings}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# -- output ----------------------------------------------------------------------------------



def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def print_tables(report: dict[str, Any]) -> None:
    results = report["results"]
    spread = report["files_per_task"]
    print(f"{report['tasks']} tasks over {report['files']} files ({spread['1']} edit one file, {spread['2']} two; "
          f"seed {report['seed']}), {report['workers']} workers, fake agent sleeping {AGENT_SLEEP:g} s, no gate")
    print()
    header = ("conflict_aware", "runs", "exit", "stranded", "wall s", "conflicts", "conflict tasks",
              "overlaps avoided", "attempts", "(orig + resolve)", "merges", "landed", "closed")
    rows = []
    for r in results:
        rows.append((str(r["conflict_aware"]).lower(), str(r["runs"]), ",".join(map(str, r["exit_codes"])),
                     str(r["stranded_after_first_run"]),
                     " + ".join(f"{w:.1f}" for w in r["wall_seconds_per_run"])
                     + (f" = {r['wall_seconds']:.1f}" if r["runs"] > 1 else ""),
                     str(r["conflicts"]), str(r["conflict_tasks"]), str(r["overlaps_avoided"]), str(r["attempts"]),
                     f"{r['attempts_original']} + {r['attempts_conflict_tasks']}", str(r["merges"]),
                     str(r["merges_landed"]), f"{r['closed']}/{r['tasks']}"))
    print_rows(header, rows)
    print()
    ratios = report["ratios"]
    print(f"aware / unaware: conflicts {fmt_ratio(ratios['conflicts'])}, "
          f"wall time {fmt_ratio(ratios['wall_seconds'])}, attempts {fmt_ratio(ratios['attempts'])}")
    print()
    print("What the first merge of each conflicting original branch missed (its task's base commit lacked an")
    print("overlapping task that had landed by the trial merge):")
    header = ("conflict_aware", "ran alongside", "(other work ready)", "in merge queue",
              "(claimed ms after, median/max)", "awaiting resolve", "re-merge", "other")
    rows = []
    for r in results:
        gap = r["queued_gap_ms"]
        rows.append((str(r["conflict_aware"]).lower(),
                     *(str(r["conflict_causes"][k]) for k in ("running", "running_other_ready", "queued")),
                     f"{gap['median']:.0f} / {gap['max']:.0f}" if gap else "-",
                     *(str(r["conflict_causes"][k]) for k in ("resolving", "re-merge", "other"))))
    print_rows(header, rows)
    print("""\
  ran alongside     an overlapping task ran at the same time (one of the two was claimed while the
                    other ran): what conflict-aware claiming avoids while other ready work exists
                    (with it on, this is the fallback: every ready task overlapped a running one).
                    "other work ready": conflicts where, when the later of the two was claimed, an
                    original task not yet claimed overlapped no running task (from the attempts'
                    times): with conflict_aware = true this should be 0
  in merge queue    the overlapping task had finished and its branch was waiting in the merge queue
                    when this one was claimed (claimed so many ms after that task's attempt was
                    judged): avoid_labels holds only the files of RUNNING tasks, so a slot freed by
                    a finished task takes a task on the same files from a tip without it
  awaiting resolve  the overlapping task had finished, its merge had conflicted, and its conflict
                    task had not yet put the branch back in the queue
  re-merge          a branch queued again after its conflict was resolved, conflicting again
                    with what landed while the conflict task ran (or waited to merge)""")
    for r in results:
        if r["conflict_details"]:
            print()
            print(f"conflict_aware={str(r['conflict_aware']).lower()}:")
            for line in r["conflict_details"]:
                print(f"  {line}")
    print()
    print(f"""\
What the numbers are:
  runs, exit        `gasworks run --until-done` processes and their exit codes: it is run again (at most
                    {MAX_RUNS} times) while it exits leaving conflicted branches whose conflict task had
                    closed but which were never queued again ("stranded" after the first run)
  wall s            each `gasworks run --until-done` process, start-up to exit (and their sum)
  conflicts         merges whose trial merge (git merge-tree) was "conflict", from `gasworks merges
                    --all --json` (stats.conflicts); a branch queued again can conflict again
  conflict tasks    tasks labelled merge-conflict (one per conflict; each resolved by the fake agent)
  overlaps avoided  `overlap_avoided` events: claims that passed over a ready task whose files a
                    running task holds (one event per such claim, on the first task passed over)
  attempts          agent attempts of the original tasks plus those of the conflict tasks
One run per mode: the timing of agents and merges moves these numbers from run to run.""")
    notes = [(r["mode"], n) for r in results for n in r["notes"]]
    warnings = [(r["mode"], w) for r in results for w in r["warnings"]]
    if notes or warnings:
        print()
    for mode, note in notes:
        print(f"NOTE ({mode}): {note}")
    for mode, warning in warnings:
        print(f"WARNING ({mode}): {warning}")
    if not warnings:
        print("Checked: every original task closed and its branch landed, no conflict markers on "
              f"{TARGET}, the main checkout clean, in both modes.")


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=positive, help=f"tasks per run (default {DEFAULT_TASKS}, "
                                                       f"{QUICK_TASKS} with --quick)")
    parser.add_argument("--workers", type=positive, default=DEFAULT_WORKERS,
                        help=f"agents at once (default {DEFAULT_WORKERS})")
    parser.add_argument("--files", type=positive, default=DEFAULT_FILES,
                        help=f"files in the repository the tasks edit (default {DEFAULT_FILES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the files per task "
                                                                       f"(default {DEFAULT_SEED})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TASKS} tasks per run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.workers > 256:
        parser.error("--workers: at most 256")
    n = args.tasks or (QUICK_TASKS if args.quick else DEFAULT_TASKS)
    specs = make_specs(n, args.files, args.seed)

    results = [bench_mode(name, aware, specs, args.workers, args.files) for name, aware in MODES]
    aware, unaware = results
    report = {
        "tasks": n, "workers": args.workers, "files": args.files, "seed": args.seed, "agent_sleep": AGENT_SLEEP,
        "files_per_task": {"1": sum(1 for s in specs if len(s.files) == 1),
                           "2": sum(1 for s in specs if len(s.files) == 2)},
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "results": results,
        "ratios": {key: ratio(aware[key], unaware[key]) for key in ("conflicts", "wall_seconds", "attempts")},
    }
    return emit(report, args.json, print_tables)


if __name__ == "__main__":
    sys.exit(main())
