"""llmlens with the real `anthropic` SDK: the fake provider's Messages API on loopback, recorded real
responses replayed on loopback, and (where no server can run here: Bedrock, Vertex) a mock transport.

Span attributes are compared as whole dicts; values that vary between runs (ids, the port) come from the
response or the server. Pricing is off in these tests (its attributes have their own tests), so the
dicts do not depend on whether the price data has loaded yet.

Streams: every exit path in tests/test_stream_contract.py, the rest in tests/test_anthropic_streams.py.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from llmlens import semconv
from llmlens.demo import fake_anthropic
from llmlens.demo.fake_bodies import Scenario
from llmlens.demo.fake_server import FakeProvider
from llmlens.providers.anthropic import MessageStreamAccumulator
from replay_server import RECORDINGS, Recording, ReplayServer

MODEL = "claude-haiku-4-5"
MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
PROMPT_TOKENS = 9  # the fake counts 3 per message plus the words: 3 + 6
ANSWER = "Hello from the fake provider. This deterministic answer"  # the default 8 words
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CONTENT_KEYS = {
    semconv.INPUT_MESSAGES,
    semconv.OUTPUT_MESSAGES,
    semconv.SYSTEM_INSTRUCTIONS,
    semconv.TOOL_DEFINITIONS,
}

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def scenario(value: str) -> dict[str, Any]:
    return {"x-fake-scenario": value}


@pytest.fixture
def instrumented(instrument: Any) -> Any:
    return instrument(pricing=False)


@pytest.fixture
def client(fake: FakeProvider) -> anthropic.Anthropic:
    # The SDK's paths start with /v1: its base_url is the server root.
    return anthropic.Anthropic(
        api_key="sk-ant-test", base_url=f"http://{fake.host}:{fake.port}", max_retries=0
    )


@pytest.fixture
def async_client(fake: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url=f"http://{fake.host}:{fake.port}", max_retries=0
    )


def base(fake: Any, max_tokens: int = 256, **extra: Any) -> dict[str, Any]:
    """The attributes every span of a Messages call to the fake provider starts with."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
        "gen_ai.request.max_tokens": max_tokens,
    }
    attributes.update(extra)
    return attributes


def answered(message: Any, finish: str = "stop", stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    """Response attributes of a fake answer without cache or thinking tokens."""
    attributes = {
        "gen_ai.response.id": message.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": (finish,),
        "anthropic.message.stop_reason": stop,
        "anthropic.response.service_tier": "standard",
        "gen_ai.usage.input_tokens": PROMPT_TOKENS,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
    }
    attributes.update(extra)
    return attributes


def assert_chat_span(span: Any, status: StatusCode = StatusCode.OK, name: str = f"chat {MODEL}") -> None:
    assert span.name == name
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is status
    assert span.instrumentation_scope.name == "llmlens"


def content(span: Any, key: str) -> Any:
    value = span.attributes[key]
    assert isinstance(value, str)
    return json.loads(value)


def metric_points(otel: Any, name: str) -> list[Any]:
    return otel.metrics().get(name, [])


# ------------------------------------------------------------------------------------- non-streaming


def test_message_span_has_every_request_parameter(
    otel: Any, instrumented: Any, client: Any, fake: Any
) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=MESSAGES,
        # anthropic 2.x takes these only as extra_body, merged into the body the SDK sends.
        extra_body={"temperature": 0.25, "top_p": 0.5, "top_k": 40},
        stop_sequences=["\n\nHuman:", "END"],
        service_tier="standard_only",
        thinking={"type": "enabled", "budget_tokens": 128},
        output_config={"effort": "low", "format": {"type": "json_schema", "schema": {"type": "object"}}},
    )

    assert message.content[-1].text == ANSWER
    span = otel.span()
    assert_chat_span(span)
    assert dict(span.attributes) == {
        **base(fake),
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.stop_sequences": ("\n\nHuman:", "END"),
        "anthropic.request.service_tier": "standard_only",
        "anthropic.thinking.type": "enabled",
        "anthropic.thinking.budget_tokens": 128,
        "gen_ai.request.reasoning.level": "low",
        "gen_ai.output.type": "json",
        **answered(message),
    }
    assert span.events == ()


