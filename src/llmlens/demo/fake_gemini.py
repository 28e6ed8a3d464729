"""Pure builders for the fake provider's Gemini wire format (the Gemini API and Vertex AI).

Like :mod:`llmlens.demo.fake_bodies`, everything here turns a decoded request body (plus a
:class:`~llmlens.demo.fake_bodies.Scenario`) into response bytes without I/O; the fake server routes
every path below here (:func:`reply_for`)::

    POST /{version}/models/{model}:generateContent                 one GenerateContentResponse
    POST /{version}/models/{model}:streamGenerateContent?alt=sse   SSE: ``data: {json}\\r\\n\\r\\n`` per chunk
    POST /{version}/models/{model}:embedContent                    ``{"embedding": {"values": [...]}}``
    POST /{version}/models/{model}:batchEmbedContents              ``{"embeddings": [{"values": [...]}]}``

``{version}`` is any of v1, v1alpha, v1beta, v1beta1. The same methods under
``publishers/google/models/{model}`` (optionally after ``projects/{p}/locations/{l}/``) answer the way
Vertex AI does: no candidate ``index``, a ``createTime``, ``trafficType`` in the usage, and in streams
the token counts only on the last chunk (the Gemini API repeats running totals on every chunk).

The shapes follow recorded real responses (tests/recordings/gemini/): camelCase keys, the Gemini API's
pretty-printed JSON bodies, its stream frames (``separators=(",", ": ")``, CRLF CRLF after each event),
and Google's error body ``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED"}}``.

Point the SDK at the fake server with ``http_options``; select a scenario per request with the same
``x-fake-scenario`` header the OpenAI routes read::

    client = genai.Client(api_key="fake", http_options=types.HttpOptions(base_url=provider.url))
    client.models.generate_content(
        model="gemini-2.5-flash", contents="Hi",
        config=types.GenerateContentConfig(
            http_options=types.HttpOptions(headers={"x-fake-scenario": "chunks=4,cached=6,reasoning=9"})
        ),
    )

What the scenario keywords mean here:

``chunks=N``          answer with N words; streams send one word per chunk
``cached=N``          ``cachedContentTokenCount`` N, a part of ``promptTokenCount`` (with an explicit
                      ``cachedContent`` in the request the cached tokens come on top of the request's own)
``reasoning=N``       ``thoughtsTokenCount`` N; NOT a part of ``candidatesTokenCount``, as in the real API
                      (``totalTokenCount`` = prompt + candidates + thoughts). With
                      ``thinkingConfig.includeThoughts`` the answer starts with a ``thought: true`` part.
``tool``              call the first declared function (``functionCallingConfig.mode`` ANY forces a call,
                      NONE prevents it); a request whose last turn is a ``functionResponse`` gets text
``refusal``           the candidate is blocked: ``finishReason: "SAFETY"`` and no content
``finish=WORD``       use WORD (upper-cased) as the ``finishReason``
``status=CODE``       reply with that HTTP error and a Google error body (429 is ``RESOURCE_EXHAUSTED``)
``no_usage``          no ``usageMetadata``
``none_fields``       leave out ``responseId``, ``modelVersion`` and ``finishReason``
``empty_stream``      a stream with no events at all
``error_after=N``     streams only (Gemini-specific): N chunks, then an in-stream error event
                      (``data: {"error": {"code": 503, ..., "status": "UNAVAILABLE"}}``) and the end
``delay_ms``, ``chunk_delay_ms``, ``abort_after``  applied by the server, as for the OpenAI routes

``generationConfig.maxOutputTokens`` below the answer's length cuts it short with ``MAX_TOKENS``, and
``candidateCount`` N gives N candidates. Prompt tokens are the words of every text part (of ``contents``
and ``systemInstruction``) plus 1 per content, and 258 per inline or file image (``IMAGE`` modality).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmlens.demo.fake_bodies import SCENARIO_HEADER, FakeReply, Scenario, embeddings_vector

__all__ = [
    "batch_embed_contents",
    "embed_content",
    "error_reply",
    "generate_content",
    "generate_content_events",
    "parse_scenario",
    "reply_for",
    "route",
]

Triple = tuple[int, dict[str, str], bytes]

# /{version}/[projects/{p}/locations/{l}/][publishers/{publisher}/](models|tunedModels)/{model}:{method}
_PATH = re.compile(
    r"^/(?P<version>v1(?:alpha|beta\d*)?)/"
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?:publishers/(?P<publisher>[^/]+)/)?"
    r"(?P<collection>models|tunedModels)/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
_ANSWER_TEXT = (
    "Hello from the fake Gemini provider. This deterministic answer streams exactly one word per "
    "chunk, so tests can count chunks, tokens and latency without calling a real model."
)
_ANSWER_WORDS = tuple(_ANSWER_TEXT.split())
_THOUGHT_TEXT = "**Planning the answer**\n\nThe user wants a short, friendly reply."
_IMAGE_TOKENS = 258  # what the real API counts for one image of up to 384x384 pixels
_DEFAULT_EMBEDDING_DIMENSIONS = 8
_CREATE_TIME = "2026-08-01T12:00:00.000000Z"
_ERROR_EVENT = {
    "code": 503,
    "message": "The model is overloaded. Please try again later.",
    "status": "UNAVAILABLE",
}
_counter = itertools.count(1)
_counter_lock = threading.Lock()


# ----------------------------------------------------------------------------------------- entry points


def reply_for(
    method: str, path: str, header: str | None, request: object
) -> tuple[FakeReply, Scenario] | None:
    """The fake server's hook: the reply to a Gemini or Vertex path, or None for any other path."""
    match = _PATH.match(path.split("?", 1)[0])
    if match is None:
        return None
    try:
        scenario, error_after = parse_scenario(header, match["model"])
    except ValueError as exc:
        return FakeReply.from_triple(error_reply(400, f"invalid {SCENARIO_HEADER} header: {exc}")), Scenario()
    return route(method, path, request, scenario, error_after=error_after), scenario


