"""`gasworks retry` (what the dashboard's Retry does, from the CLI) and `gasworks diff` (what an agent changed)."""

from __future__ import annotations

import json

from tests.fleet import add, drain, drain_until, fake_script, make_dispatcher


def test_retry_sends_a_task_that_needs_a_human_back_to_the_fleet_at_once(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, max_attempts=1, retry_backoff=600)
    task_id = add(dispatcher, "fails the first time", description=fake_script(exit=3))
    drain(dispatcher)
    assert dispatcher.store.get_task(task_id).status == "blocked"
    gw("update", task_id, "-d", "plain work this time")
    (shown,) = gw.json("retry", task_id)
    assert shown["status"] == "open" and "needs-human" not in shown.get("labels", [])
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "closed")


def test_retry_of_several_is_all_or_nothing(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    blocked = gw.json("create", "needs a human")["id"]
    gw("update", blocked, "-s", "blocked", "--add-label", "needs-human")
    held = gw.json("create", "an agent holds it")["id"]
    gw("update", held, "--claim")
    refused = gw("retry", blocked, held, code=1)
    assert f"{held} is in_progress" in refused.stderr
    task = dispatcher.store.get_task(blocked)
    assert (task.status, "needs-human" in task.labels) == ("blocked", True)


def test_diff_shows_what_the_agent_changed_and_says_when_there_is_nothing(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1)
    task_id = add(dispatcher, "writes a file", description=fake_script(write={"notes/a.txt": "hello\n"}))
    drain(dispatcher)
    text = gw("diff", task_id).stdout
    assert "notes/a.txt" in text and "+hello" in text
    shown = json.loads(gw("diff", task_id, "--json").stdout)
    assert shown["attempt"] == 1 and shown["head"] and "+hello" in shown["diff"]
    fresh = add(dispatcher, "never started")
    assert "has no attempts yet" in gw("diff", fresh, code=3).stderr
