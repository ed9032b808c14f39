"""Any program as the agent: an argv template from config, filled with safe placeholders only."""

from __future__ import annotations

import shutil
from pathlib import Path

from gasworks.agents import AgentContext, LaunchSpec
from gasworks.config import Config
from gasworks.errors import ConfigError


class CommandAgent:
    name = "command"

    def __init__(self, config: Config) -> None:
        if not config.command:
            raise ConfigError('agent = "command" needs `command`, an argv list such as '
                              '["my-agent", "--task-file", "{task_file}", "--workdir", "{worktree}"]')
        self.template = list(config.command)
        self.model = config.model  # {model}: the model a task's `model:` label picks, else `model`

    def prepare(self, state_dir: Path) -> None:
        program = self.template[0]
        if "{" not in program and shutil.which(program) is None and not Path(program).is_file():
            raise ConfigError(f"cannot find the agent program {program!r} (from `command`)")

    def probe_targets(self) -> list[dict]:
        return []  # no model server of gasworks's choosing

    def healthy(self) -> bool:
        return True  # its model, if any, is the program's business

    def close(self) -> None:
        pass

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        values = {"task_file": str(ctx.task_file), "worktree": str(ctx.worktree), "task_id": ctx.task_id,
                  "slot": ctx.slot, "attempt": str(ctx.attempt), "repo_root": str(ctx.repo_root), "model": self.model}
        return LaunchSpec([part.format(**values) for part in self.template])
