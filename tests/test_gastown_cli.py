"""Gas Town habits through the CLI: `gasworks sling` and `gasworks convoy list|status`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gasworks.project import find_project


def make(gw, title: str, *args: str) -> str:
    return gw("create", title, "-q", *args).stdout.strip()


def ready_ids(gw) -> list[str]:
    return [t["id"] for t in gw.json("ready")]


# -- sling


def test_sling_puts_tasks_at_the_front_in_the_order_given(gw):
    a, b, c = make(gw, "a", "-p", "0"), make(gw, "b"), make(gw, "c", "-p", "4")
    assert ready_ids(gw) == [a, b, c]
    out = gw.json("sling", c, b)
    assert [(row["id"], row["position"]) for row in out] == [(c, 1), (b, 2)]
    assert ready_ids(gw) == [c, b, a]
    gw("sling", a)  # a later sling goes ahead of the earlier ones
    assert ready_ids(gw) == [a, c, b]


def test_sling_says_what_it_did(gw):
    task = make(gw, "the one")
    make(gw, "another")
    assert gw("sling", task).stdout == f"Slung {task} to position 1: the one\n"


def test_sling_an_ambiguous_prefix_is_refused(gw):
    make(gw, "one")
    make(gw, "two")
    assert "matches several tasks" in gw("sling", "gw-", code=1).stderr


def test_sling_a_unique_prefix(gw):
    task = make(gw, "only")
    assert gw.json("sling", task[:5])[0]["id"] == task  # "gw-xy" of a single task


def test_sling_says_what_a_waiting_task_waits_on(gw):
    first = make(gw, "first")
    second = make(gw, "second", "--deps", first)
    out = gw.json("sling", second)
    assert out[0]["blocked_by"] == [first]
    assert f"waits on {first}" in gw("sling", second).stdout
    gw("close", first)
    assert ready_ids(gw)[0] == second


def test_sling_unknown_id_is_one_line_exit_3(gw):
    result = gw("sling", "gw-nope", code=3)
    assert result.stderr == "gasworks: error: no task 'gw-nope'\n"


def test_sling_closed_task_is_refused(gw):
    task = make(gw, "finished")
    other = make(gw, "other")
    gw("close", task)
    result = gw("sling", other, task, code=1)
    assert f"{task} is closed: reopen it first" in result.stderr
    assert result.stderr.count("\n") == 1
    assert gw.json("show", other)[0]["id"] == other  # nothing slung: all or nothing
    assert not any(e["kind"] == "slung" for e in gw.json("show", other)[0]["events"])


def test_sling_an_epic_slings_its_unfinished_children(gw):
    epic = make(gw, "plan", "-t", "epic")
    loose = make(gw, "loose", "-p", "0")
    one, two = make(gw, "one", "--parent", epic), make(gw, "two", "--parent", epic)
    done = make(gw, "done", "--parent", epic)
    gw("close", done)
    assert [row["id"] for row in gw.json("sling", epic)] == [one, two]
    assert ready_ids(gw) == [one, two, loose]


# -- convoy


@pytest.fixture
def plan(gw, project_dir: Path) -> dict[str, str]:
    """An epic with a child in every state."""
    epic = make(gw, "Ship the CLI", "-t", "epic", "-l", "plan")
    ids = {name: make(gw, name, "--parent", epic) for name in
           ("merged", "done", "merging", "running", "blocked", "ready", "waiting")}
    gw("dep", "add", ids["waiting"], ids["ready"])
    for name in ("merged", "done"):
        gw("close", ids[name])
    gw("update", ids["running"], "--status", "in_progress")
    gw("update", ids["merging"], "--status", "merging")
    gw("update", ids["blocked"], "--status", "blocked")
    store = find_project(project_dir).open_store()
    landed = store.enqueue_merge(ids["merged"], f"gasworks/{ids['merged']}", "0" * 40)
    store.update_merge(landed.id, status="landed")
    dropped = store.enqueue_merge(ids["done"], f"gasworks/{ids['done']}", "1" * 40)
    store.update_merge(dropped.id, status="dropped")
    store.close()
    return {"epic": epic, **ids}


def test_convoy_status_shows_each_childs_state(gw, plan):
    out = gw.json("convoy", "status", plan["epic"])
    assert out["id"] == plan["epic"] and out["plan"] is True
    assert {c["title"]: c["state"] for c in out["children"]} == {
        name: name for name in ("merged", "done", "merging", "running", "blocked", "ready", "waiting")}
    assert out["total"] == 7 and out["finished"] == 2 and out["complete"] is False
    assert out["counts"] == {"merged": 1, "done": 1, "merging": 1, "running": 1, "blocked": 1, "waiting": 1,
                             "ready": 1}


def test_convoy_status_text(gw, plan):
    text = gw("convoy", "status", plan["epic"]).stdout
    assert text.splitlines()[0] == f"Convoy {plan['epic']}: Ship the CLI [open]"
    assert text.splitlines()[1].startswith("Progress: 2/7 done (1 merged, 1 done, 1 merging, 1 running")
    assert f"{plan['merged']:<16} merged" in text


def test_convoy_list(gw, plan):
    other = make(gw, "Second plan", "-t", "epic")
    out = gw.json("convoy", "list")
    assert [c["id"] for c in out] == [plan["epic"], other]
    assert out[0]["finished"] == 2 and out[0]["total"] == 7 and "children" not in out[0]
    assert out[1]["total"] == 0 and out[1]["complete"] is False
    text = gw("convoy", "list").stdout
    assert f"{plan['epic']:<14} 2/7 done  Ship the CLI" in text


def test_convoy_list_hides_closed_epics_unless_all(gw):
    epic = make(gw, "Old plan", "-t", "epic")
    child = make(gw, "only", "--parent", epic)
    gw("close", child)
    assert gw.json("convoy", "status", epic)["complete"] is True
    gw("close", epic)
    assert gw.json("convoy", "list") == []
    assert [c["id"] for c in gw.json("convoy", "list", "--all")] == [epic]


def test_convoy_status_of_a_plain_task_is_refused(gw):
    task = make(gw, "not an epic")
    result = gw("convoy", "status", task, code=1)
    assert f"{task} is a task, not an epic" in result.stderr


def test_convoy_status_unknown_is_exit_3(gw):
    assert "no task 'gw-zzzz'" in gw("convoy", "status", "gw-zzzz", code=3).stderr


def test_no_convoys_says_how_to_make_one(gw):
    assert "a plan makes one" in gw("convoy", "list").stdout
