"""SQLiteSpanProcessor end to end: real TracerProviders, real SQLite files in tmp_path, real processes.

Covers the row mapping (every `requests` column checked against the span), which spans land in `spans`,
the per-minute rollups against an aggregation done here in Python, force_flush / shutdown, the bounded
queue, `enabled`, `RecordGenAISampler`, fork safety and several processes writing one file.

The helpers at the top (`new_provider`, `llm_attributes`, `emit_request`, `hold_write_lock`, `count`)
are shared with the other `test_store_*` modules.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

from llmlens import semconv
from llmlens.store import RecordGenAISampler, Retention, SQLiteSpanProcessor, open_store
from llmlens.store.rows import ERROR_MESSAGE_MAX

SERVICE = "checkout-api"
NO_RETENTION = Retention(max_success=0, max_errors=0, max_age_days=0)


# --- shared helpers ---------------------------------------------------------------------------------


def new_provider(*processors: SpanProcessor, sampler: Any = None) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}), sampler=sampler)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def new_processor(path: Path | str, **options: Any) -> SQLiteSpanProcessor:
    options.setdefault("retention", NO_RETENTION)
    return SQLiteSpanProcessor(path, **options)


def llm_attributes(i: int = 0, **overrides: Any) -> dict[str, Any]:
    """What llmlens puts on a streamed chat span (plus the proxy attributes), varied by `i`."""
    attributes: dict[str, Any] = {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: ("openai", "anthropic", "gcp.gemini")[i % 3],
        semconv.REQUEST_MODEL: ("gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash")[i % 3],
        semconv.RESPONSE_MODEL: ("gpt-4o-mini-2024-07-18", "claude-sonnet-4-20250514", "gemini-2.5-flash")[
            i % 3
        ],
        semconv.OPENAI_API_TYPE: "chat_completions",
        semconv.SERVER_ADDRESS: "api.example.com",
        semconv.SERVER_PORT: 443,
        semconv.REQUEST_STREAM: i % 2 == 0,
        semconv.REQUEST_TEMPERATURE: 0.2,
        semconv.REQUEST_MAX_TOKENS: 512,
        semconv.USAGE_INPUT_TOKENS: 1000 + i,
        semconv.USAGE_OUTPUT_TOKENS: 200 + i % 50,
        semconv.USAGE_CACHE_READ_INPUT_TOKENS: 512,
        semconv.USAGE_REASONING_OUTPUT_TOKENS: 64,
        semconv.USAGE_COST_AMOUNT: 0.00042 + i * 1e-6,
        semconv.RESPONSE_ID: f"chatcmpl-{i}",
        semconv.RESPONSE_FINISH_REASONS: ("stop",),
        semconv.RESPONSE_TIME_TO_FIRST_CHUNK: 0.180 + (i % 7) * 0.01,
        semconv.LLMLENS_STREAM_CHUNKS: 37,
        semconv.LLMLENS_STREAM_OUTCOME: semconv.OUTCOME_COMPLETED,
        semconv.LLMLENS_API_KEY_LABEL: f"team-{i % 4}",
    }
    attributes.update(overrides)
    return {k: v for k, v in attributes.items() if v is not None}


def emit_request(
    tracer: Tracer,
    attributes: dict[str, Any] | None = None,
    *,
    name: str = "chat gpt-4o-mini",
    kind: SpanKind = SpanKind.CLIENT,
    error: str | None = None,
    children: int = 0,
    start_ns: int | None = None,
    duration_ns: int | None = None,
    context: Any = None,
) -> tuple[int, int]:
    """One LLM request span (children end before it, as HTTP spans do). Returns (trace_id, span_id)."""
    start = start_ns if start_ns is not None else time.time_ns()
    span = tracer.start_span(
        name, kind=kind, attributes=llm_attributes() if attributes is None else attributes,
        start_time=start, context=context,
    )  # fmt: skip
    inner = set_span_in_context(span)
    for c in range(children):
        child = tracer.start_span(f"POST /v1/chat/completions #{c}", context=inner, start_time=start + 1000)
        child.set_attribute("http.request.method", "POST")
        child.end(end_time=start + 2000 + c)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=start + duration_ns if duration_ns is not None else None)
    ctx = span.get_span_context()
    return ctx.trace_id, ctx.span_id


def count(path: Path | str, table: str = "requests", where: str = "1") -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def rows_of(path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


@contextlib.contextmanager
def hold_write_lock(path: Path | str) -> Iterator[sqlite3.Connection]:
    """Another connection holding `BEGIN EXCLUSIVE` on the store for the duration of the block."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def writer_blocked(processor: SQLiteSpanProcessor, tracer: Tracer) -> None:
    """Make sure the writer thread sits in `BEGIN IMMEDIATE` (call inside hold_write_lock)."""
    emit_request(tracer)
    assert processor.force_flush(timeout_millis=100) is False


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "llmlens.db"


