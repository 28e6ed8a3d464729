"""A sampler that lets the local store see every LLM request, whatever the export sampling.

Span processors only see spans that are *recording*. A sampler that drops a span (ratio sampling,
`parentbased_always_off`, ...) hides it from the store too. `RecordGenAISampler` wraps any sampler:
when it would drop a span that carries `gen_ai.operation.name` at start (llmlens sets it there), the
span is kept as RECORD_ONLY: recorded, so the store writes it, but not sampled, so exporters (the
BatchSpanProcessor) still skip it. Other spans keep the wrapped sampler's decision.

Example:
    >>> from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
    >>> TracerProvider(sampler=RecordGenAISampler(TraceIdRatioBased(0.01)))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

from llmlens import semconv


class RecordGenAISampler(Sampler):
    """Wraps `base`; turns its DROP into RECORD_ONLY for GenAI spans."""

    def __init__(self, base: Sampler) -> None:
        self.base = base

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Sequence[Any] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        result = self.base.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP and attributes and semconv.OPERATION_NAME in attributes:
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordGenAISampler{{{self.base.get_description()}}}"
