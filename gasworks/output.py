"""How the CLI shows things: one-line task rows, details, trees, JSON and JSONL files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from gasworks.beads import dumps, memory_line, task_to_record
from gasworks.models import MergeStatus, Status, Task, parse_time

if TYPE_CHECKING:
    from gasworks.records import Attempt, Event, Merge

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STATUS_COLORS: dict[str, str] = {Status.OPEN: "green", Status.IN_PROGRESS: "yellow", Status.MERGING: "cyan",
                                  Status.BLOCKED: "red", Status.CLOSED: "bright_black"}


def safe(text: str) -> str:
    """Text as it is, except control characters (terminal escapes, NUL), shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def oneline(text: str, width: int = 100) -> str:
    flat = safe(text.replace("\r\n", "\n").replace("\n", " \u23ce "))
    return flat if len(flat) <= width else flat[: width - 1] + "\u2026"


def failure_reason(found: tuple[str, str] | None) -> str:
    """The one line that says why a task's latest attempt failed, from store.failure_reasons()."""
    if not found:
        return ""
    outcome, note = found
    return oneline(f"{outcome}: {note}" if note else outcome, 300)


def task_line(task: Task) -> str:
    status = click.style(f"{task.status:<11}", fg=_STATUS_COLORS.get(task.status))
    labels = f"  [{', '.join(safe(label) for label in task.labels)}]" if task.labels else ""
    return f"{task.id:<14} P{task.priority}  {task.issue_type:<7} {status} {oneline(task.title)}{labels}"


