"""The dashboard in-process (Starlette's test client): every page and its JSON twin, the token and
origin checks, and task text with HTML in it shown escaped everywhere. The client signs in as a
browser does, from the URL with the token; tests/faults/test_containment_web.py attacks a real server."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from gasworks import git
from gasworks.project import find_project
from gasworks.store import NewTask
from gasworks.web import views
from gasworks.web.app import create_app
from gasworks.web.pages import board, live

TOKEN = "test-token"
HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">&amp; "quoted" \'single\''
ESCAPED_SCRIPT = "&lt;script&gt;window.__xss = 1&lt;/script&gt;"


@pytest.fixture(params=["sqlite", "postgres"])
def project(request, project_dir):
    """Each page on both backends: the dashboard uses the store's public methods only."""
    if request.param == "sqlite":
        return find_project(project_dir)
    return find_project(project_dir, overrides={"store": request.getfixturevalue("pg_url")})


@pytest.fixture
def store(project):
    db = project.open_store()
    yield db
    db.close()


@pytest.fixture
def app(project):
    return create_app(project, token=TOKEN, actor="tester")


@pytest.fixture
def client(app):
    """Signed in: the visit to /?token= leaves the cookie in the client."""
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        assert test_client.get(f"/?token={TOKEN}").status_code == 200
        assert test_client.cookies.get("gasworks-token-80") == TOKEN
        yield test_client


def new(store, title: str, **fields) -> str:
    return store.create_task(NewTask(title, **fields), prefix="gw", actor="tester").id


def finished_attempt(project, store, task_id: str, log: str, *, commit: bool = True) -> int:
    """An attempt as the dispatcher records one: a log file, a commit on its branch, tokens."""
    base = git.rev_parse(project.root, "main")
    attempt = store.start_attempt(task_id, slot="w1", log_path="", branch=f"gasworks/{task_id}", base_commit=base)
    path = project.logs_dir / task_id / f"{attempt.id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(log, encoding="utf-8")
    store.set_attempt_process(attempt.id, 0, None, str(path))
    commits = []
    if commit:
        (project.root / "calc.py").write_text("def sub(a, b):\n    return a - b\n", encoding="utf-8")
        commits = [git.commit_all(project.root, "add sub <b>")]
    store.set_attempt_tokens(attempt.id, 120, 30)
    store.finish_attempt(attempt.id, outcome="success" if commit else "failed", exit_code=0 if commit else 1,
                         commits=commits, note="done")
    return attempt.id


def test_every_page_has_a_json_twin_built_from_the_same_data(client, project, store):
    blocker = new(store, "Write the parser", description="parse it")
    waiting = new(store, "Use the parser", deps=[(blocker, "blocks")])
    attempt = finished_attempt(project, store, blocker, "step 1\nstep 2\n")

    home, home_api = client.get("/"), client.get("/api/")
    assert home.status_code == home_api.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    assert home_api.headers["content-type"] == "application/json"
    columns = {c["name"]: c for c in home_api.json()["board"]["columns"]}
    assert [t["id"] for t in columns["ready"]["tasks"]] == [blocker]
    assert columns["waiting"]["tasks"][0]["depends_on"] == [{"id": blocker, "type": "blocks", "status": "open"}]
    card = re.search(rf'<div class="card" id="card-{waiting}">.*?</div></div>', home.text).group(0)
    assert f'after <a href="/tasks/{blocker}" class="dep-open">{blocker}</a>' in card  # the dependency shows

    page, page_api = client.get(f"/tasks/{blocker}"), client.get(f"/api/tasks/{blocker}")
    data = page_api.json()
    assert data["task"]["title"] == "Write the parser" and data["dependents"] == [{"id": waiting, "type": "blocks"}]
    [shown] = data["attempts"]
    assert (shown["id"], shown["outcome"], shown["log_tail"], shown["tokens_in"]) == (attempt, "success",
                                                                                       ["step 1", "step 2"], 120)
    assert "+    return a - b" in shown["diff"] and "calc.py" in shown["diff"]
    assert "step 2" in page.text and "+    return a - b" in page.text and "needed by" in page.text

    log = client.get(f"/tasks/{blocker}/attempts/{attempt}/log")
    assert log.headers["content-type"].startswith("text/plain") and log.text == "step 1\nstep 2\n"
    assert client.get(f"/api/tasks/{blocker}/attempts/{attempt}/log").json()["lines"] == ["step 1", "step 2"]

    for path in ("/merges", "/stats"):
        assert client.get(path).headers["content-type"].startswith("text/html")
        assert client.get("/api" + path).status_code == 200
    stats = client.get("/api/stats").json()
    assert stats["stats"]["attempts"]["succeeded"] == 1 and len(stats["series"]["buckets"]) == 12
    assert client.get("/stats").text.count("<svg") == 4


def test_missing_things_are_404_in_both_formats(client):
    assert client.get("/tasks/gw-nope").status_code == 404
    assert client.get("/api/tasks/gw-nope").json() == {"error": "no task 'gw-nope'"}
    assert client.get("/static/nope.js").status_code == 404


