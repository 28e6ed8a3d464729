"""The core's plain data between layers: an Invocation ends through the `Recorder` it names (it knows no
Telemetry), pricing gives a value the telemetry turns into attributes, and the proxy's server side takes
its upstream legs' usage and cost from their fields, through the `ProxyRequest` protocol."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from llmlens import pricing, semconv
from llmlens.core.context import PROXY_REQUEST_KEY
from llmlens.core.invocation import Invocation
from llmlens.core.server_telemetry import ServerTelemetry
from llmlens.core.telemetry import Telemetry
from llmlens.settings import Settings


class Recorded:
    """A Recorder that only notes what it is told."""

    capture_content = False

    def __init__(self) -> None:
        self.ends: list[tuple[Any, ...]] = []

    def end(
        self, inv: Invocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None:
        self.ends.append((inv, outcome, error, end_perf))


def test_an_invocation_ends_once_through_its_recorder() -> None:
    recorder = Recorded()
    inv = Invocation(recorder, "chat", "openai", "gpt-4o-mini", stream=True)
    inv.finish("completed", 123)
    inv.fail(RuntimeError("late"))
    inv.finish()
    assert recorder.ends == [(inv, "completed", None, 123)]
    failed = Invocation(recorder, "chat", "openai", "m", stream=True)
    error = ValueError("boom")
    failed.fail(error)
    assert recorder.ends[-1] == (failed, semconv.OUTCOME_ERROR, error, None) and failed.error is error
    cancelled = Invocation(recorder, "chat", "openai", "m")
    cancelled.fail(asyncio.CancelledError())
    assert recorder.ends[-1] == (cancelled, semconv.OUTCOME_CANCELLED, None, None) and cancelled.error is None


def test_invocation_knows_no_telemetry() -> None:
    code = "import sys, llmlens.core.invocation; print(sorted(m for m in sys.modules if 'llmlens.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "llmlens.core.telemetry" not in out and "llmlens.pricing" not in out


@pytest.fixture
def telemetry(otel: Any) -> Telemetry:
    assert pricing.ready(60), "genai-prices data did not load"
    return Telemetry(Settings(store=False), otel.tracer_provider, otel.meter_provider)


def test_the_server_telemetry_is_an_attribute_of_its_telemetry(telemetry: Telemetry) -> None:
    assert telemetry.server is None
    server = ServerTelemetry.of(telemetry)
    assert telemetry.server is server and ServerTelemetry.of(telemetry) is server


def legs_of(telemetry: Telemetry, request: Any, usages: list[tuple[Any, Any]]) -> list[Invocation]:
    """SDK calls made while `request` is the proxy request in the context: its upstream legs."""
    token = otel_context.attach(otel_context.set_value(PROXY_REQUEST_KEY, request))
    legs = []
    try:
        for input_tokens, output_tokens in usages:
            leg = Invocation(telemetry, "chat", "openai", "gpt-4o-mini", "api.openai.com", 443)
            telemetry.start(leg)
            leg.input_tokens, leg.output_tokens = input_tokens, output_tokens
            leg.finish()
            legs.append(leg)
    finally:
        otel_context.detach(token)
    return legs


def test_a_proxied_request_takes_its_legs_usage_and_summed_cost(telemetry: Telemetry, otel: Any) -> None:
    request = ServerTelemetry.of(telemetry).start_request("chat", "openai", "my-alias")
    legs = legs_of(telemetry, request, [(100, 10), (200, 20)])
    request.finish()
    assert request.upstreams == legs and all(leg.upstream for leg in legs)
    assert (request.input_tokens, request.output_tokens) == (300, 30)
    costs = [leg.cost for leg in legs]
    assert all(cost is not None and cost.priced for cost in costs)
    assert request.cost is not None
    assert request.cost.amount == pytest.approx(sum(c.amount for c in costs))  # type: ignore[misc, union-attr]
    (server,) = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    attributes = server.attributes
    assert attributes[semconv.USAGE_COST_AMOUNT] == request.cost.amount
    assert attributes[semconv.LLMLENS_COST_PRICE_SOURCE] == costs[-1].price_source  # type: ignore[union-attr]
    assert attributes[semconv.LLMLENS_UPSTREAM_MODEL] == "gpt-4o-mini"
    # counted once, by the server side: the legs record no client metrics
    metrics = otel.metrics()
    assert semconv.METRIC_OPERATION_DURATION not in metrics
    (cost_point,) = metrics[semconv.METRIC_LLMLENS_COST]
    assert cost_point.value == pytest.approx(request.cost.amount)


def test_a_legs_invalid_count_makes_the_request_unpriced(telemetry: Telemetry, otel: Any) -> None:
    request = ServerTelemetry.of(telemetry).start_request("chat", "openai", "my-alias")
    _good, bad = legs_of(telemetry, request, [(100, 10), (-5, 10)])
    request.finish()
    assert bad.invalid_usage == ["input_tokens"] and bad.input_tokens is None
    assert bad.cost == pricing.CallCost.unpriced(pricing.INVALID_USAGE)
    assert request.invalid_usage == ["input_tokens"] and request.input_tokens == 100
    assert request.cost == pricing.CallCost.unpriced(pricing.INVALID_USAGE)
    (server,) = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    assert list(server.attributes[semconv.LLMLENS_USAGE_INVALID]) == [semconv.USAGE_INPUT_TOKENS]
    assert semconv.USAGE_COST_AMOUNT not in server.attributes
