"""Pure builders for fake Anthropic Messages API responses (``/v1/messages``, ``/v1/messages/count_tokens``).

The counterpart of :mod:`llmlens.demo.fake_bodies` for the Anthropic wire format: a decoded request body
plus a :class:`~llmlens.demo.fake_bodies.Scenario` in, a :class:`~llmlens.demo.fake_bodies.FakeReply`
out, no I/O. :mod:`llmlens.demo.fake_server` serves these paths with it (the ``anthropic`` SDK puts
``/v1`` in its paths, so its ``base_url`` is the server root, ``http://127.0.0.1:PORT``); a benchmark
can hand the bytes to an ``httpx2.MockTransport``::

    reply = route("POST", "/v1/messages", request_json, Scenario.parse("chunks=34"))

Shapes follow api.anthropic.com (checked against the ``anthropic`` SDK types, and against recorded real
responses in ``tests/recordings/anthropic/``):

* a Message: ``{"model", "id", "type": "message", "role": "assistant", "content": [blocks], "stop_reason",
  "stop_sequence", "usage"}``; ``usage.input_tokens`` EXCLUDES the cached tokens, which are reported
  apart in ``cache_read_input_tokens`` and ``cache_creation_input_tokens``, as the real API does;
* a stream: ``message_start`` (usage with input and cache counts, ``output_tokens: 1``),
  ``content_block_start``, one ``ping`` after the first block start, ``content_block_delta``
  (``thinking_delta`` + ``signature_delta``, ``text_delta``, ``input_json_delta`` starting with an empty
  fragment), ``content_block_stop``, ``message_delta`` (stop reason and the cumulative usage: input,
  cache and output counts) and ``message_stop``; every frame is ``event: <type>`` + ``data: <json>``;
* errors: ``{"type": "error", "error": {"type": "rate_limit_error", "message": ...}, "request_id": ...}``
  with the HTTP status the real API uses for that type (429 ``rate_limit_error``, 529
  ``overloaded_error``, ...); a failure inside a stream is an ``event: error`` frame with the same body.

Scenario keywords (the ``x-fake-scenario`` header, parsed by ``Scenario``) that apply here:

``chunks=N``          a text answer of N words, one ``text_delta`` per word (default 8)
``cached=N``          ``cache_read_input_tokens``
``cache_write=N``     ``cache_creation_input_tokens`` (and ``cache_creation.ephemeral_5m_input_tokens``)
``thinking=N``        a ``thinking`` block of N words before the answer (one ``thinking_delta`` per word,
                      then a ``signature_delta``); ``usage.output_tokens_details.thinking_tokens`` = N,
                      a part of ``output_tokens`` (answer words + N)
``tool``              call the first client tool of the request (``tool_choice`` ``any``/``tool`` force it
                      without this keyword, ``none`` prevents it); streams send the input JSON in fragments
``refusal``           a short answer with ``stop_reason: "refusal"``
``finish=WORD``       use WORD as the ``stop_reason`` (e.g. ``pause_turn``)
``status=CODE``       an HTTP error with the Anthropic error body for that status (429: ``retry-after: 0``)
``stream_error=TYPE`` streams: after two content deltas, an ``event: error`` of that type (e.g.
                      ``overloaded_error``) ends the stream, as the real API does when it fails mid-stream
``no_usage``          leave ``usage`` out (the real API always sends it; the SDK's ``messages.stream()``
                      helper cannot accumulate such a stream, ``create(stream=True)`` can)
``delay_ms``, ``chunk_delay_ms``, ``abort_after=N``
                      applied by the HTTP server, as for the OpenAI routes (``abort_after`` counts frames)

``max_tokens`` below the answer's length cuts it short with ``stop_reason: "max_tokens"``. A model named
``fake-error-<CODE>`` means ``status=<CODE>`` when no header is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmlens.demo.fake_bodies import (
    FakeReply,
    Scenario,
    Triple,
    _dumps,
    _example_value,
    _new_id,
    _split_arguments,
    _text_fragments,
    _words,
)

__all__ = [
    "COUNT_TOKENS_PATH",
    "MESSAGES_PATH",
    "count_tokens",
    "error_reply",
    "handles",
    "message",
    "message_events",
    "route",
]

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_PATHS = frozenset((MESSAGES_PATH, COUNT_TOKENS_PATH))

_THINKING_TEXT = (
    "Let me think about what the user asked and how to answer it briefly, "
    "checking each step before I write the final reply."
)
_THINKING_WORDS = tuple(_THINKING_TEXT.split())
_REFUSAL_TEXT = "I can't help with that."
_SIGNATURE = "ZmFrZS1zaWduYXR1cmU="  # base64 of "fake-signature": real signatures are opaque base64
_SERVICE_TIER = "standard"

# status -> (error type, canned message), as the real API sends them.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (fake provider)."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API (fake provider)."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit (fake provider)."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_EVENT_ERROR_MESSAGES = {"overloaded_error": "Overloaded", "api_error": "Internal server error"}


def handles(path: str) -> bool:
    """Whether `path` (query string allowed, e.g. the beta ``?beta=true``) is an Anthropic route."""
    return path.split("?", 1)[0].rstrip("/") in _PATHS


def route(method: str, path: str, request: object, scenario: Scenario) -> FakeReply:
    """Dispatch one request the way the fake server does (minus delays and aborts)."""
    endpoint = path.split("?", 1)[0].rstrip("/")
    if method.upper() != "POST" or endpoint not in _PATHS:
        return FakeReply.from_triple(error_reply(404, f"Not found: {method.upper()} {endpoint}"))
    model = request.get("model") if isinstance(request, dict) else None
    if scenario.status is not None:
        named = model if isinstance(model, str) else None
        return FakeReply.from_triple(error_reply(scenario.status, model=named))
    if not isinstance(request, dict):
        return FakeReply.from_triple(error_reply(400, "There was an error parsing the body of your request."))
    if not isinstance(model, str) or not model:
        return FakeReply.from_triple(error_reply(400, "model: Field required"))
    if endpoint == COUNT_TOKENS_PATH:
        return FakeReply.from_triple(count_tokens(request, scenario))
    if request.get("stream"):
        return FakeReply(status=200, headers=_sse_headers(), events=message_events(request, scenario))
    return FakeReply.from_triple(message(request, scenario))


# ---------------------------------------------------------------------------------------------- errors


def error_reply(status: int, message: str | None = None, *, model: str | None = None) -> Triple:
    """An Anthropic error body: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    default_type = "api_error" if status >= 500 else "invalid_request_error"
    err_type, template = _ERRORS.get(status, (default_type, f"Fake error {status}."))
    headers = _json_headers()
    if status == 429:
        headers["retry-after"] = "0"  # an SDK with retries retries at once instead of sleeping in tests
    payload = {
        "type": "error",
        "error": {"type": err_type, "message": message or template.format(model=model or "unknown")},
        "request_id": headers["request-id"],
    }
    return status, headers, _dumps(payload)


