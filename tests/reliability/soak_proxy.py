"""The proxy under soak, as its own process: the OpenAI passthrough proxy of tests/proxies/openai_proxy.py
under uvicorn, instrumented by llmlens (zero code: `Instrumentor().instrument()`, with the local store),
and what the soak test reads from inside it.

    python soak_proxy.py DB_PATH UPSTREAM_BASE_URL      # prints the port, serves until stdin closes

Inside the process:

- `GET /_soak/memory?start=1` starts tracemalloc (after a first call: tracing the imports would take a
  minute); `GET /_soak/memory` collects garbage and answers the traced bytes
  (and, with `?top=1`, the allocation sites that grew most since the last `?mark=1`);
- a span processor counts SERVER spans started and ended (ids of those still open, nothing else kept);
- an ASGI wrapper outside everything (llmlens's middleware included) counts the LLM requests and checks
  the OpenTelemetry context once each has been handled: it must be empty again;
- `GET /_soak/stats` flushes the store and answers those counts, and how many invocations are still in
  flight (llmlens.core.in_flight.IN_FLIGHT).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # tests/, for `proxies`

from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from llmlens.core.in_flight import IN_FLIGHT  # noqa: E402
from llmlens.instrumentor import Instrumentor  # noqa: E402
from llmlens.store.attach import attached_store  # noqa: E402


class SpanCounts(SpanProcessor):
    """SERVER and CLIENT spans started and ended; the ids of the ones still open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = {"SERVER": 0, "CLIENT": 0}
        self.ended = {"SERVER": 0, "CLIENT": 0}
        self.ended_twice = 0
        self.open: set[int] = set()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        kind = _kind(span)
        if kind:
            with self.lock:
                self.started[kind] += 1
                self.open.add(span.context.span_id)

    def on_end(self, span: Any) -> None:
        kind = _kind(span)
        if kind:
            with self.lock:
                self.ended[kind] += 1
                if span.context.span_id in self.open:
                    self.open.discard(span.context.span_id)
                else:
                    self.ended_twice += 1


def _kind(span: Any) -> str | None:
    return {SpanKind.SERVER: "SERVER", SpanKind.CLIENT: "CLIENT"}.get(span.kind)


class Discard(dict):  # type: ignore[type-arg]
    """The proxy's record of sent bytes, kept by nobody (it would grow with every request)."""

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return []


class ContextCheck:
    """Outside every middleware: counts LLM requests and those that left the context non-empty."""

    def __init__(self, app: Any, counts: SpanCounts, db: str) -> None:
        self.app, self.counts, self.db = app, counts, db
        self.llm_requests = 0
        self.leaked_contexts = 0
        self.mark: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/_soak/"):
            await self._answer(path, scope, send)
            return
        if scope["type"] == "http" and path == "/v1/chat/completions":
            self.llm_requests += 1
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and otel_context.get_current():
                self.leaked_contexts += 1

    async def _answer(self, path: str, scope: Any, send: Any) -> None:
        query = scope.get("query_string", b"").decode()
        if path == "/_soak/memory":
            if "start=1" in query:
                tracemalloc.start(1)  # one frame: deeper tracebacks slow the proxy down several times
            gc.collect()
            body: dict[str, Any] = {"traced": tracemalloc.get_traced_memory()[0]}
            if "mark=1" in query:
                self.mark = tracemalloc.take_snapshot()
            if "top=1" in query and self.mark is not None:
                diff = tracemalloc.take_snapshot().compare_to(self.mark, "lineno")
                body["top"] = [str(stat) for stat in diff[:10]]
        else:
            store = attached_store(TRACER_PROVIDER)
            flushed = store.force_flush(30_000) if store is not None else False
            with self.counts.lock:
                body = {
                    "server_started": self.counts.started["SERVER"],
                    "server_ended": self.counts.ended["SERVER"],
                    "client_started": self.counts.started["CLIENT"],
                    "client_ended": self.counts.ended["CLIENT"],
                    "ended_twice": self.counts.ended_twice,
                    "open": len(self.counts.open),
                }
            body.update(
                llm_requests=self.llm_requests,
                leaked_contexts=self.leaked_contexts,
                in_flight=len(IN_FLIGHT),
                context_now=bool(otel_context.get_current()),
                store_flushed=flushed,
                dropped=store.stats.dropped_queue_full if store is not None else None,
            )
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})


TRACER_PROVIDER = TracerProvider()


def main() -> None:
    db, upstream = sys.argv[1], sys.argv[2]
    counts = SpanCounts()
    TRACER_PROVIDER.add_span_processor(counts)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    Instrumentor().instrument(
        tracer_provider=TRACER_PROVIDER,
        meter_provider=meter_provider,
        store=True,
        db_path=db,
        providers=["openai"],
    )
    import openai

    from proxies import openai_proxy
    from proxies.server import UvicornServer

    # The fake provider, under 200 concurrent streams on a shared 2-core machine, can take longer to
    # accept a connection than openai's 5 s connect timeout: a 500 from the proxy, not what is tested.
    class PatientAsyncOpenAI(openai.AsyncOpenAI):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("timeout", openai.Timeout(120.0, connect=60.0))
            super().__init__(*args, **kwargs)

    openai.AsyncOpenAI = PatientAsyncOpenAI  # type: ignore[misc]

    app = ContextCheck(openai_proxy.create_app(upstream, Discard()), counts, db)
    with UvicornServer(app, backlog=2048, timeout_keep_alive=30) as server:
        print(server.port, flush=True)
        sys.stdin.read()  # until the test closes our stdin


if __name__ == "__main__":
    main()