@contextlib.contextmanager
def progress(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner on stderr while long work runs, only on a terminal and never in --json mode."""
    if quiet or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


class Phases:
    """What long work is doing now and for how long: a live line on a terminal; elsewhere a line on
    stderr when the phase changes and every `every` seconds while it lasts, so a log shows it too."""

    def __init__(self, first: str, every: float = 15.0) -> None:
        import threading

        self.text, self.every = first, every
        self.since = self.said = time.monotonic()
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.status: Any = None
        if sys.stderr.isatty():
            from rich.console import Console

            self.status = Console(stderr=True).status(first)
        self.ticker = threading.Thread(target=self._tick, name="gasworks-progress", daemon=True)

    def __enter__(self) -> Phases:
        if self.status is not None:
            self.status.start()
        self._show(force=True)
        self.ticker.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.ticker.join()
        if self.status is not None:
            self.status.stop()

    def __call__(self, text: str) -> None:
        """The next phase."""
        with self.lock:
            self.text, self.since = text, time.monotonic()
        self._show(force=True)

    def _tick(self) -> None:
        while not self.stopped.wait(1.0):
            self._show()

    def _show(self, force: bool = False) -> None:
        with self.lock:
            now = time.monotonic()
            elapsed = now - self.since
            line = f"{self.text} ({elapsed:.0f} s)" if elapsed >= 1 else f"{self.text}..."
            if self.status is not None:
                self.status.update(line)
            elif force or now - self.said >= self.every:
                self.said = now
                click.echo(line, err=True)


def no_phases(_text: str) -> None:
    """Phases for --json: nothing on screen."""


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def emit_tasks(tasks: list[Task], as_json: bool, *, empty: str) -> None:
    if as_json:
        emit_json([task_to_record(t) for t in tasks])
        return
    if not tasks:
        click.echo(empty, err=True)
    for task in tasks:
        click.echo(task_line(task))


def event_dict(event: Event) -> dict[str, Any]:
    return {"id": event.id, "task_id": event.task_id, "kind": event.kind, "actor": event.actor,
            "old": event.old_value, "new": event.new_value, "detail": event.detail, "at": event.created_at}


def attempt_record(attempt: Attempt, log: Path, now: float) -> dict[str, Any]:
    """One attempt as `show --json` and the dashboard give it: when, how long, how it ended, tokens, log."""
    start = parse_time(attempt.started_at).timestamp() if attempt.started_at else None
    end = parse_time(attempt.ended_at).timestamp() if attempt.ended_at else None
    return {"id": attempt.id, "number": attempt.number, "slot": attempt.slot, "started_at": attempt.started_at,
            "ended_at": attempt.ended_at, "seconds": round((end or now) - start, 1) if start is not None else None,
            "outcome": attempt.outcome or "running", "exit_code": attempt.exit_code, "note": attempt.note,
            "branch": attempt.branch, "base_commit": attempt.base_commit, "commits": list(attempt.commits),
            "tokens_in": attempt.tokens_in, "tokens_out": attempt.tokens_out, "log": str(log)}


def print_task_details(details: dict[str, Any]) -> None:
    click.echo(f"{details['id']}: {oneline(details['title'], 200)}")
    click.echo(f"  status {details['status']}  priority P{details['priority']}  type {details['issue_type']}"
               + (f"  assignee {safe(details['assignee'])}" if details.get("assignee") else ""))
    click.echo(f"  created {details['created_at']}  updated {details['updated_at']}"
               + (f"  closed {details['closed_at']} ({safe(details.get('close_reason', ''))})"
                  if details.get("closed_at") else ""))
    if details.get("reason"):
        click.echo(f"  reason: {details['reason']}")
    if details.get("labels"):
        click.echo(f"  labels: {', '.join(safe(label) for label in details['labels'])}")
    if details["blocked_by"]:
        click.echo(f"  blocked by: {', '.join(details['blocked_by'])}")
    elif details["blocked"]:
        click.echo("  blocked: through a parent that waits on unfinished work (see `gasworks dep tree`)")
    for dep in details.get("dependencies", []):
        click.echo(f"  depends on {dep['depends_on_id']} ({dep['type']})")
    for dep in details["dependents"]:
        click.echo(f"  needed by {dep['id']} ({dep['type']})")
    for name, heading in (("description", "Description"), ("design", "Design"),
                          ("acceptance_criteria", "Acceptance criteria"), ("notes", "Notes")):
        if details.get(name):
            click.echo(f"\n{heading}:\n{safe(details[name])}")
    if details.get("attempts"):
        click.echo("\nAttempts:")
        for one in details["attempts"]:
            exit_code = "" if one["exit_code"] is None else f"  exit {one['exit_code']}"
            took = "" if one["seconds"] is None else f"  {one['seconds']:.0f} s"
            tokens = f"  {one['tokens_in']:,}/{one['tokens_out']:,} tokens" if one["tokens_in"] else ""
            click.echo(f"  {one['number']:>2}  {one['outcome']:<13}{exit_code}{took}{tokens}  {one['started_at']}")
            if one["note"]:
                click.echo(f"      {oneline(one['note'], 160)}")
            click.echo(f"      log: {one['log']}")
    if details.get("comments"):
        click.echo("\nComments:")
        for comment in details["comments"]:
            click.echo(f"  {comment['created_at']}  {safe(comment['author'])}")
            for line in comment["text"].splitlines() or [""]:
                click.echo(f"    {safe(line)}")
    if details["events"]:
        click.echo("\nEvents:")
        for event in details["events"]:
            change = f" {event['old']} -> {event['new']}" if event["old"] or event["new"] else ""
            click.echo(f"  {event['at']}  {event['kind']}{change}  by {safe(event['actor'])}")


def print_tree(node: dict[str, Any], prefix: str = "", last: bool = True, root: bool = True) -> None:
    label = f"{node['id']} ({node['status'] or '?'}) {oneline(node['title'], 80)}"
    if root:
        click.echo(label)
    else:
        repeated = "  (shown above)" if node.get("repeated") else ""
        click.echo(f"{prefix}{'└── ' if last else '├── '}{node['type']}: {label}{repeated}")
    children = node["children"]
    for index, child in enumerate(children):
        extension = "" if root else ("    " if last else "│   ")
        print_tree(child, prefix + extension, index == len(children) - 1, root=False)


def write_jsonl(tasks: Iterable[Task], stream: IO[str], memories: dict[str, str] | None = None) -> int:
    """Tasks, one a line, then memories in the order given (as `bd export` writes them: after the
    issues, by key). The count is of tasks."""
    count = 0
    for task in tasks:
        stream.write(dumps(task) + "\n")
        count += 1
    for key, value in (memories or {}).items():
        stream.write(memory_line(key, value) + "\n")
    stream.flush()
    return count


def write_jsonl_file(tasks: Iterable[Task], target: Path, memories: dict[str, str] | None = None) -> int:
    """Write to a temporary file beside the target, then rename: readers never see half a file."""
    import tempfile  # here: the quick commands never write files

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            count = write_jsonl(tasks, stream, memories)
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return count




def merge_dict(merge: Merge) -> dict[str, Any]:
    return {"id": merge.id, "task_id": merge.task_id, "branch": merge.branch, "head": merge.head,
            "status": merge.status, "queued_at": merge.queued_at, "started_at": merge.started_at,
            "ended_at": merge.ended_at, "wait_seconds": _seconds_between(merge.queued_at, merge.started_at),
            "trial": merge.trial, "gate_runs": merge.gate_runs, "gate_seconds": merge.gate_seconds,
            "batch_size": merge.batch_size, "landed_commit": merge.landed_commit,
            "conflict_task": merge.conflict_task, "note": merge.note}


def _seconds_between(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    return round((parse_time(end) - parse_time(start)).total_seconds(), 3)


def merge_stats(merges: list[Merge], gate: dict[str, float]) -> dict[str, Any]:
    """Gate runs per landed change, conflict and gate-failure rates. `gate` holds the real gate runs
    (a batched run counts once), as the store's gate_run_totals() gives them."""
    landed = sum(1 for m in merges if m.status == MergeStatus.LANDED)
    tried = [m for m in merges if m.trial]
    gate_failed = sum(1 for m in merges if m.status == MergeStatus.GATE_FAILED)
    runs = int(gate["runs"])
    return {"landed": landed, "conflicts": sum(1 for m in tried if m.trial == "conflict"),
            "gate_failed": gate_failed, "gate_runs": runs, "gate_seconds": gate["seconds"],
            "gate_runs_per_landed": round(runs / landed, 3) if landed else None,
            "conflict_rate": round(sum(1 for m in tried if m.trial == "conflict") / len(tried), 3) if tried else None,
            "gate_failure_rate": round(gate_failed / (landed + gate_failed), 3) if landed + gate_failed else None}


def print_merges(queue: list[Merge], done: list[Merge], review: Sequence[Merge] = ()) -> None:
    if review:
        click.echo(f"waiting for review ({len(review)}; gasworks approve ID / reject ID --note TEXT):")
    for m in review:
        click.echo(f"  #{m.id:<5} {m.task_id:<14} {m.branch}  {m.head[:12]}  finished {m.queued_at}")
    click.echo(f"queue ({len(queue)}):" if queue else "queue: empty")
    for m in queue:
        click.echo(f"  #{m.id:<5} {m.task_id:<14} {m.branch}  {m.status}  queued {m.queued_at}"
                   + (f"  ({safe(m.note)})" if m.note else ""))
    if done:
        click.echo("recent:")
    for m in done:
        result = m.landed_commit[:12] if m.landed_commit else m.conflict_task or safe(m.note)
        click.echo(f"  #{m.id:<5} {m.task_id:<14} {m.status:<11} trial {m.trial or '-':<8} "
                   f"gate runs {m.gate_runs} ({m.gate_seconds:.1f} s)  {result}")
