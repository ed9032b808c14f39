"""The screens `gasworks top` opens over the fleet view: confirm, log, diff, merge queue."""

from __future__ import annotations

import collections
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Log, RichLog, Static
from textual.worker import get_current_worker

from gasworks import logs
from gasworks.errors import GasworksError
from gasworks.models import MergeStatus
from gasworks.output import oneline, safe
from gasworks.project import Project
from gasworks.tui.layout import DIFF_LINES, LOG_LINES


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
        queue = self.store.merges(statuses=[MergeStatus.QUEUED, MergeStatus.MERGING], oldest_first=True)
        done = [m for m in self.store.merges(limit=50) if m.status not in (MergeStatus.QUEUED, MergeStatus.MERGING)]
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
