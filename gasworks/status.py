"""Showing the fleet: the live view of `gasworks run` and the report of `gasworks status`."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from gasworks.output import oneline
from gasworks.project import Project, active_run
from gasworks.store.sqlite import SQLiteStore


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
            self.live.__exit__(*exc)

    def say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.live:
            self.console.print(f"[dim]{stamp}[/dim] {line}", markup=True, highlight=False, soft_wrap=True)
        else:
            click.echo(f"{stamp} {line}")

    def update(self, snapshot: dict[str, Any]) -> None:
        now = time.monotonic()
        if self.live and now - self._last >= 0.25:
            self._last = now
            self.live.update(fleet_table(snapshot))


def fleet_table(snapshot: dict[str, Any]) -> Group:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("slot", "task", "attempt", "elapsed", "last log line"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=None if column != "last log line"
                         else 60)
    for slot in snapshot["slots"]:
        if slot["task"]:
            table.add_row(slot["slot"], slot["task"], str(slot["attempt"]), f"{slot['elapsed']:.0f}s",
                          oneline(slot["last_line"], 60))
        else:
            table.add_row(slot["slot"], "[dim]idle[/dim]", "", "", "")
    counts = ", ".join(f"{n} {s}" for s, n in snapshot["counts"].items())
    held = [f"[yellow]merge waits[/yellow] {task}: {why}" for task, why in snapshot["held"].items()]
    return Group(table, counts, *held)


def status_report(project: Project, store: SQLiteStore) -> dict[str, Any]:
    running = store.attempts(running=True)
    return {
        "root": str(project.root),
        "run_pid": active_run(project),
        "slots": [{"slot": a.slot, "task": a.task_id, "attempt": a.id, "started_at": a.started_at, "pid": a.pid,
                   "log": a.log_path} for a in running],
        "merging": [t.id for t in store.list_tasks(statuses=["merging"])],
        "merge_queue": [{"task": m.task_id, "status": m.status, "queued_at": m.queued_at, "note": m.note}
                        for m in store.merges(statuses=["queued", "merging"], oldest_first=True)],
        "counts": store.counts(),
        "overlaps_avoided": store.event_count("overlap_avoided"),
    }


def print_status(report: dict[str, Any]) -> None:
    pid = report["run_pid"]
    click.echo(f"gasworks run: {'active (pid ' + str(pid) + ')' if pid else 'not running'} in {report['root']}")
    for slot in report["slots"]:
        click.echo(f"  {slot['slot']:<4} {slot['task']:<14} attempt {slot['attempt']}  since {slot['started_at']}")
    for merge in report["merge_queue"]:
        click.echo(f"  merge queue: {merge['task']} {merge['status']}" + (f" ({merge['note']})" if merge["note"]
                                                                          else ""))
    click.echo("  " + ", ".join(f"{n} {s}" for s, n in report["counts"].items()))
