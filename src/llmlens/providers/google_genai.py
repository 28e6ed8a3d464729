"""google-genai (1.50 - 3.x): `generate_content` (plain and streamed), `embed_content`, their `client.aio`
twins, and chats, which call them.

One span per model call, i.e. per HTTP request. google-genai is not a Stainless SDK (no single
`request()` to wrap), and its public methods may make several requests for one call: automatic
function calling (AFC) calls the model, runs the user's Python function, and calls the model again;
automatic continuation follows `continuation_token`s. So we wrap the per-request methods
(`Models._generate_content`, `_generate_content_stream`, `_embed_content` and the `AsyncModels` ones):
each request gets its own span with its own usage and finish reason, siblings under the caller's span,
never nested, and chats (which go through `Models`) get the same spans with no extra wrapper.

Streams. The public `generate_content_stream` (and a chat's `send_message_stream`) returns a generator
that sends nothing until it is first read; each request inside it is a stream of its own, which a core
stream proxy ends on every exit path (read to the end, exception, cancellation, garbage collection).
The user holds the public generator, though, not ours: a thin proxy around it (core/streams.py's
`SyncSessionStream`, `AsyncSessionStream`) tells the request being read that the user called
`close()`/`aclose()` (ended as `closed`, now) or dropped the generator (`abandoned`, as of the last
chunk). A stream that is never read
makes no request and no span.

Only plain data leaves this module; spans, metrics and names live in core/telemetry.py.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from wrapt import wrap_function_wrapper

from llmlens import semconv
from llmlens.core.content import elided_blob, text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.core.lifecycle import TracedCall
from llmlens.core.limits import FINISH_REASONS_MAX
from llmlens.core.streams import (
    AsyncSessionStream,
    AsyncStreamProxy,
    StreamSession,
    StreamState,
    SyncSessionStream,
    SyncStreamProxy,
    current_session,
    first_step_in_span,
    join_session,
)
from llmlens.core.telemetry import Telemetry
from llmlens.providers.endpoints import default_port
from llmlens.settings import Settings

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns
# 1.50: the first release that raises an error sent inside a stream (before, the stream just ends and
# its span says completed). Developed and tested against 3.4.
INSTRUMENTS = "google-genai >= 1.50, < 4"

PROVIDER_GEMINI = "gcp.gemini"  # generativelanguage.googleapis.com
PROVIDER_VERTEX = "gcp.vertex_ai"  # aiplatform.googleapis.com (`vertexai=True`)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _get(obj: Any, name: str) -> Any:
    """A field of an SDK object or of the equivalent `...Dict` the SDK also accepts."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _enum(value: Any) -> str | None:
    """The wire value of an SDK enum (a str enum, or a plain string the SDK did not know)."""
    if value is None:
        return None
    value = getattr(value, "value", value)
    return value if isinstance(value, str) else str(value)


def model_name(model: Any) -> str | None:
    """The model id as price lists and `model_version` name it: `models/x`, `publishers/google/models/x`
    and `projects/.../models/x` all give `x`; tuned models and endpoints stay as they are.

    Example:
        >>> model_name("models/gemini-2.5-flash")
        'gemini-2.5-flash'
    """
    if not isinstance(model, str):
        return None
    if model.startswith("models/") or "/models/" in model:
        return model.rsplit("models/", 1)[1] or model
    return model


# --- finish reasons -----------------------------------------------------------------------------

_CONTENT_FILTER = "content_filter"
_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": _CONTENT_FILTER,
    "RECITATION": _CONTENT_FILTER,
    "BLOCKLIST": _CONTENT_FILTER,
    "PROHIBITED_CONTENT": _CONTENT_FILTER,
    "SPII": _CONTENT_FILTER,
    "IMAGE_SAFETY": _CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": _CONTENT_FILTER,
    "IMAGE_RECITATION": _CONTENT_FILTER,
    "MODEL_ARMOR": _CONTENT_FILTER,
    "MALFORMED_FUNCTION_CALL": semconv.FINISH_ERROR,
    "MALFORMED_RESPONSE": semconv.FINISH_ERROR,
}