@pytest.mark.asyncio
async def test_async_message(otel: Any, instrumented: Any, async_client: Any, fake: Any) -> None:
    message = await async_client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)

    assert message.content[0].text == ANSWER
    span = otel.span()
    assert_chat_span(span)
    assert dict(span.attributes) == {**base(fake), **answered(message)}


@pytest.mark.parametrize("beta", [False, True], ids=["messages", "beta.messages"])
def test_usage_adds_cache_tokens_to_input_and_thinking_is_reasoning(
    otel: Any, instrumented: Any, client: Any, fake: Any, beta: bool
) -> None:
    messages = client.beta.messages if beta else client.messages
    message = messages.create(
        model=MODEL,
        max_tokens=256,
        messages=MESSAGES,
        extra_headers=scenario("cached=5,cache_write=7,thinking=4"),
    )

    # Anthropic's input_tokens leave the cache out; the spec's input_tokens include it.
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (9, 5, 7)
    assert (usage.output_tokens, usage.output_tokens_details.thinking_tokens) == (12, 4)
    attributes = dict(otel.span().attributes)
    assert {k: v for k, v in attributes.items() if "usage" in k} == {
        "gen_ai.usage.input_tokens": 9 + 5 + 7,
        "gen_ai.usage.output_tokens": 12,
        "gen_ai.usage.cache_read.input_tokens": 5,
        "gen_ai.usage.cache_creation.input_tokens": 7,
        "gen_ai.usage.reasoning.output_tokens": 4,
        "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 7,
        "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 0,
    }
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in metric_points(otel, "gen_ai.client.token.usage")
    }
    assert tokens == {"input": 21, "output": 12}


def test_tool_use(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice={"type": "any"}
    )

    assert message.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in message.content] == [
        ("tool_use", "get_weather", {"city": "Paris"})
    ]
    span = otel.span()
    assert_chat_span(span)
    # The fake cuts the input JSON into 5 fragments and counts them as output tokens.
    assert dict(span.attributes) == {
        **base(fake),
        **answered(message, "tool_call", "tool_use", **{"gen_ai.usage.output_tokens": 5}),
        "llmlens.response.tool_call_count": 1,
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_call"),
        ("refusal", "content_filter"),
        ("pause_turn", "pause_turn"),  # no spec value: passed through
        ("some_future_reason", "some_future_reason"),
    ],
)
def test_stop_reasons(otel: Any, instrumented: Any, client: Any, stop_reason: str, finish: str) -> None:
    client.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=scenario(f"finish={stop_reason}")
    )

    attributes = otel.span().attributes
    assert attributes["gen_ai.response.finish_reasons"] == (finish,)
    assert attributes["anthropic.message.stop_reason"] == stop_reason
    assert attributes.get("llmlens.response.refusal") is (True if stop_reason == "refusal" else None)


def test_max_tokens_cuts_the_answer(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    message = client.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES)

    assert (message.stop_reason, message.content[0].text) == ("max_tokens", "Hello from the")
    assert dict(otel.span().attributes) == {
        **base(fake, max_tokens=3),
        **answered(message, "length", "max_tokens", **{"gen_ai.usage.output_tokens": 3}),
    }


@pytest.mark.parametrize(
    ("status", "error_class", "api_type"),
    [
        (400, "BadRequestError", "invalid_request_error"),
        (401, "AuthenticationError", "authentication_error"),
        (404, "NotFoundError", "not_found_error"),
        (429, "RateLimitError", "rate_limit_error"),
        (500, "InternalServerError", "api_error"),
        (529, "OverloadedError", "overloaded_error"),
    ],
)
def test_http_errors(
    otel: Any, instrumented: Any, client: Any, fake: Any, status: int, error_class: str, api_type: str
) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=scenario(f"status={status}")
        )

    assert type(caught.value).__name__ == error_class
    assert (caught.value.status_code, caught.value.type) == (status, api_type)
    span = otel.span()
    assert_chat_span(span, StatusCode.ERROR)
    assert dict(span.attributes) == {
        **base(fake),
        "error.type": f"anthropic.{error_class}",
        "http.response.status_code": status,
    }
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"].endswith(error_class)
    [point] = metric_points(otel, "gen_ai.client.operation.duration")
    assert point.attributes["error.type"] == f"anthropic.{error_class}"
    assert metric_points(otel, "gen_ai.client.token.usage") == []