# --- the request row ----------------------------------------------------------------------------------


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


# span attribute -> requests column, written out here rather than imported (the test is the spec).
ATTRIBUTE_COLUMNS = {
    semconv.OPERATION_NAME: "operation",
    semconv.PROVIDER_NAME: "provider",
    semconv.REQUEST_MODEL: "request_model",
    semconv.RESPONSE_MODEL: "response_model",
    semconv.OPENAI_API_TYPE: "api",
    semconv.SERVER_ADDRESS: "server_address",
    semconv.SERVER_PORT: "server_port",
    semconv.ERROR_TYPE: "error_type",
    semconv.HTTP_STATUS_CODE: "http_status",
    semconv.USAGE_INPUT_TOKENS: "input_tokens",
    semconv.USAGE_OUTPUT_TOKENS: "output_tokens",
    semconv.USAGE_CACHE_READ_INPUT_TOKENS: "cache_read_tokens",
    semconv.USAGE_CACHE_CREATION_INPUT_TOKENS: "cache_write_tokens",
    semconv.USAGE_REASONING_OUTPUT_TOKENS: "reasoning_tokens",
    semconv.USAGE_COST_AMOUNT: "cost_usd",
    semconv.LLMLENS_STREAM_CHUNKS: "chunk_count",
    semconv.LLMLENS_STREAM_OUTCOME: "stream_outcome",
    semconv.RESPONSE_ID: "response_id",
    semconv.LLMLENS_API_KEY_LABEL: "api_key_label",
    semconv.CLIENT_ADDRESS: "client_ip",
    semconv.LLMLENS_SOURCE_FORMAT: "source_format",
    semconv.LLMLENS_TARGET_FORMAT: "target_format",
    semconv.LLMLENS_PROFILE_ID: "profile_id",
}


def expected_row(span: ReadableSpan) -> dict[str, Any]:
    """The `requests` row a span must give, derived from the span alone."""
    a = dict(span.attributes or {})
    error = span.status.status_code is StatusCode.ERROR
    message = span.status.description if error else None
    if message and len(message) > ERROR_MESSAGE_MAX:
        message = message[: ERROR_MESSAGE_MAX - 3] + "..."
    ttfc = a.get(semconv.RESPONSE_TIME_TO_FIRST_CHUNK)
    reasons = a.get(semconv.RESPONSE_FINISH_REASONS)
    expected: dict[str, Any] = {
        "trace_id": _hex(span.context.trace_id, 32),
        "span_id": _hex(span.context.span_id, 16),
        "parent_span_id": _hex(span.parent.span_id, 16) if span.parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "duration_ms": (span.end_time - span.start_time) / 1e6,
        "span_name": span.name,
        "span_kind": span.kind.name.lower(),
        "stream": 1 if a.get(semconv.REQUEST_STREAM) else 0,
        "status": span.status.status_code.name.lower(),
        "is_error": 1 if error else 0,
        "error_message": message,
        "ttfc_ms": ttfc * 1000 if ttfc is not None else None,
        "finish_reasons": ",".join(reasons) if reasons else None,
        "service_name": span.resource.attributes.get("service.name"),
    }
    expected.update({column: a.get(attribute) for attribute, column in ATTRIBUTE_COLUMNS.items()})
    rest = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in a.items()
        if k not in ATTRIBUTE_COLUMNS
        and k
        not in (semconv.REQUEST_STREAM, semconv.RESPONSE_TIME_TO_FIRST_CHUNK, semconv.RESPONSE_FINISH_REASONS)
    }
    expected["attributes"] = rest
    return expected


