"""OpenAI SDK (openai 1.x-3.x): chat completions, the Responses API, embeddings, legacy completions.

Only plain data leaves this module: request parameters, usage, finish reasons and (when captured)
content in the semconv message-part shape. Spans, metrics and names live in core/telemetry.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from llmlens import semconv
from llmlens.core.content import media_part, text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.core.limits import FINISH_REASONS_MAX, cap
from llmlens.core.telemetry import Telemetry
from llmlens.providers._stainless import StainlessPatch
from llmlens.providers.endpoints import default_port, provider_for
from llmlens.settings import Settings

_perf_ns = time.perf_counter_ns
# 1.55.3: the first release whose client can be built with httpx 0.28 or later (which dropped `proxies`).
INSTRUMENTS = "openai >= 1.55.3, < 4"

# OpenAI finish reasons -> the output-message schema's values (as util-genai maps them).
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}


def finish_reason(raw: Any) -> str:
    if raw is None:
        return semconv.FINISH_ERROR
    raw = str(raw)
    return _FINISH_REASONS.get(raw, raw)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


# --- request parameters ---------------------------------------------------------------------------

# body key -> (attribute, converter); shared by chat, completions and responses.
_COMMON_PARAMS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("temperature", semconv.REQUEST_TEMPERATURE, _num),
    ("top_p", semconv.REQUEST_TOP_P, _num),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY, _num),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY, _num),
    ("seed", semconv.REQUEST_SEED, _int),
    ("max_tokens", semconv.REQUEST_MAX_TOKENS, _int),
    ("max_completion_tokens", semconv.REQUEST_MAX_TOKENS, _int),
    ("max_output_tokens", semconv.REQUEST_MAX_TOKENS, _int),
    ("previous_response_id", semconv.REQUEST_PREVIOUS_RESPONSE_ID, _str),
    ("service_tier", semconv.OPENAI_REQUEST_SERVICE_TIER, _str),
)


def _request_params(inv: Invocation, body: Mapping[str, Any]) -> None:
    attrs = inv.request_attributes
    for key, attribute, convert in _COMMON_PARAMS:
        value = body.get(key)
        if value is not None:
            value = convert(value)
            if value is not None:
                attrs[attribute] = value
    stop = body.get("stop")
    if isinstance(stop, str):
        attrs[semconv.REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, (list, tuple)) and stop:
        attrs[semconv.REQUEST_STOP_SEQUENCES] = [str(s) for s in stop]
    n = _int(body.get("n"))
    if n is not None and n != 1:
        attrs[semconv.REQUEST_CHOICE_COUNT] = n
    effort = body.get("reasoning_effort")
    if effort is None:
        reasoning = body.get("reasoning")
        effort = reasoning.get("effort") if isinstance(reasoning, Mapping) else None
    if isinstance(effort, str):
        attrs[semconv.REQUEST_REASONING_LEVEL] = effort
    output_type = _output_type(body)
    if output_type:
        attrs[semconv.OUTPUT_TYPE] = output_type


def _output_type(body: Mapping[str, Any]) -> str | None:
    fmt = body.get("response_format")
    if fmt is None:
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind in ("json_object", "json_schema"):
        return "json"
    if kind == "text":
        return "text"
    return None


# --- content (only when capture is on) -----------------------------------------------------------


def _parts(content: Any, limit: int) -> list[dict[str, Any]]:
    """Chat/Responses message content (a string or a list of typed parts) as semconv parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content, limit)]
    parts: list[dict[str, Any]] = []
    for item in content if isinstance(content, (list, tuple)) else [content]:
        if not isinstance(item, Mapping):
            parts.append(text_part(item, limit))
            continue
        kind = item.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(text_part(item.get("text", ""), limit))
        elif kind == "refusal":
            parts.append(text_part(item.get("refusal", ""), limit))
        elif kind == "image_url":
            image = item.get("image_url")
            url = image.get("url", "") if isinstance(image, Mapping) else str(image)
            parts.append(media_part(url))
        elif kind == "input_image":
            parts.append(media_part(str(item.get("image_url") or item.get("file_id") or "")))
        elif kind == "input_audio":
            audio = item.get("input_audio") or {}
            data = audio.get("data", "") if isinstance(audio, Mapping) else ""
            parts.append(media_part(f"data:audio/{audio.get('format', '')};base64,{data}", "audio"))
        elif kind in ("file", "input_file"):
            file = item.get("file", item)
            file_id = file.get("file_id") if isinstance(file, Mapping) else None
            if file_id:
                parts.append({"type": "file", "modality": "document", "file_id": file_id})
            else:
                data = str(file.get("file_data", "")) if isinstance(file, Mapping) else ""
                parts.append(media_part(data if data.startswith("data:") else "data:;base64,", "document"))
        else:
            parts.append({"type": str(kind)})
    return parts


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A `tool_call` part; arguments parsed to an object when they are JSON, as the schema asks."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def _chat_input(inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
    # `system` and `developer` messages are part of the chat history: they stay in the input messages
    # with their role (gen_ai.system_instructions is for instructions passed apart from it).
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role", "user"))
        if role == "tool":
            response = message.get("content")
            response = truncate(response, limit) if isinstance(response, str) else _parts(response, limit)
            messages.append(
                {"role": "tool", "parts": [
                    {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": response}
                ]}
            )  # fmt: skip
            continue
        parts = _parts(message.get("content"), limit)
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            parts.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
        messages.append({"role": role, "parts": parts})
    inv.input_messages = messages
    _tool_definitions(inv, body)


def _tool_definitions(inv: Invocation, body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    if not tools:
        return
    definitions = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
        definition = {"type": str(tool.get("type", "function")), "name": function.get("name")}
        if function.get("description"):
            definition["description"] = function["description"]
        definitions.append(definition)
    inv.tool_definitions = definitions


def _responses_input(inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
    # `instructions=` are passed apart: gen_ai.system_instructions. Input items with a `system` or
    # `developer` role are part of the conversation and stay in the input messages.
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        inv.system_instructions = [text_part(instructions, limit)]
    raw = body.get("input")
    messages: list[dict[str, Any]] = []
    if isinstance(raw, str):
        messages.append({"role": "user", "parts": [text_part(raw, limit)]})
    elif isinstance(raw, (list, tuple)):
        for item in raw:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type")
            if kind == "function_call_output":
                output = item.get("output")
                messages.append({"role": "tool", "parts": [
                    {"type": "tool_call_response", "id": item.get("call_id"),
                     "response": truncate(output, limit) if isinstance(output, str) else output}
                ]})  # fmt: skip
            elif kind == "function_call":
                call = _tool_call(item.get("call_id"), item.get("name"), item.get("arguments"))
                messages.append({"role": "assistant", "parts": [call]})
            elif "role" in item:
                messages.append({"role": str(item["role"]), "parts": _parts(item.get("content"), limit)})
    inv.input_messages = messages
    _tool_definitions(inv, body)


# --- usage ----------------------------------------------------------------------------------------


def _field(details: Any, name: str) -> Any:
    """A field of a usage details object, or of the plain dict an SDK whose usage model predates the
    field keeps it as (Stainless models keep unknown fields: groq before 0.35 types no token details)."""
    if isinstance(details, Mapping):
        return details.get(name)
    return getattr(details, name, None)


def _chat_usage(inv: Invocation, usage: Any) -> None:
    """`usage` of chat completions and legacy completions."""
    if usage is None:
        return
    inv.input_tokens = _int(getattr(usage, "prompt_tokens", None))
    inv.output_tokens = _int(getattr(usage, "completion_tokens", None))
    details = getattr(usage, "prompt_tokens_details", None)
    if details is not None:
        inv.cache_read_tokens = _int(_field(details, "cached_tokens"))
        cache_write = _int(_field(details, "cache_write_tokens"))
        if cache_write is not None:
            inv.cache_creation_tokens = cache_write
    details = getattr(usage, "completion_tokens_details", None)
    if details is not None:
        inv.reasoning_tokens = _int(_field(details, "reasoning_tokens"))


def _responses_usage(inv: Invocation, usage: Any) -> None:
    if usage is None:
        return
    inv.input_tokens = _int(getattr(usage, "input_tokens", None))
    inv.output_tokens = _int(getattr(usage, "output_tokens", None))
    details = getattr(usage, "input_tokens_details", None)
    if details is not None:
        inv.cache_read_tokens = _int(getattr(details, "cached_tokens", None))
        cache_write = _int(getattr(details, "cache_write_tokens", None))
        if cache_write is not None:
            inv.cache_creation_tokens = cache_write
    details = getattr(usage, "output_tokens_details", None)
    if details is not None:
        inv.reasoning_tokens = _int(getattr(details, "reasoning_tokens", None))


def _openai_response_attributes(inv: Invocation, response: Any) -> None:
    tier = getattr(response, "service_tier", None)
    if isinstance(tier, str):
        inv.service_tier, inv.api = tier, "openai"
    fingerprint = getattr(response, "system_fingerprint", None)
    if isinstance(fingerprint, str):  # the upstream's string: capped like every identifier
        inv.response_attributes[semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = cap(fingerprint)


def _identity(inv: Invocation, response: Any) -> None:
    response_id = getattr(response, "id", None)
    if isinstance(response_id, str):
        inv.response_id = response_id
    model = getattr(response, "model", None)
    if isinstance(model, str):
        inv.response_model = model


# --- routes ---------------------------------------------------------------------------------------


class ChatCompletionsRoute:
    """POST /chat/completions."""

    operation = semconv.OP_CHAT
    api_type = "chat_completions"

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.content_max_length

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        inv.request_attributes[semconv.OPENAI_API_TYPE] = self.api_type
        _request_params(inv, body)
        if inv.capture_content:
            _chat_input(inv, body, self.limit)

    def response(self, inv: Invocation, completion: Any) -> None:
        _identity(inv, completion)
        _openai_response_attributes(inv, completion)
        _chat_usage(inv, getattr(completion, "usage", None))
        choices = getattr(completion, "choices", None) or ()
        inv.finish_reasons = [finish_reason(getattr(c, "finish_reason", None)) for c in choices]
        capture = inv.capture_content
        outputs = []
        for choice in choices:
            message = getattr(choice, "message", None)
            tool_calls = getattr(message, "tool_calls", None) or ()
            inv.tool_call_count += len(tool_calls)
            if getattr(message, "refusal", None):
                inv.response_attributes[semconv.LLMLENS_REFUSAL] = True
            if capture:
                outputs.append(self._output_message(choice, message, tool_calls))
        if capture:
            inv.output_messages = outputs

    def _output_message(self, choice: Any, message: Any, tool_calls: Any) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        content = getattr(message, "content", None)
        if content:
            parts.append(text_part(content, self.limit))
        refusal = getattr(message, "refusal", None)
        if refusal:
            parts.append(text_part(refusal, self.limit))
        for call in tool_calls:
            function = getattr(call, "function", None)
            name, arguments = getattr(function, "name", None), getattr(function, "arguments", None)
            parts.append(_tool_call(getattr(call, "id", None), name, arguments))
        return {
            "role": str(getattr(message, "role", None) or "assistant"),
            "parts": parts,
            "finish_reason": finish_reason(getattr(choice, "finish_reason", None)),
        }

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        accumulator = ChatStreamAccumulator(inv, self.limit)
        return accumulator.on_chunk, accumulator.on_end


class ChatStreamAccumulator:
    """Reads chat.completion.chunk objects: a few attribute reads per chunk, nothing more."""

    __slots__ = ("capture", "choices", "first", "inv", "limit", "reasons", "stamp", "texts", "tool_calls")

    def __init__(self, inv: Invocation, limit: int) -> None:
        self.inv = inv
        self.limit = limit
        self.first = True
        self.capture = inv.capture_content
        self.stamp = inv.chunk_times.append
        self.reasons: dict[int, str] = {}
        self.choices = 0  # 1 + the highest choice index seen
        self.texts: dict[int, list[str]] = {}
        # choice index -> tool call index -> [id, name, argument fragments]
        self.tool_calls: dict[int, dict[int, list[Any]]] = {}

    def on_chunk(self, chunk: Any) -> None:
        # The hot path. Fields are read from the pydantic models' __dict__: an attribute read on a
        # model costs three lookups in CPython's type cache, which the SDK's own parsing in between
        # chunks keeps evicting (callgrind: two misses per chunk, ~450 instructions each). The proxy
        # feeds its JSONObject (a dict whose missing attributes read as None): it is its own fields.
        fields = chunk.__dict__
        if fields is None:
            fields = chunk
        choices = fields.get("choices")
        if choices:
            self.stamp(_perf_ns())
            if self.first:
                self._first_chunk(chunk)
            for choice in choices:
                entry = choice.__dict__
                if entry is None:
                    entry = choice
                index = entry.get("index") or 0
                if index >= self.choices:
                    self.choices = index + 1
                reason = entry.get("finish_reason")
                if reason is not None:
                    self.reasons[index] = reason
                model = entry.get("delta")
                if model is None:
                    continue
                delta = model.__dict__
                if delta is None:
                    delta = model
                calls = delta.get("tool_calls")
                if calls:
                    self._tool_call_fragments(index, calls)
                text = delta.get("content")
                if not text:  # a refusal streams in its own field, with no content
                    text = delta.get("refusal")
                    if text:
                        self.inv.response_attributes[semconv.LLMLENS_REFUSAL] = True
                if text and self.capture:
                    self.texts.setdefault(index, []).append(text)
        if fields.get("usage") is not None:
            self._usage_chunk(chunk)

    def _first_chunk(self, chunk: Any) -> None:
        self.first = False
        _identity(self.inv, chunk)
        _openai_response_attributes(self.inv, chunk)

    def _usage_chunk(self, chunk: Any) -> None:
        _chat_usage(self.inv, chunk.usage)
        if self.first:  # a stream of nothing but usage still names the response
            _identity(self.inv, chunk)

    def _tool_call_fragments(self, index: int, calls: Any) -> None:
        per_choice = self.tool_calls.setdefault(index, {})
        for call in calls:
            entry = per_choice.get(call.index)
            function = call.function
            if entry is None:
                entry = per_choice[call.index] = [call.id, getattr(function, "name", None), []]
                self.inv.tool_call_count += 1
            elif function is not None and function.name and not entry[1]:
                entry[1] = function.name
            if self.capture and function is not None and function.arguments:
                entry[2].append(function.arguments)

    def on_end(self) -> None:
        inv = self.inv
        if self.choices:
            # One reason per choice up to the highest index seen; the index is the upstream's number, so
            # the list stops at FINISH_REASONS_MAX (an index of 2**63 would otherwise take all memory).
            count = min(self.choices, FINISH_REASONS_MAX)
            inv.finish_reasons = [finish_reason(self.reasons.get(i)) for i in range(count)]
        if not self.capture:
            return
        messages = []
        for i in range(len(inv.finish_reasons or ())):
            parts: list[dict[str, Any]] = []
            if i in self.texts:
                parts.append(text_part("".join(self.texts[i]), self.limit))
            for call_id, name, fragments in self.tool_calls.get(i, {}).values():
                parts.append(_tool_call(call_id, name, "".join(fragments)))
            reason = finish_reason(self.reasons.get(i))
            messages.append({"role": "assistant", "parts": parts, "finish_reason": reason})
        inv.output_messages = messages


def _prompts(body: Mapping[str, Any]) -> list[Any]:
    """The prompts of a completions request: a string, a token array, or a list of either."""
    prompt = body.get("prompt")
    if not prompt:
        return []
    if isinstance(prompt, str) or (isinstance(prompt, list) and all(isinstance(t, int) for t in prompt)):
        return [prompt]  # one prompt (a token array is one prompt, not one per token)
    return [p for p in prompt if p] if isinstance(prompt, list) else [prompt]


class CompletionsRoute(ChatCompletionsRoute):
    """POST /completions (legacy text completions)."""

    operation = semconv.OP_TEXT_COMPLETION
    api_type = "completions"

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        _request_params(inv, body)
        if inv.capture_content:
            inv.input_messages = [
                {"role": "user", "parts": [text_part(p, self.limit)]} for p in _prompts(body)
            ]

    def response(self, inv: Invocation, completion: Any) -> None:
        _identity(inv, completion)
        _openai_response_attributes(inv, completion)
        _chat_usage(inv, getattr(completion, "usage", None))
        choices = getattr(completion, "choices", None) or ()
        inv.finish_reasons = [finish_reason(getattr(c, "finish_reason", None)) for c in choices]
        if inv.capture_content:
            inv.output_messages = [
                {"role": "assistant", "parts": [text_part(getattr(c, "text", "") or "", self.limit)],
                 "finish_reason": finish_reason(getattr(c, "finish_reason", None))}
                for c in choices
            ]  # fmt: skip

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        accumulator = CompletionStreamAccumulator(inv, self.limit)
        return accumulator.on_chunk, accumulator.on_end


class CompletionStreamAccumulator(ChatStreamAccumulator):
    """Reads text_completion chunks: `choices[].text` instead of `choices[].delta`."""

    __slots__ = ()

    def on_chunk(self, chunk: Any) -> None:
        inv = self.inv
        choices = chunk.choices
        if choices:
            inv.chunk_times.append(_perf_ns())
            if self.first:
                self._first_chunk(chunk)
            for choice in choices:
                index = choice.index
                if index >= self.choices:
                    self.choices = index + 1
                if choice.finish_reason is not None:
                    self.reasons[index] = choice.finish_reason
                if self.capture and choice.text:
                    self.texts.setdefault(index, []).append(choice.text)
        if chunk.usage is not None:
            self._usage_chunk(chunk)


# Responses API: status -> finish reason; output-delta event types count as output chunks.
_RESPONSE_STATUS = {"completed": "stop", "failed": "error", "cancelled": "error", "incomplete": "length"}
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_OUTPUT_DELTAS = frozenset((
    "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta", "response.reasoning_text.delta", "response.audio.delta",
    "response.audio.transcript.delta", "response.custom_tool_call_input.delta",
))  # fmt: skip
_FINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))


class ResponsesRoute:
    """POST /responses (create, stream, and `responses.stream(...)`)."""

    operation = semconv.OP_CHAT

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.content_max_length

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        inv.request_attributes[semconv.OPENAI_API_TYPE] = "responses"
        _request_params(inv, body)
        if inv.capture_content:
            _responses_input(inv, body, self.limit)

    def response(self, inv: Invocation, response: Any) -> None:
        _identity(inv, response)
        _openai_response_attributes(inv, response)
        _responses_usage(inv, getattr(response, "usage", None))
        output = getattr(response, "output", None) or ()
        calls = [item for item in output if getattr(item, "type", None) == "function_call"]
        inv.tool_call_count = len(calls)
        status = getattr(response, "status", None)
        if status == "incomplete":
            details = getattr(response, "incomplete_details", None)
            reason = _INCOMPLETE_REASONS.get(str(getattr(details, "reason", None)), "length")
        elif status == "completed" and calls:
            reason = "tool_call"
        else:
            reason = _RESPONSE_STATUS.get(str(status), str(status)) if status else None
        if reason:
            inv.finish_reasons = [reason]
        for item in output:
            if getattr(item, "type", None) == "message":
                for part in getattr(item, "content", None) or ():
                    if getattr(part, "type", None) == "refusal":
                        inv.response_attributes[semconv.LLMLENS_REFUSAL] = True
        if inv.capture_content:
            inv.output_messages = [self._output_message(output, reason)]

    def _output_message(self, output: Any, reason: str | None) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        for item in output:
            kind = getattr(item, "type", None)
            if kind == "message":
                for part in getattr(item, "content", None) or ():
                    text = getattr(part, "text", None) or getattr(part, "refusal", None)
                    if text:
                        parts.append(text_part(text, self.limit))
            elif kind == "function_call":
                call_id, name = getattr(item, "call_id", None), getattr(item, "name", None)
                parts.append(_tool_call(call_id, name, getattr(item, "arguments", None)))
            elif kind == "reasoning":
                summary = " ".join(getattr(s, "text", "") for s in getattr(item, "summary", None) or ())
                if summary:
                    parts.append({"type": "reasoning", "content": truncate(summary, self.limit)})
            elif kind:
                parts.append({"type": "server_tool_call", "id": getattr(item, "id", None), "name": kind,
                              "server_tool_call": {"type": kind}})  # fmt: skip
        return {"role": "assistant", "parts": parts, "finish_reason": reason or semconv.FINISH_ERROR}

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        route = self

        def on_event(event: Any) -> None:
            kind = event.type
            if kind in _OUTPUT_DELTAS:
                inv.chunk_times.append(_perf_ns())
            elif kind in _FINAL_EVENTS:
                route.response(inv, event.response)
            elif kind == "response.created":
                _identity(inv, event.response)
            elif kind == "response.output_item.done" and getattr(event.item, "type", None) == "function_call":
                inv.tool_call_count += 1

        return on_event, None


class EmbeddingsRoute:
    """POST /embeddings."""

    operation = semconv.OP_EMBEDDINGS

    def request(self, inv: Invocation, body: Mapping[str, Any]) -> None:
        fmt = body.get("encoding_format")
        if isinstance(fmt, str):
            inv.request_attributes[semconv.REQUEST_ENCODING_FORMATS] = [fmt]
        dimensions = _int(body.get("dimensions"))
        if dimensions is not None:
            inv.dimension_count = dimensions

    def response(self, inv: Invocation, response: Any) -> None:
        model = getattr(response, "model", None)
        if isinstance(model, str):
            inv.response_model = model
        usage = getattr(response, "usage", None)
        if usage is not None:
            inv.input_tokens = _int(getattr(usage, "prompt_tokens", None))
        data = getattr(response, "data", None)
        if data:
            vector = getattr(data[0], "embedding", None)
            if isinstance(vector, list):
                inv.dimension_count = len(vector)
            elif isinstance(vector, str):  # base64 of little-endian float32
                inv.dimension_count = (len(vector) * 3 // 4 - vector.count("=")) // 4

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None] | None]:
        return (lambda chunk: None), None


# --- wiring -----------------------------------------------------------------------------------------


def client_endpoint(settings: Settings) -> Callable[[Any], tuple[str, str | None, int | None]]:
    """Provider, host and port of an OpenAI client, cached on the client until its base_url changes."""
    overrides = settings.provider_map
    owner = object()  # this instrumentation's cache entries; a re-instrument with new settings misses

    def endpoint(client: Any) -> tuple[str, str | None, int | None]:
        base_url = client._base_url
        cached = client.__dict__.get("_llmlens_endpoint")
        if cached is not None and cached[0] is base_url and cached[1] is owner:
            return cached[2]
        host = base_url.host or None
        port = base_url.port or default_port(base_url.scheme)
        found = (provider_for(host, port, overrides), host, port)
        client.__dict__["_llmlens_endpoint"] = (base_url, owner, found)
        return found

    return endpoint


def routes(settings: Settings) -> dict[str, Any]:
    chat = ChatCompletionsRoute(settings)
    return {
        "/chat/completions": chat,
        "/responses": ResponsesRoute(settings),
        "/embeddings": EmbeddingsRoute(),
        "/completions": CompletionsRoute(settings),
    }


def route_for_unknown(table: Mapping[str, Any]) -> Callable[[str], Any]:
    """Azure deployments put a prefix before the usual path (`/deployments/x/chat/completions`)."""

    def find(url: str) -> Any:
        for suffix, route in table.items():
            if url.endswith(suffix) and not url.endswith("/chat" + suffix):
                return route
        return None

    return find


def instrument(telemetry: Telemetry, settings: Settings) -> StainlessPatch:
    table = routes(settings)
    patch = StainlessPatch("openai", telemetry, table, client_endpoint(settings), route_for_unknown(table))
    patch.patch()
    return patch
