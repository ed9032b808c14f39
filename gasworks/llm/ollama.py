"""Ollama's native chat API (/api/chat): `format` with a JSON schema, a fixed `options.num_ctx` (a varying
one makes Ollama reload the model on every request), `keep_alive`, streaming as NDJSON, token counts."""

from __future__ import annotations

from typing import Any

from gasworks.llm import ChatResult, Usage
from gasworks.llm.http import Transport, decode, stream_error


class OllamaClient:
    def __init__(self, url: str, model: str, *, num_ctx: int = 8192, keep_alive: str = "30m",
                 timeout: float = 300.0, retries: int = 3, backoff: float = 0.5) -> None:
        self.name = f"ollama {url.rstrip('/')}"
        self.model, self.num_ctx, self.keep_alive = model, num_ctx, keep_alive
        self.transport = Transport(url, timeout=timeout, retries=retries, backoff=backoff)

    def payload(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None,
                tools: list[dict[str, Any]] | None, max_tokens: int, temperature: float, stream: bool,
                stop: list[str] | None = None) -> dict:
        body: dict[str, Any] = {
            "model": self.model, "messages": messages, "stream": stream, "keep_alive": self.keep_alive,
            "options": {"num_ctx": self.num_ctx, "temperature": temperature, "num_predict": max_tokens},
        }
        if schema is not None:
            body["format"] = schema
        if tools:
            body["tools"] = tools
        if stop:
            body["options"]["stop"] = stop
        return body

    async def chat(self, messages: list[dict[str, Any]], *, schema: dict[str, Any] | None = None,
                   tools: list[dict[str, Any]] | None = None, max_tokens: int = 512, temperature: float = 0.0,
                   stream: bool = False, stop: list[str] | None = None) -> ChatResult:
        body = self.payload(messages, schema, tools, max_tokens, temperature, stream, stop)
        async with self.transport.post("/api/chat", body, stream=stream) as response:
            if not stream:
                return self._result([decode((await response.aread()).decode("utf-8", "replace"), "the reply")])
            chunks = []
            async for line in response.aiter_lines():
                if line.strip():
                    chunks.append(decode(line, "a streamed chunk"))
                    stream_error(chunks[-1])
            return self._result(chunks)

    def _result(self, chunks: list[dict[str, Any]]) -> ChatResult:
        text = "".join((c.get("message") or {}).get("content") or "" for c in chunks)
        calls = [call for c in chunks for call in (c.get("message") or {}).get("tool_calls") or []]
        last = chunks[-1] if chunks else {}
        return ChatResult(text=text, tool_calls=calls, finish_reason=last.get("done_reason") or "",
                          usage=Usage(last.get("prompt_eval_count", 0), last.get("eval_count", 0)),
                          endpoint=self.name)

    async def healthy(self) -> bool:
        return await self.transport.get_ok("/api/tags")

    async def aclose(self) -> None:
        await self.transport.aclose()
