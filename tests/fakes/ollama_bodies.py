"""Pure builders for fake Ollama API responses: ``POST /api/chat``, ``/api/generate`` (JSON, or NDJSON
lines when streaming), ``/api/embed`` and the older ``/api/embeddings``.

A decoded request body plus a :class:`~llmlens.demo.fake_bodies.Scenario` in, a
:class:`~llmlens.demo.fake_bodies.FakeReply` out (``events`` holds the NDJSON lines of a stream), no I/O;
a server (``tests/fakes/ollama_server.py``) sends it. Point the ``ollama`` client at the server root
(``ollama.Client(host="http://127.0.0.1:PORT")``)::

    reply = route("POST", "/api/chat", request_json, Scenario.parse("chunks=12"))

Shapes follow the Ollama server (and parse with the ``ollama`` 0.6 client types):

* chat: ``{"model", "created_at", "message": {"role": "assistant", "content", "thinking"?,
  "tool_calls"?: [{"id", "function": {"index", "name", "arguments": {...}}}]}, "done": true,
  "done_reason": "stop" | "length", "total_duration", "load_duration", "prompt_eval_count",
  "prompt_eval_duration", "eval_count", "eval_duration"}``. Ollama reports a tool call with
  ``done_reason: "stop"``; tool-call arguments are an object, not a JSON string;
* generate: the same envelope with ``response`` (and ``thinking``) instead of ``message``, and the
  final ``context`` token array;
* a stream: one JSON object per line, ``done: false``, one word per line (thinking words first, in
  ``thinking``; a tool call whole, in one line), then a last line with ``done: true``, empty content,
  the done reason and the counts;
* embed: ``{"model", "embeddings": [[...]], "total_duration", "load_duration", "prompt_eval_count"}``;
  ``/api/embeddings``: ``{"embedding": [...]}`` and no counts;
* errors: ``{"error": "..."}`` with the HTTP status (404 for an unknown model, as ``ollama pull`` hints);
  a failure inside a stream is a line ``{"error": "..."}``, after which the server ends the body.

Token counts: ``prompt_eval_count`` = 3 per message + its words (generate: the prompt's and the system
prompt's words + 3); ``eval_count`` = one per streamed word (thinking and answer) + ``TOOL_CALL_TOKENS``
for a tool call.

Scenario keywords that apply here:

``chunks=N``            an answer of N words (default 8)
``tool``                chat: call the first tool of the request
``thinking=N``          N words of ``thinking`` before the answer
``finish=WORD``         use WORD as the ``done_reason``
``stream_error=MESSAGE`` streams: after two words, a line ``{"error": MESSAGE}`` ends the body
                        (non-streamed: HTTP 500 with that error)
``no_usage``            leave the counts and durations out (old servers did so for a fully cached prompt)
``status=CODE``         an HTTP error with an Ollama error body
``delay_ms``, ``chunk_delay_ms``, ``abort_after=N``
                        applied by the HTTP server (``abort_after`` counts lines)

``options.num_predict`` below the answer's length cuts it short with ``done_reason: "length"``. A model
named ``fake-error-<CODE>`` means ``status=<CODE>`` when no header is sent.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmlens.demo.fake_bodies import FakeReply, Scenario, embeddings_vector

__all__ = [
    "CHAT_PATH",
    "EMBEDDINGS_PATH",
    "EMBED_PATH",
    "GENERATE_PATH",
    "TOOL_CALL_TOKENS",
    "chat",
    "embed",
    "error_reply",
    "generate",
    "route",
]

CHAT_PATH = "/api/chat"
GENERATE_PATH = "/api/generate"
EMBED_PATH = "/api/embed"
EMBEDDINGS_PATH = "/api/embeddings"
TOOL_CALL_TOKENS = 12
DEFAULT_DIMENSIONS = 8
CREATED_AT = "2026-01-02T03:04:05.678901Z"
# Fixed server-side timings (nanoseconds), so responses are byte-for-byte reproducible.
_DURATIONS = {"total_duration": 250_000_000, "load_duration": 10_000_000}
_PROMPT_EVAL_DURATION = 40_000_000
_EVAL_DURATION = 200_000_000

_ANSWER_TEXT = (
    "Hello from the fake Ollama server. It answers one word per line so tests can count chunks and "
    "tokens exactly."
)
_THINKING_TEXT = "The user wants an answer, so I will give one."
_ANSWER_WORDS = tuple(_ANSWER_TEXT.split())
_THINKING_WORDS = tuple(_THINKING_TEXT.split())


@dataclass(frozen=True)
class _Answer:
    thinking: tuple[str, ...]
    text: tuple[str, ...]
    tool_call: dict[str, Any] | None
    done_reason: str

    @property
    def eval_count(self) -> int:
        return len(self.thinking) + len(self.text) + (TOOL_CALL_TOKENS if self.tool_call else 0)


# --------------------------------------------------------------------------------------------- routing


def route(method: str, path: str, request: object, scenario: Scenario) -> FakeReply:
    """The reply to one request; unknown paths get a 404 Ollama error body."""
    body = request if isinstance(request, dict) else {}
    if method != "POST" or path not in (CHAT_PATH, GENERATE_PATH, EMBED_PATH, EMBEDDINGS_PATH):
        return error_reply(404, "404 page not found")
    if scenario.status is not None:
        return error_reply(scenario.status, _status_message(scenario.status, body.get("model")))
    if path == CHAT_PATH:
        return chat(body, scenario)
    if path == GENERATE_PATH:
        return generate(body, scenario)
    return embed(body, scenario, legacy=path == EMBEDDINGS_PATH)


def error_reply(status: int, message: str) -> FakeReply:
    """An Ollama error: ``{"error": message}`` with the HTTP status."""
    return FakeReply(status, _headers(), _dumps({"error": message}))


def _status_message(status: int, model: object) -> str:
    if status == 404:
        return f"model '{model}' not found"
    if status == 400:
        return "invalid request"
    return f"fake error {status}"


# ------------------------------------------------------------------------------------- chat & generate


def chat(request: Mapping[str, Any], scenario: Scenario) -> FakeReply:
    """``POST /api/chat``; streamed unless the request says ``"stream": false``, as the real server."""
    messages = [m for m in request.get("messages") or () if isinstance(m, dict)]
    prompt_tokens = sum(3 + _words(m.get("content")) for m in messages)
    answer = _plan(request, scenario, tools=True)
    return _reply(request, scenario, answer, prompt_tokens, _chat_part)


def generate(request: Mapping[str, Any], scenario: Scenario) -> FakeReply:
    """``POST /api/generate``; the last object carries ``context``, as the real server's does."""
    prompt_tokens = 3 + _words(request.get("prompt")) + _words(request.get("system"))
    answer = _plan(request, scenario, tools=False)
    return _reply(request, scenario, answer, prompt_tokens, _generate_part)