def parse_scenario(header: str | None, model: str | None) -> tuple[Scenario, int | None]:
    """The shared scenario keywords plus the Gemini-only ``error_after=N``; raises ``ValueError``."""
    error_after = None
    shared = []
    for token in re.split(r"[,;]", header or ""):
        key, has_value, raw = token.strip().partition("=")
        if key.strip().lower().replace("-", "_") == "error_after":
            if not has_value or not raw.strip().isdigit():
                raise ValueError(f"scenario field 'error_after' needs a non-negative integer, got {raw!r}")
            error_after = int(raw.strip())
        elif token.strip():
            shared.append(token.strip())
    return Scenario.for_request(",".join(shared) or None, model), error_after


def route(
    method: str, path: str, request: object, scenario: Scenario, *, error_after: int | None = None
) -> FakeReply | None:
    """Dispatch one Gemini request the way the fake server does (minus delays and aborts)."""
    endpoint, _, query = path.partition("?")
    match = _PATH.match(endpoint)
    if match is None:
        return None
    model, action = match["model"], match["method"]
    vertex = bool(match["publisher"] or match["project"])
    if method.upper() != "POST" or action not in _ACTIONS:
        return FakeReply.from_triple(error_reply(404, f"Method not found: {method.upper()} {endpoint}"))
    if scenario.status is not None:
        return FakeReply.from_triple(error_reply(scenario.status, model=model, action=action))
    if not isinstance(request, dict):
        return FakeReply.from_triple(error_reply(400, "Invalid JSON payload received."))
    if action == "streamGenerateContent":
        if "alt=sse" not in query.split("&"):
            return FakeReply.from_triple(error_reply(400, "This fake provider streams with alt=sse only."))
        if not request.get("contents"):
            return FakeReply.from_triple(error_reply(400, _NO_CONTENTS))
        events = generate_content_events(request, model, scenario, vertex=vertex, error_after=error_after)
        return FakeReply(status=200, headers=_sse_headers(), events=events)
    if action == "generateContent":
        if not request.get("contents"):
            return FakeReply.from_triple(error_reply(400, _NO_CONTENTS))
        return FakeReply.from_triple(generate_content(request, model, scenario, vertex=vertex))
    if action == "embedContent":
        return FakeReply.from_triple(embed_content(request, model, scenario, vertex=vertex))
    return FakeReply.from_triple(batch_embed_contents(request, model, scenario))