def finish_reason(raw: Any, called_a_function: bool = False) -> str:
    """Gemini's `finishReason` as the output-message schema has it.

    STOP -> stop (tool_call when the candidate calls a function: Gemini says STOP there too),
    MAX_TOKENS -> length, the safety and recitation filters -> content_filter, a malformed function
    call or response -> error, anything else lower-cased (e.g. `language`, `other`); none -> error.

    Example:
        >>> finish_reason("STOP", called_a_function=True)
        'tool_call'
    """
    name = _enum(raw)
    if name is None:
        return semconv.FINISH_ERROR
    reason = _FINISH_REASONS.get(name) or name.lower()
    return "tool_call" if reason == "stop" and called_a_function else reason


# --- usage ----------------------------------------------------------------------------------------

# Google's MediaModality -> the spec's gen_ai.token.modality (VIDEO and DOCUMENT have no attribute).
_MODALITIES = {"TEXT": "text", "IMAGE": "image", "AUDIO": "audio"}
_MODALITY_INPUT = semconv.USAGE_MODALITY_INPUT_TOKENS
_MODALITY_OUTPUT = semconv.USAGE_MODALITY_OUTPUT_TOKENS
_MODALITY_CACHE_READ = semconv.USAGE_MODALITY_CACHE_READ_INPUT_TOKENS


def _by_modality(*detail_lists: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for details in detail_lists:
        for item in details or ():
            modality = _MODALITIES.get(_enum(_get(item, "modality")) or "")
            tokens = _int(_get(item, "token_count"))
            if modality is not None and tokens is not None:
                counts[modality] = counts.get(modality, 0) + tokens
    return counts


def apply_usage(inv: Invocation, usage: Any) -> None:
    """`usage_metadata` -> gen_ai.usage.* (the one usage model, docs/providers.md):

    - input = prompt_token_count (which includes cached_content_token_count) + tool_use_prompt_token_count
    - output = candidates_token_count + thoughts_token_count (Gemini counts thoughts apart from the
      candidates: total_token_count = prompt + tool_use_prompt + candidates + thoughts)
    - cache_read = cached_content_token_count, reasoning = thoughts_token_count
    - per modality (text, image, audio): input from prompt + tool_use_prompt details, cache_read from
      cache details, output from candidates details plus the thoughts (text), when Google sends details

    A count Google leaves out stays unset (a stream's chunks without counts never erase earlier ones).
    """
    if usage is None:
        return
    prompt = _int(_get(usage, "prompt_token_count"))
    tool_use = _int(_get(usage, "tool_use_prompt_token_count"))
    candidates = _int(_get(usage, "candidates_token_count"))
    thoughts = _int(_get(usage, "thoughts_token_count"))
    cached = _int(_get(usage, "cached_content_token_count"))
    if prompt is not None or tool_use is not None:
        inv.input_tokens = (prompt or 0) + (tool_use or 0)
    if candidates is not None or thoughts is not None:
        inv.output_tokens = (candidates or 0) + (thoughts or 0)
    if cached is not None:
        inv.cache_read_tokens = cached
    if thoughts is not None:
        inv.reasoning_tokens = thoughts
    attributes = inv.response_attributes
    for modality, count in _by_modality(
        _get(usage, "prompt_tokens_details"), _get(usage, "tool_use_prompt_tokens_details")
    ).items():
        attributes[_MODALITY_INPUT[modality]] = count
    for modality, count in _by_modality(_get(usage, "cache_tokens_details")).items():
        attributes[_MODALITY_CACHE_READ[modality]] = count
    output = _by_modality(_get(usage, "candidates_tokens_details"))
    if output:
        if thoughts:
            output["text"] = output.get("text", 0) + thoughts
        for modality, count in output.items():
            attributes[_MODALITY_OUTPUT[modality]] = count


# --- request --------------------------------------------------------------------------------------

_CONFIG_PARAMS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("temperature", semconv.REQUEST_TEMPERATURE, _num),
    ("top_p", semconv.REQUEST_TOP_P, _num),
    ("top_k", semconv.REQUEST_TOP_K, _num),
    ("max_output_tokens", semconv.REQUEST_MAX_TOKENS, _int),
    ("seed", semconv.REQUEST_SEED, _int),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY, _num),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY, _num),
)
_OUTPUT_TYPES = {"application/json": "json", "text/plain": "text", "text/x.enum": "text"}
_MODALITY_OUTPUT_TYPES = {"IMAGE": "image", "AUDIO": "speech"}


