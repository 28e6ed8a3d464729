"""Pure builders for fake OpenAI-compatible responses.

Everything here turns a decoded request body (plus a :class:`Scenario`) into response bytes without any
I/O, so the same bodies can be served by :mod:`llmlens.demo.fake_server` over real HTTP or handed to an
``httpx2.MockTransport`` in a benchmark::

    reply = route("POST", "/v1/chat/completions", request_json, Scenario.parse("chunks=34"))
    httpx2.Response(reply.status, headers=reply.headers, content=reply.content)

The shapes mirror what api.openai.com returns (checked against the ``openai`` SDK types) so the real SDK
parses them. Ids come from a process-wide counter (``chatcmpl-fake0001``, ``resp_fake0002``...), text is
deterministic, and token counts are derived from the request:

* prompt tokens: whitespace-separated words across message contents + 3 per message (legacy
  completions: the words of the prompt); raised to ``cached + cache_write`` when a scenario asks for more
  cached/written tokens than that, since cached tokens are a part of the prompt, as in the real API;
* completion tokens: the number of streamed fragments (one word per chunk for text) over all choices,
  plus the scenario's ``reasoning`` tokens: as in the real API, reasoning tokens are a part of the
  completion (output) tokens, not counted on top of them.

Timing/transport knobs of a scenario (``delay_ms``, ``chunk_delay_ms``, ``abort_after``) are not applied
here; only the HTTP server can apply them.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DONE_FRAME",
    "MODEL_ERROR_PREFIX",
    "SCENARIO_HEADER",
    "FakeReply",
    "Scenario",
    "chat_completion",
    "chat_completion_events",
    "completion",
    "completion_events",
    "embeddings",
    "embeddings_vector",
    "error_reply",
    "responses_create",
    "responses_events",
    "route",
]

SCENARIO_HEADER = "x-fake-scenario"
# A model called e.g. "fake-error-429" selects status=429 when no scenario header is sent, so a demo can
# show an error without custom headers.
MODEL_ERROR_PREFIX = "fake-error-"
DONE_FRAME = b"data: [DONE]\n\n"

Triple = tuple[int, dict[str, str], bytes]
AnswerKind = Literal["text", "refusal", "tool"]

_ANSWER_TEXT = (
    "Hello from the fake provider. This deterministic answer streams exactly one word per chunk, "
    "so tests can count chunks, tokens and latency without calling a real model."
)
_ANSWER_WORDS = tuple(_ANSWER_TEXT.split())
_REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
_DEFAULT_EMBEDDING_DIMENSIONS = 8
_SYSTEM_FINGERPRINT = "fp_fake"
_SERVICE_TIER = "default"
# One counter per id prefix, so the first chat completion really is chatcmpl-fake0001.
_counters: dict[str, itertools.count[int]] = {}
_counters_lock = threading.Lock()


# --------------------------------------------------------------------------------------------- scenario


_INT_FIELDS = frozenset(
    {"chunks", "cached", "cache_write", "reasoning", "status", "delay_ms", "chunk_delay_ms", "abort_after",
     "thinking"}
)  # fmt: skip
_FLAG_FIELDS = frozenset({"tool", "refusal", "no_usage", "none_fields", "empty_stream"})
# stream_error: the Anthropic Messages API's error event type (llmlens.demo.fake_anthropic).
_STR_FIELDS = frozenset({"finish", "stream_error"})
# Fields that take one of a fixed set of words. incomplete: the Responses API's incomplete_details.reason.
_CHOICE_FIELDS: dict[str, frozenset[str]] = {"incomplete": frozenset({"max_output_tokens", "content_filter"})}
_TRUE = frozenset({"", "1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Scenario:
    """How the fake provider should behave for one request (see the server module docstring)."""

    chunks: int = 8
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    tool: bool = False
    refusal: bool = False
    status: int | None = None
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    abort_after: int | None = None
    no_usage: bool = False
    none_fields: bool = False
    finish: str | None = None
    empty_stream: bool = False
    incomplete: str | None = None
    # Anthropic Messages only (llmlens.demo.fake_anthropic): a thinking block of N words, and an
    # `event: error` of this type in the middle of a stream.
    thinking: int = 0
    stream_error: str | None = None

    @classmethod
    def parse(cls, header_value: str | None) -> Scenario:
        """Parse ``"chunks=34,cached=5;tool"``; raises ``ValueError`` on unknown keywords or bad values."""
        values: dict[str, Any] = {}
        for token in re.split(r"[,;]", header_value or ""):
            token = token.strip()
            if not token:
                continue
            key, has_value, raw = token.partition("=")
            name = key.strip().lower().replace("-", "_")
            values[name] = _parse_field(name, raw.strip(), has_value=bool(has_value))
        return cls(**values)

    @classmethod
    def from_model(cls, model: object) -> Scenario:
        """Scenario implied by the model name alone (``fake-error-429`` -> ``status=429``)."""
        if isinstance(model, str) and model.startswith(MODEL_ERROR_PREFIX):
            code = model[len(MODEL_ERROR_PREFIX) :]
            if code.isdigit():
                return cls(status=_check_status(int(code)))
        return cls()

    @classmethod
    def for_request(cls, header_value: str | None, model: object) -> Scenario:
        """The header wins; the model-name fallback only applies when no header was sent."""
        if header_value is not None and header_value.strip():
            return cls.parse(header_value)
        return cls.from_model(model)


def _parse_field(name: str, raw: str, *, has_value: bool) -> Any:
    if name in _FLAG_FIELDS:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"scenario flag {name!r} takes no value or a boolean, got {raw!r}")
    if name in _INT_FIELDS:
        if not has_value or not raw.isdigit():
            raise ValueError(f"scenario field {name!r} needs a non-negative integer, got {raw!r}")
        return _check_status(int(raw)) if name == "status" else int(raw)
    if name in _STR_FIELDS:
        if not raw:
            raise ValueError(f"scenario field {name!r} needs a value")
        return raw
    if name in _CHOICE_FIELDS:
        allowed = _CHOICE_FIELDS[name]
        if raw not in allowed:
            raise ValueError(f"scenario field {name!r} takes one of {'|'.join(sorted(allowed))}, got {raw!r}")
        return raw
    known = sorted(_INT_FIELDS | _FLAG_FIELDS | _STR_FIELDS | set(_CHOICE_FIELDS))
    raise ValueError(f"unknown scenario keyword {name!r}; known: {', '.join(known)}")


def _check_status(code: int) -> int:
    if not 400 <= code <= 599:
        raise ValueError(f"scenario status must be an HTTP error code (400-599), got {code}")
    return code


# ------------------------------------------------------------------------------------------- the reply


@dataclass(frozen=True)
class FakeReply:
    """A complete fake HTTP reply: a JSON body, or SSE frames when ``events`` is not None."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[bytes] | None = field(default=None)

    @property
    def is_stream(self) -> bool:
        return self.events is not None

    @property
    def content(self) -> bytes:
        """The whole body at once, e.g. for ``httpx2.Response(content=...)`` in a mock transport."""
        return b"".join(self.events) if self.events is not None else self.body

    @classmethod
    def from_triple(cls, triple: Triple) -> FakeReply:
        status, headers, body = triple
        return cls(status=status, headers=headers, body=body)


