"""Containment of the dashboard (issue 16 item 10): another account on this machine can reach
127.0.0.1 and see every process's command line, but cannot read this account's 0600 files.

A real `gasworks web --port 0` runs in a project (started with umask 000, the most open one); the
tests act as that other account: they fetch every page without credentials and look for the
token in what comes back, try every write without it, with a wrong one, with tokens harvested
from the pages, and with the real cookie sent from another origin (as a browser would send it
along from another site or another port of 127.0.0.1), and check that all are refused and the
store is unchanged. The token file must be 0600, owned by us, and replace whatever was planted
at its path. Then the legitimate flow: the printed URL signs a client in (HttpOnly,
SameSite=Strict cookie) and its writes work.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gasworks import git
from gasworks.project import find_project
from gasworks.store import NewTask
from tests.test_run_process import wait_for

TOKEN_FILE = Path(".gasworks") / "web-token"
FOREIGN_ORIGINS = ["http://evil.test", "http://127.0.0.1:1", "null"]  # another site, another local port, sandboxed
LOOKS_LIKE_A_TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,}")


@dataclass
class Server:
    base: str  # http://127.0.0.1:PORT/
    printed: str  # the URL `gasworks web` printed (with the token)
    proc: subprocess.Popen
    port: int


def start(project_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    proc = subprocess.Popen([sys.executable, "-m", "gasworks", "web", "--port", "0", *args], cwd=project_dir,
                            env={**os.environ, **(env or {})}, umask=0, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = proc.stdout.readline()
    if not first.startswith("gasworks dashboard: http://127.0.0.1:"):
        stop(proc)
        pytest.fail(f"gasworks web did not start: {first}{proc.stdout.read()}")
    printed = first.split()[2]
    base = printed.split("?", 1)[0]
    return Server(base, printed, proc, int(base.rsplit(":", 1)[1].strip("/")))


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def seed(project_dir: Path) -> dict[str, str]:
    """Two tasks (one waits on the other) and an attempt with a log, so every page has something."""
    project = find_project(project_dir)
    store = project.open_store()
    try:
        first = store.create_task(NewTask("Secret plans"), prefix="gw", actor="tester").id
        second = store.create_task(NewTask("After the plans", deps=[(first, "blocks")]), prefix="gw",
                                   actor="tester").id
        attempt = store.start_attempt(first, slot="w1", log_path="", branch=f"gasworks/{first}",
                                      base_commit=git.rev_parse(project.root, "main"))
        log = project.logs_dir / first / f"{attempt.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("agent says hello\n", encoding="utf-8")
        store.set_attempt_process(attempt.id, 0, None, str(log))
        store.finish_attempt(attempt.id, outcome="failed", exit_code=1, note="done")
    finally:
        store.close()
    return {"first": first, "second": second, "attempt": str(attempt.id)}


def snapshot(project_dir: Path) -> tuple:
    """Everything a write could change: each task's fields and labels, and every event."""
    store = find_project(project_dir).open_store()
    try:
        tasks = [(t.id, t.title, t.status, t.priority, tuple(sorted(t.labels)), t.updated_at)
                 for t in store.list_tasks()]
        return tuple(sorted(tasks)), len(store.events(limit=100_000))
    finally:
        store.close()


def stored_token(project_dir: Path) -> str:
    path = project_dir / TOKEN_FILE
    assert path.is_file(), f"{TOKEN_FILE} does not exist: the write token lives nowhere only we can read"
    return path.read_text(encoding="utf-8").strip()


@pytest.fixture
def seeded(project_dir: Path) -> dict[str, str]:
    return seed(project_dir)


@pytest.fixture
def server(project_dir: Path, seeded: dict[str, str]):
    running = start(project_dir)
    yield running
    stop(running.proc)


def anonymous(server: Server, **kwargs) -> httpx.Client:
    """A client of another account: no token, no cookie (only 127.0.0.1, never a proxy)."""
    return httpx.Client(base_url=server.base, trust_env=False, timeout=30, follow_redirects=False, **kwargs)


def every_page(seeded: dict[str, str]) -> list[str]:
    first, attempt = seeded["first"], seeded["attempt"]
    pages = ["/", f"/tasks/{first}", f"/tasks/{seeded['second']}", f"/tasks/{first}/attempts/{attempt}/log",
             "/merges", "/stats"]
    return pages + ["/api" + page for page in pages] + [
        "/static/app.js", "/static/style.css", "/favicon.ico", "/tasks/gw-nope", "/api/tasks/gw-nope", "/nope",
        "/?token=wrong", "/api/?token=", "/tasks"]


