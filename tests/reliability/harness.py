"""An application's OpenTelemetry set-up for the reliability tests: in-memory exporters for spans,
metrics and logs, a real SQLite store file, llmlens instrumented on demand, and every log record of
`llmlens` (at DEBUG) and of the OpenTelemetry SDK (warnings: a span ended twice, an attribute set on an
ended span or of a type OpenTelemetry refuses) kept for the test to check.

    with Harness(tmp_path / "llmlens.db") as app:
        plain = call()
        with app.instrumented():
            traced = call()
        app.check_clean()           # nothing but llmlens debug records, no OTel warnings
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
except ImportError:  # older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogRecordExporter

from llmlens.core.in_flight import IN_FLIGHT
from llmlens.instrumentor import Instrumentor


class UrandomIds(IdGenerator):
    """Span and trace ids from os.urandom. The SDK's default draws them from the `random` module, which
    hypothesis seeds the same way for every example: each example's span would get the same ids, and
    the store would take every call for the same request."""

    def generate_span_id(self) -> int:
        return int.from_bytes(os.urandom(8), "big") or 1

    def generate_trace_id(self) -> int:
        return int.from_bytes(os.urandom(16), "big") or 1


class Records(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Harness:
    def __init__(self, db: Path, **options: Any) -> None:
        self.db = db
        self.options = {"store": True, "db_path": str(db), **options}
        self.spans_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(id_generator=UrandomIds())
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.logs_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs_exporter))
        self.llmlens_log = Records(logging.DEBUG)
        self.otel_log = Records(logging.WARNING)
        self._levels: dict[str, int] = {}
        self.calls = 0  # instrumented calls made so far, for a test that counts the store's rows

    def __enter__(self) -> Harness:
        for name, handler in (("llmlens", self.llmlens_log), ("opentelemetry", self.otel_log)):
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(handler.level)
            logger.addHandler(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        instrumentor = Instrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        for name, handler in (("llmlens", self.llmlens_log), ("opentelemetry", self.otel_log)):
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            logger.setLevel(self._levels[name])
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()
        gc.collect()

    @contextlib.contextmanager
    def instrumented(self, **options: Any) -> Iterator[Instrumentor]:
        instrumentor = Instrumentor()
        instrumentor.instrument(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            logger_provider=self.logger_provider,
            **{**self.options, **options},
        )
        try:
            yield instrumentor
        finally:
            instrumentor.uninstrument()

    def reset(self) -> None:
        self.spans_exporter.clear()
        self.logs_exporter.clear()
        self.llmlens_log.records.clear()
        self.otel_log.records.clear()

    # ------------------------------------------------------------------------------------------ reads

    def llm_spans(self) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans_exporter.get_finished_spans()
            if "gen_ai.operation.name" in (s.attributes or {})
        ]

    def flush_store(self) -> None:
        from llmlens.store.attach import attached_store

        store = attached_store(self.tracer_provider)
        assert store is not None, "no store attached"
        assert store.force_flush(10_000), "the store did not flush"

    def rows(self) -> int:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])

    def rows_for(self, span: ReadableSpan) -> int:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM requests WHERE span_id = ?", (f"{span.context.span_id:016x}",)
                ).fetchone()[0]
            )

    def problems(self) -> list[str]:
        """llmlens records above DEBUG, OpenTelemetry warnings, invocations still in flight, a context
        left attached: everything that must not happen, as lines."""
        found = [
            f"llmlens {r.levelname}: {r.getMessage()}"
            for r in self.llmlens_log.records
            if r.levelno > logging.DEBUG
        ]
        found += [f"opentelemetry {r.levelname}: {r.getMessage()}" for r in self.otel_log.records]
        if IN_FLIGHT:
            found.append(f"{len(IN_FLIGHT)} invocations still in flight")
        if trace.get_current_span() is not trace.INVALID_SPAN:
            found.append(f"a span is still the current one: {trace.get_current_span()}")
        if otel_context.get_current():
            found.append(f"the context is not empty: {dict(otel_context.get_current())}")
        return found

    def debug_lines(self) -> list[str]:
        return [r.getMessage() for r in self.llmlens_log.records if r.levelno <= logging.DEBUG]
