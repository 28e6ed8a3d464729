"""llmlens with the real `openai` SDK against the fake provider on loopback: no mocks.

Span attributes are compared as whole dicts (snapshot style); values that vary between runs (ids, the
server port, time to first chunk) come from the response object or the fake server, or are checked
separately.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from llmlens import semconv
from llmlens.core.content import TRUNCATION_MARKER
from llmlens.core.telemetry import Telemetry
from llmlens.demo.fake_server import FakeProvider
from llmlens.providers.openai import ChatCompletionsRoute, ChatStreamAccumulator, ResponsesRoute
from test_openai_compat import http_client_instrumentor

MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
# The fake provider counts 3 per message plus the words: 2 * 3 + 2 + 6.
PROMPT_TOKENS = 14
ANSWER = "Hello from the fake provider. This deterministic answer"  # the default 8 words
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
RESPONSES_WEATHER_TOOL: dict[str, Any] = {"type": "function", **WEATHER_TOOL["function"]}
TOOL_DEFINITIONS = [{"type": "function", "name": "get_weather", "description": "Current weather for a city"}]
# MESSAGES[0] as gen_ai.input.messages has it.
SYSTEM_MESSAGE = {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
CONTENT_KEYS = {
    semconv.INPUT_MESSAGES,
    semconv.OUTPUT_MESSAGES,
    semconv.SYSTEM_INSTRUCTIONS,
    semconv.TOOL_DEFINITIONS,
}


@pytest.fixture
def instrument(instrument: Any) -> Any:
    """conftest's `instrument`, with pricing off unless a test asks for it: these spans are snapshots of
    the openai module's attributes, and the fake server (an unknown relay) would add an inferred cost
    once the price data has loaded (tests/test_cost_inferred.py)."""

    def run(**options: Any) -> Any:
        options.setdefault("pricing", False)
        return instrument(**options)

    return run


def scenario(value: str) -> dict[str, Any]:
    return {"x-fake-scenario": value}


def base(fake: FakeProvider, model: str = MODEL, operation: str = "chat", **extra: Any) -> dict[str, Any]:
    """The attributes every span of a call to the fake provider has."""
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "openai_compatible",
        "gen_ai.request.model": model,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
    }
    attributes.update(extra)
    return attributes


def chat_base(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return base(fake, **{"openai.api.type": "chat_completions"}, **extra)


def responses_base(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    return base(fake, **{"openai.api.type": "responses"}, **extra)


def chat_response(completion: Any, finish: tuple[str, ...] = ("stop",), **extra: Any) -> dict[str, Any]:
    """Response attributes of a default (text, usage, tier and fingerprint) chat completion."""
    attributes = {
        "gen_ai.response.id": completion.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": finish,
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": "fp_fake",
        "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
    }
    attributes.update(extra)
    return attributes


def duration_s(span: Any) -> float:
    return (span.end_time - span.start_time) / 1e9


def stream_attributes(span: Any) -> dict[str, Any]:
    """The span's attributes without time to first chunk, which is checked to lie inside the span."""
    attributes = dict(span.attributes)
    ttfc = attributes.pop(semconv.RESPONSE_TIME_TO_FIRST_CHUNK)
    assert isinstance(ttfc, float)
    assert 0 < ttfc <= duration_s(span)
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


