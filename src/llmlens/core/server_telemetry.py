"""The server flavour of `Telemetry`: one SERVER span and the `gen_ai.server.*` metrics per proxied request.

It shares the client `Telemetry`'s tracer, meter, prices, content settings and event logger, and its
public attribute building, pricing and metric recording (`start`, `response_attributes`, `price`,
`record_usage`, `close_span`, ...), so a proxy's SERVER span carries the same `gen_ai.*` names as an
SDK's CLIENT span. What is its own:

- the span kind (SERVER) and its parent (the caller's `traceparent`);
- how a proxied request ended (`llmlens.stream.outcome`: completed, client_disconnected,
  upstream_error, server_exception, error_response) and the span status that goes with it;
- the upstream legs: SDK calls made while the request runs register themselves (`ServerInvocation`
  implements core/context.py's `ProxyRequest`), so
  the SERVER span names the upstream provider, format and model, and takes their usage and cost when
  the response sent to the client carries none;
- metrics: `gen_ai.server.request.duration`, `gen_ai.server.time_to_first_token`,
  `gen_ai.server.time_per_output_token`, `llmlens.server.active_requests`; the request's tokens and cost
  go to the same instruments SDK calls use (`gen_ai.client.token.usage`, `llmlens.cost`), once per
  request: the upstream legs record none (core/context.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from llmlens import pricing, semconv
from llmlens.core.invocation import USAGE_FIELDS, Invocation
from llmlens.core.limits import cap, cap_text
from llmlens.core.telemetry import (
    Telemetry,
    add_cost_attributes,
    close_span,
    end_guarded,
    end_times,
)
from llmlens.observed import ObservedTotals

_SERVER = SpanKind.SERVER
_perf_ns = time.perf_counter_ns
_MAX_UPSTREAMS = 64  # SDK calls remembered per request (a long tool loop keeps the first ones)
_OF_LOCK = threading.Lock()

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


@dataclass(eq=False, slots=True)
class ServerInvocation(Invocation):
    """One proxied request: an Invocation plus what only a server knows (status, outcome, upstreams).

    It is the `ProxyRequest` (core/context.py) the proxy puts in the context while the request runs.
    """

    upstreams: list[Invocation] = field(default_factory=list, init=False, repr=False)
    source_format: str | None = field(default=None, init=False)
    target_format: str | None = field(default=None, init=False)
    upstream_provider: str | None = field(default=None, init=False)
    upstream_model: str | None = field(default=None, init=False)
    status_code: int | None = field(default=None, init=False)
    # perf_counter_ns when the response's start (status and headers) went to the client; 0: not seen
    response_start_perf: int = field(default=0, init=False, repr=False)
    # error.type of a failure that raised nothing: an error event in a stream, an HTTP error status
    failure: str | None = field(default=None, init=False)
    error_message: str | None = field(default=None, init=False)
    active_attributes: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    # what records it (an llm_request(...) record), for current_llm_request()
    owner: Any = field(default=None, init=False, repr=False)

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


class ServerTelemetry:
    """SERVER spans and server metrics for proxied requests, on top of a client `Telemetry`.

    It is the `Recorder` (core/invocation.py) of its ServerInvocations.

    Example:
        >>> server = ServerTelemetry.of(telemetry)
        >>> inv = server.start_request("chat", "openai", "gpt-4o-mini", stream=True, source_format="openai")
        >>> inv.mark_chunk(); inv.output_tokens = 7
        >>> inv.finish(semconv.OUTCOME_COMPLETED)
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self.client = telemetry
        self.settings = telemetry.settings
        self.capture_content = telemetry.capture_content
        # FastHistogram (core/histograms.py), as for SDK calls: the exported points of the public API at a
        # fraction of its cost, an exemplar on the first value of each attribute set only.
        self.request_duration = telemetry.histogram(
            semconv.METRIC_SERVER_REQUEST_DURATION,
            "s",
            "Duration of LLM requests handled by a proxy, to the last byte sent",
            semconv.DURATION_BUCKETS,
        )
        self.time_to_first_token = telemetry.histogram(
            semconv.METRIC_SERVER_TIME_TO_FIRST_TOKEN,
            "s",
            "Time from the request to the first output chunk sent",
            semconv.SERVER_TIME_TO_FIRST_TOKEN_BUCKETS,
        )
        self.time_per_output_token = telemetry.histogram(
            semconv.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN, "s", "Time per output token after the first",
            semconv.SERVER_TIME_PER_OUTPUT_TOKEN_BUCKETS,
        )  # fmt: skip
        # Counted here and read at collection (an observable counter): two dict updates per request
        # instead of two trips through the SDK's measurement pipeline.
        self.active_requests = ObservedTotals.on(
            telemetry.meter,
            semconv.METRIC_LLMLENS_SERVER_ACTIVE_REQUESTS,
            "{request}",
            "LLM requests a proxy is handling (a stream counts until its last byte)",
            up_down=True,
        )

    @classmethod
    def of(cls, telemetry: Telemetry) -> ServerTelemetry:
        """The ServerTelemetry of a Telemetry (its `server`), made once."""
        server = telemetry.server
        if server is None:
            with _OF_LOCK:
                server = telemetry.server
                if server is None:
                    server = telemetry.server = cls(telemetry)
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
        content); its identity fields are set here. If its `start_ns`/`start_perf` hold the request's
        arrival, the time since (reading and decoding the request) is `llmlens.proxy.parse_duration`.
        """
        if inv is None:
            inv = ServerInvocation(self, operation, provider, request_model, stream=stream)
        else:
            inv.operation, inv.provider = operation, provider
            inv.request_model, inv.stream = request_model, stream
        if request_attributes:
            inv.request_attributes.update(request_attributes)
        if source_format:
            inv.source_format = source_format
            inv.request_attributes[semconv.LLMLENS_SOURCE_FORMAT] = source_format
        if inv.start_perf:  # the proxy gave the arrival time and has read and decoded the request since
            inv.request_attributes[semconv.LLMLENS_PARSE_DURATION] = (_perf_ns() - inv.start_perf) / 1e9
        self.client.start(inv, _SERVER, context)  # (caps the names: core/limits.py)
        active: dict[str, Any] = {semconv.OPERATION_NAME: inv.operation, semconv.PROVIDER_NAME: inv.provider}
        if stream:
            active[semconv.REQUEST_STREAM] = True
        inv.active_attributes = active
        self.active_requests.add(tuple(active.items()), 1)
        return inv

    def end(
        self, inv: Invocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None:
        """Called once by Invocation.finish/fail: attributes, status, span end, metrics."""
        assert isinstance(inv, ServerInvocation)
        try:
            end_guarded(self._end, inv, outcome, error, end_perf)  # type: ignore[arg-type]
        finally:
            self.active_requests.add(tuple(inv.active_attributes.items()), -1)

    def _end(
        self, inv: ServerInvocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None:
        client = self.client
        end_perf, end_ns = end_times(inv, end_perf)
        upstream_cost = self._merge_upstreams(inv)
        attributes = client.response_attributes(inv, outcome, error)
        if not inv.stream and outcome not in (None, semconv.OUTCOME_COMPLETED):
            attributes[semconv.LLMLENS_STREAM_OUTCOME] = outcome
        if inv.status_code is not None:
            attributes[semconv.HTTP_STATUS_CODE] = inv.status_code
        if inv.response_start_perf and inv.start_perf:
            attributes[semconv.LLMLENS_RESPONSE_START] = (inv.response_start_perf - inv.start_perf) / 1e9
        if error is None and inv.failure is not None:  # an upstream's error code: capped like a name
            attributes[semconv.ERROR_TYPE] = inv.failure = cap(inv.failure)
        self._upstream_attributes(inv, attributes)
        err_type = attributes.get(semconv.ERROR_TYPE)
        if upstream_cost is not None:  # the upstream legs were priced by what they really used
            inv.cost = upstream_cost
        elif inv.upstream_model and inv.upstream_provider:  # priced as a call to the upstream
            inv.cost = client.price(inv, err_type is not None, inv.upstream_provider, inv.upstream_model)
        else:
            inv.cost = client.price(inv, err_type is not None)
        add_cost_attributes(attributes, inv.cost)
        failure = None
        if error is None and err_type is not None:
            failure = cap_text(inv.error_message or str(err_type))
        span = close_span(inv, attributes, error, outcome, failure, end_ns)
        self._record_metrics(inv, outcome, err_type, end_perf, span)
        if client.event_logger is not None:
            context = trace.set_span_in_context(span)
            client.emit_event(inv, {**inv.request_attributes, **attributes}, context)

    # --- upstream legs ----------------------------------------------------------------------------

    def _merge_upstreams(self, inv: ServerInvocation) -> pricing.CallCost | None:
        """Name the upstream from the SDK calls made for this request; take their usage if the response
        to the client had none. Returns their summed cost, if every one that ended was priced."""
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
            for name in USAGE_FIELDS:
                values = [getattr(u, name) for u in ended if getattr(u, name) is not None]
                if values:
                    setattr(inv, name, sum(values))
            for upstream in ended:  # a leg's invalid count is missing from the sums: say so here too
                for name in upstream.invalid_usage or ():
                    inv.mark_invalid_usage(name)
        amounts = [u.cost.amount for u in ended if u.cost is not None and u.cost.amount is not None]
        if not amounts or len(amounts) != len(ended):
            return None
        source = last.cost.price_source if last.cost is not None else None
        # A leg to a relay llmlens does not know was priced from its model alone: so is the sum.
        inferred = any(u.cost.source == pricing.COST_SOURCE_INFERRED for u in ended if u.cost is not None)
        how = pricing.COST_SOURCE_INFERRED if inferred else pricing.COST_SOURCE_LOCAL
        return pricing.CallCost(sum(amounts), pricing.CURRENCY, how, source)

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

    # --- metrics ------------------------------------------------------------------------------------

    def _record_metrics(
        self,
        inv: ServerInvocation,
        outcome: str | None,
        err_type: str | None,
        end_perf: int,
        span: Any,
    ) -> None:
        # The same attribute sets SDK calls record theirs with (a proxied request has no server.*).
        sets = self.client.metric_attributes(inv, err_type)
        self.request_duration.record_keyed(
            (end_perf - inv.start_perf) / 1e9, sets.duration_key, sets.duration, span
        )
        self.client.record_usage(inv, sets, span)
        times = inv.chunk_times
        if inv.stream and times and err_type is None and outcome == semconv.OUTCOME_COMPLETED:
            first = times[0]
            self.time_to_first_token.record_keyed((first - inv.start_perf) / 1e9, sets.key, sets.base, span)
            # Per output token after the first; without a count, streamed chunks stand in for tokens.
            tokens = inv.output_tokens if inv.output_tokens else len(times)
            if tokens > 1 and end_perf > first:
                per_token = (end_perf - first) / 1e9 / (tokens - 1)
                self.time_per_output_token.record_keyed(per_token, sets.key, sets.base, span)
