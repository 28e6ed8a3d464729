"""Pure builders for fake AWS Bedrock Runtime responses, down to the event-stream binary framing.

The Bedrock counterpart of :mod:`llmlens.demo.fake_bodies`: a request (path, JSON body, scenario) in, a
:class:`BedrockReply` out, no I/O. ``tests/fakes/bedrock_server.py`` serves it over real HTTP on 127.0.0.1 so
the real ``boto3`` client parses every byte::

    reply = route("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
                  request_body, BedrockScenario.parse("chunks=4"))

Operations (``POST /model/{modelId}/...``, the paths of the botocore service model):

* ``converse``: ``{"output": {"message": {"role", "content": [blocks]}}, "stopReason", "usage", "metrics"}``;
  ``usage.inputTokens`` EXCLUDES the cached tokens, which come apart in ``cacheReadInputTokens`` and
  ``cacheWriteInputTokens``; ``totalTokens`` = input + cache read + cache write + output, as AWS reports
  it (docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html).
* ``converse-stream``: ``application/vnd.amazon.eventstream`` messages ``messageStart``,
  (``contentBlockStart`` for a tool call), ``contentBlockDelta``..., ``contentBlockStop``, ``messageStop``,
  ``metadata`` (usage and metrics).
* ``invoke``: the model family's own JSON body, picked from the model id (an ARN or a cross-region
  ``us.``/``eu.``/``global.`` prefix is looked through): Anthropic Messages (``anthropic.``), Amazon Nova
  (``amazon.nova``), Meta Llama (``meta.``), Mistral (``mistral.``: the ``prompt`` text format, or the
  chat format when the request has ``messages``), or an embedding (``amazon.titan-embed-*``). Token
  counts also go in the ``X-Amzn-Bedrock-*-Token-Count`` headers, as Bedrock sends them.
* ``invoke-with-response-stream``: ``chunk`` events whose ``bytes`` member is the base64 of one JSON
  event of the family's stream format; the last one carries ``amazon-bedrock-invocationMetrics``.

The event-stream framing (``encode_message``): a 12-byte prelude (total length, headers length, CRC32
of those 8 bytes), headers (``:event-type``, ``:content-type``, ``:message-type``; each name-length byte,
name, type 7 = string, 2-byte value length, value), the payload, and a CRC32 of everything before it.
A failure inside a stream is a ``:message-type: exception`` message whose ``:exception-type`` is the
member name (``modelStreamErrorException``, ``throttlingException``...), which botocore raises as
``EventStreamError``. HTTP errors are ``{"message": ...}`` with ``x-amzn-ErrorType: <Code>:<namespace>``.

Scenario keywords (``x-fake-scenario`` header, comma separated):

``chunks=N``            a text answer of N words, one delta per word (default 8)
``tool``                call the first tool of the request (a default ``get_weather`` when it has none),
                        after the text; its JSON input streams in 3 fragments
``stop=REASON``         the stop reason, in Converse's words (``end_turn``, ``max_tokens``,
                        ``stop_sequence``, ``guardrail_intervened``, ``content_filtered``...); each
                        family's body uses its own word for it (Llama ``length``, Mistral ``stop``...)
``input_tokens=N``      the non-cached input tokens (default: words of the request's text, at least 1)
``cache_read=N``, ``cache_write=N``   prompt-cache reads and writes, reported apart from the input tokens
``status=CODE``         an HTTP error: 429 ThrottlingException, 400 ValidationException, 403
                        AccessDeniedException, 404 ResourceNotFoundException, 500, 503, 424, 408
``error=CODE``          the AWS error code of that HTTP error (default: the one for ``status``)
``stream_error=NAME``   streams: after ``error_after`` deltas an exception event ``NAME`` ends the stream
``error_after=N``       (default 2)
``chunk_delay_ms=N``, ``delay_ms=N``, ``abort_after=N``   applied by the HTTP server: ``abort_after``
                        cuts the connection after N event-stream messages (or half of a JSON body)

``maxTokens``/``max_tokens``/``max_gen_len`` below the answer's length cut it short with ``max_tokens``.
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote

__all__ = [
    "EVENTSTREAM_CONTENT_TYPE",
    "SCENARIO_HEADER",
    "BedrockReply",
    "BedrockScenario",
    "converse",
    "converse_events",
    "decode_messages",
    "encode_event",
    "encode_exception",
    "encode_message",
    "error_reply",
    "family_of",
    "invoke",
    "invoke_events",
    "route",
]

SCENARIO_HEADER = "x-fake-scenario"
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"

_ANSWER_TEXT = (
    "Hello from the fake Bedrock runtime. This deterministic answer streams one word per event, so tests "
    "can count chunks and tokens without calling a real model."
)
_ANSWER = _ANSWER_TEXT.split()
_TOOL_FRAGMENTS = 3
_DEFAULT_TOOL = "get_weather"

# HTTP status -> the AWS error code Bedrock Runtime sends with it (botocore service model error shapes).
_ERROR_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_ERROR_MESSAGES = {
    "ValidationException": "The provided model identifier is invalid.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": "The requested resource could not be found.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
}
_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_CROSS_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")

# Converse stop reason -> each family's own word for it.
_LLAMA_STOP = {"max_tokens": "length", "end_turn": "stop", "stop_sequence": "stop"}
_MISTRAL_STOP = {
    "max_tokens": "length",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
}

_counter = itertools.count(1)
_counter_lock = threading.Lock()


# ------------------------------------------------------------------------------------------ scenario


@dataclass(frozen=True)
class BedrockScenario:
    """How the fake Bedrock runtime answers one request (see the module docstring)."""

    chunks: int = 8
    tool: bool = False
    stop: str | None = None
    input_tokens: int | None = None
    cache_read: int = 0
    cache_write: int = 0
    status: int | None = None
    error: str | None = None
    stream_error: str | None = None
    error_after: int = 2
    chunk_delay_ms: int = 0
    delay_ms: int = 0
    abort_after: int | None = None

    @classmethod
    def parse(cls, value: str | None) -> BedrockScenario:
        """Parse ``"chunks=4,tool,cache_read=10"``; raises ``ValueError`` for unknown keywords, bad values."""
        kinds = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for token in (value or "").split(","):
            token = token.strip()
            if not token:
                continue
            name, has_value, raw = (part.strip() for part in token.partition("="))
            name = name.lower().replace("-", "_")
            kind = kinds.get(name)
            if kind is None:
                raise ValueError(f"unknown scenario keyword {name!r}; known: {', '.join(sorted(kinds))}")
            if kind == "bool":
                values[name] = not has_value or raw.lower() in ("1", "true", "yes", "on")
            elif "int" in kind:
                if not raw.isdigit():
                    raise ValueError(f"scenario field {name!r} needs a non-negative integer, got {raw!r}")
                values[name] = int(raw)
            else:
                if not raw:
                    raise ValueError(f"scenario field {name!r} needs a value")
                values[name] = raw
        return cls(**values)


# ----------------------------------------------------------------------------------------- embeddings


def _embedding(request: Mapping[str, Any]) -> BedrockReply:
    """Amazon Titan Text Embeddings: ``{"embedding": [...], "inputTextTokenCount": N}``."""
    dimensions = request.get("dimensions") if isinstance(request.get("dimensions"), int) else 8
    tokens = max(1, _count_words(request.get("inputText", "")))
    body = {"embedding": [round(0.01 * (i + 1), 2) for i in range(dimensions)], "inputTextTokenCount": tokens}
    headers = {**_json_headers(), "X-Amzn-Bedrock-Input-Token-Count": str(tokens)}
    return BedrockReply(200, headers, _dumps(body))


# --------------------------------------------------------------------------------------------- reply


@dataclass(frozen=True)
class BedrockReply:
    """A complete fake HTTP reply: a body, or event-stream messages when ``events`` is not None."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[bytes] | None = field(default=None)

    @property
    def content(self) -> bytes:
        return b"".join(self.events) if self.events is not None else self.body