def plain(value: Any) -> Any:
    """Exported attribute values with tuples as lists and mappings as dicts, for comparisons."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    return value


_VARYING = frozenset(("id", "created", "created_at", "completed_at", "call_id"))


def normalise(dump: Any) -> Any:
    """A model_dump() with per-call ids and timestamps blanked (the fake numbers them)."""
    if isinstance(dump, dict):
        return {k: "<varies>" if k in _VARYING and v is not None else normalise(v) for k, v in dump.items()}
    if isinstance(dump, list):
        return [normalise(v) for v in dump]
    return dump


def metric_points(otel: Any, name: str) -> list[Any]:
    return otel.metrics().get(name, [])


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------- chat, non-stream


def test_chat_span_has_every_request_parameter(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=0.25,
        top_p=0.5,
        max_tokens=64,
        stop=["\n\n", "END"],
        seed=42,
        frequency_penalty=0.125,
        presence_penalty=-0.5,
        n=2,
        response_format={"type": "json_object"},
        reasoning_effort="low",
        extra_headers=scenario("cached=5,reasoning=3"),
    )

    assert [c.finish_reason for c in completion.choices] == ["stop", "stop"]
    # 2 choices of 8 words, and the 3 reasoning tokens are a part of the completion tokens.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (PROMPT_TOKENS, 19)
    span = otel.span()
    assert_chat_span(span)
    assert dict(span.attributes) == {
        **chat_base(fake),
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.stop_sequences": ("\n\n", "END"),
        "gen_ai.request.seed": 42,
        "gen_ai.request.frequency_penalty": 0.125,
        "gen_ai.request.presence_penalty": -0.5,
        "gen_ai.request.choice.count": 2,
        "gen_ai.output.type": "json",
        "gen_ai.request.reasoning.level": "low",
        "gen_ai.response.id": completion.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop", "stop"),
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": "fp_fake",
        "gen_ai.usage.input_tokens": PROMPT_TOKENS,
        "gen_ai.usage.output_tokens": 19,
        "gen_ai.usage.cache_read.input_tokens": 5,
        "gen_ai.usage.reasoning.output_tokens": 3,
    }
    assert span.events == ()


def test_chat_single_stop_string_service_tier_and_max_completion_tokens(
    otel: Any, instrumented: Any, client: Any, fake: Any
) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stop="END",
        max_completion_tokens=32,
        service_tier="flex",
        response_format={"type": "text"},
    )

    assert dict(otel.span().attributes) == {
        **chat_base(fake),
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.max_tokens": 32,
        "openai.request.service_tier": "flex",
        "gen_ai.output.type": "text",
        **chat_response(completion),
    }


@pytest.mark.asyncio
async def test_async_chat(otel: Any, instrumented: Any, async_client: Any, fake: Any) -> None:
    completion = await async_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, seed=7, extra_headers=scenario("cached=2,reasoning=1")
    )

    assert completion.choices[0].message.content == ANSWER
    span = otel.span()
    assert_chat_span(span)
    assert dict(span.attributes) == {
        **chat_base(fake, **{"gen_ai.request.seed": 7}),
        **chat_response(
            completion,
            **{"gen_ai.usage.cache_read.input_tokens": 2, "gen_ai.usage.reasoning.output_tokens": 1},
        ),
    }


def usage_attributes(attributes: Any) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if k.startswith("gen_ai.usage.")}


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_chat_cache_write_tokens(otel: Any, instrumented: Any, client: Any, stream: bool) -> None:
    """`prompt_tokens_details.cache_write_tokens` -> gen_ai.usage.cache_creation.input_tokens."""
    call = {
        "model": MODEL,
        "messages": MESSAGES,
        "extra_headers": scenario("cached=1024,cache_write=256,reasoning=5"),
    }
    if stream:
        chunks = list(
            client.chat.completions.create(**call, stream=True, stream_options={"include_usage": True})
        )
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(**call).usage

    # The fake's prompt grows to hold the cached and written tokens; reasoning is part of the output.
    assert usage.prompt_tokens_details.cache_write_tokens == 256
    assert (usage.prompt_tokens, usage.completion_tokens) == (1024 + 256, 8 + 5)
    span = otel.span()
    attributes = stream_attributes(span) if stream else dict(span.attributes)
    assert usage_attributes(attributes) == {
        "gen_ai.usage.input_tokens": 1280,
        "gen_ai.usage.output_tokens": 13,
        "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.cache_creation.input_tokens": 256,
        "gen_ai.usage.reasoning.output_tokens": 5,
    }
    tokens = metric_points(otel, semconv.METRIC_TOKEN_USAGE)
    assert {p.attributes["gen_ai.token.type"]: p.sum for p in tokens} == {"input": 1280, "output": 13}


def test_no_cache_creation_attribute_without_cache_writes(otel: Any, instrumented: Any, client: Any) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=scenario("cached=3"))
    assert "gen_ai.usage.cache_creation.input_tokens" not in otel.span().attributes


def test_chat_span_is_client_child_of_current_span(otel: Any, instrumented: Any, client: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as parent:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    llm, handler = otel.spans()
    assert handler.name == "handler"
    assert llm.parent is not None
    assert llm.parent.span_id == parent.get_span_context().span_id
    assert llm.context.trace_id == parent.get_span_context().trace_id


@pytest.mark.parametrize("how", ["option", "env", "env_host_port"])
def test_provider_map(otel: Any, instrument: Any, client: Any, fake: Any, monkeypatch: Any, how: str) -> None:
    # pricing=False (as everywhere here): as "openai" the call is priced (tests/test_pricing.py).
    if how == "option":
        instrument(provider_map={"127.0.0.1": "openai"}, pricing=False)
    elif how == "env":
        monkeypatch.setenv("LLMLENS_PROVIDER_MAP", "127.0.0.1=openai")
        instrument(pricing=False)
    else:
        monkeypatch.setenv("LLMLENS_PROVIDER_MAP", f"localhost=other, 127.0.0.1:{fake.port}=openai")
        instrument(pricing=False)

    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert dict(otel.span().attributes) == {
        **chat_base(fake, **{"gen_ai.provider.name": "openai"}),
        **chat_response(completion),
    }
    (point,) = metric_points(otel, semconv.METRIC_OPERATION_DURATION)
    assert point.attributes["gen_ai.provider.name"] == "openai"


def test_reinstrument_with_another_provider_map_applies_to_an_existing_client(
    otel: Any, instrument: Any, client: Any
) -> None:
    instrumentor = instrument(provider_map={"127.0.0.1": "openai"})
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    instrumentor.uninstrument()
    instrument()  # no provider map any more
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    first, second = otel.spans()
    assert first.attributes["gen_ai.provider.name"] == "openai"
    assert second.attributes["gen_ai.provider.name"] == "openai_compatible"


# ------------------------------------------------------------------------------------------- metrics


def test_metrics_of_a_chat_call(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    span = otel.span()
    metrics = otel.metrics()

    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai_compatible",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
    }
    (duration,) = metrics[semconv.METRIC_OPERATION_DURATION]
    assert dict(duration.attributes) == common
    assert tuple(duration.explicit_bounds) == semconv.DURATION_BUCKETS
    assert duration.count == 1
    assert 0 < duration.sum <= duration_s(span)

    tokens = {p.attributes["gen_ai.token.type"]: p for p in metrics[semconv.METRIC_TOKEN_USAGE]}
    assert set(tokens) == {"input", "output"}
    assert len(metrics[semconv.METRIC_TOKEN_USAGE]) == 2
    for token_type, expected in (
        ("input", completion.usage.prompt_tokens),
        ("output", completion.usage.completion_tokens),
    ):
        point = tokens[token_type]
        assert dict(point.attributes) == {**common, "gen_ai.token.type": token_type}
        assert (point.count, point.sum) == (1, expected)
        assert tuple(point.explicit_bounds) == semconv.TOKEN_BUCKETS
    # Chunk metrics are for streams only; pricing is off here (the `instrument` fixture above).
    assert set(metrics) == {
        semconv.METRIC_OPERATION_DURATION,
        semconv.METRIC_TOKEN_USAGE,
        semconv.METRIC_LLMLENS_USAGE_TOKENS,
    }


def test_metrics_of_a_failed_call(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=scenario("status=429"))
    metrics = otel.metrics()

    (duration,) = metrics[semconv.METRIC_OPERATION_DURATION]
    assert dict(duration.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai_compatible",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
        "error.type": "openai.RateLimitError",
    }
    assert tuple(duration.explicit_bounds) == semconv.DURATION_BUCKETS
    assert semconv.METRIC_TOKEN_USAGE not in metrics


def test_metrics_of_a_stream(otel: Any, instrumented: Any, client: Any) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    output_chunks = [c for c in chunks if c.choices]
    metrics = otel.metrics()

    (first,) = metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK]
    assert first.count == 1
    assert tuple(first.explicit_bounds) == semconv.DURATION_BUCKETS
    (gaps,) = metrics[semconv.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert gaps.count == len(output_chunks) - 1
    assert {p.attributes["gen_ai.token.type"]: p.sum for p in metrics[semconv.METRIC_TOKEN_USAGE]} == {
        "input": chunks[-1].usage.prompt_tokens,
        "output": chunks[-1].usage.completion_tokens,
    }


# ---------------------------------------------------------------------------------------- tool calls


def test_tool_call_non_stream(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], extra_headers=scenario("tool")
    )

    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert dict(otel.span().attributes) == {
        **chat_base(fake),
        **chat_response(completion, finish=("tool_call",)),
        "llmlens.response.tool_call_count": 1,
    }


def test_tool_call_content_non_stream(otel: Any, instrument: Any, client: Any, fake: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], extra_headers=scenario("tool")
    )

    span = otel.span()
    call = completion.choices[0].message.tool_calls[0]
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": call.id, "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert content(span, semconv.TOOL_DEFINITIONS) == TOOL_DEFINITIONS
    # The system message is part of the chat history: it stays in the input messages, with its role.
    assert semconv.SYSTEM_INSTRUCTIONS not in span.attributes
    assert content(span, semconv.INPUT_MESSAGES) == [
        SYSTEM_MESSAGE,
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
    ]
    attributes = {k: v for k, v in span.attributes.items() if k not in CONTENT_KEYS}
    assert attributes == {
        **chat_base(fake),
        **chat_response(completion, finish=("tool_call",)),
        "llmlens.response.tool_call_count": 1,
    }


def test_tool_results_in_the_input_messages(otel: Any, instrument: Any, client: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])

    assert content(otel.span(), semconv.INPUT_MESSAGES) == [
        SYSTEM_MESSAGE,
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "Sunny, 21 C"}],
        },
    ]


def _check_streamed_tool_call(otel: Any, fake: Any, chunks: list[Any], capture: bool) -> None:
    output_chunks = [c for c in chunks if c.choices]
    fragments = [
        c.choices[0].delta.tool_calls[0].function.arguments
        for c in output_chunks
        if c.choices[0].delta.tool_calls
    ]
    assert len(fragments) >= 3  # the arguments really are split
    assert json.loads("".join(fragments)) == {"city": "Paris"}
    usage = chunks[-1].usage
    span = otel.span()
    assert_chat_span(span)
    attributes = stream_attributes(span)
    if capture:
        call_id = output_chunks[0].choices[0].delta.tool_calls[0].id
        assert content(span, semconv.OUTPUT_MESSAGES) == [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": call_id,
                        "name": "get_weather",
                        "arguments": {"city": "Paris"},
                    }
                ],
                "finish_reason": "tool_call",
            }
        ]
        assert content(span, semconv.TOOL_DEFINITIONS) == TOOL_DEFINITIONS
        attributes = {k: v for k, v in attributes.items() if k not in CONTENT_KEYS}
    assert attributes == {
        **chat_base(fake),
        "gen_ai.request.stream": True,
        "gen_ai.response.id": chunks[0].id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("tool_call",),
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": "fp_fake",
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "llmlens.response.tool_call_count": 1,
        "llmlens.stream.chunk_count": len(output_chunks),
        "llmlens.stream.outcome": "completed",
    }


@pytest.mark.parametrize("capture", [False, True], ids=["no_content", "span_only"])
def test_tool_call_stream(otel: Any, instrument: Any, client: Any, fake: Any, capture: bool) -> None:
    instrument(capture_content="SPAN_ONLY" if capture else None)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=scenario("tool"),
    )
    chunks = list(stream)
    _check_streamed_tool_call(otel, fake, chunks, capture)


@pytest.mark.asyncio
@pytest.mark.parametrize("capture", [False, True], ids=["no_content", "span_only"])
async def test_async_tool_call_stream(
    otel: Any, instrument: Any, async_client: Any, fake: Any, capture: bool
) -> None:
    instrument(capture_content="SPAN_ONLY" if capture else None)
    stream = await async_client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=scenario("tool"),
    )
    chunks = [chunk async for chunk in stream]
    _check_streamed_tool_call(otel, fake, chunks, capture)


def test_text_stream_with_two_choices(otel: Any, instrument: Any, client: Any, fake: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, n=2, stream=True, extra_headers=scenario("chunks=3")
    )
    chunks = list(stream)

    span = otel.span()
    answer = "Hello from the"
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"},
        {"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"},
    ]
    attributes = {k: v for k, v in stream_attributes(span).items() if k not in CONTENT_KEYS}
    assert attributes == {
        **chat_base(fake),
        "gen_ai.request.choice.count": 2,
        "gen_ai.request.stream": True,
        "gen_ai.response.id": chunks[0].id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop", "stop"),
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": "fp_fake",
        "llmlens.stream.chunk_count": len(chunks),
        "llmlens.stream.outcome": "completed",
    }


# ------------------------------------------------------------------------------------------- refusal


def test_refusal_non_stream(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario("refusal")
    )

    assert completion.choices[0].message.refusal
    assert dict(otel.span().attributes) == {
        **chat_base(fake),
        **chat_response(completion),
        "llmlens.response.refusal": True,
    }


@pytest.mark.parametrize("capture", [False, True], ids=["no_content", "span_only"])
def test_refusal_stream(otel: Any, instrument: Any, client: Any, fake: Any, capture: bool) -> None:
    instrument(capture_content="SPAN_ONLY" if capture else None)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("refusal")
        )
    )

    span = otel.span()
    if capture:
        refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
        assert content(span, semconv.OUTPUT_MESSAGES) == [
            {"role": "assistant", "parts": [{"type": "text", "content": refusal}], "finish_reason": "stop"}
        ]
    attributes = {k: v for k, v in stream_attributes(span).items() if k not in CONTENT_KEYS}
    assert attributes == {
        **chat_base(fake),
        "gen_ai.request.stream": True,
        "gen_ai.response.id": chunks[0].id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": "fp_fake",
        "llmlens.response.refusal": True,
        "llmlens.stream.chunk_count": len(chunks),
        "llmlens.stream.outcome": "completed",
    }


def test_refusal_responses(otel: Any, instrumented: Any, client: Any) -> None:
    client.responses.create(model=MODEL, input="Hi", extra_headers=scenario("refusal"))
    assert otel.span().attributes["llmlens.response.refusal"] is True


# ------------------------------------------------------------------------------------- Responses API


def responses_usage(
    response: Any, cached: int = 0, reasoning: int = 0, cache_write: int = 0
) -> dict[str, Any]:
    # The Responses API always sends input_tokens_details.cache_write_tokens (0 when nothing was written).
    return {
        "gen_ai.usage.input_tokens": response.usage.input_tokens,
        "gen_ai.usage.output_tokens": response.usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": cached,
        "gen_ai.usage.cache_creation.input_tokens": cache_write,
        "gen_ai.usage.reasoning.output_tokens": reasoning,
    }


def test_responses_create(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    response = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        instructions="Be brief.",
        temperature=0.5,
        top_p=0.75,
        max_output_tokens=100,
        previous_response_id="resp_previous",
        reasoning={"effort": "medium"},
        text={"format": {"type": "json_object"}},
        extra_headers=scenario("cached=5,reasoning=3"),
    )

    assert response.usage.input_tokens == 14
    span = otel.span()
    assert_chat_span(span)
    assert dict(span.attributes) == {
        **responses_base(fake),
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.75,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.previous_response.id": "resp_previous",
        "gen_ai.request.reasoning.level": "medium",
        "gen_ai.output.type": "json",
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "openai.response.service_tier": "default",
        **responses_usage(response, cached=5, reasoning=3),
    }


def test_responses_tool_call(otel: Any, instrument: Any, client: Any, fake: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use Celsius."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        instructions="Answer in one line.",
        tools=[RESPONSES_WEATHER_TOOL],
        extra_headers=scenario("tool"),
    )

    span = otel.span()
    call = response.output[0]
    assert call.type == "function_call"
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": call.call_id,
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]
    # Input items with the system and developer roles are part of the conversation: they stay in the
    # input messages; `instructions=`, passed apart, are gen_ai.system_instructions.
    assert content(span, semconv.INPUT_MESSAGES) == [
        SYSTEM_MESSAGE,
        {"role": "developer", "parts": [{"type": "text", "content": "Use Celsius."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    assert content(span, semconv.SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Answer in one line."}]
    assert content(span, semconv.TOOL_DEFINITIONS) == TOOL_DEFINITIONS
    attributes = {k: v for k, v in span.attributes.items() if k not in CONTENT_KEYS}
    assert attributes == {
        **responses_base(fake),
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("tool_call",),
        "openai.response.service_tier": "default",
        "llmlens.response.tool_call_count": 1,
        **responses_usage(response),
    }


def _responses_stream_attributes(fake: Any, response: Any, chunks: int) -> dict[str, Any]:
    return {
        **responses_base(fake),
        "gen_ai.request.stream": True,
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "openai.response.service_tier": "default",
        **responses_usage(response, cached=2),
        "llmlens.stream.chunk_count": chunks,
        "llmlens.stream.outcome": "completed",
    }


def test_responses_create_stream(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    events = list(
        client.responses.create(
            model=MODEL, input="Hi", stream=True, extra_headers=scenario("chunks=5,cached=2")
        )
    )

    assert events[-1].type == "response.completed"
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == 5
    span = otel.span()
    assert_chat_span(span)
    assert stream_attributes(span) == _responses_stream_attributes(fake, events[-1].response, 5)


def test_responses_stream_helper(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    with client.responses.stream(
        model=MODEL, input="Hi", extra_headers=scenario("chunks=5,cached=2")
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()

    span = otel.span()
    assert_chat_span(span)
    assert stream_attributes(span) == _responses_stream_attributes(fake, final, 5)


@pytest.mark.asyncio
async def test_async_responses_stream_helper(
    otel: Any, instrumented: Any, async_client: Any, fake: Any
) -> None:
    async with async_client.responses.stream(
        model=MODEL, input="Hi", extra_headers=scenario("chunks=5,cached=2")
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()

    assert stream_attributes(otel.span()) == _responses_stream_attributes(fake, final, 5)


def test_responses_streamed_tool_call(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    events = list(
        client.responses.create(
            model=MODEL,
            input="Hi",
            tools=[RESPONSES_WEATHER_TOOL],
            stream=True,
            extra_headers=scenario("tool"),
        )
    )

    response = events[-1].response
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) >= 3
    assert stream_attributes(otel.span()) == {
        **responses_base(fake),
        "gen_ai.request.stream": True,
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("tool_call",),
        "openai.response.service_tier": "default",
        **responses_usage(response),
        "llmlens.response.tool_call_count": 1,
        "llmlens.stream.chunk_count": len(deltas),
        "llmlens.stream.outcome": "completed",
    }


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")]
)
def test_responses_incomplete(
    otel: Any, instrument: Any, client: Any, fake: Any, reason: str, finish: str
) -> None:
    instrument(capture_content="SPAN_ONLY")
    response = client.responses.create(
        model=MODEL, input="Hi", max_output_tokens=3, extra_headers=scenario(f"incomplete={reason},chunks=3")
    )

    assert response.status == "incomplete"
    span = otel.span()
    assert_chat_span(span)  # an answer cut short is still an answer, not an error
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello from the"}],
            "finish_reason": finish,
        }
    ]
    assert {k: v for k, v in span.attributes.items() if k not in CONTENT_KEYS} == {
        **responses_base(fake),
        "gen_ai.request.max_tokens": 3,
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": (finish,),
        "openai.response.service_tier": "default",
        **responses_usage(response),
    }


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")]
)
def test_responses_incomplete_stream(
    otel: Any, instrumented: Any, client: Any, fake: Any, reason: str, finish: str
) -> None:
    events = list(
        client.responses.create(
            model=MODEL, input="Hi", stream=True, extra_headers=scenario(f"incomplete={reason},chunks=4")
        )
    )

    final = events[-1]
    assert final.type == "response.incomplete"
    span = otel.span()
    assert_chat_span(span)
    assert stream_attributes(span) == {
        **responses_base(fake),
        "gen_ai.request.stream": True,
        "gen_ai.response.id": final.response.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": (finish,),
        "openai.response.service_tier": "default",
        **responses_usage(final.response),
        "llmlens.stream.chunk_count": 4,
        "llmlens.stream.outcome": "completed",  # the stream was read to its end
    }


@pytest.mark.asyncio
async def test_async_responses_stream_helper_incomplete(
    otel: Any, instrumented: Any, async_client: Any
) -> None:
    async with async_client.responses.stream(
        model=MODEL, input="Hi", extra_headers=scenario("incomplete=content_filter")
    ) as stream:
        types = [event.type async for event in stream]
        # The SDK only hands out a final response for response.completed.
        with pytest.raises(RuntimeError):
            await stream.get_final_response()

    assert types[-1] == "response.incomplete"
    span = otel.span()
    assert span.attributes["gen_ai.response.finish_reasons"] == ("content_filter",)
    assert span.attributes["llmlens.stream.outcome"] == "completed"


def test_responses_cache_write_tokens(otel: Any, instrumented: Any, client: Any) -> None:
    """`input_tokens_details.cache_write_tokens` -> gen_ai.usage.cache_creation.input_tokens."""
    response = client.responses.create(
        model=MODEL, input="Hi", extra_headers=scenario("cached=40,cache_write=8")
    )
    assert response.usage.input_tokens_details.cache_write_tokens == 8
    attributes = otel.span().attributes
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 40
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 8


# -------------------------------------------------------------------------------- legacy completions

INSTRUCT_MODEL = "gpt-3.5-turbo-instruct"
COMPLETION_SPAN = f"text_completion {INSTRUCT_MODEL}"


def completions_base(fake: FakeProvider, **extra: Any) -> dict[str, Any]:
    # No openai.api.type: the OpenAI conventions define it for chat_completions and responses only.
    return base(fake, INSTRUCT_MODEL, "text_completion", **extra)


def test_completion_span(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    completion = client.completions.create(
        model=INSTRUCT_MODEL,
        prompt="Say this is a test",
        temperature=0.5,
        top_p=0.875,
        max_tokens=32,
        stop=["\n"],
        seed=3,
        frequency_penalty=0.25,
        presence_penalty=-0.25,
    )

    assert completion.choices[0].text == ANSWER
    span = otel.span()
    assert_chat_span(span, name=COMPLETION_SPAN)
    assert dict(span.attributes) == {
        **completions_base(fake),
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 0.875,
        "gen_ai.request.max_tokens": 32,
        "gen_ai.request.stop_sequences": ("\n",),
        "gen_ai.request.seed": 3,
        "gen_ai.request.frequency_penalty": 0.25,
        "gen_ai.request.presence_penalty": -0.25,
        "gen_ai.response.id": completion.id,
        "gen_ai.response.model": INSTRUCT_MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "openai.response.system_fingerprint": "fp_fake",
        # No token details in a legacy completion's usage: no cached/reasoning attributes.
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.usage.output_tokens": 8,
    }
    metrics = otel.metrics()
    (duration,) = metrics[semconv.METRIC_OPERATION_DURATION]
    common = {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "openai_compatible",
        "gen_ai.request.model": INSTRUCT_MODEL,
        "gen_ai.response.model": INSTRUCT_MODEL,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
    }
    assert dict(duration.attributes) == common
    tokens = {p.attributes["gen_ai.token.type"]: p for p in metrics[semconv.METRIC_TOKEN_USAGE]}
    assert {k: (p.count, p.sum) for k, p in tokens.items()} == {"input": (1, 5), "output": (1, 8)}
    assert dict(tokens["input"].attributes) == {**common, "gen_ai.token.type": "input"}


COMPLETION_FINISHES: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    ("max_tokens", {"max_tokens": 3}, "", ("length",)),
    ("n_and_prompt_list", {"prompt": ["one", "two"], "n": 2}, "", ("stop",) * 4),
    ("content_filter", {}, "finish=content_filter", ("content_filter",)),
    ("unknown_reason", {}, "finish=weird_reason", ("weird_reason",)),
]


@pytest.mark.parametrize(
    ("params", "value", "expected"),
    [case[1:] for case in COMPLETION_FINISHES],
    ids=[case[0] for case in COMPLETION_FINISHES],
)
def test_completion_finish_reasons(
    otel: Any, instrumented: Any, client: Any, params: dict[str, Any], value: str, expected: tuple[str, ...]
) -> None:
    call = {"model": INSTRUCT_MODEL, "prompt": "Hi", **params}
    completion = client.completions.create(**call, extra_headers=scenario(value))

    assert tuple(c.finish_reason for c in completion.choices) == expected
    assert otel.span().attributes["gen_ai.response.finish_reasons"] == expected


def test_completion_cached_and_reasoning_tokens(otel: Any, instrumented: Any, client: Any) -> None:
    completion = client.completions.create(
        model=INSTRUCT_MODEL, prompt="Hi", extra_headers=scenario("cached=16,reasoning=4,cache_write=2")
    )

    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (18, 12)
    assert usage_attributes(otel.span().attributes) == {
        "gen_ai.usage.input_tokens": 18,
        "gen_ai.usage.output_tokens": 12,
        "gen_ai.usage.cache_read.input_tokens": 16,
        "gen_ai.usage.cache_creation.input_tokens": 2,
        "gen_ai.usage.reasoning.output_tokens": 4,
    }


@pytest.mark.asyncio
async def test_async_completion(otel: Any, instrumented: Any, async_client: Any, fake: Any) -> None:
    completion = await async_client.completions.create(model=INSTRUCT_MODEL, prompt="Hi", max_tokens=2)

    span = otel.span()
    assert_chat_span(span, name=COMPLETION_SPAN)
    assert dict(span.attributes) == {
        **completions_base(fake),
        "gen_ai.request.max_tokens": 2,
        "gen_ai.response.id": completion.id,
        "gen_ai.response.model": INSTRUCT_MODEL,
        "gen_ai.response.finish_reasons": ("length",),
        "openai.response.system_fingerprint": "fp_fake",
        "gen_ai.usage.input_tokens": 1,
        "gen_ai.usage.output_tokens": 2,
    }


def test_completion_content(otel: Any, instrument: Any, client: Any, fake: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    client.completions.create(model=INSTRUCT_MODEL, prompt=["Say hi", "Say bye"], max_tokens=2)

    span = otel.span()
    assert content(span, semconv.INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hi"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say bye"}]},
    ]
    answer = {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Hello from"}],
        "finish_reason": "length",
    }
    assert content(span, semconv.OUTPUT_MESSAGES) == [answer, answer]


def test_completion_error(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    with pytest.raises(openai.RateLimitError) as error:
        client.completions.create(model=INSTRUCT_MODEL, prompt="Hi", extra_headers=scenario("status=429"))

    _check_error_span(
        otel,
        error.value,
        {**completions_base(fake), "error.type": "openai.RateLimitError", "http.response.status_code": 429},
        name=COMPLETION_SPAN,
    )


def _completion_stream_call(client: Any, include_usage: bool, value: str = "chunks=3") -> list[Any]:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.completions.create(
        model=INSTRUCT_MODEL, prompt="Hi", n=2, stream=True, **options, extra_headers=scenario(value)
    )
    return list(stream)


@pytest.mark.parametrize("include_usage", [True, False], ids=["include_usage", "no_usage_chunk"])
def test_completion_stream(otel: Any, instrumented: Any, client: Any, fake: Any, include_usage: bool) -> None:
    chunks = _completion_stream_call(client, include_usage)

    output_chunks = [c for c in chunks if c.choices]
    assert len(output_chunks) == 2 * (3 + 1)  # 3 words and a finish chunk per choice
    span = otel.span()
    assert_chat_span(span, name=COMPLETION_SPAN)
    attributes = stream_attributes(span)
    expected = {
        **completions_base(fake),
        "gen_ai.request.choice.count": 2,
        "gen_ai.request.stream": True,
        "gen_ai.response.id": chunks[0].id,
        "gen_ai.response.model": INSTRUCT_MODEL,
        "gen_ai.response.finish_reasons": ("stop", "stop"),
        "openai.response.system_fingerprint": "fp_fake",
        "llmlens.stream.chunk_count": len(output_chunks),
        "llmlens.stream.outcome": "completed",
    }
    if include_usage:
        expected.update({"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 6})
    assert attributes == expected
    metrics = otel.metrics()
    (gaps,) = metrics[semconv.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert gaps.count == len(output_chunks) - 1
    assert gaps.attributes["gen_ai.operation.name"] == "text_completion"
    tokens = metrics.get(semconv.METRIC_TOKEN_USAGE, [])
    assert {p.attributes["gen_ai.token.type"]: p.sum for p in tokens} == (
        {"input": 1, "output": 6} if include_usage else {}
    )


@pytest.mark.asyncio
async def test_async_completion_stream(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.completions.create(
        model=INSTRUCT_MODEL,
        prompt="Hi",
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=4,
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the fake"
    attributes = stream_attributes(otel.span())
    assert attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert attributes["llmlens.stream.chunk_count"] == 5
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (1, 4)


def test_completion_stream_content(otel: Any, instrument: Any, client: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    _completion_stream_call(client, include_usage=False)
    answer = {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Hello from the"}],
        "finish_reason": "stop",
    }
    assert content(otel.span(), semconv.OUTPUT_MESSAGES) == [answer, answer]


def test_completion_stream_without_finish_reason(otel: Any, instrumented: Any, client: Any) -> None:
    # As for chat streams: a choice whose finish_reason never came gets `error`.
    _completion_stream_call(client, include_usage=False, value="none_fields")
    attributes = otel.span().attributes
    assert attributes["gen_ai.response.finish_reasons"] == ("error", "error")
    assert "openai.response.system_fingerprint" not in attributes  # null in every chunk


def test_completion_token_array_prompt_content(otel: Any, instrument: Any, client: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    client.completions.create(model=INSTRUCT_MODEL, prompt=[9906, 1917])
    (message,) = content(otel.span(), semconv.INPUT_MESSAGES)  # one prompt, not one per token
    assert message["role"] == "user"


# ---------------------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_embeddings(otel: Any, instrumented: Any, client: Any, fake: Any, encoding_format: str) -> None:
    result = client.embeddings.create(
        model=EMBEDDING_MODEL, input="hello embeddings world", encoding_format=encoding_format, dimensions=4
    )

    vector = result.data[0].embedding
    if encoding_format == "base64":
        assert isinstance(vector, str)
        assert len(base64.b64decode(vector)) == 4 * 4
    else:
        assert len(vector) == 4
    span = otel.span()
    assert_chat_span(span, name=f"embeddings {EMBEDDING_MODEL}")
    assert dict(span.attributes) == {
        **base(fake, EMBEDDING_MODEL, "embeddings"),
        "gen_ai.request.encoding_formats": (encoding_format,),
        "gen_ai.response.model": EMBEDDING_MODEL,
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.embeddings.dimension.count": 4,
    }
    tokens = metric_points(otel, semconv.METRIC_TOKEN_USAGE)
    assert [(p.attributes["gen_ai.token.type"], p.sum) for p in tokens] == [("input", 3)]


@pytest.mark.asyncio
async def test_async_embeddings_base64_default_dimensions(
    otel: Any, instrumented: Any, async_client: Any, fake: Any
) -> None:
    await async_client.embeddings.create(model=EMBEDDING_MODEL, input=["a b", "c"], encoding_format="base64")

    assert dict(otel.span().attributes) == {
        **base(fake, EMBEDDING_MODEL, "embeddings"),
        "gen_ai.request.encoding_formats": ("base64",),
        "gen_ai.response.model": EMBEDDING_MODEL,
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.embeddings.dimension.count": 8,
    }


# -------------------------------------------------------------------------------------------- errors


ERRORS = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (404, openai.NotFoundError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
]


def _check_error_span(
    otel: Any, error: BaseException, expected: dict[str, Any], name: str = f"chat {MODEL}"
) -> None:
    span = otel.span()
    assert_chat_span(span, StatusCode.ERROR, name=name)
    assert span.status.description == str(error)
    assert dict(span.attributes) == expected
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"].endswith(type(error).__name__)
    assert event.attributes["exception.message"] == str(error)


@pytest.mark.parametrize(("status", "error_class"), ERRORS, ids=[str(s) for s, _ in ERRORS])
def test_http_errors(
    otel: Any, instrument: Any, client: Any, fake: Any, status: int, error_class: type[Exception]
) -> None:
    call = {"model": MODEL, "messages": MESSAGES, "extra_headers": scenario(f"status={status}")}
    with pytest.raises(openai.APIStatusError) as uninstrumented:
        client.chat.completions.create(**call)
    instrument()
    with pytest.raises(openai.APIStatusError) as instrumented:
        client.chat.completions.create(**call)

    assert type(instrumented.value) is type(uninstrumented.value) is error_class
    assert instrumented.value.status_code == status
    _check_error_span(
        otel,
        instrumented.value,
        {
            **chat_base(fake),
            "error.type": f"openai.{error_class.__name__}",
            "http.response.status_code": status,
        },
    )


@pytest.mark.asyncio
async def test_async_http_error(otel: Any, instrumented: Any, async_client: Any, fake: Any) -> None:
    with pytest.raises(openai.RateLimitError) as error:
        await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers=scenario("status=429")
        )
    _check_error_span(
        otel,
        error.value,
        {**chat_base(fake), "error.type": "openai.RateLimitError", "http.response.status_code": 429},
    )


def test_timeout(otel: Any, instrument: Any, fake: Any) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0, timeout=0.2)
    call = {"model": MODEL, "messages": MESSAGES, "extra_headers": scenario("delay_ms=600")}
    with pytest.raises(openai.APIConnectionError) as uninstrumented:
        client.chat.completions.create(**call)
    instrument()
    with pytest.raises(openai.APIConnectionError) as instrumented:
        client.chat.completions.create(**call)

    assert type(instrumented.value) is type(uninstrumented.value) is openai.APITimeoutError
    _check_error_span(otel, instrumented.value, {**chat_base(fake), "error.type": "openai.APITimeoutError"})


def test_connection_error(otel: Any, instrument: Any, fake: Any, closed_port: int) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=0)
    with pytest.raises(openai.APIError) as uninstrumented:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    instrument()
    with pytest.raises(openai.APIError) as instrumented:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert type(instrumented.value) is type(uninstrumented.value) is openai.APIConnectionError
    _check_error_span(
        otel,
        instrumented.value,
        {**chat_base(fake), "server.port": closed_port, "error.type": "openai.APIConnectionError"},
    )


def test_retries_are_one_span(otel: Any, instrumented: Any, fake: Any, monkeypatch: Any) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=2)
    monkeypatch.setattr(client, "_calculate_retry_timeout", lambda *args, **kwargs: 0.0)  # no back-off sleeps
    fake.clear()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=scenario("status=500"))

    assert len(fake.requests) == 3
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes) == {
        **chat_base(fake),
        "error.type": "openai.InternalServerError",
        "http.response.status_code": 500,
    }
    assert len(metric_points(otel, semconv.METRIC_OPERATION_DURATION)) == 1


@pytest.mark.asyncio
async def test_async_connection_error(otel: Any, instrumented: Any, closed_port: int) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=0
    )
    with pytest.raises(openai.APIConnectionError):
        await client.embeddings.create(model=EMBEDDING_MODEL, input="x")
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "openai.APIConnectionError"


# ------------------------------------------------------------------- with_raw_response / streaming


def test_with_raw_response(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)

    span = otel.span()  # complete before the user parses
    assert raw.headers["x-request-id"].startswith("req_fake")
    completion = raw.parse()
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.choices[0].message.content == ANSWER
    assert_chat_span(span)
    assert dict(span.attributes) == {**chat_base(fake), **chat_response(completion)}
    assert len(otel.spans()) == 1


@pytest.mark.asyncio
async def test_async_with_raw_response(otel: Any, instrumented: Any, async_client: Any, fake: Any) -> None:
    raw = await async_client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)

    span = otel.span()
    completion = raw.parse()
    assert dict(span.attributes) == {**chat_base(fake), **chat_response(completion)}


def test_with_raw_response_stream(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, stream=True)
    assert otel.spans() == []
    chunks = list(raw.parse())

    span = otel.span()
    assert_chat_span(span)
    assert stream_attributes(span) == {
        **chat_base(fake),
        "gen_ai.request.stream": True,
        "gen_ai.response.id": chunks[0].id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "openai.response.service_tier": "default",
        "openai.response.system_fingerprint": "fp_fake",
        "llmlens.stream.chunk_count": len(chunks),
        "llmlens.stream.outcome": "completed",
    }


def test_with_streaming_response_parse(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES) as response:
        assert response.headers["x-request-id"].startswith("req_fake")
        completion = response.parse()
        span = otel.span()  # ended by parse(), not by the exit

    assert completion.choices[0].message.content == ANSWER
    assert_chat_span(span)
    assert dict(span.attributes) == {**chat_base(fake), **chat_response(completion)}
    assert len(otel.spans()) == 1


@pytest.mark.asyncio
async def test_async_with_streaming_response_parse(
    otel: Any, instrumented: Any, async_client: Any, fake: Any
) -> None:
    async with async_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES
    ) as response:
        completion = await response.parse()

    span = otel.span()
    assert_chat_span(span)
    assert dict(span.attributes) == {**chat_base(fake), **chat_response(completion)}


def test_with_streaming_response_exit_without_parse(
    otel: Any, instrumented: Any, client: Any, fake: Any
) -> None:
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES) as response:
        assert response.status_code == 200
        assert otel.spans() == []

    span = otel.span()
    assert_chat_span(span, StatusCode.UNSET)
    assert dict(span.attributes) == chat_base(fake)
    # The duration is still recorded, without tokens.
    assert len(metric_points(otel, semconv.METRIC_OPERATION_DURATION)) == 1
    assert metric_points(otel, semconv.METRIC_TOKEN_USAGE) == []


@pytest.mark.asyncio
async def test_async_with_streaming_response_exit_without_parse(
    otel: Any, instrumented: Any, async_client: Any, fake: Any
) -> None:
    async with async_client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES):
        pass

    span = otel.span()
    assert_chat_span(span, StatusCode.UNSET)
    assert dict(span.attributes) == chat_base(fake)


# -------------------------------------------------------------------------- malformed / odd responses


def _chat_call(client: Any, value: str, stream: bool) -> Any:
    """The user's view of one call: a model_dump(), or the list of chunk dumps of a stream."""
    if stream:
        chunks = client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=scenario(value),
        )
        return [chunk.model_dump() for chunk in chunks]
    return client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario(value)
    ).model_dump()


