"""What an agent is, to the code that runs one: the Agent protocol, the context of an attempt, the
launch it asks for and the exit code that says its model is down.

Kept apart from the agents package (which re-exports all of it) so that the attempt lifecycle and the
sandbox can use it without importing the agents, some of which run attempts themselves (agent-run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# An agent exits with this (EX_TEMPFAIL) when the model could not be reached: the attempt is not
# counted against the task, and the dispatcher pauses claiming for a while.
ENDPOINT_DOWN_EXIT = 75


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