def route(method: str, path: str, request: object, scenario: Scenario) -> FakeReply:
    """Dispatch one request the way the fake server does (minus delays and aborts)."""
    endpoint = path.split("?", 1)[0].rstrip("/")
    builders = _ROUTES.get(endpoint)
    if method.upper() != "POST" or builders is None:
        return FakeReply.from_triple(_invalid_url(method, endpoint))
    if scenario.status is not None:
        return FakeReply.from_triple(error_reply(scenario.status, model=_model_of(request)))
    if not isinstance(request, dict):
        return FakeReply.from_triple(error_reply(400, _UNPARSEABLE_BODY))
    if not _model_of(request):
        return FakeReply.from_triple(error_reply(400, "you must provide a model parameter", param="model"))
    unary, streaming = builders
    if request.get("stream") and streaming is not None:
        return FakeReply(status=200, headers=_sse_headers(), events=streaming(request, scenario))
    return FakeReply.from_triple(unary(request, scenario))


_UNPARSEABLE_BODY = (
    "We could not parse the JSON body of your request. "
    "(HINT: This likely means you aren't using your HTTP library correctly.)"
)


def _model_of(request: object) -> str | None:
    model = request.get("model") if isinstance(request, dict) else None
    return model if isinstance(model, str) else None


# ---------------------------------------------------------------------------------------------- errors


