"""core/lifecycle.py: the one begin / activate / call / fail-safe / hand-back sequence, sync and async.

Every patch engine runs its calls through `TracedCall`, so what it promises is tested once, here, with a
real Telemetry on in-memory OpenTelemetry pipelines: instrumentation errors never reach the caller, the
SDK's own exception does, unchanged, and every traced call ends exactly once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import attach, detach, set_value
from opentelemetry.trace import StatusCode

from llmlens.core.invocation import Invocation
from llmlens.core.lifecycle import TracedCall, fail_safe
from llmlens.core.telemetry import Telemetry
from llmlens.settings import Settings


class Engine:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.active = True


class Boom(Exception):
    """What the SDK raises in these tests."""


@pytest.fixture
def engine(otel: Any) -> Engine:
    return Engine(
        Telemetry(Settings(), tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    )


def begin_chat(engine: Engine) -> Any:
    def begin(instance: Any, args: tuple, kwargs: dict) -> tuple[Invocation, str]:
        return Invocation(engine.telemetry, "chat", "openai", "gpt-4o-mini", "127.0.0.1", 8080), "route"

    return begin


def finish(inv: Invocation, route: Any, result: Any) -> Any:
    inv.finish()
    return result


def broken(*args: Any) -> Any:
    raise RuntimeError("instrumentation bug")


async def broken_async(*args: Any) -> Any:
    raise RuntimeError("instrumentation bug")


def run(call: TracedCall, form: str, sdk: Any) -> Any:
    """Call `sdk` through the sync or async wrapper, as wrapt would."""
    if form == "sync":
        return call.sync(sdk, None, (), {})

    async def coroutine() -> Any:
        return sdk()

    return asyncio.run(call.async_(coroutine, None, (), {}))


FORMS = ["sync", "async"]


@pytest.mark.parametrize("form", FORMS)
def test_a_traced_call_ends_once_with_the_sdk_result(engine: Engine, otel: Any, form: str) -> None:
    seen: list[Any] = []

    def sdk() -> str:
        seen.append(trace.get_current_span())
        return "answer"

    assert run(TracedCall(engine, begin_chat(engine), finish), form, sdk) == "answer"
    span = otel.span()
    assert span.name == "chat gpt-4o-mini"
    assert span.status.status_code is StatusCode.OK
    assert seen[0].get_span_context().span_id == span.context.span_id  # current during the call
    assert not trace.get_current_span().get_span_context().is_valid  # and not after


@pytest.mark.parametrize("form", FORMS)
def test_a_failing_begin_lets_the_call_through_untraced(engine: Engine, otel: Any, form: str) -> None:
    assert run(TracedCall(engine, broken, finish), form, lambda: "answer") == "answer"
    assert otel.spans() == []


@pytest.mark.parametrize("form", FORMS)
def test_a_start_that_fails_after_the_span_began_ends_that_span(
    engine: Engine, otel: Any, form: str, monkeypatch: Any
) -> None:
    from llmlens.core.in_flight import IN_FLIGHT

    monkeypatch.setattr(engine.telemetry, "activate", broken)
    assert run(TracedCall(engine, begin_chat(engine), finish), form, lambda: "answer") == "answer"
    (span,) = otel.spans()  # ended, not left open (and not left in flight)
    assert span.end_time is not None
    assert not IN_FLIGHT


@pytest.mark.parametrize("form", FORMS)
def test_a_failing_hand_back_ends_the_call_and_returns_the_sdk_result(
    engine: Engine, otel: Any, form: str
) -> None:
    result = object()
    call = TracedCall(
        engine, begin_chat(engine), broken, hand_back_async=broken_async if form == "async" else None
    )
    assert run(call, form, lambda: result) is result
    assert otel.span().end_time is not None
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.mark.parametrize("form", FORMS)
def test_the_sdk_exception_reaches_the_caller_unchanged(engine: Engine, otel: Any, form: str) -> None:
    error = Boom("rate limited")

    def sdk() -> Any:
        raise error

    call = TracedCall(engine, begin_chat(engine), finish, on_error=broken)  # even with a broken on_error
    with pytest.raises(Boom) as caught:
        run(call, form, sdk)
    assert caught.value is error
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == f"{__name__}.Boom"
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.mark.parametrize("form", FORMS)
def test_on_error_reads_the_error_before_the_end(engine: Engine, otel: Any, form: str) -> None:
    def on_error(inv: Invocation, route: Any, error: BaseException) -> None:
        inv.response_attributes["test.request_id"] = str(error)

    def sdk() -> Any:
        raise Boom("req-1")

    with pytest.raises(Boom):
        run(TracedCall(engine, begin_chat(engine), finish, on_error=on_error), form, sdk)
    assert otel.span().attributes["test.request_id"] == "req-1"


@pytest.mark.parametrize("form", FORMS)
def test_an_inactive_engine_passes_the_call_through(engine: Engine, otel: Any, form: str) -> None:
    engine.active = False  # a wrapper still reachable after unpatching
    assert run(TracedCall(engine, begin_chat(engine), finish), form, lambda: "answer") == "answer"
    assert otel.spans() == []


@pytest.mark.parametrize("form", FORMS)
def test_suppressed_instrumentation_makes_no_span(engine: Engine, otel: Any, form: str) -> None:
    token = attach(set_value("suppress_instrumentation", True))
    try:
        assert run(TracedCall(engine, begin_chat(engine), finish), form, lambda: "answer") == "answer"
    finally:
        detach(token)
    assert otel.spans() == []


def test_a_call_nested_in_a_traced_call_makes_no_second_span(engine: Engine, otel: Any) -> None:
    call = TracedCall(engine, begin_chat(engine), finish)

    def outer_sdk() -> str:
        return call.sync(lambda: "inner", None, (), {})  # an instrumented SDK calling another

    assert call.sync(outer_sdk, None, (), {}) == "inner"
    assert len(otel.spans()) == 1


def test_activate_false_leaves_the_span_out_of_the_call(engine: Engine, otel: Any) -> None:
    seen: list[Any] = []

    def sdk() -> str:
        seen.append(trace.get_current_span())
        return "generator"

    TracedCall(engine, begin_chat(engine), finish, activate=False).sync(sdk, None, (), {})
    assert not seen[0].get_span_context().is_valid
    assert len(otel.spans()) == 1


def test_fail_safe_turns_an_error_into_the_default(caplog: Any) -> None:
    @fail_safe("reading the usage", default=-1)
    def read() -> int:
        raise ValueError("bad usage")

    with caplog.at_level("DEBUG", logger="llmlens"):
        assert read() == -1
    assert "reading the usage failed" in caplog.text