def route(method: str, path: str, body: bytes, scenario: BedrockScenario) -> BedrockReply:
    """Answer ``POST /model/{modelId}/{converse|converse-stream|invoke|invoke-with-response-stream}``."""
    parts = path.split("?", 1)[0].split("/")
    if method.upper() != "POST" or len(parts) != 4 or parts[1] != "model":
        return error_reply(404, "UnknownOperationException", f"Unknown operation {method} {path}")
    model_id, action = unquote(parts[2]), parts[3]
    if scenario.status is not None:
        return error_reply(scenario.status, scenario.error)
    try:
        request = json.loads(body) if body else {}
    except ValueError:
        return error_reply(400, "ValidationException", "Malformed input request, please reformat your input.")
    if not isinstance(request, dict):
        return error_reply(400, "ValidationException", "Malformed input request, please reformat your input.")
    if action == "converse":
        return BedrockReply(200, _json_headers(), _dumps(converse(request, scenario)))
    if action == "converse-stream":
        return BedrockReply(200, _stream_headers(None), events=converse_events(request, scenario))
    family = family_of(model_id)
    if family is None:
        return error_reply(400, "ValidationException")
    if action == "invoke" and family == "embed":
        return _embedding(request)
    if action == "invoke":
        payload, headers = invoke(family, request, scenario)
        return BedrockReply(200, {**_json_headers(), **headers}, _dumps(payload))
    if action == "invoke-with-response-stream":
        return BedrockReply(
            200, _stream_headers("application/json"), events=invoke_events(family, request, scenario)
        )
    return error_reply(404, "UnknownOperationException", f"Unknown operation {action}")


