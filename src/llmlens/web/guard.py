"""The dashboard's guard: one pure ASGI middleware in front of every route.

What it enforces, in order (docs/ui.md, "Security"):

1. Host: when `allowed_hosts` is given (`llmlens ui` on a loopback address without a token), a request
   for any other host name is refused, so a web page whose DNS name is rebound to 127.0.0.1 cannot
   read the store through the victim's browser.
2. Same origin: a request whose `Origin` is another origin, or whose `Sec-Fetch-Site` says `cross-site`
   or `same-site`, is refused, except a plain top-level navigation to a page (a link someone followed).
   The API, the event stream and every POST answer the dashboard's own pages only. No CORS headers.
3. Token (when one is set): `Authorization: Bearer TOKEN`, or the session cookie that a
   `GET ...?token=TOKEN` sets (HttpOnly, SameSite=Strict) before it redirects to the same URL without
   the token.
4. CSRF: every request that is not GET or HEAD carries the CSRF token of the double-submit cookie, in
   the form field `csrf_token` or the `X-CSRF-Token` header, compared in constant time.

Every response gets the headers of `SECURITY_HEADERS` (a response that sets its own
Content-Security-Policy keeps it: the sandboxed profile frame).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)
SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "SAMEORIGIN"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
SESSION_COOKIE = "llmlens_ui_session"
CSRF_COOKIE = "llmlens_ui_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
TOKEN_PARAM = "token"
MAX_FORM_BYTES = 64 * 1024  # the dashboard's forms are a few short fields
_SAFE_METHODS = frozenset(("GET", "HEAD"))
_CROSS_SITE = frozenset(("cross-site", "same-site"))  # same-site: another port of the same host, too


def route_path(scope: Scope) -> str:
    """The path below the mount point (`/requests/5` for `/llmlens/requests/5` mounted at `/llmlens`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :] or "/"
    return path


def cookie_path(scope: Scope) -> str:
    return quote(scope.get("root_path") or "/", safe="/")


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, so the cookie is not the token itself."""
    return hmac.new(token.encode(), b"llmlens ui session", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """The middleware (module docstring). `token`: None for none; `allowed_hosts`: None for any."""

    def __init__(self, app: ASGIApp, token: str | None = None, allowed_hosts: Sequence[str] | None = None):
        self.app = app
        self.token = token or None
        self.session = session_value(token) if token else None
        self.allowed_hosts = None if allowed_hosts is None else {_host_name(h) for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        csrf = request.cookies.get(CSRF_COOKIE, "")
        new_csrf = None
        if not (16 <= len(csrf) <= 128 and csrf.replace("-", "").replace("_", "").isalnum()):
            csrf = new_csrf = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = csrf
        send = self._with_headers(scope, send, new_csrf)
        refusal = self._refusal(request)
        if refusal is None and request.method not in _SAFE_METHODS:
            receive, refusal = await self._check_csrf(request, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    # --- the checks -----------------------------------------------------------------------------------

    def _refusal(self, request: Request) -> Response | None:
        headers = request.headers
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            return _refuse(403, "this dashboard answers only its own host name (127.0.0.1 or localhost)")
        if self._cross_origin(request) and not self._navigation(request):
            return _refuse(403, "cross-origin request refused: the dashboard answers its own pages only")
        if self.token is None:
            return None
        given = request.query_params.get(TOKEN_PARAM)
        if given is not None and request.method in _SAFE_METHODS and _same(given, self.token):
            return self._log_in(request)  # (also when logged in: the token leaves the address bar)
        bearer = headers.get("authorization", "")
        if bearer[:7].lower() == "bearer " and _same(bearer[7:].strip(), self.token):
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None and self.session is not None and _same(cookie, self.session):
            return None
        response = _refuse(401, "this dashboard needs its token: open the URL `llmlens ui` printed")
        response.headers["www-authenticate"] = 'Bearer realm="llmlens"'
        return response

    @staticmethod
    def _cross_origin(request: Request) -> bool:
        headers = request.headers
        origin = headers.get("origin")
        if origin is not None:
            own = headers.get("host", "").lower()
            if origin == "null" or urlsplit(origin).netloc.lower() != own:
                return True
        return headers.get("sec-fetch-site", "") in _CROSS_SITE

    @staticmethod
    def _navigation(request: Request) -> bool:
        """A top-level GET of a page: a link followed from elsewhere, which cannot read the answer."""
        headers = request.headers
        return (
            request.method in _SAFE_METHODS
            and headers.get("sec-fetch-mode") == "navigate"
            and headers.get("sec-fetch-dest", "document") == "document"
            and not route_path(request.scope).startswith(("/api/", "/static/"))
        )

    def _log_in(self, request: Request) -> Response:
        """Set the session cookie and send the browser to the same URL without the token in it."""
        assert self.session is not None
        query = urlencode([(k, v) for k, v in parse_qsl(request.url.query) if k != TOKEN_PARAM])
        last = request.scope["path"].rsplit("/", 1)[-1]
        response = RedirectResponse("./" + last + (f"?{query}" if query else ""), status_code=303)
        response.headers.append("set-cookie", _cookie(SESSION_COOKIE, self.session, request.scope))
        return response

    async def _check_csrf(self, request: Request, receive: Receive) -> tuple[Receive, Response | None]:
        """Read the body (a small form), check its CSRF token against the cookie, and hand the body on."""
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_FORM_BYTES:
                return receive, _refuse(413, "form too large")
        submitted = request.headers.get(CSRF_HEADER)
        if submitted is None and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            submitted = dict(parse_qsl(body.decode("latin-1"))).get(CSRF_FIELD)
        cookie = request.cookies.get(CSRF_COOKIE)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if not cookie or not submitted or not _same(cookie, submitted):
            return replay, _refuse(403, "missing or wrong CSRF token: reload the page and try again")
        return replay, None

    # --- the headers of every response ----------------------------------------------------------------

    @staticmethod
    def _with_headers(scope: Scope, send: Send, new_csrf: str | None) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", STRICT_CSP)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
                headers.setdefault("cache-control", "no-store")
                if new_csrf is not None:
                    headers.append("set-cookie", _cookie(CSRF_COOKIE, new_csrf, scope))
            await send(message)

        return send_with_headers


def _cookie(name: str, value: str, scope: Scope) -> str:
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return f"{name}={value}; Path={cookie_path(scope)}; HttpOnly; SameSite=Strict{secure}"


def _refuse(status: int, message: str) -> Response:
    return PlainTextResponse(f"llmlens: {message}\n", status_code=status)


def csrf_token(scope_or_request: Any) -> str:
    """The CSRF token to put in this page's forms (the cookie's, or the one the guard just made)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return str(scope.get("state", {}).get("csrf_token", ""))