@pytest.mark.asyncio
async def test_async_http_error(otel: Any, instrumented: Any, async_client: Any, fake: Any) -> None:
    with pytest.raises(anthropic.RateLimitError):
        await async_client.messages.create(model="fake-error-429", max_tokens=256, messages=MESSAGES)

    span = otel.span()
    assert_chat_span(span, StatusCode.ERROR, name="chat fake-error-429")
    assert span.attributes["error.type"] == "anthropic.RateLimitError"


def test_connection_error(otel: Any, instrumented: Any) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = anthropic.Anthropic(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)

    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "anthropic.APIConnectionError"
    assert span.attributes["server.port"] == port


# -------------------------------------------------------------- the fake provider's wire format


def _sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE frame."""
    frames = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        frames.append((lines["event"], json.loads(lines["data"])))
    return frames


def test_fake_anthropic_wire_format(fake: Any) -> None:
    """The raw bytes the fake sends for the Anthropic routes, without an SDK in between."""
    root = f"http://{fake.host}:{fake.port}"
    body = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES, "stream": True, "tools": [WEATHER_TOOL]}
    with httpx2.Client(base_url=root) as http:
        stream = http.post("/v1/messages", json=body, headers=scenario("tool,thinking=2"))
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        frames = _sse(stream.text)
        assert all(name == data["type"] for name, data in frames)  # `event:` names the data's type
        kinds = [data["delta"]["type"] if name == "content_block_delta" else name for name, data in frames]
        assert kinds == [
            "message_start", "content_block_start", "ping", "thinking_delta", "thinking_delta",
            "signature_delta", "content_block_stop", "content_block_start", *["input_json_delta"] * 6,
            "content_block_stop", "message_delta", "message_stop",
        ]  # fmt: skip
        start, delta = frames[0][1]["message"], frames[-2][1]
        assert start["usage"]["output_tokens"] == 1 and start["stop_reason"] is None
        assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
        assert delta["usage"]["output_tokens"] == 2 + 5
        assert delta["usage"]["output_tokens_details"] == {"thinking_tokens": 2}

        error_stream = http.post("/v1/messages", json=body, headers=scenario("stream_error=overloaded_error"))
        assert _sse(error_stream.text)[-1] == (
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )  # fmt: skip

        for status, err_type in (
            (429, "rate_limit_error"),
            (529, "overloaded_error"),
            (404, "not_found_error"),
        ):
            reply = http.post("/v1/messages", json=body, headers=scenario(f"status={status}"))
            assert reply.status_code == status
            payload = reply.json()
            assert set(payload) == {"type", "error", "request_id"}
            assert (payload["type"], payload["error"]["type"]) == ("error", err_type)
            assert payload["request_id"] == reply.headers["request-id"]
        assert (
            http.post("/v1/messages", json=body, headers=scenario("status=429")).headers["retry-after"] == "0"
        )

        count = http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": MESSAGES})
        assert count.json() == {"input_tokens": PROMPT_TOKENS}
        bad = http.post("/v1/messages", json=body, headers=scenario("chunkz=3"))
        assert (bad.status_code, bad.json()["error"]["type"]) == (400, "invalid_request_error")
        assert "chunkz" in bad.json()["error"]["message"]
        missing = http.get("/v1/messages")
        assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found_error")


# ------------------------------------------------------------------------------------------- content


def test_no_content_by_default(otel: Any, instrumented: Any, client: Any) -> None:
    client.messages.create(
        model=MODEL, max_tokens=256, system="Be brief.", messages=MESSAGES, tools=[WEATHER_TOOL]
    )

    assert CONTENT_KEYS.isdisjoint(otel.span().attributes)
    assert otel.logs() == []


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 91).decode()  # 99 bytes


def test_content_capture_of_every_part_kind(otel: Any, instrument: Any, client: Any) -> None:
    instrument(capture_content="SPAN_ONLY", pricing=False)
    first = client.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice={"type": "any"}
    )
    otel.spans_exporter.clear()
    call = first.content[0]
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the weather in Paris? Here is a photo."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/paris.jpg"}},
            ],
        },
        # The previous answer as the SDK returned it: model objects, not dicts.
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 °C"}],
        },
    ]
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric units."}],
        messages=messages,
        tools=[WEATHER_TOOL, web_search],
        extra_headers=scenario("thinking=3"),
    )

    span = otel.span()
    assert content(span, semconv.SYSTEM_INSTRUCTIONS) == [
        {"type": "text", "content": "Be brief."},
        {"type": "text", "content": "Use metric units."},
    ]
    assert content(span, semconv.INPUT_MESSAGES) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is the weather in Paris? Here is a photo."},
                {
                    "type": "blob",
                    "modality": "image",
                    "content": "[llmlens: 99 bytes of base64 data elided]",
                    "mime_type": "image/png",
                },
                {"type": "uri", "modality": "image", "uri": "https://example.com/paris.jpg"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": call.id, "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "parts": [{"type": "tool_call_response", "id": call.id, "response": "Sunny, 21 °C"}],
        },
    ]
    assert content(span, semconv.TOOL_DEFINITIONS) == [
        {"type": "function", "name": "get_weather", "description": "Current weather for a city"},
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": message.content[0].thinking},
                {"type": "text", "content": ANSWER},
            ],
            "finish_reason": "stop",
        }
    ]
    assert PNG not in json.dumps(dict(span.attributes))


def test_content_on_the_event_only(otel: Any, instrument: Any, client: Any) -> None:
    instrument(capture_content="EVENT_ONLY", pricing=False)
    client.messages.create(model=MODEL, max_tokens=256, system="Be brief.", messages=MESSAGES)

    assert CONTENT_KEYS.isdisjoint(otel.span().attributes)
    [log] = otel.logs()
    attributes = log.log_record.attributes
    assert log.log_record.event_name == "gen_ai.client.inference.operation.details"
    assert attributes["gen_ai.system_instructions"] == ({"type": "text", "content": "Be brief."},)
    assert attributes["gen_ai.output.messages"][0]["parts"][0]["content"] == ANSWER


# -------------------------------------------------------------------------- other methods and shapes


def test_count_tokens_is_a_span_of_its_own_kind(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    count = client.messages.count_tokens(model=MODEL, messages=MESSAGES)

    assert count.input_tokens == PROMPT_TOKENS
    span = otel.span()
    assert_chat_span(span, name=f"count_tokens {MODEL}")
    # Not an inference: the count is not usage (nothing is billed, nothing is priced).
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "count_tokens",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
        "anthropic.message.count_tokens.input_tokens": PROMPT_TOKENS,
    }
    assert metric_points(otel, "gen_ai.client.token.usage") == []


def test_beta_count_tokens(otel: Any, instrumented: Any, client: Any) -> None:
    client.beta.messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert otel.span().attributes["anthropic.message.count_tokens.input_tokens"] == PROMPT_TOKENS


def test_with_raw_response_ends_at_once(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256, messages=MESSAGES)

    span = otel.span()  # ended before the caller parsed anything
    assert raw.http_response.status_code == 200
    message = raw.parse()
    assert raw.parse() is message  # the SDK's parse cache: llmlens' parse cost the user nothing
    assert dict(span.attributes) == {**base(fake), **answered(message)}


@pytest.mark.asyncio
async def test_async_with_raw_response_ends_at_once(
    otel: Any, instrumented: Any, async_client: Any, fake: Any
) -> None:
    raw = await async_client.messages.with_raw_response.create(model=MODEL, max_tokens=256, messages=MESSAGES)

    span = otel.span()
    message = await raw.parse()
    assert dict(span.attributes) == {**base(fake), **answered(message)}


def test_with_streaming_response_non_stream(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=256, messages=MESSAGES
    ) as raw:
        assert otel.spans() == []  # the body is not read yet
        message = raw.parse()
    assert dict(otel.span().attributes) == {**base(fake), **answered(message)}


def test_beta_messages_create(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    message = client.beta.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, betas=["context-management-2025-06-27"]
    )

    assert fake.requests[-1].headers["anthropic-beta"] == "context-management-2025-06-27"
    assert dict(otel.span().attributes) == {**base(fake), **answered(message)}


def test_no_usage_in_the_response(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=scenario("no_usage")
    )

    assert message.usage is None
    attributes = dict(otel.span().attributes)
    assert not [k for k in attributes if k.startswith("gen_ai.usage.")]
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_user_sees_the_same_message_with_and_without_llmlens(otel: Any, instrument: Any, client: Any) -> None:
    def view() -> Any:
        message = client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
        return {k: v for k, v in message.model_dump().items() if k != "id"}

    plain = view()
    instrument(capture_content="SPAN_ONLY", pricing=False)
    assert view() == plain
    assert len(otel.spans()) == 1


def test_suppressed_and_uninstrumented_calls_make_no_span(otel: Any, instrument: Any, client: Any) -> None:
    from anthropic import _base_client

    original = _base_client.BaseClient.__dict__["_tracer"]
    instrumentor = instrument(pricing=False)
    assert _base_client.BaseClient.__dict__["_tracer"] is not original
    with suppress_instrumentation():
        client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert otel.spans() == []
    instrumentor.uninstrument()
    assert _base_client.BaseClient.__dict__["_tracer"] is original
    client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert otel.spans() == []


# ------------------------------------------------------------------ providers: Bedrock, Vertex, others


def _mock_http_client() -> tuple[httpx2.Client, list[Any]]:
    """Bedrock and Vertex cannot run here: a mock transport answers with the fake's Message bodies."""
    seen: list[Any] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        body = json.loads(request.content or b"{}")
        body.setdefault("model", MODEL)  # Bedrock and Vertex move the model into the URL
        reply = fake_anthropic.route("POST", "/v1/messages", body, Scenario())
        return httpx2.Response(reply.status, headers=reply.headers, content=reply.content)

    return httpx2.Client(transport=httpx2.MockTransport(handler)), seen