def fetch_all(client: httpx.Client, seeded: dict[str, str]) -> dict[str, httpx.Response]:
    """Every page, plus the first event of the live stream (which never ends by itself)."""
    answers = {path: client.get(path) for path in every_page(seeded)}
    with client.stream("GET", "/api/live") as live:
        body = b""
        if live.status_code == 200:
            for chunk in live.iter_bytes():
                body += chunk
                if b"\n\n" in body:
                    break
        else:
            body = live.read()
    answers["/api/live"] = httpx.Response(live.status_code, headers=live.headers, content=body)
    return answers


def writes(seeded: dict[str, str]) -> list[tuple[str, dict]]:
    """Every action, as a form (the pages' way) and as JSON (the API's way)."""
    first = seeded["first"]
    return [("/tasks", {"data": {"title": "forged"}}), ("/api/tasks", {"json": {"title": "forged"}}),
            (f"/tasks/{first}/retry", {"data": {}}), (f"/api/tasks/{first}/retry", {"json": {}}),
            (f"/tasks/{first}/cancel", {"data": {}}), (f"/api/tasks/{first}/cancel", {"json": {}}),
            (f"/tasks/{first}/priority", {"data": {"priority": "0"}}),
            (f"/api/tasks/{first}/priority", {"json": {"priority": "0"}})]


def credentials(server: Server, token: str) -> list[dict]:
    """The ways a request names a token: a form field, the two headers, the cookie, the URL."""
    cookie = f"gasworks-token-{server.port}={token}"
    return [{"form": token}, {"headers": {"x-gasworks-token": token}},
            {"headers": {"authorization": f"Bearer {token}"}}, {"headers": {"cookie": cookie}},
            {"params": {"token": token}}]


def attempt_write(client: httpx.Client, path: str, body: dict, how: dict) -> httpx.Response:
    body = {key: dict(value) for key, value in body.items()}
    if "form" in how:
        body.setdefault("data", body.pop("json", {}))["token"] = how["form"]
    return client.post(path, headers=how.get("headers"), params=how.get("params"), **body)


def test_another_account_reads_no_token_and_no_task(project_dir, seeded, server):
    with anonymous(server) as client:
        answers = fetch_all(client, seeded)
    token = stored_token(project_dir)
    leaks = [path for path, answer in answers.items() if token in answer.text or token in str(answer.headers)]
    assert leaks == [], f"another account reads the token at {leaks}"
    for path, answer in answers.items():
        public = path.startswith(("/static/", "/favicon.ico"))
        assert answer.status_code in ((200, 204) if public else (403,)), (path, answer.status_code, answer.text)
        assert "set-cookie" not in answer.headers, path  # a wrong or missing token signs nobody in
        assert "Secret plans" not in answer.text and "agent says hello" not in answer.text, path
    assert "needs its token" in answers["/"].text and answers["/api/"].json()["error"].startswith("this dashboard")


def test_another_account_cannot_write_without_the_token(project_dir, seeded, server):
    with anonymous(server) as client:
        harvested = {found for path, answer in fetch_all(client, seeded).items() if not path.startswith("/static/")
                     for found in LOOKS_LIKE_A_TOKEN.findall(answer.text)}  # whatever a page shows might be it
        before = snapshot(project_dir)
        tries = [{}] + [how for guess in ["guess", *sorted(harvested)] for how in credentials(server, guess)]
        made = [(path, how, answer.status_code) for path, body in writes(seeded) for how in tries
                if (answer := attempt_write(client, path, body, how)).status_code != 403]
    assert made == [], f"another account's writes went through: {made}"
    assert snapshot(project_dir) == before


def test_the_real_cookie_from_another_origin_is_refused(project_dir, seeded, server):
    """What a browser does on a page of another site (or another port of 127.0.0.1: the same site
    for cookies) that posts to the dashboard: it sends the cookie along, and the Origin."""
    token = stored_token(project_dir)
    before = snapshot(project_dir)
    with anonymous(server, cookies={f"gasworks-token-{server.port}": token}) as browser:
        answers = [(path, origin, browser.post(path, headers={"origin": origin}, **body).status_code)
                   for path, body in writes(seeded) for origin in FOREIGN_ORIGINS]
        answers += [(path, site, browser.post(path, headers={"sec-fetch-site": site}, **body).status_code)
                    for path, body in writes(seeded) for site in ("cross-site", "same-site")]
    assert [a for a in answers if a[2] != 403] == []
    assert snapshot(project_dir) == before


