"""OpenAI-compatible chat completions (/v1/chat/completions): vLLM, llama.cpp's server, LM Studio, the
embedded engine. Streaming, JSON-schema output (`response_format`), tool calls, token usage."""

from __future__ import annotations

from typing import Any

from gasworks.llm import ChatResult, Usage
from gasworks.llm.http import Transport, decode, stream_error


class OpenAIClient:
    def __init__(self, url: str, model: str, *, api_key: str = "", timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5) -> None:
        base = url.rstrip("/")
        self.name = f"openai {base}"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.transport = Transport(base if base.endswith("/v1") else f"{base}/v1", timeout=timeout,
                                   retries=retries, backoff=backoff, headers=headers)

    def payload(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None,
                tools: list[dict[str, Any]] | None, max_tokens: int, temperature: float, stream: bool,
                stop: list[str] | None = None) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "reply", "schema": schema, "strict": True}}
        if tools:
            body["tools"] = tools
        if stop:
            body["stop"] = stop
        return body

    async def chat(self, messages: list[dict[str, Any]], *, schema: dict[str, Any] | None = None,
                   tools: list[dict[str, Any]] | None = None, max_tokens: int = 512, temperature: float = 0.0,
                   stream: bool = False, stop: list[str] | None = None) -> ChatResult:
        body = self.payload(messages, schema, tools, max_tokens, temperature, stream, stop)
        async with self.transport.post("/chat/completions", body, stream=stream) as response:
            if not stream:
                return self._result(decode((await response.aread()).decode("utf-8", "replace"), "the reply"))
            return await self._collect(response)

    def _result(self, data: dict[str, Any]) -> ChatResult:
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        return ChatResult(text=message.get("content") or "", tool_calls=message.get("tool_calls") or [],
                          finish_reason=choice.get("finish_reason") or "", endpoint=self.name,
                          usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))

    async def _collect(self, response: Any) -> ChatResult:
        """Server-sent events: content deltas, tool-call deltas, and usage in the last chunk."""
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage, finish = Usage(), ""
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = decode(data, "a streamed chunk")
            stream_error(chunk)
            if chunk.get("usage"):
                usage = Usage(chunk["usage"].get("prompt_tokens", 0), chunk["usage"].get("completion_tokens", 0))
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                parts.append(delta.get("content") or "")
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(call.get("index", 0), {"id": "", "type": "function",
                                                                   "function": {"name": "", "arguments": ""}})
                    slot["id"] = call.get("id") or slot["id"]
                    function = call.get("function") or {}
                    slot["function"]["name"] += function.get("name") or ""
                    slot["function"]["arguments"] += function.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
        return ChatResult(text="".join(parts), usage=usage, tool_calls=[calls[i] for i in sorted(calls)],
                          finish_reason=finish, endpoint=self.name)

    async def healthy(self) -> bool:
        return await self.transport.get_ok("/models")

    async def aclose(self) -> None:
        await self.transport.aclose()