@pytest.mark.parametrize("kind", ["bedrock", "vertex", "foundry", "mapped"])
def test_provider_names_of_the_other_clients(otel: Any, instrument: Any, kind: str) -> None:
    http_client, seen = _mock_http_client()
    if kind == "bedrock":
        client: Any = anthropic.AnthropicBedrock(
            aws_access_key="AKIDEXAMPLE",
            aws_secret_key="secret",
            aws_region="eu-west-1",
            http_client=http_client,
        )
        expected = ("aws.bedrock", "bedrock-runtime.eu-west-1.amazonaws.com", 443)
    elif kind == "vertex":
        client = anthropic.AnthropicVertex(
            project_id="my-project", region="us-east5", access_token="token", http_client=http_client
        )
        expected = ("gcp.vertex_ai", "us-east5-aiplatform.googleapis.com", 443)
    elif kind == "foundry":
        client = anthropic.AnthropicFoundry(api_key="key", resource="my-resource", http_client=http_client)
        expected = ("azure.ai.inference", "my-resource.services.ai.azure.com", 443)
    else:
        client = anthropic.Anthropic(api_key="k", base_url="http://llm-gateway:8080", http_client=http_client)
        expected = ("my_gateway", "llm-gateway", 8080)
    instrument(pricing=False, provider_map={"llm-gateway:8080": "my_gateway"})

    message = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)

    assert message.content[0].text == ANSWER
    [request] = seen
    span = otel.span()
    attributes = span.attributes
    assert (
        attributes["gen_ai.provider.name"],
        attributes["server.address"],
        attributes["server.port"],
    ) == expected
    assert request.url.host == expected[1]
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.usage.input_tokens"] == PROMPT_TOKENS
    assert span.status.status_code is StatusCode.OK


