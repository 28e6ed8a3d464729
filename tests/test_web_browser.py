"""The dashboard (`llmlens ui`, llmlens.web) in a real headless Chromium, driven by playwright.

The browser is the system's `chromium` (Debian's package; `scripts/setup --system` installs it):
playwright never downloads one. One browser per test process, one uvicorn-served `create_app` over one
store that `llmlens demo --capture-content` filled (a subprocess), plus requests written by the store's
own writer (`SQLiteSpanProcessor`) whose model names, error message, route, span names and captured
content are script, `<img onerror>` and `javascript:` payloads.

What is checked, as a person would see it: every page loads the store's data with no console error, no
uncaught exception, no failed or refused request and no request leaving 127.0.0.1; the request log's
filters and its older/newest pages; a request streaming in another process appears on Live and goes
when it ends; the payloads show as text and never run (with the CSP bypassed too, so the escaping alone
is tested); the profile's frame draws and cannot reach the dashboard; `llmlens ui` refuses a public
address without a token and asks for the token when it has one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    sync_playwright,
)

from llmlens import semconv
from llmlens.demo.fake_server import FakeProvider
from llmlens.store import open_store, queries
from llmlens.store.profiles import list_profiles
from llmlens.web import create_app
from proxies.server import UvicornServer

LLMLENS = str(Path(sys.executable).with_name("llmlens"))
TESTS = Path(__file__).parent
NS = 1_000_000_000
MS = 1_000_000
LOADED = "body[data-loaded='true']"
TIMEOUT_MS = 15_000

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
JS_URL = "javascript:window.__pwned=1"
# Any assignment to window.__pwned, in any page or frame, becomes a console error the watcher sees,
# even when the page that made it has already navigated away.
PWNED_TRAP = """(function () {
  var pwned;
  Object.defineProperty(window, "__pwned", {
    configurable: true,
    get: function () { return pwned; },
    set: function (value) { pwned = value; console.error("PWNED " + value + " at " + location.href); },
  });
})();"""


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "the browser tests need the system's Chromium and found neither `chromium` nor "
            "`chromium-browser` on PATH: apt-get install chromium (or run scripts/setup --system)",
            pytrace=False,
        )
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(extra)
    return env


# --- the store --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payloads:
    """The requests whose every shown string is a payload: a client call and a proxied request."""

    client_trace: str
    proxy_trace: str


def record_payloads(path: str) -> Payloads:
    """Two requests written by the store's writer, every string a page shows of them a payload."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from llmlens.store.processor import SQLiteSpanProcessor

    processor = SQLiteSpanProcessor(path)
    provider = TracerProvider(resource=Resource.create({semconv.SERVICE_NAME: SCRIPT}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("llmlens")
    messages = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": f"{SCRIPT} {IMG} {JS_URL}"}]}]
    )
    now = time.time_ns()
    client = tracer.start_span(
        f"chat {SCRIPT}", kind=SpanKind.CLIENT, start_time=now - 3 * NS,
        attributes={
            semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai", semconv.REQUEST_MODEL: SCRIPT,
            semconv.RESPONSE_MODEL: IMG, semconv.SERVER_ADDRESS: JS_URL, semconv.ERROR_TYPE: IMG,
            semconv.URL_PATH: JS_URL, semconv.LLMLENS_API_KEY_LABEL: JS_URL,
            semconv.INPUT_MESSAGES: messages, semconv.OUTPUT_MESSAGES: SCRIPT,
            semconv.SYSTEM_INSTRUCTIONS: IMG, "payload.attribute": JS_URL,
        },
    )  # fmt: skip
    client.set_status(Status(StatusCode.ERROR, f"{IMG} {SCRIPT} {JS_URL}"))
    client.end(end_time=now - 2 * NS)
    server = tracer.start_span(
        f"chat {IMG}", kind=SpanKind.SERVER, start_time=now - 2 * NS,
        attributes={
            semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai", semconv.REQUEST_MODEL: JS_URL,
            semconv.URL_PATH: f"/proxy/{SCRIPT}/{IMG}", semconv.LLMLENS_SOURCE_FORMAT: SCRIPT,
        },
    )  # fmt: skip
    upstream = tracer.start_span(
        f"chat {SCRIPT}", context=trace.set_span_in_context(server), kind=SpanKind.CLIENT,
        start_time=now - 2 * NS + 5 * MS,
        attributes={semconv.OPERATION_NAME: "chat", semconv.PROVIDER_NAME: "openai",
                    semconv.REQUEST_MODEL: JS_URL, semconv.LLMLENS_UPSTREAM: True},
    )  # fmt: skip
    upstream.end(end_time=now - NS - 5 * MS)
    server.set_status(Status(StatusCode.OK))
    server.end(end_time=now - NS)
    assert processor.force_flush(30_000)
    provider.shutdown()
    return Payloads(
        f"{client.get_span_context().trace_id:032x}", f"{server.get_span_context().trace_id:032x}"
    )


@dataclass
class Store:
    path: str
    payloads: Payloads

    def read(self, fn: Callable[[Any], Any]) -> Any:
        conn = open_store(self.path, readonly=True)
        try:
            return fn(conn)
        finally:
            conn.close()

    def ids(self, filters: queries.Filters | None = None) -> list[int]:
        """Every request id the log shows for `filters`, newest first."""
        rows = self.read(lambda conn: queries.request_log(conn, filters, limit=1000).rows)
        return [row["id"] for row in rows]

    def request_of_trace(self, trace_id: str, kind: str = "client") -> dict[str, Any]:
        rows = self.read(lambda conn: queries.request_log(conn, queries.Filters(trace_id=trace_id)).rows)
        (row,) = [r for r in rows if r["span_kind"] == kind]
        return row


# --- the browser ------------------------------------------------------------------------------------------


@dataclass
class Watch:
    """What went wrong in a browser context: console errors and warnings, uncaught exceptions, failed
    requests (network failures and HTTP errors), requests to anything but 127.0.0.1, dialogs."""

    problems: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected_status: set[tuple[str, int]] = field(default_factory=set)  # (path, status) a test asks for

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text} ({message.location.get('url')})")

    def _failed(self, request: Request) -> None:
        self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if (
            response.status >= 400
            and (urlsplit(response.url).path, response.status) not in self.expected_status
        ):
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def request(self, request: Request) -> None:
        if urlsplit(request.url).scheme in ("http", "https", "ws", "wss") and not _loopback(request.url):
            self.outside.append(request.url)

    def take(self) -> list[str]:
        """Everything seen so far (then forgotten): an empty list when all was well."""
        found = (
            self.problems
            + [f"request leaving 127.0.0.1: {u}" for u in self.outside]
            + [f"dialog {d}" for d in self.dialogs]
        )
        self.problems, self.outside, self.dialogs = [], [], []
        return found


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname == "127.0.0.1"


