"""The built-in agent: a small tool-using loop over a chat model, run as its own process.

Each step the model answers with one JSON action, constrained by a JSON schema so that even a
tiny model produces a valid one: list_files, read_file, write_file, replace, run (an argv list,
no shell, with a timeout) or finish. Every way out is an exception carrying why; the transcript
is saved after every step and the token counts at the end, for gasworks to record.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Coroutine
from typing import Any, NoReturn

from gasworks import confined
from gasworks.agents import ENDPOINT_DOWN_EXIT, AgentContext, LaunchSpec, edits
from gasworks.config import Config
from gasworks.errors import EndpointDownError, ModelError
from gasworks.llm import ChatClient, Usage
from gasworks.llm.embedded import ModelProcess, model_endpoints
from gasworks.llm.pool import EndpointPool, pool_from_specs

ACTIONS = ("list_files", "read_file", "write_file", "replace", "run", "finish")
ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": list(ACTIONS)},
        # Bounded strings: small models otherwise repeat themselves until the token limit.
        "path": {"type": "string", "maxLength": 120},
        "content": {"type": "string", "maxLength": 3000},
        "old": {"type": "string", "maxLength": 1000},
        "new": {"type": "string", "maxLength": 1000},
        "command": {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 12},
        "summary": {"type": "string", "maxLength": 300},
    },
    "required": ["action"],
}
SYSTEM = """You are a coding agent working alone in a git worktree. Do the task, then finish.
Usually: read the file to change, write its new text, then finish. Do not repeat an action.
Answer every turn with exactly one JSON object, one action:
{"action": "list_files"}
{"action": "read_file", "path": "<a file named in the task>"}
{"action": "write_file", "path": "<the file to write>", "content": "<its whole new text>"}
{"action": "replace", "path": "<the file to change>", "old": "<exact text in it>", "new": "<replacement>"}
{"action": "run", "command": ["python", "-m", "unittest"]}
{"action": "finish", "summary": "<what you did>"}
Paths are relative to the worktree. Commands run without a shell."""
OUTPUT_LIMIT = 2000
REPLY_TOKENS = 500
# About 3.5 characters a token: what fits in a 2048-token slot with room for the reply.
CONTEXT_CHARS = 4200
HIDDEN = (".current_task.txt",)  # gasworks's own file: the task is already in the first message


class AgentExit(Exception):
    """Every way out of the loop; `code` is the process exit code."""

    code = 0


class Finished(AgentExit):
    pass


class LimitReached(AgentExit):
    code = 3


@dataclass
class Budget:
    max_steps: int = Config.default("agent_max_steps")
    max_tokens: int = Config.default("agent_max_tokens")
    command_timeout: float = 30.0


@dataclass
class Agent:
    client: ChatClient
    worktree: Path
    budget: Budget
    transcript_path: Path | None = None
    usage_path: Path | None = None  # tokens so far, after every step: `gasworks status` shows them live
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    async def run(self, task: str) -> str:
        self.messages = [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": f"{task}\n\nFiles:\n{self.list_files()}"}]
        return await self.recorded(self.steps())

    async def steps(self) -> NoReturn:
        for _ in range(self.budget.max_steps):
            await self.step()
        raise LimitReached(f"stopped after {self.budget.max_steps} steps")

    async def recorded(self, work: Coroutine[Any, Any, NoReturn]) -> NoReturn:
        """Run `work` to its way out (an AgentExit), which goes into the transcript, saved at the end."""
        try:
            await work
        except AgentExit as exit_:
            self.messages.append({"role": "exit", "content": str(exit_), "code": exit_.code})
            raise
        finally:
            self.save()

    async def step(self) -> None:
        before = [m["content"] for m in self.messages if m["role"] == "assistant"]
        reply = await self.client.chat(self.window(), schema=self.schema(before), max_tokens=REPLY_TOKENS)
        self.usage.add(reply.usage)
        self.messages.append({"role": "assistant", "content": reply.text})
        observation = self.execute(reply.text)
        if before and reply.text == before[-1]:
            observation += "\nYou did exactly this already. Do the next step of the task."
        self.messages.append({"role": "user", "content": observation})
        self.save()
        if self.usage.prompt_tokens + self.usage.completion_tokens > self.budget.max_tokens:
            raise LimitReached(f"stopped after {self.budget.max_tokens} tokens")

    def window(self) -> list[dict[str, Any]]:
        """What the model sees: the system prompt, the task, and the latest exchanges that fit (the
        transcript keeps everything). Small context windows fill up after a few file reads."""
        head, tail = self.messages[:2], self.messages[2:]
        budget = CONTEXT_CHARS - sum(len(m["content"]) for m in head)
        kept: list[dict[str, Any]] = []
        for message in reversed(tail):
            budget -= len(message["content"])
            if budget < 0:
                break
            kept.insert(0, message)
        if kept and kept[0]["role"] != "assistant":
            kept = kept[1:]  # start at an action, not at its observation
        return head + kept

    @staticmethod
    def schema(before: list[str]) -> dict[str, Any]:
        """The action schema, less every action the model has already repeated word for word: small
        models go round in circles, and taking the circle out of the grammar moves them on."""
        repeated = set()
        for text in {t for t in before if before.count(t) > 1}:
            try:
                repeated.add(json.loads(text)["action"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        allowed = [a for a in ACTIONS if a not in repeated or a == "finish"]
        if len(allowed) == len(ACTIONS):
            return ACTION_SCHEMA
        return {**ACTION_SCHEMA, "properties": {**ACTION_SCHEMA["properties"],
                                                "action": {"type": "string", "enum": allowed}}}

    def execute(self, text: str) -> str:
        try:
            action = json.loads(text)
            name = action["action"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return "That was not one JSON action. Answer with one JSON object as shown."
        if name == "finish":
            raise Finished(action.get("summary") or "finished")
        try:
            return getattr(self, f"do_{name}")(action) if name in ACTIONS else f"Unknown action {name!r}."
        except (OSError, ValueError, KeyError) as exc:
            return f"Error: {exc}"

    def path(self, action: dict[str, Any]) -> Path:
        target = (self.worktree / str(action["path"])).resolve()
        if not target.is_relative_to(self.worktree.resolve()) or ".git" in target.parts:
            raise ValueError(f"{action['path']} is outside the worktree")
        return target

    def list_files(self) -> str:
        names = sorted(str(p.relative_to(self.worktree)) for p in self.worktree.rglob("*")
                       if p.is_file() and ".git" not in p.parts and p.name not in HIDDEN)
        return "\n".join(names[:200])

    def do_list_files(self, action: dict[str, Any]) -> str:
        return self.list_files() or "(no files)"

    def do_read_file(self, action: dict[str, Any]) -> str:
        return self.path(action).read_text(encoding="utf-8", errors="replace")[:OUTPUT_LIMIT * 4]

    def do_write_file(self, action: dict[str, Any]) -> str:
        target = self.path(action)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(action.get("content", "")), encoding="utf-8")
        return f"Wrote {action['path']}."

    def do_replace(self, action: dict[str, Any]) -> str:
        target = self.path(action)
        text = target.read_text(encoding="utf-8")
        if not action.get("old") or action["old"] not in text:
            return f"The text to replace is not in {action['path']}."
        target.write_text(text.replace(action["old"], str(action.get("new", "")), 1), encoding="utf-8")
        return f"Replaced it in {action['path']}."

    def do_run(self, action: dict[str, Any]) -> str:
        argv = [str(part) for part in action.get("command") or []]
        if not argv:
            return "Give the command as a list of strings."
        try:
            done = subprocess.run(argv, cwd=self.worktree, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=self.budget.command_timeout)
        except subprocess.TimeoutExpired:
            return f"Timed out after {self.budget.command_timeout:g} s."
        except FileNotFoundError:
            return f"No such program: {argv[0]}"
        return f"exit code {done.returncode}\n{(done.stdout + done.stderr)[-OUTPUT_LIMIT:]}"

    def save(self) -> None:
        if self.transcript_path is not None:
            lines = (json.dumps(m, ensure_ascii=False) for m in self.messages)
            self.transcript_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.save_usage()

    def save_usage(self) -> None:
        if self.usage_path is not None:  # replaced whole, so a reader never sees half of it
            temp = self.usage_path.with_name(self.usage_path.name + ".tmp")
            temp.write_text(json.dumps({"prompt_tokens": self.usage.prompt_tokens,
                                        "completion_tokens": self.usage.completion_tokens}), encoding="utf-8")
            temp.replace(self.usage_path)


EDIT_SYSTEM = "You are an expert programmer. You reply with one code block and nothing else."
EDIT_TOKENS = 160  # a function or two; more is a small model repeating itself
RETRY_TEMPERATURE = 0.7  # tries after the first sample afresh: a small model's second guess differs


@dataclass
class EditAgent(Agent):
    """Edit-and-test (gasworks.agents.edits): each try shows the model the task and the file, applies
    the code it writes, runs the checks; a failing try is undone and the next one sees why."""

    plan: edits.EditPlan | None = None
    checks: list[list[str]] = field(default_factory=list)

    async def run(self, task: str) -> str:
        assert self.plan is not None
        for path, text in self.plan.given.items():  # the task's own tests, as the task gives them
            confined.write_text(self.worktree, path, text)
        original = confined.read_text(self.worktree, self.plan.target)
        self.messages = [{"role": "system", "content": EDIT_SYSTEM}]
        return await self.recorded(self.tries(task, original))

    async def tries(self, task: str, original: str | None) -> NoReturn:
        failure = ""
        for number in range(self.budget.max_steps):
            failure = await self.attempt(task, original, failure, number)
            self.save()
            if self.usage.prompt_tokens + self.usage.completion_tokens > self.budget.max_tokens:
                raise LimitReached(f"stopped after {self.budget.max_tokens} tokens; last failure: {failure}")
        raise LimitReached(f"the checks still fail after {self.budget.max_steps} tries")

    async def attempt(self, task: str, original: str | None, failure: str, number: int) -> str:
        """One try from the original text; raises Finished when the checks pass, else returns why not."""
        assert self.plan is not None
        _restore(self.worktree, self.plan.target, original)
        start = edits.prefill(self.plan)
        ask = {"role": "user", "content": edits.prompt(task, self.plan, original, failure)}
        try:
            reply = await self.client.chat([self.messages[0], ask, {"role": "assistant", "content": start}],
                                           max_tokens=EDIT_TOKENS, stop=["\n" + edits.FENCE],
                                           temperature=0.0 if number == 0 else RETRY_TEMPERATURE)
        except EndpointDownError:
            raise
        except ModelError as exc:  # a slow answer on a busy machine: one try lost, not the attempt
            self.messages.append({"role": "user", "content": f"No answer: {exc}"})
            return failure
        self.usage.add(reply.usage)
        code = edits.code_of(reply.text, start)
        self.messages += [ask, {"role": "assistant", "content": code}]
        try:
            edits.apply(self.worktree, self.plan, code)
        except (edits.EditError, OSError) as exc:
            outcome = f"Not applied: {exc}"
        else:
            passed, outcome = edits.run_checks(self.worktree, self.checks, self.budget.command_timeout)
            if passed:
                self.messages.append({"role": "user", "content": "The checks pass."})
                raise Finished(f"{self.plan.target}: the checks pass after {number + 1} tries")
        self.messages.append({"role": "user", "content": outcome})
        return outcome[-600:]


def _restore(worktree: Path, name: str, text: str | None) -> None:
    """The file as it was before the tries; never through a link the model's code planted."""
    if text is None:
        confined.remove(worktree, name)
    else:
        confined.write_text(worktree, name, text)


