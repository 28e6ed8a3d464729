"""LLM wire formats as a proxy sees them: request bodies, JSON responses and stream events, as plain
Invocation fields.

The extraction is the SDK providers' own (providers/openai.py, anthropic.py, google_genai.py), so a
proxied request and an SDK call of the same API get the same attributes. Those read SDK objects by
attribute, so the JSON here is decoded into `JSONObject`s: dicts whose keys also read as attributes
(None when absent) and, for Gemini, whose camelCase keys are snake_case as google-genai names them.

Each format also recognises errors: an error body (HTTP status >= 400) and an error event inside a
stream that had started fine (OpenAI `{"error": ...}`, Anthropic `event: error`, Responses
`response.failed` / `error`, Gemini `{"error": ...}`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from llmlens import semconv
from llmlens.core.invocation import Invocation
from llmlens.proxy.sse import DONE
from llmlens.settings import Settings

# llmlens.proxy.source_format / target_format values
OPENAI = "openai"
OPENAI_RESPONSES = "openai_responses"
ANTHROPIC = "anthropic"
GEMINI = "gemini"

_perf_ns = time.perf_counter_ns
_TOKEN_FIELDS = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens",
)  # fmt: skip


class JSONObject(dict):  # type: ignore[type-arg]
    """A decoded JSON object whose keys read as attributes too (None when absent), like SDK models."""

    __slots__ = ()
    # dict.get itself (no Python frame per attribute): the extraction reads a few per event.
    __getattr__ = dict.get


def json_reader(**hooks: Any) -> Callable[[bytes | str], Any]:
    """`json.loads(data, **hooks)`, with its decoder made once.

    `json.loads` with a hook builds a new decoder (and its scanner) on every call, and for bytes guesses
    the encoding in Python first: together more than the decoding of a small stream event. Here bytes
    that open an object or array, with no NUL after the bracket (which would make them UTF-16 or -32),
    are UTF-8 (RFC 8259) and go straight to the decoder; anything else takes `json.loads` itself, so
    every input gives the same value or the same exception.
    """
    decode = json.JSONDecoder(**hooks).decode

    def read(data: bytes | str) -> Any:
        if type(data) is bytes and data[:1] in _OPENERS and data[1:2] != b"\x00":
            return decode(data.decode("utf-8", "surrogatepass"))  # (json.loads' error handler)
        return json.loads(data, **hooks)

    return read


_OPENERS = (b"{", b"[")

loads = json_reader(object_hook=JSONObject)


_SNAKE: dict[str, str] = {}


def _snake(key: str) -> str:
    name = _SNAKE.get(key)
    if name is None:
        name = "".join("_" + c.lower() if c.isupper() else c for c in key)
        if len(_SNAKE) < 4096:
            _SNAKE[key] = name
    return name


def _snake_object(pairs: list[tuple[str, Any]]) -> JSONObject:
    return JSONObject((_snake(k), v) for k, v in pairs)


# Gemini JSON with the google-genai SDK's field names (`usageMetadata` -> `usage_metadata`).
loads_snake = json_reader(object_pairs_hook=_snake_object)


def error_of(body: Any) -> tuple[str, str | None] | None:
    """(error.type, message) of an error body or event of any of the formats, or None."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")  # OpenAI's is the precise one (`rate_limit_exceeded`); Google's a number
        kind = (code if isinstance(code, str) and code else None) or error.get("type") or error.get("status")
        kind = kind or code
        message = error.get("message")
        return (str(kind) if kind else "upstream_error", message if isinstance(message, str) else None)
    if isinstance(error, str) and error:
        return ("upstream_error", error)
    return None


class KeepNonZero:
    """Proxies' usage reports are irregular (zeros first and real counts later, cumulative counts, a
    count only in some events): keep the last non-zero value of each count."""

    __slots__ = ("best", "inv")

    def __init__(self, inv: Invocation) -> None:
        self.inv = inv
        self.best: dict[str, int] = {}

    def update(self) -> None:
        inv, best = self.inv, self.best
        for field in _TOKEN_FIELDS:
            value = getattr(inv, field)
            if value:
                best[field] = value
            elif field in best:
                setattr(inv, field, best[field])


