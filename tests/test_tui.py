"""`gasworks top` (gasworks/tui.py), driven headless by Textual's pilot beside a real fleet: `gasworks run`
of the fake agent in a subprocess, as a user runs it in another terminal.

Screenshots of each size (SVG, and the screen as text) are saved to $GASWORKS_ARTIFACTS (default:
test-artifacts/ in the repository, which git ignores), as tui-80x24.svg, tui-200x50.txt, ...
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gasworks.agents import REVIEW_NOTE_HEADING, TASK_FILE
from gasworks.project import find_project
from gasworks.stats import progress
from gasworks.tui import TopApp, slot_columns
from gasworks.web import actions
from tests.fleet import agent_processes, fake_script

ARTIFACTS = Path(os.environ.get("GASWORKS_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
WAIT = 90.0  # seconds any one condition may take on a busy machine


def create(root: Path, title: str, priority: int = 2, labels: str = "", **script) -> str:
    result = subprocess.run([sys.executable, "-m", "gasworks", "create", title, "-q", "-p", str(priority),
                             *(["-d", fake_script(**script)] if script else []), *(["-l", labels] if labels else [])],
                            cwd=root, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Fleet:
    """Tasks on a real `gasworks run` (3 slots): one merged, one given up on (blocked, needs-human,
    with a commit to diff), and three agents that run until stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.add_tasks()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gasworks", "run", "--agent", "fake", "--workers", "3"], cwd=root,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "GASWORKS_MAX_ATTEMPTS": "1", "GASWORKS_RETRY_BACKOFF": "0",
                 "GASWORKS_GRACE_SECONDS": "1"})
        self.project = find_project(root)
        self.store = self.project.open_store()
        wait_for(self.settled, f"the fleet settled: {type(self).__doc__}")

    def add_tasks(self) -> None:
        self.merged = create(self.root, "writes a note", 0, write={"notes/a.txt": "hello\n"})
        self.failed = create(self.root, "fails once", 0, exit=3)
        self.hanging = [create(self.root, f"runs until stopped {n}", hang=True) for n in range(3)]

    def settled(self) -> bool:
        running = {a.task_id for a in self.store.attempts(running=True) if a.pid}
        return (running == set(self.hanging) and self.status(self.merged) == "closed"
                and self.status(self.failed) == "blocked")

    def status(self, task_id: str) -> str:
        return self.store.get_task(task_id).status

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        self.store.close()
        return out


class ReviewFleet(Fleet):
    """Two tasks labelled `review` on a real `gasworks run`: each finished branch waits for a reviewer."""

    def add_tasks(self) -> None:
        self.approved = create(self.root, "to approve", labels="review")
        self.rejected = create(self.root, "to reject", labels="review")

    def settled(self) -> bool:
        return all(self.merge_statuses(task) == ["review"] for task in (self.approved, self.rejected))

    def merge_statuses(self, task_id: str) -> list[str]:
        return [m.status for m in reversed(self.store.merges(task_id=task_id))]  # oldest first


def running(kind: type[Fleet], root: Path):
    fleet = kind(root)
    yield fleet
    out = fleet.stop()
    assert agent_processes(root) == [], out


@pytest.fixture
def fleet(project_dir):
    yield from running(Fleet, project_dir)


@pytest.fixture
def review_fleet(project_dir):
    yield from running(ReviewFleet, project_dir)