_ACTIONS = frozenset(("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents"))
_NO_CONTENTS = "* GenerateContentRequest.contents: contents is not specified\n"


# ---------------------------------------------------------------------------------------------- errors

# HTTP status -> (google.rpc status, canned message); the messages are the real API's.
_STATUSES: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: (
        "NOT_FOUND",
        "models/{model} is not found for API version v1beta, or is not supported for {action}. Call "
        "ListModels to see the list of available models and their supported methods.",
    ),
    409: ("ABORTED", "The operation was aborted."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    499: ("CANCELLED", "The operation was cancelled."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


_FREE_TIER_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"


def error_reply(
    status: int, message: str | None = None, *, model: str | None = None, action: str = ""
) -> Triple:
    """A Google error body: ``{"error": {"code", "message", "status"}}`` (429 adds quota details)."""
    rpc_status, template = _STATUSES.get(status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", ""))
    text = message or template.format(model=model or "unknown", action=action or "generateContent")
    error: dict[str, Any] = {"code": status, "message": text or f"Fake error {status}.", "status": rpc_status}
    if status == 429 and message is None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": _FREE_TIER_METRIC,
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model or "unknown"},
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            # Zero, so a client configured with retries retries at once instead of sleeping in tests.
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"},
        ]
    return status, _json_headers(), _pretty({"error": error})


# ------------------------------------------------------------------------------------------- encoding


def _pretty(payload: object) -> bytes:
    # The Gemini API pretty-prints its JSON bodies with two spaces.
    return json.dumps(payload, indent=2, ensure_ascii=False).encode() + b"\n"


def _frame(payload: object) -> bytes:
    # Stream events as the real API writes them: `"key": value` pairs joined by a bare comma, CRLF CRLF.
    return b"data: " + json.dumps(payload, separators=(",", ": "), ensure_ascii=False).encode() + b"\r\n\r\n"


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json; charset=UTF-8", "vary": "Origin, X-Origin, Referer"}


def _sse_headers() -> dict[str, str]:
    return {
        "content-type": "text/event-stream",
        "content-disposition": "attachment",
        "vary": "Origin, X-Origin, Referer",
    }


def _response_id() -> str:
    with _counter_lock:
        number = next(_counter)
    return f"fakeGeminiResp{number:09d}"  # 23 characters, like the real ids


# ---------------------------------------------------------------------------------------- token counts


def _words(text: object) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _part_tokens(part: Mapping[str, Any]) -> tuple[int, int]:
    """(text tokens, image tokens) of one request part."""
    if "text" in part:
        return _words(part["text"]), 0
    for key in ("inlineData", "fileData"):
        blob = part.get(key)
        if isinstance(blob, Mapping):
            mime_type = str(blob.get("mimeType") or blob.get("mime_type") or "")  # the SDK sends snake_case
            return (0, _IMAGE_TOKENS) if mime_type.startswith("image/") else (1, 0)
    for key, field in (("functionCall", "args"), ("functionResponse", "response")):
        value = part.get(key)
        if isinstance(value, Mapping):
            return 1 + _words(json.dumps(value.get(field) or {})), 0
    return 0, 0


def _prompt_tokens(request: Mapping[str, Any]) -> tuple[int, int]:
    """(text tokens, image tokens) of the request: words of text parts + 1 per content, images 258."""
    contents = [c for c in request.get("contents") or () if isinstance(c, Mapping)]
    system = request.get("systemInstruction")
    if isinstance(system, Mapping):
        contents.append(system)
    text = image = 0
    for content in contents:
        text += 1
        for part in content.get("parts") or ():
            if isinstance(part, Mapping):
                t, i = _part_tokens(part)
                text, image = text + t, image + i
    return text, image


@dataclass(frozen=True)
class _Usage:
    text: int  # the request's own prompt tokens, by modality
    image: int
    cached: int
    explicit_cache: bool
    thoughts: int

    @property
    def prompt(self) -> int:
        own = self.text + self.image
        # An explicit cache (cachedContent) is not in the request: its tokens come on top. An implicit
        # cache hit is a prefix of the request: a part of its tokens.
        return own + self.cached if self.explicit_cache else max(own, self.cached)

    def metadata(self, candidates: int | None, vertex: bool) -> dict[str, Any]:
        """``usageMetadata`` with the real API's key order; ``candidates`` None leaves it out."""
        usage: dict[str, Any] = {"promptTokenCount": self.prompt}
        if candidates:
            usage["candidatesTokenCount"] = candidates
        usage["totalTokenCount"] = self.prompt + (candidates or 0) + self.thoughts
        if self.cached:
            usage["cachedContentTokenCount"] = self.cached
        if vertex:
            usage["trafficType"] = "ON_DEMAND"
        details = [{"modality": "TEXT", "tokenCount": self.prompt - self.image}]
        if self.image:
            details.append({"modality": "IMAGE", "tokenCount": self.image})
        usage["promptTokensDetails"] = details
        if self.cached:
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.cached}]
        if vertex and candidates:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
        if self.thoughts:
            usage["thoughtsTokenCount"] = self.thoughts
        return usage