def error_reply(status: int, code: str | None = None, message: str | None = None) -> BedrockReply:
    """An AWS JSON error: ``{"message": ...}``, and the code in the ``x-amzn-ErrorType`` header."""
    code = code or _ERROR_CODES.get(status, "InternalServerException")
    headers = _json_headers()
    headers["x-amzn-ErrorType"] = f"{code}:{_NAMESPACE}"
    body = {"message": message or _ERROR_MESSAGES.get(code, f"Fake {code}.")}
    return BedrockReply(status, headers, _dumps(body))


def family_of(model_id: str) -> str | None:
    """``anthropic``, ``nova``, ``llama``, ``mistral`` or ``embed`` for a model id, ARN or cross-region id."""
    name = model_id.rsplit("/", 1)[-1].lower()
    for prefix in _CROSS_REGION_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if "embed" in name:
        return "embed"
    if name.startswith("anthropic."):
        return "anthropic"
    if name.startswith("amazon.nova"):
        return "nova"
    if name.startswith("meta."):
        return "llama"
    if name.startswith("mistral."):
        return "mistral"
    return None


# ------------------------------------------------------------------------------------------ the answer


@dataclass(frozen=True)
class _Answer:
    """What the fake model says: words, an optional tool call, the stop reason and the token counts."""

    words: list[str]
    tool: tuple[str, str, dict[str, Any]] | None  # (id, name, input)
    stop: str
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write: int

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def fragments(self) -> list[str]:
        """The tool input as JSON, in ``_TOOL_FRAGMENTS`` pieces."""
        assert self.tool is not None
        text = json.dumps(self.tool[2], separators=(",", ":"))
        size = -(-len(text) // _TOOL_FRAGMENTS)
        return [text[i : i + size] for i in range(0, len(text), size)]

    def deltas(self) -> list[str]:
        """The words as streamed: the first bare, the others with their leading space."""
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]


def _answer(
    request: Mapping[str, Any], scenario: BedrockScenario, max_tokens: Any, tool_name: str | None
) -> _Answer:
    words = [_ANSWER[i % len(_ANSWER)] for i in range(scenario.chunks)]
    stop = scenario.stop or "end_turn"
    tool = None
    if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
        words = words[:max_tokens]
        stop = scenario.stop or "max_tokens"
    elif scenario.tool:
        tool = (
            f"tooluse_fake{_next():04d}",
            tool_name or _DEFAULT_TOOL,
            {"city": "Paris", "unit": "celsius"},
        )
        stop = scenario.stop or "tool_use"
    output = len(words) + (_TOOL_FRAGMENTS if tool else 0)
    input_tokens = (
        scenario.input_tokens if scenario.input_tokens is not None else max(1, _count_words(request))
    )
    return _Answer(words, tool, stop, input_tokens, output, scenario.cache_read, scenario.cache_write)