class StreamReader:
    """One response stream: decoded events go to the provider's stream accumulator."""

    __slots__ = ("failure", "fast", "inv", "loads", "message", "on_end", "on_event", "usage")

    def __init__(
        self,
        inv: Invocation,
        on_event: Callable[[Any], None],
        on_end: Callable[[], None] | None,
        decode: Callable[[bytes | str], Any] = loads,
        fast: Callable[[bytes, bytes], bool] | None = None,
    ) -> None:
        self.inv = inv
        self.on_event = on_event
        self.on_end = on_end
        self.loads = decode
        # (name, data) -> True when the event was handled without decoding it (a plain content delta)
        self.fast = fast
        self.usage = KeepNonZero(inv)
        self.failure: str | None = None  # error.type of an error event in the stream
        self.message: str | None = None

    def event(self, name: bytes, data: bytes) -> None:
        """One SSE event (or one element of a JSON-array stream). May raise on garbage: callers catch."""
        if data == DONE:
            return
        fast = self.fast
        if fast is not None and fast(name, data):
            return
        self.item(self.loads(data), name, data)

    def item(self, obj: Any, name: bytes = b"", raw: bytes | None = None) -> None:
        """One decoded event (or one element of a JSON-array stream); `raw`: its bytes, if known."""
        if not isinstance(obj, dict):
            return
        if raw is None or name == b"error" or b'"error"' in raw or b"response.failed" in raw:
            error = self._error(name, obj)
            if error is not None:
                self.failure, self.message = error
                if obj.get("type") != "response.failed":
                    return
        self.on_event(obj)
        if raw is None or b"sage" in raw:  # "usage", "usageMetadata": the only events with counts
            self.usage.update()

    def _error(self, name: bytes, obj: Mapping[str, Any]) -> tuple[str, str | None] | None:
        kind = obj.get("type")
        if kind == "response.failed":  # Responses API: the failed response carries the error
            response = obj.get("response")
            error = response.get("error") if isinstance(response, Mapping) else None
            code = error.get("code") if isinstance(error, Mapping) else None
            message = error.get("message") if isinstance(error, Mapping) else None
            return (str(code) if code else "response.failed", message if isinstance(message, str) else None)
        if kind == "error" and "error" not in obj:  # Responses API `error` event: code and message inline
            code, message = obj.get("code"), obj.get("message")
            return (str(code) if code else "upstream_error", message if isinstance(message, str) else None)
        found = error_of(obj)
        if found is None and name == b"error":
            return ("upstream_error", None)
        return found

    def end(self) -> None:
        if self.on_end is not None:
            self.on_end()
        self.usage.update()


# --- the formats ------------------------------------------------------------------------------------


class WireFormat:
    """What a proxy needs of an API: its names, and readers for its requests, responses and streams."""

    name: str = OPENAI  # llmlens.proxy.source_format
    provider: str = "openai"  # gen_ai.provider.name until the upstream is known
    operation: str = semconv.OP_CHAT
    decode: Callable[[bytes | str], Any] = staticmethod(loads)
    # Request bodies are read as plain dicts (Mapping.get), which decode faster.
    decode_request: Callable[[bytes | str], Any] = staticmethod(json_reader())

    def __init__(self, route: Any) -> None:
        self.route = route  # the provider module's route object (request/response/stream)
        self.operation = route.operation

    def request(self, inv: Invocation, body: Mapping[str, Any], path: str) -> tuple[str | None, bool]:
        """Fill request attributes (and content) from the body; return (model, stream)."""
        model = body.get("model")
        self.route.request(inv, body)
        return (model if isinstance(model, str) else None), body.get("stream") is True

    def response(self, inv: Invocation, body: Any) -> None:
        self.route.response(inv, body)

    def stream_reader(self, inv: Invocation) -> StreamReader:
        on_event, on_end = self.route.stream(inv)
        fast = None if inv.capture_content else self.fast_path(inv)
        return StreamReader(inv, on_event, on_end, self.decode, fast)

    def fast_path(self, inv: Invocation) -> Callable[[bytes, bytes], bool] | None:
        """Without content capture, most events only say "a chunk went out": recognise them from their
        bytes and skip decoding (what the provider's accumulator would do with them: note the time)."""
        return None

    def provider_for(self, path: str) -> str:
        return self.provider


class OpenAIFormat(WireFormat):
    def fast_path(self, inv: Invocation) -> Callable[[bytes, bytes], bool] | None:
        if getattr(self.route, "api_type", None) != "chat_completions":
            return None
        times = inv.chunk_times

        search = _CHAT_NOT_PLAIN.search

        def content_delta(name: bytes, data: bytes) -> bool:
            # A chunk with one choice still going (no finish reason), no tool call, refusal, usage or
            # error, after the first chunk (which names the response): only its time matters.
            if times and data.count(b'"finish_reason":null') == 1 and search(data) is None:
                times.append(_perf_ns())
                return True
            return False

        return content_delta


# In a chat chunk: something the accumulator must see (the second `finish_reason` of another choice,
# a tool call, a refusal, usage, an error). JSON escapes quotes inside strings, so content cannot match.
# The shared `"` is outside the alternation: sre then tries the five names only after a quote, 30% faster
# than five alternatives that each start with one.
_CHAT_NOT_PLAIN = re.compile(rb'"(?:tool_calls"|refusal"|error"|usage":\{|finish_reason":(?!null))')

_RESPONSES_DELTAS = frozenset(
    name.encode() for name in (
        "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta", "response.reasoning_text.delta", "response.audio.delta",
        "response.audio.transcript.delta", "response.custom_tool_call_input.delta",
    )
)  # fmt: skip


