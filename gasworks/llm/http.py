"""The HTTP under both clients: retries with backoff on 429/5xx and connection errors, and timeouts."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gasworks.errors import EndpointDownError, ModelError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # Ollama answers 503 "server busy" when its queue is full


class Transport:
    """An httpx client with the retry policy: `retries` more tries, backoff doubling from `backoff` s."""

    def __init__(self, base_url: str, *, timeout: float = 120.0, retries: int = 3, backoff: float = 0.5,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                      headers=headers or {})

    async def _pause(self, attempt: int, response: httpx.Response | None) -> None:
        wait = self.backoff * (2 ** attempt) * (1 + random.random() / 4)
        if response is not None and response.headers.get("retry-after", "").isdigit():
            wait = max(wait, float(response.headers["retry-after"]))
        await asyncio.sleep(wait)

    @asynccontextmanager
    async def post(self, path: str, payload: dict[str, Any], *, stream: bool) -> AsyncIterator[httpx.Response]:
        """POST with retries; yields a response with a 2xx status (its body not yet read when streaming)."""
        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = self.http.build_request("POST", url, json=payload)
                response = await self.http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if last:
                    raise EndpointDownError(f"{self.base_url} is not answering: {exc}") from None
                await self._pause(attempt, None)
                continue
            except httpx.TimeoutException:
                raise ModelError(f"{url} timed out") from None
            if response.status_code in RETRY_STATUS and not last:
                await response.aclose()
                await self._pause(attempt, response)
                continue
            if response.status_code >= 400:
                body = (await response.aread()).decode("utf-8", "replace")[:300]
                await response.aclose()
                error = EndpointDownError if response.status_code in RETRY_STATUS else ModelError
                raise error(f"{url} answered {response.status_code}: {body}")
            try:
                yield response
            except httpx.TimeoutException:
                raise ModelError(f"{url} timed out while answering") from None
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                raise EndpointDownError(f"{url} broke off its answer: {exc}") from None
            finally:
                await response.aclose()
            return

    async def get_ok(self, path: str) -> bool:
        try:
            response = await self.http.get(f"{self.base_url}{path}", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code < 400

    async def aclose(self) -> None:
        await self.http.aclose()


def decode(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ModelError(f"{what} is not JSON: {text[:200]!r}") from None


def stream_error(chunk: dict[str, Any]) -> None:
    """Servers report a failure inside a 200 stream as an `error` member (vLLM, Ollama): raise it."""
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ModelError(f"the model failed while answering: {message}")
