"""Test data for the store: realistic GenAI requests, recorded through the real SDK and processor.

`generate(n, ...)` makes deterministic request specs (providers, models, streams, errors, tokens, costs,
timestamps). `record(path, specs)` sends them as real spans through a real `TracerProvider` and a real
`SQLiteSpanProcessor` (with child spans, an agent parent span and a proxy SERVER span with its upstream
leg). `insert_fast(path, specs)` writes the same rows directly (for 100k+ rows). The specs are the
Python-side truth the tests aggregate independently.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmlens import semconv
from llmlens.store import rollups
from llmlens.store.retention import Retention
from llmlens.store.rows import ERROR_MESSAGE_MAX, REQUEST_COLUMNS
from llmlens.store.schema import open_store

NS = 1_000_000_000
MS = 1_000_000
SERVICE = "store-tests"

MODELS: dict[str, list[tuple[str, str]]] = {
    # provider -> (request model, response model); a dated response model tests "model matches either"
    "openai": [
        ("gpt-4o", "gpt-4o-2024-08-06"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("o3-mini", "o3-mini-2025-01-31"),
        ("text-embedding-3-small", "text-embedding-3-small"),
    ],
    "anthropic": [
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
    ],
    "gcp.gemini": [("gemini-2.5-flash", "gemini-2.5-flash")],
    "groq": [("llama-3.3-70b", "llama-3.3-70b-versatile")],
}
PROVIDER_WEIGHTS = {"openai": 5, "anthropic": 3, "gcp.gemini": 2, "groq": 1}
ERRORS = [
    ("RateLimitError", 429, "Error code: 429 - rate limit exceeded for organization org-{n}"),
    ("InternalServerError", 500, "Error code: 500 - upstream overloaded, retry later"),
    ("APITimeoutError", None, "Request timed out."),
    ("APIConnectionError", None, "Connection error: connection refused by upstream"),
]
KEY_LABELS = ["team-a", "team-b", None]


@dataclass
class Spec:
    """One generated LLM request: what the store should end up holding."""

    start_ns: int
    end_ns: int
    provider: str
    request_model: str
    response_model: str | None
    operation: str = "chat"
    stream: bool = False
    status: str = "ok"  # ok | error | unset
    error_type: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    ttfc_ms: float | None = None
    chunk_count: int | None = None
    outcome: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    api_key_label: str | None = None
    tool_calls: int = 0
    shape: str = "plain"  # plain | agent (parent INTERNAL span + HTTP child) | proxy (SERVER span + upstream)
    trace_id: str = ""
    span_id: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def model(self) -> str:
        return self.response_model or self.request_model or ""

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    @property
    def kind(self) -> str:
        return "server" if self.shape == "proxy" else "client"

    @property
    def name(self) -> str:
        return f"{self.operation} {self.request_model}"

    def attributes(self) -> dict[str, Any]:
        a: dict[str, Any] = {
            semconv.OPERATION_NAME: self.operation,
            semconv.PROVIDER_NAME: self.provider,
            semconv.REQUEST_MODEL: self.request_model,
            semconv.SERVER_ADDRESS: f"api.{self.provider}.example",
            semconv.SERVER_PORT: 443,
        }
        if self.stream:
            a[semconv.REQUEST_STREAM] = True
        if self.response_model:
            a[semconv.RESPONSE_MODEL] = self.response_model
        if self.error_type:
            a[semconv.ERROR_TYPE] = self.error_type
        if self.http_status is not None:
            a[semconv.HTTP_STATUS_CODE] = self.http_status
        for key, value in (
            (semconv.USAGE_INPUT_TOKENS, self.input_tokens),
            (semconv.USAGE_OUTPUT_TOKENS, self.output_tokens),
            (semconv.USAGE_CACHE_READ_INPUT_TOKENS, self.cache_read_tokens),
            (semconv.USAGE_CACHE_CREATION_INPUT_TOKENS, self.cache_write_tokens),
            (semconv.USAGE_REASONING_OUTPUT_TOKENS, self.reasoning_tokens),
            (semconv.LLMLENS_STREAM_CHUNKS, self.chunk_count),
            (semconv.LLMLENS_STREAM_OUTCOME, self.outcome),
            (semconv.LLMLENS_API_KEY_LABEL, self.api_key_label),
        ):
            if value is not None:
                a[key] = value
        if self.cost is not None:
            a[semconv.USAGE_COST_AMOUNT] = self.cost
            a[semconv.USAGE_COST_CURRENCY] = "USD"
        if self.ttfc_ms is not None:
            a[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = self.ttfc_ms / 1000
        if self.finish_reasons:
            a[semconv.RESPONSE_FINISH_REASONS] = tuple(self.finish_reasons)
        if self.tool_calls:
            a[semconv.LLMLENS_TOOL_CALL_COUNT] = self.tool_calls
        if self.shape == "proxy":
            a[semconv.LLMLENS_SOURCE_FORMAT] = "openai_chat"
            a[semconv.LLMLENS_TARGET_FORMAT] = "anthropic" if self.provider == "anthropic" else "openai_chat"
            a[semconv.CLIENT_ADDRESS] = "10.0.0.7"
        return a

    @property
    def stored_error_message(self) -> str | None:
        if self.status != "error" or not self.error_message:
            return None
        m = self.error_message
        return m if len(m) <= ERROR_MESSAGE_MAX else m[: ERROR_MESSAGE_MAX - 3] + "..."


def spec(start_ns: int, duration_ms: float = 500.0, **overrides: Any) -> Spec:
    """One hand-made spec (a successful openai gpt-4o chat by default)."""
    values: dict[str, Any] = {
        "provider": "openai",
        "request_model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "input_tokens": 100,
        "output_tokens": 20,
        "cost": 0.00045,
        "finish_reasons": ["stop"],
    }
    values.update(overrides)
    s = Spec(start_ns=start_ns, end_ns=start_ns + int(duration_ms * MS), **values)
    if s.status == "error":
        s.finish_reasons = []
    return s


def generate(n: int, *, seed: int = 7, start_ns: int, end_ns: int, shapes: bool = True) -> list[Spec]:
    """`n` varied requests starting between start_ns and end_ns, oldest first (deterministic)."""
    rng = random.Random(seed)
    providers = list(PROVIDER_WEIGHTS)
    weights = list(PROVIDER_WEIGHTS.values())
    step = (end_ns - start_ns) / max(n, 1)
    specs = []
    for i in range(n):
        start = start_ns + int(i * step + rng.random() * step * 0.9)
        provider = rng.choices(providers, weights)[0]
        request_model, response_model = rng.choice(MODELS[provider])
        embeddings = "embedding" in request_model
        operation = "generate_content" if provider == "gcp.gemini" else "chat"
        if embeddings:
            operation = "embeddings"
        stream = not embeddings and rng.random() < 0.4
        duration = min(120_000.0, max(5.0, math.exp(rng.gauss(math.log(800), 1.0))))
        s = Spec(
            start_ns=start,
            end_ns=start + int(duration * MS),
            provider=provider,
            request_model=request_model,
            response_model=response_model if rng.random() < 0.9 else None,
            operation=operation,
            stream=stream,
            api_key_label=rng.choice(KEY_LABELS),
        )
        roll = rng.random()
        if roll < 0.1:
            s.status = "error"
            s.error_type, s.http_status, message = rng.choice(ERRORS)
            s.error_message = message.format(n=rng.randint(1, 9))
            if rng.random() < 0.02:
                s.error_message = "very long upstream body " + "x" * 1500
            s.response_model = None
        else:
            s.status = "ok"
            s.input_tokens = rng.randint(10, 4000)
            if rng.random() < 0.3:
                s.cache_read_tokens = rng.randint(0, s.input_tokens)
            if provider == "anthropic" and rng.random() < 0.2:
                s.cache_write_tokens = rng.randint(1, 500)
            if not embeddings:
                s.output_tokens = rng.randint(1, 1000)
                if request_model.startswith("o3"):
                    s.reasoning_tokens = rng.randint(0, s.output_tokens)
                s.finish_reasons = [rng.choice(["stop", "stop", "length", "tool_calls"])]
                if s.finish_reasons == ["tool_calls"]:
                    s.tool_calls = rng.randint(1, 3)
            if rng.random() < 0.9:
                s.cost = round(s.input_tokens * 2.5e-6 + (s.output_tokens or 0) * 1e-5, 9)
        if stream:
            s.chunk_count = rng.randint(0, 60) if s.status != "ok" else rng.randint(1, 60)
            if s.chunk_count:
                s.ttfc_ms = round(duration * rng.uniform(0.05, 0.9), 3)
            if s.status == "ok" and rng.random() < 0.08:
                s.status = "unset"
                s.outcome = rng.choice(["closed", "abandoned"])
                s.finish_reasons = ["error"]
            else:
                s.outcome = "error" if s.status == "error" else "completed"
        if shapes:
            s.shape = "agent" if i % 7 == 3 else ("proxy" if i % 11 == 5 else "plain")
        specs.append(s)
    return specs


# --- through the real SDK and processor -------------------------------------------------------


def record(path: str | Path, specs: Sequence[Spec], **processor_options: Any) -> list[Spec]:
    """Send `specs` as real spans through TracerProvider + SQLiteSpanProcessor; fills trace/span ids."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from llmlens.store.processor import SQLiteSpanProcessor

    processor_options.setdefault("retention", Retention(0, 0, 0))
    processor = SQLiteSpanProcessor(str(path), **processor_options)
    provider = TracerProvider(resource=Resource.create({semconv.SERVICE_NAME: SERVICE}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("store-tests")
    status_of = {"ok": StatusCode.OK, "error": StatusCode.ERROR, "unset": StatusCode.UNSET}
    for s in specs:
        parent_ctx = None
        agent = None
        if s.shape == "agent":
            agent = tracer.start_span("agent.run", kind=SpanKind.INTERNAL, start_time=s.start_ns - 2 * MS)
            parent_ctx = trace.set_span_in_context(agent)
        kind = SpanKind.SERVER if s.shape == "proxy" else SpanKind.CLIENT
        attributes = s.attributes()
        span = tracer.start_span(
            s.name,
            context=parent_ctx,
            kind=kind,
            attributes={k: attributes[k] for k in (semconv.OPERATION_NAME, semconv.PROVIDER_NAME)},
            start_time=s.start_ns,
        )
        ctx = span.get_span_context()
        s.trace_id, s.span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
        child_ctx = trace.set_span_in_context(span)
        if s.shape == "agent":
            http = tracer.start_span(
                "POST", context=child_ctx, kind=SpanKind.CLIENT, start_time=s.start_ns + MS,
                attributes={"http.request.method": "POST"},
            )  # fmt: skip
            http.end(end_time=s.end_ns - MS)
        elif s.shape == "proxy":
            upstream = tracer.start_span(
                s.name, context=child_ctx, kind=SpanKind.CLIENT, start_time=s.start_ns + MS,
                attributes={**attributes, semconv.LLMLENS_UPSTREAM: True},
            )  # fmt: skip
            upstream.end(end_time=s.end_ns - MS)
        span.set_attributes(attributes)
        if s.status == "error":
            span.set_status(Status(StatusCode.ERROR, s.error_message))
        elif s.status == "ok":
            span.set_status(Status(status_of["ok"]))
        span.end(end_time=s.end_ns)
        if agent is not None:
            agent.end(end_time=s.end_ns + 2 * MS)
    assert processor.force_flush(30_000)
    provider.shutdown()
    assert processor.stats.dropped_queue_full == 0 and processor.stats.dropped_store_unavailable == 0
    return list(specs)


# --- direct insert for large data sets ----------------------------------------------------------


def row_of(s: Spec) -> tuple[Any, ...]:
    """The `requests` row `rows.request_row` makes for this spec (a plain request without parent)."""
    import json

    a = s.attributes()
    values: dict[str, Any] = {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": None,
        "start_ns": s.start_ns,
        "end_ns": s.end_ns,
        "duration_ms": (s.end_ns - s.start_ns) / 1e6,
        "span_name": s.name,
        "span_kind": s.kind,
        "operation": s.operation,
        "provider": s.provider,
        "request_model": s.request_model,
        "response_model": s.response_model,
        "api": None,
        "server_address": a[semconv.SERVER_ADDRESS],
        "server_port": 443,
        "error_type": s.error_type,
        "http_status": s.http_status,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "cache_read_tokens": s.cache_read_tokens,
        "cache_write_tokens": s.cache_write_tokens,
        "reasoning_tokens": s.reasoning_tokens,
        "cost_usd": s.cost,
        "chunk_count": s.chunk_count,
        "stream_outcome": s.outcome,
        "response_id": None,
        "api_key_label": s.api_key_label,
        "client_ip": a.get(semconv.CLIENT_ADDRESS),
        "source_format": a.get(semconv.LLMLENS_SOURCE_FORMAT),
        "target_format": a.get(semconv.LLMLENS_TARGET_FORMAT),
        "profile_id": None,
        "stream": 1 if s.stream else 0,
        "status": s.status,
        "is_error": 1 if s.is_error else 0,
        "error_message": s.stored_error_message,
        "ttfc_ms": s.ttfc_ms / 1000 * 1000 if s.ttfc_ms is not None else None,  # the span has seconds
        "finish_reasons": ",".join(s.finish_reasons) if s.finish_reasons else None,
        "service_name": SERVICE,
        "attributes": json.dumps(
            {k: v for k, v in a.items() if k in _REST}, ensure_ascii=False, separators=(",", ":")
        ),
    }
    return tuple(values[c] for c in REQUEST_COLUMNS)


# The attributes without a column of their own (they land in the `attributes` JSON).
_REST = {semconv.USAGE_COST_CURRENCY, semconv.LLMLENS_TOOL_CALL_COUNT}


def insert_fast(path: str | Path, specs: Iterable[Spec], *, seed: int = 11, batch: int = 50_000) -> int:
    """Write the specs' rows and rollups directly (the processor's transaction, minus the spans)."""
    from llmlens.store.processor import _INSERT_REQUEST

    rng = random.Random(seed)
    conn = open_store(str(path))
    count = 0
    try:
        pending: list[tuple[Any, ...]] = []

        def flush() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT_REQUEST, pending)
            rollups.add(conn, pending)
            conn.execute("COMMIT")
            pending.clear()

        for s in specs:
            if not s.trace_id:
                s.trace_id = f"{rng.getrandbits(128):032x}"
                s.span_id = f"{rng.getrandbits(64):016x}"
            pending.append(row_of(s))
            count += 1
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    finally:
        conn.close()
    return count


def with_ids(specs: Sequence[Spec], seed: int = 3) -> list[Spec]:
    rng = random.Random(seed)
    return [
        replace(s, trace_id=f"{rng.getrandbits(128):032x}", span_id=f"{rng.getrandbits(64):016x}")
        for s in specs
    ]


def unpriced(s: Spec) -> bool:
    """A request whose cost nobody knows: no cost, and not one that failed before any output without
    usage (that one is not billed). Sums count these as "not priced"."""
    failed_before_output = (
        s.is_error and not s.chunk_count and s.input_tokens is None and s.output_tokens is None
    )
    return s.cost is None and not failed_before_output
