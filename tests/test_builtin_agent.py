"""The built-in agent through the real dispatcher: on the real embedded model, and with its model down."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from gasworks.agents.builtin import Agent, Budget
from gasworks.project import find_project
from gasworks.status import status_report
from tests.fleet import add, drain, make_dispatcher
from tests.test_llm_clients import MODEL, OpenAIProtocol, servers  # noqa: F401  (the fixture)


def test_builtin_agent_on_the_embedded_model_makes_a_change_that_passes_the_tests_and_lands(project_dir):
    """The real path end to end: the embedded engine, the edit-and-test loop, the gate, the merge."""
    import sys

    from gasworks import git
    from tests.test_edits import CALC, TEST

    (project_dir / "calc.py").write_text(CALC)
    git.commit_all(project_dir, "calc")
    dispatcher, lines = make_dispatcher(project_dir, agent="builtin", num_workers=1, max_attempts=1,
                                        agent_max_steps=4, embedded_parallel=1, embedded_ctx=2048,
                                        gate=[[sys.executable, "-m", "unittest", "-q"]])
    engine = dispatcher.agent.engine
    engine_pid = engine.proc.pid
    try:
        assert engine.url.startswith("http://127.0.0.1:")
        task_id = add(dispatcher, "Add subtract(a, b) to calc.py",
                      description=f"It returns a minus b.\n\nThe tests it must pass, test_subtract.py:\n"
                                  f"```python\n{TEST}```\n")
        drain(dispatcher, limit=900)
    finally:
        dispatcher.agent.close()
    attempt = dispatcher.store.attempts(task_id)[0]
    assert attempt.outcome == "success", Path(attempt.log_path).read_text()
    assert attempt.tokens_in > 100 and attempt.tokens_out > 0  # real prompts, real completions
    transcript = [json.loads(line) for line in
                  Path(attempt.log_path).with_suffix(".transcript.jsonl").read_text().splitlines()]
    assert [m["role"] for m in transcript[:3]] == ["system", "user", "assistant"]
    assert "The current calc.py:" in transcript[1]["content"] and transcript[-1]["role"] == "exit"
    assert transcript[-2]["content"] == "The checks pass."
    assert f"tokens: {attempt.tokens_in} in, {attempt.tokens_out} out" in Path(attempt.log_path).read_text()
    assert dispatcher.store.get_task(task_id).status == "closed"  # through the gate, onto main
    landed = git.run(["show", "main:calc.py"], project_dir).stdout
    assert "def subtract(a, b):" in landed and "def add(a, b):" in landed
    assert not psutil.pid_exists(engine_pid)  # the engine stops with the run


def test_a_model_that_goes_down_does_not_count_against_the_task_and_pauses_claiming(project_dir, servers):  # noqa: F811
    server = servers()  # up while the run starts (its probe), then gone
    down = [{"url": server.url, "kind": "openai", "model": MODEL, "max_concurrency": 1}]
    dispatcher, lines = make_dispatcher(project_dir, agent="builtin", num_workers=1, max_attempts=1, endpoints=down)
    server.stop()
    task_id = add(dispatcher, "anything")
    deadline = time.monotonic() + 60
    while not dispatcher.store.attempts(task_id) or not dispatcher.store.attempts(task_id)[0].ended_at:
        dispatcher.tick(time.time())
        assert time.monotonic() < deadline
        time.sleep(0.05)
    attempt = dispatcher.store.attempts(task_id)[0]
    assert attempt.outcome == "endpoint_down" and dispatcher.store.failed_attempts(task_id) == 0
    assert dispatcher.store.get_task(task_id).status == "open"
    assert dispatcher.claims.paused_until > time.time() + 20
    assert any("model endpoints are not answering" in line for line in lines)
    dispatcher.tick(time.time())
    assert len(dispatcher.store.attempts(task_id)) == 1  # the breaker holds: no new claim
    # When the pause ends, a health check decides: still down, so the pause starts again.
    dispatcher.claims.paused_until = time.time() - 1
    dispatcher.tick(time.time())
    assert len(dispatcher.store.attempts(task_id)) == 1 and dispatcher.claims.paused_until > time.time() + 20
    assert any("still do not answer" in line for line in lines)


def test_the_schema_drops_actions_the_model_keeps_repeating():
    again = '{"action": "list_files"}'
    assert Agent.schema([again])["properties"]["action"]["enum"] == list(
        Agent.schema([])["properties"]["action"]["enum"])
    narrowed = Agent.schema([again, '{"action": "read_file", "path": "a"}', again])
    assert "list_files" not in narrowed["properties"]["action"]["enum"]
    assert "finish" in narrowed["properties"]["action"]["enum"]


def test_actions_stay_inside_the_worktree(tmp_path):
    agent = Agent(client=None, worktree=tmp_path, budget=Budget())
    assert agent.execute('{"action": "write_file", "path": "../escape.txt", "content": "x"}').startswith("Error")
    assert agent.execute('{"action": "read_file", "path": ".git/config"}').startswith("Error")
    assert not (tmp_path.parent / "escape.txt").exists()
    assert agent.execute('{"action": "write_file", "path": "a/b.txt", "content": "hi"}') == "Wrote a/b.txt."
    assert (tmp_path / "a" / "b.txt").read_text() == "hi"
    assert agent.execute('{"action": "replace", "path": "a/b.txt", "old": "hi", "new": "ho"}').startswith("Replaced")
    assert agent.execute('{"action": "run", "command": ["cat", "a/b.txt"]}') == "exit code 0\nho"
    assert agent.execute("not json").startswith("That was not one JSON action")


def test_tokens_show_in_the_status_while_the_agent_still_works(project_dir, servers):  # noqa: F811
    """The usage file used to be written only when the agent exited, so `gasworks status` showed 0/0
    tokens for the whole of a long attempt."""
    server = servers()
    list_files = OpenAIProtocol.reply('{"action": "list_files"}', prompt=300, completion=20)
    thinking = OpenAIProtocol.reply('{"action": "finish", "summary": "done"}', prompt=350, completion=9, delay=60)
    server.script(OpenAIProtocol.chat_path, list_files, thinking)
    endpoints = [{"url": server.url, "kind": "openai", "model": MODEL, "max_concurrency": 1}]
    dispatcher, _ = make_dispatcher(project_dir, agent="builtin", num_workers=1, endpoints=endpoints)
    project = find_project(project_dir)
    task_id = add(dispatcher, "take your time")
    try:
        deadline = time.monotonic() + 60
        while True:
            dispatcher.tick(time.time())
            slots = status_report(project, dispatcher.store)["slots"]
            if slots and (slots[0]["tokens_in"], slots[0]["tokens_out"]) == (300, 20):
                break
            assert time.monotonic() < deadline, slots
            time.sleep(0.05)
        assert slots[0]["task"] == task_id and not dispatcher.store.attempts(task_id)[0].ended_at
    finally:
        dispatcher.stop(hard=True)
        drain(dispatcher)
