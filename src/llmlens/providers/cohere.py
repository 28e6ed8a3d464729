"""Cohere SDK, v2 client (`cohere.ClientV2`, `AsyncClientV2`, and `Client().v2`): chat, chat_stream, embed.

Patched where the methods are defined, `cohere.v2.client.V2Client` and `AsyncV2Client` (`ClientV2`
inherits them), so one call is one span whatever client class it goes through. `chat_stream` returns a
generator whose first step sends the request: it is proxied (core/streams.py) like any SDK stream.

The raw clients (`cohere.v2.raw_client`) are patched too: `chat`, `embed` and `chat_stream` (a context
manager that sends the request when entered). `V2Client` calls them with its own call in flight
(core/context.py), so they add no second span; they record the calls that do not go through a patched
`V2Client` method: `client.with_raw_response.*`, and clients made before `instrument()`, whose
`__init__` stored bound `chat`/`chat_stream` methods on the instance. Such a stream's span starts when
its request is sent, and a stream the caller drops ends as `closed` when it is collected.

Usage: Cohere reports what it bills (`usage.billed_units`) and what the model consumed
(`usage.tokens`, which adds Cohere's own preamble and tool prompts). The spec asks for the billed
counts, so `gen_ai.usage.input_tokens`/`output_tokens` are billed; the consumed ones go in
`cohere.usage.tokens.{input,output}_tokens`. When a response has no billed units (some deployments),
the consumed counts stand in. `usage.cached_tokens` counts consumed tokens that hit Cohere's cache and
can exceed the billed input (a recorded response: 1008 cached, 80 billed, 1494 consumed), so it is
`cohere.usage.cached_tokens`, not a `gen_ai.usage.cache_read.input_tokens` that must be a part of the
input (and would be priced as one).

Only plain data leaves this module; spans, metrics and names live in core/telemetry.py.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from llmlens import semconv
from llmlens.core.content import media_part, text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.core.telemetry import Telemetry
from llmlens.providers._method_patch import MethodPatch
from llmlens.providers._plain import count, get, integer, number, strings, tool_call_part, tool_definitions
from llmlens.providers._stainless import Route
from llmlens.providers.endpoints import default_port
from llmlens.settings import Settings

_perf_ns = time.perf_counter_ns
# 5.16: the first release with the raw clients (clients made before instrument() are traced) whose
# chat_stream can be closed early (before, it swallows GeneratorExit and close() raises RuntimeError).
INSTRUMENTS = "cohere >= 5.16, < 8"

# Cohere finish reasons -> the output-message schema's values.
_FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_call",
    "ERROR": "error",
    "TIMEOUT": "error",
}
# Client classes that send the v2 API to another cloud: gen_ai.provider.name, and no server address
# (their event hooks rewrite the URL; the base URL they keep is not where requests go).
_PLATFORMS = {
    "BedrockClientV2": "aws.bedrock",
    "BedrockClient": "aws.bedrock",
    "SagemakerClientV2": "aws.sagemaker",
    "SagemakerClient": "aws.sagemaker",
    "OciClientV2": "oci.generative_ai",
    "OciClient": "oci.generative_ai",
}
PROVIDER = "cohere"


def finish_reason(raw: Any) -> str:
    if raw is None:
        return semconv.FINISH_ERROR
    text = str(raw)
    return _FINISH_REASONS.get(text, text.lower())


# --- request ----------------------------------------------------------------------------------------

# keyword -> (attribute, converter), for chat and chat_stream.
_PARAMS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("temperature", semconv.REQUEST_TEMPERATURE, number),
    ("p", semconv.REQUEST_TOP_P, number),
    ("k", semconv.REQUEST_TOP_K, integer),
    ("max_tokens", semconv.REQUEST_MAX_TOKENS, integer),
    ("seed", semconv.REQUEST_SEED, integer),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY, number),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY, number),
)
_OUTPUT_TYPES = {"json_object": "json", "text": "text"}


def _request_params(inv: Invocation, body: Mapping[str, Any]) -> None:
    attrs = inv.request_attributes
    for key, attribute, convert in _PARAMS:
        value = convert(body.get(key))
        if value is not None:
            attrs[attribute] = value
    stop = strings(body.get("stop_sequences"))
    if stop:
        attrs[semconv.REQUEST_STOP_SEQUENCES] = stop
    output_type = _OUTPUT_TYPES.get(str(get(body.get("response_format"), "type")))
    if output_type:
        attrs[semconv.OUTPUT_TYPE] = output_type


# --- content (only when capture is on) -----------------------------------------------------------


def _parts(content: Any, limit: int) -> list[dict[str, Any]]:
    """Message content (a string or a list of typed items, dicts or SDK objects) as semconv parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content, limit)]
    parts: list[dict[str, Any]] = []
    for item in content if isinstance(content, (list, tuple)) else [content]:
        kind = get(item, "type")
        if kind == "text":
            parts.append(text_part(get(item, "text") or "", limit))
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": truncate(str(get(item, "thinking") or ""), limit)})
        elif kind == "image_url":
            image = get(item, "image_url")
            url = get(image, "url") if image is not None and not isinstance(image, str) else image
            parts.append(media_part(str(url or "")))
        elif kind == "document":
            parts.append(_document(get(item, "document"), limit))
        else:
            parts.append({"type": str(kind)})
    return parts