# (type, code, message) per status, copied from what the real API sends for these cases.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (fake provider)."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict (fake provider)."),
    422: ("invalid_request_error", None, "Unprocessable entity (fake provider)."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} (fake provider). Try again in 0s.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_reply(
    status: int,
    message: str | None = None,
    *,
    model: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> Triple:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``.

    Without ``message`` the canned message and code for ``status`` are used (e.g. 404 ``model_not_found``);
    with a custom message the code is ``code`` (default null), as for the real API's validation errors.
    """
    default_type = "server_error" if status >= 500 else "invalid_request_error"
    err_type, canned_code, template = _ERRORS.get(status, (default_type, None, f"Fake error {status}."))
    if message is None:
        message, code = template.format(model=model or "unknown"), canned_code
    headers = _json_headers()
    if status == 429:
        # Zero so an SDK configured with retries retries immediately instead of sleeping in tests.
        headers["retry-after"] = "0"
    payload = {"error": {"message": message, "type": err_type, "param": param, "code": code}}
    return status, headers, _dumps(payload)


def _invalid_url(method: str, path: str) -> Triple:
    return error_reply(404, f"Invalid URL ({method.upper()} {path})")


# ------------------------------------------------------------------------------------------ encoding


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _json_headers() -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-request-id": _new_id("req_fake"),
        "openai-version": "2020-10-01",
        "openai-processing-ms": "1",
    }


def _sse_headers() -> dict[str, str]:
    headers = _json_headers()
    headers["content-type"] = "text/event-stream; charset=utf-8"
    headers["cache-control"] = "no-cache"
    return headers


def _json_triple(payload: Mapping[str, Any]) -> Triple:
    return 200, _json_headers(), _dumps(payload)


def _data_frame(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


def _event_frame(payload: Mapping[str, Any]) -> bytes:
    return f"event: {payload['type']}\n".encode() + _data_frame(payload)


def _next_number(prefix: str) -> int:
    with _counters_lock:
        return next(_counters.setdefault(prefix, itertools.count(1)))


def _new_id(prefix: str) -> str:
    return f"{prefix}{_next_number(prefix):04d}"


# ---------------------------------------------------------------------------------------- token counts


def _words(value: object) -> int:
    """Whitespace-separated words in a content value (a string or a list of content parts)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(part) for part in value)
    if isinstance(value, dict):
        # Content parts carry their text under one of these keys depending on the part type.
        return sum(_words(value.get(key)) for key in ("text", "refusal", "content", "output", "arguments"))
    return 0


def _chat_prompt_tokens(request: Mapping[str, Any]) -> int:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(3 + _words(message.get("content")) for message in messages if isinstance(message, dict))


def _responses_prompt_tokens(request: Mapping[str, Any]) -> int:
    prompt = request.get("input")
    items = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []
    instructions = request.get("instructions")
    return sum(3 + _words(item) for item in items) + (3 + _words(instructions) if instructions else 0)


def _completion_prompts(request: Mapping[str, Any]) -> list[str | list[int]]:
    """The legacy ``prompt``: a string, a token array, or a list of either (one answer set each)."""
    return _embedding_inputs(request.get("prompt")) or [""]


def _completion_prompt_tokens(request: Mapping[str, Any]) -> int:
    return sum(len(p) if isinstance(p, list) else _words(p) for p in _completion_prompts(request))


def _input_tokens(counted: int, scenario: Scenario) -> int:
    """Prompt/input tokens: cached and cache-written tokens are part of them, so never fewer than those."""
    return max(counted, scenario.cached + scenario.cache_write)


# ------------------------------------------------------------------------------------ what to answer