def _reply(
    request: Mapping[str, Any], scenario: Scenario, answer: _Answer, prompt_tokens: int, part: Any
) -> FakeReply:
    model = request.get("model")
    if request.get("stream", True) is False:
        if scenario.stream_error:
            return error_reply(500, scenario.stream_error)
        text, thinking = "".join(_spaced(answer.text)), "".join(_spaced(answer.thinking))
        final = part(model, text, thinking, answer.tool_call)
        final.update(_done(answer, prompt_tokens, scenario, generate=part is _generate_part))
        return FakeReply(200, _headers(), _dumps(final))
    lines: list[dict[str, Any]] = []
    lines.extend(part(model, "", word) for word in _spaced(answer.thinking))
    words = _spaced(answer.text)
    if scenario.stream_error:
        lines.extend(part(model, word) for word in words[:2])
        lines.append({"error": scenario.stream_error})
        return FakeReply(200, _headers(stream=True), events=[_dumps(line) + b"\n" for line in lines])
    lines.extend(part(model, word) for word in words)
    if answer.tool_call is not None:
        lines.append(part(model, "", "", answer.tool_call))
    final = part(model, "")
    final.update(_done(answer, prompt_tokens, scenario, generate=part is _generate_part))
    lines.append(final)
    return FakeReply(200, _headers(stream=True), events=[_dumps(line) + b"\n" for line in lines])