def _refuse_outside(route: Route) -> None:
    route.abort("blockedbyclient")  # (the watcher has counted it: nothing may leave the machine)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = str(tmp_path_factory.mktemp("browser") / "ui.db")
    demo = subprocess.run([LLMLENS, "demo", "--capture-content", "--db", path], capture_output=True,
                          text=True, timeout=120, env=clean_env(), check=False)  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    return Store(path, record_payloads(path))


@pytest.fixture(scope="session")
def server(store: Store) -> Iterator[UvicornServer]:
    with UvicornServer(create_app(store.path)) as running:
        yield running


def new_context(browser: Browser, watch: Watch, **options: Any) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(PWNED_TRAP)
    context.on("request", watch.request)
    context.on("page", watch.attach)
    context.route(
        lambda url: not _loopback(url) and urlsplit(url).scheme in ("http", "https"), _refuse_outside
    )
    return context


@dataclass
class Tab:
    """A page of the session's browser context, with its watcher and the dashboard's address."""

    page: Page
    watch: Watch
    base: str

    def open(self, path: str) -> Page:
        """Go to `path` (below the dashboard's root) and wait for app.js to have set the page up."""
        self.page.goto(self.base + "/" + path.lstrip("/"))
        self.page.wait_for_selector(LOADED, state="attached")
        return self.page

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(selector).all_inner_texts()

    def row_ids(self) -> list[int]:
        return [int(i) for i in self.page.locator("#request-log-rows tr[data-id]").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-id'))")]  # fmt: skip

    def pwned(self) -> Any:
        return self.page.evaluate("() => window.__pwned")

    def leave(self) -> list[str]:
        """What went wrong on this page; then about:blank, so that leaving (an event stream closed
        mid-way) is not counted against the next page."""
        found = self.watch.take()
        self.page.goto("about:blank")
        self.watch.take()
        return found


@pytest.fixture(scope="session")
def shared_context(browser: Browser) -> Iterator[tuple[BrowserContext, Watch]]:
    watch = Watch()
    context = new_context(browser, watch)
    yield context, watch
    context.close()


@pytest.fixture
def tab(shared_context: tuple[BrowserContext, Watch], server: UvicornServer) -> Iterator[Tab]:
    context, watch = shared_context
    watch.take()
    page = context.new_page()
    try:
        yield Tab(page, watch, server.url)
    finally:
        page.close()
        watch.take()


# --- every page -------------------------------------------------------------------------------------------


def test_every_page_shows_the_stores_data_cleanly(tab: Tab, store: Store) -> None:
    total = store.read(lambda conn: queries.totals(conn, time.time_ns() - 86400 * NS).totals)
    newest = store.ids()[:50]
    (profile,) = store.read(list_profiles)
    detail_id = store.request_of_trace(store.payloads.proxy_trace, "server")["id"]

    page = tab.open("")
    assert page.locator("body").get_attribute("data-page") == "overview"
    assert page.locator("#nav-overview").get_attribute("aria-current") == "page"
    assert page.inner_text("#kpi-requests .kpi-value") == f"{total.requests:,}"
    for chart in ("chart-requests", "chart-tokens", "chart-cost", "chart-latency", "chart-ttfc"):
        assert page.locator(f"#{chart} svg.chart-svg").count() == 1, chart
        assert page.locator(f"#{chart} svg.chart-svg").bounding_box()["height"] > 50, chart  # drawn, styled
    providers = set(page.locator(".health-card").evaluate_all("cs => cs.map(c => c.dataset.provider)"))
    assert {"openai", "anthropic", "gcp.gemini"} <= providers
    assert "gpt-4o-mini" in page.inner_text("#top-models")
    assert tab.leave() == []

    page = tab.open("requests")
    assert tab.row_ids() == newest
    assert page.inner_text("#store-path") == store.path
    # At 1280 px a model name is one line (no break after its hyphens); a long one is cut, whole in its title.
    models = page.locator("#request-log-rows .model").evaluate_all(
        "ms => ms.map(m => [m.textContent, m.title, m.getBoundingClientRect().height,"
        " parseFloat(getComputedStyle(m).lineHeight)])"
    )
    assert models and any("-" in text for text, _, _, _ in models)
    for text, title, height, line in models:
        assert height <= line * 1.2, (text, height, line)
        assert title == text, text
    assert tab.leave() == []
    # Real-world rows (the demo's, with its longest error types; not the payloads) fit 1280 px.
    for query in ("model=gpt-4o-mini", "provider=anthropic", "operation=embeddings"):
        page = tab.open(f"requests?{query}")
        assert tab.row_ids(), query
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), query
        assert tab.leave() == []

    page = tab.open(f"requests/{detail_id}")
    assert page.inner_text("#page-title") == f"Request {detail_id}"
    assert page.inner_text("#trace-id") == store.payloads.proxy_trace
    assert page.locator("#request-waterfall tr.span").count() == 2
    assert page.locator("#request-waterfall tr.span-this").get_attribute("data-request-id") == str(detail_id)
    assert tab.leave() == []

    page = tab.open("live")
    page.wait_for_selector("#live-rows[data-snapshots]", state="attached")  # the event stream answers
    assert page.inner_text("#live-count") == "0" and page.locator("#live-requests-empty").count() == 1
    assert page.inner_text("#live-status").startswith("updated ")
    assert tab.leave() == []

    page = tab.open("profiles")
    assert page.locator(f"#profile-list tr[data-id='{profile['id']}'] a.profile-link").count() == 1
    assert tab.leave() == []

    page = tab.open(f"profiles/{profile['id']}")
    frame = page.frame_locator("#profile-frame")
    frame.locator("#app *").first.wait_for()  # pyinstrument's script drew the profile in its frame
    assert tab.leave() == []

    page = tab.open("storage")
    assert store.path in page.inner_text("#storage-stats")
    assert (
        page.locator("#storage-stats dd[data-field='requests']")
        .inner_text()
        .startswith(f"{len(store.ids()):,}")
    )
    assert tab.leave() == []


