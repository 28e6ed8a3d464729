"""The streaming matrix for the anthropic SDK: exactly one span per streamed call on every exit path,
sync and async, for `messages.create(stream=True)`, the `messages.stream()` helper (`text_stream`,
`get_final_message()`, `until_done()`), `beta.messages`, `with_streaming_response` and `with_raw_response`.

Real anthropic SDK against the fake provider on loopback, no mocks. The expectations follow the table of
`llmlens.core.streams` (as tests/test_streams.py does for openai):

| exit path                        | outcome   | status | end time            |
|----------------------------------|-----------|--------|---------------------|
| read to the end                  | completed | OK     | the last read       |
| close()/with exit                | closed    | UNSET  | the close           |
| break, then garbage collection   | abandoned | UNSET  | the last chunk read |
| transport error while reading    | error     | ERROR  | the exception       |
| `event: error` in the stream     | error     | ERROR  | the exception       |
| task cancelled while reading     | cancelled | UNSET  | the cancellation    |

An output chunk is a `content_block_delta` event. Usage: `message_start` brings the input count, so a
stream cut short still reports its input tokens; the output count arrives with `message_delta` only
(the one in `message_start` is a placeholder), so such a stream has no output count.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

import anthropic
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

from llmlens.demo.fake_server import FakeProvider

MODEL = "claude-haiku-4-5"
SPAN_NAME = f"chat {MODEL}"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something"}]
INPUT = 5  # the fake counts 3 per message plus the words
WORDS = 8  # chunks=8: one text_delta per word
SLACK_NS = 100_000_000  # well under the 300 ms the abandoned-stream tests sleep
# The fake cuts the connection after five frames: message_start, content_block_start, ping, two deltas.
CUT = f"chunks={WORDS},abort_after=5"

DURATION = "gen_ai.client.operation.duration"
TTFC = "gen_ai.client.operation.time_to_first_chunk"
TPOC = "gen_ai.client.operation.time_per_output_chunk"
TOKEN_USAGE = "gen_ai.client.token.usage"

pytestmark = pytest.mark.timeout(20)


def kwargs(value: str = f"chunks={WORDS}", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 256,
        "messages": MESSAGES,
        "extra_headers": {"x-fake-scenario": value},
        **extra,
    }


@pytest.fixture
def instrumented(instrument: Any) -> Any:
    return instrument(pricing=False)


@pytest.fixture
def client(fake: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", base_url=f"http://{fake.host}:{fake.port}", max_retries=0)


@pytest.fixture
def async_client(fake: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="k", base_url=f"http://{fake.host}:{fake.port}", max_retries=0)


class Tally:
    """What a test's loop saw of a raw Messages stream (or of the helper's events)."""

    def __init__(self) -> None:
        self.items = 0
        self.chunks = 0  # content_block_delta events
        self.text: list[str] = []
        self.input: int | None = None
        self.output: int | None = None

    def see(self, event: Any) -> None:
        self.items += 1
        if event.type == "content_block_delta":
            self.chunks += 1
            if event.delta.type == "text_delta":
                self.text.append(event.delta.text)
        elif event.type == "message_start":
            self.input = event.message.usage.input_tokens
        elif event.type == "message_delta":
            self.output = event.usage.output_tokens

    @property
    def tokens(self) -> tuple[int, int | None] | None:
        return None if self.input is None else (self.input, self.output)


def sdk_error(read: Any) -> BaseException:
    """What `read()` raises with llmlens out of the way (instrumentation suppressed).

    Which exception a cut connection raises is the SDK's business (anthropic up to 2.12 lets
    `httpx2.RemoteProtocolError` through, later versions wrap it in `anthropic.APIConnectionError`);
    llmlens promises only that the user gets exactly that exception, with or without it.
    """
    with suppress_instrumentation(), pytest.raises(Exception) as caught:
        read()
    return caught.value


async def async_sdk_error(read: Any) -> BaseException:
    with suppress_instrumentation(), pytest.raises(Exception) as caught:
        await read()
    return caught.value


def assert_same_error(traced: BaseException, plain: BaseException) -> None:
    """The user's exception is the one the SDK raises without llmlens: same class, same message."""
    assert type(traced) is type(plain)
    assert str(traced) == str(plain)
    assert type(traced.__cause__) is type(plain.__cause__)


