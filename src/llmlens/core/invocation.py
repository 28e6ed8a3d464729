"""Invocation: the data of one LLM operation, from request to the last chunk.

Providers fill the plain fields (request, response, usage, content); a `Recorder` (the client
`Telemetry`, or the proxy's `ServerTelemetry`) turns them into a span, metrics and a log event when the
invocation ends. `finish()` and `fail()` are idempotent: whichever exit path comes first ends the
operation, the others do nothing. Nothing here knows OpenTelemetry's names or the Telemetry class.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llmlens import semconv

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from llmlens.pricing import CallCost

_perf_ns = time.perf_counter_ns
_CANCELLATIONS = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)
# The usage fields of an Invocation (pricing.UsageLike), as `invalid_usage` names them.
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)


class Recorder(Protocol):
    """What ends an invocation: `core.telemetry.Telemetry` for an SDK call, `ServerTelemetry` for a
    proxied request. `end` is called once per invocation, by `finish()` or `fail()`."""

    capture_content: bool  # whether providers fill the content fields

    def end(
        self, inv: Invocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None: ...


@dataclass(eq=False, slots=True)
class Invocation:
    """One LLM operation. Plain data plus an idempotent end; no OpenTelemetry names live here.

    Example:
        >>> inv = Invocation(telemetry, "chat", "openai", "gpt-4o-mini", "api.openai.com", 443)
        >>> telemetry.start(inv)
        >>> inv.input_tokens, inv.output_tokens = 12, 5
        >>> inv.finish()
    """

    recorder: Recorder = field(repr=False)
    operation: str
    provider: str
    request_model: str | None
    server_address: str | None = None
    server_port: int | None = None
    stream: bool = False
    # Extra request attributes (semconv names, low-cost scalars) set at span start.
    request_attributes: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    # Provider-specific response extras (semconv names, e.g. openai.response.system_fingerprint), set
    # on the span as they are; everything else is a field.
    response_attributes: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    response_id: str | None = field(default=None, init=False)
    response_model: str | None = field(default=None, init=False)
    finish_reasons: list[str] | None = field(default=None, init=False)
    # The service tier the response names (OpenAI's `service_tier`, Anthropic's `usage.service_tier`),
    # and the API whose names it takes on the span (`openai` -> openai.response.service_tier).
    service_tier: str | None = field(default=None, init=False)
    api: str | None = field(default=None, init=False)
    # Usage. `input_tokens` includes cached tokens and `output_tokens` reasoning tokens (pricing.UsageLike).
    input_tokens: int | None = field(default=None, init=False)
    output_tokens: int | None = field(default=None, init=False)
    cache_read_tokens: int | None = field(default=None, init=False)
    cache_creation_tokens: int | None = field(default=None, init=False)
    reasoning_tokens: int | None = field(default=None, init=False)
    # The usage fields (names, e.g. "input_tokens") that held something not a token count: cleared.
    invalid_usage: list[str] | None = field(default=None, init=False)
    dimension_count: int | None = field(default=None, init=False)
    tool_call_count: int = field(default=0, init=False)
    # The cost, or why there is none (llmlens.pricing), once the invocation has ended and was priced.
    cost: CallCost | None = field(default=None, init=False)
    # True for the upstream leg of a proxied request (see core/context.py): no client metrics.
    upstream: bool = field(default=False, init=False)
    # Content, filled only when capture is on (semconv message-part schema, plain dicts).
    input_messages: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    system_instructions: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    tool_definitions: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    output_messages: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    # perf_counter_ns of each output chunk; the first gives time to first chunk.
    chunk_times: list[int] = field(default_factory=list, init=False, repr=False)
    error: BaseException | None = field(default=None, init=False)
    span: Span | None = field(default=None, init=False, repr=False)
    context_token: object | None = field(default=None, init=False, repr=False)
    # The running profile of this operation (llmlens.core.profile_capture.Capture), when it is profiled.
    profile: Any = field(default=None, init=False, repr=False)
    ended: bool = field(default=False, init=False)
    start_ns: int = field(default=0, init=False)
    start_perf: int = field(default=0, init=False, repr=False)

    @property
    def capture_content(self) -> bool:
        return self.recorder.capture_content

    def mark_chunk(self) -> None:
        """Note the arrival of one output chunk (streams only)."""
        self.chunk_times.append(_perf_ns())

    def mark_invalid_usage(self, name: str) -> None:
        """Note that the usage field `name` ("input_tokens", ...) held something not a token count."""
        found = self.invalid_usage
        if found is None:
            self.invalid_usage = [name]
        elif name not in found:
            found.append(name)

    def finish(self, outcome: str | None = None, end_perf: int | None = None) -> None:
        """End successfully (or, for streams, with the given outcome). Safe to call twice."""
        if not self.ended:
            self.ended = True
            self.recorder.end(self, outcome, None, end_perf)

    def fail(self, error: BaseException, outcome: str | None = None) -> None:
        """End with an error. Safe to call twice; the first end wins.

        A cancelled task (or Ctrl-C) is not a failed call: it ends with outcome `cancelled` and
        UNSET status, and `error.type` is not set.
        """
        if self.ended:
            return
        self.ended = True
        if isinstance(error, _CANCELLATIONS):
            self.recorder.end(self, semconv.OUTCOME_CANCELLED, None, None)
            return
        self.error = error
        self.recorder.end(self, outcome or (semconv.OUTCOME_ERROR if self.stream else None), error, None)