@dataclass(frozen=True)
class _Answer:
    """What the fake model 'says', as the fragments a stream would send."""

    kind: AnswerKind
    fragments: tuple[str, ...]
    tool_name: str | None = None

    @property
    def full(self) -> str:
        return "".join(self.fragments)

    @property
    def tokens(self) -> int:
        return len(self.fragments)


def _text_fragments(count: int) -> tuple[str, ...]:
    # Leading spaces like real tokens, so the concatenated deltas form a normal sentence.
    words = itertools.islice(itertools.cycle(_ANSWER_WORDS), count)
    return tuple(word if i == 0 else f" {word}" for i, word in enumerate(words))


def _split_arguments(arguments: str) -> tuple[str, ...]:
    # At least 3 fragments, so consumers must really reassemble split JSON.
    size = max(1, min(4, math.ceil(len(arguments) / 3)))
    return tuple(arguments[i : i + size] for i in range(0, len(arguments), size))


def _function_tools(request: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, parameters schema) of each function tool, in Chat (nested) or Responses (flat) format."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for tool in request.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        spec = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if isinstance(spec.get("name"), str):
            parameters = spec.get("parameters")
            found.append((spec["name"], parameters if isinstance(parameters, dict) else {}))
    return found


def _forced_tool_name(tool_choice: object) -> str | None:
    if not isinstance(tool_choice, dict) or tool_choice.get("type") != "function":
        return None
    spec = tool_choice.get("function") if isinstance(tool_choice.get("function"), dict) else tool_choice
    name = spec.get("name")
    return name if isinstance(name, str) else None


def _pick_tool(request: Mapping[str, Any], scenario: Scenario) -> tuple[str, Mapping[str, Any]] | None:
    tools = _function_tools(request)
    tool_choice = request.get("tool_choice")
    if not tools or tool_choice == "none":
        return None
    forced = _forced_tool_name(tool_choice)
    if forced is not None:
        return next((tool for tool in tools if tool[0] == forced), (forced, {}))
    if scenario.tool or tool_choice == "required":
        return tools[0]
    return None


def _example_value(schema: object) -> Any:
    if not isinstance(schema, dict):
        return "Paris"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    examples = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    return examples.get(schema.get("type"), "Paris")  # type: ignore[arg-type]


def _tool_arguments(parameters: Mapping[str, Any]) -> str:
    properties = parameters.get("properties")
    if not isinstance(properties, dict) or not properties:
        return json.dumps({"city": "Paris"})
    return json.dumps({name: _example_value(schema) for name, schema in properties.items()})


def _plan_answer(request: Mapping[str, Any], scenario: Scenario) -> _Answer:
    tool = _pick_tool(request, scenario)
    if tool is not None:
        name, parameters = tool
        return _Answer("tool", _split_arguments(_tool_arguments(parameters)), tool_name=name)
    if scenario.refusal:
        words = _REFUSAL_TEXT.split()
        return _Answer("refusal", tuple(w if i == 0 else f" {w}" for i, w in enumerate(words)))
    return _Answer("text", _text_fragments(scenario.chunks))


def _choice_count(request: Mapping[str, Any]) -> int:
    n = request.get("n")
    return n if isinstance(n, int) and n > 0 else 1


# ---------------------------------------------------------------------------------------- chat usage


