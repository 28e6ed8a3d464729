"""`set_end_attributes` (core/span_attributes.py) leaves a span exactly as `Span.set_attributes` would:
the same exported attributes, the same limits, the same refusal once the span has ended."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmlens.core.span_attributes import set_end_attributes

END = {
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.cost.amount": 0.00042,
    "gen_ai.request.stream": True,
    "gen_ai.response.finish_reasons": ["stop", "length"],
    "llmlens.chunk_times": (1, 2, 3),
    "gen_ai.request.model": "gpt-4o-mini-overridden",  # a key set at the start too: replaced
}
ODD = [
    {"a": None},  # dropped by the SDK
    {"a": []},
    {"a": ["x", 1]},  # mixed: the SDK drops it
    {"a": [["nested"]]},
    {"a": b"bytes"},
    {"a": {"k": "v"}},
]


def exported(limits: SpanLimits | None, attributes: dict, fast: bool) -> dict:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits) if limits else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span(
        "chat", attributes={"gen_ai.request.model": "gpt-4o-mini", "gen_ai.operation.name": "chat"}
    )
    if fast:
        set_end_attributes(span, dict(attributes))
    else:
        span.set_attributes(dict(attributes))
    span.end()
    (finished,) = exporter.get_finished_spans()
    return {"attributes": dict(finished.attributes), "dropped": finished.dropped_attributes}


@pytest.mark.parametrize(
    "limits",
    [None, SpanLimits(max_attribute_length=5), SpanLimits(max_span_attributes=4)],
    ids=["default", "value-length-limit", "count-limit"],
)
@pytest.mark.parametrize(
    "attributes", [END, *ODD], ids=["llmlens", "none", "empty", "mixed", "nested", "bytes", "map"]
)
def test_same_span_as_set_attributes(limits, attributes):
    assert exported(limits, attributes, fast=True) == exported(limits, attributes, fast=False)


def test_lists_are_stored_as_tuples_as_the_sdk_does():
    assert exported(None, END, fast=True)["attributes"]["gen_ai.response.finish_reasons"] == (
        "stop",
        "length",
    )


def test_an_ended_span_is_left_alone_with_the_sdks_warning(caplog):
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("chat")
    span.end()
    with caplog.at_level(logging.WARNING):
        set_end_attributes(span, {"gen_ai.usage.input_tokens": 1})
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert "ended span" in caplog.text


def test_a_span_that_is_not_the_sdks_takes_the_public_call():
    class Recorded:
        def __init__(self):
            self.got = None

        def set_attributes(self, attributes):
            self.got = attributes

    span = Recorded()
    set_end_attributes(span, {"a": 1})
    assert span.got == {"a": 1}