ID = "<the response id>"
_RESPONSE = {"gen_ai.response.id": ID, "gen_ai.response.model": MODEL}
_TIER = {"openai.response.service_tier": "default", "openai.response.system_fingerprint": "fp_fake"}
_TOKENS = {"gen_ai.usage.input_tokens": PROMPT_TOKENS, "gen_ai.usage.output_tokens": 8}
_DETAILS = {"gen_ai.usage.cache_read.input_tokens": 0, "gen_ai.usage.reasoning.output_tokens": 0}
_STREAM = {"gen_ai.request.stream": True, "llmlens.stream.outcome": "completed"}
_STOP = {"gen_ai.response.finish_reasons": ("stop",)}
_WEIRD = {"gen_ai.response.finish_reasons": ("weird_reason",)}
# A stream whose finish_reason never came: `error`, as for a null finish_reason in a non-streamed reply.
_NO_REASON = {"gen_ai.response.finish_reasons": ("error",)}
ODD: list[tuple[str, bool, dict[str, Any]]] = [
    ("no_usage", False, {**_RESPONSE, **_TIER, **_STOP}),
    ("none_fields", False, {**_RESPONSE, **_STOP, **_TOKENS}),
    ("finish=weird_reason", False, {**_RESPONSE, **_TIER, **_WEIRD, **_TOKENS, **_DETAILS}),
    ("no_usage", True, {**_STREAM, **_RESPONSE, **_TIER, **_STOP}),
    ("none_fields", True, {**_STREAM, **_RESPONSE, **_NO_REASON, **_TOKENS}),
    ("finish=weird_reason", True, {**_STREAM, **_RESPONSE, **_TIER, **_WEIRD, **_TOKENS, **_DETAILS}),
    ("empty_stream", True, _STREAM),
]