def check_span(
    otel: Any,
    *,
    outcome: str,
    chunks: int,
    tokens: tuple[int, int | None] | None,
    error: BaseException | None = None,
    error_type: str | None = None,
) -> Any:
    """Assert the one span and the metrics of a streamed call; returns the span."""
    span = otel.span()
    attrs = dict(span.attributes or {})
    assert span.name == SPAN_NAME
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["llmlens.stream.outcome"] == outcome
    assert attrs["llmlens.stream.chunk_count"] == chunks
    assert span.start_time <= span.end_time <= time.time_ns()

    if outcome == "completed":
        assert span.status.status_code is StatusCode.OK
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    else:
        assert attrs["gen_ai.response.finish_reasons"] == ("error",)
    if outcome == "error":
        assert error is not None
        assert span.status.status_code is StatusCode.ERROR
        default = f"{type(error).__module__.split('.')[0]}.{type(error).__qualname__}"
        assert attrs["error.type"] == (error_type or default)
        [event] = [e for e in span.events if e.name == "exception"]
        assert type(error).__name__ in str(event.attributes["exception.type"])
    else:
        assert error is None
        assert "error.type" not in attrs
        assert not span.events
    if outcome in ("closed", "abandoned", "cancelled"):
        assert span.status.status_code is StatusCode.UNSET

    usage = {
        k: v for k, v in attrs.items() if k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
    }
    expected: dict[str, int] = {}
    if tokens is not None:
        expected["gen_ai.usage.input_tokens"] = tokens[0]
        if tokens[1] is not None:
            expected["gen_ai.usage.output_tokens"] = tokens[1]
    assert usage == expected

    if chunks:
        assert (
            0 < attrs["gen_ai.response.time_to_first_chunk"] <= (span.end_time - span.start_time) / 1e9 + 1e-3
        )
    else:
        assert "gen_ai.response.time_to_first_chunk" not in attrs

    metrics = otel.metrics()
    [duration] = metrics[DURATION]
    assert duration.count == 1
    assert duration.attributes.get("error.type") == (attrs["error.type"] if error is not None else None)
    ttfc = sum(p.count for p in metrics.get(TTFC, []))
    tpoc = sum(p.count for p in metrics.get(TPOC, []))
    assert ttfc == (1 if chunks and outcome != "error" else 0)
    assert tpoc == (0 if outcome == "error" or chunks < 2 else chunks - 1)
    assert sum(p.count for p in metrics.get(TOKEN_USAGE, [])) == len(expected)
    return span


# ============================================================================ messages.create(stream=True)


def test_sync_create_full_consumption(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    stream = client.messages.create(stream=True, **kwargs())
    seen = Tally()
    for event in stream:
        seen.see(event)
    after = time.time_ns()
    assert seen.chunks == WORDS and seen.tokens == (INPUT, WORDS)
    span = check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)
    assert span.end_time <= after


