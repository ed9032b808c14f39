"""The dashboard as a user sees it: `gasworks web` as a real process on a free 127.0.0.1 port, driven
by a real headless Chromium (Debian's /usr/bin/chromium through playwright; browsers cannot be
downloaded here). Under CI=true a missing browser fails these tests instead of skipping them.

A screenshot of the board is saved to $GASWORKS_ARTIFACTS (default: test-artifacts/ in the
repository, git-ignored); its path is printed.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gasworks.store.sqlite import SQLiteStore
from tests.faults.test_containment_web import stop
from tests.test_run_process import create, start_run, statuses, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
WAIT_MS = 30_000  # the longest any one expectation waits (a ceiling, never a measured time)


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}: scripts/system-deps installs it (CI is set, so this is not skipped)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


@pytest.fixture
def served(project_dir):
    """`gasworks web --port 0` in the project; yields the URL with the token it prints on its first line."""
    proc = subprocess.Popen([sys.executable, "-m", "gasworks", "web", "--port", "0"], cwd=project_dir,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("gasworks dashboard: http://127.0.0.1:"), first + proc.stdout.read()
        yield first.split()[2]
    finally:
        stop(proc)


@pytest.fixture
def server(served, page):
    """The dashboard's URL, `page` signed in: it opened the printed URL, which leaves the cookie and
    moves on to the page without the token."""
    base = served.split("?", 1)[0]
    page.goto(served)
    page.wait_for_url(base)
    return base


def artifact(name: str) -> Path:
    folder = Path(os.environ.get("GASWORKS_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def save_screenshot(page, name: str) -> None:
    shot = artifact(name)
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def gasworks(root: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "gasworks", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


def store_of(root: Path) -> SQLiteStore:
    return SQLiteStore(root / ".gasworks" / "gasworks.db")


def test_the_board_follows_a_running_fleet_live(project_dir, server, page):
    from playwright.sync_api import expect

    first = create(project_dir, "First, slow", sleep=1.5)
    second = create(project_dir, "Second, slow", sleep=1.5)
    third = gasworks(project_dir, "create", "Third, after the first", "-q", "--deps", first)
    page.goto(server)
    expect(page.locator("#column-ready")).to_contain_text(first)
    expect(page.locator("#column-ready")).to_contain_text(second)
    expect(page.locator(f"#card-{third}")).to_contain_text(f"after {first}")  # its dependency, on the board
    expect(page.locator("#column-waiting")).to_contain_text(third)
    page.evaluate("window.__notReloaded = true")

    run = start_run(project_dir, "--workers", "2", "--until-done")
    try:
        expect(page.locator("#run")).to_contain_text("active")
        expect(page.locator("#slots")).to_contain_text(first)  # the slot shows what it works on, live
        expect(page.locator("#slots")).to_contain_text("fake agent on")  # its log tail
        expect(page.locator("#slots .slot")).to_have_count(2)  # the run's two slots (--workers 2)
        save_screenshot(page, "dashboard-running.png")
        for task_id in (first, second, third):
            expect(page.locator("#column-closed")).to_contain_text(task_id)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, out
    assert page.evaluate("window.__notReloaded") is True  # all of it arrived without a reload
    expect(page.locator("#queue")).to_contain_text("landed")
    expect(page.locator("#run")).to_contain_text("not running")
    save_screenshot(page, "dashboard.png")


def test_creating_a_task_in_the_page_creates_it_in_the_store(project_dir, server, page):
    from playwright.sync_api import expect

    page.goto(server)
    page.fill("#new-task input[name=title]", "Made in the browser <i>really</i>")
    page.fill("#new-task textarea[name=description]", "with a description")
    page.select_option("#new-task select[name=priority]", "1")
    page.click("#new-task button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Made in the browser <i>really</i>")  # shown as text
    task_id = page.url.rsplit("/", 1)[1]
    store = store_of(project_dir)
    try:
        task = store.get_task(task_id)
        assert (task.title, task.description, task.priority) == ("Made in the browser <i>really</i>",
                                                                 "with a description", 1)
        assert page.locator("h1 i").count() == 0

        page.select_option("select[name=priority]", "0")
        page.click("text=Set priority")
        expect(page.locator("main > p").first).to_contain_text("P0")
        assert store.get_task(task_id).priority == 0
        page.on("dialog", lambda dialog: dialog.accept())  # "Cancel gw-...?"
        page.click("text=Cancel")
        expect(page.locator("main > p").first).to_contain_text("closed")
        assert statuses(project_dir)[task_id] == "closed"
    finally:
        store.close()


def test_a_request_without_the_token_is_refused(project_dir, server, page):
    token = (project_dir / ".gasworks" / "web-token").read_text(encoding="utf-8").strip()
    assert token and token not in page.content() and page.locator("input[name=token]").count() == 0
    before = statuses(project_dir)
    bare = httpx.post(server + "tasks", data={"title": "forged"})
    forged = httpx.post(server + "api/tasks", json={"title": "forged"}, headers={"origin": "http://evil.test",
                                                                                 "x-gasworks-token": token})
    assert (bare.status_code, forged.status_code) == (403, 403)
    assert statuses(project_dir) == before
    good = httpx.post(server + "api/tasks", json={"title": "with the token"}, headers={"x-gasworks-token": token})
    assert good.status_code == 201 and statuses(project_dir)[good.json()["id"]] == "open"


def test_open_signs_the_browser_in_without_the_token_on_a_command_line(project_dir, page, tmp_path):
    """`gasworks web --open` hands the browser a 0600 page that forwards to the URL with the token (a
    browser's command line is visible to every account in `ps`, the file is not); it lands signed in."""
    from playwright.sync_api import expect

    opened = tmp_path / "opened.txt"  # what the "browser" ($BROWSER) was started with
    recorder = tmp_path / "browser.py"
    recorder.write_text(f"import sys\nopen({str(opened)!r}, 'w').write(repr(sys.argv[1:]))\n", encoding="utf-8")
    env = {**os.environ, "BROWSER": f"{sys.executable} {recorder} %s"}
    proc = subprocess.Popen([sys.executable, "-m", "gasworks", "web", "--port", "0", "--open"], cwd=project_dir,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        served = proc.stdout.readline().split()[2]
        wait_for(lambda: opened.exists() and opened.read_text(encoding="utf-8"), WAIT_MS / 1000, "the browser")
        [launcher] = ast.literal_eval(opened.read_text(encoding="utf-8"))
        assert launcher.startswith("file://") and "token" not in launcher  # tests/faults/test_containment_web.py
        page.goto(launcher)
        page.wait_for_url(served.split("?", 1)[0])
        page.fill("#new-task input[name=title]", "Made after --open")
        page.click("#new-task button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Made after --open")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_task_text_with_html_is_shown_as_text_in_the_browser(project_dir, server, page):
    from playwright.sync_api import expect

    hostile = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    task_id = gasworks(project_dir, "create", hostile, "-d", hostile, "-q")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for url in (server, f"{server}tasks/{task_id}"):
        page.goto(url)
        expect(page.locator("main")).to_contain_text(hostile)  # the text, shown as text
        assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
        assert page.evaluate("window.__xss") is None and dialogs == []


BOARD_TASKS = 10_000


def _navigation(page) -> dict:
    """The browser's own timing of the last page load, in milliseconds."""
    timing = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
    entry = __import__("json").loads(timing)
    return {"server_ms": round(entry["responseStart"] - entry["requestStart"], 1),
            "load_ms": round(entry["loadEventEnd"] - entry["startTime"], 1), "bytes": entry["transferSize"]}


def test_a_board_of_10000_tasks_loads_searches_and_pages(project_dir, server, page):
    """Ten thousand tasks, as an imported tracker has them; the times are printed and kept in
    test-artifacts/board-10000.json (measured, never asserted)."""
    import json
    import time

    from playwright.sync_api import expect

    from tests.test_web_board import many_tasks

    store = store_of(project_dir)
    try:
        store.import_tasks(many_tasks(BOARD_TASKS), prefix="gw", actor="tester")
        parsers = len(store.list_tasks(text="parser"))
    finally:
        store.close()
    started = time.perf_counter()
    page.goto(server)
    expect(page.locator("#matched")).to_have_text(f"{BOARD_TASKS} task(s)")
    loaded = {"wall_ms": round((time.perf_counter() - started) * 1000, 1), **_navigation(page)}
    assert page.locator(".card").count() <= 7 * 50  # a page per column, not ten thousand cards
    save_screenshot(page, "board-10000.png")

    page.fill("#filter input[name=q]", "parser")
    started = time.perf_counter()
    page.click("#filter button[type=submit]")
    expect(page.locator("#matched")).to_have_text(f"{parsers} task(s)")
    searched = {"wall_ms": round((time.perf_counter() - started) * 1000, 1), **_navigation(page)}
    assert page.locator("#filter input[name=q]").input_value() == "parser"
    closed = page.locator("#column-closed")
    first = closed.locator(".card").first.get_attribute("id")
    assert "parser" in closed.locator(".card .title").first.inner_text()

    started = time.perf_counter()
    closed.locator("a.next").first.click()
    expect(page.locator("#column-closed .pager").first).to_contain_text("page 2 of")
    paged = {"wall_ms": round((time.perf_counter() - started) * 1000, 1), **_navigation(page)}
    assert page.locator("#column-closed .card").first.get_attribute("id") != first
    assert "q=parser" in page.url and "page_closed=2" in page.url
    expect(page.locator("#matched")).to_have_text(f"{parsers} task(s)")  # the search stays

    timings = {"tasks": BOARD_TASKS, "load": loaded, "search": searched, "next_page": paged}
    artifact("board-10000.json").write_text(json.dumps(timings, indent=2), encoding="utf-8")
    print(f"board of {BOARD_TASKS} tasks: {json.dumps(timings)}")
