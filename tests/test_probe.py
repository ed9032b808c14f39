"""Endpoints probed before a run or a plan: each cause named with its fix, and nothing claimed or written
while no endpoint answers. Against real servers on 127.0.0.1 (and a port nobody listens on)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from gasworks.llm.probe import probe_all
from gasworks.store.sqlite import SQLiteStore
from tests.conftest import run_gasworks
from tests.test_llm_clients import MODEL, OpenAIProtocol, Reply, free_port, servers  # noqa: F401  (the fixture)


def spec(url: str, kind: str = "openai", model: str = MODEL) -> dict:
    return {"url": url, "kind": kind, "model": model}


def gasworks(root: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return run_gasworks(list(args), root, timeout=timeout)


def test_nothing_listening_is_connection_refused_with_how_to_start_it():
    port = free_port()
    openai, ollama = probe_all([spec(f"http://127.0.0.1:{port}"), spec(f"http://127.0.0.1:{port}", "ollama")])
    assert not openai.ok and openai.cause == f"connection refused (nothing listens at 127.0.0.1:{port})"
    assert "start the model server" in openai.hint and "`endpoints` in gasworks.toml" in openai.hint
    assert not ollama.ok and "ollama serve" in ollama.hint


def test_a_server_that_does_not_answer_in_time_is_a_timeout(servers):  # noqa: F811
    server = servers()
    server.script("/v1/models", Reply({"data": []}, delay=5))
    (found,) = probe_all([spec(server.url)], timeout=0.5)
    assert not found.ok and found.cause == "no answer within 0.5 s"


def test_a_wrong_path_is_the_http_status_and_which_protocol_answers_where(servers):  # noqa: F811
    server = servers()
    server.script("/v1/models", Reply({"error": "not here"}, status=404))
    (found,) = probe_all([spec(server.url + "/api")])  # e.g. Ollama's address given with kind = "openai"
    assert not found.ok and found.cause.startswith("answered HTTP 404 to GET ")
    assert "GET /v1/models" in found.hint and 'kind = "ollama"' in found.hint


def test_an_unknown_model_names_what_the_server_offers_and_how_to_pull_it(servers):  # noqa: F811
    server = servers()  # lists test-model; its /api/chat answers 404, as Ollama does for a model it lacks
    (found,) = probe_all([spec(server.url, "ollama", "qwen2.5-coder:7b")])
    assert not found.ok and found.cause == f"does not offer the model 'qwen2.5-coder:7b' (it offers: {MODEL})"
    assert found.hint.startswith("pull it with `ollama pull qwen2.5-coder:7b`") and found.models == [MODEL]


def test_ollama_takes_a_name_without_tag_as_latest(servers):  # noqa: F811
    server = servers()
    server.script("/api/tags", Reply({"models": [{"name": "qwen2.5-coder:latest"}]}))
    (found,) = probe_all([spec(server.url, "ollama", "qwen2.5-coder")])
    assert found.ok, found.line()
    assert not server.bodies("/api/chat")  # the listing sufficed: no model call


def test_a_server_that_serves_any_name_passes_after_one_token(servers):  # noqa: F811
    """llama.cpp's server lists its file's alias but answers to any model name."""
    server = servers()
    server.script("/v1/models", Reply({"object": "list", "data": [{"id": "/models/some.gguf"}]}))
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("hi", prompt=1, completion=1))
    (found,) = probe_all([spec(server.url, model="whatever")])
    assert found.ok, found.line()
    assert server.bodies(OpenAIProtocol.chat_path)[0]["max_tokens"] == 1


def test_a_run_with_no_endpoint_answering_stops_at_once_and_claims_nothing(project_dir):
    """It used to claim tasks anyway, each agent took seconds to give up, and --until-done never ended."""
    port = free_port()
    (project_dir / "gasworks.toml").write_text(
        f'endpoints = [{{url = "http://127.0.0.1:{port}", kind = "ollama", model = "qwen2.5-coder:7b"}}]\n')
    task_id = gasworks(project_dir, "create", "anything", "-q").stdout.strip()
    started = time.monotonic()
    result = gasworks(project_dir, "run", "--agent", "builtin", "--until-done", "-w", "2", timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"connection refused (nothing listens at 127.0.0.1:{port})" in result.stderr
    assert "ollama serve" in result.stderr and "nothing was claimed" in result.stderr
    assert "Traceback" not in result.stderr
    store = SQLiteStore(project_dir / ".gasworks" / "gasworks.db")
    try:
        task = store.get_task(task_id)
        assert (task.status, task.assignee, store.attempts(task_id)) == ("open", "", [])
    finally:
        store.close()
    assert time.monotonic() - started < 60


def test_a_plan_with_no_endpoint_says_why_and_writes_nothing(project_dir):
    port = free_port()
    (project_dir / "gasworks.toml").write_text(
        f'endpoints = [{{url = "http://127.0.0.1:{port}", kind = "openai", model = "m"}}]\n')
    result = gasworks(project_dir, "plan", "Build a thing")
    assert result.returncode != 0
    assert "no model endpoint answers" in result.stderr and "connection refused" in result.stderr
    assert "start the model server" in result.stderr and "nothing was written" in result.stderr
    assert json.loads(gasworks(project_dir, "list", "--json").stdout) == []


def test_a_plan_says_what_it_waits_for_while_the_model_answers(project_dir, servers):  # noqa: F811
    server = servers()
    plan = {"tasks": [{"title": "Add it", "description": "d", "acceptance_criteria": "", "priority": 2,
                       "files": [], "depends_on": []}]}
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply(json.dumps(plan), delay=2.5))
    (project_dir / "gasworks.toml").write_text(
        f'endpoints = [{{url = "{server.url}", kind = "openai", model = "{MODEL}"}}]\n')
    result = gasworks(project_dir, "plan", "Add it")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "checking the model endpoints..." in lines and "waiting for the model's plan..." in lines
    assert "writing the tasks..." in lines
