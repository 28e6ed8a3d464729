"""Zero-code proxies: under `Instrumentor().instrument()` (or `opentelemetry-instrument`) Starlette and
FastAPI applications get the middleware however they are built, and each LLM request has exactly one
SERVER span (ours) whatever other OpenTelemetry instrumentation is active: FastAPI's native telemetry,
Starlette's OpenTelemetryMiddleware, the contrib FastAPI/ASGI instrumentation."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from proxies.asgi_apps import drive

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
SSE = [
    b'data: {"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    b"data: [DONE]\n\n",
]


async def chat(request: Request) -> Response:
    await request.body()

    async def events() -> Any:
        for event in SSE:
            yield event

    return StreamingResponse(events(), media_type="text/event-stream")


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def fastapi_app(**kwargs: Any) -> FastAPI:
    app = FastAPI(**kwargs)
    app.add_api_route(CHAT, chat, methods=["POST"])
    app.add_api_route("/health", health, methods=["GET"])
    return app


def starlette_app(middleware: Any = ()) -> Starlette:
    return Starlette(routes=[Route(CHAT, chat, methods=["POST"]), Route("/health", health)],
                     middleware=list(middleware))  # fmt: skip


def call(app: Any, path: str = CHAT, method: str = "POST") -> Any:
    return asyncio.run(drive(app, path, BODY if method == "POST" else b"", method=method))


def kinds(otel: Any) -> list[tuple[str, SpanKind, str]]:
    return sorted(((s.instrumentation_scope.name, s.kind, s.name) for s in otel.spans()), key=str)


def ours(otel: Any) -> Any:
    (span,) = [s for s in otel.spans() if s.instrumentation_scope.name == "llmlens"]
    return span


# a module-level app, built before instrument() runs
MODULE_APP = fastapi_app()


def test_an_app_built_before_instrumenting(instrumented: Any, otel: Any) -> None:
    result = call(MODULE_APP)
    assert result.body == b"".join(SSE)
    assert kinds(otel) == [("llmlens", SpanKind.SERVER, "chat gpt-4o-mini")]
    assert ours(otel).attributes["llmlens.stream.outcome"] == "completed"


def test_an_app_factory_and_a_plain_starlette_app(instrumented: Any, otel: Any) -> None:
    call(fastapi_app())
    call(starlette_app())
    assert [k[1:] for k in kinds(otel)] == [(SpanKind.SERVER, "chat gpt-4o-mini")] * 2


class OwnStack(Starlette):
    """Builds its middleware stack itself, without Starlette's build_middleware_stack."""

    def build_middleware_stack(self) -> Any:
        router = self.router

        async def stack(scope: Any, receive: Any, send: Any) -> None:
            await router(scope, receive, send)

        return stack


def test_an_app_with_its_own_build_middleware_stack(instrumented: Any, otel: Any) -> None:
    app = OwnStack(routes=[Route(CHAT, chat, methods=["POST"])])
    assert call(app).body == b"".join(SSE)
    assert kinds(otel) == [("llmlens", SpanKind.SERVER, "chat gpt-4o-mini")]


def test_other_routes_are_left_alone(instrumented: Any, otel: Any) -> None:
    assert json.loads(call(fastapi_app(), "/health", "GET").body) == {"ok": True}
    assert otel.spans() == []


def test_fastapi_native_telemetry(instrumented: Any, otel: Any) -> None:
    telemetry = {"tracer_provider": otel.tracer_provider, "meter_provider": otel.meter_provider}
    app = fastapi_app(telemetry=telemetry)
    call(app)
    # FastAPI would open its own root SERVER span: for an LLM request ours replaces it
    assert kinds(otel) == [("llmlens", SpanKind.SERVER, "chat gpt-4o-mini")]
    otel.spans_exporter.clear()
    call(app, "/health", "GET")
    roots = [(s.instrumentation_scope.name, s.kind, s.name) for s in otel.spans() if s.parent is None]
    assert roots == [("fastapi", SpanKind.SERVER, "GET /health")]  # untouched elsewhere


def test_starlette_opentelemetry_middleware(instrumented: Any, otel: Any) -> None:
    from starlette.middleware.opentelemetry import OpenTelemetryMiddleware

    app = starlette_app([Middleware(OpenTelemetryMiddleware, tracer_provider=otel.tracer_provider)])
    call(app)
    assert kinds(otel) == [("llmlens", SpanKind.SERVER, "chat gpt-4o-mini")]
    otel.spans_exporter.clear()
    call(app, "/health", "GET")
    assert [k[:2] for k in kinds(otel)] == [("starlette", SpanKind.SERVER)]


