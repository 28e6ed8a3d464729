"""google-genai streams: what the stream contract (tests/test_stream_contract.py) does not check.

Every exit path of `generate_content_stream()` and `chats.send_message_stream()`, sync and async (read
to the end, by hand with next(), close or drop after a break, close or drop unread, which sends no
request and makes no span, a transport error, an error event in the stream, an HTTP error, task
cancellation), is in the contract suite (the `gemini*` adapters of tests/stream_adapters.py). Here:
automatic function calling (one span per model call of one stream), what a stream carries (reasoning
tokens, content capture) and that the user sees the same chunks. The real google-genai SDK against the
fake provider (Gemini wire format) on loopback, no mocks.
"""

from __future__ import annotations

import json
import time
import types as pytypes
from typing import Any

import pytest
from google import genai
from google.genai import types
from opentelemetry.trace import StatusCode

from llmlens.demo.fake_server import FakeProvider

MODEL = "gemini-2.5-flash"
SPAN_NAME = f"generate_content {MODEL}"
CONTENTS = "Say something"
PROMPT_TOKENS = 3  # the fake: 2 words + 1 per content
WORDS = 8

DURATION = "gen_ai.client.operation.duration"

pytestmark = pytest.mark.timeout(10)


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}"


def config(scenario: str = f"chunks={WORDS}", **fields: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-fake-scenario": scenario}), **fields
    )


def stream_kwargs(scenario: str = f"chunks={WORDS}", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "contents": CONTENTS, "config": config(scenario, **fields)}


@pytest.fixture
def client(fake: FakeProvider) -> genai.Client:
    return genai.Client(
        api_key="fake-key", http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{fake.port}")
    )


@pytest.fixture
def gemini(instrument: Any) -> Any:
    return instrument(pricing=False)


class Tally:
    """What a test's loop saw of a stream."""

    def __init__(self) -> None:
        self.chunks = 0
        self.text: list[str] = []
        self.usage: Any = None

    def see(self, chunk: Any) -> None:
        if chunk.candidates:
            self.chunks += 1
        if chunk.text:
            self.text.append(chunk.text)
        if chunk.usage_metadata is not None:
            self.usage = chunk.usage_metadata

    @property
    def tokens(self) -> tuple[int, int] | None:
        usage = self.usage
        if usage is None or usage.prompt_token_count is None:
            return None
        return usage.prompt_token_count, (usage.candidates_token_count or 0) + (
            usage.thoughts_token_count or 0
        )


def check_span(
    otel: Any,
    *,
    chunks: int,
    tokens: tuple[int, int] | None,
    finish: tuple[str, ...] = ("stop",),
    span: Any = None,
) -> Any:
    """Assert one completed streamed model call (the one span, or the given one); returns the span."""
    span = span or otel.span()
    attrs = dict(span.attributes or {})
    assert span.name == SPAN_NAME
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["llmlens.stream.outcome"] == "completed"
    assert span.status.status_code is StatusCode.OK
    assert attrs["llmlens.stream.chunk_count"] == chunks
    assert attrs["gen_ai.response.finish_reasons"] == finish
    assert "error.type" not in attrs
    assert span.start_time <= span.end_time <= time.time_ns()
    if tokens is not None:
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == tokens
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] <= (span.end_time - span.start_time) / 1e9 + 1e-3
    assert attrs["gen_ai.response.id"].startswith("fakeGeminiResp")
    assert attrs["gen_ai.response.model"] == MODEL
    assert sum(p.count for p in otel.metrics()[DURATION]) == len(otel.spans())
    return span


# ========================================================================================== AFC streams


def test_automatic_function_calling_stream_makes_one_span_per_model_call(
    otel: Any, gemini: Any, client: genai.Client
) -> None:
    """The SDK streams the function call, runs get_weather, streams the answer: two spans, in order."""
    seen = Tally()
    for chunk in client.models.generate_content_stream(**stream_kwargs("tool", tools=[get_weather])):
        seen.see(chunk)

    first, second = otel.spans()
    # The call comes whole in one chunk, then an empty text part carries the finish reason.
    check_span(otel, span=first, chunks=2, tokens=(PROMPT_TOKENS, 4), finish=("tool_call",))
    assert first.attributes["llmlens.response.tool_call_count"] == 1
    check_span(otel, span=second, chunks=WORDS, tokens=seen.tokens, finish=("stop",))
    assert first.end_time <= second.start_time
    assert seen.chunks == 2 + WORDS


def test_automatic_function_calling_stream_closed_in_the_second_call(
    otel: Any, gemini: Any, client: genai.Client
) -> None:
    stream = client.models.generate_content_stream(
        **stream_kwargs("tool,chunk_delay_ms=5", tools=[get_weather])
    )
    for number, _ in enumerate(stream, 1):
        if number == 4:  # the call and its finish chunk, then two words of the answer
            break
    stream.close()
    first, second = otel.spans()
    assert first.attributes["llmlens.stream.outcome"] == "completed"
    assert second.attributes["llmlens.stream.outcome"] == "closed"
    assert second.attributes["llmlens.stream.chunk_count"] == 2


@pytest.mark.asyncio
async def test_async_automatic_function_calling_stream(otel: Any, gemini: Any, client: genai.Client) -> None:
    chunks = [
        c
        async for c in await client.aio.models.generate_content_stream(
            **stream_kwargs("tool", tools=[get_weather])
        )
    ]
    assert len(chunks) == 2 + WORDS
    first, second = otel.spans()
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)


# ============================================================================================ transparency


def _view(chunks: list[Any]) -> list[Any]:
    return [c.model_dump(exclude={"sdk_http_response", "response_id"}) for c in chunks]


def test_user_sees_identical_chunks_with_and_without_instrumentation(
    otel: Any, instrument: Any, client: genai.Client
) -> None:
    kwargs = stream_kwargs(
        "chunks=5,reasoning=3", thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    plain = _view(list(client.models.generate_content_stream(**kwargs)))
    assert otel.spans() == []
    instrument(pricing=False)
    stream = client.models.generate_content_stream(**kwargs)
    assert isinstance(stream, pytypes.GeneratorType)  # still a generator to the user
    traced = _view(list(stream))
    assert traced == plain
    span = check_span(otel, chunks=6, tokens=(PROMPT_TOKENS, 5 + 3))
    assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == 3


def test_stream_with_content_capture(otel: Any, instrument: Any, client: genai.Client) -> None:
    instrument(pricing=False, capture_content="SPAN_ONLY")
    list(client.models.generate_content_stream(**stream_kwargs("chunks=3,tool", tools=[get_weather])))
    first, second = otel.spans()
    assert json.loads(first.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert json.loads(second.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello from the"}],
            "finish_reason": "stop",
        }
    ]