def _chat_usage(
    prompt_tokens: int, answer_tokens: int, scenario: Scenario, *, details: bool = True
) -> dict[str, Any]:
    """``usage`` of chat and legacy completions.

    ``answer_tokens`` are the visible tokens of all choices; the scenario's reasoning tokens are added to
    them (reasoning is a part of ``completion_tokens``), and the prompt grows to hold the cached and
    cache-written tokens. ``details=False`` leaves the two detail objects out (legacy completions send
    none unless the scenario asks for cached, written or reasoning tokens).
    """
    prompt_tokens = _input_tokens(prompt_tokens, scenario)
    completion_tokens = answer_tokens + scenario.reasoning
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if not details and not (scenario.cached or scenario.cache_write or scenario.reasoning):
        return usage
    prompt_details: dict[str, Any] | None = None
    completion_details: dict[str, Any] | None = None
    if not scenario.none_fields:
        prompt_details = {"cached_tokens": scenario.cached, "audio_tokens": 0}
        if scenario.cache_write:
            # Only sent when something was written, so spans of ordinary calls carry no creation count.
            prompt_details["cache_write_tokens"] = scenario.cache_write
        completion_details = {
            "reasoning_tokens": scenario.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    usage.update(prompt_tokens_details=prompt_details, completion_tokens_details=completion_details)
    return usage


def _finish_reason(answer: _Answer, scenario: Scenario) -> str:
    if scenario.finish is not None:
        return scenario.finish
    return "tool_calls" if answer.kind == "tool" else "stop"


def _chat_envelope(
    request: Mapping[str, Any], scenario: Scenario, completion_id: str, obj: str
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": obj,
        "created": int(time.time()),
        "model": request.get("model"),
        "service_tier": None if scenario.none_fields else _SERVICE_TIER,
        "system_fingerprint": None if scenario.none_fields else _SYSTEM_FINGERPRINT,
    }


# --------------------------------------------------------------------------------- chat (non-stream)


def _chat_message(answer: _Answer, call_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if answer.kind == "text":
        message["content"] = answer.full
    elif answer.kind == "refusal":
        message["refusal"] = answer.full
    else:
        function = {"name": answer.tool_name, "arguments": answer.full}
        message["tool_calls"] = [{"id": call_id, "type": "function", "function": function}]
    return message


def chat_completion(request: Mapping[str, Any], scenario: Scenario) -> Triple:
    """Non-streaming ``POST /v1/chat/completions`` -> (status, headers, body)."""
    if scenario.status is not None:
        return error_reply(scenario.status, model=request.get("model"))
    answer = _plan_answer(request, scenario)
    n = _choice_count(request)
    choices = [
        {
            "index": i,
            "message": _chat_message(answer, _new_id("call_fake")),
            "logprobs": None,
            "finish_reason": _finish_reason(answer, scenario),
        }
        for i in range(n)
    ]
    usage = _chat_usage(_chat_prompt_tokens(request), answer.tokens * n, scenario)
    payload = _chat_envelope(request, scenario, _new_id("chatcmpl-fake"), "chat.completion")
    # Real bodies put choices/usage between model and service_tier; key order only matters to humans.
    payload.update(choices=choices, usage=None if scenario.no_usage else usage)
    return _json_triple(payload)


# ------------------------------------------------------------------------------------- chat (stream)


def _first_delta(answer: _Answer, call_id: str) -> dict[str, Any]:
    if answer.kind == "text":
        return {"role": "assistant", "content": "", "refusal": None}
    if answer.kind == "refusal":
        return {"role": "assistant", "content": None, "refusal": ""}
    tool_call = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": answer.tool_name, "arguments": answer.fragments[0]},
    }
    return {"role": "assistant", "content": None, "tool_calls": [tool_call], "refusal": None}


def _fragment_delta(answer: _Answer, fragment: str) -> dict[str, Any]:
    if answer.kind == "text":
        return {"content": fragment}
    if answer.kind == "refusal":
        return {"refusal": fragment}
    return {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}


def _stream_deltas(answer: _Answer, n: int) -> Iterable[tuple[int, dict[str, Any]]]:
    """(choice index, delta) pairs in send order; choices are interleaved like the real API does."""
    call_ids = [_new_id("call_fake") for _ in range(n)]
    for i in range(n):
        yield i, _first_delta(answer, call_ids[i])
    # The first fragment of a tool call already travelled with the id and name.
    rest = answer.fragments[1:] if answer.kind == "tool" else answer.fragments
    for fragment in rest:
        for i in range(n):
            yield i, _fragment_delta(answer, fragment)


def chat_completion_events(request: Mapping[str, Any], scenario: Scenario) -> list[bytes]:
    """Streaming ``POST /v1/chat/completions``: SSE frames ending with ``data: [DONE]``.

    Ignores ``scenario.status``; :func:`route` answers errors before a stream starts.
    """
    if scenario.empty_stream:
        return [DONE_FRAME]
    answer = _plan_answer(request, scenario)
    n = _choice_count(request)
    stream_options = request.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    envelope = _chat_envelope(request, scenario, _new_id("chatcmpl-fake"), "chat.completion.chunk")
    if include_usage and not scenario.no_usage:
        # With include_usage the real API sends "usage": null on every chunk except the last one.
        envelope["usage"] = None

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _data_frame({**envelope, "choices": choices, **extra, "obfuscation": "fake"})

    frames = [
        chunk([{"index": i, "delta": delta, "logprobs": None, "finish_reason": None}])
        for i, delta in _stream_deltas(answer, n)
    ]
    finish = None if scenario.none_fields else _finish_reason(answer, scenario)
    frames += [
        chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}]) for i in range(n)
    ]
    if include_usage and not scenario.no_usage:
        usage = _chat_usage(_chat_prompt_tokens(request), answer.tokens * n, scenario)
        frames.append(chunk([], usage=usage))
    frames.append(DONE_FRAME)
    return frames


