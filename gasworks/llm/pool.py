"""Several endpoints behind one client: each with its own concurrency limit, requests spread over the
healthy ones (least busy first), a down endpoint set aside and retried later."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from gasworks.errors import EndpointDownError
from gasworks.llm import ChatClient, ChatResult

RECHECK_SECONDS = 10.0


class SharedSlots:
    """A limit shared by every process of a fleet: `size` lock files, one per request in flight.
    Each builtin agent is its own process, so an in-process semaphore alone would let 14 agents
    send 14 requests to an endpoint that serves 4 (Ollama's OLLAMA_NUM_PARALLEL)."""

    POLL_SECONDS = 0.05

    def __init__(self, directory: Path, key: str, size: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.locks = [FileLock(str(directory / f"{key}-{n}.lock")) for n in range(size)]

    async def acquire(self) -> FileLock:
        while True:
            for lock in self.locks:
                try:
                    lock.acquire(timeout=0)
                    return lock
                except Timeout:
                    continue
            await asyncio.sleep(self.POLL_SECONDS)


@dataclass
class Endpoint:
    client: ChatClient
    max_concurrency: int
    shared: SharedSlots | None = None  # the fleet-wide limit, when agents run as separate processes
    in_flight: int = 0
    waiting: int = 0   # calls queued on this endpoint's limit: load too
    peak: int = 0
    down_until: float = 0.0
    served: int = 0
    last_error: str = ""  # why it was last set aside
    semaphore: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(self.max_concurrency)

    def healthy(self, now: float) -> bool:
        return now >= self.down_until


class AllEndpointsDown(EndpointDownError):
    """No endpoint answers: the dispatcher stops claiming (circuit breaker) instead of burning tasks."""


class EndpointPool:
    name = "pool"

    def __init__(self, endpoints: list[Endpoint], recheck_seconds: float = RECHECK_SECONDS) -> None:
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.endpoints = endpoints
        self.recheck_seconds = recheck_seconds

    def _pick(self, tried: set[int]) -> Endpoint | None:
        now = time.monotonic()
        candidates = [e for e in self.endpoints if id(e) not in tried and e.healthy(now)]
        if not candidates:
            return None
        return min(candidates, key=lambda e: ((e.in_flight + e.waiting) / e.max_concurrency, e.served))

    async def chat(self, messages: list[dict[str, Any]], **options: Any) -> ChatResult:
        tried: set[int] = set()
        while (endpoint := self._pick(tried)) is not None:
            tried.add(id(endpoint))
            endpoint.waiting += 1
            slot = None
            try:
                await endpoint.semaphore.acquire()
                slot = await endpoint.shared.acquire() if endpoint.shared else None
            except BaseException:
                endpoint.semaphore.release()
                raise
            finally:
                endpoint.waiting -= 1
            try:
                if not endpoint.healthy(time.monotonic()):
                    continue  # it went down while this call waited for its turn
                endpoint.in_flight += 1
                endpoint.peak = max(endpoint.peak, endpoint.in_flight)
                try:
                    result = await endpoint.client.chat(messages, **options)
                except EndpointDownError as exc:
                    endpoint.down_until = time.monotonic() + self.recheck_seconds
                    endpoint.last_error = str(exc)
                    continue
                finally:
                    endpoint.in_flight -= 1
            finally:
                if slot is not None:
                    slot.release()
                endpoint.semaphore.release()
            endpoint.served += 1
            return result
        raise AllEndpointsDown("every model endpoint is down: " + "; ".join(
            f"{e.client.name} ({e.last_error or 'set aside after failing'})" for e in self.endpoints))

    async def check(self) -> dict[str, bool]:
        """Health-check every endpoint now; a healthy one is back in rotation at once."""
        results = await asyncio.gather(*(e.client.healthy() for e in self.endpoints))
        now = time.monotonic()
        for endpoint, ok in zip(self.endpoints, results):
            endpoint.down_until = 0.0 if ok else now + self.recheck_seconds
        return {e.client.name: ok for e, ok in zip(self.endpoints, results)}

    def all_down(self) -> bool:
        now = time.monotonic()
        return not any(e.healthy(now) for e in self.endpoints)

    async def healthy(self) -> bool:
        return any((await self.check()).values())

    async def aclose(self) -> None:
        await asyncio.gather(*(e.client.aclose() for e in self.endpoints))


def pool_from_specs(specs: list[dict[str, Any]], slots_dir: Path | None = None) -> EndpointPool:
    """A pool from endpoint specs [{kind, url, model, max_concurrency}]; with a slots directory each
    endpoint's limit holds across every process that shares it."""
    from gasworks.llm import make_client

    endpoints = []
    for spec in specs:
        limit = int(spec.get("max_concurrency", 1))
        key = hashlib.sha1(f"{spec['url']}|{spec['model']}".encode()).hexdigest()[:12]
        shared = SharedSlots(slots_dir, key, limit) if slots_dir else None
        options = {"timeout": float(spec["timeout"])} if spec.get("timeout") else {}
        endpoints.append(Endpoint(make_client(spec["kind"], spec["url"], spec["model"], **options), limit, shared))
    return EndpointPool(endpoints)
