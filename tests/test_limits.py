"""What a response or a caller cannot make llmlens record (docs/configuration.md, "Limits").

Token counts that are not counts (negative, fractional, absurdly large) are dropped from the span, the
metrics, the cost and the store, and named in `llmlens.usage.invalid`; names and ids a caller or a
response chooses (a 3 MB model name) are capped on the span, its name, the metric attributes and the
store row. Both for SDK calls (the openai SDK against a loopback server whose usage we choose) and for
proxied requests (the ASGI middleware in process).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from fakes.loopback_server import LoopbackServer
from llmlens import pricing
from llmlens.core.limits import IDENTIFIER_MAX, TEXT_MAX
from llmlens.core.telemetry import Telemetry
from llmlens.demo import fake_bodies
from llmlens.demo.fake_bodies import FakeReply, Scenario
from llmlens.proxy.asgi import LLMProxyMiddleware
from llmlens.settings import Settings
from proxies.asgi_apps import Canned, drive
from test_store_processor import new_processor

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "Hi"}]
INPUT, OUTPUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
INVALID = "llmlens.usage.invalid"


def _usage_from_header(method: str, path: str, headers: dict[str, str], payload: Any) -> Any:
    """The fake provider's reply, with the `usage` fields of the `x-usage` header (JSON) put in."""
    scenario = Scenario.for_request(None, payload.get("model") if isinstance(payload, dict) else None)
    reply = fake_bodies.route(method, path, payload, scenario)
    body = json.loads(reply.body)
    body["usage"].update(json.loads(headers.get("x-usage", "{}")))
    return FakeReply(reply.status, reply.headers, json.dumps(body).encode()), scenario


@pytest.fixture(scope="module")
def odd_usage() -> Iterator[LoopbackServer]:
    with LoopbackServer(_usage_from_header) as server:
        yield server


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _cost_points(otel: Any) -> tuple[list[Any], list[Any]]:
    metrics = otel.metrics()
    return metrics.get("llmlens.cost", []), metrics.get("llmlens.cost.unpriced", [])


# --- token counts that are not counts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "dropped"),
    [
        ({"prompt_tokens": -5}, [INPUT]),
        ({"completion_tokens": 10**30}, [OUTPUT]),
        ({"prompt_tokens": -1, "completion_tokens": -2}, [INPUT, OUTPUT]),
        ({"prompt_tokens_details": {"cached_tokens": -3, "audio_tokens": 0}},
         ["gen_ai.usage.cache_read.input_tokens"]),
    ],
    ids=["negative-input", "huge-output", "both-negative", "negative-cached"],
)  # fmt: skip
def test_sdk_call_with_invalid_usage_records_no_such_count_and_no_cost(
    usage: dict[str, Any], dropped: list[str], otel: Any, instrument: Any, odd_usage: LoopbackServer,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    import openai

    assert pricing.ready(60), "genai-prices data did not load"
    db = tmp_path / "llmlens.db"
    instrument(db_path=str(db))
    client = openai.OpenAI(api_key="sk-test", base_url=f"{odd_usage.root}/v1", max_retries=0)
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, extra_headers={"x-usage": json.dumps(usage)}
    )
    attrs = otel.span().attributes
    assert list(attrs[INVALID]) == dropped
    for key in dropped:
        assert key not in attrs
    kept = {INPUT: response.usage.prompt_tokens, OUTPUT: response.usage.completion_tokens}
    for key, value in kept.items():
        if key not in dropped:
            assert attrs[key] == value
    # not priced (a price from the other counts would be wrong), and counted as unpriced
    assert "gen_ai.usage.cost.amount" not in attrs
    costs, unpriced = _cost_points(otel)
    assert costs == [] or all(p.value == 0 for p in costs)
    assert [(p.attributes["llmlens.cost.unpriced_reason"], p.value) for p in unpriced] == [
        (pricing.INVALID_USAGE, 1)
    ]
    # metrics: only the valid counts, never a negative one
    points = otel.metrics().get("gen_ai.client.token.usage", [])
    recorded = {p.attributes["gen_ai.token.type"]: p.sum for p in points}
    assert recorded == {t: kept[k] for t, k in (("input", INPUT), ("output", OUTPUT)) if k not in dropped}
    assert "must be non-negative" not in caplog.text
    # the store: NULL, not a made-up number, and no cost
    from llmlens.store.attach import attached_store

    store = attached_store(otel.tracer_provider)
    assert store is not None and store.force_flush(10_000)
    ((input_tokens, output_tokens, cached, cost, stored_attrs),) = _rows(
        db, "SELECT input_tokens, output_tokens, cache_read_tokens, cost_usd, attributes FROM requests"
    )
    assert (input_tokens is None) is (INPUT in dropped)
    assert (output_tokens is None) is (OUTPUT in dropped)
    assert cached is None or cached >= 0
    assert cost is None
    assert json.loads(stored_attrs)[INVALID] == dropped


