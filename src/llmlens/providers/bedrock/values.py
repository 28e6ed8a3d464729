"""Small readers of Bedrock values: type-checked scalars and containers, finish reasons, model families,
and the response id and model. Every other module of the package builds on these; they import nothing
of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmlens import semconv
from llmlens.core.invocation import Invocation

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

_CROSS_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")


def finish_reason(raw: Any) -> str:
    """`end_turn` -> `stop`, `max_tokens` -> `length`, `tool_use` -> `tool_call`, `guardrail_intervened` ->
    `content_filter`, ...; a missing reason is `error`."""
    if raw is None:
        return semconv.FINISH_ERROR
    raw = str(raw)
    return _FINISH_REASONS.get(raw, raw)


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def sequence(value: Any) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, (list, tuple)) else ()


def merge_count(current: int | None, value: Any) -> int | None:
    """Keep the last non-zero count: a later zero (or absent) value never erases an earlier one."""
    value = integer(value)
    if value is None:
        return current
    return value if value or current is None else current


def model_name(model_id: str) -> str:
    """The model id without an ARN's path or a cross-region prefix (`us.`, `eu.`, `global.`...)."""
    name = model_id.rsplit("/", 1)[-1].lower()
    for prefix in _CROSS_REGION_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def model_family(model_id: str) -> str:
    """`anthropic.claude-3-haiku-20240307-v1:0` -> `anthropic`, `us.amazon.nova-pro-v1:0` -> `nova`,
    `meta.llama3-8b-instruct-v1:0` -> `meta`; any embedding model -> `embed`."""
    name = model_name(model_id)
    if "embed" in name:
        return "embed"
    if name.startswith("amazon.nova"):
        return "nova"
    return name.split(".", 1)[0]


def response_ids(inv: Invocation, message: Mapping[str, Any]) -> None:
    """The `id` and `model` of an Anthropic or Mistral chat response (or Anthropic's `message_start`)."""
    if isinstance(message.get("id"), str):
        inv.response_id = message["id"]
    if isinstance(message.get("model"), str):
        inv.response_model = message["model"]
