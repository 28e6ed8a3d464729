"""The streaming-correctness matrix: exactly one span per streamed call on every exit path, sync and async.

Real openai SDK against the fake provider on loopback, no mocks. Every test checks the span count, the
status, `llmlens.stream.outcome`, finish reasons, the chunk count (computed from what the test's own
loop saw), usage, time to first chunk, where the end time comes from, and the metrics, against the
table in the docstring of `llmlens.core.streams`:

| exit path                        | outcome   | status | end time            |
|----------------------------------|-----------|--------|---------------------|
| read to the end                  | completed | OK     | the last read       |
| close()/aclose()/with exit       | closed    | UNSET  | the close           |
| break, then garbage collection   | abandoned | UNSET  | the last chunk read |
| transport error while reading    | error     | ERROR  | the exception       |
| task cancelled while reading     | cancelled | UNSET  | the cancellation    |

A "chunk" here is what llmlens counts as an output chunk: a chat chunk with at least one choice (the
trailing usage-only chunk of `include_usage` carries no output), or an output delta event of the
Responses API.

The matrix runs under openai 3 and openai 2 (`scripts/test`); the only difference it sees is what a
transport error raises: `openai.APIConnectionError` from openai 3, the transport's own
`httpx.RemoteProtocolError` from openai 2 (`STREAM_BREAK_ERROR`, see tests/test_openai_compat.py).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from test_openai_compat import STREAM_BREAK_ERROR

MODEL = "gpt-4o-mini"
SPAN_NAME = f"chat {MODEL}"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something"}]
WORDS = 8  # chunks=8: one word per chunk

# Timing slack for "ended at X" assertions: well under the 300 ms the abandoned-stream tests sleep.
SLACK_NS = 100_000_000

DURATION = "gen_ai.client.operation.duration"
TTFC = "gen_ai.client.operation.time_to_first_chunk"
TPOC = "gen_ai.client.operation.time_per_output_chunk"
TOKEN_USAGE = "gen_ai.client.token.usage"

pytestmark = pytest.mark.timeout(10)


def scenario(value: str) -> dict[str, Any]:
    return {"extra_headers": {"x-fake-scenario": value}}


def chat_kwargs(value: str = f"chunks={WORDS}") -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        **scenario(value),
    }


def responses_kwargs(value: str = f"chunks={WORDS}") -> dict[str, Any]:
    return {"model": MODEL, "input": "Say something", **scenario(value)}


class ChatTally:
    """What a test's loop saw of a chat completions stream."""

    def __init__(self) -> None:
        self.items = 0  # every object the SDK handed out
        self.chunks = 0  # output chunks: the ones with choices
        self.usage: Any = None
        self.text: list[str] = []

    def see(self, chunk: Any) -> None:
        self.items += 1
        if chunk.choices:
            self.chunks += 1
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    self.text.append(choice.delta.content)
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def tokens(self) -> tuple[int, int] | None:
        if self.usage is None:
            return None
        return self.usage.prompt_tokens, self.usage.completion_tokens


class ResponsesTally:
    """What a test's loop saw of a Responses API stream."""

    def __init__(self) -> None:
        self.items = 0
        self.chunks = 0  # response.output_text.delta events
        self.text: list[str] = []
        self.final: Any = None

    def see(self, event: Any) -> None:
        self.items += 1
        if event.type == "response.output_text.delta":
            self.chunks += 1
            self.text.append(event.delta)
        elif event.type == "response.completed":
            self.final = event.response

    @property
    def tokens(self) -> tuple[int, int] | None:
        usage = getattr(self.final, "usage", None)
        if usage is None:
            return None
        return usage.input_tokens, usage.output_tokens