@pytest.mark.parametrize(
    ("value", "stream", "expected"), ODD, ids=[f"{v}-{'stream' if s else 'unary'}" for v, s, _ in ODD]
)
def test_odd_responses_reach_the_user_unchanged(
    otel: Any, instrument: Any, client: Any, fake: Any, value: str, stream: bool, expected: dict[str, Any]
) -> None:
    plain_result = _chat_call(client, value, stream)
    instrument()
    traced_result = _chat_call(client, value, stream)

    assert normalise(traced_result) == normalise(plain_result)
    span = otel.span()
    assert span.status.status_code is StatusCode.OK
    expected = {**chat_base(fake), **expected}
    if stream:
        output_chunks = [chunk for chunk in traced_result if chunk["choices"]]
        expected["llmlens.stream.chunk_count"] = len(output_chunks)
        if ID in expected.values():
            expected["gen_ai.response.id"] = output_chunks[0]["id"]
        attributes = stream_attributes(span) if output_chunks else dict(span.attributes)
    else:
        expected["gen_ai.response.id"] = traced_result["id"]
        attributes = dict(span.attributes)
    assert attributes == expected


def test_stream_without_finish_reason_same_attributes_with_and_without_content(
    otel: Any, instrument: Any, client: Any
) -> None:
    """Capturing content must not change any other attribute (here: the missing finish reason)."""
    ignored = {*CONTENT_KEYS, semconv.RESPONSE_ID, semconv.RESPONSE_TIME_TO_FIRST_CHUNK}
    found = []
    for capture in (None, "SPAN_ONLY"):
        instrumentor = instrument(capture_content=capture)
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("none_fields")
        )
        list(stream)
        instrumentor.uninstrument()
        span = otel.spans()[-1]
        found.append({k: v for k, v in span.attributes.items() if k not in ignored})
    assert found[0] == found[1]