def _chat_part(model: object, text: str, thinking: str = "", tool_call: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        message["thinking"] = thinking
    if tool_call is not None:
        message["tool_calls"] = [tool_call]
    return {"model": model, "created_at": CREATED_AT, "message": message, "done": False}


def _generate_part(model: object, text: str, thinking: str = "", tool_call: Any = None) -> dict[str, Any]:
    part: dict[str, Any] = {"model": model, "created_at": CREATED_AT, "response": text}
    if thinking:
        part["thinking"] = thinking
    part["done"] = False
    return part


def _done(answer: _Answer, prompt_tokens: int, scenario: Scenario, generate: bool) -> dict[str, Any]:
    done: dict[str, Any] = {"done": True, "done_reason": answer.done_reason}
    if generate:
        done["context"] = list(range(1, prompt_tokens + answer.eval_count + 1))
    if not scenario.no_usage:
        done.update(_DURATIONS)
        done["prompt_eval_count"] = prompt_tokens
        done["prompt_eval_duration"] = _PROMPT_EVAL_DURATION
        done["eval_count"] = answer.eval_count
        done["eval_duration"] = _EVAL_DURATION
    return done


def _plan(request: Mapping[str, Any], scenario: Scenario, tools: bool) -> _Answer:
    thinking = tuple(itertools.islice(itertools.cycle(_THINKING_WORDS), scenario.thinking))
    tool = _pick_tool(request) if tools and scenario.tool else None
    if tool is not None:
        return _Answer(thinking, (), tool, scenario.finish or "stop")
    count = scenario.chunks
    options = request.get("options")
    limit = options.get("num_predict") if isinstance(options, dict) else None
    reason = "stop"
    if isinstance(limit, int) and 0 <= limit < count:
        count, reason = limit, "length"
    text = tuple(itertools.islice(itertools.cycle(_ANSWER_WORDS), count))
    return _Answer(thinking, text, None, scenario.finish or reason)


_call_ids = itertools.count(1)


def _pick_tool(request: Mapping[str, Any]) -> dict[str, Any] | None:
    for tool in request.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if not isinstance(properties, dict) or not properties:
            properties = {"city": {"type": "string"}}
        arguments = {name: _example(schema) for name, schema in properties.items()}
        return {
            "id": f"call_{next(_call_ids):08d}",
            "function": {"index": 0, "name": function["name"], "arguments": arguments},
        }
    return None


def _example(schema: object) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(str(kind), "Paris")


# ----------------------------------------------------------------------------------------------- embed


def embed(request: Mapping[str, Any], scenario: Scenario, legacy: bool = False) -> FakeReply:
    """``POST /api/embed`` (``input``: a string or a list) or the older ``/api/embeddings`` (``prompt``)."""
    dimensions = request.get("dimensions") or DEFAULT_DIMENSIONS
    if legacy:
        prompt = request.get("prompt")
        vector = embeddings_vector(prompt if isinstance(prompt, str) else "", dimensions)
        return FakeReply(200, _headers(), _dumps({"embedding": vector}))
    raw = request.get("input")
    inputs = [raw] if isinstance(raw, str) else [t for t in raw or () if isinstance(t, str)]
    if not inputs:
        return error_reply(400, "invalid input type")
    payload: dict[str, Any] = {
        "model": request.get("model"),
        "embeddings": [embeddings_vector(text, dimensions) for text in inputs],
    }
    if not scenario.no_usage:
        payload.update(_DURATIONS)
        payload["prompt_eval_count"] = sum(max(1, _words(text)) for text in inputs)
    return FakeReply(200, _headers(), _dumps(payload))


# ------------------------------------------------------------------------------------------------ bits


def _spaced(words: tuple[str, ...]) -> list[str]:
    return [word if i == 0 else f" {word}" for i, word in enumerate(words)]


def _words(value: object) -> int:
    return len(value.split()) if isinstance(value, str) else 0


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _headers(stream: bool = False) -> dict[str, str]:
    return {"content-type": "application/x-ndjson" if stream else "application/json; charset=utf-8"}
