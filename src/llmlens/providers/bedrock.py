"""AWS Bedrock Runtime through boto3/botocore: `converse`, `converse_stream`, `invoke_model` and
`invoke_model_with_response_stream`, for the Anthropic, Amazon Nova, Meta Llama and Mistral families.

One patch point: botocore builds its client classes at runtime, and every API call of every AWS client
goes through `botocore.client.BaseClient._make_api_call(operation_name, api_params)`. The wrapper looks
at the client's service name first; a call to any other AWS service (S3, DynamoDB...) goes straight on,
at the cost of one attribute read and one string comparison. The span covers botocore's retries.

What each operation hands back:
- `converse`: a dict; read at once.
- `invoke_model`: a dict whose `body` is a `StreamingBody` the user reads once. We read it, put a fresh
  `StreamingBody` over the same bytes back in its place, and parse the family's JSON from the bytes.
- `converse_stream` / `invoke_model_with_response_stream`: a dict whose `stream` / `body` is a botocore
  `EventStream`. That entry is replaced by a stream proxy (core/streams.py), which ends the span on every
  exit path: read to the end, `close()`, dropped (GC), or an exception while reading, which is either an
  exception event of the stream (botocore raises `EventStreamError`: `modelStreamErrorException`,
  `throttlingException`...) or a broken connection.

Usage (see docs/providers.md): Bedrock reports input tokens WITHOUT the prompt-cache reads and writes
(Converse `inputTokens`, the `X-Amzn-Bedrock-Input-Token-Count` header, `inputTokenCount` of the stream's
invocation metrics, and Anthropic's `input_tokens`), so `gen_ai.usage.input_tokens` = input + cache read
+ cache write; the two cache counts also go in their own attributes.

Errors: `botocore.exceptions.ClientError` carries the AWS error code (`ThrottlingException`), which
core/telemetry.py reports as `error.type`, with the HTTP status in `http.response.status_code`.

Only plain data leaves this module; spans, metrics and names live in core/telemetry.py.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from wrapt import wrap_function_wrapper

from llmlens import semconv
from llmlens.core.content import elided_blob, text_part, truncate
from llmlens.core.context import skip_instrumentation
from llmlens.core.invocation import Invocation
from llmlens.core.streams import StreamState, SyncStreamProxy
from llmlens.core.telemetry import Telemetry
from llmlens.providers.endpoints import default_port
from llmlens.settings import Settings

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns
INSTRUMENTS = "botocore >= 1.34"
PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"

# Bodies larger than this (inline images, documents) are not parsed: the span keeps the model id only.
_MAX_PARSED_BODY = 4 * 1024 * 1024
_INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"

# Stop reasons of every family -> the output-message schema's finish reasons; others pass through as sent.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "stop": "stop",
    "max_tokens": "length",
    "length": "length",
    "model_length": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "tool_calls": "tool_call",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "refusal": "content_filter",
}

# Model families whose InvokeModel is not a text or embeddings call (images, video): left untraced.
_UNTRACED_MODELS = ("stability.", "amazon.titan-image", "amazon.nova-canvas", "amazon.nova-reel")
_CROSS_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")

_MIME_TYPES = {
    "pdf": "application/pdf", "csv": "text/csv", "html": "text/html", "txt": "text/plain",
    "md": "text/markdown", "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}  # fmt: skip


def finish_reason(raw: Any) -> str:
    """`end_turn` -> `stop`, `max_tokens` -> `length`, `tool_use` -> `tool_call`, `guardrail_intervened` ->
    `content_filter`, ...; a missing reason is `error`."""
    if raw is None:
        return semconv.FINISH_ERROR
    raw = str(raw)
    return _FINISH_REASONS.get(raw, raw)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, (list, tuple)) else ()


def _merge(current: int | None, value: Any) -> int | None:
    """Keep the last non-zero count: a later zero (or absent) value never erases an earlier one."""
    value = _int(value)
    if value is None:
        return current
    return value if value or current is None else current


def _model_name(model_id: str) -> str:
    """The model id without an ARN's path or a cross-region prefix (`us.`, `eu.`, `global.`...)."""
    name = model_id.rsplit("/", 1)[-1].lower()
    for prefix in _CROSS_REGION_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def model_family(model_id: str) -> str:
    """`anthropic.claude-3-haiku-20240307-v1:0` -> `anthropic`, `us.amazon.nova-pro-v1:0` -> `nova`,
    `meta.llama3-8b-instruct-v1:0` -> `meta`; any embedding model -> `embed`."""
    name = _model_name(model_id)
    if "embed" in name:
        return "embed"
    if name.startswith("amazon.nova"):
        return "nova"
    return name.split(".", 1)[0]


# --- usage ------------------------------------------------------------------------------------------


def _set_usage(
    inv: Invocation,
    input_tokens: Any,
    output_tokens: Any,
    cache_read: Any = None,
    cache_write: Any = None,
    total: Any = None,
) -> None:
    """Bedrock-style counts (input WITHOUT the cache reads and writes) -> the invocation's fields.

    `total` (Converse's `totalTokens`) settles a response whose input already includes the cache: if
    total == input + output, the cache counts are not added again.
    """
    base, output = _int(input_tokens), _int(output_tokens)
    read, write = _int(cache_read), _int(cache_write)
    cached = (read or 0) + (write or 0)
    if base is not None:
        inv.input_tokens = base
        if cached and not (_int(total) is not None and output is not None and total == base + output):
            inv.input_tokens = base + cached
    if output is not None:
        inv.output_tokens = output
    if read is not None:
        inv.cache_read_tokens = read
    if write is not None:
        inv.cache_creation_tokens = write