# --- the request log --------------------------------------------------------------------------------------


def test_filters_narrow_the_request_log(tab: Tab, store: Store) -> None:
    everything = store.ids()
    page = tab.open("requests")
    page.fill("#filter-provider", "openai")
    page.select_option("#filter-status", "error")
    with page.expect_navigation():
        page.click("#filter-apply")
    page.wait_for_selector(LOADED, state="attached")
    query = parse_qs(urlsplit(page.url).query)
    assert query["provider"] == ["openai"] and query["status"] == ["error"]
    narrowed = tab.row_ids()
    assert narrowed == store.ids(queries.Filters(provider="openai", status="error"))
    assert 2 <= len(narrowed) < len(everything)
    assert set(tab.texts("#request-log-rows tr td:nth-child(3)")) == {"openai"}
    assert page.input_value("#filter-provider") == "openai"  # the form keeps what it filters by
    assert page.input_value("#filter-status") == "error"

    page.fill("#filter-provider", "anthropic")
    page.select_option("#filter-status", "")
    page.select_option("#filter-stream", "yes")
    with page.expect_navigation():
        page.press("#filter-provider", "Enter")
    page.wait_for_selector(LOADED, state="attached")
    streamed = tab.row_ids()
    assert streamed == store.ids(queries.Filters(provider="anthropic", stream=True)) and streamed

    page.fill("#filter-key", "nobody-has-this-key")
    with page.expect_navigation():
        page.click("#filter-apply")
    page.wait_for_selector(LOADED, state="attached")
    assert tab.row_ids() == [] and page.inner_text("#request-log-empty") == "no requests match these filters"

    with page.expect_navigation():
        page.click("#filter-clear")
    page.wait_for_selector(LOADED, state="attached")
    assert tab.row_ids() == everything[:50]
    assert tab.leave() == []


