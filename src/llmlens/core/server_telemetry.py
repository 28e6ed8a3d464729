"""The server flavour of `Telemetry`: one SERVER span and the `gen_ai.server.*` metrics per proxied request.

It shares the client `Telemetry`'s tracer, meter, prices, content settings and event logger, and its
attribute building (`start`, `_response_attributes`), so a proxy's SERVER span carries the same
`gen_ai.*` names as an SDK's CLIENT span. What is its own:

- the span kind (SERVER) and its parent (the caller's `traceparent`);
- how a proxied request ended (`llmlens.stream.outcome`: completed, client_disconnected,
  upstream_error, server_exception, error_response) and the span status that goes with it;
- the upstream legs: SDK calls made while the request runs register themselves (core/context.py), so
  the SERVER span names the upstream provider, format and model, and takes their usage and cost when
  the response sent to the client carries none;
- metrics: `gen_ai.server.request.duration`, `gen_ai.server.time_to_first_token`,
  `gen_ai.server.time_per_output_token`, `llmlens.server.active_requests`; the request's tokens and cost
  go to the same instruments SDK calls use (`gen_ai.client.token.usage`, `llmlens.cost`), once per
  request: the upstream legs record none (core/context.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmlens import semconv
from llmlens.core.invocation import Invocation
from llmlens.core.limits import cap, cap_text
from llmlens.core.telemetry import Telemetry, _describe, _fast_histogram, mark_invalid_usage

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns
_SERVER = SpanKind.SERVER
_MAX_UPSTREAMS = 64  # SDK calls remembered per request (a long tool loop keeps the first ones)

# gen_ai.provider.name of an upstream SDK call -> its wire format (llmlens.proxy.target_format).
_PROVIDER_FORMATS = {
    "anthropic": "anthropic",
    "gcp.gemini": "gemini",
    "gcp.vertex_ai": "gemini",
    "gcp.gen_ai": "gemini",
    "aws.bedrock": "bedrock",
    "cohere": "cohere",
    "ollama": "ollama",
}
_OK = Status(StatusCode.OK)


class ServerInvocation(Invocation):
    """One proxied request: an Invocation plus what only a server knows (status, outcome, upstreams)."""

    __slots__ = (
        "active_attributes", "error_message", "failure", "owner", "source_format", "status_code",
        "target_format", "upstream_model", "upstream_provider", "upstreams",
    )  # fmt: skip

    def __init__(self, telemetry: Any, operation: str, provider: str, request_model: str | None,
                 stream: bool = False) -> None:  # fmt: skip
        super().__init__(telemetry, operation, provider, request_model, None, None, stream)
        self.upstreams: list[Invocation] = []
        self.source_format: str | None = None
        self.target_format: str | None = None
        self.upstream_provider: str | None = None
        self.upstream_model: str | None = None
        self.status_code: int | None = None
        # error.type of a failure that raised nothing: an error event in a stream, an HTTP error status
        self.failure: str | None = None
        self.error_message: str | None = None
        self.active_attributes: dict[str, Any] = {}
        self.owner: Any = None  # what records it (an llm_request(...) record), for current_llm_request()

    def add_upstream(self, inv: Invocation) -> None:
        """Called by core Telemetry when an SDK call starts while this request runs."""
        if len(self.upstreams) < _MAX_UPSTREAMS:
            self.upstreams.append(inv)

    def set_upstream(
        self, provider: str | None = None, model: str | None = None, format: str | None = None
    ) -> None:
        """Name the upstream when no instrumented SDK call does (a raw httpx call, a custom client)."""
        if provider:
            self.upstream_provider = provider
        if model:
            self.upstream_model = model
        if format:
            self.target_format = format


class _PricedUsage:
    """What PriceBook.price_call reads, for pricing by the upstream provider and model."""

    __slots__ = (
        "cache_creation_tokens", "cache_read_tokens", "chunk_times", "input_tokens", "output_tokens",
        "provider", "reasoning_tokens", "request_model", "response_attributes", "response_model",
    )  # fmt: skip

    def __init__(self, inv: ServerInvocation, provider: str, model: str) -> None:
        self.provider = provider
        self.request_model = self.response_model = model
        self.input_tokens, self.output_tokens = inv.input_tokens, inv.output_tokens
        self.cache_read_tokens, self.cache_creation_tokens = inv.cache_read_tokens, inv.cache_creation_tokens
        self.reasoning_tokens = inv.reasoning_tokens
        self.response_attributes = inv.response_attributes
        self.chunk_times = inv.chunk_times


class ServerTelemetry:
    """SERVER spans and server metrics for proxied requests, on top of a client `Telemetry`.

    Example:
        >>> server = ServerTelemetry(telemetry)
        >>> inv = server.start_request("chat", "openai", "gpt-4o-mini", stream=True, source_format="openai")
        >>> inv.mark_chunk(); inv.output_tokens = 7
        >>> inv.finish(semconv.OUTCOME_COMPLETED)
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self.client = telemetry
        self.settings = telemetry.settings
        self.capture_content = telemetry.capture_content
        meter = telemetry.meter
        # Public API for the duration (exemplars link its buckets to traces), FastHistogram for the rest.
        self.request_duration = meter.create_histogram(
            semconv.METRIC_SERVER_REQUEST_DURATION,
            unit="s",
            description="Duration of LLM requests handled by a proxy, to the last byte sent",
            explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS),
        )
        self.time_to_first_token = _fast_histogram(
            meter, semconv.METRIC_SERVER_TIME_TO_FIRST_TOKEN, "s",
            "Time from the request to the first output chunk sent",
            semconv.SERVER_TIME_TO_FIRST_TOKEN_BUCKETS,
        )  # fmt: skip
        self.time_per_output_token = _fast_histogram(
            meter, semconv.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN, "s",
            "Time per output token after the first", semconv.SERVER_TIME_PER_OUTPUT_TOKEN_BUCKETS,
        )  # fmt: skip
        # Counted here and read at collection (an observable counter): two dict updates per request
        # instead of two trips through the SDK's measurement pipeline.
        self._active: dict[tuple[tuple[str, Any], ...], int] = {}
        self._active_lock = threading.Lock()
        self.active_requests = meter.create_observable_up_down_counter(
            semconv.METRIC_LLMLENS_SERVER_ACTIVE_REQUESTS,
            callbacks=[self._observe_active],
            unit="{request}",
            description="LLM requests a proxy is handling (a stream counts until its last byte)",
        )

    @classmethod
    def of(cls, telemetry: Telemetry) -> ServerTelemetry:
        """The ServerTelemetry of a Telemetry, made once."""
        server = telemetry.__dict__.get("_llmlens_server")
        if server is None:
            server = telemetry.__dict__["_llmlens_server"] = cls(telemetry)
        assert isinstance(server, ServerTelemetry)
        return server

    # --- lifecycle ------------------------------------------------------------------------------

    def start_request(
        self,
        operation: str,
        provider: str,
        request_model: str | None,
        stream: bool = False,
        request_attributes: dict[str, Any] | None = None,
        context: Any = None,
        source_format: str | None = None,
        inv: ServerInvocation | None = None,
    ) -> ServerInvocation:
        """Start the SERVER span (`context`: the parent, e.g. from the request's traceparent).

        `inv` may be a ServerInvocation already filled from the request body (its request attributes,
        content); its identity fields are set here.
        """
        if inv is None:
            inv = ServerInvocation(self, operation, provider, request_model, stream)
        else:
            inv.operation, inv.provider = operation, provider
            inv.request_model, inv.stream = request_model, stream
        if request_attributes:
            inv.request_attributes.update(request_attributes)
        if source_format:
            inv.source_format = source_format
            inv.request_attributes[semconv.LLMLENS_SOURCE_FORMAT] = source_format
        self.client.start(inv, _SERVER, context)  # (caps the names: core/limits.py)
        active: dict[str, Any] = {semconv.OPERATION_NAME: inv.operation, semconv.PROVIDER_NAME: inv.provider}
        if stream:
            active[semconv.REQUEST_STREAM] = True
        inv.active_attributes = active
        self._count_active(active, 1)
        return inv

    def _count_active(self, attributes: dict[str, Any], change: int) -> None:
        key = tuple(attributes.items())
        with self._active_lock:
            self._active[key] = self._active.get(key, 0) + change

    def _observe_active(self, options: Any) -> list[Observation]:
        with self._active_lock:
            return [Observation(count, dict(key)) for key, count in self._active.items()]

    def end(
        self, inv: Invocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None:
        """Called once by Invocation.finish/fail: attributes, status, span end, metrics."""
        assert isinstance(inv, ServerInvocation)
        try:
            self._end(inv, outcome, error, end_perf)
        except Exception:  # never let telemetry break the request
            _log.debug("llmlens: failed to end a proxied request", exc_info=True)
            span = inv.span
            if span is not None and span.is_recording():
                span.end()
        finally:
            self._count_active(inv.active_attributes, -1)

    def _end(
        self, inv: ServerInvocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None:
        if end_perf is None:
            end_perf = _perf_ns()
            end_ns = None
        else:
            end_ns = inv.start_ns + (end_perf - inv.start_perf)
        upstream_cost = self._merge_upstreams(inv)
        attributes = self.client._response_attributes(inv, outcome, error)
        if not inv.stream and outcome not in (None, semconv.OUTCOME_COMPLETED):
            attributes[semconv.LLMLENS_STREAM_OUTCOME] = outcome
        if inv.status_code is not None:
            attributes[semconv.HTTP_STATUS_CODE] = inv.status_code
        if error is None and inv.failure is not None:  # an upstream's error code: capped like a name
            attributes[semconv.ERROR_TYPE] = inv.failure = cap(inv.failure)
        self._upstream_attributes(inv, attributes)
        err_type = attributes.get(semconv.ERROR_TYPE)
        priced = self._price(inv, attributes, err_type is not None, upstream_cost)
        span = inv.span
        assert span is not None
        if span.is_recording():
            span.set_attributes(attributes)
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, _describe(error)))
            elif err_type is not None:
                span.set_status(Status(StatusCode.ERROR, cap_text(inv.error_message or str(err_type))))
            elif outcome in (None, semconv.OUTCOME_COMPLETED):
                span.set_status(_OK)
            # a client that went away: UNSET, as for a stream the caller closed early
        span.end(end_time=end_ns)
        context = trace.set_span_in_context(span)
        self._record_metrics(inv, outcome, err_type, end_perf, context, priced)
        if self.client.event_logger is not None:
            self.client._emit_event(inv, {**inv.request_attributes, **attributes}, context)

    # --- upstream legs ----------------------------------------------------------------------------

    def _merge_upstreams(self, inv: ServerInvocation) -> float | None:
        """Name the upstream from the SDK calls made for this request; take their usage if the response
        to the client had none. Returns their summed cost, if they were priced."""
        upstreams = inv.upstreams
        if not upstreams:
            return None
        last = upstreams[-1]
        if inv.upstream_provider is None:
            inv.upstream_provider = last.provider
        if inv.upstream_model is None:
            inv.upstream_model = last.response_model or last.request_model
        if inv.target_format is None:
            if last.request_attributes.get(semconv.OPENAI_API_TYPE) == "responses":
                inv.target_format = "openai_responses"
            else:
                inv.target_format = _PROVIDER_FORMATS.get(last.provider, "openai")
        ended = [u for u in upstreams if u.ended]
        if inv.input_tokens is None and inv.output_tokens is None:
            for field in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
                          "reasoning_tokens"):  # fmt: skip
                values = [getattr(u, field) for u in ended if getattr(u, field) is not None]
                if values:
                    setattr(inv, field, sum(values))
            for upstream in ended:  # a leg's invalid count is missing from the sums: say so here too
                for key in upstream.response_attributes.get(semconv.LLMLENS_USAGE_INVALID) or ():
                    mark_invalid_usage(inv.response_attributes, key)
        costs = [u.response_attributes.get(semconv.USAGE_COST_AMOUNT) for u in ended]
        priced = [c for c in costs if isinstance(c, (int, float))]
        return sum(priced) if priced and len(priced) == len(ended) else None

    def _upstream_attributes(self, inv: ServerInvocation, attributes: dict[str, Any]) -> None:
        # set_upstream() takes what the application passes: capped like every other name.
        inv.upstream_model, inv.upstream_provider = cap(inv.upstream_model), cap(inv.upstream_provider)
        inv.target_format = cap(inv.target_format)
        if inv.target_format:
            attributes[semconv.LLMLENS_TARGET_FORMAT] = inv.target_format
        if inv.upstream_model:
            attributes[semconv.LLMLENS_UPSTREAM_MODEL] = inv.upstream_model
        provider = inv.upstream_provider
        if provider:
            attributes[semconv.LLMLENS_UPSTREAM_PROVIDER] = provider
            # "Best knowledge" (the spec's rule for proxies): the provider that served the request.
            attributes[semconv.PROVIDER_NAME] = provider
            inv.provider = provider

    def _price(
        self, inv: ServerInvocation, attributes: dict[str, Any], failed: bool, upstream_cost: float | None
    ) -> float | str | None:
        if upstream_cost is not None:  # the upstream legs were priced by what they really used
            attributes[semconv.USAGE_COST_AMOUNT] = upstream_cost
            attributes[semconv.USAGE_COST_CURRENCY] = "USD"
            attributes[semconv.USAGE_COST_SOURCE] = semconv.COST_SOURCE_LOCAL
            source = inv.upstreams[-1].response_attributes.get(semconv.LLMLENS_COST_PRICE_SOURCE)
            if source:
                attributes[semconv.LLMLENS_COST_PRICE_SOURCE] = source
            return upstream_cost
        prices = self.client.prices
        if prices is None:
            return None
        if inv.upstream_model and inv.upstream_provider:
            return prices.price_call(
                _PricedUsage(inv, inv.upstream_provider, inv.upstream_model),  # type: ignore[arg-type]
                attributes,
                failed,
            )
        return prices.price_call(inv, attributes, failed)

    # --- metrics ------------------------------------------------------------------------------------

    def _record_metrics(
        self,
        inv: ServerInvocation,
        outcome: str | None,
        err_type: str | None,
        end_perf: int,
        context: Any,
        priced: float | str | None,
    ) -> None:
        attrs: dict[str, Any] = {semconv.OPERATION_NAME: inv.operation, semconv.PROVIDER_NAME: inv.provider}
        if inv.request_model:
            attrs[semconv.REQUEST_MODEL] = inv.request_model
        if inv.response_model:
            attrs[semconv.RESPONSE_MODEL] = inv.response_model
        duration_attrs = {**attrs, semconv.ERROR_TYPE: err_type} if err_type is not None else attrs
        self.request_duration.record((end_perf - inv.start_perf) / 1e9, duration_attrs, context)
        client = self.client
        if inv.input_tokens is not None:
            client.token_usage.record(
                inv.input_tokens, {**attrs, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_INPUT}, context
            )
        if inv.output_tokens is not None:
            client.token_usage.record(
                inv.output_tokens, {**attrs, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_OUTPUT}, context
            )
        times = inv.chunk_times
        if inv.stream and times and err_type is None and outcome == semconv.OUTCOME_COMPLETED:
            first = times[0]
            self.time_to_first_token.record((first - inv.start_perf) / 1e9, attrs, context)
            # Per output token after the first; without a count, streamed chunks stand in for tokens.
            tokens = inv.output_tokens if inv.output_tokens else len(times)
            if tokens > 1 and end_perf > first:
                self.time_per_output_token.record((end_perf - first) / 1e9 / (tokens - 1), attrs, context)
        if priced is not None and client.costs is not None:
            client.costs.add(priced, attrs)
