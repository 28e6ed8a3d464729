"""The dashboard (`llmlens ui`, llmlens.web) under a real uvicorn on 127.0.0.1, over real store files.

The store is filled by real instrumented calls: `llmlens demo --capture-content` (openai, anthropic and
gemini SDKs against the fake providers, a profile) and, in this process, openai calls and a proxied
request whose model name, error message, route and captured content are `<script>` payloads. The pages
and the API are read with httpx: every page and endpoint, filters and keyset pages, the live request
log, the requests in flight (tests/active_app.py streaming in its own process), the profile views, the
guard (CSP and headers, CSRF, cross-origin requests, the token, the host name) and a mount under a
prefix. The `llmlens ui` command runs as a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import openai
import pytest

from llmlens.demo.fake_server import FakeProvider
from llmlens.store import open_store, queries
from llmlens.web import create_app
from llmlens.web.guard import STRICT_CSP
from proxies.server import UvicornServer
from speedscope_schema import validate_speedscope
from store_data import NS, record, spec

LLMLENS = str(Path(sys.executable).with_name("llmlens"))
TESTS = Path(__file__).parent
PAYLOAD_MODEL = "<script>alert('model')</script>"
PAYLOAD_MISSING = "<script>alert('error')</script>"  # a model the provider refuses: in the error message
PAYLOAD_CONTENT = "<script>alert('content')</script>"
PAYLOAD_ROUTE = "/proxy/<script>alert('route')</script>/v1/chat/completions"
PAGES = ("", "?window=1h", "?window=7d", "requests", "live", "profiles", "storage")


# --- reading pages ------------------------------------------------------------------------------------


class Page(HTMLParser):
    """What the tests look at in a page: elements by id, links, forms' hidden fields, scripts, styles."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: dict[str, tuple[str, dict[str, str]]] = {}
        self.links: list[str] = []  # href, src and form action values
        self.hidden: dict[str, str] = {}
        self.scripts: list[dict[str, str]] = []
        self.inline: list[str] = []  # style attributes and on* handlers: what the CSP would block
        self.text: dict[str, str] = {}
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids[values["id"]] = (tag, values)
        for name in ("href", "src", "action"):
            if name in values:
                self.links.append(values[name])
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"]] = values["value"]
        if tag == "script":
            self.scripts.append(values)
        self.inline += [k for k in values if k == "style" or k.startswith("on")]
        if tag not in ("input", "link", "meta", "br", "img"):
            self._open.append(values.get("id", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("input", "link", "meta", "br", "img") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            if element_id:
                self.text[element_id] = self.text.get(element_id, "") + data


def get_page(client: httpx.Client, url: str, status: int = 200) -> Page:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


def api(client: httpx.Client, path: str, status: int = 200) -> Any:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    return response.json()


# --- the store ------------------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(extra)
    return env


def record_payloads(path: str) -> None:
    """Real instrumented calls whose model name, error, route and content are <script> payloads."""
    from opentelemetry.sdk.trace import TracerProvider

    from llmlens import Instrumentor, llm_request
    from llmlens.store.attach import attached_store

    tracer_provider = TracerProvider()
    instrumentor = Instrumentor()
    with FakeProvider() as fake:
        instrumentor.instrument(
            tracer_provider=tracer_provider, capture_content="SPAN_ONLY", store=True, db_path=path,
            provider_map={f"127.0.0.1:{fake.port}": "openai"},
        )  # fmt: skip
        try:
            client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
            client.chat.completions.create(
                model=PAYLOAD_MODEL, messages=[{"role": "user", "content": PAYLOAD_CONTENT}]
            )
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(
                    model=PAYLOAD_MISSING,
                    messages=[{"role": "user", "content": "Hi"}],
                    extra_headers={"x-fake-scenario": "status=404"},
                )
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
            with llm_request(
                source_format="openai", body=json.dumps(body).encode(), path=PAYLOAD_ROUTE
            ) as request:
                completion = client.chat.completions.create(**body)  # the upstream leg
                request.set_response(completion.model_dump())
            store = attached_store(tracer_provider)
            assert store is not None and store.force_flush(30_000)
        finally:
            instrumentor.uninstrument()
            tracer_provider.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("web") / "ui.db")
    command = [LLMLENS, "demo", "--capture-content", "--db", path]
    demo = subprocess.run(command, capture_output=True, text=True, timeout=120, env=clean_env(), check=False)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stdout.rstrip().endswith(f"see it all in the browser: llmlens ui --db {path}")
    record_payloads(path)
    return path


@pytest.fixture(scope="module")
def server(store: str) -> Iterator[UvicornServer]:
    with UvicornServer(create_app(store)) as running:
        yield running


@pytest.fixture
def client(server: UvicornServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def read(path: str) -> Any:
    return open_store(path, readonly=True)


def row_of_model(path: str, model: str) -> dict[str, Any]:
    conn = read(path)
    try:
        (row,) = queries.request_log(conn, queries.Filters(model=model)).rows
    finally:
        conn.close()
    return row


def proxied_row(path: str) -> dict[str, Any]:
    conn = read(path)
    try:
        rows = [r for r in queries.request_log(conn, limit=1000).rows if r["span_kind"] == "server"]
    finally:
        conn.close()
    assert len(rows) == 1
    return rows[0]


# --- pages and API --------------------------------------------------------------------------------------


def test_every_page_answers_with_the_stores_data(client: httpx.Client, store: str) -> None:
    conn = read(store)
    try:
        total = queries.totals(conn, time.time_ns() - 86400 * NS).totals
        newest = queries.request_log(conn, limit=50).rows
    finally:
        conn.close()
    (profile,) = api(client, "/api/profiles")["profiles"]
    pages = {path: get_page(client, "/" + path) for path in PAGES}
    for path, page in pages.items():
        assert page.ids["nav"] and page.ids["store-path"]
        assert [s.get("src") for s in page.scripts] == ["./static/app.js"], path
        assert page.inline == [], path  # no inline script, style or handler anywhere: the CSP allows none
    overview = pages[""]
    assert overview.text["kpi-requests"].endswith(f"{total.requests:,}")
    assert f"{total.cache_read_tokens:,}" in overview.text["kpi-cache-read-tokens"]
    for chart in ("chart-requests", "chart-tokens", "chart-cost", "chart-latency", "chart-ttfc"):
        assert chart in overview.ids
    assert {"openai", "anthropic", "gcp.gemini"} <= _providers(client)
    assert "openai.NotFoundError" in overview.text["top-errors"]
    log = pages["requests"]
    assert [int(i) for i in re.findall(r'<tr data-id="(\d+)"', client.get("/requests").text)] == [
        r["id"] for r in newest
    ]
    assert log.ids["request-log-rows"][1]["data-after"] == str(newest[0]["id"])
    assert f'<a href="./profiles/{profile["id"]}" class="profile-link">' in client.get("/profiles").text
    assert pages["storage"].text["storage-stats"].count(store) == 1
    assert pages["live"].text["live-requests-empty"] == "no requests in flight"


def _providers(client: httpx.Client) -> set[str]:
    return set(re.findall(r'class="health-card" data-provider="([^"]+)"', client.get("/").text))


def test_every_api_endpoint_answers_the_store_queries(client: httpx.Client, store: str) -> None:
    conn = read(store)
    try:
        log = queries.request_log(conn, limit=50)
        detail = queries.get_request(conn, log.rows[0]["id"])
        assert detail is not None
        vandamme = queries.vandamme_running_totals(conn)
        health = queries.provider_health(conn).to_dict()
        stats = queries.storage_stats(conn, store).to_dict()
    finally:
        conn.close()
    page = api(client, "/api/requests")
    assert [r["id"] for r in page["rows"]] == [r["id"] for r in log.rows]
    assert page["next_cursor"] == log.next_cursor and page["latest_id"] == log.rows[0]["id"]
    assert api(client, f"/api/requests/{log.rows[0]['id']}") == json.loads(json.dumps(detail.to_dict()))
    by_trace = api(client, f"/api/requests/{detail.trace_id}:{detail.request['span_id']}")
    assert by_trace["request"]["id"] == detail.request["id"]
    overview = api(client, "/api/overview?window=6h")
    assert overview["window"] == "6h" and overview["totals"]["totals"]["requests"] == len(
        api(client, "/api/requests?limit=1000")["rows"]
    )
    assert len(overview["latency"]) == 24 and len(overview["series"]["points"]) == 361
    assert set(overview["health"]["providers"]) == set(health["providers"])
    assert overview["top_models"][0]["requests"] >= overview["top_models"][-1]["requests"]
    assert api(client, "/api/live")["requests"] == []
    (profile,) = api(client, "/api/profiles")["profiles"]
    one = api(client, f"/api/profiles/{profile['id']}")
    assert one["request_id"] == profile["request_id"] and "session" not in one
    storage = api(client, "/api/storage")
    assert {k: storage[k] for k in ("path", "requests", "error_requests", "profiles")} == {
        k: stats[k] for k in ("path", "requests", "error_requests", "profiles")
    }
    assert api(client, "/api/health")["status"] == health["status"]
    assert api(client, "/api/health?window=1h")["window_s"] == 3600
    assert api(client, "/api/compat/vandamme-totals") == json.loads(json.dumps(vandamme))
    narrowed = api(client, "/api/compat/vandamme-totals?provider=anthropic")
    assert list(narrowed["providers"]) == ["anthropic"]
    rosetta = api(client, "/api/compat/rosetta-metrics?series_seconds=30")
    assert len(rosetta["series"]) == 30 and rosetta["total_requests"] == stats["requests"]
    assert api(client, "/api/requests/999999", 404) == {"error": "not found"}
    assert "error" in api(client, "/api/profiles/999999", 404)


def test_filters_and_keyset_pages(client: httpx.Client, store: str) -> None:
    conn = read(store)
    try:
        everything = [r["id"] for r in queries.request_log(conn, limit=1000).rows]
        filters = queries.Filters(provider="openai", status="error", stream=False)
        expected = [r["id"] for r in queries.request_log(conn, filters, limit=1000).rows]
        trace = queries.request_log(conn, limit=1).rows[0]["trace_id"]
    finally:
        conn.close()
    got = api(client, "/api/requests?provider=openai&status=error&stream=no&limit=1000")
    assert [r["id"] for r in got["rows"]] == expected and len(expected) >= 2
    assert got["filters"] == {"provider": "openai", "status": "error", "stream": False}
    for query, check in (
        ("model=gpt-4o-mini", lambda r: "gpt-4o-mini" in (r["request_model"], r["response_model"])),
        ("operation=embeddings", lambda r: r["operation"] == "embeddings"),
        ("stream=yes", lambda r: r["stream"]),
        ("error=Rate+limit", lambda r: "Rate limit" in (r["error_message"] or "")),
        (f"trace={trace}", lambda r: r["trace_id"] == trace),
        ("since=1h&until=2261-01-01T00:00Z", lambda r: True),
        ("key=nobody", lambda r: False),
    ):
        rows = api(client, f"/api/requests?{query}&limit=1000")["rows"]
        assert rows == [r for r in api(client, "/api/requests?limit=1000")["rows"] if check(r)], query
        assert rows or query == "key=nobody"
    # keyset pages, API and HTML: every row once, newest first
    seen, cursor = [], None
    while True:
        page = api(client, "/api/requests?limit=7" + (f"&cursor={cursor}" if cursor else ""))
        seen += [r["id"] for r in page["rows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    html_seen, url = [], "/requests?limit=7&provider=openai"
    while url:
        text = client.get(url).text
        html_seen += [int(i) for i in re.findall(r'<tr data-id="(\d+)"', text)]
        older = Page(text).ids.get("page-older")
        url = "/" + older[1]["href"].removeprefix("./") if older else ""
        if url:
            assert "provider=openai" in url and "limit=7" in url and "cursor=" in url
    assert html_seen == [i for i in everything if i in {r["id"] for r in api(
        client, "/api/requests?provider=openai&limit=1000")["rows"]}]  # fmt: skip
    assert "page-newest" in Page(client.get("/requests?cursor=5").text).ids
    # a bad value: one line naming the parameter, 400
    bad = get_page(client, "/requests?since=5x", 400)
    assert bad.text["filter-problem"].startswith("invalid since '5x'")
    assert bad.ids["filter-since"][1]["value"] == "5x"
    assert api(client, "/api/requests?status=failed", 400)["error"].startswith("status 'failed' is not valid")
    assert api(client, "/api/requests?trace=xyz", 400)["error"].startswith("invalid trace 'xyz'")
    assert api(client, "/api/overview?window=2y", 400)["error"].startswith("invalid window '2y'")


def test_new_rows_appear_on_the_first_page(client: httpx.Client, store: str) -> None:
    first = get_page(client, "/requests?provider=anthropic")
    rows = first.ids["request-log-rows"][1]
    after = int(rows["data-after"])
    assert rows["data-newer-url"] == "./requests/newer?provider=anthropic"
    assert client.get(f"/requests/newer?provider=anthropic&after={after}").text == ""
    now = time.time_ns()
    claude = spec(now - NS, provider="anthropic", request_model="claude-new", response_model="claude-new")
    gpt = spec(now - NS // 2, provider="openai", request_model="gpt-new", response_model="gpt-new")
    added = record(store, [claude, gpt])
    fragment = client.get(f"/requests/newer?provider=anthropic&after={after}")
    ids = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', fragment.text)]
    assert len(ids) == 1 and "claude-new" in fragment.text and "gpt-new" not in fragment.text
    assert int(fragment.headers["x-latest-id"]) == max(ids) + 1  # the openai row: next time, after it
    new = api(client, f"/api/requests/new?after={after}")
    assert [r["model"] for r in new["rows"]] == ["gpt-new", "claude-new"]  # newest first, as the log
    assert [s.span_id for s in added] == [r["span_id"] for r in reversed(new["rows"])]
    assert (
        "data-newer-url" not in Page(client.get(f"/requests?cursor={after}").text).ids["request-log-rows"][1]
    )


def test_request_detail(client: httpx.Client, store: str) -> None:
    row = proxied_row(store)
    page = get_page(client, f"/requests/{row['id']}")
    assert page.text["trace-id"] == row["trace_id"]
    assert page.ids["copy-trace-id"][1]["data-copy-target"] == "trace-id"
    waterfall = re.findall(r'<tr data-span-id="([0-9a-f]{16})"', client.get(f"/requests/{row['id']}").text)
    assert len(waterfall) >= 2 and row["span_id"] == waterfall[0]  # the SERVER span, then its upstream leg
    assert "upstream wait" in page.text["request-phases"]
    assert "url.path" in page.text["request-attributes"]
    # a profiled request: its summary and links
    (profile,) = api(client, "/api/profiles")["profiles"]
    profiled = get_page(client, f"/requests/{profile['request_id']}")
    assert profiled.text["profile-summary"].startswith(f"armed profile {profile['id']}")
    assert profiled.ids["profile-open"][1]["href"] == f"../profiles/{profile['id']}"
    # captured content, as text in <pre>
    content = get_page(client, f"/requests/{row_of_model(store, PAYLOAD_MODEL)['id']}")
    assert PAYLOAD_CONTENT in content.text["request-content"]
    # by trace id and by TRACE:SPAN, and a request that is not there
    assert get_page(client, f"/requests/{row['trace_id']}").text["trace-id"] == row["trace_id"]
    assert get_page(client, f"/requests/{row['trace_id']}:{row['span_id']}").text["page-title"] == (
        f"Request {row['id']}"
    )
    assert "no request" in get_page(client, "/requests/999999", 404).text["error-message"]


def test_profile_views(client: httpx.Client) -> None:
    (profile,) = api(client, "/api/profiles")["profiles"]
    page = get_page(client, f"/profiles/{profile['id']}")
    frame = page.ids["profile-frame"]
    assert frame[0] == "iframe" and frame[1]["sandbox"] == "allow-scripts"
    html = client.get(f"/profiles/{profile['id']}/flamegraph.html")
    assert html.status_code == 200
    csp = html.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts;") and "allow-same-origin" not in csp
    assert "default-src 'none'" in csp and "pyinstrumentHTMLRenderer" in html.text
    speedscope = client.get(f"/profiles/{profile['id']}/speedscope.json")
    assert speedscope.headers["content-disposition"].startswith("attachment;")
    validate_speedscope(speedscope.json(), null_as_absent=True)
    assert client.get("/profiles/999999/flamegraph.html").status_code == 404


def test_payloads_are_escaped_everywhere(client: httpx.Client, store: str) -> None:
    rows = [row_of_model(store, PAYLOAD_MODEL), row_of_model(store, PAYLOAD_MISSING), proxied_row(store)]
    assert PAYLOAD_MISSING in (rows[1]["error_message"] or "")
    assert rows[2]["attributes"]["url.path"] == PAYLOAD_ROUTE
    pages = [*PAGES, *(f"requests/{r['id']}" for r in rows), "requests?error=script",
             f"requests?model={PAYLOAD_MODEL}", "requests?since=%3Cscript%3E"]  # fmt: skip
    shown = set()
    for path in pages:
        text = client.get("/" + path).text
        assert "<script>alert" not in text, path
        shown |= {
            p for p in ("model", "error", "content", "route") if f"&lt;script&gt;alert(&#x27;{p}" in text
        }
    assert shown == {"model", "error", "content", "route"}  # each payload was shown, as text
    fragment = client.get("/requests/newer?after=0").text
    assert "&lt;script&gt;alert(&#x27;model" in fragment and "<script>alert" not in fragment


# --- the guard ------------------------------------------------------------------------------------------


def test_headers_on_every_response(client: httpx.Client) -> None:
    for path in [
        "/",
        "/requests",
        "/live",
        "/static/app.js",
        "/api/overview",
        "/requests/999999",
        "/nowhere",
    ]:
        response = client.get(path)
        assert response.headers["content-security-policy"] == STRICT_CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert not [h for h in response.headers if h.startswith("access-control-")]
    assert STRICT_CSP == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
    )
    assert client.get("/api/requests").headers["cache-control"] == "no-store"
    cookie = httpx.get(f"{client.base_url}/").headers["set-cookie"]  # a browser's first visit
    assert cookie.startswith("llmlens_ui_csrf=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def _csrf(client: httpx.Client, page: str = "/profiles") -> str:
    token = Page(client.get(page).text).hidden["csrf_token"]
    assert token == client.cookies["llmlens_ui_csrf"]
    return token


def test_state_changes_need_the_csrf_token(client: httpx.Client, store: str) -> None:
    form = {"next": "2", "model": "gpt-4o*", "expires": "5m"}
    for data, headers in (({**form}, {}), ({**form, "csrf_token": "x" * 43}, {})):
        refused = client.post("/profiles/arm", data=data, headers=headers)
        assert refused.status_code == 403 and "CSRF" in refused.text
    assert client.post("/storage/prune", data={}).status_code == 403
    assert client.post("/profiles/disarm").status_code == 403
    assert api(client, "/api/profiles")["status"]["live"] == []
    token = _csrf(client)
    armed = client.post("/profiles/arm", data={**form, "csrf_token": token})
    assert armed.status_code == 303 and armed.headers["location"].startswith("../profiles?armed=")
    (live,) = api(client, "/api/profiles")["status"]["live"]
    assert (live["requested"], live["model"]) == (2, "gpt-4o*")
    page = get_page(client, "/" + armed.headers["location"].removeprefix("../"))
    assert page.text["profile-message"].startswith(f"armed (arm {live['id']})")
    assert "profile-disarm-form" in page.ids
    bad = client.post("/profiles/arm", data={"next": "0", "csrf_token": token})
    assert bad.status_code == 400 and "invalid next '0'" in Page(bad.text).text["profile-arm-error"]
    disarmed = client.post("/profiles/disarm", headers={"x-csrf-token": token})
    assert disarmed.status_code == 303 and disarmed.headers["location"] == "../profiles?disarmed=1"
    assert api(client, "/api/profiles")["status"]["live"] == []
    pruned = client.post("/storage/prune", data={"csrf_token": token})
    assert pruned.status_code == 303 and pruned.headers["location"] == "../storage?pruned=0"
    assert get_page(client, "/storage?pruned=0").text["storage-message"] == "pruned: deleted 0 requests"


def test_only_the_dashboards_own_pages_reach_it(client: httpx.Client, server: UvicornServer) -> None:
    own = server.url.removeprefix("http://")
    for headers in (
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": f"http://{own.split(':')[0]}:1"},  # another port of the same host: another origin
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"sec-fetch-site": "cross-site", "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"},
    ):
        for path in ("/api/requests", "/api/live", "/requests/newer?after=0", "/"):
            response = client.get(path, headers=headers)
            assert response.status_code == 403, (path, headers)
            assert not [h for h in response.headers if h.startswith("access-control-")]
    navigation = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}
    assert client.get("/requests", headers=navigation).status_code == 200  # a link followed from elsewhere
    assert client.get("/api/requests", headers=navigation).status_code == 403
    assert client.get("/requests", headers={**navigation, "sec-fetch-dest": "iframe"}).status_code == 403
    same = {"origin": f"http://{own}", "sec-fetch-site": "same-origin"}
    assert client.get("/api/requests", headers=same).status_code == 200
    token = _csrf(client)
    posted = client.post(
        "/profiles/disarm", data={"csrf_token": token}, headers={"origin": "http://evil.example"}
    )
    assert posted.status_code == 403
    assert client.post("/profiles/disarm", data={"csrf_token": token}, headers=same).status_code == 303


def test_a_token_guards_every_request(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-token-of-the-test"
    with UvicornServer(create_app(store, token=secret)) as running, httpx.Client(base_url=running.url) as c:
        for path in ("/", "/api/requests", "/static/app.css", "/requests?token=wrong"):
            refused = c.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == 'Bearer realm="llmlens"'
        assert c.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/requests", headers={"authorization": f"Bearer {secret}"}).status_code == 200
        login = c.get(f"/requests?provider=openai&token={secret}")
        assert login.status_code == 303 and login.headers["location"] == "./requests?provider=openai"
        session = login.headers["set-cookie"]
        assert "HttpOnly" in session and "SameSite=Strict" in session and secret not in session
        assert c.get("/requests?provider=openai").status_code == 200  # the cookie is enough now
        assert c.get("/api/overview").status_code == 200
        assert c.post(f"/profiles/disarm?token={secret}").status_code == 403  # no CSRF token: refused
    monkeypatch.setenv("LLMLENS_UI_TOKEN", secret)  # the variable, when create_app is given none
    app = create_app(store)
    monkeypatch.delenv("LLMLENS_UI_TOKEN")
    with UvicornServer(app) as running:
        assert httpx.get(running.url + "/api/live").status_code == 401
        assert (
            httpx.get(running.url + "/api/live", headers={"authorization": f"Bearer {secret}"}).status_code
            == 200
        )


def test_loopback_without_a_token_answers_its_host_names_only(store: str) -> None:
    from llmlens.web.cli import LOOPBACK_NAMES

    with UvicornServer(create_app(store, allowed_hosts=LOOPBACK_NAMES)) as running:
        port = running.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert httpx.get(running.url + "/api/live", headers={"host": host}).status_code == 200, host
        rebound = httpx.get(running.url + "/api/requests", headers={"host": f"attacker.example:{port}"})
        assert rebound.status_code == 403  # a DNS name rebound to 127.0.0.1 reads nothing


def test_mounted_under_a_prefix(store: str) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    outer = Starlette(routes=[Route("/", lambda request: PlainTextResponse("the user's own app")),
                              Mount("/tools/llmlens", app=create_app(store))])  # fmt: skip
    with UvicornServer(outer) as running, httpx.Client(base_url=running.url, timeout=30) as c:
        assert c.get("/").text == "the user's own app"
        assert "Path=/tools/llmlens;" in httpx.get(running.url + "/tools/llmlens/").headers["set-cookie"]
        assert c.get("/tools/llmlens", follow_redirects=True).status_code == 200
        seen: set[str] = set()
        queue = [running.url + "/tools/llmlens/"]
        while queue and len(seen) < 60:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            response = c.get(url)
            assert response.status_code == 200, url
            if not response.headers["content-type"].startswith("text/html"):
                continue
            page = Page(response.text)
            for link in page.links:
                if link.startswith("data:"):
                    continue
                assert not link.startswith(("/", "http:", "https:")), (url, link)  # relative only
                target = urljoin(url, link)
                assert urlsplit(target).path.startswith("/tools/llmlens/"), (url, link)
                if "speedscope" not in target and not target.endswith(("/arm", "/disarm", "/prune")):
                    queue.append(target.split("#")[0])
        assert any("/tools/llmlens/requests/" in u for u in seen) and any("/profiles/" in u for u in seen)
        # the live log's rows go into the Requests page: their links are relative to it
        rows = Page(c.get("/tools/llmlens/requests/newer?after=0").text)
        assert rows.links
        for link in rows.links:
            target = urljoin(running.url + "/tools/llmlens/requests", link)
            assert urlsplit(target).path.startswith("/tools/llmlens/") and c.get(target).status_code == 200
        # the CSRF cookie is scoped to the mount point, and a POST there works
        token = Page(c.get("/tools/llmlens/profiles").text).hidden["csrf_token"]
        moved = c.post("/tools/llmlens/profiles/disarm", data={"csrf_token": token})
        assert moved.status_code == 303 and urljoin(str(moved.url), moved.headers["location"]).endswith(
            "/tools/llmlens/profiles?disarmed=0"
        )
        login_app = Starlette(routes=[Mount("/x", app=create_app(store, token="t0ken-of-the-mount"))])
    with UvicornServer(login_app) as running:
        login = httpx.get(running.url + "/x/requests/3?token=t0ken-of-the-mount")
        assert login.status_code == 303 and login.headers["location"] == "./3"
        assert "Path=/x;" in login.headers["set-cookie"]


# --- requests in flight ---------------------------------------------------------------------------------


def test_live_shows_the_requests_in_flight(tmp_path: Path) -> None:
    from test_store_active import App

    db = tmp_path / "live.db"
    with (
        FakeProvider() as fake,
        UvicornServer(create_app(str(db))) as running,
        httpx.Client(base_url=running.url, timeout=10) as c,
    ):
        app = App(db, fake.base_url)
        try:
            assert app.ask("streams 2 chunks=60,chunk_delay_ms=100") == {"started": 2}
            deadline = time.monotonic() + 20
            while True:
                response = c.get("/api/live")  # 503 until the app's writer has made the store
                found = response.json()["requests"] if response.status_code == 200 else []
                if len(found) == 2 and all(r["chunks"] for r in found):
                    break
                assert time.monotonic() < deadline, found
                time.sleep(0.1)
            assert {(r["provider"], r["request_model"], r["stream"], r["pid"]) for r in found} == {
                ("openai_compatible", "gpt-4o-mini", True, app.pid)  # the fake provider is no openai.com
            }
            assert all(r["elapsed_ms"] > 0 and r["ttfc_ms"] is not None for r in found)
            page = get_page(c, "/live")
            assert page.text["live-count"] == "2"
            assert all(r["trace_id"] in page.text["live-requests"] for r in found)
            with c.stream("GET", "/api/live/stream") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.iter_lines()
                assert next(lines) == "retry: 2000"
                assert next(lines) == ""
                event = [next(lines) for _ in range(3)]
            assert event[0] == "event: snapshot" and event[2] == ""
            snapshot = json.loads(event[1].removeprefix("data: "))
            assert {r["trace_id"] for r in snapshot["requests"]} == {r["trace_id"] for r in found}
            chunks = app.ask("wait")["chunks"]
            assert len(chunks) == 2 and min(chunks) > 60
            deadline = time.monotonic() + 10
            while api(c, "/api/live")["requests"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert get_page(c, "/live").text["live-requests-empty"] == "no requests in flight"
        finally:
            app.quit()


# --- the command ----------------------------------------------------------------------------------------


def test_ui_refuses_a_non_loopback_address_without_a_token(store: str) -> None:
    for host in ("0.0.0.0", "::", "example.invalid"):
        command = [LLMLENS, "ui", "--db", store, "--host", host]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=60, env=clean_env(), check=False
        )
        assert (result.returncode, result.stdout) == (2, ""), result
        assert result.stderr.splitlines() == [
            f"llmlens: --host {host} is not a loopback address: anyone who reaches it could read the store; "
            "give --token TOKEN (or set LLMLENS_UI_TOKEN)"
        ]
    for args, message in ((["--port", "70000"], "argument --port: '70000' is not valid"),
                          (["--db", str(TESTS)], "is a directory, not an llmlens store")):  # fmt: skip
        result = subprocess.run([LLMLENS, "ui", *args], capture_output=True, text=True, timeout=60,
                                env=clean_env(), check=False)  # fmt: skip
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_ui_serves_the_store_with_its_token(store: str) -> None:
    env = clean_env(LLMLENS_UI_TOKEN="tok-en")
    command = [LLMLENS, "ui", "--db", store, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"llmlens ui: {store}"
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=tok-en", url), url
        base = url.split("?")[0]
        assert httpx.get(base + "api/live").status_code == 401
        with httpx.Client() as c:
            assert c.get(url, follow_redirects=True).status_code == 200
            assert parse_qs(urlsplit(str(c.get(url).headers["location"])).query) == {}
            assert c.get(base + "api/overview").json()["window"] == "24h"
            with c.stream("GET", base + "api/live/stream") as stream:  # open while the server stops
                lines = stream.iter_lines()
                assert [next(lines) for _ in range(3)] == ["retry: 2000", "", "event: snapshot"]
                stopped = time.monotonic()
                process.send_signal(2)  # Ctrl-C
                assert process.wait(20) == 0
                assert time.monotonic() - stopped < 1.5  # the stream ends at once, not after a timeout
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.stderr is not None and process.stderr.read() == ""


def test_demo_ui_serves_what_the_demo_recorded(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    command = [LLMLENS, "demo", "--ui", "--port", "0", "--db", str(db)]
    env = clean_env()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        lines = iter(process.stdout.readline, "")
        assert f"see it all in the browser: llmlens ui --db {db}" in (line.strip() for line in lines)
        assert next(line for line in lines if line.strip()).strip() == f"llmlens ui: {db}"
        url = next(lines).strip()
        storage = httpx.get(url + "api/storage").json()
        assert storage["path"] == str(db) and storage["requests"] >= 13 and storage["profiles"] == 1
        process.send_signal(2)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