def _usage(request: Mapping[str, Any], scenario: Scenario) -> _Usage:
    text, image = _prompt_tokens(request)
    explicit = bool(request.get("cachedContent"))
    return _Usage(text, image, scenario.cached, explicit, scenario.reasoning)


# ------------------------------------------------------------------------------------ what to answer


@dataclass(frozen=True)
class _Answer:
    """What the fake model says: words, a function call, or nothing (blocked)."""

    words: tuple[str, ...] = ()
    call: tuple[str, dict[str, Any]] | None = None
    blocked: bool = False
    thought: bool = False
    finish: str | None = "STOP"

    @property
    def tokens(self) -> int:
        if self.call is not None:
            return 2 + _words(json.dumps(self.call[1]))
        return len(self.words)


def _config(request: Mapping[str, Any]) -> Mapping[str, Any]:
    config = request.get("generationConfig")
    return config if isinstance(config, Mapping) else {}


def _declarations(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = []
    for tool in request.get("tools") or ():
        if isinstance(tool, Mapping):
            found += [d for d in tool.get("functionDeclarations") or () if isinstance(d, Mapping)]
    return found


def _example(schema: object) -> Any:
    if not isinstance(schema, Mapping):
        return "Paris"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = str(schema.get("type", "string")).lower()
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(kind, "Paris")


def _arguments(declaration: Mapping[str, Any]) -> dict[str, Any]:
    # The SDK sends a Python function's schema as `parameters_json_schema` (the API takes either case).
    schema = next(
        (
            declaration[k]
            for k in ("parameters", "parametersJsonSchema", "parameters_json_schema")
            if k in declaration
        ),
        {},
    )
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping) or not properties:
        return {}
    return {name: _example(spec) for name, spec in properties.items()}


def _answered_a_function(request: Mapping[str, Any]) -> bool:
    contents = [c for c in request.get("contents") or () if isinstance(c, Mapping)]
    parts = contents[-1].get("parts") or () if contents else ()
    return any(isinstance(p, Mapping) and "functionResponse" in p for p in parts)