def test_sync_create_break_then_gc(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    stream = client.messages.create(stream=True, **kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    seen = Tally()
    for event in stream:
        seen.see(event)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    time.sleep(0.3)
    assert otel.spans() == []  # nothing ends a stream that is merely not being read
    del stream, event
    gc.collect()
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=(INPUT, None))
    assert span.end_time < t_after_break + SLACK_NS  # the last chunk read, not the collection


def test_sync_create_with_exit_after_break(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    seen = Tally()
    with client.messages.create(stream=True, **kwargs(f"chunks={WORDS},chunk_delay_ms=20")) as stream:
        for event in stream:
            seen.see(event)
            if seen.chunks == 2:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    del stream, event
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=2, tokens=(INPUT, None))
    assert t_exit <= span.end_time <= t_exited


def test_sync_create_close_without_iterating(
    otel: Any, instrumented: Any, client: anthropic.Anthropic
) -> None:
    stream = client.messages.create(stream=True, **kwargs())
    assert otel.spans() == []
    t_close = time.time_ns()
    stream.close()
    t_closed = time.time_ns()
    time.sleep(0.1)
    del stream
    gc.collect()
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_close <= span.end_time <= t_closed


def test_sync_create_transport_error(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    plain = sdk_error(lambda: list(client.messages.create(stream=True, **kwargs(CUT))))
    assert otel.spans() == []
    stream = client.messages.create(stream=True, **kwargs(CUT))
    seen = Tally()
    with pytest.raises(Exception) as caught:
        for event in stream:
            seen.see(event)
    after = time.time_ns()
    assert_same_error(caught.value, plain)
    assert seen.chunks == 2
    # error.type: the class of the exception the user got, whichever the SDK version raises.
    span = check_span(otel, outcome="error", chunks=2, tokens=(INPUT, None), error=caught.value)
    assert span.end_time <= after


def test_sync_create_error_event(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    stream = client.messages.create(stream=True, **kwargs("stream_error=overloaded_error"))
    seen = Tally()
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in stream:
            seen.see(event)
    assert (caught.value.status_code, caught.value.type) == (200, "overloaded_error")
    assert seen.chunks == 2
    # The exception is the SDK's generic status error; error.type is the API's own error type.
    span = check_span(
        otel,
        outcome="error",
        chunks=2,
        tokens=(INPUT, None),
        error=caught.value,
        error_type="overloaded_error",
    )
    assert span.attributes["gen_ai.response.id"].startswith("msg_fake")  # message_start came before it


@pytest.mark.asyncio
async def test_async_create_full_consumption(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.messages.create(stream=True, **kwargs())
    seen = Tally()
    async for event in stream:
        seen.see(event)
    assert seen.chunks == WORDS and seen.tokens == (INPUT, WORDS)
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


@pytest.mark.asyncio
async def test_async_create_break_then_gc(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.messages.create(stream=True, **kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    seen = Tally()
    async for event in stream:
        seen.see(event)
        if seen.chunks == 2:
            break
    t_after_break = time.time_ns()
    await asyncio.sleep(0.3)
    assert otel.spans() == []
    del stream, event
    gc.collect()
    await asyncio.sleep(0)  # the SDK's async generator finaliser must not add a second end
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=(INPUT, None))
    assert span.end_time < t_after_break + SLACK_NS


@pytest.mark.asyncio
async def test_async_create_with_exit_after_break(otel: Any, instrumented: Any, async_client: Any) -> None:
    seen = Tally()
    stream = await async_client.messages.create(stream=True, **kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    async with stream as entered:
        async for event in entered:
            seen.see(event)
            if seen.chunks == 2:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    del stream, entered, event
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=2, tokens=(INPUT, None))
    assert t_exit <= span.end_time <= t_exited


@pytest.mark.asyncio
async def test_async_create_close_without_iterating(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.messages.create(stream=True, **kwargs())
    t_close = time.time_ns()
    await stream.close()
    t_closed = time.time_ns()
    del stream
    gc.collect()
    await asyncio.sleep(0)
    span = check_span(otel, outcome="closed", chunks=0, tokens=None)
    assert t_close <= span.end_time <= t_closed


@pytest.mark.asyncio
async def test_async_create_transport_error(otel: Any, instrumented: Any, async_client: Any) -> None:
    async def read() -> None:
        async for _ in await async_client.messages.create(stream=True, **kwargs(CUT)):
            pass

    plain = await async_sdk_error(read)
    assert otel.spans() == []
    stream = await async_client.messages.create(stream=True, **kwargs(CUT))
    seen = Tally()
    with pytest.raises(Exception) as caught:
        async for event in stream:
            seen.see(event)
    assert_same_error(caught.value, plain)
    assert seen.chunks == 2
    check_span(otel, outcome="error", chunks=2, tokens=(INPUT, None), error=caught.value)


@pytest.mark.asyncio
async def test_async_create_error_event(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.messages.create(stream=True, **kwargs("stream_error=api_error"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        async for _ in stream:
            pass
    check_span(
        otel, outcome="error", chunks=2, tokens=(INPUT, None), error=caught.value, error_type="api_error"
    )


@pytest.mark.asyncio
async def test_async_create_task_cancelled(otel: Any, instrumented: Any, async_client: Any) -> None:
    stream = await async_client.messages.create(stream=True, **kwargs(f"chunks={WORDS},chunk_delay_ms=100"))
    seen = Tally()
    first = asyncio.Event()

    async def consume() -> None:
        async for event in stream:
            seen.see(event)
            if seen.chunks:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    t_cancel = time.time_ns()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    t_cancelled = time.time_ns()
    assert 1 <= seen.chunks < WORDS
    span = check_span(otel, outcome="cancelled", chunks=seen.chunks, tokens=(INPUT, None))
    assert t_cancel <= span.end_time <= t_cancelled


# ============================================================ the messages.stream() helper (python-genai#653)


def test_sync_helper_text_stream(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    with client.messages.stream(**kwargs()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and len(text.split()) == WORDS
    span = check_span(otel, outcome="completed", chunks=WORDS, tokens=(INPUT, WORDS))
    assert span.attributes["gen_ai.response.id"] == final.id


@pytest.mark.parametrize("method", ["get_final_message", "get_final_text", "until_done"])
def test_sync_helper_reads_the_stream_itself(
    otel: Any, instrumented: Any, client: anthropic.Anthropic, method: str
) -> None:
    with client.messages.stream(**kwargs("chunks=8,cached=3,cache_write=4")) as stream:
        getattr(stream, method)()
        final = stream.get_final_message()
    span = check_span(otel, outcome="completed", chunks=WORDS, tokens=(INPUT + 3 + 4, WORDS))
    attributes = span.attributes
    assert attributes["gen_ai.response.id"] == final.id
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 3
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 4


def test_sync_helper_break_in_text_stream_then_exit(
    otel: Any, instrumented: Any, client: anthropic.Anthropic
) -> None:
    with client.messages.stream(**kwargs(f"chunks={WORDS},chunk_delay_ms=20")) as stream:
        for i, _text in enumerate(stream.text_stream):
            if i == 1:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    span = check_span(otel, outcome="closed", chunks=2, tokens=(INPUT, None))
    assert t_exit <= span.end_time <= t_exited


def test_sync_helper_exit_without_reading(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    with client.messages.stream(**kwargs()):
        assert otel.spans() == []
    check_span(otel, outcome="closed", chunks=0, tokens=None)


def test_sync_helper_dropped_after_break(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    manager = client.messages.stream(**kwargs(f"chunks={WORDS},chunk_delay_ms=20"))
    stream = manager.__enter__()  # never exited: the caller just drops it
    for i, _text in enumerate(stream.text_stream):
        if i == 1:
            break
    t_after_break = time.time_ns()
    time.sleep(0.3)
    del manager, stream, _text
    gc.collect()
    span = check_span(otel, outcome="abandoned", chunks=2, tokens=(INPUT, None))
    assert span.end_time < t_after_break + SLACK_NS


def test_sync_helper_transport_error(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    def read() -> None:
        with client.messages.stream(**kwargs(CUT)) as stream:
            stream.until_done()

    plain = sdk_error(read)
    assert otel.spans() == []
    with pytest.raises(Exception) as caught:
        read()
    assert_same_error(caught.value, plain)
    check_span(otel, outcome="error", chunks=2, tokens=(INPUT, None), error=caught.value)


def test_sync_helper_error_event(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(**kwargs("stream_error=overloaded_error")) as stream,
    ):
        for _ in stream.text_stream:
            pass
    check_span(
        otel,
        outcome="error",
        chunks=2,
        tokens=(INPUT, None),
        error=caught.value,
        error_type="overloaded_error",
    )


@pytest.mark.asyncio
async def test_async_helper_text_stream(otel: Any, instrumented: Any, async_client: Any) -> None:
    async with async_client.messages.stream(**kwargs()) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == final.content[0].text
    check_span(otel, outcome="completed", chunks=WORDS, tokens=(INPUT, WORDS))


@pytest.mark.asyncio
async def test_async_helper_get_final_message_only(otel: Any, instrumented: Any, async_client: Any) -> None:
    async with async_client.messages.stream(**kwargs()) as stream:
        final = await stream.get_final_message()
    span = check_span(otel, outcome="completed", chunks=WORDS, tokens=(INPUT, WORDS))
    assert span.attributes["gen_ai.response.id"] == final.id


@pytest.mark.asyncio
async def test_async_helper_break_then_exit(otel: Any, instrumented: Any, async_client: Any) -> None:
    async with async_client.messages.stream(**kwargs(f"chunks={WORDS},chunk_delay_ms=20")) as stream:
        async for event in stream:
            if event.type == "text" and event.snapshot.count(" ") == 1:
                break
        assert otel.spans() == []
        t_exit = time.time_ns()
    t_exited = time.time_ns()
    span = check_span(otel, outcome="closed", chunks=2, tokens=(INPUT, None))
    assert t_exit <= span.end_time <= t_exited


@pytest.mark.asyncio
async def test_async_helper_exit_without_reading(otel: Any, instrumented: Any, async_client: Any) -> None:
    async with async_client.messages.stream(**kwargs()):
        pass
    check_span(otel, outcome="closed", chunks=0, tokens=None)


@pytest.mark.asyncio
async def test_async_helper_task_cancelled(otel: Any, instrumented: Any, async_client: Any) -> None:
    first = asyncio.Event()
    texts: list[str] = []

    async def consume() -> None:
        async with async_client.messages.stream(**kwargs(f"chunks={WORDS},chunk_delay_ms=100")) as stream:
            async for text in stream.text_stream:
                texts.append(text)
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The helper's __aexit__ closes the stream while the cancellation unwinds: either end is fine, as
    # long as there is exactly one span and it is not an error.
    span = otel.span()
    assert span.attributes["llmlens.stream.outcome"] in ("cancelled", "closed")
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["llmlens.stream.chunk_count"] == len(texts)


# ================================================================================ beta, raw, streaming


def test_beta_create_and_stream_helper(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    for _ in client.beta.messages.create(stream=True, **kwargs()):
        pass
    check_span(otel, outcome="completed", chunks=WORDS, tokens=(INPUT, WORDS))
    otel.spans_exporter.clear()
    with client.beta.messages.stream(**kwargs("chunks=3")) as stream:
        final = stream.get_final_message()
    assert otel.span().attributes["gen_ai.response.id"] == final.id
    assert otel.span().attributes["llmlens.stream.chunk_count"] == 3


@pytest.mark.asyncio
async def test_async_beta_stream_helper(otel: Any, instrumented: Any, async_client: Any) -> None:
    async with async_client.beta.messages.stream(**kwargs()) as stream:
        await stream.until_done()
    check_span(otel, outcome="completed", chunks=WORDS, tokens=(INPUT, WORDS))


def test_with_streaming_response(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    seen = Tally()
    with client.messages.with_streaming_response.create(stream=True, **kwargs()) as response:
        for event in response.parse():
            seen.see(event)
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


def test_with_streaming_response_exit_without_parse(
    otel: Any, instrumented: Any, client: anthropic.Anthropic
) -> None:
    with client.messages.with_streaming_response.create(stream=True, **kwargs()) as response:
        assert response.http_response.status_code == 200
        assert otel.spans() == []
    check_span(otel, outcome="closed", chunks=0, tokens=None)


def test_with_raw_response_stream(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(stream=True, **kwargs())
    assert otel.spans() == []
    seen = Tally()
    for event in raw.parse():
        seen.see(event)
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


def test_with_raw_response_stream_rebound(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    # `r = r.parse()` drops the raw response while its stream is being read: the stream decides the end.
    r: Any = client.messages.with_raw_response.create(stream=True, **kwargs())
    r = r.parse()
    gc.collect()
    assert otel.spans() == []
    seen = Tally()
    for event in r:
        seen.see(event)
    assert seen.chunks == WORDS
    span = check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)
    assert span.attributes["gen_ai.response.id"].startswith("msg_fake")


@pytest.mark.asyncio
async def test_async_with_streaming_response(otel: Any, instrumented: Any, async_client: Any) -> None:
    seen = Tally()
    async with async_client.messages.with_streaming_response.create(stream=True, **kwargs()) as response:
        async for event in await response.parse():
            seen.see(event)
    check_span(otel, outcome="completed", chunks=seen.chunks, tokens=seen.tokens)


# =========================================================================== what a stream carries


def test_streamed_tool_use_and_thinking(otel: Any, instrument: Any, client: anthropic.Anthropic) -> None:
    instrument(pricing=False, capture_content="SPAN_ONLY")
    tool = {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    with client.messages.stream(**kwargs("tool,thinking=3", tools=[tool])) as stream:
        final = stream.get_final_message()

    [thinking, call] = final.content
    attributes = otel.span().attributes
    # 3 thinking deltas + a signature delta + an empty and 5 JSON fragments of the tool input.
    assert attributes["llmlens.stream.chunk_count"] == 3 + 1 + 6
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert attributes["llmlens.response.tool_call_count"] == 1
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == final.usage.output_tokens == 3 + 5
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": thinking.thinking},
                {"type": "tool_call", "id": call.id, "name": "get_weather", "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_call",
        }
    ]


def test_streamed_thinking_tokens(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    # SDKs older than `usage.output_tokens_details` keep it as the plain dict it arrived as.
    for _ in client.messages.create(stream=True, **kwargs("chunks=4,thinking=3")):
        pass
    attributes = otel.span().attributes
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 3 + 4


def test_stream_cut_short_keeps_the_partial_output(
    otel: Any, instrument: Any, client: anthropic.Anthropic
) -> None:
    def read() -> None:
        for _ in client.messages.create(stream=True, **kwargs(CUT)):
            pass

    plain = sdk_error(read)
    instrument(pricing=False, capture_content="SPAN_ONLY")
    with pytest.raises(Exception) as caught:
        read()
    assert_same_error(caught.value, plain)
    span = check_span(otel, outcome="error", chunks=2, tokens=(INPUT, None), error=caught.value)
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello from"}], "finish_reason": "error"}
    ]


def test_user_sees_identical_events_with_and_without_llmlens(
    otel: Any, instrument: Any, client: anthropic.Anthropic
) -> None:
    def view() -> list[Any]:
        events = []
        for event in client.messages.create(stream=True, **kwargs("chunks=5,thinking=2")):
            dump = event.model_dump()
            if event.type == "message_start":
                dump["message"]["id"] = "<varies>"
            events.append((type(event), dump))
        return events

    plain = view()
    instrument(pricing=False, capture_content="SPAN_ONLY")
    assert view() == plain
    assert len(otel.spans()) == 1


def test_stream_is_still_an_anthropic_stream(
    otel: Any, instrumented: Any, client: anthropic.Anthropic
) -> None:
    stream = client.messages.create(stream=True, **kwargs())
    assert isinstance(stream, anthropic.Stream)
    assert stream.response.status_code == 200  # SDK attributes still reachable through the proxy
    with stream:
        for _ in stream:
            pass
    assert otel.span().attributes["llmlens.stream.outcome"] == "completed"


@pytest.mark.asyncio
async def test_async_stream_is_still_an_anthropic_async_stream(
    otel: Any, instrumented: Any, async_client: Any
) -> None:
    stream = await async_client.messages.create(stream=True, **kwargs())
    assert isinstance(stream, anthropic.AsyncStream)
    assert not isinstance(stream, anthropic.Stream)
    async with stream:
        async for _ in stream:
            pass
    assert otel.span().attributes["llmlens.stream.outcome"] == "completed"


def test_uninstrument_restores_the_stream_class_checks(instrument: Any) -> None:
    metas = [type(anthropic.Stream), type(anthropic.AsyncStream)]
    before = [meta.__dict__.get("__instancecheck__") for meta in metas]
    instrument().uninstrument()
    assert [meta.__dict__.get("__instancecheck__") for meta in metas] == before