def request_attributes(attributes: dict[str, Any], config: Any) -> None:
    """GenerateContentConfig (object or dict) -> gen_ai.request.* attributes."""
    if config is None:
        return
    for key, attribute, convert in _CONFIG_PARAMS:
        value = convert(_get(config, key))
        if value is not None:
            attributes[attribute] = value
    stop = _get(config, "stop_sequences")
    if isinstance(stop, (list, tuple)) and stop:
        attributes[semconv.REQUEST_STOP_SEQUENCES] = [str(s) for s in stop]
    count = _int(_get(config, "candidate_count"))
    if count is not None and count != 1:
        attributes[semconv.REQUEST_CHOICE_COUNT] = count
    output_type = _OUTPUT_TYPES.get(_get(config, "response_mime_type") or "")
    if output_type is None:
        modalities = [_enum(m) for m in _get(config, "response_modalities") or ()]
        if len(modalities) == 1:
            output_type = _MODALITY_OUTPUT_TYPES.get(modalities[0] or "")
    if output_type is not None:
        attributes[semconv.OUTPUT_TYPE] = output_type
    thinking = _get(config, "thinking_config")
    if thinking is not None:
        # The level as sent, lower-cased like other providers' (Gemini 3); else the token budget
        # (Gemini 2.5: "0" turns thinking off, "-1" lets the model decide).
        level = _enum(_get(thinking, "thinking_level"))
        budget = _int(_get(thinking, "thinking_budget"))
        if level and level != "THINKING_LEVEL_UNSPECIFIED":
            attributes[semconv.REQUEST_REASONING_LEVEL] = level.lower()
        elif budget is not None:
            attributes[semconv.REQUEST_REASONING_LEVEL] = str(budget)


# --- content (only when capture is on) -------------------------------------------------------------


def _media_modality(mime_type: str | None) -> str:
    major = (mime_type or "").split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "document"