# ------------------------------------------------------------------------------ legacy text completions


def _completion_answer(request: Mapping[str, Any], scenario: Scenario) -> tuple[_Answer, str]:
    """The text answer and its finish reason: ``max_tokens`` cuts it short with ``length``."""
    words = scenario.chunks
    max_tokens = request.get("max_tokens")
    finish = "stop"
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 <= max_tokens < words:
        words, finish = max_tokens, "length"
    return _Answer("text", _text_fragments(words)), scenario.finish or finish


def _completion_choice_count(request: Mapping[str, Any]) -> int:
    # The real API answers each prompt of a list n times: choice p * n + i is answer i to prompt p.
    return len(_completion_prompts(request)) * _choice_count(request)


def _completion_envelope(
    request: Mapping[str, Any], scenario: Scenario, completion_id: str
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.get("model"),
        "system_fingerprint": None if scenario.none_fields else _SYSTEM_FINGERPRINT,
    }


def _completion_usage(request: Mapping[str, Any], answer: _Answer, scenario: Scenario) -> dict[str, Any]:
    tokens = answer.tokens * _completion_choice_count(request)
    return _chat_usage(_completion_prompt_tokens(request), tokens, scenario, details=False)


def completion(request: Mapping[str, Any], scenario: Scenario) -> Triple:
    """Non-streaming ``POST /v1/completions`` (legacy text completions) -> (status, headers, body)."""
    if scenario.status is not None:
        return error_reply(scenario.status, model=request.get("model"))
    answer, finish = _completion_answer(request, scenario)
    choices = [
        {"text": answer.full, "index": i, "logprobs": None, "finish_reason": finish}
        for i in range(_completion_choice_count(request))
    ]
    payload = _completion_envelope(request, scenario, _new_id("cmpl-fake"))
    payload.update(
        choices=choices, usage=None if scenario.no_usage else _completion_usage(request, answer, scenario)
    )
    return _json_triple(payload)


def completion_events(request: Mapping[str, Any], scenario: Scenario) -> list[bytes]:
    """Streaming ``POST /v1/completions``: one word per chunk and choice (choices interleaved), then a
    chunk per choice with empty text and the finish reason, the usage chunk with ``include_usage``, and
    ``data: [DONE]``."""
    if scenario.empty_stream:
        return [DONE_FRAME]
    answer, finish = _completion_answer(request, scenario)
    n = _completion_choice_count(request)
    stream_options = request.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    with_usage = include_usage and not scenario.no_usage
    envelope = _completion_envelope(request, scenario, _new_id("cmpl-fake"))
    if with_usage:
        envelope["usage"] = None  # as for chat: null on every chunk but the last

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _data_frame({**envelope, "choices": choices, **extra})

    def choice(index: int, text: str, reason: str | None) -> dict[str, Any]:
        return {"text": text, "index": index, "logprobs": None, "finish_reason": reason}

    frames = [chunk([choice(i, fragment, None)]) for fragment in answer.fragments for i in range(n)]
    last_reason = None if scenario.none_fields else finish
    frames += [chunk([choice(i, "", last_reason)]) for i in range(n)]
    if with_usage:
        frames.append(chunk([], usage=_completion_usage(request, answer, scenario)))
    frames.append(DONE_FRAME)
    return frames


