"""The dashboard's web app (Starlette) and its server (uvicorn), bound to 127.0.0.1 by default.

Pages are rendered on the server; each has a JSON twin under /api/ made from the same dict
(`/` and `/api/`, `/tasks/ID` and `/api/tasks/ID`, ...). `/api/live` streams the dashboard's
live parts as server-sent events. Actions (create, retry, cancel, priority, agent, approve, reject)
are POSTs. Every request but the static files must carry this server's token (token.py: a cookie set from the
URL `gasworks web` prints, or a header) and every action must come from this very origin;
requests whose Host header is not this server are refused (no DNS rebinding). Writes go
through the library (actions.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from gasworks.beads import task_to_record
from gasworks.errors import (
    AmbiguousIdError,
    ClaimError,
    CycleError,
    GasworksError,
    NotFoundError,
    StoreError,
    TransitionError,
)
from gasworks.project import Project
from gasworks.web import actions, pages, views
from gasworks.web.assets import ASSETS
from gasworks.web.token import TokenGate, new_token

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
MAX_BODY = 1 << 20  # bytes a form or JSON action may send
PING_SECONDS = 15.0  # an SSE comment this often, so dead connections are noticed
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]
_STATUS = {NotFoundError: 404, AmbiguousIdError: 400, TransitionError: 409, ClaimError: 409, CycleError: 409,
           StoreError: 503}


class _SecurityHeaders:
    """Adds the security headers (a strict CSP: no inline script or style) to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