def _converse_usage(inv: Invocation, usage: Any) -> None:
    """Converse `usage`, also Nova's InvokeModel `usage` (which names the cache counts `...TokenCount`)."""
    if not isinstance(usage, Mapping):
        return
    read = usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount"))
    write = usage.get("cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount"))
    _set_usage(
        inv, usage.get("inputTokens"), usage.get("outputTokens"), read, write, usage.get("totalTokens")
    )


def _invocation_metrics(inv: Invocation, metrics: Any) -> None:
    """`amazon-bedrock-invocationMetrics` of a stream's last chunk: Bedrock's own (billed) counts, so they
    win over the model's counts read from earlier events."""
    if isinstance(metrics, Mapping) and _int(metrics.get("inputTokenCount")) is not None:
        _set_usage(
            inv, metrics.get("inputTokenCount"), metrics.get("outputTokenCount"),
            metrics.get("cacheReadInputTokenCount"), metrics.get("cacheWriteInputTokenCount"),
        )  # fmt: skip


def _header_usage(inv: Invocation, headers: Mapping[str, Any]) -> None:
    """The `X-Amzn-Bedrock-*-Token-Count` headers of InvokeModel: Bedrock's own (billed) counts, which
    win over the body's. Not every family gets them (Cohere and AI21 do not): then the body's stay."""

    def count(name: str) -> int | None:
        raw = headers.get(name)
        return int(raw) if isinstance(raw, str) and raw.isdigit() else None

    input_tokens = count("x-amzn-bedrock-input-token-count")
    if input_tokens is not None:
        _set_usage(
            inv, input_tokens, count("x-amzn-bedrock-output-token-count"),
            count("x-amzn-bedrock-cache-read-input-token-count"),
            count("x-amzn-bedrock-cache-write-input-token-count"),
        )  # fmt: skip


# --- content (only when capture is on) ----------------------------------------------------------------


