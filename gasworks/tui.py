"""`gasworks top`: the fleet in an interactive terminal view, built on Textual.

It reads the store and the log files only, so it runs in any terminal beside `gasworks run`, and
changes things only through the functions the CLI and the dashboard use (gasworks.web.actions),
one transaction each: a running fleet sees them in the store, as it sees `gasworks close`.

Needs the `tui` extra (textual); only `gasworks top` (and `status --watch` on a terminal) import it.
"""

from __future__ import annotations

import collections
import functools
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Log, RichLog, Static
from textual.worker import get_current_worker

from gasworks import logs
from gasworks.errors import GasworksError
from gasworks.models import Task, iso_from_epoch
from gasworks.output import oneline, safe
from gasworks.project import Project
from gasworks.stats import ETA_WINDOW_SECONDS, epoch, progress, seconds_text
from gasworks.status import QUIET_WARN_SECONDS, fleet_slots
from gasworks.waits import blocked_reason, needing_humans
from gasworks.web import actions

HUMANS_LISTED = 50   # blocked tasks explained one by one (each reason is read once); the rest are counted
RECENT_LISTED = 20   # merge results shown on a tall terminal
TALL = 34            # rows from which the latest merge results are shown too
LOG_LINES = 2000     # the log view starts with this many of the log's last lines
DIFF_LINES = 5000    # the diff view shows this many lines, then says how many more `gasworks diff` has
PADDING = 2          # cells a table adds around each column

# The slots table's columns: (key, heading, width; 0: flexible). Narrow terminals drop them in
# DROP_ORDER until the rest fit; slot and task are never dropped, and never cut.
COLUMNS = (("slot", "slot", 0), ("task", "task", 0), ("try", "try", 3), ("elapsed", "elapsed", 7),
           ("quiet", "quiet", 7), ("tokens", "tokens in/out", 13), ("title", "title", 0), ("line", "last log line", 0))
DROP_ORDER = ("tokens", "title", "quiet", "try", "elapsed", "line")
FLEXIBLE = {"title": (12, 40), "line": (16, 10_000)}  # (least, most) cells