def _count_words(value: Any) -> int:
    """Words of every text the request holds (message text, system prompts, prompts)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(
            _count_words(v)
            for k, v in value.items()
            if k in ("text", "content", "prompt", "messages", "system")
        )
    if isinstance(value, list):
        return sum(_count_words(v) for v in value)
    return 0


def _converse_usage(answer: _Answer) -> dict[str, int]:
    usage = {
        "inputTokens": answer.input_tokens,
        "outputTokens": answer.output_tokens,
        "totalTokens": answer.input_tokens + answer.cache_read + answer.cache_write + answer.output_tokens,
    }
    if answer.cache_read or answer.cache_write:
        usage["cacheReadInputTokens"] = answer.cache_read
        usage["cacheWriteInputTokens"] = answer.cache_write
    return usage


def _invocation_metrics(answer: _Answer) -> dict[str, int]:
    metrics = {
        "inputTokenCount": answer.input_tokens,
        "outputTokenCount": answer.output_tokens,
        "invocationLatency": 120,
        "firstByteLatency": 40,
    }
    if answer.cache_read or answer.cache_write:
        metrics["cacheReadInputTokenCount"] = answer.cache_read
        metrics["cacheWriteInputTokenCount"] = answer.cache_write
    return metrics


def _token_headers(answer: _Answer) -> dict[str, str]:
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": str(answer.input_tokens),
        "X-Amzn-Bedrock-Output-Token-Count": str(answer.output_tokens),
        "X-Amzn-Bedrock-Invocation-Latency": "120",
    }
    if answer.cache_read or answer.cache_write:
        headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(answer.cache_read)
        headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(answer.cache_write)
    return headers


# -------------------------------------------------------------------------------------------- Converse


def _converse_tool_name(request: Mapping[str, Any]) -> str | None:
    tools = (request.get("toolConfig") or {}).get("tools") or []
    for tool in tools:
        spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
        if isinstance(spec, Mapping) and spec.get("name"):
            return str(spec["name"])
    return None


def _converse_max_tokens(request: Mapping[str, Any]) -> Any:
    config = request.get("inferenceConfig") or {}
    return config.get("maxTokens", config.get("max_new_tokens"))


def converse(request: Mapping[str, Any], scenario: BedrockScenario) -> dict[str, Any]:
    """The body of a Converse response (also the Amazon Nova InvokeModel body, but for its usage names)."""
    answer = _answer(request, scenario, _converse_max_tokens(request), _converse_tool_name(request))
    return {
        "output": {"message": {"role": "assistant", "content": _converse_blocks(answer)}},
        "stopReason": answer.stop,
        "usage": _converse_usage(answer),
        "metrics": {"latencyMs": 120},
    }


def _converse_blocks(answer: _Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.words:
        blocks.append({"text": answer.text})
    if answer.tool:
        tool_id, name, arguments = answer.tool
        blocks.append({"toolUse": {"toolUseId": tool_id, "name": name, "input": arguments}})
    return blocks


def _converse_stream_payloads(answer: _Answer, scenario: BedrockScenario) -> list[tuple[str, dict[str, Any]]]:
    """(event type, payload) of a Converse stream; an exception event is ("!" + name, payload)."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    deltas = 0
    index = 0

    def delta(payload: dict[str, Any]) -> bool:
        nonlocal deltas
        if scenario.stream_error and deltas == scenario.error_after:
            events.append(("!" + scenario.stream_error, _exception_payload(scenario.stream_error)))
            return False
        events.append(("contentBlockDelta", {"delta": payload, "contentBlockIndex": index}))
        deltas += 1
        return True

    if answer.words:
        for text in answer.deltas():
            if not delta({"text": text}):
                return events
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    if answer.tool:
        tool_id, name, _ = answer.tool
        start = {"toolUse": {"toolUseId": tool_id, "name": name}}
        events.append(("contentBlockStart", {"start": start, "contentBlockIndex": index}))
        for fragment in answer.fragments():
            if not delta({"toolUse": {"input": fragment}}):
                return events
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    if scenario.stream_error and deltas <= scenario.error_after:
        events.append(("!" + scenario.stream_error, _exception_payload(scenario.stream_error)))
        return events
    events.append(("messageStop", {"stopReason": answer.stop}))
    events.append(("metadata", {"usage": _converse_usage(answer), "metrics": {"latencyMs": 120}}))
    return events


