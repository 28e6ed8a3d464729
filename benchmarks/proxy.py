"""What the proxy instrumentation costs: middleware time per proxied request, and SSE parsing throughput.

    python benchmarks/proxy.py [--rounds R] [--requests N] [--cold] [--markdown]

Part 1, middleware cost. One FastAPI proxy app, built three times: as it is (`plain`), behind
`LLMProxyMiddleware` on SDK providers (`llmlens`: TracerProvider with a BatchSpanProcessor feeding an
exporter that drops spans, MeterProvider with an InMemoryMetricReader; no local store), and behind the
`floor` on the same providers: the least any instrumentation with a span per request pays, a SERVER span
with the 20 attributes of the peer comparison's floor (benchmarks/peers_overhead.py), current while the
app runs, and three histogram records. Its routes answer
like a proxy whose upstream replied at once (the fake provider's bodies, built once), so what is timed is
the ASGI app plus whatever the middleware adds. Requests go straight into the ASGI app (no socket, no
HTTP parsing: those cost the same either way and would only add noise). The apps run interleaved:
each of R rounds runs N requests per app per workload, in slices that alternate the order, and the
per-request cost is the median over rounds of the mean; Δ is the median of the paired per-round
differences. Workloads: a chat completion (JSON), a streamed chat completion (34 content chunks and the
usage chunk, one ASGI message per SSE event), a streamed Anthropic message (34 text deltas), and a
non-LLM route (`GET /health`, which the middleware only looks at).

`--cold`: each request runs right after about 10 ms of unrelated work (the JSON round trip of
`cold_cache.py`, untimed), as in a real server, where the server's own work between two requests evicts
the middleware's code and data from the CPU caches; each request is then timed alone. Part 1 only, no
target (the 0.3 ms one is for warm caches), 60 requests per app and workload unless `--requests` says.

Part 2, SSE parsing throughput of `llmlens.proxy.sse.SSEParser` alone: MB/s over a 4 MB stream of real
event shapes, fed in network-sized pieces (64 KiB, 4 KiB) and one event per chunk (how an ASGI proxy
sends them), best of 5.

Targets: middleware Δ <= 0.3 ms per proxied request; SSE parsing >= 200 MB/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from llmlens.core.telemetry import Telemetry
from llmlens.demo import fake_anthropic, fake_bodies
from llmlens.demo.fake_bodies import Scenario
from llmlens.proxy.asgi import LLMProxyMiddleware
from llmlens.proxy.sse import SSEParser
from llmlens.settings import Settings
from peers_overhead import FLOOR_END, FLOOR_METRICS, FLOOR_START, fill_caches

TARGET_MIDDLEWARE_MS = 0.3
TARGET_SSE_MBPS = 200.0
HI = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": HI}
CHAT_STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
MESSAGES_STREAM = {"model": "claude-haiku-4-5", "max_tokens": 256, "messages": HI, "stream": True}


class Discard(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class FloorMiddleware:
    """The floor of a proxy instrumentation: one SERVER span (20 attributes) per POST, current while the
    app runs, and three histogram records."""

    def __init__(self, app: Any, tracer_provider: Any, meter_provider: Any) -> None:
        self.app = app
        self.tracer = tracer_provider.get_tracer("floor")
        meter = meter_provider.get_meter("floor")
        self.duration = meter.create_histogram("gen_ai.server.request.duration", unit="s")
        self.tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        self.input = {**FLOOR_METRICS, "gen_ai.token.type": "input"}
        self.output = {**FLOOR_METRICS, "gen_ai.token.type": "output"}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        span = self.tracer.start_span("chat gpt-4o-mini", kind=SpanKind.SERVER, attributes=FLOOR_START)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
            span.set_attributes(FLOOR_END)
            span.end()
            self.duration.record(time.perf_counter() - start, FLOOR_METRICS)
            self.tokens.record(20, self.input)
            self.tokens.record(34, self.output)


def upstream_replies() -> dict[str, Any]:
    scenario = Scenario.parse("chunks=34")
    return {
        "chat": fake_bodies.route("POST", "/v1/chat/completions", CHAT, scenario).body,
        "chat_stream": fake_bodies.route("POST", "/v1/chat/completions", CHAT_STREAM, scenario).events,
        "messages_stream": fake_anthropic.route("POST", "/v1/messages", MESSAGES_STREAM, scenario).events,
    }


def proxy_app(replies: dict[str, Any]) -> FastAPI:
    """A proxy whose upstream answered instantly: it reads the request and relays the reply."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> Response:
        if body.get("stream"):
            return StreamingResponse(_relay(replies["chat_stream"]), media_type="text/event-stream")
        return Response(replies["chat"], media_type="application/json")

    @app.post("/v1/messages")
    async def messages(body: dict[str, Any]) -> Response:
        return StreamingResponse(_relay(replies["messages_stream"]), media_type="text/event-stream")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _relay(events: list[bytes]) -> Any:
    for event in events:
        yield event