def screen_text(app: TopApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def until(pilot, condition: Callable[[], bool], what: str) -> None:
    """Let the app run until condition() holds (it refreshes every 0.2 s here)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, (f"timed out waiting for {what}:\n{screen_text(pilot.app)}\n"
                                             f"said: {getattr(pilot.app, 'said', [])}")
        await pilot.pause(0.05)


def save(app: TopApp, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    app.save_screenshot(f"{name}.svg", str(ARTIFACTS))
    (ARTIFACTS / f"{name}.txt").write_text(screen_text(app) + "\n", encoding="utf-8")


class Top(TopApp):
    """`gasworks top` that also keeps what it said in notifications (toasts are not in the screen's text)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.said: list[str] = []

    def notify(self, message: str, **kwargs) -> None:  # type: ignore[override]
        self.said.append(message)
        super().notify(message, **kwargs)


def said(app: Top, words: str) -> Callable[[], bool]:
    return lambda: any(words in message for message in app.said)


def top(fleet: Fleet) -> Top:
    return Top(fleet.project, fleet.store, actor="tester", interval=0.2)


async def choose(pilot, table, task_id: str) -> None:
    """Focus the fleet view's table (Tab) and move its cursor to task_id's row (arrows), as a person does."""
    app = pilot.app
    if app.focused is not table:
        await pilot.press("tab")
    await until(pilot, lambda: app.focused is table, "the table focused")
    await until(pilot, lambda: task_id in {str(key.value) for key in table.rows}, f"{task_id} listed")
    while app.fleet.selected() != task_id:
        here, there = table.cursor_row, table.get_row_index(task_id)
        await pilot.press("down" if there > here else "up")


FOOTER = "l log d diff s stop r retry c cancel +/- prio a approve x reject m merges q quit"


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_every_running_task_id_is_visible_at_each_size(fleet, size):
    async def scenario() -> None:
        app = top(fleet)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: all(task in screen_text(app) for task in fleet.hanging), "the running ids")
            # every key listed, whole, at 80 columns too (the footer fills in once the bindings are known)
            await until(pilot, lambda: screen_text(app).splitlines()[-1].strip() == FOOTER, "the keys")
            text = screen_text(app)
            save(app, f"tui-{size[0]}x{size[1]}")
            assert "1/5 closed  1 merged  1 failed" in text
            assert "3 running" in text and "merge queue: empty" in text
            assert "needs a human (1):" in text
            assert f"{fleet.failed}  agent exited 3: committed; 1 failed attempts" in text
            rows = [line for line in text.splitlines() if any(task in line for task in fleet.hanging)]
            assert len(rows) == 3 and all(len(line) <= size[0] for line in rows)
            headings = next(line for line in text.splitlines() if line.strip().startswith("slot"))
            assert ("tokens in/out" in headings) == (size[0] == 200)  # dropped first when narrow
            assert "last log line" in headings
            # a tall terminal has room for the latest merge results too
            assert (f"{fleet.merged}  landed" in text) == (size[1] == 50)
            await pilot.press("q")
        assert not app.is_running

    asyncio.run(scenario())


def test_keys_stop_retry_cancel_and_show_diff_log_and_merges(fleet):
    stopped, cancelled, other = fleet.hanging
    store = fleet.store

    async def scenario() -> None:
        app = top(fleet)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.fleet
            slots, humans = screen.query_one("#slots"), screen.query_one("#humans")
            await until(pilot, lambda: slots.row_count == 3, "three slots")

            # s: stop the agent (asked first); the run ends it and records it interrupted
            await choose(pilot, slots, stopped)
            await pilot.press("s")
            await until(pilot, lambda: "stop the agent on " + stopped in screen_text(app), "the question")
            await pilot.press("y")
            await until(pilot, lambda: fleet.status(stopped) == "blocked", "the task blocked")
            wait_for(lambda: store.attempts(stopped)[-1].outcome == "interrupted", "the agent stopped")
            await until(pilot, lambda: "its agent was stopped by tester" in screen_text(app), "the reason shown")
            assert store.get_task(stopped).assignee == ""

            # r on the stopped task (among those needing a human): the fleet runs it again
            await choose(pilot, humans, stopped)
            await pilot.press("r")
            wait_for(lambda: len(store.attempts(stopped)) == 2 and not store.attempts(stopped)[-1].ended_at,
                     "a second attempt")

            # d on the task the fleet gave up on: its attempt's commit
            await choose(pilot, humans, fleet.failed)
            await pilot.press("d")
            await until(pilot, lambda: f"+done by the fake agent: {fleet.failed}" in screen_text(app), "the diff")
            assert f"fake/{fleet.failed}.txt" in screen_text(app)
            await pilot.press("escape")
            # l follows its log, to the attempt's end
            await pilot.press("l")
            await until(pilot, lambda: "-- attempt 1 ended: failed (exit 3)" in screen_text(app), "the log's end")
            await pilot.press("escape")

            # + raises a priority, - lowers it; Enter follows a log
            await choose(pilot, slots, other)
            await pilot.press("plus")
            await until(pilot, lambda: store.get_task(other).priority == 1, "priority 1")
            await pilot.press("minus", "minus")
            await until(pilot, lambda: store.get_task(other).priority == 3, "priority 3")
            await pilot.press("enter")
            await until(pilot, lambda: f"fake agent on {other}: ['hang']" in screen_text(app), "the log")
            await pilot.press("escape")

            # c cancels (asked first): closed, the agent stopped, nothing merged
            await choose(pilot, slots, cancelled)
            await pilot.press("c", "y")
            await until(pilot, lambda: fleet.status(cancelled) == "closed", "the task closed")
            wait_for(lambda: store.attempts(cancelled)[-1].outcome == "interrupted", "its agent stopped")
            assert store.merges(task_id=cancelled) == []

            # r on a running task is refused, and nothing changes
            await choose(pilot, slots, other)
            await pilot.press("r")
            await until(pilot, said(app, "has it already"), "the refusal said")
            assert fleet.status(other) == "in_progress"

            # m: the merge queue and its results; d there shows a merged branch's diff
            await pilot.press("m")
            await until(pilot, lambda: f"{fleet.merged}" in screen_text(app) and "landed" in screen_text(app),
                        "the merge list")
            await pilot.press("d")
            await until(pilot, lambda: "+hello" in screen_text(app), "the merged diff")
            await pilot.press("escape", "escape", "q")
        assert not app.is_running

    asyncio.run(scenario())
    changes = [(e.old_value, e.new_value, e.actor) for e in store.events(stopped) if e.kind == "status"]
    stopped_at = changes.index(("in_progress", "blocked", "tester"))  # oldest first
    assert changes[stopped_at + 1] == ("blocked", "open", "tester")


def test_a_question_acts_on_the_task_it_named_when_its_row_went_meanwhile(fleet):
    """s asked about one agent; before the answer another terminal stopped it, so its row left and
    the cursor fell on another running task: y must not stop that one."""
    named, *others = fleet.hanging
    store = fleet.store

    async def scenario() -> None:
        app = top(fleet)
        async with app.run_test(size=(80, 24)) as pilot:
            slots = app.fleet.query_one("#slots")
            await until(pilot, lambda: slots.row_count == 3, "three slots")
            await choose(pilot, slots, named)
            await pilot.press("s")
            await until(pilot, lambda: f"stop the agent on {named}?" in screen_text(app), "the question")
            with store.batch():
                actions.stop(store, named, "someone else")
            await until(pilot, lambda: named not in {str(key.value) for key in slots.rows}, "its row gone")
            assert app.fleet.selected() in others
            await pilot.press("y")
            await until(pilot, said(app, f"{named} is blocked: no agent works on it"), "the refusal")
            await pilot.press("q")

    asyncio.run(scenario())
    assert [fleet.status(task) for task in others] == ["in_progress", "in_progress"]


async def type_text(pilot, text: str) -> None:
    await pilot.press(*("space" if char == " " else char for char in text))


def test_keys_approve_and_reject_branches_waiting_for_review(review_fleet):
    """x asks for a note and sends the branch back (the run's next attempt reads the note), a and y
    let it into the merge queue (the run lands it); from the fleet view and from the merge list."""
    fleet, store = review_fleet, review_fleet.store
    approved, rejected = fleet.approved, fleet.rejected
    note = "use a constant for the max quota"  # a, x and q are typed into the note, not taken as keys

    async def scenario() -> None:
        app = top(fleet)
        async with app.run_test(size=(80, 24)) as pilot:
            humans = app.fleet.query_one("#humans")
            await until(pilot, lambda: humans.row_count == 2, "both waits listed")
            assert "needs a human (2):" in screen_text(app)
            assert f"{rejected}  waits for review: a approves, x rejects" in screen_text(app)
            save(app, "tui-review-80x24")

            # x asks for a note: not sent while empty, Escape sends nothing
            await choose(pilot, humans, rejected)
            await pilot.press("x")
            await until(pilot, lambda: f"reject {rejected}: what should its next attempt" in screen_text(app),
                        "the note asked for")
            await pilot.press("enter")
            await until(pilot, lambda: "a rejection needs a note" in screen_text(app), "the note required")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.fleet, "back in the fleet view")
            assert fleet.merge_statuses(rejected) == ["review"] and fleet.status(rejected) == "merging"

            # x, a note, Enter: rejected, the task open again with the note as a comment
            await pilot.press("x")
            await until(pilot, lambda: "what should its next attempt" in screen_text(app), "the note asked for")
            await type_text(pilot, note)
            save(app, "tui-reject-80x24")
            await pilot.press("enter")
            await until(pilot, lambda: fleet.merge_statuses(rejected)[:1] == ["rejected"], "the merge rejected")
            assert store.merges(task_id=rejected)[-1].note == note
            assert ("merging", "open", "tester") in [(e.old_value, e.new_value, e.actor)
                                                     for e in store.events(rejected) if e.kind == "status"]
            assert [c.text for c in store.get_task(rejected).comments] == [f"Rejected in review: {note}"]

            # a (asked first) on the other: queued, and the run lands it
            await choose(pilot, humans, approved)
            await pilot.press("a")
            await until(pilot, lambda: f"approve {approved}?" in screen_text(app), "the question")
            await pilot.press("y")
            await until(pilot, lambda: fleet.merge_statuses(approved) != ["review"], "the merge approved")
            assert ("review_approved", "tester") in [(e.kind, e.actor) for e in store.events(approved)]
            await until(pilot, lambda: fleet.status(approved) == "closed", "the approved branch merged")
            assert fleet.merge_statuses(approved) == ["landed"]

            # the run's next attempt at the rejected task read the note, and waits for review again
            await until(pilot, lambda: fleet.merge_statuses(rejected) == ["rejected", "review"],
                        "the second attempt done")
            assert any(f"{REVIEW_NOTE_HEADING}\n{note}" in path.read_text(encoding="utf-8")
                       for path in fleet.root.rglob(TASK_FILE))

            # m: the merge list, what waits for review first; x on a landed row is refused, a approves
            await pilot.press("m")
            await until(pilot, lambda: "a approves, x rejects" in screen_text(app), "the review row")
            save(app, "tui-merges-80x24")
            merges = app.screen
            assert merges.selected() == rejected
            while merges.selected() != approved:
                await pilot.press("down")
            await pilot.press("x")
            await until(pilot, said(app, f"{approved} does not wait for review"), "the refusal")
            assert app.screen is merges
            table = merges.query_one("DataTable")
            while table.cursor_row:  # back to the top row, the branch waiting for review
                await pilot.press("up")
            await pilot.press("a")
            await until(pilot, lambda: f"approve {rejected}?" in screen_text(app), "the question")
            await pilot.press("y")
            await until(pilot, lambda: fleet.status(rejected) == "closed", "the second branch merged")
            assert fleet.merge_statuses(rejected) == ["rejected", "landed"]
            await pilot.press("escape", "q")
        assert not app.is_running

    asyncio.run(scenario())


