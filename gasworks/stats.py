"""Fleet statistics (`gasworks stats`, the dashboard's charts), computed in Python from the store's records.

`compute()` and `compute_series()` are pure: they take tasks, attempts and merges and a clock,
so they can be checked against known records; `fleet_stats()` and `series()` load them.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from typing import Any

from gasworks.models import NOT_THE_TASKS_FAULT, Attempt, Merge, MergeStatus, Outcome, Status, Task, parse_time
from gasworks.output import merge_stats
from gasworks.store import StoreView

ALL = 10_000_000  # "every row" for the store's limit arguments


def epoch(timestamp: str) -> float | None:
    return parse_time(timestamp).timestamp() if timestamp else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of values; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _duration(attempt: Attempt, now: float) -> float:
    start = epoch(attempt.started_at) or now
    return max(0.0, (epoch(attempt.ended_at) or now) - start)


def _counted(attempt: Attempt) -> bool:
    """Finished attempts that say something about the task (not interrupted, orphaned, model down...)."""
    return bool(attempt.ended_at) and attempt.outcome not in NOT_THE_TASKS_FAULT


def _by_try(attempts: list[Attempt]) -> list[dict[str, Any]]:
    """Success rate of each task's 1st, 2nd, ... counted attempt."""
    tries: dict[str, int] = defaultdict(int)
    made: Counter[int] = Counter()
    won: Counter[int] = Counter()
    for attempt in sorted(attempts, key=lambda a: a.id):
        if not _counted(attempt):
            continue
        tries[attempt.task_id] += 1
        made[tries[attempt.task_id]] += 1
        won[tries[attempt.task_id]] += attempt.outcome == Outcome.SUCCESS
    return [{"try": n, "attempts": made[n], "succeeded": won[n], "success_rate": _rate(won[n], made[n])}
            for n in sorted(made)]


def _task_times(tasks: list[Task], attempts: list[Attempt]) -> dict[str, Any]:
    """For tasks agents closed: time from the first attempt's start to the close, and the throughput."""
    first: dict[str, float] = {}
    for attempt in attempts:
        start = epoch(attempt.started_at)
        if start is not None:
            first[attempt.task_id] = min(first.get(attempt.task_id, start), start)
    done = [(first[t.id], epoch(t.closed_at) or 0.0) for t in tasks
            if t.status == Status.CLOSED and t.closed_at and t.id in first]
    durations = [max(0.0, end - start) for start, end in done]
    span = max(end for _, end in done) - min(start for start, _ in done) if done else 0.0
    return {
        "tasks_done": len(done),
        "span_seconds": round(span, 3),
        "per_hour": round(len(done) / span * 3600, 3) if span > 0 else None,
        "mean_seconds": round(sum(durations) / len(durations), 3) if durations else None,
        "p90_seconds": None if not durations else round(percentile(durations, 90) or 0.0, 3),
    }


def compute(tasks: list[Task], attempts: list[Attempt], merges: list[Merge], gate: dict[str, float],
            now: float) -> dict[str, Any]:
    """Every number `gasworks stats` shows, from the records themselves."""
    times = _task_times(tasks, attempts)
    counted = [a for a in attempts if _counted(a)]
    succeeded = sum(1 for a in counted if a.outcome == Outcome.SUCCESS)
    agent_seconds = sum(_duration(a, now) for a in attempts)
    reporting = [a for a in attempts if a.tokens_in or a.tokens_out]
    reporting_seconds = sum(_duration(a, now) for a in reporting)
    tokens_in = sum(a.tokens_in for a in attempts)
    tokens_out = sum(a.tokens_out for a in attempts)
    return {
        "tasks": dict(Counter(t.status for t in tasks)),
        "throughput": {"tasks_done": times["tasks_done"], "span_seconds": times["span_seconds"],
                       "per_hour": times["per_hour"]},
        "time_per_task": {"tasks": times["tasks_done"], "mean_seconds": times["mean_seconds"],
                          "p90_seconds": times["p90_seconds"]},
        "attempts": {
            "total": len(attempts), "running": sum(1 for a in attempts if not a.ended_at),
            "counted": len(counted), "succeeded": succeeded, "success_rate": _rate(succeeded, len(counted)),
            "by_try": _by_try(attempts),
            "outcomes": dict(sorted(Counter(a.outcome for a in attempts if a.ended_at).items())),
        },
        "merges": merge_stats(merges, gate),
        "tokens": {"in": tokens_in, "out": tokens_out,
                   "out_per_second": round(sum(a.tokens_out for a in reporting) / reporting_seconds, 3)
                   if reporting_seconds > 0 else None},
        "agent_seconds": round(agent_seconds, 3),
    }