def test_the_token_file_is_ours_alone_and_nothing_else_shows_it(project_dir, server):
    path = project_dir / TOKEN_FILE
    info = os.lstat(path)
    assert stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)  # even though gasworks web ran with umask 000
    token = stored_token(project_dir)
    assert server.printed == f"{server.base}?token={token}"  # the user gets it once, on their terminal
    cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()  # every account can read this
    assert token.encode() not in cmdline
    for other in (project_dir / ".gasworks").rglob("*"):
        if other.is_file() and os.lstat(other).st_mode & 0o044:  # readable by the group or everyone
            assert token.encode() not in other.read_bytes(), other


def test_a_planted_token_file_or_symlink_is_replaced_not_followed(project_dir, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    planted = project_dir / TOKEN_FILE
    planted.symlink_to(victim)  # left by someone who hopes gasworks writes the token through it
    running = start(project_dir)
    try:
        assert victim.read_text(encoding="utf-8") == "keep me\n"
        info = os.lstat(planted)
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        token = stored_token(project_dir)
        with anonymous(running) as client:
            assert client.get(f"/?token={token}").status_code == 200
    finally:
        stop(running.proc)
    planted.unlink()
    planted.write_text("a token everyone can read\n", encoding="utf-8")
    planted.chmod(0o644)
    running = start(project_dir)
    try:
        assert stat.S_IMODE(os.lstat(planted).st_mode) == 0o600
        assert stored_token(project_dir) not in ("a token everyone can read", token)  # new at each start
    finally:
        stop(running.proc)


def test_open_puts_no_token_on_the_browsers_command_line(project_dir, tmp_path):
    opened = tmp_path / "opened.txt"  # what the "browser" ($BROWSER) is started with, as `ps` shows it
    recorder = tmp_path / "browser.py"
    recorder.write_text(f"import sys\nopen({str(opened)!r}, 'w').write(repr(sys.argv[1:]))\n", encoding="utf-8")
    running = start(project_dir, "--open", env={"BROWSER": f"{sys.executable} {recorder} %s"})
    try:
        wait_for(lambda: opened.exists() and opened.read_text(encoding="utf-8"), 30, "the browser to start")
        token = stored_token(project_dir)
        [argument] = ast.literal_eval(opened.read_text(encoding="utf-8"))
        assert token not in argument and argument.startswith("file://")
        launcher = Path(argument.removeprefix("file://"))
        assert stat.S_IMODE(os.lstat(launcher).st_mode) == 0o600 and token in launcher.read_text(encoding="utf-8")
    finally:
        stop(running.proc)


def test_the_printed_url_signs_in_and_then_writes_work(project_dir, seeded, server):
    token = stored_token(project_dir)
    with anonymous(server) as client:
        landing = client.get(server.printed)
        assert landing.status_code == 200 and token not in landing.text
        assert 'http-equiv="refresh" content="0;url=/"' in landing.text  # on to the page without the token
        cookie = landing.headers["set-cookie"]
        assert cookie.startswith(f"gasworks-token-{server.port}={token};")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        board = client.get("/")
        assert board.status_code == 200 and "Secret plans" in board.text and token not in board.text
        own = server.base.rstrip("/")
        made = client.post("/tasks", data={"title": "From the board"}, headers={"origin": own,
                                                                               "sec-fetch-site": "same-origin"})
        assert made.status_code == 303
        task_id = made.headers["location"].rsplit("/", 1)[1]
    with anonymous(server) as script:  # a script of ours: the token from the file, in a header
        priority = script.post(f"/api/tasks/{task_id}/priority", json={"priority": "0"},
                               headers={"authorization": f"Bearer {token}"})
        assert priority.status_code == 200 and priority.json()["priority"] == 0
        cancelled = script.post(f"/api/tasks/{seeded['first']}/cancel", headers={"x-gasworks-token": token})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "closed"
    titles = {t[0]: t for t in snapshot(project_dir)[0]}
    assert titles[task_id][1:4] == ("From the board", "open", 0) and titles[seeded["first"]][2] == "closed"


def test_the_printed_url_answers_at_once(project_dir, seeded):
    """The URL is printed when the server already listens: a client that connects the moment it
    reads it (a script, a busy CI machine) is never refused."""
    import socket

    running = start(project_dir)
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10):
            pass
    finally:
        stop(running.proc)
