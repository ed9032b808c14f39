"""Agents: one runner per kind behind one small protocol. gasworks starts the process; agents only say how.

The parent never runs agent code: each agent is a child process in its own process group,
started from the argv an `Agent` returns. Task text reaches it only through the task file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gasworks.config import AGENTS, Config
from gasworks.errors import ConfigError
from gasworks.models import Task

TASK_FILE = ".current_task.txt"
# An agent exits with this (EX_TEMPFAIL) when the model could not be reached: the attempt is not
# counted against the task, and the dispatcher pauses claiming for a while.
ENDPOINT_DOWN_EXIT = 75

STANDING_INSTRUCTIONS = """\
How to work:
- Work only inside this directory (a git worktree made for this task); do not touch anything outside it.
- Make the change the task asks for, keep it small, and commit your work with a clear message.
- If you notice follow-up work, append one idea per line to suggested_tasks.txt in this directory.
"""


@dataclass(frozen=True)
class AgentContext:
    """Everything an agent may know about one attempt, none of it task text."""

    task_id: str
    worktree: Path
    task_file: Path
    slot: str
    attempt: int
    repo_root: Path
    state_dir: Path


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to gasworks's own environment
    writable: tuple[Path, ...] = ()  # folders outside the worktree it must write to, under the sandbox


class Agent(Protocol):
    """One kind of agent: gasworks starts its process; the agent only says how. Every implementation
    passes tests/test_agent_contract.py."""

    name: str

    def prepare(self, state_dir: Path) -> None:
        """Once per run, before any attempt (e.g. write shared settings files, start a model)."""

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        """How to start this agent on one attempt."""

    def probe_targets(self) -> list[dict]:
        """The model servers its attempts will talk to, as endpoint specs ({kind, url, model}), after
        prepare(): a run probes them before it claims anything. [] when it talks to none, or to one
        gasworks cannot name."""

    def healthy(self) -> bool:
        """Whether its model answers now, asked before an attempt starts outside the fleet and before
        the fleet claims again after its endpoints were found down. True when it needs none."""

    def close(self) -> None:
        """Once at the end of a run: stop what prepare() started."""


_REGISTRY = {
    "builtin": "gasworks.agents.builtin:BuiltinAgent",
    "aider": "gasworks.agents.aider:AiderAgent",
    "command": "gasworks.agents.command:CommandAgent",
    "fake": "gasworks.agents.fake:FakeAgent",
}


def get_agent(name: str, config: Config) -> Agent:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown agent {name!r}: use one of {', '.join(AGENTS)}")
    module, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)(config)


def render_task_file(task: Task, instructions: str = STANDING_INSTRUCTIONS) -> str:
    """The text of .current_task.txt: the task in full, then the standing instructions."""
    parts = [f"Task {task.id}: {task.title}"]
    for heading, text in (("Description", task.description), ("Design", task.design),
                          ("Acceptance criteria", task.acceptance_criteria)):
        if text.strip():
            parts.append(f"{heading}:\n{text.strip()}")
    parts.append(instructions)
    return "\n\n".join(parts)
