"""Claims per second with 1, 4 and 16 concurrent claimer processes, SQLite and PostgreSQL side by side.

Each configuration gets a fresh store holding `--tasks` ready tasks (default 3,000). The claimer
processes open their own store connection, wait at a start line, then call `claim_next()` until
nothing is left. The rate is tasks claimed / wall time from the start signal to the last claimer's
exit; every task must be claimed exactly once (checked, reported otherwise). SQLite runs in a
temporary directory; PostgreSQL is the server `--pg-url` names, or else a private one started for
the run (Debian's postgresql package, as the tests start it; see tests/pg.py). Nothing is asserted.

    python bench/claim_rate.py                  # 1, 4, 16 claimers on both backends
    python bench/claim_rate.py --claimers 1,8   # other counts
    python bench/claim_rate.py --json

bench/store.py prints this table too, after its latency table (skip it there with --no-claimers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import counts, emit, print_rows, progress  # bench/ is on sys.path when a script here runs

from gasworks.store import NewTask, open_store

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0


def worker(where: str, name: str, start_file: str) -> None:
    """One claimer: ready, wait for the start file, claim until none are left, print the ids."""
    store = open_store(where)
    Path(f"{start_file}.{name}.ready").touch()
    while not Path(start_file).exists():
        time.sleep(0.001)
    claimed = []
    while (task := store.claim_next(name, lease_seconds=600)) is not None:
        claimed.append(task.id)
    store.close()
    print(json.dumps(claimed), flush=True)


def seed(where: str, tasks: int) -> list[str]:
    store = open_store(where)
    try:
        news = [NewTask(f"task {n}", priority=n % 5) for n in range(tasks)]
        return [task.id for task in store.create_tasks(news, prefix="gw", actor="bench")]
    finally:
        store.close()


def measure(where: str, claimers: int, tasks: int, scratch: Path) -> dict[str, Any]:
    ids = seed(where, tasks)
    start = scratch / f"go-{claimers}-{time.monotonic_ns()}"
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", where, f"claimer-{n}", str(start)],
                              stdout=subprocess.PIPE, text=True) for n in range(claimers)]
    deadline = time.monotonic() + START_TIMEOUT
    while not all(Path(f"{start}.claimer-{n}.ready").exists() for n in range(claimers)):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            raise RuntimeError("the claimer processes did not start")
        time.sleep(0.01)
    began = time.perf_counter()
    start.touch()
    claimed: list[str] = []
    for proc in procs:
        out, _ = proc.communicate()
        claimed += json.loads(out.strip().splitlines()[-1]) if out.strip() else []
    wall = time.perf_counter() - began
    exact = sorted(claimed) == sorted(ids)
    return {"claimers": claimers, "tasks": tasks, "seconds": round(wall, 3),
            "claims_per_second": round(len(claimed) / wall, 1), "each_exactly_once": exact}


def pg_server(url: str | None) -> tuple[Any, Any]:
    """(a function giving a fresh database URL, the server to stop or None)."""
    if url:
        import psycopg

        counter = iter(range(1_000_000))

        def fresh() -> str:
            name = f"bench_{int(time.time())}_{next(counter)}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return url.rsplit("/", 1)[0] + f"/{name}"

        return fresh, None
    sys.path.insert(0, str(ROOT))
    from tests.pg import Server

    server = Server().start()
    return server.new_database, server


def run(claimer_counts: list[int], tasks: int, pg_url: str | None) -> list[dict[str, Any]]:
    results = []
    fresh_pg, server = pg_server(pg_url)
    try:
        with tempfile.TemporaryDirectory(prefix="gasworks-claims-") as tmp:
            scratch = Path(tmp)
            for claimers in claimer_counts:
                for backend in ("sqlite", "postgresql"):
                    where = str(scratch / f"{claimers}.db") if backend == "sqlite" else fresh_pg()
                    progress(f"claim rate: {backend}, {claimers} claimer(s), {tasks} tasks")
                    results.append({"backend": backend, **measure(where, claimers, tasks, scratch)})
    finally:
        if server is not None:
            server.stop()
    return results


def print_table(results: list[dict[str, Any]]) -> None:
    base = {r["backend"]: r["claims_per_second"] for r in results if r["claimers"] == min(x["claimers"]
                                                                                            for x in results)}
    by_key = {(r["backend"], r["claimers"]): r for r in results}
    rows = []
    for claimers in sorted({r["claimers"] for r in results}):
        sqlite, pg = by_key[("sqlite", claimers)], by_key[("postgresql", claimers)]
        rows.append((str(claimers), f"{sqlite['claims_per_second']:,.0f}",
                     f"{sqlite['claims_per_second'] / base['sqlite']:.2f}x",
                     f"{pg['claims_per_second']:,.0f}", f"{pg['claims_per_second'] / base['postgresql']:.2f}x",
                     f"{pg['claims_per_second'] / sqlite['claims_per_second']:.2f}",
                     "yes" if sqlite["each_exactly_once"] and pg["each_exactly_once"] else "NO"))
    print(f"\nclaims per second, {results[0]['tasks']} ready tasks, separate claimer processes")
    print_rows(("claimers", "sqlite/s", "vs 1", "postgres/s", "vs 1", "pg/sqlite", "each once"), rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--claimers", type=lambda text: counts(text, "claimer counts"), default=[1, 4, 16],
                        help="comma-separated counts of concurrent claimers (default 1,4,16)")
    parser.add_argument("--claim-tasks", type=int, default=3000, help="ready tasks per configuration")
    parser.add_argument("--pg-url", default=None,
                        help="a PostgreSQL server to use (postgresql://user@127.0.0.1:PORT/db); default: start one")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.claimers, args.claim_tasks, args.pg_url)
    return emit(results, args.json, print_table)


if __name__ == "__main__":
    sys.exit(main())
