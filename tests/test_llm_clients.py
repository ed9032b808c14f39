"""Contract tests of the OpenAI-compatible and Ollama-native clients, and of the endpoint pool, against a
real HTTP server on 127.0.0.1 whose replies each test scripts.

`ScriptedServer` speaks plain HTTP/1.1 (JSON bodies, chunked streams). `OpenAIProtocol` and
`OllamaProtocol` build the replies each API really sends, so the shared tests run once per protocol.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from gasworks.errors import ConfigError, EndpointDownError, GasworksError, ModelError
from gasworks.llm import make_client
from gasworks.llm.ollama import OllamaClient
from gasworks.llm.openai import OpenAIClient
from gasworks.llm.pool import AllEndpointsDown, Endpoint, EndpointPool

MODEL = "test-model"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
FAST = {"retries": 2, "backoff": 0.01}  # retry policy for tests: 3 requests at most, ~0.03 s of backoff


# --- the scripted server ------------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted response. `body` is sent as JSON with a Content-Length, `chunks` as a chunked stream."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    delay: float = 0.0  # seconds before the status line
    chunk_delay: float = 0.0  # seconds between chunks
    cut: bool = False  # drop the connection before the end of the stream


@dataclass
class Request:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


HEALTH = {"/v1/models": {"object": "list", "data": [{"id": MODEL, "object": "model"}]},
          "/api/tags": {"models": [{"name": MODEL, "model": MODEL}]}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like the real servers

    def do_GET(self) -> None:
        self.server.owner.handle(self)  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.owner.handle(self)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ScriptedServer:
    """A threaded HTTP server on 127.0.0.1. `script(path, *replies)` queues replies for a path; the last
    one repeats. Every request is recorded in `requests`; `peak` is the most POSTs it ever served at once."""

    def __init__(self, port: int = 0) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Request] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.replies: dict[str, deque[Reply]] = {}
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.replies[path] = deque(replies)

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.stopping.set()  # wakes handlers sleeping in a delay
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def _next(self, path: str) -> Reply:
        queue = self.replies.get(path)
        if queue:
            return queue.popleft() if len(queue) > 1 else queue[0]
        if path in HEALTH:
            return Reply(HEALTH[path])
        return Reply({"error": f"no route {path}"}, status=404)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        counted = h.command == "POST"
        with self.lock:
            self.requests.append(Request(h.command, h.path, json.loads(raw) if raw else None, dict(h.headers)))
            reply = self._next(h.path)
            if counted:
                self.active += 1
                self.peak = max(self.peak, self.active)

        def leave() -> None:  # called before the last bytes go out, so the client is still waiting then
            nonlocal counted
            if counted:
                with self.lock:
                    self.active -= 1
                counted = False

        try:
            self._send(h, reply, leave)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            h.close_connection = True
        finally:
            leave()

    def _send(self, h: BaseHTTPRequestHandler, reply: Reply, leave: Callable[[], None]) -> None:
        if self.stopping.wait(reply.delay):
            h.close_connection = True
            return
        if reply.chunks is None:
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            leave()
            h.send_response(reply.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(data)
            return
        h.send_response(reply.status)
        h.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            h.send_header(name, value)
        h.end_headers()
        for i, chunk in enumerate(reply.chunks):
            if i and self.stopping.wait(reply.chunk_delay):
                h.close_connection = True
                return
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if reply.cut:
            h.close_connection = True  # no terminating chunk: the stream ends early
            return
        leave()
        h.wfile.write(b"0\r\n\r\n")


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (bound once to choose it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resplit(chunks: list[bytes], size: int) -> list[bytes]:
    """The same stream cut every `size` bytes, so lines and events straddle chunk boundaries."""
    data = b"".join(chunks)
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.fixture
def servers():
    """A factory of scripted servers, all stopped at the end of the test."""
    started: list[ScriptedServer] = []

    def start(port: int = 0) -> ScriptedServer:
        started.append(ScriptedServer(port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(servers) -> ScriptedServer:
    return servers()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours *_PROXY variables; requests to the local server must not go through one."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- the two protocols --------------------------------------------------------------------------------


class OpenAIProtocol:
    kind = "openai"
    chat_path = "/v1/chat/completions"
    tool_call: ClassVar[dict] = {"id": "call_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}

    @staticmethod
    def reply(text: str = "", *, prompt: int = 0, completion: int = 0, finish: str = "stop",
              tool_calls: list | None = None, delay: float = 0.0) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return Reply({"id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
                      "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                      "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                "total_tokens": prompt + completion}}, delay=delay)

    @staticmethod
    def stream(pieces: list[str], *, prompt: int = 0, completion: int = 0, finish: str = "stop") -> Reply:
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
        events = [choice_event(delta) for delta in deltas] + [choice_event({}, finish)]
        events.append({"object": "chat.completion.chunk", "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})
        return sse(events)

    @staticmethod
    def stream_error(message: str) -> Reply:
        return sse([choice_event({"role": "assistant", "content": "Hel"}),
                    {"error": {"message": message, "type": "InternalServerError", "code": 500}}])

    @staticmethod
    def sent_limits(body: dict) -> tuple[int, float]:
        return body["max_tokens"], body["temperature"]


def choice_event(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def sse(events: list[dict]) -> Reply:
    """Server-sent events, one event per chunk, ended by `data: [DONE]`."""
    chunks = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
    return Reply(chunks=chunks, headers={"Content-Type": "text/event-stream"})


class OllamaProtocol:
    kind = "ollama"
    chat_path = "/api/chat"
    tool_call: ClassVar[dict] = {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}

    @staticmethod
    def reply(text: str = "", *, prompt: int = 0, completion: int = 0, finish: str = "stop",
              tool_calls: list | None = None, delay: float = 0.0) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return Reply({"model": MODEL, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": True,
                      "done_reason": finish, "total_duration": 1000, "prompt_eval_count": prompt,
                      "eval_count": completion}, delay=delay)

    @staticmethod
    def stream(pieces: list[str], *, prompt: int = 0, completion: int = 0, finish: str = "stop") -> Reply:
        lines = [{"model": MODEL, "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
        lines.append({"model": MODEL, "message": {"role": "assistant", "content": ""}, "done": True,
                      "done_reason": finish, "prompt_eval_count": prompt, "eval_count": completion})
        return ndjson(lines)

    @staticmethod
    def stream_error(message: str) -> Reply:
        return ndjson([{"model": MODEL, "message": {"role": "assistant", "content": "Hel"}, "done": False},
                       {"error": message}])

    @staticmethod
    def sent_limits(body: dict) -> tuple[int, float]:
        return body["options"]["num_predict"], body["options"]["temperature"]


def ndjson(lines: list[dict]) -> Reply:
    return Reply(chunks=[(json.dumps(line) + "\n").encode() for line in lines],
                 headers={"Content-Type": "application/x-ndjson"})


PROTOCOLS = [pytest.param(OpenAIProtocol, id="openai"), pytest.param(OllamaProtocol, id="ollama")]


def chat(client: Any, **options: Any) -> Any:
    """One chat() on a fresh event loop; the client is closed afterwards."""

    async def go() -> Any:
        try:
            return await client.chat(MESSAGES, **options)
        finally:
            await client.aclose()

    return asyncio.run(go())


def healthy(client: Any) -> bool:
    async def go() -> bool:
        try:
            return await client.healthy()
        finally:
            await client.aclose()

    return asyncio.run(go())


# --- one request, one answer --------------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_plain_reply_gives_text_usage_and_finish_reason(server, proto):
    server.script(proto.chat_path, proto.reply("Hello there.", prompt=21, completion=4))
    result = chat(make_client(proto.kind, server.url, MODEL), max_tokens=64, temperature=0.3)

    assert (result.text, result.finish_reason) == ("Hello there.", "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (21, 4)
    assert result.tool_calls == []
    assert server.url in result.endpoint
    [body] = server.bodies(proto.chat_path)
    assert (body["model"], body["messages"], body["stream"]) == (MODEL, MESSAGES, False)
    assert proto.sent_limits(body) == (64, 0.3)


def test_openai_url_may_already_end_in_v1(server):
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("ok"))
    assert chat(make_client("openai", server.url + "/v1/", MODEL)).text == "ok"
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]


def test_openai_api_key_is_sent_as_bearer_token(server):
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("ok"))
    assert chat(make_client("openai", server.url, MODEL, api_key="sk-test")).text == "ok"
    assert server.requests[0].headers["Authorization"] == "Bearer sk-test"


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def test_openai_schema_goes_in_response_format(server):
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply('{"answer": "hi"}'))
    result = chat(make_client("openai", server.url, MODEL), schema=SCHEMA)

    assert json.loads(result.text) == {"answer": "hi"}
    [body] = server.bodies(OpenAIProtocol.chat_path)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["response_format"]["json_schema"]["name"]  # OpenAI rejects a json_schema without a name


def test_openai_sends_no_response_format_without_schema(server):
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("hi"))
    chat(make_client("openai", server.url, MODEL))
    [body] = server.bodies(OpenAIProtocol.chat_path)
    assert "response_format" not in body


def test_ollama_schema_goes_in_format_with_fixed_num_ctx_and_keep_alive(server):
    server.script(OllamaProtocol.chat_path, OllamaProtocol.reply('{"answer": "hi"}'))

    async def two_requests() -> Any:
        client = make_client("ollama", server.url, MODEL, num_ctx=4096, keep_alive="10m")
        try:
            with_schema = await client.chat(MESSAGES, schema=SCHEMA, max_tokens=100)
            await client.chat(MESSAGES, max_tokens=2000)
            return with_schema
        finally:
            await client.aclose()

    assert json.loads(asyncio.run(two_requests()).text) == {"answer": "hi"}
    first, second = server.bodies(OllamaProtocol.chat_path)
    assert first["format"] == SCHEMA and "format" not in second
    # A num_ctx that varies makes Ollama reload the model: the configured value, whatever max_tokens is.
    assert [b["options"]["num_ctx"] for b in (first, second)] == [4096, 4096]
    assert [b["keep_alive"] for b in (first, second)] == ["10m", "10m"]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_tool_calls_are_passed_through(server, proto):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    server.script(proto.chat_path, proto.reply("", finish="tool_calls", tool_calls=[proto.tool_call]))
    result = chat(make_client(proto.kind, server.url, MODEL), tools=tools)

    assert result.tool_calls == [proto.tool_call]
    assert result.text == ""
    [body] = server.bodies(proto.chat_path)
    assert body["tools"] == tools


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_reply_that_is_not_json_is_model_error(server, proto):
    server.script(proto.chat_path, Reply(b"<html>502 Bad Gateway</html>"))
    with pytest.raises(ModelError, match="not JSON"):
        chat(make_client(proto.kind, server.url, MODEL, **FAST))


# --- streaming ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_stream_pieces_split_anywhere_are_joined_with_usage_from_last_chunk(server, proto):
    reply = proto.stream(["Hel", "lo, ", "wor", "ld!"], prompt=30, completion=5)
    reply.chunks = resplit(reply.chunks, 7)  # events and lines straddle chunk boundaries
    server.script(proto.chat_path, reply)
    result = chat(make_client(proto.kind, server.url, MODEL), stream=True)

    assert (result.text, result.finish_reason) == ("Hello, world!", "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (30, 5)
    [body] = server.bodies(proto.chat_path)
    assert body["stream"] is True


def test_openai_stream_asks_for_usage(server):
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.stream(["hi"]))
    chat(make_client("openai", server.url, MODEL), stream=True)
    [body] = server.bodies(OpenAIProtocol.chat_path)
    assert body["stream_options"] == {"include_usage": True}


def test_openai_stream_joins_tool_call_deltas(server):
    deltas = [
        {"role": "assistant", "content": None,
         "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                         "function": {"name": "get_time", "arguments": "{}"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
    ]
    events = [choice_event(d) for d in deltas] + [choice_event({}, "tool_calls")]
    events.append({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 12}})
    server.script(OpenAIProtocol.chat_path, sse(events))
    result = chat(make_client("openai", server.url, MODEL), stream=True)

    assert result.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert (result.text, result.finish_reason) == ("", "tool_calls")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (50, 12)


def test_ollama_stream_collects_tool_calls(server):
    call = OllamaProtocol.tool_call
    lines = [{"model": MODEL, "message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": False},
             {"model": MODEL, "message": {"role": "assistant", "content": ""}, "done": True,
              "done_reason": "stop", "prompt_eval_count": 40, "eval_count": 9}]
    server.script(OllamaProtocol.chat_path, ndjson(lines))
    result = chat(make_client("ollama", server.url, MODEL), stream=True)
    assert result.tool_calls == [call]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (40, 9)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_stream_cut_short_raises_a_gasworks_error(server, proto):
    reply = proto.stream(["Hel", "lo"], prompt=3, completion=2)
    reply.chunks, reply.cut = reply.chunks[:2], True  # the connection drops before the end of the reply
    server.script(proto.chat_path, reply)
    with pytest.raises(GasworksError):
        chat(make_client(proto.kind, server.url, MODEL, **FAST), stream=True)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_error_inside_stream_raises_model_error(server, proto):
    server.script(proto.chat_path, proto.stream_error("CUDA out of memory"))
    with pytest.raises(ModelError, match="out of memory"):
        chat(make_client(proto.kind, server.url, MODEL), stream=True)


# --- retries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_503_twice_then_answer(server, proto):
    busy = Reply({"error": "server busy, please try again"}, status=503)
    server.script(proto.chat_path, busy, busy, proto.reply("finally"))
    assert chat(make_client(proto.kind, server.url, MODEL, **FAST)).text == "finally"
    assert len(server.bodies(proto.chat_path)) == 3


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_429_with_retry_after_zero_then_answer(server, proto):
    limited = Reply({"error": "rate limited"}, status=429, headers={"Retry-After": "0"})
    server.script(proto.chat_path, limited, proto.reply("ok"))
    assert chat(make_client(proto.kind, server.url, MODEL, **FAST)).text == "ok"
    assert len(server.bodies(proto.chat_path)) == 2


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_retry_after_is_waited_for(server, proto):
    limited = Reply({"error": "rate limited"}, status=429, headers={"Retry-After": "1"})
    server.script(proto.chat_path, limited, proto.reply("ok"))
    started = time.monotonic()
    assert chat(make_client(proto.kind, server.url, MODEL, **FAST)).text == "ok"
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_503_every_time_is_endpoint_down_after_all_retries(server, proto):
    server.script(proto.chat_path, Reply({"error": "server busy"}, status=503))
    with pytest.raises(EndpointDownError, match="503"):
        chat(make_client(proto.kind, server.url, MODEL, **FAST))
    assert len(server.bodies(proto.chat_path)) == FAST["retries"] + 1


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_400_is_model_error_at_once(server, proto):
    server.script(proto.chat_path, Reply({"error": "invalid schema"}, status=400))
    with pytest.raises(ModelError, match="400") as raised:
        chat(make_client(proto.kind, server.url, MODEL, **FAST))
    assert not isinstance(raised.value, EndpointDownError)
    assert "invalid schema" in str(raised.value)
    assert len(server.bodies(proto.chat_path)) == 1


# --- timeouts and down endpoints ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_slow_server_times_out_quickly_without_retry(server, proto, stream):
    reply = proto.stream(["late"]) if stream else proto.reply("late")
    reply.delay = 2.0
    server.script(proto.chat_path, reply)
    started = time.monotonic()
    with pytest.raises(ModelError, match="timed out"):
        chat(make_client(proto.kind, server.url, MODEL, timeout=0.5, **FAST), stream=stream)
    assert time.monotonic() - started < 1.5
    assert len(server.bodies(proto.chat_path)) == 1


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_stream_that_stalls_midway_times_out(server, proto):
    reply = proto.stream(["Hel", "lo"])
    reply.chunk_delay = 2.0
    server.script(proto.chat_path, reply)
    started = time.monotonic()
    with pytest.raises(ModelError, match="timed out"):
        chat(make_client(proto.kind, server.url, MODEL, timeout=0.5, **FAST), stream=True)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_down_endpoint_raises_endpoint_down_and_is_not_healthy(proto):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EndpointDownError, match="not answering"):
        chat(make_client(proto.kind, url, MODEL, **FAST))
    assert healthy(make_client(proto.kind, url, MODEL, **FAST)) is False


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_scripted_server_is_healthy(server, proto):
    assert healthy(make_client(proto.kind, server.url, MODEL)) is True
    assert [(r.method, r.path) for r in server.requests] == [("GET", HEALTH_PATH[proto.kind])]


HEALTH_PATH = {"openai": "/v1/models", "ollama": "/api/tags"}


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_health_check_failing_with_500_is_not_healthy(server, proto):
    server.script(HEALTH_PATH[proto.kind], Reply({"error": "loading"}, status=500))
    assert healthy(make_client(proto.kind, server.url, MODEL)) is False


# --- make_client --------------------------------------------------------------------------------------


def test_make_client_builds_the_client_for_each_kind():
    openai = make_client("openai", "http://127.0.0.1:1", MODEL, api_key="k", timeout=5.0)
    ollama = make_client("ollama", "http://127.0.0.1:2/", MODEL, num_ctx=2048)
    assert isinstance(openai, OpenAIClient) and openai.model == MODEL
    assert openai.transport.base_url == "http://127.0.0.1:1/v1"
    assert isinstance(ollama, OllamaClient) and ollama.num_ctx == 2048
    assert ollama.transport.base_url == "http://127.0.0.1:2"
    asyncio.run(openai.aclose())
    asyncio.run(ollama.aclose())


def test_make_client_rejects_an_unknown_kind():
    with pytest.raises(ConfigError, match="vllm"):
        make_client("vllm", "http://127.0.0.1:1", MODEL)


# --- the endpoint pool --------------------------------------------------------------------------------


def pool_run(pool: EndpointPool, calls: int) -> list[Any]:
    """`calls` concurrent chat() calls through the pool; the pool is closed afterwards."""

    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*(pool.chat(MESSAGES) for _ in range(calls)))
        finally:
            await pool.aclose()

    return asyncio.run(go())


def two_endpoints(url_a: str, url_b: str, limits: tuple[int, int] = (3, 2)) -> EndpointPool:
    """An OpenAI-compatible endpoint and an Ollama one: the pool does not care which protocol."""
    return EndpointPool([Endpoint(make_client("openai", url_a, MODEL, **FAST), limits[0]),
                         Endpoint(make_client("ollama", url_b, MODEL, **FAST), limits[1])],
                        recheck_seconds=60.0)


def test_pool_spreads_50_calls_within_each_endpoints_limit(servers):
    a, b = servers(), servers()
    a.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("from a", delay=0.2))
    b.script(OllamaProtocol.chat_path, OllamaProtocol.reply("from b", delay=0.2))
    pool = two_endpoints(a.url, b.url)
    results = pool_run(pool, 50)

    assert len(results) == 50 and {r.text for r in results} <= {"from a", "from b"}
    assert (a.peak, b.peak) == (3, 2)  # each limit reached, never passed (measured by the servers)
    assert [e.peak for e in pool.endpoints] == [3, 2]
    assert len(a.bodies(OpenAIProtocol.chat_path)) > 0 and len(b.bodies(OllamaProtocol.chat_path)) > 0
    assert sum(e.served for e in pool.endpoints) == 50
    assert [e.in_flight for e in pool.endpoints] == [0, 0]


def test_pool_shares_queued_calls_by_capacity(servers):
    a, b = servers(), servers()
    a.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("from a", delay=0.05))
    b.script(OllamaProtocol.chat_path, OllamaProtocol.reply("from b", delay=0.05))
    pool = two_endpoints(a.url, b.url)
    pool_run(pool, 50)
    served = [e.served for e in pool.endpoints]
    assert min(served) >= 10, served  # a 3:2 split is 30:20


def test_pool_sends_nothing_more_to_an_endpoint_once_it_is_marked_down(servers):
    busy, live = servers(), servers()
    busy.script(OpenAIProtocol.chat_path, Reply({"error": "server busy"}, status=503))
    live.script(OllamaProtocol.chat_path, OllamaProtocol.reply("alive"))
    pool = two_endpoints(busy.url, live.url)
    results = pool_run(pool, 10)

    assert [r.text for r in results] == ["alive"] * 10
    # Only the 3 calls in flight when it was found busy reach it, each with its retries.
    assert len(busy.bodies(OpenAIProtocol.chat_path)) <= 3 * (FAST["retries"] + 1)


def test_pool_sends_everything_to_the_live_endpoint_when_one_is_down(servers):
    live = servers()
    live.script(OllamaProtocol.chat_path, OllamaProtocol.reply("alive"))
    pool = two_endpoints(f"http://127.0.0.1:{free_port()}", live.url)
    results = pool_run(pool, 10)

    assert [r.text for r in results] == ["alive"] * 10
    assert len(live.bodies(OllamaProtocol.chat_path)) == 10
    assert [e.served for e in pool.endpoints] == [0, 10]
    assert pool.endpoints[0].down_until > time.monotonic()  # set aside until the recheck


def test_pool_with_every_endpoint_down_raises_all_down():
    pool = two_endpoints(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(AllEndpointsDown):
        pool_run(pool, 1)
    assert pool.all_down() is True


def test_pool_check_brings_a_recovered_endpoint_back(servers):
    port = free_port()
    b = servers()
    b.script(OllamaProtocol.chat_path, OllamaProtocol.reply("from b"))
    pool = two_endpoints(f"http://127.0.0.1:{port}", b.url)

    async def scenario() -> tuple[dict[str, bool], list[str]]:
        try:
            assert (await pool.chat(MESSAGES)).text == "from b"  # a is found down and set aside
            a = servers(port)  # a comes back on its old port
            a.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("from a"))
            assert (await pool.chat(MESSAGES)).text == "from b"  # still set aside: no recheck yet
            health = await pool.check()
            texts = [(await pool.chat(MESSAGES)).text for _ in range(4)]
            return health, texts
        finally:
            await pool.aclose()

    health, texts = asyncio.run(scenario())
    assert list(health.values()) == [True, True]
    assert "from a" in texts and pool.all_down() is False


def test_shared_slots_hold_the_limit_across_agent_processes(server, tmp_path):
    """Each builtin agent is its own process: six of them, an endpoint that serves two at a time."""
    server.script(OpenAIProtocol.chat_path, OpenAIProtocol.reply("ok", delay=0.2))
    endpoints = json.dumps([{"kind": "openai", "url": server.url, "model": MODEL, "max_concurrency": 2}])
    code = ("import asyncio, sys\n"
            "from gasworks.agents.builtin import pool_from_env\n"
            "async def main():\n"
            "    pool = pool_from_env(sys.argv[1], sys.argv[2])\n"
            "    for _ in range(3):\n"
            "        await pool.chat([{'role': 'user', 'content': 'hi'}])\n"
            "    await pool.aclose()\n"
            "asyncio.run(main())\n")
    agents = [subprocess.Popen([sys.executable, "-c", code, endpoints, str(tmp_path / "slots")])
              for _ in range(6)]
    assert [agent.wait(timeout=60) for agent in agents] == [0] * 6
    assert len(server.bodies(OpenAIProtocol.chat_path)) == 18
    assert server.peak == 2
