"""llmlens against RECORDED REAL OpenAI responses, replayed on loopback to the real openai SDK.

The recordings (tests/recordings/*.json, see the README there) come from the official OpenTelemetry
instrumentation test cassettes, recorded against api.openai.com. Each one is driven with the recorded
request's own parameters, so the SDK sends the same JSON body (checked), and every expected value is
derived from the recording itself: ids, models, finish reasons, token counts, tool calls, chunks.

Per recording and per mode (sync/async client, with/without content capture) one test:
1. calls without instrumentation (the baseline the user sees),
2. instruments, calls again: exactly one span, whose attributes, status and metrics match the recording,
   and a result identical to the baseline,
3. uninstruments, calls again: no new span, same result.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llmlens import semconv
from replay_server import RECORDINGS, Recording, ReplayServer

NAMES = sorted(path.stem for path in RECORDINGS.glob("*.json"))
HOST = "127.0.0.1"
PROVIDER = "openai"  # real OpenAI responses: map the loopback host to the provider that produced them
API_TYPES = {"/chat/completions": "chat_completions", "/responses": "responses"}
OPERATIONS = {"/chat/completions": "chat", "/responses": "chat", "/embeddings": "embeddings"}
# The SDK's exception class for an HTTP error status (openai._client._make_status_error).
STATUS_ERRORS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
# OpenAI finish reasons -> the output-message schema's (semconv) values.
FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}
RESPONSE_STATUS = {"completed": "stop", "failed": "error", "cancelled": "error"}
FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
MODES = {
    "sync": ("sync", "NO_CONTENT"),
    "async": ("async", "NO_CONTENT"),
    "sync-content": ("sync", "SPAN_ONLY"),
    "async-content": ("async", "SPAN_ONLY"),
}
CONTENT_KEYS = (
    semconv.INPUT_MESSAGES,
    semconv.OUTPUT_MESSAGES,
    semconv.SYSTEM_INSTRUCTIONS,
    semconv.TOOL_DEFINITIONS,
)


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


# --- reading a recording --------------------------------------------------------------------------


def api_path(rec: Recording) -> str:
    return rec.path.removeprefix("/v1")


def sse_data(rec: Recording) -> list[Any]:
    """The JSON payloads of the recorded SSE events (the `data:` lines), `[DONE]` left out."""
    payloads = []
    for event in rec.sse_events():
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if data and data != "[DONE]":
            payloads.append(json.loads(data))
    return payloads


def recorded_error(rec: Recording) -> dict[str, Any]:
    """What the SDK raises for a recorded HTTP error: class, status, and the body's `error` object."""
    name = STATUS_ERRORS.get(rec.status, "InternalServerError" if rec.status >= 500 else "APIStatusError")
    return {"error": name, "status": rec.status, "body": json.loads(rec.body)["error"]}


def text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def tool_call(call_id: Any, name: Any, arguments: str) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": json.loads(arguments)}