def test_contrib_fastapi_instrumentation(instrumented: Any, otel: Any) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = fastapi_app()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=otel.tracer_provider,
                                       meter_provider=otel.meter_provider)  # fmt: skip
    try:
        call(app)
        server = ours(otel)
        spans = otel.spans()
        assert [s for s in spans if s.kind == SpanKind.SERVER] == [server]
        contrib = [
            s for s in spans if s.instrumentation_scope.name.startswith("opentelemetry.instrumentation")
        ]
        assert contrib  # its span (and its send/receive spans) nest under ours
        assert all(s.context.trace_id == server.context.trace_id for s in contrib)
        top = next(s for s in contrib if s.parent.span_id == server.context.span_id)
        assert top.kind == SpanKind.INTERNAL
        otel.spans_exporter.clear()
        call(app, "/health", "GET")
        assert [s.kind for s in otel.spans() if s.parent is None] == [SpanKind.SERVER]  # contrib's own
    finally:
        FastAPIInstrumentor.uninstrument_app(app)


def test_proxy_auto_off(instrument: Any, otel: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("LLMLENS_PROXY_AUTO", "off")
    instrument()
    call(fastapi_app())
    assert otel.spans() == []


def test_uninstrument_restores_the_classes(instrument: Any, otel: Any) -> None:
    import fastapi.applications
    import starlette.applications

    originals = (starlette.applications.Starlette.__call__, fastapi.applications.FastAPI.__call__)
    instrumentor = instrument()
    assert starlette.applications.Starlette.__call__ is not originals[0]
    app = fastapi_app()
    instrumentor.uninstrument()
    assert (starlette.applications.Starlette.__call__, fastapi.applications.FastAPI.__call__) == originals
    call(app)
    assert otel.spans() == []
    instrument()  # and again
    call(app)
    assert len(otel.spans()) == 1


APP = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from fastapi import FastAPI
from proxies.asgi_apps import Canned, drive

app = FastAPI()
canned = Canned(scenario="chunks=3")

@app.post("/v1/chat/completions")
async def chat(request):
    raise AssertionError("replaced below")

app.router.routes[-1].app = canned  # the fake provider's reply, as a proxy would relay it
body = {{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hi"}}], "stream": True}}
result = asyncio.run(drive(app, "/v1/chat/completions", body))
assert result.body == b"".join(m.get("body", b"") for m in canned.sent if "body" in m)
print("APP DONE", flush=True)
"""


@pytest.mark.parametrize("auto", ["on"])  # (`off`: test_proxy_auto_off, in process)
def test_opentelemetry_instrument(tmp_path: Path, auto: str) -> None:
    """`opentelemetry-instrument python app.py`: llmlens, and the contrib FastAPI instrumentor (installed
    here), both load; the app has no OpenTelemetry code."""
    script = tmp_path / "app.py"
    script.write_text(APP.format(tests=str(Path(__file__).parent)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    env.update(OTEL_SERVICE_NAME="proxy", LLMLENS_DB=str(tmp_path / "db.sqlite"), LLMLENS_PROXY_AUTO=auto)
    command = [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(script)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert "APP DONE" in done.stdout, done.stderr
    spans = _console_spans(done.stdout)
    servers = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    if auto == "on":
        assert [s["name"] for s in servers] == ["chat gpt-4o-mini"]
        (server,) = servers
        assert server["attributes"]["llmlens.stream.outcome"] == "completed"
        assert server["attributes"]["llmlens.stream.chunk_count"] == 5  # role, 3 words, finish
        # everything else (the contrib instrumentation's spans) is inside that trace, below it
        assert {s["context"]["trace_id"] for s in spans} == {server["context"]["trace_id"]}
    else:
        assert all(s["name"] != "chat gpt-4o-mini" for s in spans)


def _console_spans(stdout: str) -> list[dict[str, Any]]:
    spans, depth, start = [], 0, None
    for index, char in enumerate(stdout):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                try:
                    spans.append(json.loads(stdout[start : index + 1]))
                except ValueError:
                    pass
    return [s for s in spans if "kind" in s]