def _scope(method: str, path: str, length: int) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(length).encode()),
                    (b"authorization", b"Bearer sk-bench")],
    }  # fmt: skip


WORKLOADS: dict[str, tuple[str, str, bytes]] = {
    "chat (JSON)": ("POST", "/v1/chat/completions", json.dumps(CHAT).encode()),
    "chat stream (37 events)": ("POST", "/v1/chat/completions", json.dumps(CHAT_STREAM).encode()),
    "anthropic stream (39 events)": ("POST", "/v1/messages", json.dumps(MESSAGES_STREAM).encode()),
    "GET /health (not LLM)": ("GET", "/health", b""),
}


async def _request(app: Any, method: str, path: str, body: bytes) -> int:
    sent = 0
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += 1

    await app(_scope(method, path, len(body)), receive, send)
    return sent


def middleware_cost(rounds: int, requests: int, cold: bool = False) -> dict[str, dict[str, Any]]:
    replies = upstream_replies()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    settings = Settings(store=False, proxy_key_secret="bench")
    telemetry = Telemetry(settings, tracer_provider, meter_provider)
    apps = {
        "plain": proxy_app(replies),
        "floor": FloorMiddleware(proxy_app(replies), tracer_provider, meter_provider),
        "llmlens": LLMProxyMiddleware(proxy_app(replies), telemetry=telemetry, settings=settings),
    }
    loop = asyncio.new_event_loop()
    results: dict[str, dict[str, Any]] = {}
    for name, (method, path, body) in WORKLOADS.items():
        for app in apps.values():  # warm-up (and a check that both answer the same)
            for _ in range(50):
                loop.run_until_complete(_request(app, method, path, body))
        per_round: dict[str, list[float]] = {mode: [] for mode in apps}
        for round_number in range(rounds):
            gc.collect()
            totals = {mode: 0.0 for mode in apps}
            order = list(apps) if round_number % 2 == 0 else list(reversed(apps))
            slices = 10
            for piece in range(slices):
                for mode in order if piece % 2 == 0 else reversed(order):
                    app = apps[mode]
                    if cold:  # each request alone, after work that fills the caches with other data
                        for _ in range(requests // slices):
                            fill_caches()
                            start = time.perf_counter()
                            loop.run_until_complete(_request(app, method, path, body))
                            totals[mode] += time.perf_counter() - start
                        continue
                    start = time.perf_counter()
                    for _ in range(requests // slices):
                        loop.run_until_complete(_request(app, method, path, body))
                    totals[mode] += time.perf_counter() - start
            for mode in apps:
                per_round[mode].append(totals[mode] / (requests // slices * slices) * 1e3)
        deltas = [b - a for a, b in zip(per_round["plain"], per_round["llmlens"], strict=True)]
        floors = [b - a for a, b in zip(per_round["plain"], per_round["floor"], strict=True)]
        results[name] = {
            "plain": statistics.median(per_round["plain"]),
            "floor": statistics.median(per_round["floor"]),
            "llmlens": statistics.median(per_round["llmlens"]),
            "delta": statistics.median(deltas),
            "floor_delta": statistics.median(floors),
            "llm": method == "POST",
        }
    loop.close()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results


def sse_throughput() -> dict[str, float]:
    scenario = Scenario.parse("chunks=200")
    openai_events = fake_bodies.route("POST", "/v1/chat/completions", CHAT_STREAM, scenario).events or []
    anthropic_events = fake_anthropic.route("POST", "/v1/messages", MESSAGES_STREAM, scenario).events or []
    shapes = {}
    for label, events in (("OpenAI chat", openai_events), ("Anthropic messages", anthropic_events)):
        stream = b"".join(events)
        stream = stream * (4_000_000 // len(stream) + 1)
        event_size = len(b"".join(events)) // len(events)
        pieces = {
            "64 KiB pieces": [stream[i : i + 65536] for i in range(0, len(stream), 65536)],
            "4 KiB pieces": [stream[i : i + 4096] for i in range(0, len(stream), 4096)],
            f"one event per chunk (~{event_size} B)": list(events) * (len(stream) // len(b"".join(events))),
        }
        for how, chunks in pieces.items():
            size = sum(map(len, chunks))
            best = float("inf")
            for _ in range(5):
                parser = SSEParser()
                feed = parser.feed
                start = time.perf_counter()
                for chunk in chunks:
                    feed(chunk)
                best = min(best, time.perf_counter() - start)
            shapes[f"{label}, {how}"] = size / best / 1e6
    return shapes


def report(cost: dict[str, dict[str, Any]], sse: dict[str, float] | None, markdown: bool) -> bool:
    """Print the tables; True when every target is met (`sse` None: a cold run, no targets)."""
    ok = True
    lines = []
    if markdown:
        lines += ["| workload | plain app (ms/request) | with the middleware | Δ (ms) | floor Δ (ms) "
                  "| target |", "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    else:
        lines.append(
            f"{'workload':32} {'plain ms':>9} {'llmlens ms':>11} {'delta ms':>9} {'floor delta':>12}  target"
        )
    for name, row in cost.items():
        passed = row["delta"] <= TARGET_MIDDLEWARE_MS
        ok &= passed or sse is None
        verdict = f"<= {TARGET_MIDDLEWARE_MS} ms {'PASS' if passed else 'FAIL'}"
        if sse is None:
            verdict = "none (cold)"
        floor = f"{row['floor_delta']:+.3f}" if row["llm"] else "-"
        if markdown:
            lines.append(
                f"| {name} | {row['plain']:.3f} | {row['llmlens']:.3f} | {row['delta']:+.3f} | {floor} "
                f"| {verdict} |"
            )
        else:
            lines.append(
                f"{name:32} {row['plain']:9.3f} {row['llmlens']:11.3f} {row['delta']:+9.3f} {floor:>12}  "
                f"{verdict}"
            )
    if sse is None:
        print("\n".join(lines))
        return ok
    lines.append("")
    if markdown:
        lines += ["| SSE stream | MB/s | target |", "|---|---:|---|"]
    else:
        lines.append(f"{'SSE parsing':60} {'MB/s':>7}  target")
    for name, rate in sse.items():
        passed = rate >= TARGET_SSE_MBPS
        verdict = f">= {TARGET_SSE_MBPS:.0f} MB/s {'PASS' if passed else 'below'}"
        lines.append(
            f"| {name} | {rate:.0f} | {verdict} |" if markdown else f"{name:60} {rate:7.0f}  {verdict}"
        )
    print("\n".join(lines))
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, help="per app, workload and round (400; 60 with --cold)")
    parser.add_argument(
        "--cold", action="store_true", help="each request after ~10 ms of unrelated work (middleware only)"
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    requests = args.requests or (60 if args.cold else 400)
    if args.rounds < 1 or requests < 10:
        parser.error("--rounds must be >= 1 and --requests >= 10 (requests are run in 10 slices)")
    runs = f"{args.rounds} rounds x {requests} requests per app and workload"
    runs += ", each after ~10 ms of other work (cold caches)" if args.cold else ""
    print(f"python {sys.version.split()[0]}, {runs}\n")
    cost = middleware_cost(args.rounds, requests, cold=args.cold)
    sse = None if args.cold else sse_throughput()
    return 0 if report(cost, sse, args.markdown) else 1


if __name__ == "__main__":
    raise SystemExit(main())
