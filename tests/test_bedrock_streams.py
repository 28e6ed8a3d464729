"""Bedrock streams: what the stream contract (tests/test_stream_contract.py) does not check.

Every exit path of `converse_stream` and `invoke_model_with_response_stream`, for every model family
(read to the end, `close()` after a break or unread, break then garbage collection, dropped unread, an
exception event in the stream, the connection breaking), is in the contract suite (the `bedrock-*`
adapters of tests/stream_adapters.py). Here: the fake's event-stream framing, the proxy passing for the
botocore `EventStream` (not an iterator; every `iter()` resumes the same events), the request id, and
what a stream carries (tool use, finish reasons, content). Real boto3 against the fake Bedrock on
127.0.0.1.

What counts as an output chunk: a `contentBlockDelta` (Converse, Nova), a `content_block_delta`
(Anthropic), a chunk with `generation` text (Llama), a chunk with output text or tool calls (Mistral).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.eventstream import EventStream
from opentelemetry.trace import StatusCode

from fakes.bedrock_server import BedrockServer

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "us.amazon.nova-pro-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
MISTRAL_LARGE = "mistral.mistral-large-2407-v1:0"
MESSAGES: list[Any] = [{"role": "user", "content": [{"text": "Say something"}]}]
WORDS = 8

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(scope="module")
def bedrock() -> Iterator[BedrockServer]:
    with BedrockServer() as server:
        yield server


# ------------------------------------------------------------------------------------------------ tallies


class Tally:
    """What the test's loop saw: items, output chunks, the raw stop reason and the usage llmlens must
    report so far (input including the cache reads and writes)."""

    def __init__(self) -> None:
        self.items = 0
        self.chunks = 0
        self.reason: str | None = None
        self.input: int | None = None
        self.output: int | None = None
        self.text: list[str] = []

    @property
    def tokens(self) -> tuple[int, int] | None:
        return None if self.input is None or self.output is None else (self.input, self.output)

    def see(self, event: dict[str, Any]) -> None:
        self.items += 1
        self.read(event)

    def read(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def metrics(self, payload: dict[str, Any]) -> None:
        metrics = payload.get("amazon-bedrock-invocationMetrics")
        if metrics:
            cached = metrics.get("cacheReadInputTokenCount", 0) + metrics.get("cacheWriteInputTokenCount", 0)
            self.input, self.output = metrics["inputTokenCount"] + cached, metrics["outputTokenCount"]


class ConverseTally(Tally):
    def read(self, event: dict[str, Any]) -> None:
        if "contentBlockDelta" in event:
            self.chunks += 1
            self.text.append(event["contentBlockDelta"]["delta"].get("text", ""))
        elif "messageStop" in event:
            self.reason = event["messageStop"]["stopReason"]
        elif "metadata" in event:
            usage = event["metadata"]["usage"]
            cached = usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount", 0)) + usage.get(
                "cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount", 0)
            )
            self.input, self.output = usage["inputTokens"] + cached, usage["outputTokens"]


class ChunkTally(Tally):
    def read(self, event: dict[str, Any]) -> None:
        payload = json.loads(event["chunk"]["bytes"])
        self.payload(payload)
        self.metrics(payload)

    def payload(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError


class AnthropicTally(ChunkTally):
    def payload(self, payload: dict[str, Any]) -> None:
        kind = payload["type"]
        if kind == "content_block_delta":
            self.chunks += 1
            self.text.append(payload["delta"].get("text", ""))
        elif kind == "message_start":  # input (and cache) counts come first, output 1
            usage = payload["message"]["usage"]
            cached = usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
            self.input, self.output = usage["input_tokens"] + cached, usage["output_tokens"]
        elif kind == "message_delta":
            self.reason = payload["delta"]["stop_reason"]
            self.output = payload["usage"]["output_tokens"]


class NovaTally(ChunkTally):
    def payload(self, payload: dict[str, Any]) -> None:
        ConverseTally.read(self, payload)  # type: ignore[arg-type]


class LlamaTally(ChunkTally):
    def payload(self, payload: dict[str, Any]) -> None:
        if payload["generation"]:
            self.chunks += 1
            self.text.append(payload["generation"])
        if payload["prompt_token_count"] is not None:
            self.input = payload["prompt_token_count"]
        self.output = payload["generation_token_count"]
        if payload["stop_reason"] is not None:
            self.reason = payload["stop_reason"]


class MistralTally(ChunkTally):
    def payload(self, payload: dict[str, Any]) -> None:
        if "outputs" in payload:
            item = payload["outputs"][0]
            text, calls = item["text"], None
        else:
            item = payload["choices"][0]
            text, calls = item["message"]["content"], item["message"].get("tool_calls")
        if text or calls:
            self.chunks += 1
            self.text.append(text)
        if item["stop_reason"] is not None:
            self.reason = item["stop_reason"]


# ------------------------------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """One way to stream: which operation, model and body, where the stream is, how to tally it."""

    name: str
    model: str
    operation: str
    tally: Callable[[], Tally]
    body: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return "stream" if self.operation == "converse_stream" else "body"

    @property
    def span_name(self) -> str:
        return f"{'text_completion' if 'prompt' in (self.body or {}) else 'chat'} {self.model}"

    def call(self, client: Any, **extra: Any) -> dict[str, Any]:
        if self.operation == "converse_stream":
            return dict(client.converse_stream(modelId=self.model, messages=MESSAGES, **extra))
        body = {**(self.body or {}), **extra}
        return dict(client.invoke_model_with_response_stream(modelId=self.model, body=json.dumps(body)))


ANTHROPIC_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
                  "messages": [{"role": "user", "content": "Say something"}]}  # fmt: skip
KINDS = [
    Kind("converse", CLAUDE, "converse_stream", ConverseTally),
    Kind("converse-nova", NOVA, "converse_stream", ConverseTally),
    Kind("anthropic", CLAUDE, "invoke_model_with_response_stream", AnthropicTally, ANTHROPIC_BODY),
    Kind("nova", NOVA, "invoke_model_with_response_stream", NovaTally,
         {"schemaVersion": "messages-v1", "messages": MESSAGES}),
    Kind("llama", LLAMA, "invoke_model_with_response_stream", LlamaTally, {"prompt": "Say something"}),
    Kind("mistral", MISTRAL, "invoke_model_with_response_stream", MistralTally,
         {"prompt": "<s>[INST] Say something [/INST]"}),
    Kind("mistral-chat", MISTRAL_LARGE, "invoke_model_with_response_stream", MistralTally,
         {"messages": [{"role": "user", "content": "Say something"}]}),
]  # fmt: skip
every_kind = pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])


def check_span(otel: Any, kind: Kind, seen: Tally) -> Any:
    """Assert the one span of a stream read to the end; returns the span."""
    span = otel.span()
    attrs = dict(span.attributes or {})
    assert span.name == kind.span_name
    assert attrs["gen_ai.provider.name"] == "aws.bedrock"
    assert attrs["llmlens.stream.outcome"] == "completed"
    assert span.status.status_code is StatusCode.OK
    assert attrs["llmlens.stream.chunk_count"] == seen.chunks
    assert seen.reason is not None
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    tokens = (attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens"))
    assert tokens == seen.tokens
    return span


def test_event_stream_framing_is_what_botocore_reads() -> None:
    """The fake's `application/vnd.amazon.eventstream` messages, through botocore's own decoder (which
    checks both CRCs), and a corrupted byte caught by it."""
    from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

    from fakes.bedrock_bodies import decode_messages, encode_event, encode_exception

    data = encode_event("messageStart", {"role": "assistant"}) + encode_exception(
        "throttlingException", {"message": "slow down"}
    )
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    first, second = list(buffer)
    assert first.headers == {
        ":event-type": "messageStart", ":content-type": "application/json", ":message-type": "event",
    }  # fmt: skip
    assert json.loads(first.payload)["role"] == "assistant"
    assert second.headers[":message-type"] == "exception"
    assert second.headers[":exception-type"] == "throttlingException"
    assert second.to_response_dict()["status_code"] == 400  # what makes botocore raise EventStreamError
    assert [headers for headers, _ in decode_messages(data)] == [first.headers, second.headers]
    corrupted = bytearray(data)
    corrupted[20] ^= 0xFF
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(corrupted))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


@every_kind
def test_the_stream_is_an_event_stream_and_the_span_names_the_request(
    otel: Any, instrumented: Any, bedrock: BedrockServer, kind: Kind
) -> None:
    response = kind.call(bedrock.client(scenario="chunks=2"))
    assert isinstance(response[kind.key], EventStream)  # the proxy passes for the real thing
    for _ in response[kind.key]:
        pass
    assert dict(otel.span().attributes)["aws.request_id"] == response["ResponseMetadata"]["RequestId"]


# ------------------------------------------------------------------------------------------ beyond exits


def test_next_on_the_stream_fails_as_without_llmlens(
    otel: Any, instrumented: Any, bedrock: BedrockServer
) -> None:
    kind = KINDS[0]
    response = kind.call(bedrock.client())
    with pytest.raises(TypeError, match="not an iterator"):
        next(response["stream"])  # an EventStream is iterable, not an iterator
    assert otel.spans() == []  # ... and that mistake did not end the span
    seen = kind.tally()
    for event in iter(response["stream"]):
        seen.see(event)
    check_span(otel, kind, seen)


def test_two_loops_over_one_stream(otel: Any, instrumented: Any, bedrock: BedrockServer) -> None:
    # Each `iter()` of an EventStream resumes the same events: a second loop goes on where the first stopped.
    kind = KINDS[0]
    response = kind.call(bedrock.client())
    seen = kind.tally()
    for event in response["stream"]:
        seen.see(event)
        if seen.chunks == 3:
            break
    for event in response["stream"]:
        seen.see(event)
    assert seen.chunks == WORDS
    check_span(otel, kind, seen)


TOOL_KINDS = [k for k in KINDS if k.name in ("converse", "anthropic", "nova", "mistral-chat")]


@pytest.mark.parametrize("kind", TOOL_KINDS, ids=[k.name for k in TOOL_KINDS])
def test_streamed_tool_use(otel: Any, instrument: Any, bedrock: BedrockServer, kind: Kind) -> None:
    instrument(capture_content=True)
    if kind.operation == "converse_stream":
        extra: dict[str, Any] = {"toolConfig": {"tools": [{"toolSpec": {
            "name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}}  # fmt: skip
    elif kind.name == "anthropic":
        extra = {"tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
    elif kind.name == "nova":
        extra = {"toolConfig": {"tools": [{"toolSpec": {"name": "get_weather"}}]}}
    else:
        extra = {"tools": [{"type": "function", "function": {"name": "get_weather"}}]}
    response = kind.call(bedrock.client(scenario="chunks=2,tool"), **extra)
    seen = kind.tally()
    for event in response[kind.key]:
        seen.see(event)
    attrs = dict(otel.span().attributes or {})
    # The tool's input arrives in fragments, each an output chunk (Mistral sends the call in one chunk).
    assert attrs["llmlens.stream.chunk_count"] == seen.chunks == (3 if kind.name == "mistral-chat" else 5)
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert attrs["llmlens.response.tool_call_count"] == 1
    (message,) = json.loads(attrs["gen_ai.output.messages"])
    assert message["finish_reason"] == "tool_call"
    text, call = message["parts"]
    assert text == {"type": "text", "content": "".join(seen.text)}
    assert call["type"] == "tool_call" and call["name"] == "get_weather"
    assert call["arguments"] == {"city": "Paris", "unit": "celsius"}  # fragments joined, then parsed


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("max_tokens", "length"), ("guardrail_intervened", "content_filter"), ("stop_sequence", "stop")],
)
def test_streamed_finish_reasons(
    otel: Any, instrumented: Any, bedrock: BedrockServer, stop: str, expected: str
) -> None:
    response = KINDS[0].call(bedrock.client(scenario=f"stop={stop}"))
    for _ in response["stream"]:
        pass
    assert dict(otel.span().attributes)["gen_ai.response.finish_reasons"] == (expected,)


@every_kind
@pytest.mark.parametrize("capture", [False, True], ids=["default", "captured"])
def test_streamed_content_only_when_captured(
    otel: Any, instrument: Any, bedrock: BedrockServer, kind: Kind, capture: bool
) -> None:
    instrument(capture_content=capture)
    seen = kind.tally()
    for event in kind.call(bedrock.client(scenario="chunks=3"))[kind.key]:
        seen.see(event)
    attrs = dict(otel.span().attributes or {})
    if not capture:
        assert "gen_ai.output.messages" not in attrs and "gen_ai.input.messages" not in attrs
        return
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "".join(seen.text)}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(attrs["gen_ai.input.messages"])[0]["role"] == "user"
