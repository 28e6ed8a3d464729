"""Shared fixtures: real OpenTelemetry SDK pipelines with in-memory exporters, the fake provider on
loopback, and an instrumented openai client.

`otel` gives the exporters/readers; `instrumented` instruments llmlens for one test and uninstruments
afterwards; `fake` is a FakeProvider HTTP server on 127.0.0.1 shared by the session.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
except ImportError:  # older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmlens
from llmlens.demo.fake_server import FakeProvider
from llmlens.instrumentor import Instrumentor


@dataclass
class Otel:
    """In-memory OpenTelemetry pipelines and helpers to read what was exported."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    spans_exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader
    logs_exporter: Any

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        """The one finished span; fails if there is not exactly one."""
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metrics(self) -> dict[str, list[Any]]:
        """metric name -> data points."""
        data = self.metric_reader.get_metrics_data()
        result: dict[str, list[Any]] = {}
        if data is None:
            return result
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    result.setdefault(metric.name, []).extend(metric.data.data_points)
        return result

    def logs(self) -> list[Any]:
        return list(self.logs_exporter.get_finished_logs())


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield Otel(tracer_provider, meter_provider, logger_provider, spans, reader, logs)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()


@pytest.fixture
def instrument(otel: Otel) -> Iterator[Any]:
    """Call `instrument(**options)` in a test; uninstrumented again at teardown."""
    instrumentor = Instrumentor()

    def run(**options: Any) -> Instrumentor:
        instrumentor.instrument(
            tracer_provider=otel.tracer_provider,
            meter_provider=otel.meter_provider,
            logger_provider=otel.logger_provider,
            **options,
        )
        return instrumentor

    yield run
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    gc.collect()  # finish abandoned streams of this test before the next one starts


@pytest.fixture
def instrumented(instrument: Any) -> Instrumentor:
    """llmlens instrumented with default settings (no content capture)."""
    return instrument()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    """The fake OpenAI-compatible server on 127.0.0.1, shared by the whole session."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
def client(fake: FakeProvider) -> Any:
    import openai

    return openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)


@pytest.fixture
def async_client(fake: FakeProvider) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)


def scenario(value: str) -> dict[str, Any]:
    """extra_headers that select a fake-provider scenario, e.g. `scenario("chunks=34,cached=5")`."""
    return {"extra_headers": {"x-fake-scenario": value}}


@pytest.fixture
def configure() -> Iterator[Any]:
    """`llmlens.configure(set_global=False, ...)`, undone at teardown: its providers shut down (and its
    Prometheus endpoint closed), llmlens uninstrumented."""
    handles: list[Any] = []

    def run(**options: Any) -> Any:
        handle = llmlens.configure(set_global=False, **options)
        handles.append(handle)
        return handle

    yield run
    for handle in handles:
        handle.shutdown()
        handle.instrumentor.uninstrument()


@pytest.fixture(autouse=True, scope="session")
def _store_in_a_temporary_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Never write the user's real store: the instrumentor adds one to every SDK tracer provider."""
    import os

    path = tmp_path_factory.mktemp("store") / "llmlens.db"
    previous = os.environ.get("LLMLENS_DB")
    os.environ["LLMLENS_DB"] = str(path)
    yield
    if previous is None:
        os.environ.pop("LLMLENS_DB", None)
    else:
        os.environ["LLMLENS_DB"] = previous