def _media(kind: str, block: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """A Converse/Nova image, document, video or audio block: inline bytes elided, S3 locations kept."""
    fmt = str(block.get("format") or "")
    mime = _MIME_TYPES.get(fmt) if kind == "document" else (f"{kind}/{fmt}" if fmt else None)
    modality = kind if kind in ("image", "video", "audio") else "document"
    source = _map(block.get("source"))
    data = source.get("bytes")
    if isinstance(data, (bytes, bytearray)):  # Converse: raw bytes; elided_blob takes a base64 length
        return elided_blob(mime, modality, (len(data) * 4 + 2) // 3)
    if isinstance(data, str):  # InvokeModel (Nova): already base64
        return elided_blob(mime, modality, len(data))
    location = _map(source.get("s3Location"))
    if location.get("uri"):
        part: dict[str, Any] = {"type": "uri", "modality": modality, "uri": str(location["uri"])}
        if mime:
            part["mime_type"] = mime
        return part
    if isinstance(source.get("text"), str):
        return text_part(source["text"], limit)
    return {"type": "blob", "modality": modality, "content": ""}


def _tool_result(content: Any, limit: int) -> Any:
    """The content of a tool result: its JSON or text, or a list of them."""
    items: list[Any] = []
    for item in _list(content):
        item = _map(item)
        if "json" in item:
            items.append(item["json"])
        elif "text" in item:
            items.append(truncate(str(item["text"]), limit))
        elif item:
            part = _converse_part(item, limit)
            if part is not None:
                items.append(part)
    return items[0] if len(items) == 1 else items


def _converse_part(block: Mapping[str, Any], limit: int) -> dict[str, Any] | None:
    """One Converse (or Nova InvokeModel) content block as a semconv message part."""
    if "text" in block:
        return text_part(block["text"], limit)
    if "toolUse" in block:
        use = _map(block["toolUse"])
        return {
            "type": "tool_call",
            "id": use.get("toolUseId"),
            "name": use.get("name"),
            "arguments": use.get("input"),
        }
    if "toolResult" in block:
        result = _map(block["toolResult"])
        response = _tool_result(result.get("content"), limit)
        return {"type": "tool_call_response", "id": result.get("toolUseId"), "response": response}
    for kind in ("image", "document", "video", "audio"):
        if kind in block:
            return _media(kind, _map(block[kind]), limit)
    if "reasoningContent" in block:
        reasoning = _map(_map(block["reasoningContent"]).get("reasoningText"))
        return {"type": "reasoning", "content": truncate(str(reasoning.get("text", "")), limit)}
    if "guardContent" in block:
        return text_part(_map(_map(block["guardContent"]).get("text")).get("text", ""), limit)
    if "cachePoint" in block:
        return None
    return {"type": next(iter(block), "unknown")}


def _converse_parts(blocks: Any, limit: int) -> list[dict[str, Any]]:
    parts = []
    for block in _list(blocks):
        if isinstance(block, Mapping):
            part = _converse_part(block, limit)
            if part is not None:
                parts.append(part)
    return parts


def _converse_input(inv: Invocation, params: Mapping[str, Any], limit: int) -> None:
    """Messages, system prompts and tool definitions of a Converse (or Nova InvokeModel) request."""
    inv.input_messages = [
        {"role": str(_map(m).get("role", "user")), "parts": _converse_parts(_map(m).get("content"), limit)}
        for m in _list(params.get("messages"))
    ]
    system = [p for p in _converse_parts(params.get("system"), limit) if p["type"] == "text"]
    if system:
        inv.system_instructions = system
    definitions = []
    for tool in _list(_map(params.get("toolConfig")).get("tools")):
        spec = _map(_map(tool).get("toolSpec"))
        if spec:
            definition = {"type": "function", "name": spec.get("name")}
            if spec.get("description"):
                definition["description"] = spec["description"]
            definitions.append(definition)
    if definitions:
        inv.tool_definitions = definitions


def _output_message(parts: list[dict[str, Any]], reason: Any) -> dict[str, Any]:
    return {"role": "assistant", "parts": parts, "finish_reason": finish_reason(reason)}


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A `tool_call` part; string arguments parsed to an object when they are JSON, as the schema asks."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments else {}
        except ValueError:
            pass
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def _anthropic_parts(content: Any, limit: int) -> list[dict[str, Any]]:
    """Anthropic Messages content (a string or typed blocks) as semconv parts."""
    if isinstance(content, str):
        return [text_part(content, limit)]
    parts: list[dict[str, Any]] = []
    for block in _list(content):
        block = _map(block)
        kind = block.get("type")
        if kind == "text":
            parts.append(text_part(block.get("text", ""), limit))
        elif kind == "tool_use":
            parts.append(_tool_call(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            inner = block.get("content")
            response = truncate(inner, limit) if isinstance(inner, str) else _anthropic_parts(inner, limit)
            parts.append({"type": "tool_call_response", "id": block.get("tool_use_id"), "response": response})
        elif kind in ("image", "document"):
            source = _map(block.get("source"))
            modality = "image" if kind == "image" else "document"
            if source.get("type") == "base64":
                parts.append(
                    elided_blob(source.get("media_type"), modality, len(str(source.get("data", ""))))
                )
            elif source.get("type") == "url":
                parts.append({"type": "uri", "modality": modality, "uri": str(source.get("url", ""))})
            elif source.get("type") == "text":
                parts.append(text_part(source.get("data", ""), limit))
            else:
                parts.append({"type": "blob", "modality": modality, "content": ""})
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": truncate(str(block.get("thinking", "")), limit)})
        elif kind:
            parts.append({"type": str(kind)})
    return parts


# --- request parameters -------------------------------------------------------------------------------

# (body key, attribute, converter) per request format.
_Param = tuple[str, str, Callable[[Any], Any]]
_CONVERSE_PARAMS: tuple[_Param, ...] = (
    ("maxTokens", semconv.REQUEST_MAX_TOKENS, _int),
    ("max_new_tokens", semconv.REQUEST_MAX_TOKENS, _int),  # Nova InvokeModel (v1 schema)
    ("temperature", semconv.REQUEST_TEMPERATURE, _num),
    ("topP", semconv.REQUEST_TOP_P, _num),
    ("top_p", semconv.REQUEST_TOP_P, _num),
    ("topK", semconv.REQUEST_TOP_K, _int),
    ("top_k", semconv.REQUEST_TOP_K, _int),
)
_SNAKE_PARAMS: tuple[_Param, ...] = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS, _int),
    ("max_gen_len", semconv.REQUEST_MAX_TOKENS, _int),
    ("temperature", semconv.REQUEST_TEMPERATURE, _num),
    ("top_p", semconv.REQUEST_TOP_P, _num),
    ("top_k", semconv.REQUEST_TOP_K, _int),
)


def _params(inv: Invocation, source: Mapping[str, Any], table: tuple[_Param, ...]) -> None:
    attrs = inv.request_attributes
    for key, attribute, convert in table:
        value = source.get(key)
        if value is not None:
            value = convert(value)
            if value is not None:
                attrs[attribute] = value


def _stop_sequences(inv: Invocation, value: Any) -> None:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)) and value:
        inv.request_attributes[semconv.REQUEST_STOP_SEQUENCES] = [str(s) for s in value]


# --- Converse -----------------------------------------------------------------------------------------


def _converse_response(inv: Invocation, result: Mapping[str, Any], limit: int) -> None:
    """A Converse response, or the body of a Nova InvokeModel response (the same shape)."""
    _converse_usage(inv, result.get("usage"))
    reason = result.get("stopReason")
    inv.finish_reasons = [finish_reason(reason)]
    content = _list(_map(_map(result.get("output")).get("message")).get("content"))
    inv.tool_call_count = sum(1 for block in content if isinstance(block, Mapping) and "toolUse" in block)
    if inv.capture_content:
        inv.output_messages = [_output_message(_converse_parts(content, limit), reason)]


