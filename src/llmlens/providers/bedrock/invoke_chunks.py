"""InvokeModelWithResponseStream: one reader per body format of the JSON `bytes` of its `chunk` events
(invoke_formats.py picks the reader)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from llmlens.core.content import text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.providers.bedrock.content import function_call, output_message, tool_call
from llmlens.providers.bedrock.converse import ConverseStreamAccumulator
from llmlens.providers.bedrock.usage import invocation_metrics, set_usage
from llmlens.providers.bedrock.values import finish_reason, integer, mapping, merge_count, response_ids

_perf_ns = time.perf_counter_ns
_INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"


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
        invocation_metrics(self.inv, self.metrics)
        if self.reason is not None:
            self.inv.finish_reasons = [finish_reason(self.reason)]
        if self.capture:
            self.inv.output_messages = [output_message(self.parts(), self.reason)]

    def parts(self) -> list[dict[str, Any]]:
        return []


class _DeltaSkippingReader(ChunkReader):
    """A reader whose deltas are most of the stream and, unless content is captured, need no parsing: a
    chunk holding `delta_marker` only counts as a chunk."""

    __slots__ = ()
    delta_marker: bytes

    def on_bytes(self, data: bytes) -> None:
        if not self.capture and self.delta_marker in data:
            self.inv.chunk_times.append(_perf_ns())
            return
        super().on_bytes(data)


_ANTHROPIC_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


class AnthropicChunks(_DeltaSkippingReader):
    """Anthropic stream events: `message_start` (id, model, input and cache counts), deltas,
    `message_delta` (stop reason, output count). Each count keeps its last non-zero value."""

    __slots__ = ("blocks", "usage")
    delta_marker = b'"content_block_delta"'

    def __init__(self, inv: Invocation, limit: int) -> None:
        super().__init__(inv, limit)
        self.blocks: dict[int, list[Any]] = {}  # index -> [kind, fragments, id, name]
        # input (without the cache), output, cache read, cache write: as sent, merged event by event
        self.usage: list[int | None] = [None, None, None, None]

    def on_payload(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type")
        inv = self.inv
        if kind == "content_block_delta":
            inv.chunk_times.append(_perf_ns())
            delta = mapping(payload.get("delta"))
            block = self.blocks.setdefault(payload.get("index", 0), ["text", [], None, None])
            text = delta.get("text", delta.get("partial_json", delta.get("thinking")))
            if isinstance(text, str):
                block[1].append(text)
        elif kind == "content_block_start":
            block = mapping(payload.get("content_block"))
            block_kind = block.get("type")
            if block_kind == "tool_use":
                inv.tool_call_count += 1
            self.blocks[payload.get("index", 0)] = [block_kind, [], block.get("id"), block.get("name")]
        elif kind == "message_start":
            message = mapping(payload.get("message"))
            response_ids(inv, message)
            self._usage(mapping(message.get("usage")))
        elif kind == "message_delta":
            self.reason = mapping(payload.get("delta")).get("stop_reason")
            self._usage(mapping(payload.get("usage")))
        super().on_payload(payload)

    def _usage(self, usage: Mapping[str, Any]) -> None:
        merged = self.usage
        for i, key in enumerate(_ANTHROPIC_USAGE_KEYS):
            merged[i] = merge_count(merged[i], usage.get(key))
        set_usage(self.inv, *merged)

    def parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            kind, fragments, block_id, name = self.blocks[index]
            text = "".join(fragments)
            if kind == "tool_use":
                parts.append(tool_call(block_id, name, text))
            elif kind == "thinking":
                parts.append({"type": "reasoning", "content": truncate(text, self.limit)})
            elif kind == "text":
                parts.append(text_part(text, self.limit))
        return parts


class NovaChunks(_DeltaSkippingReader):
    """Nova stream chunks: the ConverseStream events, as JSON."""

    __slots__ = ("converse",)
    delta_marker = b'"contentBlockDelta"'

    def __init__(self, inv: Invocation, limit: int) -> None:
        super().__init__(inv, limit)
        self.converse = ConverseStreamAccumulator(inv, limit)

    def on_payload(self, payload: dict[str, Any]) -> None:
        self.converse.on_event(payload)
        super().on_payload(payload)

    def on_end(self) -> None:
        self.converse.on_end()
        invocation_metrics(self.inv, self.metrics)


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
            self.inv.input_tokens = integer(prompt_tokens)
        generated = integer(payload.get("generation_token_count"))
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
                    self.calls.append(function_call(call))
            reason = item.get("stop_reason", item.get("finish_reason"))
            if reason is not None:
                self.reason = reason
        super().on_payload(payload)

    def parts(self) -> list[dict[str, Any]]:
        text = "".join(self.texts)
        return ([text_part(text, self.limit)] if text else []) + self.calls
