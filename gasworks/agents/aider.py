"""Aider, run one-shot on the task file with a fixed context size for Ollama.

Facts this relies on: `--message-file` processes the message and exits; `--yes-always` still
refuses shell commands; Aider exits 0 even when the model failed (so gasworks judges the
attempt from git); and without a fixed `num_ctx` Aider sends a different one per request,
which makes Ollama reload the model each time, so a model settings file pins it for every worker.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gasworks.agents import TASK_FILE, AgentContext, LaunchSpec
from gasworks.config import Config
from gasworks.errors import ConfigError
from gasworks.llm.embedded import ModelProcess, ServeOptions

NON_INTERACTIVE = [
    "--yes-always", "--no-check-update", "--no-show-release-notes", "--no-pretty", "--no-stream",
    "--no-fancy-input", "--no-show-model-warnings", "--analytics-disable", "--no-gitignore",
    "--no-detect-urls", "--no-suggest-shell-commands",
]


EMBEDDED_REPLY_TOKENS = 256  # a bound on each answer: a small model may otherwise ramble to the end of its context


def model_settings(model: str, **extra_params: int) -> str:
    # JSON strings are valid YAML scalars, so no YAML library is needed.
    params = "".join(f"    {key}: {value}\n" for key, value in extra_params.items())
    return f"- name: {json.dumps(model)}\n  extra_params:\n{params}"


EMBEDDED = "embedded"  # `model = "embedded"`: Aider talks to the embedded model gasworks starts


class AiderAgent:
    name = "aider"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings_file: Path | None = None
        self.engine: ModelProcess | None = None
        self.api_base = ""  # the embedded model's OpenAI-compatible URL, when model = "embedded"

    def prepare(self, state_dir: Path) -> None:
        if shutil.which(self.config.aider_cmd[0]) is None:
            raise ConfigError(f"cannot find {self.config.aider_cmd[0]!r} to run Aider: install it "
                              "(pip install 'gasworks[aider]'), set `aider_cmd`, or pick another `agent`")
        self.settings_file = state_dir / "aider" / "model-settings.yml"
        self.settings_file.parent.mkdir(parents=True, exist_ok=True)
        if self.config.model == EMBEDDED:
            options = ServeOptions(self.config.embedded_model, self.config.embedded_parallel, self.config.embedded_ctx)
            self.engine = ModelProcess(options, state_dir / "logs" / "embedded-model.log")
            self.api_base = self.engine.start() + "/v1"
            settings = model_settings(self.aider_model, max_tokens=EMBEDDED_REPLY_TOKENS)
        else:
            settings = model_settings(self.config.model, num_ctx=self.config.num_ctx)
        self.settings_file.write_text(settings, encoding="utf-8")

    def probe_targets(self) -> list[dict]:
        if self.api_base:
            return [{"kind": "openai", "url": self.api_base, "model": self.config.embedded_model}]
        provider, _, model = self.config.model.partition("/")
        if provider in ("ollama", "ollama_chat") and model:  # Aider's (litellm's) names for Ollama's API
            return [{"kind": "ollama", "url": self.config.ollama_api_base, "model": model}]
        return []  # another provider: litellm knows where it lives, gasworks does not

    def healthy(self) -> bool:
        """Whether an Ollama model's server answers: Aider itself exits 0 when it cannot reach it, so
        gasworks asks before it starts Aider. Other providers: litellm's business."""
        if not self.config.model.startswith(("ollama_chat/", "ollama/")):
            return True
        import httpx

        try:
            httpx.get(self.config.ollama_api_base.rstrip("/") + "/api/version", timeout=5.0)
        except httpx.HTTPError:
            return False
        return True

    @property
    def aider_model(self) -> str:
        return f"openai/{self.config.embedded_model}" if self.config.model == EMBEDDED else self.config.model

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def launch(self, ctx: AgentContext) -> LaunchSpec:
        if self.settings_file is None:
            self.prepare(ctx.state_dir)
        argv = [*self.config.aider_cmd, "--model", self.aider_model, "--message-file", TASK_FILE,
                "--model-settings-file", str(self.settings_file), *NON_INTERACTIVE]
        if self.api_base:  # the embedded model: its context is small, so no repository map
            return LaunchSpec([*argv, "--map-tokens", "0"], {"OPENAI_API_BASE": self.api_base,
                                                             "OPENAI_API_KEY": "none"})
        return LaunchSpec(argv, {"OLLAMA_API_BASE": self.config.ollama_api_base})