def stored_request(path: Path, span_id: int) -> dict[str, Any]:
    (row,) = rows_of(path, "SELECT * FROM requests WHERE span_id = ?", (_hex(span_id, 16),))
    row["attributes"] = json.loads(row["attributes"])
    return row


def test_request_row_maps_every_column_from_the_span(db: Path) -> None:
    exporter = InMemorySpanExporter()
    processor = new_processor(db)
    provider = new_provider(SimpleSpanProcessor(exporter), processor)
    tracer = provider.get_tracer("test")
    full = llm_attributes(
        7,
        **{
            semconv.ERROR_TYPE: "RateLimitError",
            semconv.HTTP_STATUS_CODE: 429,
            semconv.USAGE_CACHE_CREATION_INPUT_TOKENS: 64,
            semconv.CLIENT_ADDRESS: "10.1.2.3",
            semconv.LLMLENS_SOURCE_FORMAT: "anthropic",
            semconv.LLMLENS_TARGET_FORMAT: "openai",
            semconv.LLMLENS_PROFILE_ID: "prof-42",
            semconv.RESPONSE_FINISH_REASONS: ("stop", "length"),
            semconv.REQUEST_STOP_SEQUENCES: ("\n\n", "END"),
            semconv.LLMLENS_TOOL_CALL_COUNT: 2,
            "app.user.tier": "gold",
        },
    )
    with provider.get_tracer("app").start_as_current_span("handle /checkout") as parent:
        _, full_id = emit_request(
            tracer,
            full,
            name="chat claude-sonnet-4",
            kind=SpanKind.SERVER,
            error="quota exceeded: " + "x" * 1500,
        )
    _, minimal_id = emit_request(tracer, {semconv.OPERATION_NAME: "embeddings"}, name="embeddings")
    ok = provider.get_tracer("test").start_span("chat ok", attributes={semconv.OPERATION_NAME: "chat"})
    ok.set_status(Status(StatusCode.OK))
    ok.end()
    assert processor.force_flush()

    spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
    columns = [r["name"] for r in rows_of(db, "SELECT name FROM pragma_table_info('requests')")]
    for span_id in (full_id, minimal_id, ok.get_span_context().span_id):
        row = stored_request(db, span_id)
        expected = expected_row(spans[span_id])
        assert set(columns) == {"id", *expected}, "a requests column is not covered by this test"
        assert isinstance(row.pop("id"), int)
        for column, value in expected.items():
            if isinstance(value, float):
                assert row[column] == pytest.approx(value), column
            else:
                assert row[column] == value, column

    row = stored_request(db, full_id)
    assert row["parent_span_id"] == _hex(parent.get_span_context().span_id, 16)
    assert row["span_kind"] == "server" and row["status"] == "error" and row["is_error"] == 1
    assert len(row["error_message"]) == ERROR_MESSAGE_MAX and row["error_message"].endswith("...")
    assert row["error_type"] == "RateLimitError" and row["http_status"] == 429
    assert row["ttfc_ms"] == pytest.approx(full[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] * 1000)
    assert row["stream"] == 0 and row["finish_reasons"] == "stop,length" and row["service_name"] == SERVICE
    assert row["attributes"]["gen_ai.request.stop_sequences"] == ["\n\n", "END"]
    assert row["attributes"]["app.user.tier"] == "gold"
    assert semconv.REQUEST_MODEL not in row["attributes"]

    minimal = stored_request(db, minimal_id)
    assert (minimal["operation"], minimal["status"], minimal["is_error"], minimal["stream"]) == (
        "embeddings", "unset", 0, 0,
    )  # fmt: skip
    assert minimal["input_tokens"] is None and minimal["error_message"] is None
    assert stored_request(db, ok.get_span_context().span_id)["status"] == "ok"
    provider.shutdown()