class BuiltinAgent:
    """The runner: gasworks starts `python -m gasworks.agents.builtin` with the model in its environment."""

    name = "builtin"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine: ModelProcess | None = None
        self.endpoints: list[dict[str, Any]] = []

    def prepare(self, state_dir: Path) -> None:
        """Use the configured endpoints, or start the embedded model (stopped again by close())."""
        self.endpoints, self.engine = model_endpoints(self.config, state_dir)

    def probe_targets(self) -> list[dict]:
        return list(self.endpoints)

    def healthy(self) -> bool:
        """Whether any model endpoint answers (the dispatcher asks before it claims again)."""
        async def check() -> bool:
            pool = pool_from_env(json.dumps(self.endpoints))
            try:
                return await pool.healthy()
            finally:
                await pool.aclose()

        return asyncio.run(check())

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        env = {"GASWORKS_AGENT_MAX_STEPS": str(self.config.agent_max_steps),
               "GASWORKS_AGENT_MAX_TOKENS": str(self.config.agent_max_tokens),
               "GASWORKS_LLM_ENDPOINTS": json.dumps(self.endpoints),
               "GASWORKS_AGENT_CHECKS": json.dumps(self.config.gate),  # the gate, run after each edit
               "GASWORKS_LLM_SLOTS": str(ctx.state_dir / "llm-slots")}
        (ctx.state_dir / "llm-slots").mkdir(parents=True, exist_ok=True)
        return LaunchSpec([sys.executable, "-m", "gasworks.agents.builtin", str(ctx.task_file)], env,
                          writable=(ctx.state_dir / "llm-slots",))


