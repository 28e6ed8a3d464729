"""Ollama Python client (`ollama.Client`, `AsyncClient`, and the module functions `ollama.chat(...)`):
chat, generate, embed and the older embeddings.

Patched at `Client._request` / `AsyncClient._request`, the one method every API call goes through, and
routed by path (`/api/chat` -> chat, `/api/generate` -> text_completion, `/api/embed` and
`/api/embeddings` -> embeddings). Patching `Client.chat` instead would miss `ollama.chat(...)`: the
module binds `_client.chat` when it is imported, before llmlens can patch the class. `_request` also
sees the exact JSON body the client sends (messages, tools given as Python functions, and options all
converted), so this module reads plain dicts. With `stream=True` the client returns a generator that
sends the request when first iterated; it is proxied like any SDK stream (core/streams.py).

Usage: `prompt_eval_count` (the prompt tokens the server evaluated) is `gen_ai.usage.input_tokens` and
`eval_count` is `gen_ai.usage.output_tokens`; both arrive in the last (`done: true`) object of a stream.
Ollama reuses its KV cache for a repeated prompt prefix and does not count those tokens, and it reports
no cached-token count, so no cache attribute is set. A tool call comes with `done_reason: "stop"`;
llmlens reports `tool_call` then, as for every other provider.

Only plain data leaves this module; spans, metrics and names live in core/telemetry.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from llmlens import semconv
from llmlens.core.content import elided_blob, text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.core.telemetry import Telemetry
from llmlens.providers._method_patch import Locate, MethodPatch
from llmlens.providers._plain import count, integer, number, strings, tool_call_part, tool_definitions
from llmlens.providers.endpoints import default_port
from llmlens.settings import Settings

_perf_ns = time.perf_counter_ns
INSTRUMENTS = "ollama >= 0.4, < 1"
PROVIDER = "ollama"


def finish_reason(raw: Any, tool_calls: bool = False) -> str:
    if raw is None:
        return semconv.FINISH_ERROR
    text = str(raw)
    return "tool_call" if text == "stop" and tool_calls else text


# --- request ----------------------------------------------------------------------------------------

# `options` key -> (attribute, converter).
_OPTIONS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("temperature", semconv.REQUEST_TEMPERATURE, number),
    ("top_p", semconv.REQUEST_TOP_P, number),
    ("top_k", semconv.REQUEST_TOP_K, integer),
    ("seed", semconv.REQUEST_SEED, integer),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY, number),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY, number),
)


def _request_params(inv: Invocation, body: Mapping[str, Any]) -> None:
    attrs = inv.request_attributes
    options = body.get("options")
    if isinstance(options, Mapping):
        for key, attribute, convert in _OPTIONS:
            value = convert(options.get(key))
            if value is not None:
                attrs[attribute] = value
        limit = integer(options.get("num_predict"))
        if limit is not None and limit >= 0:  # -1: no limit
            attrs[semconv.REQUEST_MAX_TOKENS] = limit
        stop = strings(options.get("stop"))
        if stop:
            attrs[semconv.REQUEST_STOP_SEQUENCES] = stop
    fmt = body.get("format")
    if fmt == "json" or isinstance(fmt, Mapping):  # "json", or a JSON schema
        attrs[semconv.OUTPUT_TYPE] = "json"
    think = body.get("think")
    if isinstance(think, str):  # "low" / "medium" / "high"; a bool only turns thinking on or off
        attrs[semconv.REQUEST_REASONING_LEVEL] = think


# --- content (only when capture is on) -----------------------------------------------------------


def _images(images: Any) -> list[dict[str, Any]]:
    """Images travel as base64 strings: described, never copied."""
    return [elided_blob(None, "image", len(i)) for i in images or () if isinstance(i, str)]


def _reasoning(text: Any, limit: int) -> list[dict[str, Any]]:
    return [{"type": "reasoning", "content": truncate(text, limit)}] if isinstance(text, str) and text else []


def _chat_input(inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
    # A `system` message is part of the chat history: it stays in the input messages with its role
    # (`generate`'s `system=` is passed apart: gen_ai.system_instructions).
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        content = message.get("content")
        if role == "tool":
            response = truncate(content, limit) if isinstance(content, str) else content
            part = {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": response}
            messages.append({"role": "tool", "parts": [part]})
            continue
        parts = _reasoning(message.get("thinking"), limit)
        if isinstance(content, str) and content:
            parts.append(text_part(content, limit))
        parts.extend(_images(message.get("images")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                parts.append(tool_call_part(call.get("id"), function.get("name"), function.get("arguments")))
        messages.append({"role": role, "parts": parts})
    inv.input_messages = messages
    tool_definitions(inv, body.get("tools"))


def _generate_input(inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
    system = body.get("system")
    if isinstance(system, str) and system:
        inv.system_instructions = [text_part(system, limit)]
    prompt = body.get("prompt")
    parts = [text_part(prompt, limit)] if isinstance(prompt, str) and prompt else []
    parts.extend(_images(body.get("images")))
    inv.input_messages = [{"role": "user", "parts": parts}]


# --- response ---------------------------------------------------------------------------------------


def _done(inv: Invocation, response: Any, tool_calls: bool) -> str | None:
    """The fields of a complete response (or of the last object of a stream); returns the finish reason."""
    model = getattr(response, "model", None)
    if isinstance(model, str) and model:
        inv.response_model = model
    inv.input_tokens = count(getattr(response, "prompt_eval_count", None))
    inv.output_tokens = count(getattr(response, "eval_count", None))
    reason = getattr(response, "done_reason", None)
    if reason is None:
        return None
    inv.finish_reasons = [finish_reason(reason, tool_calls)]
    return inv.finish_reasons[0]


class ChatRoute:
    """POST /api/chat."""

    operation = semconv.OP_CHAT

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.content_max_length

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        _request_params(inv, body)
        if inv.capture_content:
            _chat_input(inv, body, self.limit)

    def response(self, inv: Invocation, response: Any) -> None:
        message = getattr(response, "message", None)
        tool_calls = getattr(message, "tool_calls", None) or ()
        inv.tool_call_count = len(tool_calls)
        reason = _done(inv, response, bool(tool_calls))
        if inv.capture_content:
            parts = _reasoning(getattr(message, "thinking", None), self.limit)
            content = getattr(message, "content", None)
            if content:
                parts.append(text_part(content, self.limit))
            parts.extend(_tool_call(call) for call in tool_calls)
            role = str(getattr(message, "role", None) or "assistant")
            inv.output_messages = [
                {"role": role, "parts": parts, "finish_reason": reason or semconv.FINISH_ERROR}
            ]

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        accumulator = StreamAccumulator(inv, self.limit, chat=True)
        return accumulator.on_part, accumulator.on_end


class GenerateRoute(ChatRoute):
    """POST /api/generate."""

    operation = semconv.OP_TEXT_COMPLETION

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        _request_params(inv, body)
        if inv.capture_content:
            _generate_input(inv, body, self.limit)

    def response(self, inv: Invocation, response: Any) -> None:
        reason = _done(inv, response, False)
        if inv.capture_content:
            parts = _reasoning(getattr(response, "thinking", None), self.limit)
            text = getattr(response, "response", None)
            if text:
                parts.append(text_part(text, self.limit))
            inv.output_messages = [
                {"role": "assistant", "parts": parts, "finish_reason": reason or semconv.FINISH_ERROR}
            ]

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        accumulator = StreamAccumulator(inv, self.limit, chat=False)
        return accumulator.on_part, accumulator.on_end


def _tool_call(call: Any) -> dict[str, Any]:
    function = getattr(call, "function", None)
    name, arguments = getattr(function, "name", None), getattr(function, "arguments", None)
    return tool_call_part(getattr(call, "id", None), name, dict(arguments) if arguments is not None else None)


class StreamAccumulator:
    """Reads the objects of a streamed chat or generate call; every `done: false` one is an output chunk."""

    __slots__ = ("calls", "capture", "chat", "first", "inv", "limit", "reason", "texts", "thinking")

    def __init__(self, inv: Invocation, limit: int, chat: bool) -> None:
        self.inv = inv
        self.limit = limit
        self.chat = chat
        self.capture = inv.capture_content
        self.first = True
        self.reason: str | None = None
        self.texts: list[str] = []
        self.thinking: list[str] = []
        self.calls: list[Any] = []

    def on_part(self, part: Any) -> None:
        inv = self.inv
        if not part.done:
            inv.chunk_times.append(_perf_ns())
            if self.first:
                self.first = False
                model = part.model
                if isinstance(model, str) and model:
                    inv.response_model = model
            if self.chat:
                message = part.message
                calls = message.tool_calls
                if calls:
                    inv.tool_call_count += len(calls)
                    self.calls.extend(calls)
                if self.capture:  # (`thinking`: ollama 0.5 on)
                    self._keep(message.content, getattr(message, "thinking", None))
            elif self.capture:
                self._keep(part.response, getattr(part, "thinking", None))
            return
        self.reason = _done(inv, part, bool(self.calls))

    def _keep(self, text: Any, thinking: Any) -> None:
        if text:
            self.texts.append(text)
        if thinking:
            self.thinking.append(thinking)

    def on_end(self) -> None:
        if not self.capture:
            return
        parts = _reasoning("".join(self.thinking), self.limit)
        if self.texts:
            parts.append(text_part("".join(self.texts), self.limit))
        parts.extend(_tool_call(call) for call in self.calls)
        reason = self.reason or semconv.FINISH_ERROR
        self.inv.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


class EmbedRoute:
    """POST /api/embed, and the older POST /api/embeddings (one vector, no token count)."""

    operation = semconv.OP_EMBEDDINGS

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        dimensions = integer(body.get("dimensions"))
        if dimensions is not None:
            inv.dimension_count = dimensions

    def response(self, inv: Invocation, response: Any) -> None:
        model = getattr(response, "model", None)
        if isinstance(model, str) and model:
            inv.response_model = model
        inv.input_tokens = count(getattr(response, "prompt_eval_count", None))
        vectors = getattr(response, "embeddings", None)
        vector = vectors[0] if vectors else getattr(response, "embedding", None)
        if vector:
            inv.dimension_count = len(vector)

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        return (lambda chunk: None), None


# --- wiring -----------------------------------------------------------------------------------------


def routes(settings: Settings) -> dict[str, Any]:
    embed = EmbedRoute()
    return {
        "/api/chat": ChatRoute(settings),
        "/api/generate": GenerateRoute(settings),
        "/api/embed": embed,
        "/api/embeddings": embed,
    }


def locate_request(table: Mapping[str, Any]) -> Locate:
    """`_request(cls, method, path, json=body, stream=...)` -> (route, body, streamed), for routed paths."""

    def locate(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        path = next((a for a in args if isinstance(a, str) and a.startswith("/")), None)
        route = table.get(path) if path is not None else None
        if route is None:
            return None
        body = kwargs.get("json")
        return route, body if isinstance(body, Mapping) else {}, bool(kwargs.get("stream"))

    return locate


def client_endpoint(settings: Settings) -> Callable[[Any], tuple[str, str | None, int | None]]:
    """Provider, host and port of a client: its httpx client's base URL (default 127.0.0.1:11434),
    cached on the client until that URL changes. A `LLMLENS_PROVIDER_MAP` entry for the host (or
    host:port) names the provider, e.g. another server speaking Ollama's API."""
    owner = object()  # this instrumentation's cache entries; a re-instrument misses them
    overrides = settings.provider_map

    def endpoint(client: Any) -> tuple[str, str | None, int | None]:
        url = client._client.base_url
        cached = client.__dict__.get("_llmlens_endpoint")
        if cached is not None and cached[0] is url and cached[1] is owner:
            return cached[2]  # type: ignore[no-any-return]
        host, port = url.host or None, url.port or default_port(url.scheme)
        named = (overrides.get(f"{host}:{port}") or overrides.get(host)) if overrides and host else None
        found = (named or PROVIDER, host, port)
        client.__dict__["_llmlens_endpoint"] = (url, owner, found)
        return found

    return endpoint


def instrument(telemetry: Telemetry, settings: Settings) -> MethodPatch:
    patch = MethodPatch(telemetry, client_endpoint(settings))
    locate = locate_request(routes(settings))
    patch.wrap("ollama._client", "Client._request", locate)
    patch.wrap("ollama._client", "AsyncClient._request", locate)
    return patch