def test_actions_need_the_token_and_come_from_this_origin(app, client, store):
    before = len(store.list_tasks())
    with TestClient(app, base_url="http://127.0.0.1") as anonymous:
        refused = [
            anonymous.post("/tasks", data={"title": "no token"}),
            anonymous.post("/tasks", data={"title": "token in the form", "token": TOKEN}),  # pages carry none
            anonymous.post("/api/tasks", json={"title": "wrong token"}, headers={"x-gasworks-token": "guess"}),
            anonymous.get("/"),
            client.post("/tasks", data={"title": "other site"}, headers={"origin": "http://evil.test"}),
            client.post("/tasks", data={"title": "other port"}, headers={"sec-fetch-site": "same-site"}),
        ]
    assert [r.status_code for r in refused] == [403] * 6
    assert "token" in refused[0].text and refused[2].json()["error"].startswith("this dashboard needs its token")
    assert len(store.list_tasks()) == before
    evil_host = client.get("/", headers={"host": "evil.test"})  # DNS rebinding: a foreign name for us
    assert evil_host.status_code == 400


def test_actions_go_through_the_store(client, store):
    made = client.post("/tasks", data={"title": "From the form", "description": "d", "priority": "1",
                                       "type": "bug"}, follow_redirects=False)
    assert made.status_code == 303
    task_id = made.headers["location"].rsplit("/", 1)[1]
    task = store.get_task(task_id)
    assert (task.title, task.description, task.priority, task.issue_type) == ("From the form", "d", 1, "bug")

    headers = {"x-gasworks-token": TOKEN}
    api = client.post("/api/tasks", json={"title": "From the API", "deps": task_id}, headers=headers)
    assert api.status_code == 201 and api.json()["dependencies"][0]["depends_on_id"] == task_id
    assert client.post(f"/api/tasks/{task_id}/priority", json={"priority": "P0"}, headers=headers).json()[
        "priority"] == 0
    assert client.post(f"/api/tasks/{task_id}/priority", json={"priority": "9"}, headers=headers).status_code == 400
    cancelled = client.post(f"/api/tasks/{task_id}/cancel", headers=headers).json()
    assert (cancelled["status"], cancelled["close_reason"]) == ("closed", "cancelled from the dashboard")
    assert client.post(f"/api/tasks/{task_id}/cancel", headers=headers).status_code == 409  # closed already

    store.change_labels(task_id, actor="tester", add=["needs-human"])
    retried = client.post(f"/tasks/{task_id}/retry", follow_redirects=False)
    assert retried.status_code == 303
    task = store.get_task(task_id)
    assert task.status == "open" and "needs-human" not in task.labels
    kinds = [(e.kind, e.actor) for e in store.events(task_id)]
    assert ("status", "tester") in kinds  # the store recorded who did it, as for the CLI
    assert client.post("/api/tasks", json={"title": " "}, headers=headers).json() == {
        "error": "a task needs a title"}


def test_task_text_with_html_in_it_is_shown_escaped(client, project, store):
    hostile = new(store, HOSTILE, description=HOSTILE, notes=HOSTILE, labels=["<b>label</b>"], assignee=HOSTILE)
    other = new(store, "plain", deps=[(hostile, "blocks")])
    finished_attempt(project, store, hostile, f"agent says {HOSTILE}\n\x1b[31mred\x1b[0m\n")
    store.close_task(hostile, actor=HOSTILE, reason=HOSTILE)
    pages = [client.get(path).text for path in ("/", f"/tasks/{hostile}", f"/tasks/{other}", "/merges", "/stats")]
    fragments = json.dumps(views.live_fragments(live(project, store), board(store)))
    for text in pages + [fragments]:
        assert "<script>window" not in text and "<img" not in text and "<b>label" not in text
    assert ESCAPED_SCRIPT in pages[0] and ESCAPED_SCRIPT in pages[1]
    assert pages[1].count(ESCAPED_SCRIPT) >= 5  # title, description, notes, close reason, log, actor...
    assert "&lt;b&gt;label&lt;/b&gt;" in pages[1] and "red" in pages[1] and "\x1b" not in pages[1]
    assert client.get(f"/api/tasks/{hostile}").json()["task"]["title"] == HOSTILE  # JSON keeps the text as it is


def test_pages_forbid_inline_script_and_framing(client):
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def test_web_explains_a_busy_port_and_a_missing_extra_in_one_line(gw, monkeypatch):
    import socket
    import sys

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = str(taken.getsockname()[1])
        err = gw("web", "--port", port, code=1).stderr
        assert err.startswith(f"gasworks: error: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1
        assert "pick another --port" in err
    finally:
        taken.close()
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the `web` extra were not installed
    assert gw("web", code=1).stderr == "gasworks: error: the dashboard needs uvicorn: pip install 'gasworks[web]'\n"
