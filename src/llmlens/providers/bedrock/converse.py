"""The Converse API (`converse`, `converse_stream`): one request and response shape for every model.
Nova's InvokeModel bodies and stream chunks share these shapes, so invoke_formats.py and
invoke_chunks.py use `converse_response` and `ConverseStreamAccumulator` too."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from llmlens import semconv
from llmlens.core.content import text_part, truncate
from llmlens.core.invocation import Invocation
from llmlens.providers.bedrock.content import converse_input, converse_parts, output_message, tool_call
from llmlens.providers.bedrock.params import CONVERSE_PARAMS, request_params, stop_sequences
from llmlens.providers.bedrock.usage import converse_usage
from llmlens.providers.bedrock.values import finish_reason, mapping, sequence
from llmlens.settings import Settings

_perf_ns = time.perf_counter_ns


def converse_response(inv: Invocation, result: Mapping[str, Any], limit: int) -> None:
    """A Converse response, or the body of a Nova InvokeModel response (the same shape)."""
    converse_usage(inv, result.get("usage"))
    reason = result.get("stopReason")
    inv.finish_reasons = [finish_reason(reason)]
    content = sequence(mapping(mapping(result.get("output")).get("message")).get("content"))
    inv.tool_call_count = sum(1 for block in content if isinstance(block, Mapping) and "toolUse" in block)
    if inv.capture_content:
        inv.output_messages = [output_message(converse_parts(content, limit), reason)]


class ConverseCall:
    """`converse` and `converse_stream` (one request and response shape for every model)."""

    operation = semconv.OP_CHAT

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.content_max_length

    def request(self, inv: Invocation, params: Mapping[str, Any]) -> None:
        config = mapping(params.get("inferenceConfig"))
        request_params(inv, config, CONVERSE_PARAMS)
        stop_sequences(inv, config.get("stopSequences"))
        extra = mapping(params.get("additionalModelRequestFields"))
        request_params(inv, extra, CONVERSE_PARAMS)  # top_k / topK go here for Anthropic and Nova
        request_params(inv, mapping(extra.get("inferenceConfig")), CONVERSE_PARAMS)
        effort = mapping(extra.get("reasoningConfig")).get("maxReasoningEffort")
        if isinstance(effort, str):
            inv.request_attributes[semconv.REQUEST_REASONING_LEVEL] = effort
        guardrail = mapping(params.get("guardrailConfig")).get("guardrailIdentifier")
        if isinstance(guardrail, str):
            inv.request_attributes[semconv.AWS_BEDROCK_GUARDRAIL_ID] = guardrail
        if inv.capture_content:
            converse_input(inv, params, self.limit)

    def response(self, inv: Invocation, result: Mapping[str, Any]) -> None:
        converse_response(inv, result, self.limit)

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
            use = mapping(mapping(start.get("start")).get("toolUse"))
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
            converse_usage(self.inv, metadata.get("usage"))

    def _delta(self, event: Mapping[str, Any]) -> None:
        delta = mapping(event.get("delta"))
        index = event.get("contentBlockIndex", 0)
        block = self.blocks.get(index)
        if "text" in delta:
            if block is None:
                block = self.blocks[index] = ["text", [], None, None]
            block[1].append(str(delta["text"]))
        elif "toolUse" in delta:
            if block is None:
                block = self.blocks[index] = ["tool", [], None, None]
            block[1].append(str(mapping(delta["toolUse"]).get("input", "")))
        elif "reasoningContent" in delta:
            if block is None:
                block = self.blocks[index] = ["reasoning", [], None, None]
            text = mapping(delta["reasoningContent"]).get("text")
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
                parts.append(tool_call(tool_id, name, text))
            else:
                parts.append({"type": "reasoning", "content": truncate(text, self.limit)})
        inv.output_messages = [output_message(parts, self.reason)]