def test_older_pages_move_on_without_repeats(tab: Tab, store: Store) -> None:
    everything = store.ids()
    page = tab.open("requests")
    page.fill("#filter-limit", "6")
    with page.expect_navigation():
        page.click("#filter-apply")
    page.wait_for_selector(LOADED, state="attached")
    pages = [tab.row_ids()]
    assert page.locator("#page-newest").count() == 0  # the first page
    while page.locator("#page-older").count():
        with page.expect_navigation():
            page.click("#page-older")
        page.wait_for_selector(LOADED, state="attached")
        assert "cursor=" in page.url and parse_qs(urlsplit(page.url).query)["limit"] == ["6"]
        pages.append(tab.row_ids())
        assert page.locator("#page-newest").count() == 1
        assert page.locator("#request-log-rows").get_attribute("data-newer-url") is None  # not live
    seen = [i for p in pages for i in p]
    assert seen == everything and len(set(seen)) == len(seen)  # every request once, newest first
    assert all(len(p) == 6 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 6 and len(pages) >= 4
    with page.expect_navigation():
        page.click("#page-newest")
    page.wait_for_selector(LOADED, state="attached")
    assert tab.row_ids() == pages[0]
    assert tab.leave() == []


# --- requests in flight -----------------------------------------------------------------------------------


def test_live_shows_a_request_streaming_in_another_process(tab: Tab, store: Store) -> None:
    from test_store_active import App

    page = tab.open("live")
    page.wait_for_selector("#live-rows[data-snapshots]", state="attached")
    assert page.locator("#live-rows tr[data-trace-id]").count() == 0
    with FakeProvider() as fake:
        app = App(Path(store.path), fake.base_url)
        try:
            assert app.ask("streams 1 chunks=30,chunk_delay_ms=100") == {"started": 1}  # about 3 s
            row = page.locator("#live-rows tr[data-trace-id]")
            row.wait_for(timeout=TIMEOUT_MS)
            (active,) = store.read(lambda conn: queries.active_requests(conn, time.time_ns()))
            assert row.get_attribute("data-trace-id") == active.trace_id
            assert row.get_attribute("data-span-id") == active.span_id
            cells = row.locator("td").all_inner_texts()
            assert cells[2:5] == ["openai_compatible", "gpt-4o-mini", "chat"] and cells[6] == "yes"
            assert cells[9].endswith(f" {app.pid}")
            assert page.inner_text("#live-count") == "1"
            page.wait_for_function(  # the chunks so far grow while it streams
                "() => Number(document.querySelector('#live-rows tr[data-trace-id] td:nth-child(8)')"
                ".textContent) > 0"
            )
            (chunks,) = app.ask("wait")["chunks"]
            assert chunks > 30
            page.locator("#live-requests-empty").wait_for(timeout=TIMEOUT_MS)  # gone once it ended
            assert page.inner_text("#live-count") == "0"
            link = page.locator("a", has_text=active.trace_id)
            assert link.count() == 0
        finally:
            assert app.quit() == 0
    assert tab.leave() == []
    trace = active.trace_id
    page = tab.open(f"requests?trace={trace}")
    assert tab.row_ids() == store.ids(queries.Filters(trace_id=trace)) and len(tab.row_ids()) == 1
    assert tab.leave() == []


# --- payloads ---------------------------------------------------------------------------------------------


def _no_injected_markup(page: Page) -> None:
    """Only the dashboard's own script element, no <img> anywhere, no element with an on* handler."""
    sources = page.locator("script").evaluate_all("ss => ss.map(s => s.getAttribute('src'))")
    assert len(sources) == 1 and sources[0].endswith("static/app.js"), sources
    assert page.locator("img").count() == 0
    handlers = page.evaluate(
        "() => [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]"
        ".filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))"
    )
    assert handlers == []


@pytest.mark.parametrize("csp", ["enforced", "bypassed"])
def test_payloads_show_as_text_and_never_run(browser: Browser, server: UvicornServer, store: Store,
                                            csp: str) -> None:  # fmt: skip
    watch = Watch()
    context = new_context(browser, watch, bypass_csp=csp == "bypassed")
    try:
        tab = Tab(context.new_page(), watch, server.url)
        client = store.request_of_trace(store.payloads.client_trace)
        proxied = store.request_of_trace(store.payloads.proxy_trace, "server")

        page = tab.open("requests")
        for row_id, model in ((client["id"], f"{SCRIPT} -> {IMG}"), (proxied["id"], JS_URL)):
            row = page.locator(f"#request-log-rows tr[data-id='{row_id}']")
            assert row.locator(".model").inner_text() == model
        assert (
            page.locator(f"#request-log-rows tr[data-id='{client['id']}'] .status").get_attribute("title")
            == f"{IMG} {SCRIPT} {JS_URL}"
        )
        assert JS_URL in page.locator(f"#request-log-rows tr[data-id='{client['id']}']").inner_text()  # key
        _no_injected_markup(page)
        assert tab.pwned() is None
        page.goto(f"{tab.base}/requests?model={SCRIPT}")  # the filter's value, back in its input
        page.wait_for_selector(LOADED, state="attached")
        assert page.input_value("#filter-model") == SCRIPT and tab.row_ids() == [client["id"]]
        _no_injected_markup(page)
        page.goto(f"{tab.base}/?window=1h")  # the overview's top models and top errors
        page.wait_for_selector(LOADED, state="attached")
        assert IMG in page.inner_text("#top-models") and JS_URL in page.inner_text("#top-models")
        assert IMG in page.inner_text("#top-errors")
        _no_injected_markup(page)

        page = tab.open(f"requests/{client['id']}")
        summary = page.locator("#request-summary")
        assert summary.locator("dd[data-field='model']").inner_text() == f"{SCRIPT} -> {IMG}"
        assert summary.locator("dd[data-field='error']").inner_text() == f"{IMG} {SCRIPT} {JS_URL}"
        assert summary.locator("dd[data-field='server']").inner_text() == JS_URL
        assert summary.locator("dd[data-field='service']").inner_text() == SCRIPT
        content = page.locator("#request-content pre.content")
        messages = content.nth(0).inner_text()  # JSON, pretty-printed: the quotes are escaped
        assert SCRIPT in messages and json.dumps(IMG)[1:-1] in messages and JS_URL in messages
        assert SCRIPT in page.locator(f"pre.content[data-attribute='{semconv.OUTPUT_MESSAGES}']").inner_text()
        attributes = page.inner_text("#request-attributes")
        assert f"{semconv.URL_PATH}\t{JS_URL}" in attributes and f"payload.attribute\t{JS_URL}" in attributes
        _no_injected_markup(page)
        _follow_every_link(tab, page.url)

        page = tab.open(f"requests/{proxied['id']}")
        assert f"/proxy/{SCRIPT}/{IMG}" in page.inner_text("#request-attributes")
        names = page.locator("#request-waterfall .span-name").all_inner_texts()
        assert names == [f"chat {IMG}", f"chat {SCRIPT}"]
        _no_injected_markup(page)
        _follow_every_link(tab, page.url)
        assert tab.pwned() is None
        assert tab.leave() == []
    finally:
        context.close()


def _follow_every_link(tab: Tab, url: str) -> None:
    """Every link of the page at `url` goes to the dashboard over http; clicking each runs nothing."""
    page = tab.page
    problems = tab.watch.take()
    hrefs = page.locator("a[href]").evaluate_all(
        "links => links.map(a => [a.href, a.hasAttribute('download')])"
    )
    assert hrefs and all(_loopback(href) and href.startswith(tab.base + "/") for href, _ in hrefs), hrefs
    for index, (href, download) in enumerate(hrefs):
        if download:
            continue
        link = page.locator("a[href]").nth(index)
        with page.expect_navigation():
            link.click()
        page.wait_for_selector(LOADED, state="attached")
        assert page.url == href
        assert tab.pwned() is None
        problems += tab.leave()
        page.goto(url)
        page.wait_for_selector(LOADED, state="attached")
    assert problems == []


# --- the profile's frame ----------------------------------------------------------------------------------


def test_the_profile_frame_draws_and_cannot_reach_the_dashboard(tab: Tab, store: Store) -> None:
    (profile,) = store.read(list_profiles)
    page = tab.open(f"profiles/{profile['id']}")
    assert page.locator("#profile-frame").get_attribute("sandbox") == "allow-scripts"
    page.frame_locator("#profile-frame").locator("#app *").first.wait_for()
    frame = page.locator("#profile-frame").element_handle().content_frame()
    assert frame is not None
    assert len(frame.inner_text("body")) > 20  # the profile, drawn by pyinstrument's script
    page.evaluate("() => { document.cookie = 'probe=parent; SameSite=Strict'; window.__x = 'parent'; }")
    tried = frame.evaluate(
        """async () => {
          const out = {origin: String(window.origin)};
          const attempt = (name, fn) => { try { out[name] = 'allowed: ' + fn(); }
                                           catch (e) { out[name] = 'refused: ' + e.name; } };
          attempt('parent.__x', () => { window.parent.__x = 'frame'; return window.parent.__x; });
          attempt('parent.document.cookie', () => window.parent.document.cookie);
          attempt('set parent cookie', () => { window.parent.document.cookie = 'probe=frame'; return 1; });
          attempt('own cookie', () => document.cookie);
          attempt('parent.location', () => window.parent.location.href);
          try { await fetch('../../api/requests'); out.fetch = 'allowed'; }
          catch (e) { out.fetch = 'refused: ' + e.name; }
          return out;
        }"""
    )
    assert tried == {
        "origin": "null",  # an opaque origin: the sandbox has no allow-same-origin
        "parent.__x": "refused: SecurityError",
        "parent.document.cookie": "refused: SecurityError",
        "set parent cookie": "refused: SecurityError",
        "own cookie": "refused: SecurityError",
        "parent.location": "refused: SecurityError",
        "fetch": "refused: TypeError",  # the frame's CSP: default-src 'none'
    }, tried
    assert page.evaluate("() => [window.__x, document.cookie]") == ["parent", "probe=parent"]
    found = tab.leave()  # the console reports the fetch the test tried, and nothing else
    assert found and all("api/requests" in p and "Content Security Policy" in p for p in found), found
    page.context.clear_cookies()  # (the probe cookie stays out of the other tests)


# --- the command: a public address, and the token ---------------------------------------------------------


def test_a_public_address_needs_a_token_and_the_browser_then_needs_it(browser: Browser, store: Store) -> None:
    refused = subprocess.run([LLMLENS, "ui", "--db", store.path, "--host", "0.0.0.0"], capture_output=True,
                             text=True, timeout=60, env=clean_env(), check=False)  # fmt: skip
    assert (refused.returncode, refused.stdout) == (2, "")
    assert (
        len(refused.stderr.splitlines()) == 1 and "--host 0.0.0.0 is not a loopback address" in refused.stderr
    )

    token = "browser-test-token-Xy7"
    command = [LLMLENS, "ui", "--db", store.path, "--host", "0.0.0.0", "--port", "0", "--token", token]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=clean_env())  # fmt: skip
    watch = Watch()
    context = new_context(browser, watch)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"llmlens ui: {store.path}"
        shown = process.stdout.readline().strip()
        match = re.fullmatch(r"http://0\.0\.0\.0:(\d+)/\?token=" + token, shown)
        assert match, shown
        base = f"http://127.0.0.1:{match[1]}"
        page = context.new_page()
        watch.expected_status = {("/", 401), ("/requests", 401)}
        for url in (f"{base}/", f"{base}/requests?token=wrong"):
            response = page.goto(url)
            assert response is not None and response.status == 401, url
            assert "needs its token" in page.inner_text("body")
            assert page.locator(LOADED).count() == 0
        watch.take()  # (the two 401s the test asked for)
        watch.expected_status = set()
        response = page.goto(f"{base}/requests?provider=openai&token={token}")
        assert response is not None and response.status == 200
        page.wait_for_selector(LOADED, state="attached")
        assert page.url == f"{base}/requests?provider=openai"  # the token left the address bar
        assert page.locator("#request-log-rows tr[data-id]").count() == len(
            store.ids(queries.Filters(provider="openai"))[:50]
        )
        (session,) = [c for c in context.cookies() if c["name"] == "llmlens_ui_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict" and token not in session["value"]
        assert page.evaluate("() => document.cookie").find("llmlens_ui_session") == -1
        page.goto(f"{base}/live")  # the cookie carries the event stream too
        page.wait_for_selector(LOADED, state="attached")
        page.wait_for_selector("#live-rows[data-snapshots]", state="attached")
        assert page.inner_text("#live-status").startswith("updated ")
        assert watch.take() == []
        page.goto("about:blank")

        stranger = browser.new_context()  # another browser profile: no cookie, no entry
        try:
            response = stranger.new_page().goto(f"{base}/api/requests")
            assert response is not None and response.status == 401
        finally:
            stranger.close()
    finally:
        context.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0


def test_kept_alive_connections_to_llmlens_ui_answer_without_nagles_delay() -> None:
    """`llmlens ui` listens on a socket of its own making; asyncio turns Nagle's algorithm off on the
    connections it accepts only when that socket says IPPROTO_TCP. With Nagle on, every response after
    the first on a kept-alive connection (a browser's: app.css, app.js, the live log's polls) waited
    about 40 ms for the client's delayed ACK."""
    import asyncio
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from llmlens.web.cli import _listen

    async def accepted_nodelay() -> int:
        sock = _listen("127.0.0.1", 0)
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        async with await asyncio.start_server(handle, sock=sock):
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            try:
                return await asyncio.wait_for(got, 10)
            finally:
                writer.close()

    with ThreadPoolExecutor(1) as thread:  # (playwright's sync API may hold this thread's event loop)
        assert thread.submit(asyncio.run, accepted_nodelay()).result(30) == 1


# --- guard against a broken harness -----------------------------------------------------------------------


def test_the_watcher_sees_what_goes_wrong(browser: Browser, server: UvicornServer) -> None:
    """The checks above mean something only if the watcher reports a console error, an uncaught
    exception, a request to another host (refused), a failed request, a dialog and a payload that ran."""
    watch = Watch()
    context = new_context(browser, watch, bypass_csp=True)  # (else the CSP refuses the fetch first)
    tab = Tab(context.new_page(), watch, server.url)
    page = tab.open("requests")
    page.evaluate("() => console.error('on purpose')")
    page.evaluate("() => setTimeout(() => { throw new Error('thrown on purpose'); })")
    page.evaluate("() => fetch('http://example.invalid/').catch(() => null)")  # refused by the route
    page.evaluate("() => fetch('./nowhere').catch(() => null)")
    page.evaluate("() => setTimeout(() => alert('on purpose'))")
    page.evaluate("() => { window.__pwned = 1; }")
    assert tab.pwned() == 1
    page.wait_for_timeout(300)
    found = "\n".join(tab.leave())
    context.close()
    for expected in ("console error: on purpose", "uncaught exception: thrown on purpose",
                     "request leaving 127.0.0.1: http://example.invalid/", "request failed: GET http://example.invalid/",
                     "HTTP 404: GET ", "dialog alert: on purpose", "console error: PWNED 1"):  # fmt: skip
        assert expected in found, (expected, found)
