"""Token counts of every Bedrock response shape -> the invocation's usage fields.

Bedrock reports input tokens WITHOUT the prompt-cache reads and writes (Converse `inputTokens`, the
`X-Amzn-Bedrock-Input-Token-Count` header, `inputTokenCount` of the stream's invocation metrics, and
Anthropic's `input_tokens`), so `gen_ai.usage.input_tokens` = input + cache read + cache write; the two
cache counts also go in their own attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmlens.core.invocation import Invocation
from llmlens.providers.bedrock.values import integer


def set_usage(
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
    base, output = integer(input_tokens), integer(output_tokens)
    read, write = integer(cache_read), integer(cache_write)
    cached = (read or 0) + (write or 0)
    if base is not None:
        inv.input_tokens = base
        if cached and not (integer(total) is not None and output is not None and total == base + output):
            inv.input_tokens = base + cached
    if output is not None:
        inv.output_tokens = output
    if read is not None:
        inv.cache_read_tokens = read
    if write is not None:
        inv.cache_creation_tokens = write


def converse_usage(inv: Invocation, usage: Any) -> None:
    """Converse `usage`, also Nova's InvokeModel `usage` (which names the cache counts `...TokenCount`)."""
    if not isinstance(usage, Mapping):
        return
    read = usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount"))
    write = usage.get("cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount"))
    set_usage(inv, usage.get("inputTokens"), usage.get("outputTokens"), read, write, usage.get("totalTokens"))


def invocation_metrics(inv: Invocation, metrics: Any) -> None:
    """`amazon-bedrock-invocationMetrics` of a stream's last chunk: Bedrock's own (billed) counts, so they
    win over the model's counts read from earlier events."""
    if isinstance(metrics, Mapping) and integer(metrics.get("inputTokenCount")) is not None:
        set_usage(
            inv, metrics.get("inputTokenCount"), metrics.get("outputTokenCount"),
            metrics.get("cacheReadInputTokenCount"), metrics.get("cacheWriteInputTokenCount"),
        )  # fmt: skip


def header_usage(inv: Invocation, headers: Mapping[str, Any]) -> None:
    """The `X-Amzn-Bedrock-*-Token-Count` headers of InvokeModel: Bedrock's own (billed) counts, which
    win over the body's. Not every family gets them (Cohere and AI21 do not): then the body's stay."""

    def count(name: str) -> int | None:
        raw = headers.get(name)
        return int(raw) if isinstance(raw, str) and raw.isdigit() else None

    input_tokens = count("x-amzn-bedrock-input-token-count")
    if input_tokens is not None:
        set_usage(
            inv, input_tokens, count("x-amzn-bedrock-output-token-count"),
            count("x-amzn-bedrock-cache-read-input-token-count"),
            count("x-amzn-bedrock-cache-write-input-token-count"),
        )  # fmt: skip