def _document(document: Any, limit: int) -> dict[str, Any]:
    data = get(document, "data")
    text = data if isinstance(data, str) else _compact(data)
    return text_part(text, limit)


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


def _chat_input(inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
    # A `system` message is part of the chat history: it stays in the input messages with its role.
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        role = str(get(message, "role") or "user")
        content = get(message, "content")
        if role == "tool":
            response = truncate(content, limit) if isinstance(content, str) else _parts(content, limit)
            messages.append({"role": "tool", "parts": [
                {"type": "tool_call_response", "id": get(message, "tool_call_id"), "response": response}
            ]})  # fmt: skip
            continue
        parts = []
        plan = get(message, "tool_plan")
        if plan:
            parts.append({"type": "reasoning", "content": truncate(str(plan), limit)})
        parts.extend(_parts(content, limit))
        for call in get(message, "tool_calls") or ():
            function = get(call, "function")
            parts.append(tool_call_part(get(call, "id"), get(function, "name"), get(function, "arguments")))
        messages.append({"role": role, "parts": parts})
    inv.input_messages = messages
    tool_definitions(inv, body.get("tools"))


# --- usage ----------------------------------------------------------------------------------------


def _usage(inv: Invocation, usage: Any) -> None:
    """`usage` of a chat response or of message-end: billed counts, consumed ones beside them."""
    if usage is None:
        return
    billed, consumed = get(usage, "billed_units"), get(usage, "tokens")
    consumed_in, consumed_out = count(get(consumed, "input_tokens")), count(get(consumed, "output_tokens"))
    billed_in, billed_out = count(get(billed, "input_tokens")), count(get(billed, "output_tokens"))
    inv.input_tokens = billed_in if billed_in is not None else consumed_in
    inv.output_tokens = billed_out if billed_out is not None else consumed_out
    cached = count(get(usage, "cached_tokens"))
    if cached is not None:
        inv.response_attributes[semconv.COHERE_USAGE_CACHED_TOKENS] = cached
    if consumed_in is not None:
        inv.response_attributes[semconv.COHERE_USAGE_CONSUMED_INPUT_TOKENS] = consumed_in
    if consumed_out is not None:
        inv.response_attributes[semconv.COHERE_USAGE_CONSUMED_OUTPUT_TOKENS] = consumed_out


# --- routes ---------------------------------------------------------------------------------------


class ChatRoute:
    """`chat` and `chat_stream`."""

    operation = semconv.OP_CHAT

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.content_max_length

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        _request_params(inv, body)
        if inv.capture_content:
            _chat_input(inv, body, self.limit)

    def response(self, inv: Invocation, response: Any) -> None:
        response_id = getattr(response, "id", None)
        if isinstance(response_id, str):
            inv.response_id = response_id
        _usage(inv, getattr(response, "usage", None))
        reason = finish_reason(getattr(response, "finish_reason", None))
        inv.finish_reasons = [reason]
        message = getattr(response, "message", None)
        tool_calls = getattr(message, "tool_calls", None) or ()
        inv.tool_call_count = len(tool_calls)
        if inv.capture_content:
            parts: list[dict[str, Any]] = []
            plan = getattr(message, "tool_plan", None)
            if plan:
                parts.append({"type": "reasoning", "content": truncate(plan, self.limit)})
            parts.extend(_parts(getattr(message, "content", None), self.limit))
            for call in tool_calls:
                function = getattr(call, "function", None)
                name, arguments = getattr(function, "name", None), getattr(function, "arguments", None)
                parts.append(tool_call_part(getattr(call, "id", None), name, arguments))
            inv.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        accumulator = ChatStreamAccumulator(inv, self.limit)
        return accumulator.on_event, accumulator.on_end


# Stream events that carry output: each one is an output chunk.
_OUTPUT_EVENTS = frozenset(("content-delta", "tool-plan-delta", "tool-call-delta"))


class ChatStreamAccumulator:
    """Reads v2 chat stream events: a type check per event, the rest only when it matters."""

    __slots__ = ("calls", "capture", "inv", "limit", "plan", "reason", "texts", "thinking")

    def __init__(self, inv: Invocation, limit: int) -> None:
        self.inv = inv
        self.limit = limit
        self.capture = inv.capture_content
        self.reason: str | None = None
        self.texts: list[str] = []
        self.thinking: list[str] = []
        self.plan: list[str] = []
        self.calls: dict[Any, list[Any]] = {}  # index -> [id, name, argument fragments]

    def on_event(self, event: Any) -> None:
        kind = event.type
        if kind in _OUTPUT_EVENTS:
            self.inv.chunk_times.append(_perf_ns())
            if self.capture:
                self._capture(kind, event)
        elif kind == "tool-call-start":
            self.inv.tool_call_count += 1
            if self.capture:
                call = event.delta.message.tool_calls
                function = getattr(call, "function", None)
                self.calls[event.index] = [getattr(call, "id", None), getattr(function, "name", None), []]
        elif kind == "message-start":
            if isinstance(event.id, str):
                self.inv.response_id = event.id
        elif kind == "message-end":
            delta = event.delta
            self.reason = finish_reason(getattr(delta, "finish_reason", None))
            _usage(self.inv, getattr(delta, "usage", None))

    def _capture(self, kind: str, event: Any) -> None:
        message = event.delta.message
        if kind == "content-delta":
            content = message.content
            if content.text:
                self.texts.append(content.text)
            elif content.thinking:
                self.thinking.append(content.thinking)
        elif kind == "tool-plan-delta":
            self.plan.append(message.tool_plan or "")
        else:
            call = self.calls.get(event.index)
            if call is not None:
                call[2].append(message.tool_calls.function.arguments or "")

    def on_end(self) -> None:
        inv = self.inv
        if self.reason is not None:
            inv.finish_reasons = [self.reason]
        if not self.capture:
            return
        parts: list[dict[str, Any]] = []
        for reasoning in ("".join(self.plan), "".join(self.thinking)):
            if reasoning:
                parts.append({"type": "reasoning", "content": truncate(reasoning, self.limit)})
        if self.texts:
            parts.append(text_part("".join(self.texts), self.limit))
        for call_id, name, fragments in self.calls.values():
            parts.append(tool_call_part(call_id, name, "".join(fragments)))
        reason = self.reason or semconv.FINISH_ERROR
        inv.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


# Embedding types whose vectors have one number per dimension, and the packed binary ones (8 per byte).
_PER_DIMENSION = ("float_", "int8", "uint8")
_PACKED = ("binary", "ubinary")


class EmbedRoute:
    """`embed`."""

    operation = semconv.OP_EMBEDDINGS

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        formats = strings(body.get("embedding_types"))
        if formats:
            inv.request_attributes[semconv.REQUEST_ENCODING_FORMATS] = formats
        dimensions = integer(body.get("output_dimension"))
        if dimensions is not None:
            inv.dimension_count = dimensions

    def response(self, inv: Invocation, response: Any) -> None:
        response_id = getattr(response, "id", None)
        if isinstance(response_id, str):
            inv.response_id = response_id
        meta = getattr(response, "meta", None)
        billed = count(get(get(meta, "billed_units"), "input_tokens"))
        inv.input_tokens = billed if billed is not None else count(get(get(meta, "tokens"), "input_tokens"))
        embeddings = getattr(response, "embeddings", None)
        for name, per_value in [(n, 1) for n in _PER_DIMENSION] + [(n, 8) for n in _PACKED]:
            vectors = getattr(embeddings, name, None)
            if vectors and isinstance(vectors[0], (list, tuple)):
                inv.dimension_count = len(vectors[0]) * per_value
                return

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        return (lambda chunk: None), None


class RawResponseRoute:
    """A route over `with_raw_response` calls: the parsed response is the HttpResponse's `data`."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.operation = route.operation

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        self.route.request(inv, body)

    def response(self, inv: Invocation, raw: Any) -> None:
        self.route.response(inv, getattr(raw, "data", None))

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        return self.route.stream(inv)


# --- wiring -----------------------------------------------------------------------------------------


def client_endpoint(settings: Settings) -> Callable[[Any], tuple[str, str | None, int | None]]:
    """Provider, host and port of a v2 client (or raw client), cached on it until its base URL changes.
    A `LLMLENS_PROVIDER_MAP` entry for the host (or host:port) names the provider, e.g. a gateway."""
    owner = object()  # this instrumentation's cache entries; a re-instrument misses them
    overrides = settings.provider_map

    def endpoint(client: Any) -> tuple[str, str | None, int | None]:
        wrapper = getattr(client, "_client_wrapper", None)
        if wrapper is None:
            wrapper = client._raw_client._client_wrapper
        base_url = wrapper.get_base_url()
        cached = client.__dict__.get("_llmlens_endpoint")
        if cached is not None and cached[0] is base_url and cached[1] is owner:
            return cached[2]  # type: ignore[no-any-return]
        platform = next(
            (_PLATFORMS[c.__name__] for c in type(client).__mro__ if c.__name__ in _PLATFORMS), None
        )
        if platform is not None:
            found: tuple[str, str | None, int | None] = (platform, None, None)
        else:
            url = urlsplit(base_url)
            host, port = url.hostname or None, url.port or default_port(url.scheme)
            found = (_mapped(overrides, host, port) or PROVIDER, host, port)
        client.__dict__["_llmlens_endpoint"] = (base_url, owner, found)
        return found

    return endpoint


def instrument(telemetry: Telemetry, settings: Settings) -> MethodPatch:
    chat, embed = ChatRoute(settings), EmbedRoute()
    patch = MethodPatch(telemetry, client_endpoint(settings))

    def call(route: Any, stream: bool) -> Any:
        return lambda instance, args, kwargs: (route, kwargs, stream)

    for cls in ("V2Client", "AsyncV2Client"):
        patch.wrap("cohere.v2.client", f"{cls}.chat", call(chat, False))
        patch.wrap("cohere.v2.client", f"{cls}.chat_stream", call(chat, True))
        patch.wrap("cohere.v2.client", f"{cls}.embed", call(embed, False))
    raw_module = _raw_module()
    if raw_module is not None:
        for cls in ("RawV2Client", "AsyncRawV2Client"):
            patch.wrap(raw_module, f"{cls}.chat", call(RawResponseRoute(chat), False))
            patch.wrap(raw_module, f"{cls}.embed", call(RawResponseRoute(embed), False))
            patch.wrap_stream_context(raw_module, f"{cls}.chat_stream", call(chat, True))
    return patch


def _mapped(overrides: Mapping[str, str], host: str | None, port: int) -> str | None:
    if not overrides or host is None:
        return None
    host = host.lower()
    return overrides.get(f"{host}:{port}") or overrides.get(host)


def _raw_module() -> str | None:
    """The raw clients' module (cohere >= 5.16); older SDKs make the HTTP call in V2Client itself."""
    name = "cohere.v2.raw_client"
    return name if importlib.util.find_spec(name) is not None else None