def test_empty_responses_stream(otel: Any, instrumented: Any, client: Any, fake: Any) -> None:
    events = list(
        client.responses.create(model=MODEL, input="Hi", stream=True, extra_headers=scenario("empty_stream"))
    )

    assert events == []
    span = otel.span()
    assert dict(span.attributes) == {
        **responses_base(fake),
        "gen_ai.request.stream": True,
        "llmlens.stream.chunk_count": 0,
        "llmlens.stream.outcome": "completed",
    }


# ------------------------------------------------------------------------------------ content capture


def test_no_content_by_default(otel: Any, instrumented: Any, client: Any) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL])

    assert not CONTENT_KEYS & set(otel.span().attributes)
    assert otel.logs() == []


def test_span_only_content(otel: Any, instrument: Any, client: Any, fake: Any) -> None:
    instrument(capture_content="SPAN_ONLY")
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert dict(otel.span().attributes) == {
        **chat_base(fake),
        **chat_response(completion),
        "gen_ai.input.messages": (
            '[{"role":"system","parts":[{"type":"text","content":"Be brief."}]},'
            '{"role":"user","parts":[{"type":"text","content":"What is the weather in Paris?"}]}]'
        ),
        "gen_ai.output.messages": (
            f'[{{"role":"assistant","parts":[{{"type":"text","content":"{ANSWER}"}}],"finish_reason":"stop"}}]'
        ),
    }
    assert otel.logs() == []


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "SPAN_AND_EVENT"])
def test_event_content(otel: Any, instrument: Any, client: Any, fake: Any, mode: str) -> None:
    instrument(capture_content=mode)
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL])

    span = otel.span()
    on_span = CONTENT_KEYS & set(span.attributes)
    chat_content = CONTENT_KEYS - {semconv.SYSTEM_INSTRUCTIONS}  # the system message is an input message
    assert on_span == (chat_content if mode == "SPAN_AND_EVENT" else set())
    (log,) = otel.logs()
    record = log.log_record
    assert record.event_name == semconv.EVENT_OPERATION_DETAILS
    assert record.trace_id == span.context.trace_id
    assert record.span_id == span.context.span_id
    attributes = dict(record.attributes)
    messages = {key: attributes.pop(key) for key in chat_content}
    for value in messages.values():
        assert not isinstance(value, str)  # structured, not JSON text
    assert plain(messages) == {
        semconv.INPUT_MESSAGES: [
            SYSTEM_MESSAGE,
            {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
        ],
        semconv.TOOL_DEFINITIONS: TOOL_DEFINITIONS,
        semconv.OUTPUT_MESSAGES: [
            {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
        ],
    }
    # Besides the content, the event carries the span's other attributes.
    assert plain(attributes) == plain({k: v for k, v in span.attributes.items() if k not in CONTENT_KEYS})
    assert attributes["gen_ai.response.id"] == completion.id


def test_event_without_content(otel: Any, instrument: Any, client: Any) -> None:
    instrument(emit_event=True)
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    (log,) = otel.logs()
    assert log.log_record.event_name == semconv.EVENT_OPERATION_DETAILS
    assert not CONTENT_KEYS & set(log.log_record.attributes)
    assert not CONTENT_KEYS & set(otel.span().attributes)


def test_content_max_length(otel: Any, instrument: Any, client: Any) -> None:
    instrument(capture_content="SPAN_ONLY", content_max_length=10)
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    span = otel.span()

    def cut(text: str) -> str:
        return text[:10] + TRUNCATION_MARKER.format(dropped=len(text) - 10)

    assert content(span, semconv.INPUT_MESSAGES) == [
        SYSTEM_MESSAGE,  # 9 characters: kept whole
        {"role": "user", "parts": [{"type": "text", "content": cut("What is the weather in Paris?")}]},
    ]
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": cut(ANSWER)}], "finish_reason": "stop"}
    ]
    assert cut(ANSWER) == "Hello from…[llmlens: 45 more characters]"


def test_inline_image_is_elided(otel: Any, instrument: Any, client: Any) -> None:
    instrument(capture_content="SPAN_AND_EVENT")
    data = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode()
    url = f"data:image/png;base64,{data}"
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )

    span = otel.span()
    assert content(span, semconv.INPUT_MESSAGES) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is in this image?"},
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": "image/png",
                    "content": f"[llmlens: {len(data) * 3 // 4} bytes of base64 data elided]",
                },
                {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
            ],
        }
    ]
    exported = json.dumps([plain(dict(span.attributes)), plain(dict(otel.logs()[0].log_record.attributes))])
    assert data[:40] not in exported
    assert "base64," not in exported