# ------------------------------------------------------------------------------------- responses API


@dataclass(frozen=True)
class _ResponseIds:
    response: str
    item: str
    call: str

    @classmethod
    def new(cls, answer: _Answer) -> _ResponseIds:
        number = _next_number("resp_fake")
        item_prefix = "fc" if answer.kind == "tool" else "msg"
        return cls(f"resp_fake{number:04d}", f"{item_prefix}_fake{number:04d}", f"call_fake{number:04d}")


def _responses_usage(
    request: Mapping[str, Any], answer: _Answer, scenario: Scenario
) -> dict[str, Any] | None:
    if scenario.no_usage:
        return None
    input_tokens = _input_tokens(_responses_prompt_tokens(request), scenario)
    output_tokens = answer.tokens + scenario.reasoning  # reasoning is a part of the output tokens
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": None
        if scenario.none_fields
        else {"cached_tokens": scenario.cached, "cache_write_tokens": scenario.cache_write},
        "output_tokens": output_tokens,
        "output_tokens_details": None if scenario.none_fields else {"reasoning_tokens": scenario.reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def _content_part(answer: _Answer, text: str) -> dict[str, Any]:
    if answer.kind == "refusal":
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _final_status(scenario: Scenario) -> str:
    """The status of a finished response and of its output item: ``incomplete`` cuts both short."""
    return "incomplete" if scenario.incomplete else "completed"


def _output_item(
    answer: _Answer, ids: _ResponseIds, *, done: bool, status: str = "completed"
) -> dict[str, Any]:
    status = status if done else "in_progress"
    if answer.kind == "tool":
        return {
            "id": ids.item,
            "type": "function_call",
            "status": status,
            "arguments": answer.full if done else "",
            "call_id": ids.call,
            "name": answer.tool_name,
        }
    content = [_content_part(answer, answer.full)] if done else []
    return {"id": ids.item, "type": "message", "status": status, "content": content, "role": "assistant"}


def _response_object(
    request: Mapping[str, Any], scenario: Scenario, answer: _Answer, ids: _ResponseIds, *, done: bool
) -> dict[str, Any]:
    created_at = int(time.time())
    status = _final_status(scenario) if done else "in_progress"
    return {
        "id": ids.response,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": created_at if status == "completed" else None,
        "error": None,
        # The real API cuts the answer short and says why; the partial output is still returned.
        "incomplete_details": {"reason": scenario.incomplete} if done and scenario.incomplete else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": request.get("model"),
        "output": [_output_item(answer, ids, done=True, status=status)] if done else [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": None if scenario.none_fields else _SERVICE_TIER,
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_logprobs": 0,
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _responses_usage(request, answer, scenario) if done else None,
        "user": None,
        "metadata": request.get("metadata") or {},
    }


def responses_create(request: Mapping[str, Any], scenario: Scenario) -> Triple:
    """Non-streaming ``POST /v1/responses`` -> (status, headers, body)."""
    if scenario.status is not None:
        return error_reply(scenario.status, model=request.get("model"))
    answer = _plan_answer(request, scenario)
    return _json_triple(_response_object(request, scenario, answer, _ResponseIds.new(answer), done=True))


def _part_events(answer: _Answer, ids: _ResponseIds) -> list[dict[str, Any]]:
    """Events between output_item.added and output_item.done for a message item."""
    where = {"item_id": ids.item, "output_index": 0, "content_index": 0}
    if answer.kind == "refusal":
        deltas = [{"type": "response.refusal.delta", **where, "delta": f} for f in answer.fragments]
        done = {"type": "response.refusal.done", **where, "refusal": answer.full}
    else:
        deltas = [
            {"type": "response.output_text.delta", **where, "delta": f, "logprobs": [], "obfuscation": "fake"}
            for f in answer.fragments
        ]
        done = {"type": "response.output_text.done", **where, "text": answer.full, "logprobs": []}
    return [
        {"type": "response.content_part.added", **where, "part": _content_part(answer, "")},
        *deltas,
        done,
        {"type": "response.content_part.done", **where, "part": _content_part(answer, answer.full)},
    ]


def _argument_events(answer: _Answer, ids: _ResponseIds) -> list[dict[str, Any]]:
    where = {"item_id": ids.item, "output_index": 0}
    deltas = [
        {"type": "response.function_call_arguments.delta", **where, "delta": f, "obfuscation": "fake"}
        for f in answer.fragments
    ]
    done = {
        "type": "response.function_call_arguments.done",
        **where,
        "name": answer.tool_name,
        "arguments": answer.full,
    }
    return [*deltas, done]


def responses_events(request: Mapping[str, Any], scenario: Scenario) -> list[bytes]:
    """Streaming ``POST /v1/responses``: ``event: <type>`` SSE frames with increasing ``sequence_number``.

    The last event is ``response.completed``, or ``response.incomplete`` with the ``incomplete`` scenario.
    Like the real API there is no ``[DONE]`` frame, except for ``empty_stream`` which sends only that.
    """
    if scenario.empty_stream:
        return [DONE_FRAME]
    answer = _plan_answer(request, scenario)
    ids = _ResponseIds.new(answer)
    in_progress = _response_object(request, scenario, answer, ids, done=False)
    inner = _argument_events(answer, ids) if answer.kind == "tool" else _part_events(answer, ids)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": in_progress},
        {"type": "response.in_progress", "response": in_progress},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": _output_item(answer, ids, done=False),
        },
        *inner,
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": _output_item(answer, ids, done=True, status=_final_status(scenario)),
        },
        {
            # response.completed, or response.incomplete for an answer cut short.
            "type": f"response.{_final_status(scenario)}",
            "response": _response_object(request, scenario, answer, ids, done=True),
        },
    ]
    return [_event_frame({**event, "sequence_number": seq}) for seq, event in enumerate(events)]


