"""google-genai streaming: exactly one span per streamed model call on every exit path, sync and async.

The real google-genai SDK against the fake provider (Gemini wire format) on loopback, no mocks; the
structure follows tests/test_streams.py. What differs from the OpenAI SDK:

- `generate_content_stream()` returns a plain generator (the async one, after `await`, an async
  generator) that sends nothing until it is first read: closing it unread makes no request and no span.
- Gemini sends running token totals on every chunk, so a stream cut short still reports the usage of
  what was read (the OpenAI matrix has none there).
- The generator has no `with` block; `close()`/`aclose()` after a `break` is its equivalent.

| exit path                                   | outcome   | status | end time            |
|---------------------------------------------|-----------|--------|---------------------|
| read to the end                             | completed | OK     | the last read       |
| close()/aclose() after a break              | closed    | UNSET  | the close           |
| break, then garbage collection              | abandoned | UNSET  | the last chunk read |
| transport error / in-stream error event     | error     | ERROR  | the exception       |
| task cancelled while reading                | cancelled | UNSET  | the cancellation    |
| close()/aclose() or GC before any read      | no request, no span                  |
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import types as pytypes
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.trace import StatusCode

from llmlens.demo.fake_server import FakeProvider

MODEL = "gemini-2.5-flash"
SPAN_NAME = f"generate_content {MODEL}"
CONTENTS = "Say something"
PROMPT_TOKENS = 3  # the fake: 2 words + 1 per content
WORDS = 8
SLACK_NS = 100_000_000  # well under the 300 ms the abandoned-stream tests sleep

DURATION = "gen_ai.client.operation.duration"
TTFC = "gen_ai.client.operation.time_to_first_chunk"
TPOC = "gen_ai.client.operation.time_per_output_chunk"
TOKEN_USAGE = "gen_ai.client.token.usage"

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


def error_type(error: BaseException) -> str:
    """The public name llmlens records: the module path up to its first private part."""
    return f"{type(error).__module__.split('._')[0]}.{type(error).__qualname__}"


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
    outcome: str,
    chunks: int,
    tokens: tuple[int, int] | None,
    error: BaseException | None = None,
    finish: tuple[str, ...] = ("stop",),
    span: Any = None,
) -> Any:
    """Assert the one span (or the given one) and the metrics of a streamed call; returns the span."""
    span = span or otel.span()
    attrs = dict(span.attributes or {})
    assert span.name == SPAN_NAME
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["llmlens.stream.outcome"] == outcome
    assert attrs["llmlens.stream.chunk_count"] == chunks
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time <= span.end_time <= time.time_ns()

    if outcome == "completed":
        assert span.status.status_code is StatusCode.OK
        assert attrs["gen_ai.response.finish_reasons"] == finish
    else:
        assert attrs["gen_ai.response.finish_reasons"] == ("error",)
    if outcome == "error":
        assert error is not None
        assert span.status.status_code is StatusCode.ERROR
        assert attrs["error.type"] == error_type(error)
        (event,) = [e for e in span.events if e.name == "exception"]
        assert type(error).__name__ in str(event.attributes["exception.type"])
    else:
        assert error is None
        assert "error.type" not in attrs
        assert not [e for e in span.events if e.name == "exception"]
    if outcome in ("closed", "abandoned", "cancelled"):
        assert span.status.status_code is StatusCode.UNSET

    if tokens is None:
        assert "gen_ai.usage.input_tokens" not in attrs
    else:
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == tokens

    if chunks:
        ttfc = attrs["gen_ai.response.time_to_first_chunk"]
        assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9 + 1e-3
        assert attrs["gen_ai.response.id"].startswith("fakeGeminiResp")
        assert attrs["gen_ai.response.model"] == MODEL
    else:
        assert "gen_ai.response.time_to_first_chunk" not in attrs

    metrics = otel.metrics()
    duration = metrics[DURATION]
    assert sum(p.count for p in duration) == len(otel.spans())
    if len(otel.spans()) == 1:
        ttfc_points, tpoc_points = metrics.get(TTFC, []), metrics.get(TPOC, [])
        if chunks and outcome != "error":
            assert len(ttfc_points) == 1 and ttfc_points[0].count == 1
        else:
            assert sum(p.count for p in ttfc_points) == 0
        if outcome == "error" or chunks < 2:
            assert sum(p.count for p in tpoc_points) == 0
        else:
            assert len(tpoc_points) == 1 and tpoc_points[0].count == chunks - 1
        assert sum(p.count for p in metrics.get(TOKEN_USAGE, [])) == (2 if tokens else 0)
    return span


# ===================================================================================================== sync


def test_sync_full_consumption(otel: Any, gemini: Any, client: genai.Client) -> None:
    seen = Tally()
    for chunk in client.models.generate_content_stream(**stream_kwargs()):
        seen.see(chunk)
    after = time.time_ns()
    assert seen.chunks == WORDS and seen.tokens == (PROMPT_TOKENS, WORDS)
    span = check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)
    assert span.end_time <= after


def test_sync_manual_next_to_the_end(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = client.models.generate_content_stream(**stream_kwargs("chunks=3"))
    seen = Tally()
    for _ in range(3):
        seen.see(next(stream))
    assert otel.spans() == []  # the last chunk is read, but the request has not ended yet
    with pytest.raises(StopIteration):
        next(stream)
    check_span(otel, outcome="completed", chunks=3, tokens=seen.tokens)


def test_sync_break_then_gc(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = client.models.generate_content_stream(**stream_kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    seen = Tally()
    for chunk in stream:
        seen.see(chunk)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    time.sleep(0.3)
    assert otel.spans() == []  # nothing ends a stream that is merely not being read
    del stream, chunk
    gc.collect()
    # Gemini's running totals: the usage of the two chunks read.
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=(PROMPT_TOKENS, 2))
    # The end is the last chunk read (>= 20 ms after the first), not the garbage collection 300 ms later.
    assert span.end_time < t_after_break + SLACK_NS
    assert span.end_time - span.start_time >= 15_000_000


def test_sync_close_after_break(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = client.models.generate_content_stream(**stream_kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    seen = Tally()
    for chunk in stream:
        seen.see(chunk)
        if seen.chunks == 2:
            break
    assert otel.spans() == []
    t_close = time.time_ns()
    stream.close()
    t_closed = time.time_ns()
    time.sleep(0.3)
    del stream, chunk
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=2, tokens=(PROMPT_TOKENS, 2))
    assert t_close <= span.end_time <= t_closed


def test_sync_close_without_iterating_sends_nothing(
    otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider
) -> None:
    before = len(fake.requests)
    stream = client.models.generate_content_stream(**stream_kwargs())
    stream.close()
    dropped = client.models.generate_content_stream(**stream_kwargs())
    del dropped
    gc.collect()
    assert len(fake.requests) == before  # no request was made, so there is no model call to record
    assert otel.spans() == []


def test_sync_transport_error(otel: Any, gemini: Any, client: genai.Client) -> None:
    seen = Tally()
    with pytest.raises(Exception) as caught:
        for chunk in client.models.generate_content_stream(**stream_kwargs(f"chunks={WORDS},abort_after=3")):
            seen.see(chunk)
    after = time.time_ns()
    assert not isinstance(caught.value, errors.APIError)  # the transport's own error (httpx2/httpx)
    assert seen.chunks == 3
    span = check_span(otel, outcome="error", chunks=3, tokens=(PROMPT_TOKENS, 3), error=caught.value)
    assert span.end_time <= after


def test_sync_error_event_mid_stream(otel: Any, gemini: Any, client: genai.Client) -> None:
    seen = Tally()
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(**stream_kwargs(f"chunks={WORDS},error_after=2")):
            seen.see(chunk)
    assert seen.chunks == 2
    span = check_span(otel, outcome="error", chunks=2, tokens=(PROMPT_TOKENS, 2), error=caught.value)
    # The HTTP response said 200; the error came as an event inside it.
    assert span.attributes["http.response.status_code"] == 200


def test_sync_http_error_before_the_stream(otel: Any, gemini: Any, client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        for _ in client.models.generate_content_stream(**stream_kwargs("status=429")):
            pass
    span = check_span(otel, outcome="error", chunks=0, tokens=None, error=caught.value)
    assert span.attributes["http.response.status_code"] == 429


# ==================================================================================================== async


@pytest.mark.asyncio
async def test_async_full_consumption(otel: Any, gemini: Any, client: genai.Client) -> None:
    seen = Tally()
    async for chunk in await client.aio.models.generate_content_stream(**stream_kwargs()):
        seen.see(chunk)
    after = time.time_ns()
    assert seen.chunks == WORDS
    span = check_span(otel, outcome="completed", chunks=WORDS, tokens=seen.tokens)
    assert span.end_time <= after


@pytest.mark.asyncio
async def test_async_manual_anext_to_the_end(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = await client.aio.models.generate_content_stream(**stream_kwargs("chunks=2"))
    seen = Tally()
    seen.see(await stream.__anext__())
    seen.see(await stream.__anext__())
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    check_span(otel, outcome="completed", chunks=2, tokens=seen.tokens)


@pytest.mark.asyncio
async def test_async_break_then_gc(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = await client.aio.models.generate_content_stream(
        **stream_kwargs(f"chunks={WORDS},chunk_delay_ms=20")
    )
    seen = Tally()
    async for chunk in stream:
        seen.see(chunk)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    await asyncio.sleep(0.3)
    assert otel.spans() == []
    del stream, chunk
    gc.collect()
    await asyncio.sleep(0)  # let the SDK's async generator finaliser run: it must not add a second end
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=(PROMPT_TOKENS, 2))
    assert span.end_time < t_after_break + SLACK_NS
    assert span.end_time - span.start_time >= 15_000_000


@pytest.mark.asyncio
async def test_async_aclose_after_break(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = await client.aio.models.generate_content_stream(
        **stream_kwargs(f"chunks={WORDS},chunk_delay_ms=20")
    )
    seen = Tally()
    async for chunk in stream:
        seen.see(chunk)
        if seen.chunks == 2:
            break
    t_close = time.time_ns()
    await stream.aclose()
    t_closed = time.time_ns()
    await asyncio.sleep(0.3)
    del stream, chunk
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=2, tokens=(PROMPT_TOKENS, 2))
    assert t_close <= span.end_time <= t_closed


@pytest.mark.asyncio
async def test_async_aclose_without_iterating_sends_nothing(
    otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider
) -> None:
    before = len(fake.requests)
    stream = await client.aio.models.generate_content_stream(**stream_kwargs())
    await stream.aclose()
    assert len(fake.requests) == before
    assert otel.spans() == []


@pytest.mark.asyncio
async def test_async_transport_error(otel: Any, gemini: Any, client: genai.Client) -> None:
    seen = Tally()
    with pytest.raises(Exception) as caught:
        async for chunk in await client.aio.models.generate_content_stream(
            **stream_kwargs(f"chunks={WORDS},abort_after=3")
        ):
            seen.see(chunk)
    assert not isinstance(caught.value, errors.APIError)
    assert seen.chunks == 3
    check_span(otel, outcome="error", chunks=3, tokens=(PROMPT_TOKENS, 3), error=caught.value)


@pytest.mark.asyncio
async def test_async_error_event_mid_stream(otel: Any, gemini: Any, client: genai.Client) -> None:
    seen = Tally()
    with pytest.raises(errors.ServerError) as caught:
        async for chunk in await client.aio.models.generate_content_stream(
            **stream_kwargs(f"chunks={WORDS},error_after=4")
        ):
            seen.see(chunk)
    assert seen.chunks == 4
    check_span(otel, outcome="error", chunks=4, tokens=(PROMPT_TOKENS, 4), error=caught.value)


@pytest.mark.asyncio
async def test_async_http_error_before_the_stream(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = await client.aio.models.generate_content_stream(**stream_kwargs("status=503"))
    with pytest.raises(errors.ServerError) as caught:
        async for _ in stream:
            pass
    span = check_span(otel, outcome="error", chunks=0, tokens=None, error=caught.value)
    assert span.attributes["http.response.status_code"] == 503


@pytest.mark.asyncio
async def test_async_task_cancelled(otel: Any, gemini: Any, client: genai.Client) -> None:
    stream = await client.aio.models.generate_content_stream(
        **stream_kwargs(f"chunks={WORDS},chunk_delay_ms=100")
    )
    seen = Tally()
    first = asyncio.Event()

    async def consume() -> None:
        async for chunk in stream:
            seen.see(chunk)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    t_cancel = time.time_ns()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    t_cancelled = time.time_ns()
    assert 1 <= seen.chunks < WORDS
    span = check_span(otel, outcome="cancelled", chunks=seen.chunks, tokens=(PROMPT_TOKENS, seen.chunks))
    assert t_cancel <= span.end_time <= t_cancelled


# ================================================================================= chats and AFC streams


def test_chat_stream_full_and_close(otel: Any, gemini: Any, client: genai.Client) -> None:
    chat = client.chats.create(model=MODEL, config=config(f"chunks={WORDS},chunk_delay_ms=10"))
    full = Tally()
    for chunk in chat.send_message_stream(CONTENTS):
        full.see(chunk)
    check_span(otel, outcome="completed", chunks=WORDS, tokens=full.tokens)
    otel.spans_exporter.clear()

    stream = chat.send_message_stream("Go on")
    for _chunk in stream:
        break
    t_close = time.time_ns()
    stream.close()
    t_closed = time.time_ns()
    del stream, _chunk
    gc.collect()
    (span,) = otel.spans()
    assert span.attributes["llmlens.stream.outcome"] == "closed"
    assert span.attributes["llmlens.stream.chunk_count"] == 1
    assert t_close <= span.end_time <= t_closed


def test_chat_stream_break_then_gc(otel: Any, gemini: Any, client: genai.Client) -> None:
    chat = client.chats.create(model=MODEL, config=config(f"chunks={WORDS},chunk_delay_ms=20"))
    stream = chat.send_message_stream(CONTENTS)
    seen = Tally()
    for chunk in stream:
        seen.see(chunk)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    time.sleep(0.3)
    assert otel.spans() == []
    del stream, chunk
    gc.collect()
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=(PROMPT_TOKENS, 2))
    assert span.end_time < t_after_break + SLACK_NS


@pytest.mark.asyncio
async def test_async_chat_stream_aclose(otel: Any, gemini: Any, client: genai.Client) -> None:
    chat = client.aio.chats.create(model=MODEL, config=config(f"chunks={WORDS},chunk_delay_ms=10"))
    stream = await chat.send_message_stream(CONTENTS)
    async for _ in stream:
        break
    await stream.aclose()
    (span,) = otel.spans()
    assert span.attributes["llmlens.stream.outcome"] == "closed"


def test_automatic_function_calling_stream_makes_one_span_per_model_call(
    otel: Any, gemini: Any, client: genai.Client
) -> None:
    """The SDK streams the function call, runs get_weather, streams the answer: two spans, in order."""
    seen = Tally()
    for chunk in client.models.generate_content_stream(**stream_kwargs("tool", tools=[get_weather])):
        seen.see(chunk)

    first, second = otel.spans()
    # The call comes whole in one chunk, then an empty text part carries the finish reason.
    check_span(
        otel, span=first, outcome="completed", chunks=2, tokens=(PROMPT_TOKENS, 4), finish=("tool_call",)
    )
    assert first.attributes["llmlens.response.tool_call_count"] == 1
    check_span(otel, span=second, outcome="completed", chunks=WORDS, tokens=seen.tokens, finish=("stop",))
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
    span = check_span(otel, outcome="completed", chunks=6, tokens=(PROMPT_TOKENS, 5 + 3))
    assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == 3


@pytest.mark.asyncio
async def test_async_user_sees_identical_chunks_with_and_without_instrumentation(
    otel: Any, instrument: Any, client: genai.Client
) -> None:
    async def view() -> list[Any]:
        stream = await client.aio.models.generate_content_stream(**stream_kwargs("chunks=4"))
        return _view([c async for c in stream])

    plain = await view()
    instrument(pricing=False)
    assert await view() == plain
    assert len(otel.spans()) == 1


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