class OpenAIResponsesFormat(WireFormat):
    name = OPENAI_RESPONSES

    def fast_path(self, inv: Invocation) -> Callable[[bytes, bytes], bool] | None:
        times = inv.chunk_times

        def output_delta(name: bytes, data: bytes) -> bool:
            if name in _RESPONSES_DELTAS and b'"error"' not in data:
                times.append(_perf_ns())
                return True
            return False

        return output_delta


class AnthropicFormat(WireFormat):
    name = ANTHROPIC
    provider = "anthropic"

    def fast_path(self, inv: Invocation) -> Callable[[bytes, bytes], bool] | None:
        times = inv.chunk_times

        def content_delta(name: bytes, data: bytes) -> bool:
            if name == b"content_block_delta":
                if b'"error"' in data:
                    return False
                times.append(_perf_ns())
                return True
            return name in _ANTHROPIC_NOTHING_TO_READ and b'"error"' not in data

        return content_delta


# Anthropic events that carry nothing the accumulator reads (without content capture): not decoded.
_ANTHROPIC_NOTHING_TO_READ = frozenset((b"ping", b"content_block_stop", b"message_stop"))


class GeminiFormat(WireFormat):
    """`POST .../models/{model}:generateContent` and `:streamGenerateContent` (Gemini API or Vertex AI)."""

    name = GEMINI
    provider = "gcp.gemini"
    operation = semconv.OP_GENERATE_CONTENT
    decode = staticmethod(loads_snake)
    decode_request = staticmethod(loads_snake)

    def __init__(self, settings: Settings, stream: bool) -> None:
        self.limit = settings.content_max_length
        self.stream = stream

    def request(self, inv: Invocation, body: Mapping[str, Any], path: str) -> tuple[str | None, bool]:
        from llmlens.providers import google_genai

        config = body.get("generation_config")
        config = config if isinstance(config, Mapping) else None
        google_genai.request_attributes(inv.request_attributes, config)
        if inv.capture_content:
            self._content(inv, body)
        return _gemini_model(path), self.stream

    def _content(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        from llmlens.providers import google_genai

        messages = []
        contents = body.get("contents")
        for content in contents if isinstance(contents, list) else ():
            if isinstance(content, Mapping):
                parts = google_genai._parts(content.get("parts"), self.limit)
                messages.append({"role": google_genai._role(content, parts), "parts": parts})
        inv.input_messages = messages
        system = body.get("system_instruction")
        if isinstance(system, Mapping):
            parts = google_genai._parts(system.get("parts"), self.limit)
            inv.system_instructions = [p for p in parts if p["type"] == "text"]
        tools = body.get("tools")
        if isinstance(tools, list) and tools:
            inv.tool_definitions = [d for t in tools for d in google_genai._tool_definitions(t)]

    def response(self, inv: Invocation, body: Any) -> None:
        from llmlens.providers import google_genai

        google_genai.apply_response(inv, body, self.limit)

    def stream_reader(self, inv: Invocation) -> StreamReader:
        from llmlens.providers import google_genai

        reader = google_genai.StreamReader(inv, self.limit)
        return StreamReader(inv, reader.on_chunk, reader.on_end, self.decode)

    def provider_for(self, path: str) -> str:
        return "gcp.vertex_ai" if "/projects/" in path else "gcp.gemini"


def _gemini_model(path: str) -> str | None:
    """`/v1beta/models/gemini-2.0-flash:generateContent` -> `gemini-2.0-flash`."""
    start = path.rfind("/models/")
    if start < 0:
        return None
    name = path[start + 8 :]
    colon = name.rfind(":")
    return (name[:colon] if colon >= 0 else name) or None


# Route table values: format name -> factory.
def _openai(route: str) -> Callable[[Settings], WireFormat]:
    def make(settings: Settings) -> WireFormat:
        from llmlens.providers import openai

        table = openai.routes(settings)
        cls = OpenAIResponsesFormat if route == "/responses" else OpenAIFormat
        return cls(table[route])

    return make


def _anthropic(count_tokens: bool) -> Callable[[Settings], WireFormat]:
    def make(settings: Settings) -> WireFormat:
        from llmlens.providers import anthropic

        route = anthropic.CountTokensRoute() if count_tokens else anthropic.MessagesRoute(settings)
        return AnthropicFormat(route)

    return make


FORMATS: dict[str, Callable[[Settings], WireFormat]] = {
    "openai_chat": _openai("/chat/completions"),
    "openai_completions": _openai("/completions"),
    "openai_responses": _openai("/responses"),
    "openai_embeddings": _openai("/embeddings"),
    "anthropic_messages": _anthropic(False),
    "anthropic_count_tokens": _anthropic(True),
    "gemini_generate": lambda settings: GeminiFormat(settings, stream=False),
    "gemini_stream_generate": lambda settings: GeminiFormat(settings, stream=True),
}