def _error_event(err_type: str) -> bytes:
    message = _EVENT_ERROR_MESSAGES.get(err_type, f"Fake {err_type} (fake provider).")
    return _frame({"type": "error", "error": {"type": err_type, "message": message}})


# -------------------------------------------------------------------------------------------- encoding


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json", "request-id": _new_id("req_fake")}


def _sse_headers() -> dict[str, str]:
    headers = _json_headers()
    headers["content-type"] = "text/event-stream; charset=utf-8"
    headers["cache-control"] = "no-cache"
    return headers


def _frame(payload: Mapping[str, Any]) -> bytes:
    return f"event: {payload['type']}\n".encode() + b"data: " + _dumps(payload) + b"\n\n"


# ---------------------------------------------------------------------------------------- the answer


@dataclass(frozen=True)
class _Plan:
    """What the fake model 'says': an optional thinking block, then text or a tool call."""

    kind: str  # "text" | "refusal" | "tool"
    fragments: tuple[str, ...]
    thinking: tuple[str, ...]
    stop_reason: str
    tool_name: str | None = None
    tool_id: str | None = None

    @property
    def full(self) -> str:
        return "".join(self.fragments)

    @property
    def output_tokens(self) -> int:
        return len(self.fragments) + len(self.thinking)


def _client_tools(request: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, input_schema) of each client tool; server tools (``type: web_search_...``) are skipped."""
    found = []
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str) and "input_schema" in tool:
            schema = tool.get("input_schema")
            found.append((tool["name"], schema if isinstance(schema, dict) else {}))
    return found


def _pick_tool(request: Mapping[str, Any], scenario: Scenario) -> tuple[str, Mapping[str, Any]] | None:
    tools = _client_tools(request)
    choice = request.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not tools or kind == "none":
        return None
    if kind == "tool":
        name = choice.get("name")  # type: ignore[union-attr]
        return next((tool for tool in tools if tool[0] == name), (str(name), {}))
    if scenario.tool or kind == "any":
        return tools[0]
    return None


def _tool_input(schema: Mapping[str, Any]) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return json.dumps({"city": "Paris"})
    return json.dumps({name: _example_value(spec) for name, spec in properties.items()})


def _plan(request: Mapping[str, Any], scenario: Scenario) -> _Plan:
    words = [_THINKING_WORDS[i % len(_THINKING_WORDS)] for i in range(scenario.thinking)]
    thinking = tuple(word if i == 0 else f" {word}" for i, word in enumerate(words))
    tool = _pick_tool(request, scenario)
    if tool is not None:
        name, schema = tool
        fragments = _split_arguments(_tool_input(schema))
        return _Plan("tool", fragments, thinking, scenario.finish or "tool_use", name, _new_id("toolu_fake"))
    if scenario.refusal:
        words = _REFUSAL_TEXT.split()
        fragments = tuple(w if i == 0 else f" {w}" for i, w in enumerate(words))
        return _Plan("refusal", fragments, thinking, scenario.finish or "refusal")
    count, stop = scenario.chunks, "end_turn"
    max_tokens = request.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        budget = max_tokens - len(thinking)  # thinking tokens count against max_tokens
        if 0 <= budget < count:
            count, stop = budget, "max_tokens"
    return _Plan("text", _text_fragments(count), thinking, scenario.finish or stop)


# ------------------------------------------------------------------------------------------- usage


def _prompt_tokens(request: Mapping[str, Any]) -> int:
    """Words of the system prompt and of every message, plus 3 per message (like fake_bodies)."""
    messages = request.get("messages")
    listed = messages if isinstance(messages, list) else []
    counted = sum(3 + _words(m.get("content")) for m in listed if isinstance(m, dict))
    return counted + _words(request.get("system"))


def _usage(
    request: Mapping[str, Any], scenario: Scenario, output_tokens: int, thinking: int
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        # Anthropic's input_tokens leave out what was read from or written to the cache.
        "input_tokens": _prompt_tokens(request),
        "cache_creation_input_tokens": scenario.cache_write,
        "cache_read_input_tokens": scenario.cached,
        "cache_creation": {"ephemeral_5m_input_tokens": scenario.cache_write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
    }
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    usage["service_tier"] = _SERVICE_TIER
    return usage


# --------------------------------------------------------------------------------------- non-stream


def _blocks(plan: _Plan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if plan.thinking:
        blocks.append({"type": "thinking", "thinking": "".join(plan.thinking), "signature": _SIGNATURE})
    if plan.kind == "tool":
        tool_input = json.loads(plan.full)
        blocks.append({"type": "tool_use", "id": plan.tool_id, "name": plan.tool_name, "input": tool_input})
    else:
        blocks.append({"type": "text", "text": plan.full})
    return blocks


def _envelope(request: Mapping[str, Any], message_id: str) -> dict[str, Any]:
    return {"model": request.get("model"), "id": message_id, "type": "message", "role": "assistant"}


def message(request: Mapping[str, Any], scenario: Scenario) -> Triple:
    """Non-streaming ``POST /v1/messages`` -> (status, headers, body)."""
    plan = _plan(request, scenario)
    payload = _envelope(request, _new_id("msg_fake"))
    payload.update(content=_blocks(plan), stop_reason=plan.stop_reason, stop_sequence=None)
    if not scenario.no_usage:
        payload["usage"] = _usage(request, scenario, plan.output_tokens, len(plan.thinking))
    return 200, _json_headers(), _dumps(payload)


def count_tokens(request: Mapping[str, Any], scenario: Scenario) -> Triple:
    """``POST /v1/messages/count_tokens`` -> ``{"input_tokens": N}`` (every input token, cache or not)."""
    return 200, _json_headers(), _dumps({"input_tokens": _prompt_tokens(request)})


# ------------------------------------------------------------------------------------------- stream


def _block_events(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def message_events(request: Mapping[str, Any], scenario: Scenario) -> list[bytes]:
    """Streaming ``POST /v1/messages``: the SSE frames, ``message_start`` to ``message_stop``.

    With ``stream_error`` the frames stop after two content deltas with an ``event: error`` frame.
    """
    plan = _plan(request, scenario)
    start = _envelope(request, _new_id("msg_fake"))
    start.update(content=[], stop_reason=None, stop_sequence=None)
    if not scenario.no_usage:
        start["usage"] = _usage(request, scenario, 1, 0)
        start["usage"].pop("output_tokens_details", None)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    index = 0
    if plan.thinking:
        deltas = [{"type": "thinking_delta", "thinking": fragment} for fragment in plan.thinking]
        deltas.append({"type": "signature_delta", "signature": _SIGNATURE})
        events += _block_events(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)
        index += 1
    if plan.kind == "tool":
        block = {"type": "tool_use", "id": plan.tool_id, "name": plan.tool_name, "input": {}}
        fragments = ("", *plan.fragments)  # the real API opens with an empty fragment
        deltas = [{"type": "input_json_delta", "partial_json": fragment} for fragment in fragments]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": fragment} for fragment in plan.fragments]
    events += _block_events(index, block, deltas)
    events.insert(2, {"type": "ping"})  # after the first content_block_start, as the real API does
    usage: dict[str, Any] = {}
    if not scenario.no_usage:
        full = _usage(request, scenario, plan.output_tokens, len(plan.thinking))
        usage = {key: full[key] for key in full if key not in ("cache_creation", "service_tier")}
    stop = {"stop_reason": plan.stop_reason, "stop_sequence": None}
    delta: dict[str, Any] = {"type": "message_delta", "delta": stop}
    if usage:
        delta["usage"] = usage
    events += [delta, {"type": "message_stop"}]
    frames = [_frame(event) for event in events]
    if scenario.stream_error:
        deltas_seen = 0
        for position, event in enumerate(events):
            if event["type"] == "content_block_delta":
                deltas_seen += 1
                if deltas_seen == 2:
                    return [*frames[: position + 1], _error_event(scenario.stream_error)]
        return [*frames[:-2], _error_event(scenario.stream_error)]
    return frames
