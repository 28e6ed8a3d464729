"""Pure builders for fake Cohere v2 API responses: ``POST /v2/chat`` (JSON, or its SSE stream) and
``POST /v2/embed``.

A decoded request body plus a :class:`~llmlens.demo.fake_bodies.Scenario` in, a
:class:`~llmlens.demo.fake_bodies.FakeReply` out, no I/O; a server (``fakes/cohere_server.py``) sends it.
Point the ``cohere`` SDK at the server root (``cohere.ClientV2(base_url="http://127.0.0.1:PORT")``)::

    reply = route("POST", "/v2/chat", request_json, Scenario.parse("chunks=12,tool"))

Shapes follow api.cohere.com (and parse with the ``cohere`` 7.x SDK types):

* a chat response: ``{"id", "message": {"role": "assistant", "content": [{"type": "text", "text"}],
  "tool_plan", "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]},
  "finish_reason", "usage"}``, finish reasons ``COMPLETE``, ``MAX_TOKENS``, ``TOOL_CALL``, ``ERROR``...;
* usage comes twice: ``billed_units`` (what is billed) and ``tokens`` (what the model consumed). As with
  the real API, the consumed input is larger: Cohere adds its own preamble (here ``PREAMBLE_TOKENS``) and
  bills only the caller's text. ``cached_tokens`` (a part of the consumed input) is sent when the
  scenario asks for it;
* a stream: ``message-start`` (the id), then per content block ``content-start``, one ``content-delta``
  per word, ``content-end`` (a ``thinking`` block first with ``thinking=N``); or, for a tool call,
  ``tool-plan-delta`` per word, ``tool-call-start``, ``tool-call-delta`` per argument fragment,
  ``tool-call-end``; then ``message-end`` with the finish reason and the usage, and last
  ``data: [DONE]``. Each other frame is ``event: <type>`` + ``data: <json>``;
* an embed response: ``{"id", "texts", "embeddings": {"float": [[...]], ...}, "meta": {"api_version",
  "billed_units": {"input_tokens"}}, "response_type": "embeddings_by_type"}``;
* errors: ``{"id", "message"}`` with the HTTP status (the SDK raises ``TooManyRequestsError`` for 429...).

Token counts: billed input = the words of every message (``text`` of content parts too); consumed input
= billed + 3 per message + ``PREAMBLE_TOKENS``; output (billed = consumed) = one per streamed fragment:
thinking words, tool-plan words, answer words and tool-argument fragments.

Scenario keywords that apply here:

``chunks=N``            a text answer of N words (default 8)
``tool``                call the first tool of the request (``tool_choice: "REQUIRED"`` forces it without
                        this keyword, ``"NONE"`` prevents it)
``thinking=N``          a ``thinking`` content block of N words before the answer
``cached=N``            ``usage.cached_tokens`` = N
``finish=WORD``         use WORD as the finish reason (e.g. ``STOP_SEQUENCE``)
``stream_error=MESSAGE`` after two content deltas, end with ``message-end`` whose finish reason is
                        ``ERROR`` and whose ``error`` is MESSAGE (non-streamed: ``ERROR``, partial text)
``no_usage``            no ``usage``
``status=CODE``         an HTTP error with a Cohere error body (429 adds ``retry-after: 0``)
``delay_ms``, ``chunk_delay_ms``, ``abort_after=N``
                        applied by the HTTP server (``abort_after`` counts SSE frames)

``max_tokens`` below the answer's length cuts it short with ``MAX_TOKENS``. A model named
``fake-error-<CODE>`` means ``status=<CODE>`` when no header is sent.
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmlens.demo.fake_bodies import FakeReply, Scenario, embeddings_vector

__all__ = [
    "CHAT_PATH",
    "DONE_FRAME",
    "EMBED_PATH",
    "PREAMBLE_TOKENS",
    "chat",
    "chat_events",
    "embed",
    "error_reply",
    "route",
]

CHAT_PATH = "/v2/chat"
DONE_FRAME = b"data: [DONE]\n\n"  # after message-end, as api.cohere.com sends it
EMBED_PATH = "/v2/embed"
PREAMBLE_TOKENS = 150  # consumed but not billed: the system preamble Cohere adds to every request
DEFAULT_DIMENSIONS = 8

_ANSWER_TEXT = (
    "Hello from the fake Cohere server. Its answers stream one word per content delta so tests can "
    "count chunks and tokens exactly."
)
_THINKING_TEXT = "Let me think about what the user asked before answering."
_ANSWER_WORDS = tuple(_ANSWER_TEXT.split())
_THINKING_WORDS = tuple(_THINKING_TEXT.split())
_TOOL_PLAN = "I will call {name} to answer the question."
_ERRORS = {
    400: "invalid request: the request body is not valid",
    401: "invalid api token",
    404: "model not found",
    422: "unprocessable entity",
    429: "You are using a Trial key, which is limited to 10 API calls / minute.",
    500: "internal server error, this has been reported to our developers",
    503: "service unavailable",
}


@dataclass(frozen=True)
class _Answer:
    """What the fake model says: thinking words, then text words or a tool call."""

    thinking: tuple[str, ...]
    text: tuple[str, ...]
    tool_name: str | None = None
    tool_plan: tuple[str, ...] = ()
    arguments: tuple[str, ...] = ()  # the argument JSON in fragments
    call_id: str = ""

    @property
    def output_tokens(self) -> int:
        return len(self.thinking) + len(self.text) + len(self.tool_plan) + len(self.arguments)


# --------------------------------------------------------------------------------------------- routing


def route(method: str, path: str, request: object, scenario: Scenario) -> FakeReply:
    """The reply to one request; unknown paths get a 404 Cohere error body."""
    body = request if isinstance(request, dict) else {}
    if method != "POST" or path not in (CHAT_PATH, EMBED_PATH):
        return error_reply(404, f"no route for {method} {path}")
    if scenario.status is not None:
        return error_reply(scenario.status)
    if path == EMBED_PATH:
        return embed(body, scenario)
    if body.get("stream"):
        return FakeReply(200, _sse_headers(), events=chat_events(body, scenario))
    return chat(body, scenario)


def error_reply(status: int, message: str | None = None) -> FakeReply:
    """A Cohere error: ``{"id", "message"}`` with the HTTP status."""
    headers = _json_headers()
    if status == 429:
        headers["retry-after"] = "0"  # an SDK configured with retries retries at once, not in a second
    text = message or _ERRORS.get(status, f"fake error {status}")
    return FakeReply(status, headers, _dumps({"id": _new_id(), "message": text}))


# ------------------------------------------------------------------------------------------------ chat


def chat(request: Mapping[str, Any], scenario: Scenario) -> FakeReply:
    """``POST /v2/chat`` without streaming."""
    answer = _plan(request, scenario)
    finish = _finish_reason(request, answer, scenario)
    text = answer.text
    if scenario.stream_error:
        text, finish = text[:2], "ERROR"
    message: dict[str, Any] = {"role": "assistant"}
    if answer.tool_name:
        message["tool_plan"] = "".join(answer.tool_plan)
        message["tool_calls"] = [_tool_call(answer, "".join(answer.arguments))]
    else:
        content: list[dict[str, Any]] = []
        if answer.thinking:
            content.append({"type": "thinking", "thinking": "".join(answer.thinking)})
        content.append({"type": "text", "text": "".join(text)})
        message["content"] = content
    payload: dict[str, Any] = {"id": _new_id(), "message": message, "finish_reason": finish}
    if not scenario.no_usage:
        payload["usage"] = _usage(request, answer, scenario)
    return FakeReply(200, _json_headers(), _dumps(payload))


def chat_events(request: Mapping[str, Any], scenario: Scenario) -> list[bytes]:
    """``POST /v2/chat`` with ``"stream": true``: the SSE frames, in order."""
    answer = _plan(request, scenario)
    events: list[dict[str, Any]] = [
        {
            "id": _new_id(),
            "type": "message-start",
            "delta": {
                "message": {
                    "role": "assistant",
                    "content": [],
                    "tool_plan": "",
                    "tool_calls": [],
                    "citations": [],
                }
            },
        }
    ]
    end: dict[str, Any] = {"finish_reason": _finish_reason(request, answer, scenario)}
    index = 0
    if answer.thinking:
        events.extend(_content_block(index, "thinking", answer.thinking))
        index += 1
    if answer.tool_name:
        events.extend(
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": word}}}
            for word in answer.tool_plan
        )
        call = _tool_call(answer, "")
        events.append({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": call}}})
        events.extend(
            {"type": "tool-call-delta", "index": 0,
             "delta": {"message": {"tool_calls": {"function": {"arguments": fragment}}}}}
            for fragment in answer.arguments
        )  # fmt: skip
        events.append({"type": "tool-call-end", "index": 0})
    else:
        words = answer.text
        if scenario.stream_error:
            words = words[:2]
            end = {"finish_reason": "ERROR", "error": scenario.stream_error}
        events.extend(_content_block(index, "text", words, close=not scenario.stream_error))
    if not scenario.no_usage:
        end["usage"] = _usage(request, answer, scenario)
    events.append({"type": "message-end", "delta": end})
    return [*(_frame(event) for event in events), DONE_FRAME]


def _content_block(index: int, kind: str, words: tuple[str, ...], close: bool = True) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"type": "content-start", "index": index, "delta": {"message": {"content": {"type": kind, kind: ""}}}}
    ]
    events.extend(
        {"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: word}}}}
        for word in words
    )
    if close:
        events.append({"type": "content-end", "index": index})
    return events


def _plan(request: Mapping[str, Any], scenario: Scenario) -> _Answer:
    thinking = _fragments(_THINKING_WORDS, scenario.thinking)
    tool = _pick_tool(request, scenario)
    if tool is not None:
        name, parameters = tool
        arguments = json.dumps({key: _example(schema) for key, schema in _properties(parameters).items()})
        return _Answer(
            thinking, (), name, _fragments(tuple(_TOOL_PLAN.format(name=name).split()), None),
            _split(arguments), f"{name}_{uuid.uuid4().hex[:12]}",
        )  # fmt: skip
    count = scenario.chunks
    max_tokens = request.get("max_tokens")
    if isinstance(max_tokens, int) and 0 <= max_tokens < count:
        count = max_tokens
    return _Answer(thinking, _fragments(_ANSWER_WORDS, count))


def _finish_reason(request: Mapping[str, Any], answer: _Answer, scenario: Scenario) -> str:
    if scenario.finish:
        return scenario.finish
    if answer.tool_name:
        return "TOOL_CALL"
    max_tokens = request.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens < scenario.chunks:
        return "MAX_TOKENS"
    return "COMPLETE"


def _usage(request: Mapping[str, Any], answer: _Answer, scenario: Scenario) -> dict[str, Any]:
    messages = [m for m in request.get("messages") or () if isinstance(m, dict)]
    billed_input = max(1, sum(_words(m.get("content")) for m in messages))
    output = answer.output_tokens
    usage: dict[str, Any] = {
        "billed_units": {"input_tokens": billed_input, "output_tokens": output},
        "tokens": {
            "input_tokens": billed_input + 3 * len(messages) + PREAMBLE_TOKENS,
            "output_tokens": output,
        },
    }
    if scenario.cached:
        usage["cached_tokens"] = scenario.cached
    return usage


def _tool_call(answer: _Answer, arguments: str) -> dict[str, Any]:
    return {
        "id": answer.call_id,
        "type": "function",
        "function": {"name": answer.tool_name, "arguments": arguments},
    }


def _pick_tool(request: Mapping[str, Any], scenario: Scenario) -> tuple[str, Mapping[str, Any]] | None:
    choice = str(request.get("tool_choice") or "").upper()
    if choice == "NONE" or not (scenario.tool or choice == "REQUIRED"):
        return None
    for tool in request.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            return function["name"], parameters if isinstance(parameters, dict) else {}
    return None


def _properties(parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = parameters.get("properties")
    return properties if isinstance(properties, dict) and properties else {"city": {"type": "string"}}


def _example(schema: object) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(str(kind), "Paris")


# ----------------------------------------------------------------------------------------------- embed

_EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")


def embed(request: Mapping[str, Any], scenario: Scenario) -> FakeReply:
    """``POST /v2/embed``: one vector per text, in every requested ``embedding_types`` (default float)."""
    texts = [t for t in request.get("texts") or () if isinstance(t, str)]
    if not texts:
        return error_reply(400, "invalid request: texts must be a non-empty list of strings")
    kinds = request.get("embedding_types") or ["float"]
    unknown = [k for k in kinds if k not in _EMBEDDING_TYPES]
    if unknown:
        return error_reply(400, f"invalid request: unknown embedding type {unknown[0]!r}")
    dimensions = request.get("output_dimension") or DEFAULT_DIMENSIONS
    vectors = [embeddings_vector(text, dimensions) for text in texts]
    embeddings = {kind: [_encode(vector, kind) for vector in vectors] for kind in kinds}
    meta: dict[str, Any] = {"api_version": {"version": "2"}}
    if not scenario.no_usage:
        meta["billed_units"] = {"input_tokens": sum(max(1, _words(t)) for t in texts)}
    payload = {
        "id": _new_id(),
        "texts": texts,
        "embeddings": embeddings,
        "meta": meta,
        "response_type": "embeddings_by_type",
    }
    return FakeReply(200, _json_headers(), _dumps(payload))


def _encode(vector: list[float], kind: str) -> Any:
    if kind == "float":
        return vector
    if kind == "int8":
        return [round(v * 127) for v in vector]
    if kind == "uint8":
        return [round((v + 1) * 127.5) for v in vector]
    if kind in ("binary", "ubinary"):  # one bit per dimension, packed 8 to a byte
        bits = [1 if v > 0 else 0 for v in vector]
        packed = [int("".join(map(str, bits[i : i + 8])).ljust(8, "0"), 2) for i in range(0, len(bits), 8)]
        return [b - 128 for b in packed] if kind == "binary" else packed
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


# ------------------------------------------------------------------------------------------------ bits


def _fragments(words: tuple[str, ...], count: int | None) -> tuple[str, ...]:
    """`count` words (cycling), each after the first with its leading space, like real tokens."""
    chosen = words if count is None else tuple(itertools.islice(itertools.cycle(words), count))
    return tuple(word if i == 0 else f" {word}" for i, word in enumerate(chosen))


def _split(arguments: str) -> tuple[str, ...]:
    size = max(1, len(arguments) // 3 + 1)  # three fragments or so: consumers must reassemble
    return tuple(arguments[i : i + size] for i in range(0, len(arguments), size))


def _words(value: object) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(part) for part in value)
    if isinstance(value, dict):
        return _words(value.get("text"))
    return 0


_ids = itertools.count(1)


def _new_id() -> str:
    # A uuid like the real API's, numbered so a test can tell calls apart in order.
    return f"00000000-0000-4000-8000-{next(_ids):012d}"


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _frame(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: ".encode() + _dumps(event) + b"\n\n"


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json", "x-request-id": str(uuid.uuid4())}


def _sse_headers() -> dict[str, str]:
    return {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-request-id": str(uuid.uuid4()),
    }
