"""Content capture (only when capture is on): Converse blocks (also Nova's InvokeModel bodies) and
Anthropic Messages blocks as semconv message parts, tool calls and tool definitions."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from llmlens.core.content import elided_blob, text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.providers.bedrock.values import finish_reason, mapping, sequence

_MIME_TYPES = {
    "pdf": "application/pdf", "csv": "text/csv", "html": "text/html", "txt": "text/plain",
    "md": "text/markdown", "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}  # fmt: skip


def _media(kind: str, block: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """A Converse/Nova image, document, video or audio block: inline bytes elided, S3 locations kept."""
    fmt = str(block.get("format") or "")
    mime = _MIME_TYPES.get(fmt) if kind == "document" else (f"{kind}/{fmt}" if fmt else None)
    modality = kind if kind in ("image", "video", "audio") else "document"
    source = mapping(block.get("source"))
    data = source.get("bytes")
    if isinstance(data, (bytes, bytearray)):  # Converse: raw bytes; elided_blob takes a base64 length
        return elided_blob(mime, modality, (len(data) * 4 + 2) // 3)
    if isinstance(data, str):  # InvokeModel (Nova): already base64
        return elided_blob(mime, modality, len(data))
    location = mapping(source.get("s3Location"))
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
    for item in sequence(content):
        item = mapping(item)
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
        use = mapping(block["toolUse"])
        return {
            "type": "tool_call",
            "id": use.get("toolUseId"),
            "name": use.get("name"),
            "arguments": use.get("input"),
        }
    if "toolResult" in block:
        result = mapping(block["toolResult"])
        response = _tool_result(result.get("content"), limit)
        return {"type": "tool_call_response", "id": result.get("toolUseId"), "response": response}
    for kind in ("image", "document", "video", "audio"):
        if kind in block:
            return _media(kind, mapping(block[kind]), limit)
    if "reasoningContent" in block:
        reasoning = mapping(mapping(block["reasoningContent"]).get("reasoningText"))
        return {"type": "reasoning", "content": truncate(str(reasoning.get("text", "")), limit)}
    if "guardContent" in block:
        return text_part(mapping(mapping(block["guardContent"]).get("text")).get("text", ""), limit)
    if "cachePoint" in block:
        return None
    return {"type": next(iter(block), "unknown")}


def converse_parts(blocks: Any, limit: int) -> list[dict[str, Any]]:
    parts = []
    for block in sequence(blocks):
        if isinstance(block, Mapping):
            part = _converse_part(block, limit)
            if part is not None:
                parts.append(part)
    return parts


def chat_input(
    inv: Invocation,
    messages: Any,
    system: Any,
    read_parts: Callable[[Any, int], list[dict[str, Any]]],
    limit: int,
) -> None:
    """The messages and system prompt of a chat request, their content read by `read_parts`
    (`converse_parts` or `anthropic_parts`)."""
    inv.input_messages = [
        {"role": str(mapping(m).get("role", "user")), "parts": read_parts(mapping(m).get("content"), limit)}
        for m in sequence(messages)
    ]
    system_parts = [p for p in read_parts(system, limit) if p["type"] == "text"]
    if system_parts:
        inv.system_instructions = system_parts


def tool_definition(name: Any, description: Any, kind: str = "function") -> dict[str, Any]:
    """A tool definition: its type, name and (when it has one) description."""
    definition = {"type": kind, "name": name}
    if description:
        definition["description"] = description
    return definition


def converse_input(inv: Invocation, params: Mapping[str, Any], limit: int) -> None:
    """Messages, system prompts and tool definitions of a Converse (or Nova InvokeModel) request."""
    chat_input(inv, params.get("messages"), params.get("system"), converse_parts, limit)
    definitions = []
    for tool in sequence(mapping(params.get("toolConfig")).get("tools")):
        spec = mapping(mapping(tool).get("toolSpec"))
        if spec:
            definitions.append(tool_definition(spec.get("name"), spec.get("description")))
    if definitions:
        inv.tool_definitions = definitions


def output_message(parts: list[dict[str, Any]], reason: Any) -> dict[str, Any]:
    return {"role": "assistant", "parts": parts, "finish_reason": finish_reason(reason)}


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A `tool_call` part; string arguments parsed to an object when they are JSON, as the schema asks."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments else {}
        except ValueError:
            pass
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def function_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI-style `tool_calls` item (`{"id", "function": {"name", "arguments"}}`, Mistral's chat
    format) as a `tool_call` part."""
    function = mapping(call.get("function"))
    return tool_call(call.get("id"), function.get("name"), function.get("arguments"))


def anthropic_parts(content: Any, limit: int) -> list[dict[str, Any]]:
    """Anthropic Messages content (a string or typed blocks) as semconv parts."""
    if isinstance(content, str):
        return [text_part(content, limit)]
    parts: list[dict[str, Any]] = []
    for block in sequence(content):
        block = mapping(block)
        kind = block.get("type")
        if kind == "text":
            parts.append(text_part(block.get("text", ""), limit))
        elif kind == "tool_use":
            parts.append(tool_call(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            inner = block.get("content")
            response = truncate(inner, limit) if isinstance(inner, str) else anthropic_parts(inner, limit)
            parts.append({"type": "tool_call_response", "id": block.get("tool_use_id"), "response": response})
        elif kind in ("image", "document"):
            source = mapping(block.get("source"))
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