class Reasons:
    """waits.blocked_reason, remembered per task and update: a blocked task's events are read once,
    not at every refresh."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], str] = {}

    def __call__(self, store: Any, task: Task) -> str:
        key = (task.id, task.updated_at)
        if key not in self.known:
            self.known[key] = blocked_reason(store, task)
        return self.known[key]


def top_report(project: Project, store: Any, reasons: Callable[[Any, Task], str], now: float) -> dict[str, Any]:
    """What the view shows: the slots (as `gasworks status`), progress, the merge queue, and what
    waits on a person (blocked tasks with their reason, held merges)."""
    counts = store.counts()
    since = iso_from_epoch(now - ETA_WINDOW_SECONDS - 86400)[:10]  # a day early: the text may carry an offset
    closed_at = [when for text in store.closed_times(since) if (when := _epoch(text))]
    failed = len(store.list_tasks(labels=["needs-human"], include_closed=False))
    return {**fleet_slots(project, store, now),
            "merge_queue": [(m.task_id, m.status) for m in store.merges(statuses=["queued", "merging"],
                                                                         oldest_first=True)],
            "humans": needing_humans(store, reason=reasons, limit=HUMANS_LISTED),
            "recent": [m for m in store.merges(limit=RECENT_LISTED * 2)
                       if m.status not in ("queued", "merging")][:RECENT_LISTED],
            "blocked": counts.get("blocked", 0),
            "progress": progress(counts, merged=store.merge_counts().get("landed", 0), failed=failed,
                                 closed_at=closed_at, now=now)}


@functools.lru_cache(maxsize=100_000)
def _epoch(text: str) -> float | None:
    """stats.epoch, remembered: the same closing times are read at every refresh."""
    return epoch(text)


def slot_columns(slots: list[dict[str, Any]], width: int) -> list[tuple[str, str, int]]:
    """The slots table's columns that fit `width` cells, as (key, heading, width): slot and task as
    wide as their longest value, the least useful others dropped until the rest fit, the flexible
    ones (title, last log line) sharing what is left."""
    fixed = {key: size for key, _, size in COLUMNS if size}
    fixed["slot"] = max([4, *(len(s["slot"]) for s in slots)])
    fixed["task"] = max([4, *(len(s["task"]) for s in slots)])
    fixed["tokens"] = max([13, *(len(_tokens(s)) for s in slots)])
    keys = [key for key, _, _ in COLUMNS]

    def needed(chosen: list[str]) -> int:
        return sum(fixed.get(key) or FLEXIBLE[key][0] for key in chosen) + PADDING * len(chosen)

    for key in DROP_ORDER:
        if needed(keys) <= width:
            break
        keys.remove(key)
    spare = max(0, width - needed(keys))
    sizes = dict(fixed)
    for key in ("title", "line"):  # the title takes up to a third of what is left, the log line the rest
        if key in keys:
            least, most = FLEXIBLE[key]
            sizes[key] = least + min(most - least, spare // 3 if key == "title" and "line" in keys else spare)
            spare -= sizes[key] - least
    return [(key, heading, sizes[key]) for key, heading, _ in COLUMNS if key in keys]


def _tokens(slot: dict[str, Any]) -> str:
    return f"{slot['tokens_in']:,}/{slot['tokens_out']:,}"


def slot_cells(slot: dict[str, Any], keys: list[str]) -> list[Any]:
    quiet = slot["quiet"]
    cells = {"slot": slot["slot"], "task": slot["task"], "try": str(slot["attempt"]),
             "elapsed": seconds_text(slot["elapsed"]),
             "quiet": Text(seconds_text(quiet), "yellow" if quiet is not None and quiet >= QUIET_WARN_SECONDS else ""),
             "tokens": _tokens(slot), "title": Text(oneline(slot["title"], 200)),
             "line": Text(oneline(slot["last_line"], 500))}
    return [cells[key] for key in keys]


def fit(parts: list[str], width: int, more: str = "+{} more") -> str:
    """As many of parts as fit in width cells, joined by ", ", then how many were left out."""
    shown: list[str] = []
    for number, part in enumerate(parts):
        tail = "" if number == len(parts) - 1 else ", " + more.format(len(parts) - number - 1)
        if len(", ".join([*shown, part]) + tail) > width:
            return ", ".join(shown) + (", " if shown else "") + more.format(len(parts) - number)
        shown.append(part)
    return ", ".join(shown)


def summary(report: dict[str, Any], width: int) -> Text:
    """Three lines: progress with the ETA, the run and its idle slots, the merge queue."""
    done = report["progress"]
    rate = done["rate_per_minute"]
    eta = ("done" if done["eta_seconds"] == 0 else f"ETA {seconds_text(done['eta_seconds'])} at {rate:g}/min"
           if rate else "ETA: measuring")
    head = f"{done['closed']}/{done['total']} closed  {done['merged']} merged  {done['failed']} failed  {eta}"
    bar = min(40, width - len(head) - 3)
    line = Text(head)
    if bar >= 10:
        filled = round(bar * done["closed"] / done["total"]) if done["total"] else 0
        line.append("  ").append("\u2588" * filled, "green").append("\u2591" * (bar - filled), "dim")
    pid = report["run_pid"]
    run = (f"run pid {pid}" if pid else "no run") + f"  {len(report['slots'])} running"
    idle = report["idle_slots"]
    run += f"  idle: {fit(idle, width - len(run) - 8, '+{}')}" if idle else ""
    queue = [f"{task} {status}" for task, status in report["merge_queue"]]
    merges = "merge queue: " + (fit(queue, width - 13) if queue else "empty")
    return Text("\n").join([line, Text(run[:width], "bold" if pid else "yellow"), Text(merges[:width])])


class Confirm(ModalScreen[bool]):
    """Asks before a change that ends work: y goes on, n or Escape leaves things as they are."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]
    DEFAULT_CSS = "Confirm { align: center middle; } Confirm > Static { width: auto; max-width: 90%; " \
                  "border: round $warning; padding: 0 1; background: $surface; }"

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question} [y/n]", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class LogScreen(Screen[None]):
    """An attempt's log, followed as the agent writes it, until it ends or Escape."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, project: Project, store: Any, task_id: str) -> None:
        super().__init__()
        self.project, self.store = project, store
        self.attempt = logs.pick_attempt(store, task_id)
        self.lines: collections.deque[str | None] = collections.deque()  # filled by the follower thread

    def compose(self) -> ComposeResult:
        path = logs.log_path(self.project.logs_dir, self.attempt)
        yield Static(f"{self.attempt.task_id} attempt {self.attempt.number} "
                     f"({self.attempt.outcome or 'running'}): {path}", markup=False)
        yield Log(max_lines=LOG_LINES * 5)
        yield Footer()

    def on_mount(self) -> None:
        self.follow()
        self.set_interval(0.2, self.drain)

    @work(thread=True, exclusive=True)
    def follow(self) -> None:
        worker = get_current_worker()
        for line in logs.attempt_lines(self.store, self.project.logs_dir, self.attempt, last=LOG_LINES,
                                       keep_following=True, given_up=lambda: worker.is_cancelled):
            self.lines.append(line)
        self.lines.append(None)  # the attempt ended

    def drain(self) -> None:
        batch = []
        while self.lines:
            line = self.lines.popleft()
            if line is None:
                ended = logs.pick_attempt(self.store, self.attempt.task_id, self.attempt.number)
                batch.append(f"-- attempt {ended.number} ended: {ended.outcome or 'running'}"
                             + (f" (exit {ended.exit_code})" if ended.exit_code is not None else ""))
            else:
                batch.append(line)
        if batch:
            self.query_one(Log).write_lines(batch)


class DiffScreen(Screen[None]):
    """What a task's attempt changed (as `gasworks diff`), coloured."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, project: Project, store: Any, task_id: str) -> None:
        super().__init__()
        self.project, self.store, self.task_id = project, store, task_id

    def compose(self) -> ComposeResult:
        yield Static(f"{self.task_id}: reading its diff", id="diff-title", markup=False)
        yield RichLog(highlight=False, markup=False, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        try:
            attempt, head, patch = logs.attempt_patch(self.store, self.project.root, self.task_id)
            title = (f"{self.task_id} attempt {attempt.number} ({attempt.outcome or 'running'}): "
                     + (f"{attempt.base_commit[:10]}..{head[:10]}" if patch else "no commits to show"))
        except GasworksError as exc:
            title, patch = f"{self.task_id}: {exc}", ""
        if not get_current_worker().is_cancelled:  # Escape before git answered: nothing to show it in
            self.app.call_from_thread(self.show, title, patch.splitlines())

    def show(self, title: str, lines: list[str]) -> None:
        self.query_one("#diff-title", Static).update(title)
        view = self.query_one(RichLog)
        for line in lines[:DIFF_LINES]:
            style = ("bold" if line.startswith(("diff ", "+++", "---")) else "green" if line.startswith("+")
                     else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
            view.write(Text(safe(line), style))
        if len(lines) > DIFF_LINES:
            view.write(Text(f"... {len(lines) - DIFF_LINES} more lines: gasworks diff {self.task_id}", "yellow"))


class MergesScreen(Screen[None]):
    """The merge queue (oldest first) and the latest results, as `gasworks merges`; d shows a diff."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back"), Binding("d", "diff", "diff")]

    def __init__(self, project: Project, store: Any, interval: float) -> None:
        super().__init__()
        self.project, self.store, self.interval = project, store, interval

    def compose(self) -> ComposeResult:
        yield Static("merge queue, then the latest results", markup=False)
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for heading in ("#", "task", "status", "gate runs", "note"):
            table.add_column(heading, key=heading)
        self.reload()
        self.set_interval(self.interval, self.reload)

    def reload(self) -> None:
        queue = self.store.merges(statuses=["queued", "merging"], oldest_first=True)
        done = [m for m in self.store.merges(limit=50) if m.status not in ("queued", "merging")]
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for merge in [*queue, *done]:
            table.add_row(str(merge.id), merge.task_id, merge.status, str(merge.gate_runs),
                          Text(oneline(merge.note, 300)), key=str(merge.id))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def action_diff(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            self.app.push_screen(DiffScreen(self.project, self.store, str(table.get_row_at(table.cursor_row)[1])))


class FleetScreen(Screen[None]):
    """Progress, the merge queue, the slots with their running tasks, what waits on a person and,
    on a tall terminal, the latest merge results. Tab moves between these tables; the keys act on
    the task of the focused table's selected row."""

    BINDINGS = [
        Binding("l", "log", "log"), Binding("d", "diff", "diff"), Binding("s", "stop", "stop"),
        Binding("r", "retry", "retry"), Binding("c", "cancel", "cancel"),
        Binding("plus,equals_sign", "priority(-1)", "prio+"), Binding("minus", "priority(1)", "prio-"),
        Binding("m", "merges", "merges"),
    ]
    DEFAULT_CSS = """
    #summary { height: 3; }
    #slots { height: auto; max-height: 70%; }
    #humans, #recent { height: 1fr; }
    #humans-title, #recent-title { height: 1; }
    """

    def __init__(self, project: Project, store: Any, actor: str, interval: float) -> None:
        super().__init__()
        self.project, self.store, self.actor, self.interval = project, store, actor, interval
        self.reasons = Reasons()
        self.report: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="summary", markup=False)
            yield DataTable(id="slots", cursor_type="row")
            yield Static(id="humans-title", markup=False)
            yield DataTable(id="humans", cursor_type="row")
            yield Static(id="recent-title", markup=False)
            yield DataTable(id="recent", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(self.interval, self.reload)
        self.query_one("#slots", DataTable).focus()

    def on_resize(self) -> None:
        if self.report:
            self.show(self.report)

    @work(thread=True, exclusive=True, group="reload")
    def reload(self) -> None:
        """Read the store in a thread of its own (a large one, or one across the network, never
        freezes the keys), then show what it read. A store that fails to answer is said, not fatal."""
        try:
            report = top_report(self.project, self.store, self.reasons, time.time())
        except GasworksError as exc:
            report, failed = {}, str(exc)
        else:
            failed = ""
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.shown, report, failed)

    def shown(self, report: dict[str, Any], failed: str) -> None:
        if failed:
            self.notify(f"cannot read the store: {failed}", severity="error")
            return
        self.report = report
        self.show(report)

    def show(self, report: dict[str, Any]) -> None:
        width = self.size.width or self.app.size.width
        self.query_one("#summary", Static).update(summary(report, width))
        columns = slot_columns(report["slots"], width - 2)  # room for a scroll bar
        keys = [key for key, _, _ in columns]
        _fill(self.query_one("#slots", DataTable), columns,
              [(slot["task"], slot_cells(slot, keys)) for slot in report["slots"]])
        humans = report["humans"]
        more = report["blocked"] - sum(1 for kind, _, _ in humans if kind == "blocked")
        self.query_one("#humans-title", Static).update(
            Text(f"needs a human ({len(humans) + more})" + (f", {more} not listed" if more > 0 else "") + ":"
                 if humans else "needs a human: nothing", "bold red" if humans else "dim"))
        table = self.query_one("#humans", DataTable)
        task_width = max([4, *(len(task) for _, task, _ in humans)])
        _fill(table, [("task", "task", task_width), ("why", "why", max(16, width - 2 - task_width - 2 * PADDING))],
              [(task, [task, Text(oneline(why if kind == "blocked" else f"merge held: {why}", 500))])
               for kind, task, why in humans])
        table.display = bool(humans)
        self.show_recent(report["recent"], width)

    def show_recent(self, merges: list[Any], width: int) -> None:
        """On a tall terminal, the latest merge results (d on one shows its task's diff)."""
        tall = (self.size.height or self.app.size.height) >= TALL
        title, table = self.query_one("#recent-title", Static), self.query_one("#recent", DataTable)
        title.display = table.display = tall and bool(merges)
        if not title.display:
            return
        title.update(Text("latest merges:", "bold"))
        task_width = max(4, *(len(m.task_id) for m in merges))
        _fill(table, [("task", "task", task_width), ("status", "result", 11), ("runs", "gate runs", 9),
                      ("note", "note", max(16, width - 2 - task_width - 20 - 4 * PADDING))],
              [(m.task_id, [m.task_id, Text(m.status, "green" if m.status == "landed" else "red"), str(m.gate_runs),
                            Text(oneline(m.note, 500))]) for m in merges])

    def selected(self) -> str | None:
        """The task of the focused table's row (the slots' when neither has focus)."""
        focused = self.focused if isinstance(self.focused, DataTable) else self.query_one("#slots", DataTable)
        return _selected(focused)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_log()  # Enter on a row: follow its log

    def _with_task(self) -> str | None:
        task_id = self.selected()
        if task_id is None:
            self.notify("select a task first (arrows; Tab switches tables)", severity="warning")
        return task_id

    def _change(self, verb: str, change: Callable[[str], Task]) -> None:
        task_id = self._with_task()
        if task_id is None:
            return
        try:
            with self.store.batch():  # one transaction, as the CLI's commands
                task = change(task_id)
        except GasworksError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"{verb} {task.id}: now {task.status}, P{task.priority}")
        self.reload()

    def _confirmed(self, question: str, then: Callable[[], None]) -> None:
        if self.selected() is None:
            self._with_task()
            return
        self.app.push_screen(Confirm(question), lambda yes: then() if yes else None)

    def action_log(self) -> None:
        task_id = self._with_task()
        if task_id is not None:
            try:
                self.app.push_screen(LogScreen(self.project, self.store, task_id))
            except GasworksError as exc:
                self.notify(str(exc), severity="error")

    def action_diff(self) -> None:
        task_id = self._with_task()
        if task_id is not None:
            self.app.push_screen(DiffScreen(self.project, self.store, task_id))

    def action_merges(self) -> None:
        self.app.push_screen(MergesScreen(self.project, self.store, self.interval))

    def action_stop(self) -> None:
        self._confirmed(f"stop the agent on {self.selected()}? (the task becomes blocked; r retries it)",
                        lambda: self._change("stopped the agent on", lambda t: actions.stop(self.store, t, self.actor)))

    def action_cancel(self) -> None:
        self._confirmed(f"cancel {self.selected()}? (it is closed; its agent stops, its work is not merged)",
                        lambda: self._change("cancelled", lambda t: actions.cancel(self.store, t, self.actor)))

    def action_retry(self) -> None:
        self._change("retried", lambda t: actions.retry(self.store, t, self.actor))

    def action_priority(self, step: int) -> None:
        def move(task_id: str) -> Task:
            now = self.store.get_task(task_id).priority
            return actions.set_priority(self.store, task_id, str(min(4, max(0, now + step))), self.actor)

        self._change("priority of", move)