def _base64_length(data: Any) -> int:
    if isinstance(data, (bytes, bytearray)):
        return -(-len(data) * 4 // 3)  # unpadded, so the descriptor gives back the byte count
    return len(data.rstrip("=")) if isinstance(data, str) else 0


def part_to_semconv(part: Any, limit: int) -> dict[str, Any] | None:
    """One Gemini `Part` (object or dict) as a message part of the semconv schema."""
    if isinstance(part, str):
        return text_part(part, limit)
    text = _get(part, "text")
    if text is not None:
        if _get(part, "thought"):
            return {"type": "reasoning", "content": truncate(str(text), limit)}
        return text_part(text, limit)
    call = _get(part, "function_call")
    if call is not None:
        return {
            "type": "tool_call",
            "id": _get(call, "id"),
            "name": _get(call, "name"),
            "arguments": _get(call, "args"),
        }
    response = _get(part, "function_response")
    if response is not None:
        return {
            "type": "tool_call_response",
            "id": _get(response, "id"),
            "response": _get(response, "response"),
        }
    blob = _get(part, "inline_data")
    if blob is not None:
        mime_type = _get(blob, "mime_type")
        return elided_blob(mime_type, _media_modality(mime_type), _base64_length(_get(blob, "data")))
    file = _get(part, "file_data")
    if file is not None:
        mime_type = _get(file, "mime_type")
        uri_part = {"type": "uri", "modality": _media_modality(mime_type), "uri": _get(file, "file_uri")}
        if mime_type:
            uri_part["mime_type"] = mime_type
        return uri_part
    if isinstance(part, Mapping):
        kind = next((k for k, v in part.items() if v is not None), None)
    else:
        kind = next((k for k in type(part).model_fields if getattr(part, k, None) is not None), None)
    return {"type": kind} if kind else None


def _parts(parts: Any, limit: int) -> list[dict[str, Any]]:
    return [p for p in (part_to_semconv(part, limit) for part in parts or ()) if p is not None]


def _role(content: Any, parts: list[dict[str, Any]]) -> str:
    role = _get(content, "role") or "user"
    if role == "model":
        return "assistant"
    if parts and all(p["type"] == "tool_call_response" for p in parts):
        return "tool"  # function results travel in a user turn; the schema has a role for them
    return str(role)


def capture_request(inv: Invocation, contents: Any, config: Any, limit: int) -> None:
    """Input messages, system instructions and tool definitions, in the semconv schema."""
    from google.genai import _transformers

    try:  # the SDK's own normalisation: strings, parts, PIL images, files, dicts...
        normalised = _transformers.t_contents(contents)
    except Exception:
        normalised = [{"role": "user", "parts": [{"text": str(contents)}]}]
    messages = []
    for content in normalised:
        parts = _parts(_get(content, "parts"), limit)
        messages.append({"role": _role(content, parts), "parts": parts})
    inv.input_messages = messages
    system = _get(config, "system_instruction")
    if system is not None:
        try:
            system_parts = _get(_transformers.t_content(system), "parts")
        except Exception:
            system_parts = [str(system)]
        inv.system_instructions = [p for p in _parts(system_parts, limit) if p["type"] == "text"]
    tools = _get(config, "tools")
    if tools:
        inv.tool_definitions = [d for tool in tools for d in _tool_definitions(tool)]


def _tool_definitions(tool: Any) -> list[dict[str, Any]]:
    if callable(tool) and not isinstance(tool, Mapping):  # a Python function for AFC
        doc = (getattr(tool, "__doc__", None) or "").strip().split("\n\n", 1)[0]
        definition = {"type": "function", "name": getattr(tool, "__name__", type(tool).__name__)}
        if doc:
            definition["description"] = doc
        return [definition]
    if not isinstance(tool, Mapping) and not hasattr(type(tool), "model_fields"):
        return [{"type": type(tool).__name__}]  # e.g. an MCP session
    definitions: list[dict[str, Any]] = []
    for declaration in _get(tool, "function_declarations") or _get(tool, "functionDeclarations") or ():
        definition = {"type": "function", "name": _get(declaration, "name")}
        if _get(declaration, "description"):
            definition["description"] = _get(declaration, "description")
        definitions.append(definition)
    names = tool.keys() if isinstance(tool, Mapping) else type(tool).model_fields
    for name in names:  # built-in tools: google_search, code_execution, url_context, ...
        if name not in ("function_declarations", "functionDeclarations") and _get(tool, name) is not None:
            definitions.append({"type": name, "name": name})
    return definitions


def _output_message(candidate: Any, limit: int) -> dict[str, Any]:
    content = _get(candidate, "content")
    parts = _parts(_get(content, "parts"), limit)
    called = any(p["type"] == "tool_call" for p in parts)
    return {
        "role": "assistant",
        "parts": parts,
        "finish_reason": finish_reason(_get(candidate, "finish_reason"), called),
    }


# --- responses ------------------------------------------------------------------------------------


def _calls(candidate: Any) -> int:
    content = candidate.content
    parts = content.parts if content is not None else None
    return sum(1 for part in parts if part.function_call is not None) if parts else 0


def apply_response(inv: Invocation, response: Any, limit: int) -> None:
    """A GenerateContentResponse -> id, model, finish reasons, tool calls, usage, output content."""
    response_id = response.response_id
    if isinstance(response_id, str):
        inv.response_id = response_id
    model_version = response.model_version
    if isinstance(model_version, str):
        inv.response_model = model_version
    apply_usage(inv, response.usage_metadata)
    candidates = response.candidates or ()
    reasons = []
    for candidate in candidates:
        calls = _calls(candidate)
        inv.tool_call_count += calls
        reasons.append(finish_reason(candidate.finish_reason, calls > 0))
    if not candidates:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reasons = [_CONTENT_FILTER]  # the prompt was blocked: no candidate at all
    if reasons:
        inv.finish_reasons = reasons
    if inv.capture_content:
        inv.output_messages = [_output_message(c, limit) for c in candidates]


class StreamReader:
    """Reads streamed GenerateContentResponse chunks: a few attribute reads per chunk.

    Every chunk with candidates is an output chunk (time to first chunk, chunk gaps). Usage comes as
    running totals (the Gemini API repeats them on every chunk, Vertex sends them on the last), so the
    last usage seen wins, applied once at the end: an abandoned stream keeps what it had so far.
    """

    __slots__ = ("calls", "capture", "first", "inv", "limit", "reasons", "texts", "thoughts", "usage")

    def __init__(self, inv: Invocation, limit: int) -> None:
        self.inv = inv
        self.limit = limit
        self.capture = inv.capture_content
        self.first = True
        self.usage: Any = None
        self.reasons: dict[int, Any] = {}
        self.calls: dict[int, list[Any]] = {}  # candidate index -> FunctionCall parts
        self.texts: dict[int, list[str]] = {}
        self.thoughts: dict[int, list[str]] = {}

    def on_chunk(self, chunk: Any) -> None:
        if self.first:
            self.first = False
            if isinstance(chunk.response_id, str):
                self.inv.response_id = chunk.response_id
            if isinstance(chunk.model_version, str):
                self.inv.response_model = chunk.model_version
        usage = chunk.usage_metadata
        if usage is not None:
            self.usage = usage
        candidates = chunk.candidates
        if not candidates:
            return
        self.inv.chunk_times.append(_perf_ns())
        for position, candidate in enumerate(candidates):
            index = candidate.index if candidate.index is not None else position
            if candidate.finish_reason is not None:
                self.reasons[index] = candidate.finish_reason
            else:
                self.reasons.setdefault(index, None)  # a candidate seen, its reason still to come
            content = candidate.content
            parts = content.parts if content is not None else None
            for part in parts or ():
                if part.function_call is not None:
                    self.calls.setdefault(index, []).append(part)
                    self.inv.tool_call_count += 1
                elif self.capture and part.text:
                    (self.thoughts if part.thought else self.texts).setdefault(index, []).append(part.text)

    def on_end(self) -> None:
        inv = self.inv
        apply_usage(inv, self.usage)
        if not self.reasons:
            return
        indexes = range(min(max(self.reasons) + 1, FINISH_REASONS_MAX))  # (the upstream's index: bounded)
        inv.finish_reasons = [finish_reason(self.reasons.get(i), i in self.calls) for i in indexes]
        if not self.capture:
            return
        messages = []
        for i, reason in zip(indexes, inv.finish_reasons, strict=True):
            parts: list[dict[str, Any]] = []
            if i in self.thoughts:
                parts.append(
                    {"type": "reasoning", "content": truncate("".join(self.thoughts[i]), self.limit)}
                )
            if i in self.texts:
                parts.append(text_part("".join(self.texts[i]), self.limit))
            parts += _parts(self.calls.get(i), self.limit)
            messages.append({"role": "assistant", "parts": parts, "finish_reason": reason})
        inv.output_messages = messages


def apply_embeddings(inv: Invocation, response: Any) -> None:
    embeddings = response.embeddings or ()
    if embeddings and isinstance(embeddings[0].values, list):
        inv.dimension_count = len(embeddings[0].values)
    usage = getattr(response, "usage_metadata", None)  # google-genai 3.1 on
    tokens = _int(usage.prompt_token_count) if usage is not None else None
    if tokens is None:  # Vertex `predict`: a count per embedding (the Gemini API reports none)
        counts = [e.statistics.token_count for e in embeddings if e.statistics is not None]
        if counts and all(isinstance(c, (int, float)) for c in counts):
            tokens = int(sum(counts))
    if tokens is not None:
        inv.input_tokens = tokens


# --- patching -------------------------------------------------------------------------------------

# (module, Class.method, handler). Request methods make one span each; user streams only relay exits.
_TARGETS = (
    ("google.genai.models", "Models._generate_content", "generate"),
    ("google.genai.models", "AsyncModels._generate_content", "async_generate"),
    ("google.genai.models", "Models._generate_content_stream", "stream"),
    ("google.genai.models", "AsyncModels._generate_content_stream", "async_stream"),
    ("google.genai.models", "Models._embed_content", "embed"),
    ("google.genai.models", "AsyncModels._embed_content", "async_embed"),
    ("google.genai.models", "Models.generate_content_stream", "user_stream"),
    ("google.genai.models", "AsyncModels.generate_content_stream", "async_user_stream"),
    ("google.genai.chats", "Chat.send_message_stream", "user_stream"),
    ("google.genai.chats", "AsyncChat.send_message_stream", "async_user_stream"),
)
# Before google-genai 1.64 the public `embed_content` makes the one request itself (no `_embed_content`).
_FALLBACKS = {
    "Models._embed_content": "Models.embed_content",
    "AsyncModels._embed_content": "AsyncModels.embed_content",
}


class GoogleGenAIPatch:
    """Wraps google-genai's per-request `Models`/`AsyncModels` methods and its user-facing streams."""

    def __init__(self, telemetry: Telemetry, settings: Settings) -> None:
        import importlib

        self.telemetry = telemetry
        self.limit = settings.content_max_length
        self.overrides = settings.provider_map
        self.active = False
        self._owner = object()  # this instrumentation's endpoint cache entries
        generate = TracedCall(
            self, functools.partial(self._begin, semconv.OP_GENERATE_CONTENT, False), self._end
        )
        embed = TracedCall(self, functools.partial(self._begin, semconv.OP_EMBEDDINGS, False), self._end)
        stream_begin = functools.partial(self._begin, semconv.OP_GENERATE_CONTENT, True)
        # A sync stream is a generator whose first read sends the request: that read is put in the
        # span's context (first_step_in_span), the call that only builds the generator is not.
        stream = TracedCall(self, stream_begin, self._sync_stream_result, activate=False)
        async_stream = TracedCall(self, stream_begin, self._async_stream_result)
        handlers = {
            "generate": generate.sync, "async_generate": generate.async_, "embed": embed.sync,
            "async_embed": embed.async_, "stream": stream.sync, "async_stream": async_stream.async_,
            "user_stream": self._sync_user_stream, "async_user_stream": self._async_user_stream,
        }  # fmt: skip
        self._targets = []
        for module_name, target, handler in _TARGETS:
            class_name, method = target.split(".")
            cls = getattr(importlib.import_module(module_name), class_name, None)
            original = cls.__dict__.get(method) if cls is not None else None
            if original is None and target in _FALLBACKS:
                method = _FALLBACKS[target].split(".")[1]
                original = cls.__dict__.get(method) if cls is not None else None
            if original is None:  # tolerate SDK versions without one
                continue
            if handler.startswith("async") and not inspect.iscoroutinefunction(original):
                # Our async wrappers await the call: a method of another shape stays untraced, unbroken.
                _log.debug("llmlens: google-genai %s is not a coroutine function; not traced", target)
                continue
            self._targets.append((cls, method, handlers[handler]))

    def patch(self) -> None:
        for cls, method, handler in self._targets:
            wrap_function_wrapper(cls, method, handler)
        self.active = True

    def unpatch(self) -> None:
        self.active = False  # wrappers still reachable (bound methods kept by the SDK) pass through
        for cls, method, _ in self._targets:
            wrapper = cls.__dict__.get(method)
            if wrapper is not None and hasattr(wrapper, "__wrapped__"):
                setattr(cls, method, wrapper.__wrapped__)

    # --- starting an invocation -----------------------------------------------------------------

    def endpoint(self, api_client: Any, config: Any) -> tuple[str, str | None, int | None]:
        """Provider, host and port of a client (a per-request `http_options.base_url` wins), cached on
        the client until its base URL changes."""
        vertex = bool(getattr(api_client, "vertexai", False))
        override = _get(_get(config, "http_options"), "base_url")
        if override:
            return self._resolve(override, vertex)
        base_url = api_client._http_options.base_url
        cached = api_client.__dict__.get("_llmlens_endpoint")
        if cached is not None and cached[0] == base_url and cached[1] is self._owner:
            return cached[2]  # type: ignore[no-any-return]
        found = self._resolve(base_url, vertex)
        api_client.__dict__["_llmlens_endpoint"] = (base_url, self._owner, found)
        return found

    def _resolve(self, base_url: Any, vertex: bool) -> tuple[str, str | None, int | None]:
        parts = urlsplit(str(base_url or ""))
        host = parts.hostname or None
        port = parts.port or (default_port(parts.scheme) if host else None)
        provider = PROVIDER_VERTEX if vertex else PROVIDER_GEMINI
        if self.overrides and host:
            provider = self.overrides.get(f"{host}:{port}") or self.overrides.get(host) or provider
        return provider, host, port

    def _begin(
        self, operation: str, stream: bool, models: Any, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[Invocation, None]:
        config = kwargs.get("config")
        provider, host, port = self.endpoint(models._api_client, config)
        model = model_name(kwargs.get("model"))
        inv = Invocation(self.telemetry, operation, provider, model, host, port, stream)
        if operation == semconv.OP_GENERATE_CONTENT:
            request_attributes(inv.request_attributes, config)
            if inv.capture_content:
                capture_request(inv, kwargs.get("contents"), config, self.limit)
        else:
            inv.dimension_count = _int(_get(config, "output_dimensionality"))
        return inv, None

    def _end(self, inv: Invocation, route: None, response: Any) -> Any:
        # (a failure to read it is the lifecycle's to handle: the call still ends, the user gets it)
        if inv.operation == semconv.OP_EMBEDDINGS:
            apply_embeddings(inv, response)
        else:
            apply_response(inv, response, self.limit)
        inv.finish()
        return response

    def _stream_state(self, inv: Invocation) -> StreamState:
        reader = StreamReader(inv, self.limit)
        state = StreamState(inv, reader.on_chunk, reader.on_end)
        join_session(state)
        return state

    def _sync_stream_result(self, inv: Invocation, route: None, generator: Any) -> Any:
        started = first_step_in_span(generator, self.telemetry, inv)
        return SyncStreamProxy(started, self._stream_state(inv), hook_close=False)

    def _async_stream_result(self, inv: Invocation, route: None, stream: Any) -> Any:
        # The awaited call sent the request and returned an async generator.
        return AsyncStreamProxy(stream, self._stream_state(inv), hook_close=False)

    # --- user-facing streams --------------------------------------------------------------------

    def _sync_user_stream(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        stream = wrapped(*args, **kwargs)
        if not self.active:
            return stream
        return SyncSessionStream(stream, current_session() or StreamSession())

    async def _async_user_stream(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        stream = await wrapped(*args, **kwargs)
        if not self.active:
            return stream
        return AsyncSessionStream(stream, current_session() or StreamSession())


def instrument(telemetry: Telemetry, settings: Settings) -> GoogleGenAIPatch:
    patch = GoogleGenAIPatch(telemetry, settings)
    patch.patch()
    return patch