def check_span(
    otel: Any,
    *,
    outcome: str,
    chunks: int,
    tokens: tuple[int, int] | None,
    error: BaseException | None = None,
) -> Any:
    """Assert the one span and the metrics of a streamed call; returns the span."""
    span = otel.span()  # exactly one finished span
    attrs = dict(span.attributes or {})
    assert span.name == SPAN_NAME
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["llmlens.stream.outcome"] == outcome
    assert attrs["llmlens.stream.chunk_count"] == chunks
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time <= span.end_time <= time.time_ns()

    if outcome == "completed":
        assert span.status.status_code is StatusCode.OK
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    else:
        assert attrs["gen_ai.response.finish_reasons"] == ("error",)
    if outcome == "error":
        assert error is not None
        assert span.status.status_code is StatusCode.ERROR
        expected_type = f"{type(error).__module__.split('.')[0]}.{type(error).__qualname__}"
        assert attrs["error.type"] == expected_type
        events = [e for e in span.events if e.name == "exception"]
        assert len(events) == 1
        assert type(error).__name__ in str(events[0].attributes["exception.type"])
    else:
        assert error is None
        assert "error.type" not in attrs
        assert not [e for e in span.events if e.name == "exception"]
    if outcome in ("closed", "abandoned", "cancelled"):
        assert span.status.status_code is StatusCode.UNSET

    if tokens is None:
        assert "gen_ai.usage.input_tokens" not in attrs
        assert "gen_ai.usage.output_tokens" not in attrs
    else:
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == tokens

    if chunks:
        ttfc = attrs["gen_ai.response.time_to_first_chunk"]
        assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9 + 1e-3
    else:
        assert "gen_ai.response.time_to_first_chunk" not in attrs

    metrics = otel.metrics()
    duration = metrics[DURATION]
    assert len(duration) == 1 and duration[0].count == 1
    if error is not None:
        assert duration[0].attributes["error.type"] == attrs["error.type"]
    else:
        assert "error.type" not in duration[0].attributes
    ttfc_points = metrics.get(TTFC, [])
    tpoc_points = metrics.get(TPOC, [])
    if chunks and outcome != "error":
        assert len(ttfc_points) == 1 and ttfc_points[0].count == 1
    else:
        assert sum(p.count for p in ttfc_points) == 0
    if outcome == "error" or chunks < 2:
        assert sum(p.count for p in tpoc_points) == 0
    else:
        assert len(tpoc_points) == 1 and tpoc_points[0].count == chunks - 1
    token_points = metrics.get(TOKEN_USAGE, [])
    assert sum(p.count for p in token_points) == (2 if tokens else 0)
    return span


# =============================================================================== chat completions, sync


def test_sync_chat_full_consumption(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(**chat_kwargs())
    seen = ChatTally()
    for chunk in stream:
        seen.see(chunk)
    after = time.time_ns()
    assert seen.chunks == WORDS + 2 and seen.tokens is not None  # role, words, finish; then usage
    span = check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)
    assert span.end_time <= after