def _selected(table: DataTable) -> str | None:
    if not table.row_count:
        return None
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


def _fill(table: DataTable, columns: list[tuple[str, str, int]], rows: list[tuple[str, list[Any]]]) -> None:
    """Show rows (key, cells) under columns (key, heading, width), the selected row kept selected; a
    key seen again (a task on two hosts' slots) is shown once."""
    keep = _selected(table)
    changed = [(str(c.key.value), c.width) for c in table.columns.values()] != [(k, w) for k, _, w in columns]
    table.clear(columns=changed)
    if changed:
        for key, heading, size in columns:
            table.add_column(heading, width=size, key=key)
    shown: set[str] = set()
    for key, cells in rows:
        if key not in shown:
            shown.add(key)
            table.add_row(*cells, key=key)
    if keep in shown:
        table.move_cursor(row=table.get_row_index(keep))


class TopApp(App[None]):
    """`gasworks top`. q (or Ctrl+C, which ends `status --watch` too) quits from any view; Escape goes back."""

    TITLE = "gasworks top"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("q", "quit", "quit"), Binding("ctrl+c", "quit", "quit", show=False, priority=True)]

    def __init__(self, project: Project, store: Any, *, actor: str, interval: float = 1.0) -> None:
        super().__init__()
        self.fleet = FleetScreen(project, store, actor, interval)

    def on_mount(self) -> None:
        self.push_screen(self.fleet)
