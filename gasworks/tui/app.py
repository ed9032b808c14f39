"""The fleet view of `gasworks top` and its App."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from gasworks.errors import GasworksError
from gasworks.models import MergeStatus, Task
from gasworks.output import oneline
from gasworks.project import Project
from gasworks.tui.layout import (
    PADDING,
    TALL,
    slot_cells,
    slot_columns,
    summary,
    top_report,
)
from gasworks.tui.screens import REVIEW_KEYS, LogScreen, MergesScreen, TaskKeys
from gasworks.web import actions


class FleetScreen(TaskKeys):
    """Progress, the merge queue, the slots with their running tasks, what waits on a person (a
    branch waiting for review too) and, on a tall terminal, the latest merge results. Tab moves
    between these tables; the keys act on the task of the focused table's selected row."""

    BINDINGS = [
        Binding("l", "log", "log"), Binding("d", "diff", "diff"), Binding("s", "stop", "stop"),
        Binding("r", "retry", "retry"), Binding("c", "cancel", "cancel"),
        Binding("plus,equals_sign", "priority(-1)", "prio", key_display="+/-"),  # - is listed with +
        Binding("minus", "priority(1)", "prio-", show=False),
        Binding("a", "approve", "approve"), Binding("x", "reject", "reject"), Binding("m", "merges", "merges"),
    ]
    DEFAULT_CSS = """
    #summary { height: 3; }
    #slots { height: auto; max-height: 70%; }
    #humans, #recent { height: 1fr; }
    #humans-title, #recent-title { height: 1; }
    """

    def __init__(self, project: Project, store: Any, actor: str, interval: float) -> None:
        super().__init__(project, store, actor, interval)
        self.report: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="summary", markup=False)
            yield DataTable(id="slots", cursor_type="row")
            yield Static(id="humans-title", markup=False)
            yield DataTable(id="humans", cursor_type="row")
            yield Static(id="recent-title", markup=False)
            yield DataTable(id="recent", cursor_type="row")
        yield Footer(compact=True)  # all the keys in 80 columns

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
            report = top_report(self.project, self.store, time.time())
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
              [(task, [task, Text(oneline({"held": f"merge held: {why}", "review": REVIEW_KEYS}.get(kind, why), 500))])
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
              [(m.task_id, [m.task_id, Text(m.status, "green" if m.status == MergeStatus.LANDED else "red"),
                            str(m.gate_runs), Text(oneline(m.note, 500))]) for m in merges])

    def selected(self) -> str | None:
        """The task of the focused table's row (the slots' when neither has focus)."""
        focused = self.focused if isinstance(self.focused, DataTable) else self.query_one("#slots", DataTable)
        return _selected(focused)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_log()  # Enter on a row: follow its log

    def action_log(self) -> None:
        task_id = self._with_task()
        if task_id is not None:
            try:
                self.app.push_screen(LogScreen(self.project, self.store, task_id))
            except GasworksError as exc:
                self.notify(str(exc), severity="error")

    def action_merges(self) -> None:
        self.app.push_screen(MergesScreen(self.project, self.store, self.actor, self.interval))

    def action_stop(self) -> None:
        self._asked("stop the agent on {}? (the task becomes blocked; r retries it)", "stopped the agent on",
                    lambda t: actions.stop(self.store, t, self.actor))

    def action_cancel(self) -> None:
        self._asked("cancel {}? (it is closed; its agent stops, its work is not merged)", "cancelled",
                    lambda t: actions.cancel(self.store, t, self.actor))

    def action_retry(self) -> None:
        self._act("retried", lambda t: actions.retry(self.store, t, self.actor))

    def action_priority(self, step: int) -> None:
        def move(task_id: str) -> Task:
            now = self.store.get_task(task_id).priority
            return actions.set_priority(self.store, task_id, str(min(4, max(0, now + step))), self.actor)

        self._act("priority of", move)


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