def _pick_call(request: Mapping[str, Any], scenario: Scenario) -> tuple[str, dict[str, Any]] | None:
    declarations = _declarations(request)
    if not declarations or _answered_a_function(request):
        return None
    tool_config = request.get("toolConfig")
    calling = tool_config.get("functionCallingConfig") if isinstance(tool_config, Mapping) else None
    mode = str(calling.get("mode", "AUTO")).upper() if isinstance(calling, Mapping) else "AUTO"
    if mode == "NONE" or (mode != "ANY" and not scenario.tool):
        return None
    allowed = calling.get("allowedFunctionNames") if isinstance(calling, Mapping) else None
    for declaration in declarations:
        if not allowed or declaration.get("name") in allowed:
            return str(declaration.get("name")), _arguments(declaration)
    return None


def _plan(request: Mapping[str, Any], scenario: Scenario) -> _Answer:
    config = _config(request)
    thinking = config.get("thinkingConfig")
    # The SDK sends thinkingConfig's keys in snake_case (the API takes both spellings).
    thought = isinstance(thinking, Mapping) and bool(
        thinking.get("includeThoughts") or thinking.get("include_thoughts")
    )
    finish = None if scenario.none_fields else (scenario.finish.upper() if scenario.finish else None)
    if scenario.refusal:
        return _Answer(blocked=True, finish=None if scenario.none_fields else "SAFETY")
    call = _pick_call(request, scenario)
    if call is not None:
        return _Answer(call=call, thought=thought, finish=None if scenario.none_fields else finish or "STOP")
    words = tuple(itertools.islice(itertools.cycle(_ANSWER_WORDS), scenario.chunks))
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words):
        words, finish = words[:limit], finish or "MAX_TOKENS"
    words = tuple(w if i == 0 else f" {w}" for i, w in enumerate(words))
    return _Answer(words=words, thought=thought, finish=None if scenario.none_fields else finish or "STOP")


def _candidate_count(request: Mapping[str, Any]) -> int:
    count = _config(request).get("candidateCount")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1


_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
]


def _candidate(
    parts: list[dict[str, Any]] | None, finish: str | None, index: int, vertex: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if parts is not None:
        # The Gemini API puts `parts` first, Vertex puts `role` first.
        candidate["content"] = (
            {"role": "model", "parts": parts} if vertex else {"parts": parts, "role": "model"}
        )
    if finish is not None:
        candidate["finishReason"] = finish
        if finish == "SAFETY":
            candidate["safetyRatings"] = _SAFETY_RATINGS
    if not vertex:
        candidate["index"] = index
    return candidate


def _envelope(
    candidates: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    model: str,
    response_id: str,
    scenario: Scenario,
    vertex: bool,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"candidates": candidates}
    if usage is not None:
        payload["usageMetadata"] = usage
    if not scenario.none_fields:
        payload["modelVersion"] = model
        if vertex:
            payload["createTime"] = _CREATE_TIME
        payload["responseId"] = response_id
    return payload


# ---------------------------------------------------------------------------------- generateContent


def generate_content(
    request: Mapping[str, Any], model: str, scenario: Scenario, *, vertex: bool = False
) -> Triple:
    """``:generateContent`` -> (status, headers, body)."""
    if scenario.status is not None:
        return error_reply(scenario.status, model=model)
    answer = _plan(request, scenario)
    n = _candidate_count(request)
    parts: list[dict[str, Any]] | None = None
    if not answer.blocked:
        parts = [{"text": _THOUGHT_TEXT, "thought": True}] if answer.thought else []
        if answer.call is not None:
            parts.append({"functionCall": {"name": answer.call[0], "args": answer.call[1]}})
        else:
            parts.append({"text": "".join(answer.words)})
    candidates = [_candidate(parts, answer.finish, i, vertex) for i in range(n)]
    usage = None if scenario.no_usage else _usage(request, scenario).metadata(answer.tokens * n, vertex)
    return (
        200,
        _json_headers(),
        _pretty(_envelope(candidates, usage, model, _response_id(), scenario, vertex)),
    )


def generate_content_events(
    request: Mapping[str, Any],
    model: str,
    scenario: Scenario,
    *,
    vertex: bool = False,
    error_after: int | None = None,
) -> list[bytes]:
    """``:streamGenerateContent?alt=sse`` -> SSE frames, one GenerateContentResponse each.

    The Gemini API sends running token totals on every chunk (so the last one wins, never a sum);
    Vertex sends ``{"trafficType": ...}`` until the last chunk. A function call comes whole in one
    chunk, followed by an empty text part carrying the finish reason, as the real API does.
    """
    if scenario.empty_stream:
        return []
    answer = _plan(request, scenario)
    n = _candidate_count(request)
    # The parts of each chunk's candidates (None: a blocked candidate, no content).
    steps: list[list[dict[str, Any]] | None] = []
    if answer.blocked:
        steps.append(None)
    else:
        if answer.thought:
            steps.append([{"text": _THOUGHT_TEXT, "thought": True}])
        if answer.call is not None:
            steps.append([{"functionCall": {"name": answer.call[0], "args": answer.call[1]}}])
            steps.append([{"text": ""}])
        else:
            steps += [[{"text": word}] for word in answer.words] or [[{"text": ""}]]
    usage = _usage(request, scenario)
    response_id = _response_id()
    frames = []
    produced = 0  # candidate tokens so far, per candidate
    for number, parts in enumerate(steps):
        if error_after is not None and number >= error_after:
            frames.append(_frame({"error": _ERROR_EVENT}))
            return frames
        last = number == len(steps) - 1
        if parts is not None and not parts[0].get("thought"):
            if answer.call is not None:
                produced = answer.tokens
            elif parts[0].get("text"):
                produced += 1
        finish = answer.finish if last else None
        candidates = [_candidate(parts, finish, i, vertex) for i in range(n)]
        metadata: dict[str, Any] | None
        if scenario.no_usage:
            metadata = None
        elif vertex and not last:
            metadata = {"trafficType": "ON_DEMAND"}
        else:
            metadata = usage.metadata(produced * n or None, vertex)
        frames.append(_frame(_envelope(candidates, metadata, model, response_id, scenario, vertex)))
    return frames


# ----------------------------------------------------------------------------------------- embeddings


def _embedding_text(content: object) -> str:
    if not isinstance(content, Mapping):
        return ""
    parts = content.get("parts") or ()
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, Mapping))