def converse_events(request: Mapping[str, Any], scenario: BedrockScenario) -> list[bytes]:
    """The event-stream messages of a ConverseStream response."""
    answer = _answer(request, scenario, _converse_max_tokens(request), _converse_tool_name(request))
    return [_frame(kind, payload) for kind, payload in _converse_stream_payloads(answer, scenario)]


def _frame(kind: str, payload: dict[str, Any]) -> bytes:
    if kind.startswith("!"):
        return encode_exception(kind[1:], payload)
    return encode_event(kind, payload)


def _exception_payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"message": f"Fake {name} in the middle of the stream."}
    if name == "modelStreamErrorException":
        payload.update(originalStatusCode=500, originalMessage="The model stopped unexpectedly.")
    return payload


# ----------------------------------------------------------------------------------------- InvokeModel


def invoke(
    family: str, request: Mapping[str, Any], scenario: BedrockScenario
) -> tuple[dict[str, Any], dict[str, str]]:
    """The InvokeModel JSON body of a model family, and the token-count headers Bedrock adds to it."""
    answer = _family_answer(family, request, scenario)
    if family == "anthropic":
        body = _anthropic_message(request, answer)
    elif family == "nova":
        body = {
            "output": {"message": {"role": "assistant", "content": _converse_blocks(answer)}},
            "stopReason": answer.stop,
            "usage": _nova_usage(answer),
        }
    elif family == "llama":
        body = {
            "generation": answer.text,
            "prompt_token_count": answer.input_tokens,
            "generation_token_count": answer.output_tokens,
            "stop_reason": _LLAMA_STOP.get(answer.stop, answer.stop),
        }
    elif "messages" in request:  # Mistral Large: the chat format
        body = _mistral_chat(answer)
    else:
        body = {
            "outputs": [{"text": answer.text, "stop_reason": _MISTRAL_STOP.get(answer.stop, answer.stop)}]
        }
    return body, _token_headers(answer)