@pytest.mark.asyncio
async def test_async_vertex(otel: Any, instrument: Any) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        reply = fake_anthropic.route(
            "POST", "/v1/messages", {**json.loads(request.content), "model": MODEL}, Scenario()
        )
        return httpx2.Response(reply.status, headers=reply.headers, content=reply.content)

    client = anthropic.AsyncAnthropicVertex(
        project_id="p", region="europe-west1", access_token="t",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )  # fmt: skip
    instrument(pricing=False)
    await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert otel.span().attributes["gen_ai.provider.name"] == "gcp.vertex_ai"


# ------------------------------------------------------------------------ the stream accumulator


def test_stream_usage_keeps_the_last_non_zero_count_of_each_field(otel: Any, instrumented: Any) -> None:
    """message_start brings input and cache counts, message_delta the output (and, in newer API versions,
    cumulative counts that may be 0 or absent): neither may erase the other (openlit#1601)."""
    from anthropic.types import RawMessageDeltaEvent, RawMessageStartEvent

    from llmlens.core.invocation import Invocation

    start = RawMessageStartEvent.model_validate({
        "type": "message_start",
        "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 4, "cache_read_input_tokens": 1165, "cache_creation_input_tokens": 0,
                      "output_tokens": 1},
        },
    })  # fmt: skip
    delta = RawMessageDeltaEvent.model_validate({
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 0, "cache_read_input_tokens": None, "cache_creation_input_tokens": 0,
                  "output_tokens": 201},
    })  # fmt: skip
    telemetry = instrumented.telemetry
    inv = Invocation(telemetry, "chat", "anthropic", MODEL, stream=True)
    accumulator = MessageStreamAccumulator(inv, 0)
    accumulator.on_event(start)
    accumulator.on_event(delta)
    accumulator.on_end()
    assert (inv.input_tokens, inv.cache_read_tokens, inv.cache_creation_tokens, inv.output_tokens) == (
        4 + 1165, 1165, 0, 201
    )  # fmt: skip
    assert inv.finish_reasons == ["stop"]