def _dimensions(value: object) -> int:
    return (
        value
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
        else _DEFAULT_EMBEDDING_DIMENSIONS
    )


def embed_content(request: object, model: str, scenario: Scenario, *, vertex: bool = False) -> Triple:
    """``:embedContent`` (one content) -> ``{"embedding": {"values": [...]}}``; Vertex adds usage."""
    if scenario.status is not None:
        return error_reply(scenario.status, model=model, action="embedContent")
    if not isinstance(request, Mapping) or not isinstance(request.get("content"), Mapping):
        return error_reply(400, "* EmbedContentRequest.content: content is not specified\n")
    text = _embedding_text(request["content"])
    vector = embeddings_vector(text, _dimensions(request.get("outputDimensionality")))
    payload: dict[str, Any] = {"embedding": {"values": vector}}
    if vertex and not scenario.no_usage:
        tokens = max(1, _words(text))
        payload["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return 200, _json_headers(), _pretty(payload)


def batch_embed_contents(request: object, model: str, scenario: Scenario) -> Triple:
    """``:batchEmbedContents`` -> ``{"embeddings": [{"values": [...]}, ...]}`` (no usage, as for real)."""
    if scenario.status is not None:
        return error_reply(scenario.status, model=model, action="embedContent")
    requests = request.get("requests") if isinstance(request, Mapping) else None
    if not isinstance(requests, list) or not requests:
        return error_reply(400, "* BatchEmbedContentsRequest.requests: requests is not specified\n")
    embeddings = []
    for item in requests:
        item = item if isinstance(item, Mapping) else {}
        vector = embeddings_vector(
            _embedding_text(item.get("content")), _dimensions(item.get("outputDimensionality"))
        )
        embeddings.append({"values": vector})
    return 200, _json_headers(), _pretty({"embeddings": embeddings})
