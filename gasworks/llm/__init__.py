"""Model clients: OpenAI-compatible and Ollama-native over HTTP, a pool of endpoints, the embedded engine.

One seam, `ChatClient`: a single async `chat()` call. Only the model's intelligence is ever faked;
the HTTP, the retries and the token accounting are always the real thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


@dataclass
class ChatResult:
    text: str
    usage: Usage
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = ""
    endpoint: str = ""


class ChatClient(Protocol):
    name: str

    async def chat(self, messages: list[dict[str, Any]], *, schema: dict[str, Any] | None = None,
                   tools: list[dict[str, Any]] | None = None, max_tokens: int = 512, temperature: float = 0.0,
                   stream: bool = False, stop: list[str] | None = None) -> ChatResult:
        """One chat completion. `schema` constrains the reply to JSON matching it; the reply ends
        before any of the `stop` strings. A last message from the assistant is a prefill: the reply
        goes on from it (llama.cpp and Ollama continue it)."""

    async def healthy(self) -> bool:
        """Whether the endpoint answers at all (a cheap request)."""

    async def aclose(self) -> None: ...


def make_client(kind: str, url: str, model: str, **options: Any) -> ChatClient:
    """A client by protocol name: "openai" (any OpenAI-compatible server) or "ollama" (native API)."""
    from gasworks.errors import ConfigError

    if kind == "openai":
        from gasworks.llm.openai import OpenAIClient

        return OpenAIClient(url, model, **options)
    if kind == "ollama":
        from gasworks.llm.ollama import OllamaClient

        return OllamaClient(url, model, **options)
    raise ConfigError(f"unknown endpoint kind {kind!r}: use openai or ollama")
