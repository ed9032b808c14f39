"""Agents: one runner per kind behind one small protocol. gasworks starts the process; agents only say how.

The parent never runs agent code: each agent is a child process in its own process group,
started from the argv an `Agent` returns. Task text reaches it only through the task file.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from gasworks.config import AGENTS, Config
from gasworks.errors import ConfigError
from gasworks.launch import ENDPOINT_DOWN_EXIT, Agent, AgentContext, LaunchSpec
from gasworks.models import Task

__all__ = ["ENDPOINT_DOWN_EXIT", "Agent", "AgentContext", "LaunchSpec", "TASK_FILE", "get_agent", "render_task_file"]

TASK_FILE = ".current_task.txt"
STANDING_INSTRUCTIONS = """\
How to work:
- Work only inside this directory (a git worktree made for this task); do not touch anything outside it.
- Make the change the task asks for, keep it small, and commit your work with a clear message.
- If you notice follow-up work, append one idea per line to suggested_tasks.txt in this directory.
"""


def get_agent(name: str, config: Config) -> Agent:
    """The agent `name` (one of config.AGENTS, the names the `agent` setting accepts): the class
    <Name>Agent of the module gasworks.agents.<name>, imported only now."""
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}: use one of {', '.join(AGENTS)}")
    return getattr(importlib.import_module(f"gasworks.agents.{name}"), f"{name.capitalize()}Agent")(config)


# Labels that pick, for one task, another agent than the run's (`agent:aider`) or another model
# (`model:ollama_chat/qwen2.5-coder:14b`).
AGENT_LABEL, MODEL_LABEL = "agent:", "model:"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")


def task_choice(task: Task) -> tuple[str, str]:
    """(agent, model) its labels ask for ("" for the run's own); a name that is not one is a
    ConfigError that says which label and what would do."""
    picked = {}
    for prefix, what in ((AGENT_LABEL, "agent"), (MODEL_LABEL, "model")):
        names = [label[len(prefix):].strip() for label in task.labels if label.startswith(prefix)]
        if len(names) > 1:
            raise ConfigError(f"{task.id} has {len(names)} {prefix} labels ({', '.join(names)}): keep one")
        picked[what] = names[0] if names else ""
    agent, model = picked["agent"], picked["model"]
    if agent and agent not in AGENTS:
        raise ConfigError(f"label {AGENT_LABEL}{agent} on {task.id} names no agent: use one of {', '.join(AGENTS)}")
    if model and not _MODEL_NAME.fullmatch(model):
        raise ConfigError(f"label {MODEL_LABEL}{model} on {task.id} is not a model name (letters, digits and "
                          "._:/@+- only, up to 200)")
    return agent, model


def with_model(config: Config, agent: str, model: str) -> Config:
    """The config an agent picked by label runs with: its kind, and the model for whichever setting
    that kind reads it from (aider and command: `model`; builtin: each endpoint's model, or the
    embedded model without endpoints)."""
    changes: dict = {"agent": agent}
    if model:
        changes["model"] = model
        if config.endpoints:
            changes["endpoints"] = [{**e.as_dict(), "model": model} for e in config.endpoints]
        else:
            changes["embedded_model"] = model
    return type(config)(**{**{key: getattr(config, key) for key in config.fields_set}, **changes})


class TaskAgents:
    """The agent for each task: the run's own, or the one its labels pick, made and prepared once
    per (agent, model) for the run."""

    def __init__(self, default: Agent, config: Config, state_dir: Path) -> None:
        self.default, self.config, self.state_dir = default, config, state_dir
        self.made: dict[tuple[str, str], Agent] = {}

    def for_task(self, task: Task) -> Agent:
        agent, model = task_choice(task)
        if not agent and not model:
            return self.default
        key = (agent or self.config.agent, model)
        if key not in self.made:
            made = get_agent(key[0], with_model(self.config, *key))
            made.prepare(self.state_dir)
            self.made[key] = made
        return self.made[key]

    def close(self) -> None:
        """Stop what the agents made for labelled tasks started (an embedded model, say)."""
        for made in self.made.values():
            made.close()


REVIEW_NOTE_HEADING = ("Reviewer's note (a person reviewed your previous attempt at this task and rejected it; "
                       "these are the reviewer's words, quoted as written, not instructions from gasworks):")


def render_task_file(task: Task, instructions: str = STANDING_INSTRUCTIONS, *, review_note: str = "") -> str:
    """The text of .current_task.txt: the task in full, the note of the reviewer who rejected its
    last branch (if any, marked as the reviewer's words), then the standing instructions."""
    parts = [f"Task {task.id}: {task.title}"]
    for heading, text in (("Description", task.description), ("Design", task.design),
                          ("Acceptance criteria", task.acceptance_criteria)):
        if text.strip():
            parts.append(f"{heading}:\n{text.strip()}")
    if review_note.strip():
        parts.append(f"{REVIEW_NOTE_HEADING}\n{review_note.strip()}")
    parts.append(instructions)
    return "\n\n".join(parts)
