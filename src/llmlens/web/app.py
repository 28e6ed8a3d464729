"""The dashboard's Starlette application: `create_app(db_path, token=...)` and its routes.

Each page has a loader (its data, from the store's query functions) and a renderer (HTML); the page
route renders the loader's answer and the `/api/...` route returns the same answer as JSON. The URL
map is in llmlens.web's docstring.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from llmlens.settings import Settings, SettingsError
from llmlens.store.queries import QueryError
from llmlens.store.schema import StoreError
from llmlens.web import events, in_flight, profile_frame
from llmlens.web.guard import Guard, route_path
from llmlens.web.html import Markup
from llmlens.web.layout import Ctx, document, message
from llmlens.web.pages import live, overview, profiles, request_detail, requests, storage
from llmlens.web.reader import reading

STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


class ApiJSON(JSONResponse):
    """JSON of the API: what cannot be JSON (a NaN attribute, bytes) becomes null or text."""

    def render(self, content: Any) -> bytes:
        options: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":"), "default": str}
        try:
            text = json.dumps(content, allow_nan=False, **options)
        except ValueError:
            text = json.dumps(_finite(content), **options)
        return text.encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def db_path(request: Request) -> str:
    return str(request.app.state.db_path)


def _html(request: Request, page: str, title: str, content: Markup, status: int = 200) -> HTMLResponse:
    return HTMLResponse(document(Ctx.of(request), page, title, content), status_code=status)


def _read(request: Request, load: Callable[[sqlite3.Connection], Any]) -> Any:
    with reading(db_path(request)) as conn:
        return load(conn)


def _query(request: Request) -> dict[str, str]:
    return dict(request.query_params)


async def _form(request: Request) -> dict[str, str]:
    """The POSTed form (application/x-www-form-urlencoded; the guard has checked its CSRF token)."""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


def _see(request: Request, path: str, query: dict[str, Any] | None = None) -> RedirectResponse:
    """303 to another page of the dashboard, by a URL relative to this one (after a POST)."""
    return RedirectResponse(Ctx.of(request).url(path, query), status_code=303)


# --- pages --------------------------------------------------------------------------------------------


def overview_page(request: Request) -> Response:
    data = _read(request, lambda conn: overview.load(conn, _query(request)))
    return _html(request, "overview", "Overview", overview.render(data, Ctx.of(request)))


def requests_page(request: Request) -> Response:
    try:
        data = _read(request, lambda conn: requests.load(conn, _query(request)))
    except QueryError as error:
        content = requests.render({"query": _query(request)}, Ctx.of(request), error=str(error))
        return _html(request, "requests", "Requests", content, status=400)
    return _html(request, "requests", "Requests", requests.render(data, Ctx.of(request)))


def newer_rows(request: Request) -> Response:
    data = _read(request, lambda conn: requests.load_newer(conn, _query(request)))
    return HTMLResponse(requests.render_rows(data["rows"], Ctx.of(request).in_parent()),
                        headers={"x-latest-id": str(data["latest_id"])})  # fmt: skip


def request_page(request: Request) -> Response:
    ref = request.path_params["ref"]
    data = _read(request, lambda conn: request_detail.load(conn, ref))
    if data is None:
        raise HTTPException(404, f"no request {ref!r} in this store")
    title = f"Request {data['request']['id']}"
    return _html(request, "request", title, request_detail.render(data, Ctx.of(request)))


def live_page(request: Request) -> Response:
    data = _read(request, in_flight.snapshot)
    return _html(request, "live", "Live", live.render(data, Ctx.of(request)))


def profiles_page(request: Request) -> Response:
    data = _read(request, lambda conn: profiles.load(conn, db_path(request)))
    content = profiles.render(data, Ctx.of(request), _query(request))
    return _html(request, "profiles", "Profiles", content)


async def arm(request: Request) -> Response:
    form = await _form(request)
    try:
        arm_id = await run_in_threadpool(profiles.arm_from_form, form, db_path(request))
    except (ValueError, StoreError) as error:  # a bad field: the page again, with the form as it was
        data = await run_in_threadpool(_read, request, lambda conn: profiles.load(conn, db_path(request)))
        content = profiles.render(data, Ctx.of(request), {}, error=str(error), form=form)
        return _html(request, "profiles", "Profiles", content, status=400)
    return _see(request, "profiles", {"armed": arm_id})


async def disarm(request: Request) -> Response:
    from llmlens import profiling

    ended = await run_in_threadpool(profiling.disarm, db_path(request))
    return _see(request, "profiles", {"disarmed": ended})


def profile_page(request: Request) -> Response:
    profile_id = request.path_params["profile_id"]
    profile = _read(request, lambda conn: profiles.load_one(conn, profile_id))
    if profile is None:
        raise HTTPException(404, f"no profile {profile_id} in this store")
    return _html(request, "profile", f"Profile {profile_id}", profiles.render_one(profile, Ctx.of(request)))


def _rendered_profile(request: Request, fmt: str) -> str:
    from llmlens.profiling.render import render
    from llmlens.store.profiles import get_profile

    profile_id = request.path_params["profile_id"]
    profile = _read(request, lambda conn: get_profile(conn, profile_id))
    if profile is None:
        raise HTTPException(404, f"no profile {profile_id} in this store")
    return render(profile, fmt)


def profile_flamegraph(request: Request) -> Response:
    page = profile_frame.frame_html(_rendered_profile(request, "html"))
    return HTMLResponse(page, headers={"content-security-policy": profile_frame.CSP})


def profile_speedscope(request: Request) -> Response:
    name = f"llmlens-profile-{request.path_params['profile_id']}.speedscope.json"
    return Response(_rendered_profile(request, "speedscope"), media_type="application/json",
                    headers={"content-disposition": f'attachment; filename="{name}"'})  # fmt: skip


def storage_page(request: Request) -> Response:
    data = _read(request, lambda conn: storage.load(conn, db_path(request)))
    return _html(request, "storage", "Storage", storage.render(data, Ctx.of(request), _query(request)))


async def prune(request: Request) -> Response:
    form = await _form(request)
    vacuum = form.get("vacuum") in ("1", "on", "yes", "true")
    result = await run_in_threadpool(storage.prune_now, db_path(request), vacuum)
    return _see(request, "storage", {"pruned": result["deleted"], "vacuumed": 1 if vacuum else None})


def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        raise HTTPException(404, "no such file")
    body = resources.files("llmlens.web").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"cache-control": "no-cache"})


# --- the API ------------------------------------------------------------------------------------------


def _api(load: Callable[[Request, sqlite3.Connection], Any]) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        data = _read(request, lambda conn: load(request, conn))
        if data is None:
            raise HTTPException(404, "not found")
        return ApiJSON(data)

    return endpoint


def _health(request: Request, conn: sqlite3.Connection) -> Any:
    from llmlens.store import queries

    window = request.query_params.get("window")
    return queries.provider_health(conn, window_s=None if not window else _duration(window)).to_dict()


def _duration(text: str) -> float:
    from llmlens.store.inputs import duration

    return duration(text, "window")


def _profile(request: Request, conn: sqlite3.Connection) -> Any:
    return profiles.load_one(conn, request.path_params["profile_id"])


def _rosetta(request: Request, conn: sqlite3.Connection) -> Any:
    from llmlens.store import queries
    from llmlens.store.inputs import count

    seconds = count(request.query_params.get("series_seconds") or "60", 300, "series_seconds")
    return queries.rosetta_metrics_snapshot(conn, series_seconds=seconds)


def _vandamme(request: Request, conn: sqlite3.Connection) -> Any:
    from llmlens.store import queries

    provider, model = request.query_params.get("provider"), request.query_params.get("model")
    return queries.vandamme_running_totals(conn, provider=provider or None, model=model or None)


API_ROUTES = [
    Route("/api/overview", _api(lambda r, c: overview.load(c, _query(r)))),
    Route("/api/requests", _api(lambda r, c: requests.load(c, _query(r)))),
    Route("/api/requests/new", _api(lambda r, c: requests.load_newer(c, _query(r)))),
    Route("/api/requests/{ref}", _api(lambda r, c: request_detail.load(c, r.path_params["ref"]))),
    Route("/api/live", _api(lambda r, c: in_flight.snapshot(c))),
    Route("/api/live/stream", events.live_stream),
    Route("/api/profiles", _api(lambda r, c: profiles.load(c, db_path(r)))),
    Route("/api/profiles/{profile_id:int}", _api(_profile)),
    Route("/api/storage", _api(lambda r, c: storage.load(c, db_path(r)))),
    Route("/api/health", _api(_health)),
    Route("/api/compat/rosetta-metrics", _api(_rosetta)),
    Route("/api/compat/vandamme-totals", _api(_vandamme)),
]
PAGE_ROUTES = [
    Route("/", overview_page),
    Route("/requests", requests_page),
    Route("/requests/newer", newer_rows),
    Route("/requests/{ref}", request_page),
    Route("/live", live_page),
    Route("/profiles", profiles_page),
    Route("/profiles/arm", arm, methods=["POST"]),
    Route("/profiles/disarm", disarm, methods=["POST"]),
    Route("/profiles/{profile_id:int}", profile_page),
    Route("/profiles/{profile_id:int}/flamegraph.html", profile_flamegraph),
    Route("/profiles/{profile_id:int}/speedscope.json", profile_speedscope),
    Route("/storage", storage_page),
    Route("/storage/prune", prune, methods=["POST"]),
    Route("/static/{name}", static),
]


# --- errors -------------------------------------------------------------------------------------------


def _error(request: Request, status: int, text: str) -> Response:
    if route_path(request.scope).startswith("/api/"):
        return ApiJSON({"error": text}, status_code=status)
    content = message(text, "error", "error-message")
    return HTMLResponse(document(Ctx.of(request), "error", f"{status}", content), status_code=status)


def _handlers() -> dict[Any, Callable[..., Any]]:
    from llmlens.store.profiles import ProfileError

    def handle(status: int) -> Callable[[Request, Exception], Response]:
        return lambda request, error: _error(request, status, str(error))

    def http(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return _error(request, error.status_code, str(error.detail))

    def database(request: Request, error: Exception) -> Response:
        return _error(request, 500, f"{db_path(request)}: {error}")

    return {HTTPException: http, QueryError: handle(400), StoreError: handle(503), ProfileError: handle(422),
            SettingsError: handle(500), sqlite3.Error: database}  # fmt: skip


def create_app(
    db_path: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The dashboard over the store at `db_path` (default: $LLMLENS_DB, else the user data directory),
    as an ASGI application, to serve alone or to mount under a prefix of your own app.

    `token` (default: $LLMLENS_UI_TOKEN): every request must carry it (docs/ui.md). `allowed_hosts`:
    the host names it answers (default: any; `llmlens ui` on a loopback address gives its own).

    Example:
        >>> app.mount("/llmlens", create_app("/var/lib/app/llmlens.db", token=secret))
    """
    from llmlens.store.paths import default_db_path

    settings = Settings.from_env(only=("db_path", "ui_token"), ui_token=token)
    path = os.fspath(db_path) if db_path else settings.db_path or default_db_path()
    app = Starlette(
        routes=API_ROUTES + PAGE_ROUTES,
        middleware=[Middleware(Guard, token=settings.ui_token, allowed_hosts=allowed_hosts)],
        exception_handlers=_handlers(),
    )
    app.state.db_path = path
    app.state.stopping = threading.Event()  # set when the server stops: the event streams end
    return app
