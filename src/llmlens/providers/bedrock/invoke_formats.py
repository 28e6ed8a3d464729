"""InvokeModel and InvokeModelWithResponseStream: the request body's JSON, one format per model family
(Anthropic, Nova, Llama, Mistral, embeddings, any other), picked by `format_for`; `InvokeCall` applies
the format to a call."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from llmlens import semconv
from llmlens.core.content import text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.providers.bedrock.content import (
    anthropic_parts,
    chat_input,
    converse_input,
    function_call,
    output_message,
    tool_definition,
)
from llmlens.providers.bedrock.converse import converse_response
from llmlens.providers.bedrock.invoke_chunks import (
    AnthropicChunks,
    ChunkReader,
    LlamaChunks,
    MistralChunks,
    NovaChunks,
)
from llmlens.providers.bedrock.params import CONVERSE_PARAMS, SNAKE_PARAMS, request_params, stop_sequences
from llmlens.providers.bedrock.usage import header_usage, set_usage
from llmlens.providers.bedrock.values import (
    finish_reason,
    integer,
    mapping,
    model_family,
    response_ids,
    sequence,
)

# Bodies larger than this (inline images, documents) are not parsed: the span keeps the model id only.
_MAX_PARSED_BODY = 4 * 1024 * 1024

# Model families whose InvokeModel is not a text or embeddings call (images, video): left untraced.
UNTRACED_MODELS = ("stability.", "amazon.titan-image", "amazon.nova-canvas", "amazon.nova-reel")


class AnthropicFormat:
    """Anthropic Messages on Bedrock (`anthropic_version: bedrock-2023-05-31`). Its `input_tokens` leaves
    out the cache reads and writes, like Converse."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_CHAT

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        request_params(inv, body, SNAKE_PARAMS)
        stop_sequences(inv, body.get("stop_sequences"))
        if not inv.capture_content:
            return
        chat_input(inv, body.get("messages"), body.get("system"), anthropic_parts, limit)
        tools = [
            tool_definition(t.get("name"), t.get("description"))
            for t in (mapping(t) for t in sequence(body.get("tools")))
        ]
        if tools:
            inv.tool_definitions = tools

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        response_ids(inv, body)
        usage = mapping(body.get("usage"))
        set_usage(
            inv, usage.get("input_tokens"), usage.get("output_tokens"),
            usage.get("cache_read_input_tokens"), usage.get("cache_creation_input_tokens"),
        )  # fmt: skip
        reason = body.get("stop_reason")
        inv.finish_reasons = [finish_reason(reason)]
        content = sequence(body.get("content"))
        inv.tool_call_count = sum(1 for b in content if mapping(b).get("type") == "tool_use")
        if inv.capture_content:
            inv.output_messages = [output_message(anthropic_parts(content, limit), reason)]

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return AnthropicChunks(inv, limit)


class NovaFormat:
    """Amazon Nova (`schemaVersion: messages-v1`): Converse's request and response shapes in JSON."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_CHAT

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        config = mapping(body.get("inferenceConfig"))
        request_params(inv, config, CONVERSE_PARAMS)
        stop_sequences(inv, config.get("stopSequences"))
        if inv.capture_content:
            converse_input(inv, body, limit)

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        converse_response(inv, body, limit)

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return NovaChunks(inv, limit)


class LlamaFormat:
    """Meta Llama: a raw `prompt` in (a text completion), `generation` out."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_TEXT_COMPLETION

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        request_params(inv, body, SNAKE_PARAMS)
        if inv.capture_content and isinstance(body.get("prompt"), str):
            inv.input_messages = [{"role": "user", "parts": [text_part(body["prompt"], limit)]}]

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        set_usage(inv, body.get("prompt_token_count"), body.get("generation_token_count"))
        reason = body.get("stop_reason")
        inv.finish_reasons = [finish_reason(reason)]
        if inv.capture_content:
            inv.output_messages = [output_message([text_part(body.get("generation") or "", limit)], reason)]

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return LlamaChunks(inv, limit)


