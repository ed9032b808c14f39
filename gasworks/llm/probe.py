"""Probing model endpoints before work starts: does each one answer, and with the model asked for?

A run or a plan asks every configured endpoint once. One that does not answer is named with the
cause (connection refused, no answer in time, an HTTP status, a model the server does not offer,
with the names it does) and what to do about it, so that nobody finds out from failed attempts.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PROBE_SECONDS = 5.0
OLLAMA_PORT = 11434
FIX_ENDPOINTS = "or set `endpoints` in gasworks.toml (remove them to use the embedded model)"


@dataclass
class Probe:
    """What one endpoint answered. `ok` endpoints have an empty cause."""

    endpoint: str                    # "openai http://127.0.0.1:8000" or "ollama http://...": as the clients name it
    ok: bool
    cause: str = ""
    hint: str = ""
    models: list[str] = field(default_factory=list)  # what the server offers, when it said

    def line(self) -> str:
        return f"{self.endpoint}: " + ("answers" if self.ok else f"{self.cause}; {self.hint}")


def explain(probes: list[Probe]) -> str:
    """The error text when no endpoint answers: one line per endpoint, cause and fix."""
    return "no model endpoint answers:\n" + "\n".join(f"  {p.line()}" for p in probes)


def probe_all(specs: list[dict[str, Any]], timeout: float = PROBE_SECONDS) -> list[Probe]:
    """Probe every endpoint spec ({kind, url, model}) at once; each within `timeout` seconds."""
    async def every() -> list[Probe]:
        return list(await asyncio.gather(*(probe(spec, timeout) for spec in specs)))

    return asyncio.run(every())


async def probe(spec: dict[str, Any], timeout: float = PROBE_SECONDS) -> Probe:
    import httpx

    kind, url, model = spec["kind"], str(spec["url"]).rstrip("/"), str(spec["model"])
    base, listing = _listing(kind, url)
    name = f"{kind} {url}"
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout)) as http:
        try:
            response = await http.get(base + listing)
        except httpx.HTTPError as exc:
            return Probe(name, False, _cause(exc, url, timeout), _start_hint(kind, url))
        if response.status_code >= 400:
            return Probe(name, False, f"answered HTTP {response.status_code} to GET {base + listing}",
                         f"is this the server's address? {_protocol_hint(kind)}")
        models = _offered(kind, response)
        if models is None:
            return Probe(name, False, f"answered GET {base + listing}, but not as {_protocol(kind)} would",
                         _protocol_hint(kind))
        if _offers(kind, model, models) or await _takes(http, kind, base, model):
            return Probe(name, True, models=models)
        offered = ", ".join(models[:12]) + (" ..." if len(models) > 12 else "") if models else "none"
        fix = f"pull it with `ollama pull {model}`" if kind == "ollama" else "start the server with that model"
        return Probe(name, False, f"does not offer the model {model!r} (it offers: {offered})",
                     f"{fix}, or name one it offers in `endpoints`", models)


def _listing(kind: str, url: str) -> tuple[str, str]:
    """The API base and the path that lists the models, for a server of that kind at that URL."""
    base = url if kind == "ollama" or url.endswith("/v1") else f"{url}/v1"
    return base, "/api/tags" if kind == "ollama" else "/models"


@dataclass
class LocalServer:
    """A model server on this machine that answered its listing."""

    label: str        # "Ollama", "llama.cpp server", ...
    kind: str         # "ollama" or "openai": how gasworks speaks to it
    url: str
    models: list[str]


# Where local model servers listen by default: (name, kind, port).
LOCAL_SERVERS = (("Ollama", "ollama", OLLAMA_PORT), ("llama.cpp server", "openai", 8080),
                 ("LM Studio", "openai", 1234), ("vLLM", "openai", 8000))
SCAN_SECONDS = 1.0
# Tests move the candidates to ports of their own: "11434=41001,8000=41002" scans only those two
# ("none": no candidate at all).
LOCAL_SERVERS_ENV = "GASWORKS_LOCAL_SERVERS"


def local_servers(env: Mapping[str, str] | None = None) -> tuple[tuple[str, str, int], ...]:
    raw = (os.environ if env is None else env).get(LOCAL_SERVERS_ENV, "")
    if not raw:
        return LOCAL_SERVERS
    moved = dict(pair.split("=", 1) for pair in raw.split(",") if "=" in pair)
    return tuple((label, kind, int(moved[str(port)])) for label, kind, port in LOCAL_SERVERS if str(port) in moved)


def scan(servers: tuple[tuple[str, str, int], ...] | None = None, host: str = "127.0.0.1",
         timeout: float = SCAN_SECONDS) -> list[LocalServer]:
    """The local servers (`local_servers()` unless given) that answer on `host` with a listing of
    their protocol, in that order."""
    servers = local_servers() if servers is None else servers
    async def one(label: str, kind: str, port: int) -> LocalServer | None:
        import httpx

        url = f"http://{host}:{port}"
        base, listing = _listing(kind, url)
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(timeout)) as http:
                response = await http.get(base + listing)
        except httpx.HTTPError:
            return None
        models = _offered(kind, response) if response.status_code < 400 else None
        return None if models is None else LocalServer(label, kind, url, models)

    async def every() -> list[LocalServer | None]:
        return list(await asyncio.gather(*(one(*server) for server in servers)))

    return [found for found in asyncio.run(every()) if found is not None]


# What makes a model a coding model, best first: a Qwen2.5-Coder, then any coder.
CODING_MODELS = ("qwen2.5-coder", "coder", "code")


def choose(servers: list[LocalServer]) -> tuple[LocalServer, str] | None:
    """The coding model to use among what the servers offer: the best kind (CODING_MODELS), then
    the most parameters its name says (7b over 1.5b), then the first server. None: no coding model."""
    best: tuple[tuple[int, float], LocalServer, str] | None = None
    for server in servers:
        for model in server.models:
            name = model.lower()
            kind = next((rank for rank, word in enumerate(CODING_MODELS) if word in name), None)
            if kind is None:
                continue
            size = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)b(?![a-z])", name)
            key = (kind, -float(size.group(1)) if size else 0.0)
            if best is None or key < best[0]:
                best = (key, server, model)
    return None if best is None else (best[1], best[2])


def autodetect(max_concurrency: int, say: Callable[[str], None]) -> dict[str, Any] | None:
    """An endpoint spec for a coding model a local server offers, saying which and why; None (and
    why, when a server answered) when there is none."""
    found = scan()
    choice = choose(found)
    if choice is None:
        if found:
            offered = "; ".join(f"{s.label} at {s.url}: {', '.join(s.models[:6]) or 'nothing'}" for s in found)
            say(f"gasworks: no coding model on the local model servers ({offered}); using the embedded model")
        return None
    server, model = choice
    why = "a Qwen2.5-Coder, preferred" if CODING_MODELS[0] in model.lower() else "the best coding model offered"
    say(f"gasworks: no endpoints set, so using {model} from {server.label} at {server.url} ({why}); set "
        "`endpoints` in gasworks.toml to choose, or autodetect = false for the embedded model")
    return {"kind": server.kind, "url": server.url, "model": model, "max_concurrency": max_concurrency}


def _cause(exc: Exception, url: str, timeout: float) -> str:
    import socket

    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    chain: list[BaseException] = []
    reason: BaseException | None = exc
    while reason is not None and len(chain) < 10:  # httpx wraps the socket's error a few times
        chain.append(reason)
        reason = reason.__cause__ or reason.__context__
    if any(isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return f"connection refused (nothing listens at {urlsplit(url).netloc})"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return f"cannot find the host {urlsplit(url).hostname!r}"
    return f"cannot connect ({chain[-1] or type(chain[-1]).__name__})"


def _start_hint(kind: str, url: str) -> str:
    if kind == "ollama" or urlsplit(url).port == OLLAMA_PORT:
        return f"start Ollama with `ollama serve`, {FIX_ENDPOINTS}"
    return f"start the model server, {FIX_ENDPOINTS}"


def _protocol(kind: str) -> str:
    return "Ollama" if kind == "ollama" else "an OpenAI-compatible server"


def _protocol_hint(kind: str) -> str:
    if kind == "ollama":
        return "Ollama answers GET /api/tags; for an OpenAI-compatible server use kind = \"openai\""
    return "an OpenAI-compatible server answers GET /v1/models; for Ollama's own API use kind = \"ollama\""


def _offered(kind: str, response: Any) -> list[str] | None:
    """The model names in a listing, or None when the answer is not a listing of that protocol."""
    try:
        data = response.json()
        rows = data["models"] if kind == "ollama" else data["data"]
        return [str(row.get("name") or row.get("model") or row.get("id") or "") for row in rows]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _offers(kind: str, model: str, models: list[str]) -> bool:
    """Ollama takes "qwen2.5-coder" for "qwen2.5-coder:latest"."""
    if kind == "ollama" and ":" not in model:
        return model in models or f"{model}:latest" in models
    return model in models


async def _takes(http: Any, kind: str, base: str, model: str) -> bool:
    """A model the listing does not name may still be served (llama.cpp's server answers to any
    name): a one-token request decides."""
    import httpx

    path = "/api/chat" if kind == "ollama" else "/chat/completions"
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    body.update({"options": {"num_predict": 1}} if kind == "ollama" else {"max_tokens": 1})
    try:
        response = await http.post(base + path, json=body)
    except httpx.HTTPError:
        return False
    return response.status_code < 400