# ------------------------------------------------------------------- the SDK's own tracing (2.x)

_SELF_TRACING = textwrap.dedent(
    """
    import json, os, sys
    import anthropic
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from llmlens import Instrumentor
    from llmlens.demo.fake_server import FakeProvider

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the SDK traces itself as soon as there is a global provider
    MESSAGES = [{"role": "user", "content": "Hi"}]
    result = {}

    def spans():
        found = [
            {"name": s.name, "scope": s.instrumentation_scope.name,
             "span_id": format(s.context.span_id, "016x"), "attributes": dict(s.attributes)}
            for s in exporter.get_finished_spans()
        ]
        exporter.clear()
        return found

    with FakeProvider() as server:
        root = f"http://{server.host}:{server.port}"
        client = anthropic.Anthropic(api_key="k", base_url=root, max_retries=0)
        quiet = anthropic.Anthropic(api_key="k", base_url=root, max_retries=0, open_telemetry=False)

        def call(name, fn):
            try:
                fn()
            except anthropic.APIError:
                pass
            header = server.requests[-1].headers.get("traceparent")
            result[name] = {"spans": spans(), "traceparent": header}

        create = lambda c: c.messages.create(model="claude-x", max_tokens=16, messages=MESSAGES)
        call("sdk_alone", lambda: create(client))
        Instrumentor().instrument(pricing=False, store=False)
        call("create", lambda: create(client))
        call("stream", lambda: list(client.messages.create(model="claude-x", max_tokens=16, messages=MESSAGES,
                                                           stream=True)))
        def helper():
            with client.messages.stream(model="claude-x", max_tokens=16, messages=MESSAGES) as stream:
                stream.get_final_message()
        call("helper", helper)
        call("count_tokens", lambda: client.messages.count_tokens(model="claude-x", messages=MESSAGES))
        call("error", lambda: client.messages.create(model="fake-error-529", max_tokens=9, messages=MESSAGES))
        call("not_ours", lambda: client.models.list())
        call("sdk_tracing_off", lambda: create(quiet))
        Instrumentor().uninstrument()
        call("after", lambda: create(client))
    print(json.dumps(result))
    """
)


