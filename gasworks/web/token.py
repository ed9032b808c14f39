"""The dashboard's token: what lets a browser or a script use the dashboard, and nobody else.

Each time `gasworks web` starts it writes a new random token to .gasworks/web-token, a file only
this account can read (mode 0600, created afresh: never through a symlink, never an old file),
and prints the dashboard's URL with it (`/?token=...`). The first visit with the right `?token=`
sets an HttpOnly, SameSite=Strict cookie and moves on to the same page without the token;
after that the browser sends the cookie. Scripts send the token as `Authorization: Bearer ...`
or `X-Gasworks-Token`. Every page, its JSON twin and every action need it (only /static/ and
/favicon.ico do not), and no page contains it, so another account on this machine, which can
reach 127.0.0.1 but not read the file, can neither read nor change anything. A write must also
come from this very origin (Origin, Sec-Fetch-Site): a page of another site (or another port)
cannot make one, even though the browser would send the cookie along.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from gasworks.errors import GasworksError
from gasworks.web.views import error_page

TOKEN_FILE = "web-token"  # in .gasworks/
LAUNCHER_FILE = "web-open.html"  # what `--open` opens: the token never goes on a command line
PUBLIC_PATHS = ("/static/", "/favicon.ico")  # the same for everyone, nothing of the project
READ_METHODS = ("GET", "HEAD")
NEEDS_TOKEN = ("this dashboard needs its token: open the URL `gasworks web` printed, or send the token in "
               ".gasworks/web-token as an Authorization: Bearer header")


def write_private(path: Path, text: str) -> None:
    """`text` in a new file at `path` that only this account can read or write (0600). Whatever was
    at `path` is removed first (a symlink itself, never its target); if something appears there
    meanwhile, nothing is written."""
    try:
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise GasworksError(f"{path} was created again while gasworks replaced it: start `gasworks web` "
                            "again") from None
    except OSError as exc:
        raise GasworksError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # exactly 0600, whatever the umask
        file.write(text)


def new_token(state_dir: Path) -> str:
    """A new random token, written to .gasworks/web-token (0600) for scripts and for the user."""
    token = secrets.token_urlsafe(32)
    write_private(state_dir / TOKEN_FILE, token + "\n")
    return token


def open_in_browser(state_dir: Path, url: str) -> None:
    """Open `url` (with its token) in the user's browser through a 0600 page that forwards to it: a
    browser started with the URL itself would show the token to every account in `ps`."""
    import webbrowser

    launcher = state_dir / LAUNCHER_FILE
    shown = escape(url, quote=True)
    write_private(launcher, f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url='
                            f'{shown}"><title>gasworks</title><a href="{shown}">Open the gasworks dashboard</a>\n')
    webbrowser.open(launcher.as_uri())


def cookie_name(scope: dict[str, Any]) -> str:
    """One cookie per port: browsers send a host's cookies to all its ports, and each dashboard
    (one per project) has its own token."""
    server = scope.get("server") or ("", 0)
    return f"gasworks-token-{server[1]}"


def _refuse(request: Request, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=403)
    return HTMLResponse(error_page(403, message), status_code=403)


def _foreign(request: Request) -> str:
    """Why a write comes from somewhere else than this dashboard's own pages ("" if it does not)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
        return f"a request from {origin} is refused: actions come only from the dashboard itself"
    site = request.headers.get("sec-fetch-site")
    if site not in (None, "same-origin", "none"):
        return f"a {site} request is refused: actions come only from the dashboard itself"
    return ""


class TokenGate:
    """ASGI middleware: lets through requests that carry the token and, for writes, come from this
    origin; signs a browser in from `?token=`; refuses everything else with 403."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self.token)

    def _carries_token(self, request: Request, cookie: str) -> bool:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        given = [request.cookies.get(cookie), request.headers.get("x-gasworks-token"),
                 bearer.strip() if scheme.lower() == "bearer" else None]
        return any(self._matches(value) for value in given)

    def _sign_in(self, request: Request, given: str, cookie: str) -> Response:
        if not self._matches(given):
            return _refuse(request, "the token in this URL is not this dashboard's: open the URL `gasworks web` "
                                    "printed when it last started")
        rest = [(key, value) for key, value in request.query_params.multi_items() if key != "token"]
        target = escape("/" + request.url.path.lstrip("/") + (f"?{urlencode(rest)}" if rest else ""))  # not //host
        # A page that moves on by itself rather than a 303: when the visit came from elsewhere (the
        # launcher page of `--open`, a link), browsers hold a Strict cookie back for a whole redirect
        # chain, but send it when this page, of this origin, moves on.
        response = HTMLResponse(f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url='
                                f'{target}"><title>gasworks</title><a href="{target}">Open the dashboard</a>\n',
                                headers={"cache-control": "no-store"})
        response.set_cookie(cookie, given, httponly=True, samesite="strict", path="/")
        return response

    def _check(self, request: Request, cookie: str) -> Response | None:
        given = request.query_params.get("token")
        if given is not None and request.method in READ_METHODS:
            return self._sign_in(request, given, cookie)
        if not self._carries_token(request, cookie):
            return _refuse(request, NEEDS_TOKEN)
        reason = "" if request.method in READ_METHODS else _foreign(request)
        return _refuse(request, reason) if reason else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        response = self._check(Request(scope), cookie_name(scope))
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)