def _family_answer(family: str, request: Mapping[str, Any], scenario: BedrockScenario) -> _Answer:
    if family == "anthropic":
        tools = request.get("tools") or []
        name = tools[0].get("name") if tools and isinstance(tools[0], Mapping) else None
        return _answer(request, scenario, request.get("max_tokens"), name)
    if family == "nova":
        return _answer(request, scenario, _converse_max_tokens(request), _converse_tool_name(request))
    if family == "llama":
        return _answer(request, scenario, request.get("max_gen_len"), None)
    tools = request.get("tools") or []
    function = tools[0].get("function") if tools and isinstance(tools[0], Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    return _answer(request, scenario, request.get("max_tokens"), name)


def _nova_usage(answer: _Answer) -> dict[str, int]:
    # Nova's InvokeModel body names the cache counts `...TokenCount`, unlike Converse's `...Tokens`.
    return {
        "inputTokens": answer.input_tokens,
        "outputTokens": answer.output_tokens,
        "totalTokens": answer.input_tokens + answer.cache_read + answer.cache_write + answer.output_tokens,
        "cacheReadInputTokenCount": answer.cache_read,
        "cacheWriteInputTokenCount": answer.cache_write,
    }


def _anthropic_usage(answer: _Answer, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": answer.input_tokens,
        "cache_creation_input_tokens": answer.cache_write,
        "cache_read_input_tokens": answer.cache_read,
        "output_tokens": output_tokens,
    }


def _anthropic_message(request: Mapping[str, Any], answer: _Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.words:
        content.append({"type": "text", "text": answer.text})
    if answer.tool:
        tool_id, name, arguments = answer.tool
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": arguments})
    return {
        "id": f"msg_bdrk_fake{_next():04d}",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-haiku-20240307",
        "content": content,
        "stop_reason": answer.stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(answer, answer.output_tokens),
    }


def _mistral_chat(answer: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.tool:
        tool_id, name, arguments = answer.tool
        message["tool_calls"] = [
            {
                "id": tool_id,
                "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))},
            }
        ]
    return {
        "id": f"fake-mistral-{_next():04d}",
        "object": "chat.completion",
        "model": "mistral-large-2407",
        "choices": [
            {"index": 0, "message": message, "stop_reason": _MISTRAL_STOP.get(answer.stop, answer.stop)}
        ],
        "usage": {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens,
        },
    }


def invoke_events(family: str, request: Mapping[str, Any], scenario: BedrockScenario) -> list[bytes]:
    """The ``chunk`` messages of an InvokeModelWithResponseStream response (an exception message on error)."""
    answer = _family_answer(family, request, scenario)
    if family == "anthropic":
        payloads = _anthropic_stream(answer)
    elif family == "nova":
        payloads = _nova_stream(answer)
    elif family == "llama":
        payloads = _llama_stream(answer)
    else:
        payloads = _mistral_stream(answer, chat="messages" in request)
    messages: list[bytes] = []
    deltas = 0
    for payload, is_delta in payloads:
        if scenario.stream_error and is_delta and deltas == scenario.error_after:
            break
        messages.append(encode_event("chunk", {"bytes": base64.b64encode(_dumps(payload)).decode()}))
        deltas += is_delta
    else:
        if not scenario.stream_error:
            return messages
    messages.append(
        encode_exception(scenario.stream_error or "", _exception_payload(scenario.stream_error or ""))
    )
    return messages


# Each stream below is a list of (JSON payload, is it an output delta); the last payload gets the metrics.


def _with_metrics(
    payloads: list[tuple[dict[str, Any], bool]], answer: _Answer
) -> list[tuple[dict[str, Any], bool]]:
    payloads[-1][0]["amazon-bedrock-invocationMetrics"] = _invocation_metrics(answer)
    return payloads


def _anthropic_stream(answer: _Answer) -> list[tuple[dict[str, Any], bool]]:
    message = {
        "id": f"msg_bdrk_fake{_next():04d}", "type": "message", "role": "assistant",
        "model": "claude-3-haiku-20240307", "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": _anthropic_usage(answer, 1),
    }  # fmt: skip
    out: list[tuple[dict[str, Any], bool]] = [({"type": "message_start", "message": message}, False)]
    index = 0
    if answer.words:
        out.append(
            (
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                False,
            )
        )
        for text in answer.deltas():
            out.append(
                (
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": text},
                    },
                    True,
                )
            )
        out.append(({"type": "content_block_stop", "index": 0}, False))
        index = 1
    if answer.tool:
        tool_id, name, _ = answer.tool
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        out.append(({"type": "content_block_start", "index": index, "content_block": block}, False))
        for fragment in answer.fragments():
            delta = {"type": "input_json_delta", "partial_json": fragment}
            out.append(({"type": "content_block_delta", "index": index, "delta": delta}, True))
        out.append(({"type": "content_block_stop", "index": index}, False))
    out.append((
        {"type": "message_delta", "delta": {"stop_reason": answer.stop, "stop_sequence": None},
         "usage": {"output_tokens": answer.output_tokens}},
        False,
    ))  # fmt: skip
    out.append(({"type": "message_stop"}, False))
    return _with_metrics(out, answer)


def _nova_stream(answer: _Answer) -> list[tuple[dict[str, Any], bool]]:
    out: list[tuple[dict[str, Any], bool]] = [({"messageStart": {"role": "assistant"}}, False)]
    index = 0
    if answer.words:
        for text in answer.deltas():
            out.append(({"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}, True))
        out.append(({"contentBlockStop": {"contentBlockIndex": 0}}, False))
        index = 1
    if answer.tool:
        tool_id, name, _ = answer.tool
        start = {"start": {"toolUse": {"toolUseId": tool_id, "name": name}}, "contentBlockIndex": index}
        out.append(({"contentBlockStart": start}, False))
        for fragment in answer.fragments():
            delta = {"delta": {"toolUse": {"input": fragment}}, "contentBlockIndex": index}
            out.append(({"contentBlockDelta": delta}, True))
        out.append(({"contentBlockStop": {"contentBlockIndex": index}}, False))
    out.append(({"messageStop": {"stopReason": answer.stop}}, False))
    out.append(({"metadata": {"usage": _nova_usage(answer), "metrics": {}, "trace": {}}}, False))
    return _with_metrics(out, answer)


def _llama_stream(answer: _Answer) -> list[tuple[dict[str, Any], bool]]:
    out: list[tuple[dict[str, Any], bool]] = []
    for i, text in enumerate(answer.deltas()):
        chunk = {
            "generation": text,
            "prompt_token_count": answer.input_tokens if i == 0 else None,
            "generation_token_count": i + 1,
            "stop_reason": None,
        }
        out.append((chunk, True))
    final = {
        "generation": "",
        "prompt_token_count": None if out else answer.input_tokens,
        "generation_token_count": answer.output_tokens,
        "stop_reason": _LLAMA_STOP.get(answer.stop, answer.stop),
    }
    out.append((final, False))
    return _with_metrics(out, answer)


def _mistral_stream(answer: _Answer, chat: bool) -> list[tuple[dict[str, Any], bool]]:
    stop = _MISTRAL_STOP.get(answer.stop, answer.stop)
    out: list[tuple[dict[str, Any], bool]] = []
    if not chat:
        for text in answer.deltas():
            out.append(({"outputs": [{"text": text, "stop_reason": None}]}, True))
        out.append(({"outputs": [{"text": "", "stop_reason": stop}]}, False))
        return _with_metrics(out, answer)
    for text in answer.deltas():
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "stop_reason": None}
        out.append(({"choices": [choice]}, True))
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if answer.tool:
        message["tool_calls"] = _mistral_chat(answer)["choices"][0]["message"]["tool_calls"]
    out.append(({"choices": [{"index": 0, "message": message, "stop_reason": stop}]}, bool(answer.tool)))
    return _with_metrics(out, answer)


# ---------------------------------------------------------------------------------- event-stream framing


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message with string headers.

    Layout: total length (4 bytes, big endian), headers length (4), CRC32 of those 8 bytes (4), the
    headers, the payload, and the CRC32 of everything before it (4).
    """
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # 7: the string header type
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", 7, len(raw_value)) + raw_value


def encode_event(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """An ``event`` message; as on Bedrock, the JSON payload has a ``p`` padding member botocore ignores."""
    body = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"[: 8 + len(event_type)]}
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, _dumps(body))


def encode_exception(exception_type: str, payload: Mapping[str, Any]) -> bytes:
    """An ``exception`` message (botocore raises ``EventStreamError`` with Code = ``exception_type``)."""
    headers = {
        ":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception",
    }  # fmt: skip
    return encode_message(headers, _dumps(payload))


# ------------------------------------------------------------------------------------------- helpers


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json", "x-amzn-RequestId": _request_id()}


def _stream_headers(content_type: str | None) -> dict[str, str]:
    headers = {"content-type": EVENTSTREAM_CONTENT_TYPE, "x-amzn-RequestId": _request_id()}
    if content_type:
        headers["X-Amzn-Bedrock-Content-Type"] = content_type
    return headers


def _request_id() -> str:
    return f"00000000-0000-4000-8000-{_next():012d}"


def _next() -> int:
    with _counter_lock:
        return next(_counter)


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def decode_messages(data: bytes) -> Sequence[tuple[dict[str, str], bytes]]:
    """Split event-stream bytes into (headers, payload) pairs; checks both CRCs (for tests and debugging)."""
    out: list[tuple[dict[str, str], bytes]] = []
    offset = 0
    while offset < len(data):
        total, headers_length = struct.unpack_from(">II", data, offset)
        (prelude_crc,) = struct.unpack_from(">I", data, offset + 8)
        if zlib.crc32(data[offset : offset + 8]) != prelude_crc:
            raise ValueError("prelude CRC mismatch")
        (message_crc,) = struct.unpack_from(">I", data, offset + total - 4)
        if zlib.crc32(data[offset : offset + total - 4]) != message_crc:
            raise ValueError("message CRC mismatch")
        headers: dict[str, str] = {}
        position, end = offset + 12, offset + 12 + headers_length
        while position < end:
            name_length = data[position]
            name = data[position + 1 : position + 1 + name_length].decode()
            position += 1 + name_length
            kind, value_length = struct.unpack_from(">BH", data, position)
            if kind != 7:
                raise ValueError(f"header type {kind} is not a string")
            headers[name] = data[position + 3 : position + 3 + value_length].decode()
            position += 3 + value_length
        out.append((headers, data[end : offset + total - 4]))
        offset += total
    return out