# ---------------------------------------------------------------------------------------- embeddings


def _embedding_inputs(value: object) -> list[str | list[int]]:
    """Normalise ``input``: a string, a token array, or a list of either."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, (str, list))]
    return []


def embeddings_vector(text: str | list[int], dimensions: int) -> list[float]:
    """Deterministic unit vector for one input, already rounded to float32 so both encodings agree."""
    # Seeded from a stable hash (not hash(), which is salted per process) so runs are reproducible.
    rng = random.Random(zlib.crc32(text.encode() if isinstance(text, str) else repr(text).encode()))
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _encode_vector(vector: list[float], encoding_format: object) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings(request: Mapping[str, Any], scenario: Scenario) -> Triple:
    """``POST /v1/embeddings`` -> (status, headers, body); supports ``dimensions`` and base64."""
    if scenario.status is not None:
        return error_reply(scenario.status, model=request.get("model"))
    inputs = _embedding_inputs(request.get("input"))
    if not inputs:
        return error_reply(400, "'input' must be a non-empty string or array", param="input")
    dimensions = request.get("dimensions")
    size = dimensions if isinstance(dimensions, int) and dimensions > 0 else _DEFAULT_EMBEDDING_DIMENSIONS
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encode_vector(embeddings_vector(item, size), request.get("encoding_format")),
        }
        for i, item in enumerate(inputs)
    ]
    tokens = sum(len(item) if isinstance(item, list) else max(1, _words(item)) for item in inputs)
    usage = None if scenario.no_usage else {"prompt_tokens": tokens, "total_tokens": tokens}
    return _json_triple({"object": "list", "data": data, "model": request.get("model"), "usage": usage})


_UnaryBuilder = Callable[[Mapping[str, Any], Scenario], Triple]
_StreamBuilder = Callable[[Mapping[str, Any], Scenario], list[bytes]]
_ROUTES: dict[str, tuple[_UnaryBuilder, _StreamBuilder | None]] = {
    "/v1/chat/completions": (chat_completion, chat_completion_events),
    "/v1/completions": (completion, completion_events),
    "/v1/responses": (responses_create, responses_events),
    "/v1/embeddings": (embeddings, None),
}