class ConverseCall:
    """`converse` and `converse_stream` (one request and response shape for every model)."""

    operation = semconv.OP_CHAT

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.content_max_length

    def request(self, inv: Invocation, params: Mapping[str, Any]) -> None:
        config = _map(params.get("inferenceConfig"))
        _params(inv, config, _CONVERSE_PARAMS)
        _stop_sequences(inv, config.get("stopSequences"))
        extra = _map(params.get("additionalModelRequestFields"))
        _params(inv, extra, _CONVERSE_PARAMS)  # top_k / topK go here for Anthropic and Nova
        _params(inv, _map(extra.get("inferenceConfig")), _CONVERSE_PARAMS)
        effort = _map(extra.get("reasoningConfig")).get("maxReasoningEffort")
        if isinstance(effort, str):
            inv.request_attributes[semconv.REQUEST_REASONING_LEVEL] = effort
        guardrail = _map(params.get("guardrailConfig")).get("guardrailIdentifier")
        if isinstance(guardrail, str):
            inv.request_attributes[semconv.AWS_BEDROCK_GUARDRAIL_ID] = guardrail
        if inv.capture_content:
            _converse_input(inv, params, self.limit)

    def response(self, inv: Invocation, result: Mapping[str, Any]) -> None:
        _converse_response(inv, result, self.limit)

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None]]:
        accumulator = ConverseStreamAccumulator(inv, self.limit)
        return accumulator.on_event, accumulator.on_end


class ConverseStreamAccumulator:
    """Reads ConverseStream events (also Nova's InvokeModel stream chunks, which have the same shape):
    a few dict lookups per event."""

    __slots__ = ("blocks", "capture", "inv", "limit", "reason")

    def __init__(self, inv: Invocation, limit: int) -> None:
        self.inv = inv
        self.limit = limit
        self.capture = inv.capture_content
        self.reason: Any = None
        # content block index -> ["text"|"tool"|"reasoning", fragments, tool id, tool name]
        self.blocks: dict[int, list[Any]] = {}

    def on_event(self, event: Any) -> None:
        delta = event.get("contentBlockDelta")
        if delta is not None:
            self.inv.chunk_times.append(_perf_ns())
            if self.capture:
                self._delta(delta)
            return
        start = event.get("contentBlockStart")
        if start is not None:
            use = _map(_map(start.get("start")).get("toolUse"))
            if use:
                self.inv.tool_call_count += 1
                self.blocks[start.get("contentBlockIndex", -1)] = [
                    "tool",
                    [],
                    use.get("toolUseId"),
                    use.get("name"),
                ]
            return
        stop = event.get("messageStop")
        if stop is not None:
            self.reason = stop.get("stopReason")
            return
        metadata = event.get("metadata")
        if metadata is not None:
            _converse_usage(self.inv, metadata.get("usage"))

    def _delta(self, event: Mapping[str, Any]) -> None:
        delta = _map(event.get("delta"))
        index = event.get("contentBlockIndex", 0)
        block = self.blocks.get(index)
        if "text" in delta:
            if block is None:
                block = self.blocks[index] = ["text", [], None, None]
            block[1].append(str(delta["text"]))
        elif "toolUse" in delta:
            if block is None:
                block = self.blocks[index] = ["tool", [], None, None]
            block[1].append(str(_map(delta["toolUse"]).get("input", "")))
        elif "reasoningContent" in delta:
            if block is None:
                block = self.blocks[index] = ["reasoning", [], None, None]
            text = _map(delta["reasoningContent"]).get("text")
            if isinstance(text, str):
                block[1].append(text)

    def on_end(self) -> None:
        inv = self.inv
        if self.reason is not None:
            inv.finish_reasons = [finish_reason(self.reason)]
        if not self.capture:
            return
        parts: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            kind, fragments, tool_id, name = self.blocks[index]
            text = "".join(fragments)
            if kind == "text":
                parts.append(text_part(text, self.limit))
            elif kind == "tool":
                parts.append(_tool_call(tool_id, name, text))
            else:
                parts.append({"type": "reasoning", "content": truncate(text, self.limit)})
        inv.output_messages = [_output_message(parts, self.reason)]


# --- InvokeModel: one format per model family ----------------------------------------------------------


class AnthropicFormat:
    """Anthropic Messages on Bedrock (`anthropic_version: bedrock-2023-05-31`). Its `input_tokens` leaves
    out the cache reads and writes, like Converse."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_CHAT

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        _params(inv, body, _SNAKE_PARAMS)
        _stop_sequences(inv, body.get("stop_sequences"))
        if not inv.capture_content:
            return
        inv.input_messages = [
            {
                "role": str(_map(m).get("role", "user")),
                "parts": _anthropic_parts(_map(m).get("content"), limit),
            }
            for m in _list(body.get("messages"))
        ]
        system = [p for p in _anthropic_parts(body.get("system"), limit) if p["type"] == "text"]
        if system:
            inv.system_instructions = system
        tools = [
            {
                "type": "function",
                "name": t.get("name"),
                **({"description": t["description"]} if t.get("description") else {}),
            }
            for t in (_map(t) for t in _list(body.get("tools")))
        ]
        if tools:
            inv.tool_definitions = tools

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        if isinstance(body.get("id"), str):
            inv.response_id = body["id"]
        if isinstance(body.get("model"), str):
            inv.response_model = body["model"]
        usage = _map(body.get("usage"))
        _set_usage(
            inv, usage.get("input_tokens"), usage.get("output_tokens"),
            usage.get("cache_read_input_tokens"), usage.get("cache_creation_input_tokens"),
        )  # fmt: skip
        reason = body.get("stop_reason")
        inv.finish_reasons = [finish_reason(reason)]
        content = _list(body.get("content"))
        inv.tool_call_count = sum(1 for b in content if _map(b).get("type") == "tool_use")
        if inv.capture_content:
            inv.output_messages = [_output_message(_anthropic_parts(content, limit), reason)]

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return AnthropicChunks(inv, limit)


class NovaFormat:
    """Amazon Nova (`schemaVersion: messages-v1`): Converse's request and response shapes in JSON."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_CHAT

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        config = _map(body.get("inferenceConfig"))
        _params(inv, config, _CONVERSE_PARAMS)
        _stop_sequences(inv, config.get("stopSequences"))
        if inv.capture_content:
            _converse_input(inv, body, limit)

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        _converse_response(inv, body, limit)

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return NovaChunks(inv, limit)