# -- the parts that need no fleet -----------------------------------------------------------------


def test_narrow_terminals_drop_columns_but_never_the_task_id():
    slots = [{"slot": "w14", "task": "gw-a1b2.10", "tokens_in": 12000, "tokens_out": 345}]
    for width in (200, 120, 80, 60, 40, 20):
        columns = slot_columns(slots, width)
        keys = [key for key, _, _ in columns]
        assert keys[:2] == ["slot", "task"] and columns[1][2] == len("gw-a1b2.10")
        assert sum(size + 2 for _, _, size in columns) <= max(width, 3 + 2 + 10 + 2)
    assert [key for key, _, _ in slot_columns(slots, 80)] == ["slot", "task", "try", "elapsed", "quiet", "title",
                                                              "line"]
    assert "tokens" in [key for key, _, _ in slot_columns(slots, 120)]


def test_eta_comes_from_the_rate_measured_lately():
    counts = {"closed": 10, "open": 4, "in_progress": 2, "blocked": 1, "ready": 4, "waiting": 0}
    now = 10_000.0
    # closes every 60 s in the window: 5 of them from now-300 on -> 4 per 300 s
    shown = progress(counts, merged=9, failed=1, closed_at=[now - 3000, *(now - 300 + 60 * n for n in range(5))],
                     now=now)
    assert (shown["closed"], shown["total"], shown["merged"], shown["failed"], shown["left"]) == (10, 17, 9, 1, 6)
    assert shown["rate_per_minute"] == 0.8 and shown["eta_seconds"] == 450.0
    assert progress(counts, merged=0, failed=0, closed_at=[now - 10], now=now)["eta_seconds"] is None
    assert progress({"closed": 3}, merged=3, failed=0, closed_at=[], now=now)["eta_seconds"] == 0.0