# ---------------------------------------------------------------------------- BaseInstrumentor rules


@pytest.fixture
def original_request_methods() -> Iterator[tuple[Any, Any]]:
    from openai._base_client import AsyncAPIClient, SyncAPIClient

    yield SyncAPIClient.__dict__["request"], AsyncAPIClient.__dict__["request"]


@pytest.mark.asyncio
async def test_instrument_twice_then_uninstrument(
    otel: Any, instrument: Any, client: Any, async_client: Any, original_request_methods: tuple[Any, Any]
) -> None:
    from openai._base_client import AsyncAPIClient, SyncAPIClient

    sync_original, async_original = original_request_methods
    assert not hasattr(sync_original, "__wrapped__")
    instrumentor = instrument()
    instrument(capture_content="SPAN_ONLY")  # a no-op: already instrumented
    assert SyncAPIClient.__dict__["request"] is not sync_original

    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    spans = otel.spans()
    assert len(spans) == 2
    assert not CONTENT_KEYS & set(spans[0].attributes)  # the second instrument() changed nothing

    instrumentor.uninstrument()
    assert SyncAPIClient.__dict__["request"] is sync_original
    assert AsyncAPIClient.__dict__["request"] is async_original
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES) as response:
        response.parse()
    assert len(otel.spans()) == 2

    instrument()  # and back again
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(otel.spans()) == 3


