"""Showing the fleet: the live view of `gasworks run`, the report of `gasworks status` and its
`--watch` view, which reads only the store and the state files, so it works from any terminal.

Task titles and log lines are other people's text: they reach rich as `Text`, never as markup.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gasworks import logs
from gasworks.errors import NotFoundError
from gasworks.models import MergeStatus, Status, iso_from_epoch
from gasworks.output import failure_reason, oneline
from gasworks.project import Project, active_run, run_slots
from gasworks.stats import epoch, seconds_text
from gasworks.store import StoreView
from gasworks.waits import left_for_humans

QUIET_WARN_SECONDS = 60.0  # a slot whose log has not grown for this long is shown as quiet
RECENT_MERGES = 5
WAITING_MERGES = (MergeStatus.QUEUED, MergeStatus.MERGING, MergeStatus.REVIEW)  # not yet a result
FAILED_LISTED = 10  # unfinished tasks whose latest attempt failed, named with the reason


class FleetView:
    """On a terminal, a live table of slots under the log lines; otherwise plain timestamped lines."""

    def __init__(self, live: bool) -> None:
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=True) if live else None
        self._last = 0.0

    def __enter__(self) -> FleetView:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            with _output():
                self.live.__exit__(*exc)

    def say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with _output():
            if self.live:
                self.console.print(Text.assemble((stamp, "dim"), " ", line), highlight=False, soft_wrap=True)
            else:
                click.echo(f"{stamp} {line}")

    def update(self, snapshot: dict[str, Any]) -> None:
        now = time.monotonic()
        if self.live and now - self._last >= 0.25:
            self._last = now
            with _output():
                self.live.update(fleet_table(snapshot))


@contextlib.contextmanager
def _output() -> Iterator[None]:
    """Writing to a terminal that closed (SIGHUP comes with it) or to a pipe whose reader ended
    fails. The fleet must go on to stop its agents: its output goes to /dev/null from then on, so
    no later write fails either, nor the flush at exit."""
    try:
        yield
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # no file descriptor behind it: nothing to quiet
        finally:
            os.close(null)


def _table(*columns: str, wide: str = "") -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ellipsis", ratio=1 if column == wide else None)
    return table


def fleet_table(snapshot: dict[str, Any]) -> Group:
    """The live table of `gasworks run`, from Dispatcher.snapshot()."""
    table = _table("slot", "task", "attempt", "elapsed", "last log line")
    table.columns[-1].max_width = 60
    for slot in snapshot["slots"]:
        if slot["task"]:
            table.add_row(slot["slot"], slot["task"], str(slot["attempt"]), f"{slot['elapsed']:.0f}s",
                          Text(oneline(slot["last_line"], 60)))
        else:
            table.add_row(slot["slot"], Text("idle", "dim"), "", "", "")
    counts = ", ".join(f"{n} {s}" for s, n in snapshot["counts"].items())
    held = [Text.assemble(("merge waits", "yellow"), f" {task}: {why}") for task, why in snapshot["held"].items()]
    return Group(table, Text(counts), *held)


def _tokens(logs_dir: Path, attempt: Any) -> tuple[int, int]:
    """Tokens so far: what the agent reported in its usage file, else what the store has."""
    try:
        usage = json.loads(logs.log_path(logs_dir, attempt).with_suffix(".usage.json").read_text(encoding="utf-8"))
        return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        return attempt.tokens_in, attempt.tokens_out


def slot_info(project: Project, store: StoreView, attempt: Any, now: float) -> dict[str, Any]:
    """One running attempt as the status views show it."""
    path = logs.log_path(project.logs_dir, attempt)
    started = epoch(attempt.started_at)
    try:
        title = store.get_task(attempt.task_id).title
    except NotFoundError:  # gone meanwhile: show the slot anyway
        title = ""
    tokens_in, tokens_out = _tokens(project.logs_dir, attempt)
    return {"slot": attempt.slot, "task": attempt.task_id, "attempt": attempt.number, "attempt_id": attempt.id,
            "started_at": attempt.started_at, "pid": attempt.pid, "log": str(path), "title": title,
            "try": attempt.number,
            "elapsed": round(max(0.0, now - started), 1) if started is not None else None,
            "quiet": None if (q := logs.quiet_seconds(path, now)) is None else round(q, 1),
            "last_line": logs.last_line(path), "tokens_in": tokens_in, "tokens_out": tokens_out}


def fleet_slots(project: Project, store: StoreView, now: float) -> dict[str, Any]:
    """The run's pid, its running attempts by slot (slot_info) and its idle slots' names."""
    running = sorted(store.attempts(running=True), key=lambda a: _slot_order(a.slot))
    run_pid = active_run(project)
    busy = {a.slot.rsplit("/", 1)[-1] for a in running}  # slots may carry their host: "host/w3"
    return {
        "root": str(project.root),
        "run_pid": run_pid,
        "slots": [slot_info(project, store, a, now) for a in running],
        "idle_slots": [f"w{n}" for n in range(1, run_slots(project, run_pid) + 1) if f"w{n}" not in busy]
        if run_pid and run_pid > 0 else [],
    }


def status_report(project: Project, store: StoreView, *, now: float | None = None) -> dict[str, Any]:
    """What the fleet is doing, from the store and the state files (never the run's lock)."""
    now = time.time() if now is None else now
    # Closed in the last hour, read as text from a day before (other offsets than Z sort apart by hours).
    closed = [at for at in store.closed_times(iso_from_epoch(now - 3600 - 86400)) if (epoch(at) or 0) >= now - 3600]
    return {
        **fleet_slots(project, store, now),
        "merging": [t.id for t in store.list_tasks(statuses=[Status.MERGING])],
        "merge_queue": [{"task": m.task_id, "status": m.status, "queued_at": m.queued_at, "note": m.note}
                        for m in store.merges(statuses=[MergeStatus.QUEUED, MergeStatus.MERGING], oldest_first=True)],
        "recent_merges": [{"task": m.task_id, "status": m.status, "ended_at": m.ended_at, "gate_runs": m.gate_runs,
                           "conflict_task": m.conflict_task, "note": m.note}
                          for m in store.merges(limit=50)
                          if m.status not in WAITING_MERGES][:RECENT_MERGES],
        "counts": store.counts(),
        "needs_human": len(store.list_tasks(labels=["needs-human"], include_closed=False)),
        "waiting_on_humans": left_for_humans(store),
        "failed": [{"task": task_id, "reason": failure_reason(found)}
                   for task_id, found in store.failure_reasons(open_only=True, limit=FAILED_LISTED).items()],
        "throughput": {"closed_last_10_min": sum(1 for at in closed if (epoch(at) or 0) >= now - 600),
                       "closed_last_hour": len(closed)},
        "overlaps_avoided": store.event_count("overlap_avoided"),
    }


def _slot_order(name: str) -> tuple[int, str]:
    digits = name.rsplit("/", 1)[-1].lstrip("w")
    return (int(digits), name) if digits.isdigit() else (1 << 30, name)


def print_status(report: dict[str, Any]) -> None:
    pid = report["run_pid"]
    click.echo(f"gasworks run: {'active (pid ' + str(pid) + ')' if pid else 'not running'} in {report['root']}")
    for slot in report["slots"]:
        click.echo(f"  {slot['slot']:<4} {slot['task']:<14} attempt {slot['attempt']}  since {slot['started_at']}"
                   + (f"  {oneline(slot['last_line'], 60)}" if slot.get("last_line") else ""))
    for merge in report["merge_queue"]:
        click.echo(f"  merge queue: {merge['task']} {merge['status']}" + (f" ({oneline(merge['note'])})"
                                                                          if merge["note"] else ""))
    click.echo("  " + ", ".join(f"{n} {s}" for s, n in report["counts"].items()))
    for line in report["waiting_on_humans"]:
        click.echo(f"  waits on a human: {oneline(line, 200)}")
    for failed in report.get("failed", []):
        click.echo(f"  last attempt of {failed['task']}: {failed['reason']}")


def watch_view(report: dict[str, Any]) -> Group:
    """`gasworks status --watch`: a row per slot, the merge queue, counts by status and throughput."""
    pid = report["run_pid"]
    header = Text.assemble(("gasworks run: ", "bold"), (f"active (pid {pid})", "green") if pid
                           else ("not running", "yellow"), f" in {report['root']}")
    table = _table("slot", "task", "title", "attempt", "elapsed", "quiet", "tokens in/out", "last log line",
                   wide="last log line")
    for slot in report["slots"]:
        quiet = slot["quiet"]
        attempt = str(slot["attempt"])
        table.add_row(slot["slot"], slot["task"], Text(oneline(slot["title"], 40)), attempt,
                      seconds_text(slot["elapsed"]),
                      Text(seconds_text(quiet), "yellow" if quiet is not None and quiet >= QUIET_WARN_SECONDS else ""),
                      f"{slot['tokens_in']:,}/{slot['tokens_out']:,}", Text(oneline(slot["last_line"], 200)))
    for name in report["idle_slots"]:
        table.add_row(name, Text("idle", "dim"), "", "", "", "", "", "")
    parts: list[Any] = [header, table]
    queue = report["merge_queue"]
    parts.append(Text.assemble(("merge queue: ", "bold"), ", ".join(f"{m['task']} {m['status']}" for m in queue)
                               if queue else ("empty", "dim")))
    for merge in report["recent_merges"]:
        result = f" -> {merge['conflict_task']}" if merge["conflict_task"] else ""
        note = f"  {oneline(merge['note'], 80)}" if merge["note"] and merge["status"] != MergeStatus.LANDED else ""
        style = "green" if merge["status"] == MergeStatus.LANDED else "red"
        parts.append(Text.assemble("  ", (f"{merge['status']:<11}", style), f" {merge['task']}{result}"
                                   f"  (gate runs {merge['gate_runs']}){note}"))
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items())
    through = report["throughput"]
    parts.append(Text.assemble(("tasks: ", "bold"), counts or "none"))
    if report["needs_human"]:
        parts.append(Text(f"{report['needs_human']} blocked task(s) need a human (label needs-human)", "red"))
    parts += [Text(f"  {oneline(line, 200)}", "red") for line in report["waiting_on_humans"]]
    parts += [Text(f"  last attempt of {failed['task']}: {failed['reason']}", "yellow")
              for failed in report.get("failed", [])]
    parts.append(Text.assemble(("throughput: ", "bold"), f"{through['closed_last_10_min']} closed in the last "
                               f"10 min, {through['closed_last_hour']} in the last hour"))
    return Group(*parts)


def watch(project: Project, store: StoreView, *, interval: float, count: int | None, as_json: bool, live: bool,
          sleep: Callable[[float], None] = time.sleep, console: Console | None = None) -> None:
    """Show the status again every `interval` seconds (`count` times, or until Ctrl+C): a live
    view on a terminal, else the text report (or one JSON object per line with as_json)."""
    shown = 0
    viewer = Live(console=console or Console(), auto_refresh=False) if live and not as_json else None
    try:
        if viewer:
            viewer.start()
        while count is None or shown < count:
            report = status_report(project, store)
            if as_json:
                click.echo(json.dumps(report, ensure_ascii=False))
            elif viewer:
                viewer.update(watch_view(report), refresh=True)
            else:
                print_status(report)
            shown += 1
            if count is None or shown < count:
                sleep(interval)
    finally:
        if viewer:
            viewer.stop()