def compute_series(attempts: list[Attempt], merges: list[Merge], now: float, buckets: int = 12) -> dict[str, Any]:
    """The fleet over time, in `buckets` equal spans from the first attempt to now: merges landed,
    attempt success rate, conflicts, and output tokens per agent-second, for the dashboard's charts."""
    starts = [s for s in (epoch(a.started_at) for a in attempts) if s is not None]
    begin = min(starts) if starts else now
    width = max((now - begin) / buckets, 1.0)
    rows: list[dict[str, Any]] = [
        {"start": begin + i * width, "merged": 0, "conflicts": 0, "attempts": 0, "succeeded": 0,
         "tokens_out": 0, "seconds": 0.0} for i in range(buckets)]

    def row(timestamp: str) -> dict[str, Any] | None:
        at = epoch(timestamp)
        return None if at is None else rows[min(buckets - 1, max(0, int((at - begin) // width)))]

    for merge in merges:
        where = row(merge.ended_at)
        if where is not None and merge.status == MergeStatus.LANDED:
            where["merged"] += 1
        if where is not None and merge.trial == "conflict":
            where["conflicts"] += 1
    for attempt in attempts:
        where = row(attempt.ended_at)
        if where is None:
            continue
        if _counted(attempt):
            where["attempts"] += 1
            where["succeeded"] += attempt.outcome == Outcome.SUCCESS
        if attempt.tokens_out:
            where["tokens_out"] += attempt.tokens_out
            where["seconds"] += _duration(attempt, now)
    for r in rows:
        r["success_rate"] = _rate(r["succeeded"], r["attempts"])
        r["tokens_per_second"] = round(r["tokens_out"] / r["seconds"], 3) if r["seconds"] > 0 else 0.0
        r["seconds"] = round(r["seconds"], 3)
    return {"bucket_seconds": round(width, 3), "buckets": rows}


def _load(store: StoreView) -> tuple[list[Task], list[Attempt], list[Merge]]:
    return store.list_tasks(), store.attempts(limit=ALL), store.merges(limit=ALL, oldest_first=True)


def fleet_stats(store: StoreView, now: float | None = None) -> dict[str, Any]:
    tasks, attempts, merges = _load(store)
    report = compute(tasks, attempts, merges, store.gate_run_totals(), time.time() if now is None else now)
    report["pregate"] = store.pregate_totals()
    return report


def series(store: StoreView, now: float | None = None, buckets: int = 12) -> dict[str, Any]:
    _tasks, attempts, merges = _load(store)
    return compute_series(attempts, merges, time.time() if now is None else now, buckets)


ETA_WINDOW_SECONDS = 900.0  # the closing rate behind the ETA is measured over this much of the recent past


def progress(counts: dict[str, int], *, merged: int, failed: int, closed_at: list[float], now: float,
             window: float = ETA_WINDOW_SECONDS) -> dict[str, Any]:
    """Where the work stands: tasks closed of all (from store.counts()), branches merged, tasks the
    fleet gave up on, what is left for it (open, running, merging) and when that is done at the rate
    measured over the last `window` seconds: the closes in it after the first, over the time since
    that first one (so a stalled fleet's ETA grows). Rate and ETA are None until two closes fall in it."""
    left = sum(counts.get(status, 0) for status in (Status.OPEN, Status.IN_PROGRESS, Status.MERGING))
    recent = sorted(when for when in closed_at if now - window <= when <= now)
    rate = (len(recent) - 1) / (now - recent[0]) if len(recent) >= 2 and now > recent[0] else None
    return {"closed": counts.get(Status.CLOSED, 0),
            "total": sum(n for status, n in counts.items() if status not in ("ready", "waiting")),
            "merged": merged, "failed": failed, "left": left,
            "rate_per_minute": None if rate is None else round(rate * 60, 2),
            "eta_seconds": 0.0 if not left else None if rate is None else round(left / rate, 1)}


def seconds_text(seconds: float | None) -> str:
    """4.2s, 42s, 3m 05s, 2h 10m; '-' for None."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def stats_lines(report: dict[str, Any]) -> list[str]:
    """`gasworks stats` as text, one line per subject."""
    through, times, att = report["throughput"], report["time_per_task"], report["attempts"]
    merges, tokens = report["merges"], report["tokens"]
    per_hour = f" ({through['per_hour']:.1f} per hour)" if through["per_hour"] is not None else ""
    tries = ", ".join(f"try {t['try']}: {_percent(t['success_rate'])} of {t['attempts']}" for t in att["by_try"])
    rate = f", {tokens['out_per_second']:.1f} out per agent-second" if tokens["out_per_second"] is not None else ""
    return [
        f"throughput     {through['tasks_done']} tasks done in {seconds_text(through['span_seconds'])}{per_hour}",
        f"time per task  mean {seconds_text(times['mean_seconds'])}, p90 {seconds_text(times['p90_seconds'])}",
        f"attempts       {att['counted']} finished, {att['succeeded']} succeeded ({_percent(att['success_rate'])})"
        + (f"; {tries}" if tries else "") + (f"; {att['running']} running" if att["running"] else ""),
        f"merges         {merges['landed']} landed; conflict rate {_percent(merges['conflict_rate'])}, gate "
        f"failure rate {_percent(merges['gate_failure_rate'])} ({merges['gate_runs']} gate runs)",
        *([f"pre-gates      {pre['runs']} run, {pre['failed']} failed; {pre['cpu_seconds']:.1f} CPU seconds, "
            f"{seconds_text(pre['seconds'])} wall"] if (pre := report.get("pregate")) and pre["runs"] else []),
        f"tokens         {tokens['in']:,} in, {tokens['out']:,} out{rate}",
        f"agent time     {seconds_text(report['agent_seconds'])} ({report['agent_seconds']:.0f} agent-seconds)",
    ]


def run_summary(store: StoreView, since: float, seconds: float) -> dict[str, Any]:
    """What one run (or demo) did, from `since` (epoch seconds) on: merged, attempts that failed and
    how, conflicts, what is left blocked or waiting, tokens and time; for its closing lines."""
    attempts = [a for a in store.attempts(limit=ALL) if (epoch(a.started_at) or 0) >= since]
    merges = [m for m in store.merges(limit=ALL) if m.ended_at and (epoch(m.ended_at) or 0) >= since]
    counts = store.counts()
    return {"seconds": round(seconds, 1), "merged": sum(1 for m in merges if m.status == MergeStatus.LANDED),
            "failed_attempts": dict(Counter(a.outcome for a in attempts if a.outcome not in ("", Outcome.SUCCESS))),
            "conflicts": sum(1 for m in merges if m.trial == "conflict"), "blocked": counts.get(Status.BLOCKED, 0),
            "waiting": counts.get("waiting", 0), "attempts": len(attempts),
            "tokens_in": sum(a.tokens_in for a in attempts), "tokens_out": sum(a.tokens_out for a in attempts),
            "counts": counts}


def summary_line(summary: dict[str, Any]) -> str:
    """One line of what a run did, e.g. "done in 68 s: 3 merged; 2 attempts failed (1 failed,
    1 no_change); 1 blocked, 4 waiting on unfinished work; 20,121 tokens over 7 attempts"."""
    failed = summary["failed_attempts"]
    how = ", ".join(f"{n} {outcome}" for outcome, n in sorted(failed.items(), key=lambda kv: -kv[1]))
    parts = [f"{summary['merged']} merged",
             f"{sum(failed.values())} attempt(s) failed" + (f" ({how})" if how else ""),
             *([f"{summary['conflicts']} merge conflict(s)"] if summary["conflicts"] else []),
             f"{summary['blocked']} blocked, {summary['waiting']} waiting on unfinished work",
             f"{summary['tokens_in'] + summary['tokens_out']:,} tokens ({summary['tokens_in']:,} in, "
             f"{summary['tokens_out']:,} out) over {summary['attempts']} attempt(s)"]
    return f"done in {summary['seconds']:.0f} s: " + "; ".join(parts)