def test_fourteen_slots_and_waiting_tasks_fit_80x24(project_dir):
    """A full fleet's worth of running attempts, recorded as the dispatcher records them."""
    from gasworks.store import NewTask

    project = find_project(project_dir)
    store = project.open_store()
    running = []
    for n in range(1, 15):
        task = store.create_task(NewTask(f"a task with a long title that will not fit {n}"), prefix="gw", actor="t")
        store.claim(task.id, f"gasworks:w{n}", lease_seconds=900)
        store.start_attempt(task.id, slot=f"w{n}", log_path="", branch="b", base_commit="")
        running.append(task.id)
    # an attempt left running on another host's slot: the task is shown once, nothing breaks
    store.start_attempt(running[0], slot="h2/w1", log_path="", branch="b", base_commit="")
    for n in range(4):
        task = store.create_task(NewTask(f"stuck {n}"), prefix="gw", actor="t")
        store.transition(task.id, "blocked", actor="t", reason=f"reason {n}")

    async def scenario() -> None:
        app = TopApp(project, store, actor="tester", interval=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: all(task in screen_text(app) for task in running), "every running id")
            assert "needs a human (4)" in screen_text(app)
            await pilot.press("q")

    asyncio.run(scenario())


def in_terminal(args: list[str], cwd: Path, until_seen: bytes, keys: bytes = b"q") -> tuple[int, bytes]:
    """Run `gasworks ARGS` in a pseudo-terminal of 80x24 until it prints until_seen, then type keys;
    its exit code and all it printed."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "gasworks", *args], cwd=cwd, stdin=side, stdout=side, stderr=side,
                            env={**os.environ, "TERM": "xterm-256color"}, start_new_session=True)
    os.close(side)
    seen, typed = b"", False
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 0.1)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the terminal closed: the program ended
                    break
                if not chunk:
                    break
                seen += chunk
            if not typed and until_seen in seen:
                os.write(main, keys)
                typed = True
            if typed and proc.poll() is not None:
                break
        return proc.wait(timeout=WAIT), seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)


@pytest.mark.parametrize(("args", "keys"), [(["top"], b"q"), (["status", "--watch"], b"\x03")])
def test_top_and_status_watch_open_the_view_on_a_terminal_and_q_or_ctrl_c_quits(project_dir, args, keys):
    create(project_dir, "waits for the fleet")
    code, seen = in_terminal(args, project_dir, until_seen=b"merge queue", keys=keys)
    assert code == 0, seen[-2000:]
    assert b"0/1 closed" in seen and b"Traceback" not in seen


def test_top_without_a_terminal_says_what_to_use_instead(project_dir):
    result = subprocess.run([sys.executable, "-m", "gasworks", "top"], cwd=project_dir, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=WAIT)
    assert result.returncode == 1
    assert result.stderr == "gasworks: error: gasworks top needs a terminal; elsewhere use gasworks status --watch\n"


def test_the_store_counts_merges_and_reads_closing_times_since_a_date(store, make):
    """The two cheap queries the view asks every refresh, on every backend."""
    first, second, third = make("a"), make("b"), make("c")
    landed = store.enqueue_merge(first, "gasworks/a", "0" * 40)
    store.enqueue_merge(second, "gasworks/b", "1" * 40)
    store.update_merge(landed.id, status="landed")
    assert store.merge_counts() == {"landed": 1, "queued": 1}
    store.close_task(first, actor="t")
    store.close_task(third, actor="t")
    closed = {store.get_task(t).closed_at for t in (first, third)}
    assert set(store.closed_times()) == closed
    assert set(store.closed_times(min(closed)[:10])) == closed
    assert store.closed_times("9999-01-01") == []


def test_summary_keeps_to_three_lines_of_the_width_with_a_long_queue_and_many_idle_slots():
    from gasworks.tui import summary

    report = {"progress": progress({"closed": 20, "open": 3}, merged=18, failed=2, closed_at=[0.0, 60.0, 120.0],
                                   now=180.0),
              "run_pid": 4242, "slots": [], "idle_slots": [f"w{n}" for n in range(1, 15)],
              "merge_queue": [(f"gw-{n:04d}", "queued") for n in range(30)]}
    lines = summary(report, 80).plain.split("\n")
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines)
    # 2 closes after the first, in the 180 s since it: 0.67 a minute; 3 tasks left
    assert lines[0].startswith("20/23 closed  18 merged  2 failed  ETA 4m 30s at 0.67/min  \u2588")
    assert lines[1] == "run pid 4242  0 running  idle: w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, +3"
    assert lines[2].startswith("merge queue: gw-0000 queued, gw-0001 queued,") and lines[2].endswith(" more")
    shown = lines[2].count("queued")
    assert lines[2].endswith(f"+{30 - shown} more")