def test_suppressed(otel: Any, instrumented: Any, client: Any) -> None:
    with suppress_instrumentation():
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert completion.choices[0].message.content == ANSWER
    assert chunks
    assert otel.spans() == []
    assert otel.metrics() == {}


# ------------------------------------------------------------------------------------------ composition


def _check_http_child(otel: Any) -> None:
    spans = otel.spans()
    llm = [s for s in spans if s.instrumentation_scope.name == "llmlens"]
    http = [s for s in spans if s.instrumentation_scope.name != "llmlens"]
    assert len(llm) == 1, [s.name for s in spans]
    assert len(http) == 1, [s.name for s in spans]
    assert http[0].kind is SpanKind.CLIENT
    assert http[0].context.trace_id == llm[0].context.trace_id
    assert http[0].parent is not None
    assert http[0].parent.span_id == llm[0].context.span_id


@pytest.mark.asyncio
async def test_http_client_span_is_a_child(
    otel: Any, instrumented: Any, client: Any, async_client: Any
) -> None:
    # openai 3 sends through httpx2, openai 2 through httpx: HTTPX2ClientInstrumentor patches only httpx2,
    # HTTPXClientInstrumentor only httpx, so the instrumentor must match the SDK.
    httpx_instrumentor = http_client_instrumentor()
    httpx_instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
        _check_http_child(otel)
        otel.spans_exporter.clear()
        await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)
        _check_http_child(otel)
        otel.spans_exporter.clear()
        list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
        _check_http_child(otel)
    finally:
        httpx_instrumentor.uninstrument()


