"""llmlens with the real `groq` SDK: the fake provider's OpenAI-compatible routes on loopback (the fake
serves Groq's `/openai/v1/...` paths like `/v1/...`), and recorded real Groq responses replayed on loopback.

The exit paths of groq streams (sync and async, `with_raw_response` with `r = r.parse()`, `async with`
and a break inside `asyncio.run`) are in the stream contract suite (tests/test_stream_contract.py, the
`groq-*` adapters of tests/stream_adapters.py); here, what a groq span carries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import groq
import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llmlens import semconv
from llmlens.demo.fake_server import FakeProvider
from replay_server import RECORDINGS, Recording, ReplayServer

MODEL = "llama-3.3-70b-versatile"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
PROMPT_TOKENS = 14  # the fake counts 3 per message plus the words: 2 * 3 + 2 + 6
ANSWER = "Hello from the fake provider. This deterministic answer"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
OPENAI_ONLY = ("openai.api.type", "openai.response.service_tier", "openai.response.system_fingerprint")


def scenario(value: str) -> dict[str, Any]:
    return {"extra_headers": {"x-fake-scenario": value}}


@pytest.fixture
def instrumented(instrument: Any) -> Any:
    return instrument(pricing=False)


@pytest.fixture
def client(fake: FakeProvider) -> groq.Groq:
    # The SDK's paths are /openai/v1/...: its base_url is the server root.
    return groq.Groq(api_key="gsk-test", base_url=f"http://{fake.host}:{fake.port}", max_retries=0)


@pytest.fixture
def async_client(fake: FakeProvider) -> groq.AsyncGroq:
    return groq.AsyncGroq(api_key="gsk-test", base_url=f"http://{fake.host}:{fake.port}", max_retries=0)


def base(fake: Any, **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "groq",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
        **extra,
    }


def answered(completion: Any, finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.response.id": completion.id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": (finish,),
        "gen_ai.usage.input_tokens": PROMPT_TOKENS,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        **extra,
    }


def test_chat(otel: Any, instrumented: Any, client: groq.Groq, fake: Any) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0.5, max_completion_tokens=64, seed=3, service_tier="flex"
    )

    assert completion.choices[0].message.content == ANSWER
    span = otel.span()
    assert (span.name, span.kind, span.status.status_code) == (
        f"chat {MODEL}",
        SpanKind.CLIENT,
        StatusCode.OK,
    )
    # The openai.* attributes belong to gen_ai.provider.name=openai: a Groq span has none.
    assert dict(span.attributes) == {
        **base(fake, **{"gen_ai.request.temperature": 0.5, "gen_ai.request.max_tokens": 64}),
        "gen_ai.request.seed": 3,
        **answered(completion),
    }


@pytest.mark.asyncio
async def test_async_chat_with_cached_tokens(
    otel: Any, instrumented: Any, async_client: Any, fake: Any
) -> None:
    completion = await async_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, **scenario("cached=6")
    )

    assert dict(otel.span().attributes) == {
        **base(fake),
        **answered(completion, **{"gen_ai.usage.cache_read.input_tokens": 6}),
    }


def test_tool_call(otel: Any, instrumented: Any, client: groq.Groq, fake: Any) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="required"
    )

    assert completion.choices[0].finish_reason == "tool_calls"
    attributes = dict(otel.span().attributes)
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert attributes["llmlens.response.tool_call_count"] == 1


def test_http_error(otel: Any, instrumented: Any, client: groq.Groq, fake: Any) -> None:
    with pytest.raises(groq.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, **scenario("status=429"))

    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes) == {
        **base(fake),
        "error.type": "groq.RateLimitError",
        "http.response.status_code": 429,
    }


def test_stream_full(otel: Any, instrumented: Any, client: groq.Groq, fake: Any) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            # The groq SDK has no stream_options parameter; the fake answers it like OpenAI.
            extra_body={"stream_options": {"include_usage": True}},
        )
    )

    attributes = dict(otel.span().attributes)
    ttfc = attributes.pop("gen_ai.response.time_to_first_chunk")
    assert ttfc > 0
    assert attributes == {
        **base(fake, **{"gen_ai.request.stream": True}),
        "gen_ai.response.id": chunks[0].id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": PROMPT_TOKENS,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "llmlens.stream.chunk_count": 10,  # role, 8 words, finish; the usage chunk has no choices
        "llmlens.stream.outcome": "completed",
    }


@pytest.mark.asyncio
async def test_async_stream_with_content(otel: Any, instrument: Any, async_client: Any) -> None:
    instrument(pricing=False, capture_content="SPAN_ONLY")
    stream = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    attributes = otel.span().attributes
    assert text == ANSWER
    # The system message is part of the chat history: an input message, not a system instruction.
    assert semconv.SYSTEM_INSTRUCTIONS not in attributes
    assert json.loads(attributes[semconv.INPUT_MESSAGES])[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "Be brief."}],
    }
    assert json.loads(attributes[semconv.OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ]


def test_embeddings(otel: Any, instrumented: Any, client: groq.Groq, fake: Any) -> None:
    client.embeddings.create(model="nomic-embed-text-v1_5", input="hello world")
    attributes = dict(otel.span().attributes)
    assert (attributes["gen_ai.operation.name"], attributes["gen_ai.provider.name"]) == ("embeddings", "groq")
    assert attributes["gen_ai.usage.input_tokens"] == 2


def test_reasoning_is_captured_as_a_reasoning_part(otel: Any, instrument: Any) -> None:
    """Groq's reasoning models return `message.reasoning` (`reasoning_format="parsed"`). The fake server has
    no such field, so a mock transport answers with that shape (as documented by Groq)."""
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "qwen/qwen3-32b",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
            "role": "assistant", "content": "42", "reasoning": "Six times seven."}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19,
                  "completion_tokens_details": {"reasoning_tokens": 5}},
    }  # fmt: skip
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    client = groq.Groq(api_key="k", http_client=httpx.Client(transport=transport))
    instrument(pricing=False, capture_content="SPAN_ONLY")

    client.chat.completions.create(model="qwen/qwen3-32b", messages=MESSAGES, reasoning_format="parsed")

    attributes = otel.span().attributes
    assert (attributes["server.address"], attributes["gen_ai.provider.name"]) == ("api.groq.com", "groq")
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 5
    assert json.loads(attributes[semconv.OUTPUT_MESSAGES])[0]["parts"] == [
        {"type": "reasoning", "content": "Six times seven."},
        {"type": "text", "content": "42"},
    ]


# ------------------------------------------------------------------- recorded real responses


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def test_recorded_chat(otel: Any, instrument: Any, replay: ReplayServer) -> None:
    rec = Recording.load("groq/chat")
    replay.use(rec)
    recorded = json.loads(rec.body)
    instrument(pricing=False)
    client = groq.Groq(api_key="k", base_url=f"http://127.0.0.1:{replay.port}", max_retries=0)

    completion = client.chat.completions.create(**rec.request_body)

    assert completion.id == recorded["id"]
    attributes = dict(otel.span().attributes)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "groq",
        "gen_ai.request.model": rec.request_body["model"],
        "server.address": "127.0.0.1",
        "server.port": replay.port,
        "gen_ai.response.id": recorded["id"],
        "gen_ai.response.model": recorded["model"],
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": recorded["usage"]["prompt_tokens"],
        "gen_ai.usage.output_tokens": recorded["usage"]["completion_tokens"],
    }


@pytest.mark.asyncio
async def test_recorded_stream_usage_comes_from_x_groq(
    otel: Any, instrument: Any, replay: ReplayServer
) -> None:
    rec = Recording.load("groq/chat_stream")
    replay.use(rec)
    payloads = [
        json.loads(line[len("data: ") :]) for line in rec.body.splitlines() if line.startswith("data: {")
    ]
    usage = payloads[-1]["x_groq"]["usage"]  # Groq's last chunk: usage in x_groq, no `usage` field
    assert "usage" not in payloads[-1]
    instrument(pricing=False)
    client = groq.AsyncGroq(api_key="k", base_url=f"http://127.0.0.1:{replay.port}", max_retries=0)
    body = {k: v for k, v in rec.request_body.items() if k != "stream"}

    chunks = [chunk async for chunk in await client.chat.completions.create(stream=True, **body)]

    assert len(chunks) == len(payloads)
    attributes = otel.span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["llmlens.stream.chunk_count"] == len(payloads)
    assert not set(OPENAI_ONLY) & set(attributes)
    assert sorted(path.stem for path in (RECORDINGS / "groq").glob("*.json")) == ["chat", "chat_stream"]


def test_with_raw_response(otel: Any, instrumented: Any, client: groq.Groq, fake: Any) -> None:
    # groq has no LegacyAPIResponse: with_raw_response returns an APIResponse with the body already read.
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)

    span = otel.span()  # ended before the caller parsed anything
    completion = raw.parse()
    assert dict(span.attributes) == {**base(fake), **answered(completion)}
