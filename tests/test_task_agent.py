"""Per-task agent and model: labels agent:NAME and model:NAME pick them; a bad name says so on the
task; the task page shows them and changes them."""

from __future__ import annotations

import sys

import pytest
from starlette.testclient import TestClient

from gasworks import git
from gasworks.agents import task_choice
from gasworks.errors import ConfigError
from gasworks.models import Task
from gasworks.project import find_project
from gasworks.web.app import create_app
from tests.fleet import add, drain, drain_until, make_dispatcher

# The command agent: writes the model it was given into the worktree (gasworks commits it).
RECORDS_MODEL = [sys.executable, "-c", "import pathlib, sys; pathlib.Path('model.txt').write_text(sys.argv[1])",
                 "{model}"]


def test_labels_pick_the_agent_and_model_and_bad_names_say_which_label():
    assert task_choice(Task("gw-1", "t", labels=["x", "agent:aider", "model:ollama_chat/qwen2.5-coder:14b"])) \
        == ("aider", "ollama_chat/qwen2.5-coder:14b")
    assert task_choice(Task("gw-1", "t", labels=["files:a.py"])) == ("", "")
    with pytest.raises(ConfigError, match="label agent:gpt on gw-1 names no agent: use one of builtin, aider"):
        task_choice(Task("gw-1", "t", labels=["agent:gpt"]))
    with pytest.raises(ConfigError, match="gw-1 has 2 model: labels"):
        task_choice(Task("gw-1", "t", labels=["model:a", "model:b"]))
    with pytest.raises(ConfigError, match="is not a model name"):
        task_choice(Task("gw-1", "t", labels=["model:rm -rf"]))


def test_a_task_runs_with_the_agent_and_model_its_labels_name(project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, command=RECORDS_MODEL, model="the-default")
    picked = add(dispatcher, "runs with the command agent", labels=["agent:command", "model:coder-14b"])
    plain = add(dispatcher, "runs with the run's agent")
    drain(dispatcher)
    store = dispatcher.store
    assert store.get_task(picked).status == "closed" and store.get_task(plain).status == "closed"
    assert git.run(["show", "main:model.txt"], project_dir).stdout == "coder-14b"
    assert git.run(["show", f"main:fake/{plain}.txt"], project_dir).returncode == 0  # the fake agent did it


def test_a_bad_agent_label_fails_the_attempt_with_the_reason(gw, project_dir):
    dispatcher, _ = make_dispatcher(project_dir, num_workers=1, max_attempts=1)
    task_id = add(dispatcher, "names no agent", labels=["agent:gpt-5"])
    drain_until(dispatcher, lambda: dispatcher.store.get_task(task_id).status == "blocked")
    (shown,) = gw.json("show", task_id)
    assert shown["reason"].startswith("error: could not start: label agent:gpt-5 on ")
    assert "names no agent: use one of builtin, aider, command, fake" in shown["reason"]


def test_the_task_page_shows_the_agent_and_model_and_changes_them(project_dir):
    project = find_project(project_dir)
    store = project.open_store()
    from gasworks.store import NewTask

    task_id = store.create_task(NewTask("pick my agent", labels=["agent:gpt"]), prefix="gw", actor="t").id
    with TestClient(create_app(project, token="t0k", actor="tester"), base_url="http://127.0.0.1") as client:
        assert client.get("/?token=t0k").status_code == 200
        page = client.get(f"/tasks/{task_id}").text
        assert 'id="runs-with"' in page and "label agent:gpt on" in page and "the run&#x27;s own (builtin)" in page
        headers = {"x-gasworks-token": "t0k"}
        changed = client.post(f"/api/tasks/{task_id}/agent", json={"agent": "aider", "model": "qwen2.5-coder:14b"},
                              headers=headers)
        assert changed.status_code == 200
        assert sorted(changed.json()["labels"]) == ["agent:aider", "model:qwen2.5-coder:14b"]
        shown = client.get(f"/api/tasks/{task_id}").json()["runs_with"]
        assert (shown["agent"], shown["model"], shown["error"]) == ("aider", "qwen2.5-coder:14b", "")
        refused = client.post(f"/api/tasks/{task_id}/agent", json={"agent": "nope"}, headers=headers)
        assert refused.status_code == 400 and "names no agent" in refused.json()["error"]
        assert sorted(store.get_task(task_id).labels) == ["agent:aider", "model:qwen2.5-coder:14b"]
        form = client.post(f"/tasks/{task_id}/agent", data={"agent": "", "model": ""}, follow_redirects=False,
                           headers={"origin": "http://127.0.0.1"})
        assert form.status_code == 303 and store.get_task(task_id).labels == []