class LlamaFormat:
    """Meta Llama: a raw `prompt` in (a text completion), `generation` out."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_TEXT_COMPLETION

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        _params(inv, body, _SNAKE_PARAMS)
        if inv.capture_content and isinstance(body.get("prompt"), str):
            inv.input_messages = [{"role": "user", "parts": [text_part(body["prompt"], limit)]}]

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        _set_usage(inv, body.get("prompt_token_count"), body.get("generation_token_count"))
        reason = body.get("stop_reason")
        inv.finish_reasons = [finish_reason(reason)]
        if inv.capture_content:
            inv.output_messages = [_output_message([text_part(body.get("generation") or "", limit)], reason)]

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return LlamaChunks(inv, limit)


class MistralFormat:
    """Mistral: the `prompt` text format (`outputs[]`), or the chat format (`messages` in, `choices[]` out)
    of Mistral Large, which other OpenAI-style models on Bedrock share."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_CHAT if "messages" in body else semconv.OP_TEXT_COMPLETION

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        _params(inv, body, _SNAKE_PARAMS)
        _stop_sequences(inv, body.get("stop"))
        if not inv.capture_content:
            return
        if isinstance(body.get("prompt"), str):
            inv.input_messages = [{"role": "user", "parts": [text_part(body["prompt"], limit)]}]
            return
        messages, system = [], []
        for message in (_map(m) for m in _list(body.get("messages"))):
            role, content = str(message.get("role", "user")), message.get("content")
            parts = [text_part(content, limit)] if isinstance(content, str) else []
            if role == "system":
                system.extend(parts)
                continue
            if role == "tool":
                response = truncate(content, limit) if isinstance(content, str) else content
                parts = [
                    {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": response}
                ]
            for call in (_map(c) for c in _list(message.get("tool_calls"))):
                function = _map(call.get("function"))
                parts.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
            messages.append({"role": role, "parts": parts})
        inv.input_messages = messages
        if system:
            inv.system_instructions = system
        tools = []
        for tool in (_map(t) for t in _list(body.get("tools"))):
            function = _map(tool.get("function"))
            definition = {"type": str(tool.get("type", "function")), "name": function.get("name")}
            if function.get("description"):
                definition["description"] = function["description"]
            tools.append(definition)
        if tools:
            inv.tool_definitions = tools

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        if isinstance(body.get("id"), str):
            inv.response_id = body["id"]
        if isinstance(body.get("model"), str):
            inv.response_model = body["model"]
        usage = _map(body.get("usage"))
        _set_usage(inv, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        if "choices" in body:
            choices = [_map(c) for c in _list(body.get("choices"))]
            reasons = [c.get("stop_reason", c.get("finish_reason")) for c in choices]
            inv.tool_call_count = sum(len(_list(_map(c.get("message")).get("tool_calls"))) for c in choices)
            if inv.capture_content:
                inv.output_messages = [
                    _output_message(self._message_parts(_map(c.get("message")), limit), reason)
                    for c, reason in zip(choices, reasons, strict=True)
                ]
        else:
            outputs = [_map(o) for o in _list(body.get("outputs"))]
            reasons = [o.get("stop_reason") for o in outputs]
            if inv.capture_content:
                inv.output_messages = [
                    _output_message([text_part(o.get("text") or "", limit)], reason)
                    for o, reason in zip(outputs, reasons, strict=True)
                ]
        if reasons:
            inv.finish_reasons = [finish_reason(r) for r in reasons]

    @staticmethod
    def _message_parts(message: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
        parts = [text_part(message["content"], limit)] if message.get("content") else []
        for call in (_map(c) for c in _list(message.get("tool_calls"))):
            function = _map(call.get("function"))
            parts.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
        return parts

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return MistralChunks(inv, limit)


class EmbeddingsFormat:
    """Embedding models (`amazon.titan-embed-*`, `cohere.embed-*`): token count from the headers."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_EMBEDDINGS

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        dimensions = _int(body.get("dimensions"))
        if dimensions is not None:
            inv.dimension_count = dimensions

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        inv.input_tokens = _int(body.get("inputTextTokenCount"))
        vector = body.get("embedding")
        if not isinstance(vector, list):
            embeddings = body.get("embeddings")
            if isinstance(embeddings, Mapping):  # cohere with embedding_types: {"float": [[...]]}
                embeddings = next(iter(embeddings.values()), None)
            vector = embeddings[0] if isinstance(embeddings, list) and embeddings else None
        if isinstance(vector, list):
            inv.dimension_count = len(vector)

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return ChunkReader(inv, limit)


class OtherFormat(MistralFormat):
    """Any other text model (Cohere Command, AI21, Titan Text, DeepSeek, OpenAI's open models...): common
    parameters, the chat or text shapes when they match, else the header or invocation-metrics counts."""

    def operation(self, body: Mapping[str, Any]) -> str:
        text = "prompt" in body or "inputText" in body
        return semconv.OP_TEXT_COMPLETION if text else semconv.OP_CHAT


class Format(Protocol):
    """How one InvokeModel body format maps onto an invocation (the classes above)."""

    def operation(self, body: Mapping[str, Any]) -> str: ...

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None: ...

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None: ...

    def stream(self, inv: Invocation, limit: int) -> ChunkReader: ...


_FORMATS: dict[str, Format] = {
    "anthropic": AnthropicFormat(),
    "nova": NovaFormat(),
    "meta": LlamaFormat(),
    "mistral": MistralFormat(),
    "embed": EmbeddingsFormat(),
}
_OTHER = OtherFormat()


def format_for(model_id: str, body: Mapping[str, Any]) -> Format:
    """The body format of a model: by family, else (an application inference profile ARN hides the
    family) by the request's own keys."""
    found = _FORMATS.get(model_family(model_id))
    if found is not None:
        return found
    if "anthropic_version" in body:
        return _FORMATS["anthropic"]
    if "schemaVersion" in body or ("messages" in body and "inferenceConfig" in body):
        return _FORMATS["nova"]
    if "max_gen_len" in body:
        return _FORMATS["meta"]
    return _OTHER


# --- InvokeModelWithResponseStream: one chunk reader per format ----------------------------------------


class ChunkReader:
    """Reads the JSON `bytes` of `chunk` events. Subclasses read their family's events; this base only
    takes the usage of the last chunk's `amazon-bedrock-invocationMetrics`."""

    __slots__ = ("capture", "inv", "limit", "metrics", "reason")

    def __init__(self, inv: Invocation, limit: int) -> None:
        self.inv = inv
        self.limit = limit
        self.capture = inv.capture_content
        self.metrics: Any = None
        self.reason: Any = None

    def on_event(self, event: Any) -> None:
        chunk = event.get("chunk")
        if chunk is not None:
            data = chunk.get("bytes")
            if data:
                self.on_bytes(data)

    def on_bytes(self, data: bytes) -> None:
        payload = json.loads(data)
        if isinstance(payload, dict):
            self.on_payload(payload)

    def on_payload(self, payload: dict[str, Any]) -> None:
        metrics = payload.get(_INVOCATION_METRICS)
        if metrics is not None:
            self.metrics = metrics

    def on_end(self) -> None:
        _invocation_metrics(self.inv, self.metrics)
        if self.reason is not None:
            self.inv.finish_reasons = [finish_reason(self.reason)]
        if self.capture:
            self.inv.output_messages = [_output_message(self.parts(), self.reason)]

    def parts(self) -> list[dict[str, Any]]:
        return []


_ANTHROPIC_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


class AnthropicChunks(ChunkReader):
    """Anthropic stream events: `message_start` (id, model, input and cache counts), deltas,
    `message_delta` (stop reason, output count). Each count keeps its last non-zero value."""

    __slots__ = ("blocks", "usage")

    def __init__(self, inv: Invocation, limit: int) -> None:
        super().__init__(inv, limit)
        self.blocks: dict[int, list[Any]] = {}  # index -> [kind, fragments, id, name]
        # input (without the cache), output, cache read, cache write: as sent, merged event by event
        self.usage: list[int | None] = [None, None, None, None]

    def on_bytes(self, data: bytes) -> None:
        # Deltas are most of the stream and, unless content is captured, need no parsing.
        if not self.capture and b'"content_block_delta"' in data:
            self.inv.chunk_times.append(_perf_ns())
            return
        super().on_bytes(data)

    def on_payload(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        inv = self.inv
        if kind == "content_block_delta":
            inv.chunk_times.append(_perf_ns())
            delta = _map(payload.get("delta"))
            block = self.blocks.setdefault(payload.get("index", 0), ["text", [], None, None])
            text = delta.get("text", delta.get("partial_json", delta.get("thinking")))
            if isinstance(text, str):
                block[1].append(text)
        elif kind == "content_block_start":
            block = _map(payload.get("content_block"))
            block_kind = block.get("type")
            if block_kind == "tool_use":
                inv.tool_call_count += 1
            self.blocks[payload.get("index", 0)] = [block_kind, [], block.get("id"), block.get("name")]
        elif kind == "message_start":
            message = _map(payload.get("message"))
            if isinstance(message.get("id"), str):
                inv.response_id = message["id"]
            if isinstance(message.get("model"), str):
                inv.response_model = message["model"]
            self._usage(_map(message.get("usage")))
        elif kind == "message_delta":
            self.reason = _map(payload.get("delta")).get("stop_reason")
            self._usage(_map(payload.get("usage")))
        super().on_payload(payload)

    def _usage(self, usage: Mapping[str, Any]) -> None:
        merged = self.usage
        for i, key in enumerate(_ANTHROPIC_USAGE_KEYS):
            merged[i] = _merge(merged[i], usage.get(key))
        _set_usage(self.inv, *merged)

    def parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            kind, fragments, block_id, name = self.blocks[index]
            text = "".join(fragments)
            if kind == "tool_use":
                parts.append(_tool_call(block_id, name, text))
            elif kind == "thinking":
                parts.append({"type": "reasoning", "content": truncate(text, self.limit)})
            elif kind == "text":
                parts.append(text_part(text, self.limit))
        return parts


class NovaChunks(ChunkReader):
    """Nova stream chunks: the ConverseStream events, as JSON."""

    __slots__ = ("converse",)

    def __init__(self, inv: Invocation, limit: int) -> None:
        super().__init__(inv, limit)
        self.converse = ConverseStreamAccumulator(inv, limit)

    def on_bytes(self, data: bytes) -> None:
        if not self.capture and b'"contentBlockDelta"' in data:
            self.inv.chunk_times.append(_perf_ns())
            return
        super().on_bytes(data)

    def on_payload(self, payload: dict[str, Any]) -> None:
        self.converse.on_event(payload)
        super().on_payload(payload)

    def on_end(self) -> None:
        self.converse.on_end()
        _invocation_metrics(self.inv, self.metrics)


class LlamaChunks(ChunkReader):
    """Llama chunks: `generation` text, `prompt_token_count` in the first, `stop_reason` in the last."""

    __slots__ = ("texts",)

    def __init__(self, inv: Invocation, limit: int) -> None:
        super().__init__(inv, limit)
        self.texts: list[str] = []

    def on_payload(self, payload: dict[str, Any]) -> None:
        text = payload.get("generation")
        if text:
            self.inv.chunk_times.append(_perf_ns())
            if self.capture:
                self.texts.append(text)
        prompt_tokens = payload.get("prompt_token_count")
        if prompt_tokens is not None:
            self.inv.input_tokens = _int(prompt_tokens)
        generated = _int(payload.get("generation_token_count"))
        if generated is not None:
            self.inv.output_tokens = generated
        if payload.get("stop_reason") is not None:
            self.reason = payload["stop_reason"]
        super().on_payload(payload)

    def parts(self) -> list[dict[str, Any]]:
        return [text_part("".join(self.texts), self.limit)]


class MistralChunks(ChunkReader):
    """Mistral chunks: `outputs[0].text` (text format) or `choices[0].message|delta` (chat format)."""

    __slots__ = ("calls", "texts")

    def __init__(self, inv: Invocation, limit: int) -> None:
        super().__init__(inv, limit)
        self.texts: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def on_payload(self, payload: dict[str, Any]) -> None:
        items = payload.get("outputs") or payload.get("choices")
        if items:
            item = items[0]
            message = item.get("message") or item.get("delta") or {}
            text = item.get("text") if "text" in item else message.get("content")
            calls = message.get("tool_calls")
            if text or calls:
                self.inv.chunk_times.append(_perf_ns())
            if calls:
                self.inv.tool_call_count += len(calls)
            if self.capture:
                if text:
                    self.texts.append(text)
                for call in calls or ():
                    function = _map(call.get("function"))
                    self.calls.append(
                        _tool_call(call.get("id"), function.get("name"), function.get("arguments"))
                    )
            reason = item.get("stop_reason", item.get("finish_reason"))
            if reason is not None:
                self.reason = reason
        super().on_payload(payload)

    def parts(self) -> list[dict[str, Any]]:
        text = "".join(self.texts)
        return ([text_part(text, self.limit)] if text else []) + self.calls


# --- InvokeModel --------------------------------------------------------------------------------------


class InvokeCall:
    """`invoke_model` and `invoke_model_with_response_stream`: the request body picks the format."""

    __slots__ = ("body", "format", "limit", "operation")

    def __init__(self, fmt: Format, body: Mapping[str, Any], limit: int) -> None:
        self.format = fmt
        self.body = body
        self.limit = limit
        self.operation = fmt.operation(body)

    def request(self, inv: Invocation, params: Mapping[str, Any]) -> None:
        self.format.request(inv, self.body, self.limit)
        guardrail = params.get("guardrailIdentifier")
        if isinstance(guardrail, str):
            inv.request_attributes[semconv.AWS_BEDROCK_GUARDRAIL_ID] = guardrail

    def response(self, inv: Invocation, data: bytes, headers: Mapping[str, Any]) -> None:
        if data[:1] == b"{" and len(data) <= _MAX_PARSED_BODY:
            payload = json.loads(data)
            if isinstance(payload, Mapping):
                self.format.response(inv, payload, self.limit)
        _header_usage(inv, headers)

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None]]:
        reader = self.format.stream(inv, self.limit)
        return reader.on_event, reader.on_end


def _invoke_body(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON request body of InvokeModel, or {} when it is not JSON bytes/str (a file, a huge body)."""
    body = params.get("body")
    if isinstance(body, (bytes, bytearray, str)) and 0 < len(body) <= _MAX_PARSED_BODY:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


# --- the patch ----------------------------------------------------------------------------------------


class EventStreamProxy(SyncStreamProxy):
    """The proxy over a botocore `EventStream`, which is iterable but not an iterator: `next()` on it
    fails as it does without llmlens, and does not end the span."""

    def __next__(self) -> Any:
        raise TypeError(f"'{type(self.__wrapped__).__name__}' object is not an iterator")


_STREAM_KEYS = {"ConverseStream": "stream", "InvokeModelWithResponseStream": "body"}


class BedrockPatch:
    """Wraps `botocore.client.BaseClient._make_api_call`; only `bedrock-runtime` calls are traced."""

    def __init__(self, telemetry: Telemetry, settings: Settings) -> None:
        self.telemetry = telemetry
        self.settings = settings
        self.active = False
        self.converse = ConverseCall(settings)
        self._endpoints: dict[str, tuple[str, str | None, int | None]] = {}
        self._client_module = importlib.import_module("botocore.client")
        response = importlib.import_module("botocore.response")
        self._streaming_body = response.StreamingBody

    def patch(self) -> None:
        wrap_function_wrapper(self._client_module, "BaseClient._make_api_call", self._make_api_call)
        self.active = True

    def unpatch(self) -> None:
        # A wrapper someone added on top of ours stays; `active` makes ours a pass-through under it.
        self.active = False
        cls = self._client_module.BaseClient
        method = cls.__dict__.get("_make_api_call")
        if getattr(method, "_self_wrapper", None) == self._make_api_call:
            cls._make_api_call = method.__wrapped__

    # --- the wrapper ----------------------------------------------------------------------------------

    def _make_api_call(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        # Every AWS call of the process passes here: leave everything but Bedrock Runtime at once.
        try:
            service = instance._service_model.service_name
        except AttributeError:
            return wrapped(*args, **kwargs)
        if service != SERVICE or not self.active:
            return wrapped(*args, **kwargs)
        begun = self._begin(instance, args, kwargs)
        if begun is None:
            return wrapped(*args, **kwargs)
        inv, operation, call = begun
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            self.telemetry.deactivate(inv)
            _request_id(inv, getattr(error, "response", None))
            inv.fail(error)
            raise
        self.telemetry.deactivate(inv)
        return self._result(inv, operation, call, result)

    def _begin(self, client: Any, args: tuple, kwargs: dict) -> tuple[Invocation, str, Any] | None:
        """Start the invocation, or None to pass the call through untouched. Never raises."""
        try:
            if skip_instrumentation():
                return None
            operation = args[0] if args else kwargs.get("operation_name")
            params = args[1] if len(args) > 1 else kwargs.get("api_params")
            if not isinstance(params, Mapping):
                return None
            model = params.get("modelId")
            model = model if isinstance(model, str) else None
            call: Any
            if operation in ("Converse", "ConverseStream"):
                call = self.converse
            elif operation in ("InvokeModel", "InvokeModelWithResponseStream"):
                if model is not None and _model_name(model).startswith(_UNTRACED_MODELS):
                    return None
                body = _invoke_body(params)
                call = InvokeCall(format_for(model or "", body), body, self.settings.content_max_length)
            else:
                return None
            provider, host, port = self._endpoint(client)
            stream = operation in _STREAM_KEYS
            inv = Invocation(self.telemetry, call.operation, provider, model, host, port, stream)
            call.request(inv, params)
            self.telemetry.start(inv)
            self.telemetry.activate(inv)
            return inv, operation, call
        except Exception:
            _log.debug("llmlens: could not start an invocation; the call goes on untraced", exc_info=True)
            return None

    def _endpoint(self, client: Any) -> tuple[str, str | None, int | None]:
        """Provider, host and port of the client's endpoint URL, parsed once per URL."""
        url = client.meta.endpoint_url
        found = self._endpoints.get(url)
        if found is None:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port or default_port(parts.scheme)
            overrides = self.settings.provider_map
            provider = (overrides.get(f"{host}:{port}") or overrides.get(host or "")) if overrides else None
            found = (provider or PROVIDER, host, port)
            if len(self._endpoints) < 256:
                self._endpoints[url] = found
        return found

    def _result(self, inv: Invocation, operation: str, call: Any, result: Any) -> Any:
        """Attach the end of the invocation to what botocore returned. Never raises."""
        try:
            _request_id(inv, result)
            key = _STREAM_KEYS.get(operation)
            if key is not None:
                event_stream = result.get(key)
                if event_stream is None:
                    inv.finish()
                    return result
                on_event, on_end = call.stream(inv)
                result[key] = EventStreamProxy(
                    event_stream, StreamState(inv, on_event, on_end), hook_close=False
                )
                return result
            if operation == "InvokeModel":
                return self._invoke_result(inv, call, result)
            call.response(inv, result)
        except Exception:
            _log.debug("llmlens: could not read the response", exc_info=True)
        inv.finish()
        return result

    def _invoke_result(self, inv: Invocation, call: InvokeCall, result: Any) -> Any:
        """Read the body (the user gets an unread copy of the same bytes) and end the invocation."""
        original = result.get("body")
        if original is None:
            inv.finish()
            return result
        try:
            data = original.read()
        except Exception as error:  # the connection broke: the user's own read raises the same error
            result["body"] = self._streaming_body(_Failed(error), None)
            inv.fail(error)
            return result
        except BaseException as error:  # Ctrl-C while reading: ended as cancelled, and on its way
            inv.fail(error)
            raise
        result["body"] = self._streaming_body(io.BytesIO(data), len(data))
        try:
            headers = _map(_map(result.get("ResponseMetadata")).get("HTTPHeaders"))
            call.response(inv, data, headers)
        except Exception:
            _log.debug("llmlens: could not read the response body", exc_info=True)
        inv.finish()
        return result


def _request_id(inv: Invocation, response: Any) -> None:
    """AWS's id of the request (`ResponseMetadata.RequestId` of a response or of a ClientError)."""
    if isinstance(response, Mapping):
        request_id = _map(response.get("ResponseMetadata")).get("RequestId")
        if isinstance(request_id, str) and request_id:
            inv.response_attributes[semconv.AWS_REQUEST_ID] = request_id


class _Failed:
    """A raw stream whose reads raise the error the real body raised when we read it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise self.error

    def close(self) -> None:
        return None


def instrument(telemetry: Telemetry, settings: Settings) -> BedrockPatch:
    patch = BedrockPatch(telemetry, settings)
    patch.patch()
    return patch