def pool_from_env(text: str, slots_dir: str = "") -> EndpointPool:
    """The endpoints gasworks passes in GASWORKS_LLM_ENDPOINTS, limits shared through GASWORKS_LLM_SLOTS."""
    return pool_from_specs(json.loads(text), Path(slots_dir) if slots_dir else None)


async def _work(agent: Agent, task: str) -> None:
    try:
        await agent.run(task)
    finally:
        await agent.client.aclose()


def main() -> None:
    from gasworks import git

    task_file = Path(sys.argv[1])
    env = os.environ
    worktree = Path(env.get("GASWORKS_WORKTREE") or task_file.parent)
    transcript = Path(env["GASWORKS_TRANSCRIPT_FILE"]) if env.get("GASWORKS_TRANSCRIPT_FILE") else None
    usage_path = Path(env["GASWORKS_USAGE_FILE"]) if env.get("GASWORKS_USAGE_FILE") else None
    budget = Budget(int(env.get("GASWORKS_AGENT_MAX_STEPS", Budget.max_steps)),
                    int(env.get("GASWORKS_AGENT_MAX_TOKENS", Budget.max_tokens)))
    pool = pool_from_env(env["GASWORKS_LLM_ENDPOINTS"], env.get("GASWORKS_LLM_SLOTS", ""))
    task = task_file.read_text(encoding="utf-8")
    plan = edits.plan_edit(task, worktree)
    agent = Agent(pool, worktree, budget, transcript, usage_path) if plan is None else \
        EditAgent(pool, worktree, budget, transcript, usage_path, plan=plan,
                  checks=json.loads(env.get("GASWORKS_AGENT_CHECKS") or "[]"))
    code = 0
    try:
        asyncio.run(_work(agent, task))
    except AgentExit as exit_:
        code = exit_.code
        print(f"builtin agent: {exit_}", flush=True)
        if isinstance(exit_, Finished) and git.is_dirty(worktree):
            git.commit_all(worktree, str(exit_)[:200] or "builtin agent")
    except EndpointDownError as exc:  # not the task's fault: gasworks does not count the attempt
        print(f"builtin agent: {exc}", flush=True)
        code = ENDPOINT_DOWN_EXIT
    except ModelError as exc:
        print(f"builtin agent: {exc}", flush=True)
        code = 4
    finally:
        agent.save_usage()
        print(f"tokens: {agent.usage.prompt_tokens} in, {agent.usage.completion_tokens} out", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