class Dashboard:
    """The handlers, over one project and one open store."""

    def __init__(self, project: Project, *, actor: str, live_interval: float) -> None:
        self.project, self.actor, self.live_interval = project, actor, live_interval
        self.store = project.open_store()

    # -- pages (plain functions: Starlette runs them in its thread pool) ------------------------

    def home(self, request: Request) -> Response:
        shown, at = pages.board_filter(request.query_params)
        data = pages.dashboard(self.project, self.store, shown=shown, pages=at)
        return JSONResponse(data) if _is_api(request) else HTMLResponse(views.dashboard_html(data))

    def task(self, request: Request) -> Response:
        data = pages.task_page(self.project, self.store, request.path_params["task_id"])
        return JSONResponse(data) if _is_api(request) else HTMLResponse(views.task_html(data))

    def log(self, request: Request) -> Response:
        data = pages.attempt_log(self.project, self.store, request.path_params["task_id"],
                                 request.path_params["attempt_id"])
        return JSONResponse(data) if _is_api(request) else PlainTextResponse("\n".join(data["lines"]) + "\n")

    def merges(self, request: Request) -> Response:
        data = pages.merges_page(self.store)
        return JSONResponse(data) if _is_api(request) else HTMLResponse(views.merges_html(data))

    def stats(self, request: Request) -> Response:
        data = pages.stats_page(self.store, project=self.project)
        return JSONResponse(data) if _is_api(request) else HTMLResponse(views.stats_html(data))

    def asset(self, request: Request) -> Response:
        found = ASSETS.get(request.path_params["name"])
        if found is None:
            raise NotFoundError(f"no file {request.path_params['name']!r}")
        return Response(found[1], media_type=found[0], headers={"cache-control": "no-cache"})

    # -- the live stream ----------------------------------------------------------------------

    def _live(self, version: int | None, shown: Any = None, at: Any = None) -> tuple[dict[str, Any], dict[str, str]]:
        live = pages.live(self.project, self.store)
        board = pages.board(self.store, shown, at) if live["version"] != version else None
        return live, views.live_fragments(live, board)

    async def events(self, request: Request) -> Response:
        shown, at = pages.board_filter(request.query_params)  # the board as the page shows it

        async def stream() -> Any:
            sent: dict[str, str] = {}
            version: int | None = None
            quiet_since = time.monotonic()
            while not await request.is_disconnected():
                live, fragments = await run_in_threadpool(self._live, version, shown, at)
                changed = {key: html for key, html in fragments.items() if sent.get(key) != html}
                if changed:
                    sent.update(changed)
                    version = live["version"]
                    quiet_since = time.monotonic()
                    payload = json.dumps({"version": version, "html": changed, "live": live}, ensure_ascii=False)
                    yield f"event: fleet\ndata: {payload}\n\n"
                elif time.monotonic() - quiet_since >= PING_SECONDS:
                    quiet_since = time.monotonic()
                    yield ": ping\n\n"
                await asyncio.sleep(self.live_interval)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    # -- actions --------------------------------------------------------------------------------

    async def _fields(self, request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise GasworksError(f"the request is larger than {MAX_BODY} bytes")
        text = body.decode("utf-8", "replace")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(text or "{}")
            except ValueError as exc:
                raise GasworksError(f"the request body is not JSON: {exc}") from None
            if not isinstance(data, dict):
                raise GasworksError("the request body must be a JSON object")
            return {str(k): "" if v is None else str(v) for k, v in data.items()}
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def _act(self, action: str, task_id: str, fields: dict[str, str]) -> Any:
        if action == "create":
            return actions.create(self.project, self.store, fields, self.actor)
        if action == "retry":
            return actions.retry(self.store, task_id, self.actor)
        if action == "cancel":
            return actions.cancel(self.store, task_id, self.actor)
        if action == "priority":
            return actions.set_priority(self.store, task_id, fields.get("priority", ""), self.actor)
        if action == "agent":
            return actions.set_agent(self.store, task_id, fields.get("agent", ""), fields.get("model", ""),
                                     self.actor)
        if action == "approve":
            return actions.approve(self.store, task_id, self.actor)
        if action == "reject":
            return actions.reject(self.store, task_id, fields.get("note", ""), self.actor)
        raise NotFoundError(f"no action {action!r}: use retry, cancel, priority, agent, approve or reject")

    async def act(self, request: Request) -> Response:
        fields = await self._fields(request)
        action = request.path_params.get("action", "create")
        task = await run_in_threadpool(self._act, action, request.path_params.get("task_id", ""), fields)
        if _is_api(request):
            return JSONResponse(task_to_record(task), status_code=201 if action == "create" else 200)
        return RedirectResponse(views.task_url(task.id), status_code=303)

    # -- errors ---------------------------------------------------------------------------------

    async def error(self, request: Request, exc: Exception) -> Response:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
        if _is_api(request):
            return JSONResponse({"error": str(exc)}, status_code=status)
        return HTMLResponse(views.error_page(status, str(exc)), status_code=status)


def create_app(project: Project, *, token: str | None = None, actor: str = "web", live_interval: float = 0.5,
               allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> Starlette:
    """The dashboard for `project`. `token` (random by default) guards every page and action."""
    board = Dashboard(project, actor=actor, live_interval=live_interval)
    routes = []
    for path, endpoint in (("/", board.home), ("/tasks/{task_id}", board.task),
                           ("/tasks/{task_id}/attempts/{attempt_id:int}/log", board.log),
                           ("/merges", board.merges), ("/stats", board.stats)):
        routes += [Route(path, endpoint), Route("/api" + path, endpoint)]
    for path in ("/tasks", "/tasks/{task_id}/{action}"):
        routes += [Route(path, board.act, methods=["POST"]), Route("/api" + path, board.act, methods=["POST"])]
    routes += [Route("/api/live", board.events), Route("/static/{name}", board.asset),
               Route("/favicon.ico", lambda request: Response(status_code=204))]
    app = Starlette(routes=routes, exception_handlers={GasworksError: board.error},
                    middleware=[Middleware(_SecurityHeaders),
                                Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
                                Middleware(TokenGate, token=token or secrets.token_urlsafe(32))])
    app.state.dashboard = board
    return app


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)  # before the URL is printed: a client may connect at once
    except OSError as exc:
        sock.close()
        raise GasworksError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port "
                            "(0 takes any free one)") from None
    return sock


def serve(project: Project, *, host: str, port: int, actor: str, say: Callable[[str], None],
          on_ready: Callable[[str], None] = lambda url: None) -> None:
    """Serve the dashboard until Ctrl+C, with a new token in .gasworks/web-token; `on_ready` gets
    the URL that carries it. Loopback hosts only answer to their own names; any other host is open
    to the network (and then answers to any name)."""
    import uvicorn

    sock = _listen(host, port)
    hosts = LOOPBACK_HOSTS + (host,) if host not in ("0.0.0.0", "::") else ("*",)
    try:
        token = new_token(project.state_dir)
    except GasworksError:
        sock.close()
        raise
    app = create_app(project, token=token, actor=actor, allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/?token={token}"
    say(f"gasworks dashboard: {url}  (Ctrl+C to stop; the token is in .gasworks/web-token)")
    on_ready(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