def test_the_cache_write_count_is_read_under_either_name(db: Path) -> None:
    # Today's gen_ai.usage.cache_creation.input_tokens, the newer gen_ai.usage.cache_write.input_tokens
    # (OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental), or both (/dup): one column.
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    old, new = semconv.USAGE_CACHE_CREATION_INPUT_TOKENS, semconv.USAGE_CACHE_WRITE_INPUT_TOKENS
    ids = {
        name: emit_request(tracer, llm_attributes(**attributes))[1]
        for name, attributes in (
            ("old", {old: 64}), ("new", {new: 65}), ("both", {old: 66, new: 66}), ("none", {}),
        )
    }  # fmt: skip
    assert processor.force_flush()
    rows = {name: stored_request(db, span_id) for name, span_id in ids.items()}
    assert {name: row["cache_write_tokens"] for name, row in rows.items()} == {
        "old": 64, "new": 65, "both": 66, "none": None,
    }  # fmt: skip
    assert all(old not in row["attributes"] and new not in row["attributes"] for row in rows.values())
    provider.shutdown()


# --- which spans are kept -----------------------------------------------------------------------------


def test_child_spans_of_a_request_trace_land_in_spans(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("agent step") as root:  # ends after the request span
        trace_id, span_id = emit_request(tracer, children=3)
        with tracer.start_as_current_span("tool call"):
            pass
    assert processor.force_flush()

    (request,) = rows_of(db, "SELECT trace_id, span_id, parent_span_id FROM requests")
    assert request["trace_id"] == _hex(trace_id, 32) and request["span_id"] == _hex(span_id, 16)
    spans = {r["name"]: r for r in rows_of(db, "SELECT * FROM spans")}
    assert set(spans) == {
        "POST /v1/chat/completions #0", "POST /v1/chat/completions #1", "POST /v1/chat/completions #2",
        "agent step", "tool call",
    }  # fmt: skip
    assert all(s["trace_id"] == _hex(trace_id, 32) for s in spans.values())
    assert spans["POST /v1/chat/completions #1"]["parent_span_id"] == _hex(span_id, 16)
    assert spans["agent step"]["parent_span_id"] is None
    assert (
        request["parent_span_id"]
        == spans["agent step"]["span_id"]
        == _hex(root.get_span_context().span_id, 16)
    )
    assert json.loads(spans["POST /v1/chat/completions #0"]["attributes"]) == {"http.request.method": "POST"}
    assert processor.stats.written_requests == 1 and processor.stats.written_spans == 5
    provider.shutdown()


def test_unrelated_spans_are_not_stored(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    for _ in range(50):
        with tracer.start_as_current_span("GET /health"), tracer.start_as_current_span("SELECT users"):
            pass
    emit_request(tracer)  # another trace
    assert processor.force_flush()
    assert count(db) == 1
    assert count(db, "spans") == 0
    provider.shutdown()


def test_upstream_leg_of_a_proxied_request_goes_to_spans(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    server = tracer.start_span(
        "chat gpt-4o-mini", kind=SpanKind.SERVER,
        attributes=llm_attributes(0, **{semconv.CLIENT_ADDRESS: "192.0.2.7"}),
    )  # fmt: skip
    upstream_attributes = llm_attributes(0, **{semconv.LLMLENS_UPSTREAM: True})
    emit_request(tracer, upstream_attributes, context=set_span_in_context(server))
    server.end()
    assert processor.force_flush()

    (request,) = rows_of(db, "SELECT * FROM requests")
    assert request["span_kind"] == "server" and request["client_ip"] == "192.0.2.7"
    (upstream,) = rows_of(db, "SELECT * FROM spans")
    assert upstream["kind"] == "client" and upstream["parent_span_id"] == request["span_id"]
    assert json.loads(upstream["attributes"])[semconv.LLMLENS_UPSTREAM] is True
    provider.shutdown()


# --- rollups ------------------------------------------------------------------------------------------


def _bucket(ms: float) -> int:
    """Histogram bucket, per schema.py: bucket b holds (1.25^(b-1), 1.25^b], b = 0 for <= 1 ms, max 60."""
    bucket = 0
    while bucket < 60 and 1.25**bucket < ms:
        bucket += 1
    return bucket


def _aggregate(rows: list[dict[str, Any]], unit_ns: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    result: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (
            r["start_ns"] // unit_ns,
            r["provider"] or "",
            r["response_model"] or r["request_model"] or "",
            r["operation"] or "",
            r["stream"],
            r["is_error"],
        )
        a = result.setdefault(key, {
            "requests": 0, "duration_ms_sum": 0.0, "duration_ms_max": 0.0, "ttfc_ms_sum": 0.0,
            "ttfc_count": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
            "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0, "duration_hist": {},
            "ttfc_hist": {}, "last_ns": 0,
        })  # fmt: skip
        a["requests"] += 1
        a["duration_ms_sum"] += r["duration_ms"]
        a["duration_ms_max"] = max(a["duration_ms_max"], r["duration_ms"])
        b = str(_bucket(r["duration_ms"]))
        a["duration_hist"][b] = a["duration_hist"].get(b, 0) + 1
        if r["ttfc_ms"] is not None:
            a["ttfc_ms_sum"] += r["ttfc_ms"]
            a["ttfc_count"] += 1
            b = str(_bucket(r["ttfc_ms"]))
            a["ttfc_hist"][b] = a["ttfc_hist"].get(b, 0) + 1
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            a[name] += r[name] or 0
        a["cost_usd"] += r["cost_usd"] or 0.0
        a["last_ns"] = max(a["last_ns"], r["end_ns"])
    return result


def test_rollups_equal_an_aggregation_of_the_written_rows(db: Path) -> None:
    processor = new_processor(db, batch_size=37)  # many batches: rows of one key merge across them
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    rng = random.Random(4)
    first = (time.time_ns() // 3_600_000_000_000 - 3) * 3_600_000_000_000 + 1_800_000_000_000
    for i in range(600):
        overrides: dict[str, Any] = {}
        if i % 5 == 0:
            overrides[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = None  # not streamed: no ttfc
        if i % 11 == 0:
            overrides[semconv.RESPONSE_MODEL] = None  # rolled up under the request model
        if i % 13 == 0:
            overrides[semconv.PROVIDER_NAME] = None
        if i % 17 == 0:
            overrides[semconv.USAGE_COST_AMOUNT] = None
        if i % 3 == 0:
            overrides[semconv.OPERATION_NAME] = "embeddings"
        attributes = llm_attributes(i, **overrides)
        if semconv.RESPONSE_TIME_TO_FIRST_CHUNK in attributes:  # seconds; some under the 1 ms bucket
            attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = rng.uniform(0.0002, 3.0)
        start = first + rng.randrange(0, 150 * 60_000_000_000)  # 2.5 hours: 3 or 4 hour rows
        if i % 10 == 0:
            start -= rng.randrange(1, 4) * 86400 * 10**9  # and one in ten 1 to 3 days earlier
        emit_request(
            tracer, attributes, error="boom" if i % 7 == 0 else None,
            start_ns=start,
            duration_ns=rng.randrange(200_000, 90_000_000_000),
        )  # fmt: skip
        if i % 100 == 99:
            assert processor.force_flush()
    assert processor.force_flush()

    rows = rows_of(db, "SELECT * FROM requests")
    assert len(rows) == 600
    for table, unit, unit_ns in (
        ("rollup_minute", "minute", 60 * 10**9),
        ("rollup_hour", "hour", 3600 * 10**9),
        ("rollup_day", "day", 86400 * 10**9),
    ):
        expected = _aggregate(rows, unit_ns)
        stored = {
            tuple(r.pop(k) for k in (unit, "provider", "model", "operation", "stream", "is_error")): r
            for r in rows_of(db, f"SELECT * FROM {table}")
        }
        assert set(stored) == set(expected), table
        assert len({key[0] for key in stored}) >= {"minute": 100, "hour": 3, "day": 3}[unit]  # over time too
        for key, want in expected.items():
            got = stored[key]
            got["duration_hist"] = json.loads(got["duration_hist"])
            got["ttfc_hist"] = json.loads(got["ttfc_hist"])
            for name, value in want.items():
                if isinstance(value, float):
                    assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (table, key, name)
                else:
                    assert got[name] == value, (table, key, name)
    provider.shutdown()


# --- force_flush, shutdown, the queue ---------------------------------------------------------------


def test_force_flush_commits_everything_enqueued_before_it(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    assert processor.force_flush() is True  # nothing enqueued yet: no thread, nothing to wait for
    for round_ in range(3):
        for _ in range(2500):
            emit_request(tracer)
        assert processor.force_flush() is True
        assert count(db) == 2500 * (round_ + 1)  # committed: visible to another connection
    assert processor.stats.dropped_queue_full == processor.stats.dropped_store_unavailable == 0
    provider.shutdown()


def test_force_flush_with_a_timeout_returns_false_while_the_writer_is_blocked(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    emit_request(tracer)
    assert processor.force_flush()
    with hold_write_lock(db):
        emit_request(tracer)
        started = time.monotonic()
        assert processor.force_flush(timeout_millis=200) is False
        assert 0.15 < time.monotonic() - started < 2
    assert processor.force_flush() is True  # the lock is gone: the blocked batch goes in
    assert count(db) == 2
    provider.shutdown()


def test_shutdown_flushes_and_stops_the_writer(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    for _ in range(3000):
        emit_request(tracer)
    thread = processor._thread
    assert thread is not None and thread.is_alive()
    provider.shutdown()
    assert not thread.is_alive()
    assert count(db) == 3000
    emit_request(tracer)  # after shutdown: ignored, no new thread, nothing raises
    processor.on_end(processor_span(tracer))
    started = time.monotonic()
    assert processor.force_flush() is True
    assert time.monotonic() - started < 1
    assert processor._thread is thread and count(db) == 3000
    processor.shutdown()  # twice is fine


def processor_span(tracer: Tracer) -> ReadableSpan:
    span = tracer.start_span("chat", attributes=llm_attributes())
    span.end()
    return span  # type: ignore[return-value]


def finished_spans(n: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = new_provider(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for i in range(n):
        emit_request(tracer, llm_attributes(i))
    spans = list(exporter.get_finished_spans())
    provider.shutdown()
    return spans


def test_bounded_queue_drops_and_counts_without_blocking(db: Path) -> None:
    spans = finished_spans(1000)
    processor = new_processor(db, max_queue_size=100)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    emit_request(tracer)
    assert processor.force_flush()
    with hold_write_lock(db):
        writer_blocked(processor, tracer)  # the writer holds one span, waiting for the lock
        timings = []
        for span in spans:
            started = time.perf_counter_ns()
            processor.on_end(span)
            timings.append(time.perf_counter_ns() - started)
        assert processor.stats.dropped_queue_full == 900  # 100 fit in the queue
        assert len(processor._queue) == 100
    # Enqueue or drop, never wait for the writer (which is blocked on the lock for seconds here).
    assert statistics_median(timings) < 50_000_000
    assert processor.force_flush()
    assert count(db) == 1 + 1 + 100
    assert processor.stats.written_requests == 102 and processor.stats.dropped_store_unavailable == 0
    provider.shutdown()


def statistics_median(values: list[int]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def test_disabled_processor_records_nothing(db: Path) -> None:
    processor = new_processor(db)
    processor.enabled = False
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    for _ in range(10):
        emit_request(tracer, children=2)
    assert processor.force_flush()
    assert processor._thread is None and not db.exists()
    processor.enabled = True
    emit_request(tracer)
    assert processor.force_flush()
    assert count(db) == 1
    provider.shutdown()


# --- sampling -----------------------------------------------------------------------------------------


def test_record_genai_sampler_sends_llm_spans_to_the_store_only(db: Path) -> None:
    exporter = InMemorySpanExporter()
    batch = BatchSpanProcessor(exporter)
    processor = new_processor(db)
    provider = new_provider(batch, processor, sampler=RecordGenAISampler(ALWAYS_OFF))
    tracer = provider.get_tracer("test")
    emit_request(tracer)
    with tracer.start_as_current_span("GET /health") as plain:
        assert not plain.is_recording()
    assert provider.force_flush()
    assert exporter.get_finished_spans() == ()
    assert count(db) == 1 and count(db, "spans") == 0

    provider.shutdown()

    # parent-based: an LLM call inside an unsampled request handler is still recorded
    exporter2 = InMemorySpanExporter()
    processor2 = new_processor(db)
    provider2 = new_provider(
        BatchSpanProcessor(exporter2), processor2, sampler=RecordGenAISampler(ParentBased(ALWAYS_OFF))
    )
    tracer2 = provider2.get_tracer("test")
    with tracer2.start_as_current_span("POST /ask") as handler:
        assert not handler.is_recording()
        emit_request(tracer2)
    assert provider2.force_flush()
    assert exporter2.get_finished_spans() == ()
    assert count(db) == 2
    provider2.shutdown()


# --- processes ----------------------------------------------------------------------------------------


def test_fork_child_records_with_its_own_writer(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    for _ in range(200):
        emit_request(tracer, llm_attributes(0, **{semconv.LLMLENS_API_KEY_LABEL: "parent"}))
    parent_thread = processor._thread
    # the parent's writer may be mid-batch at the fork: the child must not inherit that state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: report through the exit code only
        code = 1
        try:
            assert processor._thread is None and len(processor._queue) == 0
            assert processor.stats.written_requests == 0  # its own counts from here on
            for _ in range(300):
                emit_request(tracer, llm_attributes(1, **{semconv.LLMLENS_API_KEY_LABEL: "child"}))
            ok = processor.force_flush(timeout_millis=20_000)
            thread = processor._thread
            alive = thread is not None and thread.is_alive() and thread is not parent_thread
            code = 0 if ok and alive and processor.stats.written_requests == 300 else 2
            processor.shutdown()
        finally:
            os._exit(code)
    for _ in range(300):
        emit_request(tracer, llm_attributes(0, **{semconv.LLMLENS_API_KEY_LABEL: "parent"}))
    assert processor.force_flush()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert processor._thread is parent_thread and parent_thread.is_alive()
    for _ in range(100):
        emit_request(tracer, llm_attributes(0, **{semconv.LLMLENS_API_KEY_LABEL: "parent"}))
    assert processor.force_flush()
    assert count(db, where="api_key_label = 'parent'") == 600
    assert count(db, where="api_key_label = 'child'") == 300
    assert rows_of(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    provider.shutdown()


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_store_processor import emit_request, llm_attributes, new_processor, new_provider
    from llmlens import semconv

    path, tag, n, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    processor = new_processor(path, batch_size=256)
    provider = new_provider(processor)
    tracer = provider.get_tracer("writer")
    while time.time() < start_at:  # all writers start (and create the file) at the same moment
        time.sleep(0.001)
    for i in range(n):
        emit_request(tracer, llm_attributes(i, **{{semconv.LLMLENS_API_KEY_LABEL: tag}}), children=1)
    assert processor.force_flush(timeout_millis=60_000)
    provider.shutdown()
    s = processor.stats
    print(s.written_requests, s.dropped_queue_full, s.dropped_store_unavailable, s.last_error)
    """
)


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"  # does not exist yet: the writers race to create it too
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT.format(tests=str(Path(__file__).parent)))
    start_at = time.time() + 2.0
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), f"proc-{k}", "2000", str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=90)
        assert writer.returncode == 0, err
        assert out.split() == ["2000", "0", "0", "None"], (out, err)
    for k in range(3):
        assert count(db, where=f"api_key_label = 'proc-{k}'") == 2000
    assert count(db) == 6000 and count(db, "spans") == 6000
    assert rows_of(db, "SELECT sum(requests) AS n FROM rollup_minute") == [{"n": 6000}]
    assert rows_of(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    with contextlib.closing(open_store(db)) as conn:  # and it is still a valid store
        assert conn.execute("SELECT count(DISTINCT trace_id) FROM requests").fetchone()[0] == 6000


def test_on_end_from_many_threads_loses_nothing(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")

    def work() -> None:
        for _ in range(1000):
            emit_request(tracer)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert processor.force_flush()
    assert count(db) == 4000
    provider.shutdown()


def test_ttfc_and_duration_are_milliseconds(db: Path) -> None:
    processor = new_processor(db)
    provider = new_provider(processor)
    emit_request(
        provider.get_tracer("test"), llm_attributes(0, **{semconv.RESPONSE_TIME_TO_FIRST_CHUNK: 0.5}),
        start_ns=10**18, duration_ns=1_234_567_000,
    )  # fmt: skip
    assert processor.force_flush()
    (row,) = rows_of(db, "SELECT duration_ms, ttfc_ms FROM requests")
    assert math.isclose(row["duration_ms"], 1234.567) and math.isclose(row["ttfc_ms"], 500.0)
    provider.shutdown()