class Expected:
    """Everything the span and the metrics should say about one recorded call."""

    def __init__(self, rec: Recording, port: int, capture: bool) -> None:
        self.rec = rec
        self.capture = capture
        self.path = api_path(rec)
        body = rec.request_body
        self.operation = OPERATIONS[self.path]
        self.model = body["model"]
        self.stream = bool(body.get("stream"))
        self.attributes: dict[str, Any] = {
            semconv.OPERATION_NAME: self.operation,
            semconv.PROVIDER_NAME: PROVIDER,
            semconv.REQUEST_MODEL: self.model,
            semconv.SERVER_ADDRESS: HOST,
            semconv.SERVER_PORT: port,
        }
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.chunk_count: int | None = None
        self.error: dict[str, Any] | None = None
        self._request(body)
        if rec.status >= 400:
            self.error = recorded_error(rec)
            self.attributes[semconv.ERROR_TYPE] = f"openai.{self.error['error']}"
            self.attributes[semconv.HTTP_STATUS_CODE] = rec.status
            if self.stream:
                self.attributes[semconv.LLMLENS_STREAM_CHUNKS] = 0
                self.attributes[semconv.LLMLENS_STREAM_OUTCOME] = "error"
                self.attributes[semconv.RESPONSE_FINISH_REASONS] = [semconv.FINISH_ERROR]
        elif self.path == "/chat/completions":
            if self.stream:
                self._chat_stream(sse_data(rec))
            else:
                self._chat_completion(json.loads(rec.body))
        elif self.path == "/responses":
            if self.stream:
                self._responses_stream(sse_data(rec))
            else:
                self._response(json.loads(rec.body))
        elif self.path == "/embeddings":
            self._embeddings(json.loads(rec.body))
        else:
            pytest.fail(f"{rec.name}: no expectations for {rec.path}; extend Expected")

    # --- request ------------------------------------------------------------------------------

    def _request(self, body: dict[str, Any]) -> None:
        attrs = self.attributes
        if self.path in API_TYPES:
            attrs[semconv.OPENAI_API_TYPE] = API_TYPES[self.path]
        numbers = {
            "temperature": semconv.REQUEST_TEMPERATURE,
            "top_p": semconv.REQUEST_TOP_P,
            "seed": semconv.REQUEST_SEED,
            "frequency_penalty": semconv.REQUEST_FREQUENCY_PENALTY,
            "presence_penalty": semconv.REQUEST_PRESENCE_PENALTY,
            "max_tokens": semconv.REQUEST_MAX_TOKENS,
            "max_completion_tokens": semconv.REQUEST_MAX_TOKENS,
            "max_output_tokens": semconv.REQUEST_MAX_TOKENS,
        }
        for key, value in body.items():
            if key in ("model", "stream_options", "tool_choice"):
                continue  # the model is set above; the others have no attribute
            if key in ("messages", "input", "instructions", "tools"):
                continue  # content: see _input_content
            if key in numbers:
                attrs[numbers[key]] = value
            elif key == "stream":
                if value:
                    attrs[semconv.REQUEST_STREAM] = True
            elif key == "n":
                if value != 1:
                    attrs[semconv.REQUEST_CHOICE_COUNT] = value
            elif key == "service_tier":
                attrs[semconv.OPENAI_REQUEST_SERVICE_TIER] = value
            elif key == "reasoning_effort":
                attrs[semconv.REQUEST_REASONING_LEVEL] = value
            elif key == "reasoning":
                attrs[semconv.REQUEST_REASONING_LEVEL] = value["effort"]
            elif key == "encoding_format":
                attrs[semconv.REQUEST_ENCODING_FORMATS] = [value]
            else:
                pytest.fail(f"{self.rec.name}: no expectation for request parameter {key!r}; extend Expected")
        if self.capture and self.path != "/embeddings":
            self._input_content(body)

    def _input_content(self, body: dict[str, Any]) -> None:
        system: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        if isinstance(body.get("instructions"), str):
            system.append(text(body["instructions"]))
        raw = body.get("messages", body.get("input"))
        if isinstance(raw, str):
            raw = [{"role": "user", "content": raw}]
        for message in raw:
            if not isinstance(message.get("content"), str):
                pytest.fail(f"{self.rec.name}: only string message content is derived here; extend Expected")
            # system and developer messages are part of the conversation: input messages, with their role
            messages.append({"role": message["role"], "parts": [text(message["content"])]})
        self.attributes[semconv.INPUT_MESSAGES] = messages
        if system:
            self.attributes[semconv.SYSTEM_INSTRUCTIONS] = system
        definitions = []
        for tool in body.get("tools") or ():
            function = tool.get("function", tool)  # chat nests the function; Responses does not
            definition = {"type": tool["type"], "name": function["name"]}
            if function.get("description"):
                definition["description"] = function["description"]
            definitions.append(definition)
        if definitions:
            self.attributes[semconv.TOOL_DEFINITIONS] = definitions

    # --- responses ----------------------------------------------------------------------------

    def _identity(self, obj: dict[str, Any]) -> None:
        self.attributes[semconv.RESPONSE_ID] = obj["id"]
        self.attributes[semconv.RESPONSE_MODEL] = obj["model"]
        if isinstance(obj.get("service_tier"), str):
            self.attributes[semconv.OPENAI_RESPONSE_SERVICE_TIER] = obj["service_tier"]
        if isinstance(obj.get("system_fingerprint"), str):
            self.attributes[semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = obj["system_fingerprint"]

    def _usage(
        self, prompt: int, completion: int | None, cached: Any, reasoning: Any, cache_write: Any = None
    ) -> None:
        self.input_tokens, self.output_tokens = prompt, completion
        self.attributes[semconv.USAGE_INPUT_TOKENS] = prompt
        if completion is not None:
            self.attributes[semconv.USAGE_OUTPUT_TOKENS] = completion
        if isinstance(cached, int):
            self.attributes[semconv.USAGE_CACHE_READ_INPUT_TOKENS] = cached
        if isinstance(cache_write, int):
            self.attributes[semconv.USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write
        if isinstance(reasoning, int):
            self.attributes[semconv.USAGE_REASONING_OUTPUT_TOKENS] = reasoning

    def _chat_usage(self, usage: dict[str, Any]) -> None:
        prompt_details = usage.get("prompt_tokens_details") or {}
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        self._usage(
            usage["prompt_tokens"],
            usage["completion_tokens"],
            prompt_details.get("cached_tokens"),
            reasoning,
            prompt_details.get("cache_write_tokens"),
        )

    def _tool_calls(self, count: int) -> None:
        if count:
            self.attributes[semconv.LLMLENS_TOOL_CALL_COUNT] = count

    def _chat_completion(self, completion: dict[str, Any]) -> None:
        self._identity(completion)
        self._chat_usage(completion["usage"])
        choices = completion["choices"]
        reasons = [FINISH_REASONS.get(c["finish_reason"], c["finish_reason"]) for c in choices]
        self.attributes[semconv.RESPONSE_FINISH_REASONS] = reasons
        self._tool_calls(sum(len(c["message"].get("tool_calls") or ()) for c in choices))
        if any(c["message"].get("refusal") for c in choices):
            self.attributes[semconv.LLMLENS_REFUSAL] = True
        if self.capture:
            outputs = []
            for choice, reason in zip(choices, reasons, strict=True):
                message = choice["message"]
                parts = [text(message[k]) for k in ("content", "refusal") if message.get(k)]
                for call in message.get("tool_calls") or ():
                    function = call["function"]
                    parts.append(tool_call(call["id"], function["name"], function["arguments"]))
                outputs.append({"role": message["role"], "parts": parts, "finish_reason": reason})
            self.attributes[semconv.OUTPUT_MESSAGES] = outputs

    def _chat_stream(self, chunks: list[dict[str, Any]]) -> None:
        assert len({chunk["id"] for chunk in chunks}) == 1, "one completion per stream"
        with_choices = [chunk for chunk in chunks if chunk["choices"]]
        self._identity(with_choices[0])
        usages = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
        if usages:
            self._chat_usage(usages[-1])
        reasons: dict[int, str] = {}
        texts: dict[int, str] = {}
        calls: dict[int, dict[int, list[Any]]] = {}  # choice -> tool call index -> [id, name, arguments]
        refusal = False
        for chunk in with_choices:
            for choice in chunk["choices"]:
                index, delta = choice["index"], choice.get("delta") or {}
                texts.setdefault(index, "")
                if choice.get("finish_reason"):
                    reasons[index] = choice["finish_reason"]
                texts[index] += delta.get("content") or delta.get("refusal") or ""
                refusal = refusal or bool(delta.get("refusal"))
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") or {}
                    entry = calls.setdefault(index, {}).setdefault(call["index"], [None, None, ""])
                    entry[0] = entry[0] or call.get("id")
                    entry[1] = entry[1] or function.get("name")
                    entry[2] += function.get("arguments") or ""
        choices = range(max(texts) + 1)
        finish = [FINISH_REASONS.get(reasons[i], reasons[i]) for i in choices]
        self.attributes[semconv.RESPONSE_FINISH_REASONS] = finish
        self._tool_calls(sum(len(per_choice) for per_choice in calls.values()))
        if refusal:
            self.attributes[semconv.LLMLENS_REFUSAL] = True
        self._streamed(len(with_choices))
        if self.capture:
            outputs = []
            for i in choices:
                parts = [text(texts[i])] if texts[i] else []
                parts += [tool_call(*entry) for entry in calls.get(i, {}).values()]
                outputs.append({"role": "assistant", "parts": parts, "finish_reason": finish[i]})
            self.attributes[semconv.OUTPUT_MESSAGES] = outputs

    def _streamed(self, chunks: int) -> None:
        self.chunk_count = chunks
        self.attributes[semconv.LLMLENS_STREAM_CHUNKS] = chunks
        self.attributes[semconv.LLMLENS_STREAM_OUTCOME] = "completed"

    def _response(self, response: dict[str, Any]) -> None:
        self._identity(response)
        usage = response["usage"]
        input_details = usage.get("input_tokens_details") or {}
        self._usage(
            usage["input_tokens"],
            usage["output_tokens"],
            input_details.get("cached_tokens"),
            (usage.get("output_tokens_details") or {}).get("reasoning_tokens"),
            # Sent by the Responses API (0 when nothing was written), though no recording has it yet.
            input_details.get("cache_write_tokens"),
        )
        output = response["output"]
        calls = [item for item in output if item["type"] == "function_call"]
        status = response["status"]
        if status == "incomplete":
            details = response.get("incomplete_details") or {}
            reason = INCOMPLETE_REASONS.get(details.get("reason"), "length")
        elif status == "completed" and calls:
            reason = "tool_call"
        else:
            reason = RESPONSE_STATUS.get(status, status)
        self.attributes[semconv.RESPONSE_FINISH_REASONS] = [reason]
        self._tool_calls(len(calls))
        messages = [item for item in output if item["type"] == "message"]
        if any(part["type"] == "refusal" for item in messages for part in item["content"]):
            self.attributes[semconv.LLMLENS_REFUSAL] = True
        if self.capture:
            parts: list[dict[str, Any]] = []
            for item in output:
                if item["type"] == "message":
                    parts += [text(p.get("text") or p.get("refusal")) for p in item["content"]]
                elif item["type"] == "function_call":
                    parts.append(tool_call(item["call_id"], item["name"], item["arguments"]))
                elif item["type"] == "reasoning":
                    summary = " ".join(s["text"] for s in item.get("summary") or ())
                    if summary:
                        parts.append({"type": "reasoning", "content": summary})
                else:
                    pytest.fail(f"{self.rec.name}: output item {item['type']!r} not derived; extend Expected")
            output_message = {"role": "assistant", "parts": parts, "finish_reason": reason}
            self.attributes[semconv.OUTPUT_MESSAGES] = [output_message]

    def _responses_stream(self, events: list[dict[str, Any]]) -> None:
        final = [e for e in events if e["type"] in FINAL_EVENTS]
        assert len(final) == 1, "one final event per stream"
        created = [e["response"]["id"] for e in events if e["type"] == "response.created"]
        assert created == [final[0]["response"]["id"]]
        self._response(final[0]["response"])
        self._streamed(sum(1 for e in events if e["type"].endswith(".delta")))

    def _embeddings(self, response: dict[str, Any]) -> None:
        self.attributes[semconv.RESPONSE_MODEL] = response["model"]
        self._usage(response["usage"]["prompt_tokens"], None, None, None)
        vector = response["data"][0]["embedding"]
        # encoding_format=base64 gives the little-endian float32 bytes in base64.
        dimensions = len(base64.b64decode(vector)) // 4 if isinstance(vector, str) else len(vector)
        self.attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimensions


# --- driving the SDK ------------------------------------------------------------------------------


def _create(client: Any, path: str) -> Any:
    if path == "/chat/completions":
        return client.chat.completions.create
    if path == "/responses":
        return client.responses.create
    if path == "/embeddings":
        return client.embeddings.create
    raise AssertionError(f"no SDK method for {path}")


async def call(kind: str, base_url: str, rec: Recording) -> Any:
    """Make the recorded request with the real SDK; return what the user gets, as plain data:
    the response's model_dump(), the list of chunk dumps of a stream, or the error raised."""
    body = copy.deepcopy(rec.request_body)
    try:
        if kind == "sync":
            with openai.OpenAI(api_key="sk-test", base_url=base_url, max_retries=0) as client:
                result = _create(client, api_path(rec))(**body)
                if body.get("stream"):
                    return [chunk.model_dump(warnings=False) for chunk in result]
                return result.model_dump(warnings=False)
        async with openai.AsyncOpenAI(api_key="sk-test", base_url=base_url, max_retries=0) as client:
            result = await _create(client, api_path(rec))(**body)
            if body.get("stream"):
                return [chunk.model_dump(warnings=False) async for chunk in result]
            return result.model_dump(warnings=False)
    except openai.APIStatusError as error:
        return {"error": type(error).__name__, "status": error.status_code, "body": error.body}


# --- the tests ------------------------------------------------------------------------------------


def test_recordings_are_present_and_clean() -> None:
    assert len(NAMES) >= 8, NAMES
    for name in NAMES:
        raw = (RECORDINGS / f"{name}.json").read_text(encoding="utf-8")
        data = json.loads(raw)
        assert set(data) == {"source", "request", "response"}, name
        assert set(data["request"]) == {"method", "path", "body"}, name
        assert set(data["response"]) == {"status", "content_type", "body"}, name
        lowered = raw.lower()
        for needle in ("authorization", "bearer ", "api_key", "set-cookie", "openai-organization", "sk-proj"):
            assert needle not in lowered, (name, needle)
        rec = Recording.load(name)
        if rec.is_sse:
            assert "".join(rec.sse_events()) == rec.body


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", NAMES)
async def test_recorded(name: str, mode: str, replay: ReplayServer, otel: Any, instrument: Any) -> None:
    kind, content = MODES[mode]
    rec = Recording.load(name)
    replay.use(rec)
    expected = Expected(rec, replay.port, capture=content != "NO_CONTENT")

    baseline = await call(kind, replay.base_url, rec)
    if expected.error is not None:
        assert baseline == expected.error
    assert otel.spans() == []

    instrumentor = instrument(
        capture_content=content, provider_map={HOST: PROVIDER}, content_max_length=0, pricing=False
    )  # pricing=False: the cost attributes have their own tests (tests/test_pricing.py)
    started = time.perf_counter_ns()
    instrumented = await call(kind, replay.base_url, rec)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    assert instrumented == baseline
    span = otel.span()

    instrumentor.uninstrument()
    after = await call(kind, replay.base_url, rec)
    assert after == baseline
    assert len(otel.spans()) == 1

    # The SDK sent the recorded request, every time.
    assert len(replay.requests) == 3
    for request in replay.requests:
        assert (request.method, request.path) == (rec.method, rec.path)
        assert request.json == rec.request_body

    # The span.
    assert span.name == f"{expected.operation} {expected.model}"
    assert span.kind is SpanKind.CLIENT
    # Sequences come back as tuples; content attributes are JSON strings.
    attributes = {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()}
    for key in CONTENT_KEYS:
        if key in attributes:
            attributes[key] = json.loads(attributes[key])
    ttfc = attributes.pop(semconv.RESPONSE_TIME_TO_FIRST_CHUNK, None)
    assert attributes == expected.attributes
    if expected.error is None:
        assert span.status.status_code is StatusCode.OK
        assert not span.events
    else:
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
    if expected.chunk_count:
        assert ttfc is not None and 0 < ttfc <= elapsed
    else:
        assert ttfc is None

    # The metrics.
    metrics = otel.metrics()
    base = {key: value for key, value in expected.attributes.items() if key in semconv.METRIC_ATTRIBUTE_KEYS}
    (duration,) = metrics[semconv.METRIC_OPERATION_DURATION]
    assert duration.count == 1
    error_type = expected.attributes.get(semconv.ERROR_TYPE)
    assert dict(duration.attributes) == ({**base, semconv.ERROR_TYPE: error_type} if error_type else base)
    points = metrics.get(semconv.METRIC_TOKEN_USAGE, [])
    tokens = {point.attributes[semconv.TOKEN_TYPE]: point for point in points}
    recorded = {"input": expected.input_tokens, "output": expected.output_tokens}
    assert set(tokens) == {token_type for token_type, value in recorded.items() if value is not None}
    for token_type, point in tokens.items():
        assert (point.count, point.sum) == (1, recorded[token_type]), token_type
        assert dict(point.attributes) == {**base, semconv.TOKEN_TYPE: token_type}
    if expected.chunk_count:
        (first,) = metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK]
        assert first.count == 1
        gaps = metrics.get(semconv.METRIC_TIME_PER_OUTPUT_CHUNK, [])
        assert sum(point.count for point in gaps) == expected.chunk_count - 1
    else:
        assert semconv.METRIC_TIME_TO_FIRST_CHUNK not in metrics
        assert semconv.METRIC_TIME_PER_OUTPUT_CHUNK not in metrics


def test_replayed_stream_arrives_event_by_event(replay: ReplayServer, otel: Any, instrument: Any) -> None:
    """With a pause between recorded events the client must see the first chunk long before the last:
    the replay really streams, and llmlens times the first chunk, not the end of the body."""
    rec = Recording.load("chat_stream_include_usage")
    delay = 0.02
    replay.use(rec, event_delay=delay)
    instrument(provider_map={HOST: PROVIDER})
    client = openai.OpenAI(api_key="sk-test", base_url=replay.base_url, max_retries=0)
    with client:
        stream = client.chat.completions.create(**copy.deepcopy(rec.request_body))
        arrivals = [time.perf_counter() for _ in stream]
    events = len(rec.sse_events())
    assert arrivals[-1] - arrivals[0] >= 0.5 * delay * (events - 2)
    span = otel.span()
    total = (span.end_time - span.start_time) / 1e9
    ttfc = span.attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK]
    assert ttfc < total - 0.5 * delay * (events - 2)