def test_a_whole_float_count_is_its_int(otel: Any, instrument: Any) -> None:
    telemetry = Telemetry(Settings(store=False, pricing=False), otel.tracer_provider, otel.meter_provider)
    inv = telemetry.start_invocation("chat", "openai", "gpt-4o-mini")
    inv.input_tokens, inv.output_tokens, inv.reasoning_tokens = 12.0, 1.5, float("nan")  # type: ignore[assignment]
    inv.finish()
    attrs = otel.span().attributes
    assert attrs[INPUT] == 12 and type(attrs[INPUT]) is int
    assert list(attrs[INVALID]) == [OUTPUT, "gen_ai.usage.reasoning.output_tokens"]
    assert OUTPUT not in attrs and "gen_ai.usage.reasoning.output_tokens" not in attrs


# --- the proxy ----------------------------------------------------------------------------------------


def _proxy(otel: Any, **settings: Any) -> Any:
    telemetry = Telemetry(Settings(store=False, **settings), otel.tracer_provider, otel.meter_provider)

    def wrap(app: Any) -> LLMProxyMiddleware:
        config = Settings(store=False, proxy_key_secret="test-secret", **settings)
        return LLMProxyMiddleware(app, telemetry=telemetry, settings=config)

    return wrap


def _chat_body(**overrides: Any) -> bytes:
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello"}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }  # fmt: skip
    for key, value in overrides.items():
        if key == "usage":
            body["usage"].update(value)
        else:
            body[key] = value
    return json.dumps(body).encode()


def test_proxied_response_with_invalid_usage_records_no_such_count_and_no_cost(
    otel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert pricing.ready(60), "genai-prices data did not load"
    wrap = _proxy(otel, pricing=True)
    app = Canned(chunks=[_chat_body(usage={"prompt_tokens": -9, "completion_tokens": 10**30})])
    asyncio.run(drive(wrap(app), CHAT, {"model": "gpt-4o-mini", "messages": HI}))
    (span,) = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    attrs = span.attributes
    assert list(attrs[INVALID]) == [INPUT, OUTPUT]
    assert INPUT not in attrs and OUTPUT not in attrs
    assert "gen_ai.usage.cost.amount" not in attrs
    assert otel.metrics().get("gen_ai.client.token.usage", []) == []
    _costs, unpriced = _cost_points(otel)
    assert [p.attributes["llmlens.cost.unpriced_reason"] for p in unpriced] == [pricing.INVALID_USAGE]
    assert "must be non-negative" not in caplog.text


# --- names and ids a caller chooses --------------------------------------------------------------------


def _capped(value: str, limit: int = IDENTIFIER_MAX) -> str:
    return value[: limit - 3] + "..."


def test_a_3mb_model_name_sent_to_a_proxy_is_capped_everywhere(otel: Any, tmp_path: Path) -> None:
    db = tmp_path / "llmlens.db"
    store = new_processor(db)
    otel.tracer_provider.add_span_processor(store)
    wrap = _proxy(otel, pricing=False)
    model = "m" * 3_000_000
    long_id, reason, agent = "chatcmpl-" + "i" * 100_000, "r" * 5000, "agent/" + "a" * 50_000
    app = Canned(chunks=[_chat_body(id=long_id, model=model, choices=[
        {"index": i, "finish_reason": reason, "message": {"role": "assistant", "content": "Hi"}}
        for i in range(100)
    ])])  # fmt: skip
    asyncio.run(drive(wrap(app), CHAT, {"model": model, "messages": HI}, headers=[("user-agent", agent)]))
    (span,) = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    attrs = span.attributes
    assert attrs["gen_ai.request.model"] == _capped(model)
    assert attrs["gen_ai.response.model"] == _capped(model)
    assert span.name == f"chat {_capped(model)}" and len(span.name) == 5 + IDENTIFIER_MAX
    assert attrs["gen_ai.response.id"] == _capped(long_id)
    assert len(attrs["gen_ai.response.finish_reasons"]) == 64
    assert set(attrs["gen_ai.response.finish_reasons"]) == {_capped(reason)}
    assert attrs["user_agent.original"] == _capped(agent, TEXT_MAX)
    for points in otel.metrics().values():
        for point in points:
            for key in ("gen_ai.request.model", "gen_ai.response.model"):
                if key in point.attributes:
                    assert point.attributes[key] == _capped(model)
    assert store.force_flush(10_000)
    ((request_model, response_model, span_name, response_id, reasons),) = _rows(
        db, "SELECT request_model, response_model, span_name, response_id, finish_reasons FROM requests"
    )
    assert request_model == response_model == _capped(model)
    assert span_name == span.name and response_id == _capped(long_id)
    assert len(reasons) <= IDENTIFIER_MAX
    assert db.stat().st_size < 1_000_000  # the 3 MB are nowhere in the store


def test_a_long_model_name_in_an_sdk_call_is_capped(otel: Any, instrumented: Any, client: Any) -> None:
    model = "gpt-" + "x" * 20_000
    client.chat.completions.create(model=model, messages=HI)
    span = otel.span()
    assert span.name == f"chat {_capped(model)}"
    assert span.attributes["gen_ai.request.model"] == _capped(model)
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["gen_ai.request.model"] == _capped(model)
    assert len(duration.attributes.get("gen_ai.response.model", "")) <= IDENTIFIER_MAX


def test_names_within_the_limit_are_kept_as_they_are(otel: Any, instrumented: Any, client: Any) -> None:
    model = "m" * IDENTIFIER_MAX
    client.chat.completions.create(model=model, messages=HI)
    span = otel.span()
    assert span.attributes["gen_ai.request.model"] == model and span.name == f"chat {model}"
