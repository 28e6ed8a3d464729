"""Request parameters -> `gen_ai.request.*` attributes: one (body key, attribute, converter) table per
request format, Converse's camelCase and the InvokeModel bodies' snake_case."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmlens import semconv
from llmlens.core.invocation import Invocation
from llmlens.providers.bedrock.values import integer, number

# (body key, attribute, converter) per request format.
Param = tuple[str, str, Callable[[Any], Any]]
CONVERSE_PARAMS: tuple[Param, ...] = (
    ("maxTokens", semconv.REQUEST_MAX_TOKENS, integer),
    ("max_new_tokens", semconv.REQUEST_MAX_TOKENS, integer),  # Nova InvokeModel (v1 schema)
    ("temperature", semconv.REQUEST_TEMPERATURE, number),
    ("topP", semconv.REQUEST_TOP_P, number),
    ("top_p", semconv.REQUEST_TOP_P, number),
    ("topK", semconv.REQUEST_TOP_K, integer),
    ("top_k", semconv.REQUEST_TOP_K, integer),
)
SNAKE_PARAMS: tuple[Param, ...] = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS, integer),
    ("max_gen_len", semconv.REQUEST_MAX_TOKENS, integer),
    ("temperature", semconv.REQUEST_TEMPERATURE, number),
    ("top_p", semconv.REQUEST_TOP_P, number),
    ("top_k", semconv.REQUEST_TOP_K, integer),
)


def request_params(inv: Invocation, source: Mapping[str, Any], table: tuple[Param, ...]) -> None:
    attrs = inv.request_attributes
    for key, attribute, convert in table:
        value = source.get(key)
        if value is not None:
            value = convert(value)
            if value is not None:
                attrs[attribute] = value


def stop_sequences(inv: Invocation, value: Any) -> None:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)) and value:
        inv.request_attributes[semconv.REQUEST_STOP_SEQUENCES] = [str(s) for s in value]