class MistralFormat:
    """Mistral: the `prompt` text format (`outputs[]`), or the chat format (`messages` in, `choices[]` out)
    of Mistral Large, which other OpenAI-style models on Bedrock share."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_CHAT if "messages" in body else semconv.OP_TEXT_COMPLETION

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        request_params(inv, body, SNAKE_PARAMS)
        stop_sequences(inv, body.get("stop"))
        if not inv.capture_content:
            return
        if isinstance(body.get("prompt"), str):
            inv.input_messages = [{"role": "user", "parts": [text_part(body["prompt"], limit)]}]
            return
        # A `system` message is part of the chat history: it stays in the input messages with its role.
        messages = []
        for message in (mapping(m) for m in sequence(body.get("messages"))):
            role, content = str(message.get("role", "user")), message.get("content")
            parts = [text_part(content, limit)] if isinstance(content, str) else []
            if role == "tool":
                response = truncate(content, limit) if isinstance(content, str) else content
                parts = [
                    {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": response}
                ]
            for call in (mapping(c) for c in sequence(message.get("tool_calls"))):
                parts.append(function_call(call))
            messages.append({"role": role, "parts": parts})
        inv.input_messages = messages
        tools = []
        for tool in (mapping(t) for t in sequence(body.get("tools"))):
            function = mapping(tool.get("function"))
            kind = str(tool.get("type", "function"))
            tools.append(tool_definition(function.get("name"), function.get("description"), kind))
        if tools:
            inv.tool_definitions = tools

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        response_ids(inv, body)
        usage = mapping(body.get("usage"))
        set_usage(inv, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        if "choices" in body:
            choices = [mapping(c) for c in sequence(body.get("choices"))]
            reasons = [c.get("stop_reason", c.get("finish_reason")) for c in choices]
            inv.tool_call_count = sum(
                len(sequence(mapping(c.get("message")).get("tool_calls"))) for c in choices
            )
            if inv.capture_content:
                inv.output_messages = [
                    output_message(self._message_parts(mapping(c.get("message")), limit), reason)
                    for c, reason in zip(choices, reasons, strict=True)
                ]
        else:
            outputs = [mapping(o) for o in sequence(body.get("outputs"))]
            reasons = [o.get("stop_reason") for o in outputs]
            if inv.capture_content:
                inv.output_messages = [
                    output_message([text_part(o.get("text") or "", limit)], reason)
                    for o, reason in zip(outputs, reasons, strict=True)
                ]
        if reasons:
            inv.finish_reasons = [finish_reason(r) for r in reasons]

    @staticmethod
    def _message_parts(message: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
        parts = [text_part(message["content"], limit)] if message.get("content") else []
        for call in (mapping(c) for c in sequence(message.get("tool_calls"))):
            parts.append(function_call(call))
        return parts

    def stream(self, inv: Invocation, limit: int) -> ChunkReader:
        return MistralChunks(inv, limit)


class EmbeddingsFormat:
    """Embedding models (`amazon.titan-embed-*`, `cohere.embed-*`): token count from the headers."""

    def operation(self, body: Mapping[str, Any]) -> str:
        return semconv.OP_EMBEDDINGS

    def request(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        dimensions = integer(body.get("dimensions"))
        if dimensions is not None:
            inv.dimension_count = dimensions

    def response(self, inv: Invocation, body: Mapping[str, Any], limit: int) -> None:
        inv.input_tokens = integer(body.get("inputTextTokenCount"))
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
        header_usage(inv, headers)

    def stream(self, inv: Invocation) -> tuple[Callable[[Any], None], Callable[[], None]]:
        reader = self.format.stream(inv, self.limit)
        return reader.on_event, reader.on_end


def invoke_body(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON request body of InvokeModel, or {} when it is not JSON bytes/str (a file, a huge body)."""
    body = params.get("body")
    if isinstance(body, (bytes, bytearray, str)) and 0 < len(body) <= _MAX_PARSED_BODY:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}
