"""`gasworks stats`: the numbers computed from known records, and the command on a real fleet."""

from __future__ import annotations

from gasworks.models import Attempt, Merge, Task, iso_from_epoch
from gasworks.stats import compute, compute_series, percentile, seconds_text, stats_lines
from tests.fleet import add, drain, make_dispatcher

T0 = 1_700_000_000.0


def at(seconds: float) -> str:
    return iso_from_epoch(T0 + seconds)


def attempt(number: int, task: str, start: float, end: float | None, outcome: str, tokens=(0, 0)) -> Attempt:
    ended = at(end) if end is not None else ""
    return Attempt(id=number, task_id=task, slot="w1", started_at=at(start), ended_at=ended,
                   outcome=outcome if ended else "", tokens_in=tokens[0], tokens_out=tokens[1])


TASKS = [Task("gw-a", "A", status="closed", closed_at=at(60)), Task("gw-b", "B", status="closed", closed_at=at(40)),
         Task("gw-c", "C", status="open"), Task("gw-d", "D", status="in_progress"),
         Task("gw-e", "closed by hand, never attempted", status="closed", closed_at=at(70))]
ATTEMPTS = [
    attempt(1, "gw-c", 0, 5, "interrupted"),          # not the task's fault: not counted
    attempt(2, "gw-a", 0, 10, "failed"),
    attempt(3, "gw-b", 5, 15, "success", (200, 30)),
    attempt(4, "gw-a", 20, 30, "success", (100, 50)),
    attempt(5, "gw-d", 50, None, ""),                 # still running at now = 100
]
MERGES = [Merge(1, "gw-a", "b", "h", "landed", at(31), ended_at=at(62), trial="clean"),
          Merge(2, "gw-b", "b", "h", "conflict", at(16), ended_at=at(41), trial="conflict"),
          Merge(3, "gw-b", "b", "h", "landed", at(42), ended_at=at(45), trial="clean")]
GATE = {"runs": 3, "failed": 1, "seconds": 12.0}


def test_stats_from_known_records():
    report = compute(TASKS, ATTEMPTS, MERGES, GATE, now=T0 + 100)
    assert report["tasks"] == {"closed": 3, "open": 1, "in_progress": 1}
    # A: first attempt at 0, closed at 60; B: 5 -> 40. E was never attempted, so it is not counted.
    assert report["throughput"] == {"tasks_done": 2, "span_seconds": 60.0, "per_hour": 120.0}
    assert report["time_per_task"] == {"tasks": 2, "mean_seconds": 47.5, "p90_seconds": 60.0}
    assert report["attempts"] == {
        "total": 5, "running": 1, "counted": 3, "succeeded": 2, "success_rate": 0.667,
        "by_try": [{"try": 1, "attempts": 2, "succeeded": 1, "success_rate": 0.5},
                   {"try": 2, "attempts": 1, "succeeded": 1, "success_rate": 1.0}],
        "outcomes": {"failed": 1, "interrupted": 1, "success": 2},
    }
    merges = report["merges"]
    assert (merges["landed"], merges["conflicts"], merges["conflict_rate"], merges["gate_failure_rate"]) == \
        (2, 1, 0.333, 0.0)
    # Tokens per second only over the attempts that reported tokens (3 and 4: 20 agent-seconds).
    assert report["tokens"] == {"in": 300, "out": 80, "out_per_second": 4.0}
    assert report["agent_seconds"] == 85.0  # 5 + 10 + 10 + 10 + 50 (the running one, until now)


def test_series_buckets_merges_success_conflicts_and_token_rate():
    result = compute_series(ATTEMPTS, MERGES, now=T0 + 100, buckets=4)
    assert result["bucket_seconds"] == 25.0
    picked = [{k: r[k] for k in ("merged", "conflicts", "attempts", "succeeded", "success_rate", "tokens_per_second")}
              for r in result["buckets"]]
    assert picked == [
        {"merged": 0, "conflicts": 0, "attempts": 2, "succeeded": 1, "success_rate": 0.5, "tokens_per_second": 3.0},
        {"merged": 1, "conflicts": 1, "attempts": 1, "succeeded": 1, "success_rate": 1.0, "tokens_per_second": 5.0},
        {"merged": 1, "conflicts": 0, "attempts": 0, "succeeded": 0, "success_rate": None, "tokens_per_second": 0.0},
        {"merged": 0, "conflicts": 0, "attempts": 0, "succeeded": 0, "success_rate": None, "tokens_per_second": 0.0},
    ]


def test_nothing_yet_gives_no_rates_rather_than_zeros():
    report = compute([], [], [], {"runs": 0, "failed": 0, "seconds": 0.0}, now=T0)
    assert report["throughput"]["per_hour"] is None and report["time_per_task"]["mean_seconds"] is None
    assert report["attempts"]["success_rate"] is None and report["tokens"]["out_per_second"] is None
    assert stats_lines(report)[0] == "throughput     0 tasks done in 0.0s"


def test_percentile_and_durations():
    assert percentile([], 90) is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90) == 9.0
    assert [seconds_text(s) for s in (None, 4.24, 42, 185, 7800)] == ["-", "4.2s", "42s", "3m 05s", "2h 10m"]


def test_stats_command_on_a_drained_fleet(project_dir, gw):
    dispatcher, _ = make_dispatcher(project_dir)
    for n in range(3):
        add(dispatcher, f"task {n}")
    drain(dispatcher)
    report = gw.json("stats")
    assert report["tasks"] == {"closed": 3}
    assert report["throughput"]["tasks_done"] == 3 and report["attempts"]["succeeded"] == 3
    assert report["merges"]["landed"] == 3 and report["merges"]["conflict_rate"] == 0.0
    assert set(report) == {"tasks", "throughput", "time_per_task", "attempts", "merges", "tokens", "agent_seconds",
                           "pregate"}
    text = gw("stats").stdout.splitlines()
    assert [line.split()[0] for line in text] == ["throughput", "time", "attempts", "merges", "tokens", "agent"]
    assert text[2].startswith("attempts       3 finished, 3 succeeded (100%); try 1: 100% of 3")