def test_sdk_self_tracing_gives_exactly_one_llm_span() -> None:
    """With a global tracer provider, anthropic 2.x makes its own CLIENT span for every call. With llmlens,
    each call we record has exactly one span, ours; the SDK's own spans stay for every other call."""
    env = {**os.environ, "LLMLENS_STORE": "false"}
    env.pop("ANTHROPIC_OPEN_TELEMETRY", None)
    src = Path(__file__).resolve().parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _SELF_TRACING],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)

    sdk = result["sdk_alone"]["spans"]
    assert [(s["name"], s["scope"]) for s in sdk] == [
        ("anthropic.messages.create", "com.anthropic.sdk.python")
    ]
    operations = {"create": "chat", "stream": "chat", "helper": "chat", "count_tokens": "count_tokens"}
    for name, operation in {**operations, "error": "chat"}.items():
        [span] = result[name]["spans"]
        assert span["scope"] == "llmlens", name
        assert span["attributes"]["gen_ai.operation.name"] == operation
        # The SDK still propagates the trace context, now of the one span there is: ours.
        assert result[name]["traceparent"].split("-")[2] == span["span_id"], name
    assert result["create"]["spans"][0]["attributes"]["gen_ai.usage.input_tokens"] == 4
    assert result["helper"]["spans"][0]["attributes"]["llmlens.stream.outcome"] == "completed"
    assert result["error"]["spans"][0]["attributes"]["error.type"] == "anthropic.OverloadedError"
    assert [(s["name"], s["scope"]) for s in result["not_ours"]["spans"]] == [
        ("anthropic.models.list", "com.anthropic.sdk.python")
    ]
    [quiet] = result["sdk_tracing_off"]["spans"]
    assert quiet["scope"] == "llmlens"
    assert result["sdk_tracing_off"]["traceparent"] is None  # the user turned the SDK's propagation off too
    assert [s["scope"] for s in result["after"]["spans"]] == ["com.anthropic.sdk.python"]


# ------------------------------------------------------------------- recorded real responses

RECORDED = sorted(path.stem for path in (RECORDINGS / "anthropic").glob("*.json"))
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_call"}


def sse_payloads(rec: Recording) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data:") :])
        for event in rec.sse_events()
        for line in event.splitlines()
        if line.startswith("data:")
    ]


class Expected:
    """What the span of a recording must say, derived from the recording itself."""

    def __init__(self, rec: Recording) -> None:
        self.error: str | None = None
        self.chunks: int | None = None
        self.usage: dict[str, int] = {}
        if rec.status >= 400:
            self.error = json.loads(rec.body)["error"]["type"]
            return
        if rec.is_sse:
            events = sse_payloads(rec)
            start = next(e for e in events if e["type"] == "message_start")["message"]
            delta = next(e for e in events if e["type"] == "message_delta")
            usage = {**start["usage"], **{k: v for k, v in delta["usage"].items() if v}}
            self.id, self.model, stop = start["id"], start["model"], delta["delta"]["stop_reason"]
            self.tool_calls = sum(
                1
                for e in events
                if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
            )
            self.chunks = sum(1 for e in events if e["type"] == "content_block_delta")
        else:
            message = json.loads(rec.body)
            usage, self.id, self.model, stop = (
                message["usage"],
                message["id"],
                message["model"],
                message["stop_reason"],
            )
            self.tool_calls = sum(1 for block in message["content"] if block["type"] == "tool_use")
        self.stop = stop
        self.finish = FINISH.get(stop, stop)
        read, write = usage.get("cache_read_input_tokens"), usage.get("cache_creation_input_tokens")
        self.usage = {
            "gen_ai.usage.input_tokens": usage["input_tokens"] + (read or 0) + (write or 0),
            "gen_ai.usage.output_tokens": usage["output_tokens"],
        }
        if read is not None:
            self.usage["gen_ai.usage.cache_read.input_tokens"] = read
        if write is not None:
            self.usage["gen_ai.usage.cache_creation.input_tokens"] = write
        thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
        if thinking is not None:
            self.usage["gen_ai.usage.reasoning.output_tokens"] = thinking


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def test_recordings_are_present_and_clean() -> None:
    assert len(RECORDED) >= 10, RECORDED
    for name in RECORDED:
        raw = (RECORDINGS / "anthropic" / f"{name}.json").read_text(encoding="utf-8").lower()
        for needle in ("x-api-key", "authorization", "sk-ant-", "set-cookie", "anthropic-organization-id"):
            assert needle not in raw, (name, needle)
    with_cache = [n for n in RECORDED if Expected(Recording.load(f"anthropic/{n}")).usage.get(
        "gen_ai.usage.cache_read.input_tokens")]  # fmt: skip
    assert set(with_cache) == {"cache_read", "cache_read_stream"}


