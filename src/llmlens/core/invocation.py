"""Invocation: the lifecycle of one LLM operation, from request to the last chunk.

Providers fill the plain fields (request, response, usage, content); `Telemetry` turns them into a
span, metrics and a log event. `finish()` and `fail()` are idempotent: whichever exit path comes
first ends the operation, the others do nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from llmlens import semconv

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from llmlens.core.telemetry import Telemetry

_perf_ns = time.perf_counter_ns
_CANCELLATIONS = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)


class Invocation:
    """One LLM operation. Plain data plus an idempotent end; no OpenTelemetry names live here.

    Example:
        >>> inv = telemetry.start_invocation("chat", "openai", "gpt-4o-mini", "api.openai.com", 443)
        >>> inv.input_tokens, inv.output_tokens = 12, 5
        >>> inv.finish()
    """

    __slots__ = (
        "cache_creation_tokens",
        "cache_read_tokens",
        "chunk_times",
        "context_token",
        "dimension_count",
        "ended",
        "error",
        "finish_reasons",
        "input_messages",
        "input_tokens",
        "operation",
        "output_messages",
        "output_tokens",
        "provider",
        "reasoning_tokens",
        "request_attributes",
        "request_model",
        "response_attributes",
        "response_id",
        "response_model",
        "server_address",
        "server_port",
        "span",
        "start_ns",
        "start_perf",
        "stream",
        "system_instructions",
        "telemetry",
        "tool_call_count",
        "tool_definitions",
        "upstream",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        operation: str,
        provider: str,
        request_model: str | None,
        server_address: str | None = None,
        server_port: int | None = None,
        stream: bool = False,
    ) -> None:
        self.telemetry = telemetry
        self.operation = operation
        self.provider = provider
        self.request_model = request_model
        self.server_address = server_address
        self.server_port = server_port
        self.stream = stream
        # Extra request attributes (semconv names, low-cost scalars) set at span start.
        self.request_attributes: dict[str, Any] = {}
        # Provider-specific response attributes set at the end (e.g. openai.response.service_tier).
        self.response_attributes: dict[str, Any] = {}
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_creation_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.dimension_count: int | None = None
        self.tool_call_count = 0
        # True for the upstream leg of a proxied request (see core/context.py): no client metrics.
        self.upstream = False
        # Content, filled only when capture is on (semconv message-part schema, plain dicts).
        self.input_messages: list[dict[str, Any]] | None = None
        self.system_instructions: list[dict[str, Any]] | None = None
        self.tool_definitions: list[dict[str, Any]] | None = None
        self.output_messages: list[dict[str, Any]] | None = None
        # perf_counter_ns of each output chunk; the first gives time to first chunk.
        self.chunk_times: list[int] = []
        self.error: BaseException | None = None
        self.span: Span | None = None
        self.context_token: object | None = None
        self.ended = False
        self.start_ns = 0
        self.start_perf = 0

    @property
    def capture_content(self) -> bool:
        return self.telemetry.capture_content

    def mark_chunk(self) -> None:
        """Note the arrival of one output chunk (streams only)."""
        self.chunk_times.append(_perf_ns())

    def finish(self, outcome: str | None = None, end_perf: int | None = None) -> None:
        """End successfully (or, for streams, with the given outcome). Safe to call twice."""
        if not self.ended:
            self.ended = True
            self.telemetry.end(self, outcome, None, end_perf)

    def fail(self, error: BaseException, outcome: str | None = None) -> None:
        """End with an error. Safe to call twice; the first end wins.

        A cancelled task (or Ctrl-C) is not a failed call: it ends with outcome `cancelled` and
        UNSET status, and `error.type` is not set.
        """
        if self.ended:
            return
        self.ended = True
        if isinstance(error, _CANCELLATIONS):
            self.telemetry.end(self, semconv.OUTCOME_CANCELLED, None, None)
            return
        self.error = error
        self.telemetry.end(self, outcome or (semconv.OUTCOME_ERROR if self.stream else None), error, None)
