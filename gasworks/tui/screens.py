"""The screens `gasworks top` opens over the fleet view: confirm, a reviewer's note, log, diff, merge
queue; and what the views with keys on a task share."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Log, RichLog, Static
from textual.worker import get_current_worker

from gasworks import logs, review
from gasworks.errors import GasworksError
from gasworks.models import MergeStatus, Task
from gasworks.output import oneline, safe
from gasworks.project import Project
from gasworks.tui.layout import DIFF_LINES, LOG_LINES
from gasworks.web import actions

NOTE_HINT = "Enter: back to the fleet with this note. Escape: it keeps waiting."
REVIEW_KEYS = "waits for review: a approves, x rejects"


class Confirm(ModalScreen[bool]):
    """Asks before a change that ends work or lands it: y goes on, n or Escape leaves things as they are."""

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


class NoteInput(ModalScreen[str | None]):
    """Asks for the note a rejection sends to the agent's next attempt: Enter sends it (not while
    empty), Escape leaves the branch waiting."""

    BINDINGS = [Binding("escape", "dismiss", "back")]
    DEFAULT_CSS = "NoteInput { align: center middle; } NoteInput > Vertical { width: 90%; max-width: 100; " \
                  "height: auto; border: round $warning; padding: 0 1; background: $surface; }"

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"reject {self.task_id}: what should its next attempt change?", markup=False)
            yield Input(placeholder="a note for the agent")
            yield Static(NOTE_HINT, id="hint", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        note = event.value.strip()
        if note:
            self.dismiss(note)
        else:
            self.query_one("#hint", Static).update(Text("a rejection needs a note saying what to change", "bold red"))


class TaskKeys(Screen[None]):
    """A view whose keys act on the task of its selected row (the fleet view, the merge list): each
    change is one store transaction through the functions the CLI and the dashboard use, a refusal is
    said in a notification, and a question asked acts on the task it named, whatever row the view's
    refreshes select meanwhile."""

    def __init__(self, project: Project, store: Any, actor: str, interval: float) -> None:
        super().__init__()
        self.project, self.store, self.actor, self.interval = project, store, actor, interval

    def selected(self) -> str | None:
        """The task of the selected row; None when there is none."""
        raise NotImplementedError

    def reload(self) -> object:  # the fleet view's reads in a worker: it returns the Worker
        """Read the store again and show what changed."""
        raise NotImplementedError

    def _with_task(self) -> str | None:
        task_id = self.selected()
        if task_id is None:
            self.notify("select a task first (arrows; Tab switches tables)", severity="warning")
        return task_id

    def _change(self, verb: str, task_id: str, change: Callable[[str], Task], *, own: bool = False) -> None:
        """change(task_id) in one transaction, as the CLI's commands: a batch of the store, unless it
        opens its own (own=True: a batch does not nest)."""
        try:
            with contextlib.nullcontext() if own else self.store.batch():
                task = change(task_id)
        except GasworksError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"{verb} {task.id}: now {task.status}, P{task.priority}")
        self.reload()

    def _act(self, verb: str, change: Callable[[str], Task]) -> None:
        task_id = self._with_task()
        if task_id is not None:
            self._change(verb, task_id, change)

    def _asked(self, question: str, verb: str, change: Callable[[str], Task], *, own: bool = False) -> None:
        """Ask first (question's {} is the selected task), then change the task asked about."""
        task_id = self._with_task()
        if task_id is not None:
            self.app.push_screen(Confirm(question.format(task_id)),
                                 lambda yes: self._change(verb, task_id, change, own=own) if yes else None)

    def _in_review(self) -> str | None:
        """The selected task when its branch waits for review; else None, and why said."""
        task_id = self._with_task()
        if task_id is not None:
            try:
                review.waiting(self.store, self.store.resolve_id(task_id))
            except GasworksError as exc:
                self.notify(str(exc), severity="error")
                return None
        return task_id

    def action_diff(self) -> None:
        task_id = self._with_task()
        if task_id is not None:
            self.app.push_screen(DiffScreen(self.project, self.store, task_id))

    def action_approve(self) -> None:
        if self._in_review() is not None:
            self._asked("approve {}? (its branch joins the merge queue and lands once the gate passes)",
                        "approved", lambda t: actions.approve(self.store, t, self.actor), own=True)

    def action_reject(self) -> None:
        task_id = self._in_review()
        if task_id is not None:
            self.app.push_screen(NoteInput(task_id), lambda note: self._change(
                "rejected", task_id, lambda t: actions.reject(self.store, t, note, self.actor), own=True)
                if note else None)


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


class MergesScreen(TaskKeys):
    """The branches waiting for review, the merge queue (oldest first) and the latest results, as
    `gasworks merges`; d shows a row's diff, a approves and x rejects a branch waiting for review."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back"), Binding("d", "diff", "diff"),
                Binding("a", "approve", "approve"), Binding("x", "reject", "reject")]

    def compose(self) -> ComposeResult:
        yield Static("waiting for review, the merge queue, then the latest results", markup=False)
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for heading in ("#", "task", "status", "gate runs", "note"):
            table.add_column(heading, key=heading)
        self.reload()
        self.set_interval(self.interval, self.reload)

    def reload(self) -> None:
        review = self.store.merges(statuses=[MergeStatus.REVIEW], oldest_first=True)
        queue = self.store.merges(statuses=[MergeStatus.QUEUED, MergeStatus.MERGING], oldest_first=True)
        done = [m for m in self.store.merges(limit=50)
                if m.status not in (MergeStatus.QUEUED, MergeStatus.MERGING, MergeStatus.REVIEW)]
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for merge in [*review, *queue, *done]:
            note = REVIEW_KEYS if merge.status == MergeStatus.REVIEW else merge.note
            table.add_row(str(merge.id), merge.task_id, merge.status, str(merge.gate_runs),
                          Text(oneline(note, 300)), key=str(merge.id))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        return str(table.get_row_at(table.cursor_row)[1]) if table.row_count else None