def test_sync_chat_break_then_gc(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(**chat_kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    seen = ChatTally()
    for chunk in stream:
        seen.see(chunk)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    time.sleep(0.3)
    assert otel.spans() == []  # nothing ends a stream that is merely not being read
    del stream, chunk
    gc.collect()
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=None)
    # The end is the last chunk read (>= 20 ms after the first), not the garbage collection 300 ms later.
    assert span.end_time < t_after_break + SLACK_NS
    assert span.end_time - span.start_time >= 15_000_000


def test_sync_chat_with_exit_after_break(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    seen = ChatTally()
    with client.chat.completions.create(**chat_kwargs(f"chunks={WORDS},chunk_delay_ms=20")) as stream:
        for chunk in stream:
            seen.see(chunk)
            if seen.chunks == 2:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    time.sleep(0.3)
    del stream, chunk
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=2, tokens=None)
    assert t_exit <= span.end_time <= t_exited


def test_sync_chat_close_without_iterating(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(**chat_kwargs())
    assert otel.spans() == []
    t_close = time.time_ns()
    stream.close()
    t_closed = time.time_ns()
    time.sleep(0.3)
    del stream
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_close <= span.end_time <= t_closed


def test_sync_chat_transport_error(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(**chat_kwargs(f"chunks={WORDS},abort_after=3"))
    seen = ChatTally()
    with pytest.raises(STREAM_BREAK_ERROR) as caught:
        for chunk in stream:
            seen.see(chunk)
    after = time.time_ns()
    assert seen.items == 3  # role + 2 words, then the connection is cut
    span = check_span(otel, outcome="error", chunks=seen.chunks, tokens=None, error=caught.value)
    assert span.end_time <= after


# ============================================================================== chat completions, async


@pytest.mark.asyncio
async def test_async_chat_full_consumption(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.chat.completions.create(**chat_kwargs())
    seen = ChatTally()
    async for chunk in stream:
        seen.see(chunk)
    after = time.time_ns()
    assert seen.chunks == WORDS + 2 and seen.tokens is not None
    span = check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)
    assert span.end_time <= after


@pytest.mark.asyncio
async def test_async_chat_break_then_gc(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.chat.completions.create(**chat_kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    seen = ChatTally()
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
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=None)
    # The end is the last chunk read (>= 20 ms after the first), not the garbage collection 300 ms later.
    assert span.end_time < t_after_break + SLACK_NS
    assert span.end_time - span.start_time >= 15_000_000


@pytest.mark.asyncio
async def test_async_chat_with_exit_after_break(otel: Any, instrumented: Any, async_client: Any) -> None:
    seen = ChatTally()
    stream = await async_client.chat.completions.create(**chat_kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    async with stream as entered:
        async for chunk in entered:
            seen.see(chunk)
            if seen.chunks == 2:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    await asyncio.sleep(0.3)
    del stream, entered, chunk
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=2, tokens=None)
    assert t_exit <= span.end_time <= t_exited


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["aclose", "close"])
async def test_async_chat_close_without_iterating(
    otel: Any, instrumented: Any, async_client: Any, method: str
) -> None:
    stream = await async_client.chat.completions.create(**chat_kwargs())
    assert otel.spans() == []
    t_close = time.time_ns()
    await getattr(stream, method)()
    t_closed = time.time_ns()
    await asyncio.sleep(0.3)
    del stream
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_close <= span.end_time <= t_closed


def test_async_chat_with_exit_after_break_in_asyncio_run(otel: Any, instrumented: Any, fake: Any) -> None:
    """As a script does it: the loop `asyncio.run` made is closed before anything is collected."""
    seen = ChatTally()
    times: list[int] = []

    async def main() -> None:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        async with await client.chat.completions.create(**chat_kwargs()) as stream:
            async for chunk in stream:
                seen.see(chunk)
                break
            times.append(time.time_ns())
        times.append(time.time_ns())

    asyncio.run(main())
    span = check_span(otel, outcome="closed", chunks=1, tokens=None)  # before any collection
    assert times[0] <= span.end_time <= times[1]
    assert seen.chunks == 1
    gc.collect()
    assert otel.spans() == [span]


@pytest.mark.asyncio
async def test_async_chat_transport_error(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.chat.completions.create(**chat_kwargs(f"chunks={WORDS},abort_after=3"))
    seen = ChatTally()
    with pytest.raises(STREAM_BREAK_ERROR) as caught:
        async for chunk in stream:
            seen.see(chunk)
    after = time.time_ns()
    assert seen.items == 3
    span = check_span(otel, outcome="error", chunks=seen.chunks, tokens=None, error=caught.value)
    assert span.end_time <= after


@pytest.mark.asyncio
async def test_async_chat_task_cancelled(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.chat.completions.create(**chat_kwargs(f"chunks={WORDS},chunk_delay_ms=100"))
    seen = ChatTally()
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
    span = check_span(otel, outcome="cancelled", chunks=seen.chunks, tokens=None)
    assert t_cancel <= span.end_time <= t_cancelled


# ======================================================================================== Responses API


def test_sync_responses_create_full(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.responses.create(stream=True, **responses_kwargs())
    seen = ResponsesTally()
    for event in stream:
        seen.see(event)
    assert seen.chunks == WORDS and seen.final is not None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


@pytest.mark.asyncio
async def test_async_responses_create_full(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.responses.create(stream=True, **responses_kwargs())
    seen = ResponsesTally()
    async for event in stream:
        seen.see(event)
    assert seen.chunks == WORDS and seen.final is not None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


def test_sync_responses_create_break_then_gc(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.responses.create(stream=True, **responses_kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    seen = ResponsesTally()
    for event in stream:
        seen.see(event)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    time.sleep(0.3)
    assert otel.spans() == []
    del stream, event
    gc.collect()
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=None)
    assert span.end_time < t_after_break + SLACK_NS


def test_sync_responses_create_close(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.responses.create(stream=True, **responses_kwargs())
    t_close = time.time_ns()
    stream.close()
    t_closed = time.time_ns()
    del stream
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_close <= span.end_time <= t_closed


@pytest.mark.asyncio
async def test_async_responses_create_break_then_gc(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.responses.create(
        stream=True, **responses_kwargs(f"chunks={WORDS},chunk_delay_ms=20")
    )
    seen = ResponsesTally()
    async for event in stream:
        seen.see(event)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    await asyncio.sleep(0.3)
    assert otel.spans() == []
    del stream, event
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=None)
    assert span.end_time < t_after_break + SLACK_NS


@pytest.mark.asyncio
async def test_async_responses_create_aclose(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.responses.create(stream=True, **responses_kwargs())
    t_close = time.time_ns()
    await stream.aclose()
    t_closed = time.time_ns()
    del stream
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_close <= span.end_time <= t_closed


def test_sync_responses_stream_manager_transport_error(
    otel: Any, instrumented: Any, client: openai.OpenAI
) -> None:
    seen = ResponsesTally()
    with (
        pytest.raises(STREAM_BREAK_ERROR) as caught,
        client.responses.stream(**responses_kwargs(f"chunks={WORDS},abort_after=6")) as stream,
    ):
        for event in stream:
            seen.see(event)
    # created, in_progress, output_item.added, content_part.added, then two deltas; then the cut.
    assert seen.chunks == 2
    check_span(otel, outcome="error", chunks=seen.chunks, tokens=None, error=caught.value)


def test_sync_responses_stream_manager_full(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    seen = ResponsesTally()
    with client.responses.stream(**responses_kwargs()) as stream:
        for event in stream:
            seen.see(event)
        final = stream.get_final_response()
    assert seen.chunks == WORDS
    assert final.output_text == "".join(seen.text)
    tokens = (final.usage.input_tokens, final.usage.output_tokens) if final.usage else None
    assert tokens is not None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=tokens)


def test_sync_responses_stream_manager_get_final_only(
    otel: Any, instrumented: Any, client: openai.OpenAI
) -> None:
    with client.responses.stream(**responses_kwargs()) as stream:
        final = stream.get_final_response()
    tokens = (final.usage.input_tokens, final.usage.output_tokens) if final.usage else None
    assert tokens is not None
    # get_final_response() read every event itself: one delta per word of the answer.
    check_span(otel, outcome="completed", chunks=len(final.output_text.split()), tokens=tokens)


@pytest.mark.asyncio
async def test_async_responses_stream_manager_full(otel: Any, instrumented: Any, async_client: Any) -> None:
    seen = ResponsesTally()
    async with async_client.responses.stream(**responses_kwargs()) as stream:
        async for event in stream:
            seen.see(event)
        final = await stream.get_final_response()
    assert seen.chunks == WORDS
    assert final.output_text == "".join(seen.text)
    tokens = (final.usage.input_tokens, final.usage.output_tokens) if final.usage else None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=tokens)


def test_sync_responses_stream_manager_exit_after_break(
    otel: Any, instrumented: Any, client: openai.OpenAI
) -> None:
    seen = ResponsesTally()
    with client.responses.stream(**responses_kwargs(f"chunks={WORDS},chunk_delay_ms=20")) as stream:
        for event in stream:
            seen.see(event)
            if seen.chunks == 2:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    time.sleep(0.3)
    del stream, event
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=2, tokens=None)
    assert t_exit <= span.end_time <= t_exited


@pytest.mark.asyncio
async def test_async_responses_stream_manager_exit_after_break(
    otel: Any, instrumented: Any, async_client: Any
) -> None:
    seen = ResponsesTally()
    manager = async_client.responses.stream(**responses_kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    async with manager as stream:
        async for event in stream:
            seen.see(event)
            if seen.chunks == 2:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    await asyncio.sleep(0.3)
    del stream, event, manager
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=2, tokens=None)
    assert t_exit <= span.end_time <= t_exited


# ============================================================== with_streaming_response / with_raw_response


def test_sync_with_streaming_response_full(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    seen = ChatTally()
    with client.chat.completions.with_streaming_response.create(**chat_kwargs()) as response:
        for chunk in response.parse():
            seen.see(chunk)
    assert seen.chunks == WORDS + 2 and seen.tokens is not None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


@pytest.mark.asyncio
async def test_async_with_streaming_response_full(otel: Any, instrumented: Any, async_client: Any) -> None:
    seen = ChatTally()
    async with async_client.chat.completions.with_streaming_response.create(**chat_kwargs()) as response:
        async for chunk in await response.parse():
            seen.see(chunk)
    assert seen.chunks == WORDS + 2 and seen.tokens is not None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


def test_sync_with_streaming_response_exit_without_parse(
    otel: Any, instrumented: Any, client: openai.OpenAI
) -> None:
    with client.chat.completions.with_streaming_response.create(**chat_kwargs()) as response:
        assert response.http_response.status_code == 200
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    time.sleep(0.3)
    del response
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_exit <= span.end_time <= t_exited


@pytest.mark.asyncio
async def test_async_with_streaming_response_exit_without_parse(
    otel: Any, instrumented: Any, async_client: Any
) -> None:
    async with async_client.chat.completions.with_streaming_response.create(**chat_kwargs()) as response:
        assert response.http_response.status_code == 200
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    await asyncio.sleep(0.3)
    del response
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_exit <= span.end_time <= t_exited


def test_sync_with_raw_response_stream_full(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(**chat_kwargs())
    assert raw.http_response.status_code == 200
    seen = ChatTally()
    for chunk in raw.parse():
        seen.see(chunk)
    assert seen.chunks == WORDS + 2 and seen.tokens is not None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


@pytest.mark.asyncio
async def test_async_with_raw_response_stream_full(otel: Any, instrumented: Any, async_client: Any) -> None:
    raw = await async_client.chat.completions.with_raw_response.create(**chat_kwargs())
    assert raw.http_response.status_code == 200
    stream = raw.parse()  # LegacyAPIResponse.parse() is synchronous on the async client too
    assert isinstance(stream, openai.AsyncStream)
    seen = ChatTally()
    async for chunk in stream:
        seen.see(chunk)
    assert seen.chunks == WORDS + 2 and seen.tokens is not None
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


def test_sync_with_raw_response_stream_rebound(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    # The idiom `r = r.parse()` drops the raw response while its stream is being read.
    r: Any = client.chat.completions.with_raw_response.create(**chat_kwargs())
    r = r.parse()
    gc.collect()
    assert otel.spans() == []  # the stream is alive: nothing has ended yet
    seen = ChatTally()
    for chunk in r:
        seen.see(chunk)
    assert seen.chunks == WORDS + 2 and seen.tokens is not None
    span = check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)
    assert span.attributes["gen_ai.response.id"] == chunk.id


@pytest.mark.asyncio
async def test_async_with_raw_response_stream_rebound(
    otel: Any, instrumented: Any, async_client: Any
) -> None:
    r: Any = await async_client.chat.completions.with_raw_response.create(**chat_kwargs())
    r = r.parse()
    gc.collect()
    assert otel.spans() == []
    seen = ChatTally()
    async for chunk in r:
        seen.see(chunk)
    assert seen.chunks == WORDS + 2 and seen.tokens is not None
    span = check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)
    assert span.attributes["gen_ai.response.id"] == chunk.id


# =========================================================================================== transparency


def _chat_view(client: openai.OpenAI) -> list[tuple[Any, ...]]:
    """What user code sees of a full stream, minus the per-request ids and timestamps."""
    view = []
    for chunk in client.chat.completions.create(**chat_kwargs()):
        view.append(
            (
                type(chunk),
                chunk.object,
                chunk.model,
                [(c.index, c.delta.role, c.delta.content, c.finish_reason) for c in chunk.choices],
                chunk.usage.model_dump() if chunk.usage is not None else None,
            )
        )
    return view


def test_user_sees_identical_chunks_with_and_without_instrumentation(
    otel: Any, instrument: Any, client: openai.OpenAI
) -> None:
    plain = _chat_view(client)
    assert otel.spans() == []
    instrument()
    traced = _chat_view(client)
    assert traced == plain
    text = "".join(content or "" for *_, choices, _usage in traced for _i, _r, content, _f in choices)
    assert len(text.split()) == WORDS
    usage = traced[-1][-1]
    check_span(
        otel,
        outcome="completed",
        chunks=sum(1 for *_, choices, _usage in traced if choices),
        tokens=(usage["prompt_tokens"], usage["completion_tokens"]),
    )


@pytest.mark.asyncio
async def test_async_user_sees_identical_chunks_with_and_without_instrumentation(
    otel: Any, instrument: Any, async_client: Any
) -> None:
    async def texts() -> list[Any]:
        stream = await async_client.chat.completions.create(**chat_kwargs())
        return [
            (type(c), [(x.index, x.delta.content, x.finish_reason) for x in c.choices], c.usage)
            async for c in stream
        ]

    plain = await texts()
    instrument()
    traced = await texts()
    assert traced == plain
    assert len(otel.spans()) == 1


def test_sync_stream_is_still_an_openai_stream(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(**chat_kwargs())
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # SDK attributes still reachable through the proxy
    with stream:
        for _ in stream:
            pass
    assert otel.span().attributes["llmlens.stream.outcome"] == "completed"


@pytest.mark.asyncio
async def test_async_stream_is_still_an_openai_async_stream(
    otel: Any, instrumented: Any, async_client: Any
) -> None:
    stream = await async_client.chat.completions.create(**chat_kwargs())
    assert isinstance(stream, openai.AsyncStream)
    assert stream.response.status_code == 200
    async with stream:
        async for _ in stream:
            pass
    assert otel.span().attributes["llmlens.stream.outcome"] == "completed"


def test_consumed_stream_is_freed_as_without_llmlens(
    otel: Any, instrument: Any, client: openai.OpenAI
) -> None:
    """llmlens must not tie a stream's HTTP response to itself: the close hook once held the
    response's own bound `close`, a cycle that left every stream's response, span and buffers to the
    cyclic garbage collector (found by the overhead benchmark). So a consumed stream's response is
    freed by reference counting exactly when it is without llmlens: under openai 3 it is; under openai 2
    the SDK's own objects already keep it in a cycle. (A stream closed unread or dropped after a
    `break` is in a cycle of openai's own in both: its Stream and the generator made in `__init__`.)"""
    import weakref

    def freed_by_refcount() -> bool:
        gc.collect()
        gc.disable()
        try:
            stream = client.chat.completions.create(**chat_kwargs())
            response = weakref.ref(stream.response)
            for _chunk in stream:
                pass
            del stream, _chunk
            return response() is None
        finally:
            gc.enable()

    instrumentor = instrument()
    traced = freed_by_refcount()
    assert len(otel.spans()) == 1
    instrumentor.uninstrument()
    assert traced == freed_by_refcount()
    if openai.__version__.startswith("3."):
        assert traced, "under openai 3 the response is freed by reference counting"