# ------------------------------------------------------------------ instrumentation errors stay ours


def _boom(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("injected instrumentation failure")


def test_failing_response_extraction(
    otel: Any, instrumented: Any, client: Any, fake: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(ChatCompletionsRoute, "response", _boom)
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == ANSWER
    span = otel.span()
    assert span.status.status_code is StatusCode.OK
    assert dict(span.attributes) == chat_base(fake)


def test_failing_request_extraction(otel: Any, instrumented: Any, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(ChatCompletionsRoute, "request", _boom)
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == ANSWER
    assert otel.spans() == []


@pytest.mark.asyncio
async def test_failing_stream_handlers(
    otel: Any, instrumented: Any, client: Any, async_client: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(ChatStreamAccumulator, "on_chunk", _boom)
    monkeypatch.setattr(ChatStreamAccumulator, "on_end", _boom)
    call = {"model": MODEL, "messages": MESSAGES, "stream": True, "extra_headers": scenario("chunks=4")}

    chunks = list(client.chat.completions.create(**call))
    async_chunks = [c async for c in await async_client.chat.completions.create(**call)]

    for result in (chunks, async_chunks):
        assert "".join(c.choices[0].delta.content or "" for c in result) == "Hello from the fake"
    spans = otel.spans()
    assert len(spans) == 2
    for span in spans:
        assert span.status.status_code is StatusCode.OK
        assert span.attributes["llmlens.stream.outcome"] == "completed"


def test_failing_responses_event_handler(otel: Any, instrumented: Any, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(ResponsesRoute, "response", _boom)
    with client.responses.stream(model=MODEL, input="Hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == ANSWER
    assert otel.span().status.status_code is StatusCode.OK


@pytest.mark.asyncio
async def test_failing_span_start(
    otel: Any, instrumented: Any, client: Any, async_client: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(Telemetry, "start", _boom)

    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    async_completion = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=scenario("status=429"))

    assert completion.choices[0].message.content == ANSWER
    assert async_completion.choices[0].message.content == ANSWER
    assert chunks
    assert otel.spans() == []
    assert otel.metrics() == {}


def test_failing_span_end(otel: Any, instrumented: Any, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(Telemetry, "response_attributes", _boom)
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    assert len(otel.spans()) == 1  # still ended, so never leaked


# ------------------------------------------------------------------------------------ nesting


def test_an_sdk_call_nested_in_another_llm_call_makes_no_second_span(
    otel: Any, instrumented: Any, client: Any
) -> None:
    from opentelemetry import context as otel_context

    from llmlens.core.context import ACTIVE_INVOCATION_KEY

    # What a wrapper SDK instrumented by llmlens looks like from inside: an invocation in flight.
    token = otel_context.attach(otel_context.set_value(ACTIVE_INVOCATION_KEY, object()))
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    finally:
        otel_context.detach(token)
    assert otel.spans() == []
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert len(otel.spans()) == 1


def test_an_sdk_call_for_a_proxied_request_is_its_upstream_leg(
    otel: Any, instrumented: Any, client: Any
) -> None:
    from opentelemetry import context as otel_context

    from llmlens.core.context import PROXY_REQUEST_KEY

    class ProxyRecord:  # what the proxy puts in the context (core.context.ProxyRequest)
        def __init__(self) -> None:
            self.upstreams: list[Any] = []

        def add_upstream(self, inv: Any) -> None:
            self.upstreams.append(inv)

    record = ProxyRecord()
    token = otel_context.attach(otel_context.set_value(PROXY_REQUEST_KEY, record))
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    finally:
        otel_context.detach(token)
    assert otel.span().attributes["llmlens.upstream"] is True
    assert [inv.request_model for inv in record.upstreams] == [MODEL]
    # Measured once, by the proxy's server side: no client metrics for the upstream leg.
    assert "gen_ai.client.operation.duration" not in otel.metrics()
