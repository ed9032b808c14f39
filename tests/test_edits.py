"""Edit-and-test, the built-in agent's way with small models: reading the task, the edit format,
merging the model's code, and the try-check-retry loop against a scripted model server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from gasworks import git
from gasworks.agents import STANDING_INSTRUCTIONS, edits
from gasworks.agents.builtin import Budget, EditAgent, Finished, LimitReached
from gasworks.llm.pool import pool_from_specs
from tests.test_llm_clients import MESSAGES, MODEL, PROTOCOLS, OpenAIProtocol, servers  # noqa: F401  (the fixture)

TEST = ("import unittest\n\nfrom calc import subtract\n\n\nclass SubtractTest(unittest.TestCase):\n"
        "    def test_subtract(self):\n        self.assertEqual(subtract(5, 3), 2)\n")
TASK = (f"Task gw-1: Add subtract(a, b) to calc.py\n\nDescription:\nAdd subtract(a, b) to calc.py: a minus b.\n\n"
        f"The tests it must pass, test_subtract.py:\n```python\n{TEST}```\n\n{STANDING_INSTRUCTIONS}")
CALC = "def add(a, b):\n    return a + b\n"
CHECKS = [[sys.executable, "-m", "unittest", "-q"]]


def test_a_task_that_names_a_file_gets_an_edit_plan_with_its_tests_and_function(tmp_path):
    (tmp_path / "calc.py").write_text(CALC)
    plan = edits.plan_edit(TASK, tmp_path)
    assert plan is not None
    assert (plan.target, plan.given, plan.function) == ("calc.py", {"test_subtract.py": TEST}, "subtract(a, b)")
    assert edits.prefill(plan) == "```python\ndef subtract(a, b):"
    # The standing instructions name suggested_tasks.txt: not a target. No file named: the tool loop.
    assert edits.plan_edit(f"Task gw-2: model task 3\n\n{STANDING_INSTRUCTIONS}", tmp_path) is None
    assert edits.plan_edit("Task gw-3: Fix ../outside.py", tmp_path) is None
    plan = edits.plan_edit("Task gw-4: Write docs/usage.md: how to call math.floor(x) here", tmp_path)
    assert plan is not None and (plan.target, plan.function) == ("docs/usage.md", "")
    assert edits.prefill(plan) == "```\n"
    (tmp_path / "NOTES.md").write_text("x" * (edits.TEXT_LIMIT + 1))  # too long to be shown, so to be written whole
    assert edits.plan_edit("Task gw-5: Fix a typo in NOTES.md", tmp_path) is None


def test_the_models_code_is_merged_function_by_function():
    code = ("import math\nimport unittest\n\ndef add(a, b):\n    return b + a\n\ndef subtract(a, b):\n"
            "    return a - b\n\nprint(subtract(5, 3))\n\nclass SubtractTest(unittest.TestCase):\n    pass\n")
    merged = edits.merge_python("def add(a, b):\n    return a + b\n\n\ndef keep():\n    pass\n", code)
    assert merged == ("import math\ndef add(a, b):\n    return b + a\n\n\ndef keep():\n    pass\n\n\n"
                      "def subtract(a, b):\n    return a - b\n")
    assert edits.merge_python("", "def f():\n    return 1\n") == "def f():\n    return 1\n"
    rambling = ("def average(xs):\n    return total(xs) / len(xs)\n\ndef total(xs):\n    return sum(xs)\n\n"
                "def add_average(x):\n    return x + 0.5\n")
    assert edits.merge_python("", rambling, "average") == ("def average(xs):\n    return total(xs) / len(xs)\n\n\n"
                                                          "def total(xs):\n    return sum(xs)\n")
    with pytest.raises(edits.EditError, match="not valid Python"):
        edits.merge_python(CALC, "def f(:\n")
    with pytest.raises(edits.EditError, match="no function"):
        edits.merge_python(CALC, "print(1)\n")


@pytest.mark.parametrize("reply", [
    "```python\ndef subtract(a, b):\n    return a - b\n",  # llama.cpp: the prefill comes back with the reply
    "\n    return a - b\n",                                   # Ollama: only what follows it
    "Here:\n```python\ndef subtract(a, b):\n    return a - b\n```\nDone.",  # it answered on its own
])
def test_the_code_is_read_from_every_kind_of_reply(reply):
    assert edits.code_of(reply, "```python\ndef subtract(a, b):") == "def subtract(a, b):\n    return a - b\n"


def _agent(tmp_path: Path, server, steps: int = 4, **spec) -> EditAgent:  # noqa: F811
    git.init_repo(tmp_path)
    (tmp_path / "calc.py").write_text(CALC)
    git.commit_all(tmp_path, "calc")
    pool = pool_from_specs([{"url": server.url, "kind": "openai", "model": MODEL, "max_concurrency": 1, **spec}])
    return EditAgent(pool, tmp_path, Budget(max_steps=steps), tmp_path.parent / "t.jsonl",
                     plan=edits.plan_edit(TASK, tmp_path), checks=CHECKS)


def test_a_failing_edit_is_undone_and_retried_with_the_failure_until_the_checks_pass(tmp_path, servers):  # noqa: F811
    server = servers()
    server.script(OpenAIProtocol.chat_path,
                  OpenAIProtocol.reply("```python\ndef subtract(a, b):\n    return a + b\n", prompt=200, completion=9),
                  OpenAIProtocol.reply("not code at all", prompt=210, completion=4),
                  OpenAIProtocol.reply("\n    return a - b\n", prompt=220, completion=8))
    agent = _agent(tmp_path / "w", server)
    with pytest.raises(Finished, match="calc.py: the checks pass after 3 tries"):
        asyncio.run(agent.run(TASK))
    bodies = server.bodies(OpenAIProtocol.chat_path)
    assert [b["temperature"] for b in bodies] == [0.0, 0.7, 0.7]
    assert all(b["messages"][-1] == {"role": "assistant", "content": "```python\ndef subtract(a, b):"}
               and b["stop"] == ["\n```"] for b in bodies)
    assert "AssertionError: 8 != 2" in bodies[1]["messages"][1]["content"]  # the failure, shown on the next try
    assert "Not applied: not valid Python" in bodies[2]["messages"][1]["content"]
    assert all("def add(a, b):\n    return a + b\n```" in b["messages"][1]["content"] for b in bodies)  # undone
    worktree = tmp_path / "w"
    assert (worktree / "calc.py").read_text() == CALC + "\n\ndef subtract(a, b):\n    return a - b\n"
    assert (worktree / "test_subtract.py").read_text() == TEST  # the task's tests, as given
    assert not list(worktree.rglob("__pycache__"))
    assert (agent.usage.prompt_tokens, agent.usage.completion_tokens) == (630, 21)
    roles = [json.loads(line)["role"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert roles[0] == "system" and roles[-2:] == ["user", "exit"]


def test_when_every_try_fails_nothing_is_left_in_the_file(tmp_path, servers):  # noqa: F811
    server = servers()
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("\n    return 0\n", prompt=100, completion=3))
    agent = _agent(tmp_path / "w", server, steps=2)
    with pytest.raises(LimitReached, match="still fail after 2 tries"):
        asyncio.run(agent.run(TASK))
    assert len(server.bodies(OpenAIProtocol.chat_path)) == 2
    assert "subtract" in (tmp_path / "w" / "calc.py").read_text()  # the last try's edit stays, uncommitted
    assert git.run(["log", "--format=%s"], tmp_path / "w").stdout.split("\n")[0] == "calc"


def test_a_slow_answer_loses_one_try_not_the_attempt(tmp_path, servers):  # noqa: F811
    """The embedded engine on a busy machine: a request that timed out ended the whole attempt
    (exit 4), and the endpoint's timeout could not be raised for it."""
    server = servers()
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("\n    return a - b\n", delay=5),
                  OpenAIProtocol.reply("\n    return a - b\n", prompt=50, completion=5))
    agent = _agent(tmp_path / "w", server, timeout=1)
    with pytest.raises(Finished, match="after 2 tries"):
        asyncio.run(agent.run(TASK))
    assert any(m["content"].startswith("No answer: ") and "timed out" in m["content"] for m in agent.messages)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_stop_strings_reach_the_server(servers, proto):  # noqa: F811
    from gasworks.llm import make_client

    server = servers()
    server.script(proto.chat_path, proto.reply("x", prompt=1, completion=1))
    client = make_client(proto.kind, server.url, MODEL)

    async def go() -> None:
        try:
            await client.chat(MESSAGES, stop=["\n```"])
        finally:
            await client.aclose()

    asyncio.run(go())
    [body] = server.bodies(proto.chat_path)
    assert (body.get("stop") or body["options"]["stop"]) == ["\n```"]