async def _call(kind: str, root: str, rec: Recording) -> Any:
    body = dict(rec.request_body)
    stream = body.pop("stream", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the recorded models are retired
        try:
            if kind == "sync":
                client = anthropic.Anthropic(api_key="k", base_url=root, max_retries=0)
                if stream:
                    return [e.model_dump() for e in client.messages.create(stream=True, **body)]
                return client.messages.create(**body).model_dump()
            aclient = anthropic.AsyncAnthropic(api_key="k", base_url=root, max_retries=0)
            if stream:
                return [e.model_dump() async for e in await aclient.messages.create(stream=True, **body)]
            return (await aclient.messages.create(**body)).model_dump()
        except anthropic.APIStatusError as error:
            return {"error": type(error).__name__, "status": error.status_code, "type": error.type}


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("name", RECORDED)
async def test_recorded(name: str, kind: str, replay: ReplayServer, otel: Any, instrument: Any) -> None:
    rec = Recording.load(f"anthropic/{name}")
    replay.use(rec)
    expected = Expected(rec)
    root = f"http://127.0.0.1:{replay.port}"

    baseline = await _call(kind, root, rec)
    instrument(pricing=False, capture_content="SPAN_ONLY", content_max_length=0)
    started = time.perf_counter_ns()
    result = await _call(kind, root, rec)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    assert result == baseline
    assert [request.json for request in replay.requests] == [rec.request_body] * 2

    span = otel.span()
    attributes = dict(span.attributes)
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == rec.request_body["model"]
    assert attributes["gen_ai.request.max_tokens"] == rec.request_body["max_tokens"]
    assert (span.end_time - span.start_time) / 1e9 <= elapsed
    if expected.error is not None:
        assert span.status.status_code is StatusCode.ERROR
        assert attributes["error.type"] == f"anthropic.{result['error']}"
        assert attributes["http.response.status_code"] == rec.status
        return
    assert span.status.status_code is StatusCode.OK
    assert (attributes["gen_ai.response.id"], attributes["gen_ai.response.model"]) == (
        expected.id,
        expected.model,
    )
    assert attributes["gen_ai.response.finish_reasons"] == (expected.finish,)
    assert attributes["anthropic.message.stop_reason"] == expected.stop
    assert {k: v for k, v in attributes.items() if k.startswith("gen_ai.usage.")} == expected.usage
    assert attributes.get("llmlens.response.tool_call_count", 0) == expected.tool_calls
    if expected.chunks is not None:
        assert attributes["llmlens.stream.chunk_count"] == expected.chunks
        assert attributes["llmlens.stream.outcome"] == "completed"
    output = json.loads(attributes[semconv.OUTPUT_MESSAGES])
    final = result if not rec.is_sse else None
    if final is not None:  # the captured output is the recorded content, part for part
        kinds = {"text": "text", "thinking": "reasoning", "tool_use": "tool_call"}
        assert [p["type"] for p in output[0]["parts"]] == [kinds[b["type"]] for b in final["content"]]
    else:
        events = sse_payloads(rec)
        text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        captured = "".join(p.get("content", "") for p in output[0]["parts"] if p["type"] == "text")
        assert captured == text
        for part in output[0]["parts"]:
            if part["type"] == "tool_call":
                assert isinstance(part["arguments"], dict)  # the streamed JSON fragments, reassembled
