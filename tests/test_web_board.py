"""The board at scale: search, filters and paging done in the store, each view with its own URL, the
live stream keeping the view the page asked for. (tests/test_web_browser.py measures 10,000 tasks.)"""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from gasworks.models import Dependency, Task
from gasworks.project import find_project
from gasworks.store.board import BoardFilter
from gasworks.web.app import create_app
from gasworks.web.pages import CARDS_PER_COLUMN, board

TOKEN = "board-token"


def many_tasks(count: int) -> list[Task]:
    """`count` tasks as an imported tracker has them: all statuses, labels, assignees, priorities, links."""
    statuses = ["open"] * 5 + ["closed"] * 3 + ["blocked", "in_progress"]
    made = []
    for n in range(count):
        status = statuses[n % len(statuses)]
        task = Task(id=f"gw-{n:05x}", title=f"Task {n} about the {'parser' if n % 7 == 0 else 'widget'}",
                    description=f"details of {n}", status=status, priority=n % 5,
                    assignee=f"dev{n % 4}" if n % 3 else "", labels=[f"area-{n % 10}"] + (["urgent"] * (n % 13 == 0)),
                    created_at=f"2026-01-01T00:{n // 600 % 60:02d}:{n // 10 % 60:02d}.{n:06d}Z",
                    updated_at="2026-01-01T00:00:00Z",
                    closed_at=f"2026-01-02T00:00:00.{n:06d}Z" if status == "closed" else "")
        if n % 11 == 0 and n:
            task.dependencies.append(Dependency(task.id, f"gw-{n - 1:05x}", "blocks"))
        made.append(task)
    return made


@pytest.fixture
def project(project_dir):
    project = find_project(project_dir)
    store = project.open_store()
    store.import_tasks(many_tasks(600), prefix="gw", actor="tester")
    store.close()
    return project


@pytest.fixture
def client(project):
    with TestClient(create_app(project, token=TOKEN, actor="tester"), base_url="http://127.0.0.1") as test_client:
        assert test_client.get(f"/?token={TOKEN}").status_code == 200
        yield test_client


def _columns(data):
    return {column["name"]: column for column in data["board"]["columns"]}


def test_the_board_shows_one_page_per_column_and_counts_them_all(client, project):
    columns = _columns(client.get("/api/").json())
    counts = project.open_store().counts()  # the queue's own counts, by another query
    assert {name: c["total"] for name, c in columns.items()} == {
        "ready": counts["ready"], "waiting": counts["waiting"], "in_progress": 60, "merging": 0, "blocked": 60,
        "closed": 180}
    assert counts["ready"] + counts["waiting"] == 300 and counts["waiting"] > 0
    assert all(len(c["tasks"]) == min(c["total"], CARDS_PER_COLUMN) for c in columns.values())
    assert columns["closed"]["pages"] == 4
    closed = [t["id"] for t in columns["closed"]["tasks"]]
    assert closed[0] == f"gw-{597:05x}" and closed == sorted(closed, reverse=True)  # the newest closed first
    second = _columns(client.get("/api/?page_closed=2").json())["closed"]
    assert second["page"] == 2 and not {t["id"] for t in second["tasks"]} & set(closed)
    last = _columns(client.get("/api/?page_closed=99").json())["closed"]
    assert (last["page"], len(last["tasks"])) == (4, 180 - 3 * CARDS_PER_COLUMN)


def test_search_and_filters_narrow_the_board_and_the_links_keep_them(client):
    found = client.get("/api/?q=PARSER&status=closed").json()["board"]
    assert found["matched"] == 26 and [c["name"] for c in found["columns"]] == ["closed"]
    assert all("parser" in t["title"] for t in found["columns"][0]["tasks"])
    urgent = client.get("/api/?label=urgent&priority=P0&assignee=dev1").json()["board"]
    cards = [t for c in urgent["columns"] for t in c["tasks"]]
    assert cards and all("urgent" in t["labels"] and t["priority"] == 0 and t["assignee"] == "dev1" for t in cards)
    assert urgent["matched"] == len(cards)
    html = client.get("/?q=widget&status=ready").text
    assert 'value="widget"' in html and '<option value="ready" selected>' in html
    nxt = re.search(r'<a class="next" href="([^"]+)"', html).group(1)
    assert nxt == "/?q=widget&amp;status=ready&amp;page_ready=2"
    page2 = client.get(nxt.replace("&amp;", "&")).text
    assert "page 2 of" in page2 and '<a class="prev" href="/?q=widget&amp;status=ready">' in page2
    assert '<span class="muted" id="matched">0 task(s)</span>' in client.get("/?q=nothing-like-this").text


def test_bad_filters_are_refused_with_the_reason(client):
    for query, why in (("priority=9", "invalid priority"), ("status=done", "no column 'done'"),
                       ("page_ready=0", "page_ready must be a page number")):
        answer = client.get(f"/api/?{query}")
        assert answer.status_code == 400 and why in answer.json()["error"], query


def test_the_live_stream_keeps_the_board_as_the_page_asked_for(client):
    dashboard = client.app.state.dashboard
    _, fragments = dashboard._live(None, BoardFilter(text="parser", column="blocked"), {})
    assert fragments["board"].count('class="card"') == 9 and "column-ready" not in fragments["board"]


def test_a_card_says_why_its_last_attempt_failed(project):
    store = project.open_store()
    task_id = "gw-00001"
    attempt = store.start_attempt(task_id, slot="w1", log_path="", branch="gasworks/x", base_commit="")
    store.finish_attempt(attempt.id, outcome="failed", exit_code=1, note="agent exited 1: boom")
    (card,) = [t for c in board(store, BoardFilter(text=task_id))["columns"] for t in c["tasks"]]
    assert card["reason"] == "failed: agent exited 1: boom"
