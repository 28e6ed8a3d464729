"""anthropic streams: what the stream contract (tests/test_stream_contract.py) does not check.

Every exit path of `messages.create(stream=True)`, the `messages.stream()` helper (events, `text_stream`,
`get_final_message()`, `get_final_text()`, `until_done()`), `beta.messages`, `with_streaming_response`
and `with_raw_response`, sync and async, is in the contract suite (the `anthropic-*` adapters of
tests/stream_adapters.py). Here: what a stream carries (tool use, thinking, cache counts, the partial
output of a stream cut short, with content capture), that the user sees the same events, and the SDK's
stream classes. Real anthropic SDK against the fake provider on loopback, no mocks.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

from llmlens.demo.fake_server import FakeProvider

MODEL = "claude-haiku-4-5"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something"}]
INPUT = 5  # the fake counts 3 per message plus the words
WORDS = 8  # chunks=8: one text_delta per word
# The fake cuts the connection after five frames: message_start, content_block_start, ping, two deltas.
CUT = f"chunks={WORDS},abort_after=5"

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


def sdk_error(read: Any) -> BaseException:
    """What `read()` raises with llmlens out of the way (instrumentation suppressed).

    Which exception a cut connection raises is the SDK's business (anthropic up to 2.12 lets
    `httpx2.RemoteProtocolError` through, later versions wrap it in `anthropic.APIConnectionError`);
    llmlens promises only that the user gets exactly that exception, with or without it.
    """
    with suppress_instrumentation(), pytest.raises(Exception) as caught:
        read()
    return caught.value


def assert_same_error(traced: BaseException, plain: BaseException) -> None:
    """The user's exception is the one the SDK raises without llmlens: same class, same message."""
    assert type(traced) is type(plain)
    assert str(traced) == str(plain)
    assert type(traced.__cause__) is type(plain.__cause__)


def test_streamed_cache_counts(otel: Any, instrumented: Any, client: anthropic.Anthropic) -> None:
    with client.messages.stream(**kwargs("chunks=8,cached=3,cache_write=4")) as stream:
        final = stream.get_final_message()
    attributes = otel.span().attributes
    assert attributes["gen_ai.response.id"] == final.id
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        INPUT + 3 + 4,
        WORDS,
    )
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 3
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 4


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
    span = otel.span()
    assert span.attributes["llmlens.stream.outcome"] == "error"
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
