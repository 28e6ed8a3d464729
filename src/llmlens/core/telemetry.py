"""Telemetry: the one place where an Invocation becomes spans, metrics and log events.

Created once per `instrument()`; every instrument and the tracer are built up front so the per-call
path only builds two attribute dicts, starts a span, and records a handful of histogram values.

Pricing gives a value (`pricing.CallCost`); this module turns it into span attributes and cost metric
points. The proxy's server side (core/server_telemetry.py) builds on the public methods here
(`response_attributes`, `price`, `metric_attributes`, `record_usage`, `emit_event`, `histogram`) and
the public functions `close_span`, `end_times`, `end_guarded` and `add_cost_attributes`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmlens import pricing, semconv
from llmlens._version import __version__
from llmlens.core.client_metrics import ClientMetrics
from llmlens.core.context import ACTIVE_INVOCATION_KEY, proxy_request
from llmlens.core.histograms import FastHistogram
from llmlens.core.in_flight import IN_FLIGHT
from llmlens.core.invocation import Invocation
from llmlens.core.limits import (
    EXCEPTION_MESSAGE_MAX,
    IDENTIFIER_MAX,
    STACKTRACE_MAX,
    TOKENS_MAX,
    cap,
    cap_all,
    valid_token_count,
)
from llmlens.core.metric_labels import ModelLabels
from llmlens.core.profiling import SWITCH as _PROFILING
from llmlens.core.span_attributes import set_end_attributes
from llmlens.logs.redact import redact
from llmlens.settings import SemconvNames, Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry._logs import LoggerProvider
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from llmlens.pricing import CallCost

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns
_CLIENT = SpanKind.CLIENT
_SCOPE = "llmlens"
_OK = Status(StatusCode.OK)


def error_type(error: BaseException) -> str:
    """Low-cardinality error id: the fully qualified exception type, as `exception.type` has it."""
    # An `event: error` inside a stream the server opened with 200 (Anthropic) surfaces as the SDK's
    # generic status error; the provider's own error type (`overloaded_error`) says what happened.
    api_type, status = getattr(error, "type", None), getattr(error, "status_code", None)
    if isinstance(api_type, str) and api_type and isinstance(status, int) and 200 <= status < 300:
        return cap(api_type)
    # AWS SDK errors (botocore ClientError, EventStreamError) carry the service's own error code
    # (`ThrottlingException`, `modelStreamErrorException`): the spec prefers it to a class name.
    aws_code = _aws_error(error).get("Code")
    if isinstance(aws_code, str) and aws_code:
        return cap(aws_code)
    cls = type(error)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    # The public name users know: the module path up to its first private part, so
    # openai._exceptions.RateLimitError -> openai.RateLimitError, while a namespace package keeps its
    # public modules: google.genai.errors.ClientError.
    public = []
    for part in module.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return f"{'.'.join(public) or module}.{cls.__qualname__}"


class Telemetry:
    """Spans, metrics and events for invocations, following the GenAI semantic conventions.

    It is the `Recorder` (core/invocation.py) of the SDK calls' invocations: `Invocation.finish/fail`
    call `end`.
    """

    def __init__(
        self,
        settings: Settings,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        logger_provider: LoggerProvider | None = None,
    ) -> None:
        from opentelemetry import metrics

        self.settings = settings
        self.capture_content = settings.capture_content is not settings.capture_content.NO_CONTENT
        self.content_on_span = settings.capture_content.on_span
        self.tracer = trace.get_tracer(
            _SCOPE, __version__, tracer_provider=tracer_provider, schema_url=semconv.SCHEMA_URL
        )
        from llmlens.core.span_ids import adopt  # (imports the SDK's id generators: not at module import)

        adopt(self.tracer)  # ids that the application's random.seed() cannot repeat (core/span_ids.py)
        meter = metrics.get_meter(
            _SCOPE, __version__, meter_provider=meter_provider, schema_url=semconv.SCHEMA_URL
        )
        self.meter = meter  # the proxy's server-side instruments live next to these (server_telemetry.py)
        # The metric names OTEL_SEMCONV_STABILITY_OPT_IN asks for, chosen here once: each kind of call
        # gets its recorders with its attribute sets (MetricAttributes), so no call asks again. Every
        # histogram goes through FastHistogram (core/histograms.py): the exported points are identical,
        # at a fraction of the SDK's per-record cost, but only the first value of each attribute set
        # carries an exemplar. Spans are linked from the local store instead.
        names = settings.semconv_opt_in
        self.metrics = ClientMetrics(meter, self.histogram, names)
        # The usage attributes: gen_ai.usage.cache_creation.input_tokens under the default names, its
        # newer name gen_ai.usage.cache_write.input_tokens under the newest, both under /dup.
        self._usage_attributes = _usage_attributes(names)
        self._usage_keys: dict[str, list[str]] = {}
        for name, key in self._usage_attributes:
            self._usage_keys.setdefault(name, []).append(key)
        # (operation, provider, models, server, error type) -> the metric attribute sets of such calls
        self._metric_attributes: dict[tuple[Any, ...], MetricAttributes] = {}
        self.model_labels = ModelLabels(settings.metrics_max_models)  # the cardinality guard
        # Cost (llmlens.pricing): PriceBook starts loading the price data in a background thread.
        self.prices = pricing.PriceBook(settings.prices) if settings.pricing else None
        self.costs = pricing.CostMeter.for_meter(meter) if settings.pricing else None
        self.event_logger = None
        if settings.event_enabled:
            from opentelemetry._logs import get_logger

            self.event_logger = get_logger(
                _SCOPE, __version__, logger_provider=logger_provider, schema_url=semconv.SCHEMA_URL
            )
        # The proxy's ServerTelemetry built on this one (core/server_telemetry.py), made on first use.
        self.server: object | None = None

    def histogram(self, name: str, unit: str, description: str, buckets: tuple[float, ...]) -> FastHistogram:
        """A histogram on this Telemetry's meter, with `buckets` as its advisory boundaries."""
        histogram = self.meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
        )
        return FastHistogram(histogram)

    # --- lifecycle ------------------------------------------------------------------------------

    def start_invocation(
        self, *identity: Any, request_attributes: dict[str, Any] | None = None, **fields: Any
    ) -> Invocation:
        """`Invocation(self, *identity, **fields)` with its span started (not yet current: see `activate`).

        Example:
            >>> inv = telemetry.start_invocation("chat", "openai", "gpt-4o-mini", "api.openai.com", 443)
        """
        inv = Invocation(self, *identity, **fields)
        if request_attributes:
            inv.request_attributes = request_attributes
        self.start(inv)
        return inv

    def start(self, inv: Invocation, kind: SpanKind = _CLIENT, context: Any = None) -> None:
        """Start the span: CLIENT for an SDK call, SERVER (with the caller's context) for a proxy."""
        attributes = inv.request_attributes
        # Names a caller chooses (a proxy's client sends any model name) are capped once, here, so the
        # span name, attributes, metric attributes and store rows all get the capped value.
        operation, provider, model = inv.operation, inv.provider, inv.request_model
        if (
            (type(model) is str and len(model) > IDENTIFIER_MAX)
            or (type(operation) is str and len(operation) > IDENTIFIER_MAX)
            or (type(provider) is str and len(provider) > IDENTIFIER_MAX)
        ):
            inv.operation, inv.provider, inv.request_model = cap(operation), cap(provider), cap(model)
        attributes[semconv.OPERATION_NAME] = inv.operation
        attributes[semconv.PROVIDER_NAME] = inv.provider
        if inv.request_model:
            attributes[semconv.REQUEST_MODEL] = inv.request_model
        _add_server(attributes, inv)
        if inv.stream:
            attributes[semconv.REQUEST_STREAM] = True
        if self.content_on_span:
            _add_request_content(inv, attributes)
        proxy = proxy_request() if kind is _CLIENT else None
        if proxy is not None:
            # The upstream leg of a proxied request: the proxy's SERVER span is the record of it.
            inv.upstream = True
            attributes[semconv.LLMLENS_UPSTREAM] = True
            proxy.add_upstream(inv)  # so the SERVER span can name the upstream provider and model
        name = f"{inv.operation} {inv.request_model}" if inv.request_model else inv.operation
        if not inv.start_ns:  # (a proxy request has its own: when it arrived)
            inv.start_ns = _time_ns()
            inv.start_perf = _perf_ns()
        inv.span = span = self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=inv.start_ns
        )
        IN_FLIGHT[id(span)] = inv  # (where the store's writer reads a running stream's progress)
        if _PROFILING.on:  # an arm is live or sampling is on (llmlens.profiling); else one read
            _PROFILING.begin(inv)

    def activate(self, inv: Invocation) -> None:
        """Make the span current so HTTP client spans made during the call become its children, and
        mark the call in flight so an instrumented SDK called from inside it makes no second span."""
        ctx = trace.set_span_in_context(inv.span)  # type: ignore[arg-type]
        inv.context_token = otel_context.attach(otel_context.set_value(ACTIVE_INVOCATION_KEY, inv, ctx))

    def deactivate(self, inv: Invocation) -> None:
        token = inv.context_token
        if token is not None:
            inv.context_token = None
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:  # detached from another context (e.g. a generator finalised elsewhere)
                _log.debug("llmlens: context detach failed", exc_info=True)

    def end(
        self, inv: Invocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None:
        """End the span and record metrics and the event. Called once, by Invocation.finish/fail."""
        end_guarded(self._end, inv, outcome, error, end_perf)

    def _end(
        self, inv: Invocation, outcome: str | None, error: BaseException | None, end_perf: int | None
    ) -> None:
        end_perf, end_ns = end_times(inv, end_perf)
        attributes = self.response_attributes(inv, outcome, error)
        err_type = attributes.get(semconv.ERROR_TYPE)
        if self.prices is not None:
            inv.cost = self.price(inv, err_type is not None)
            add_cost_attributes(attributes, inv.cost)
        span = close_span(inv, attributes, error, outcome, None, end_ns)
        if not inv.upstream:  # a proxied request is measured once, on the server side
            self._record_metrics(inv, err_type, end_perf, span)
        if self.event_logger is not None:
            self.emit_event(inv, {**inv.request_attributes, **attributes}, trace.set_span_in_context(span))

    # --- what the server side shares (core/server_telemetry.py) -----------------------------------

    def response_attributes(
        self, inv: Invocation, outcome: str | None, error: BaseException | None
    ) -> dict[str, Any]:
        """The span attributes of an ended invocation (its request's were set at start).

        Checks the usage on the way: a count that is not one is cleared and named in
        `inv.invalid_usage` (llmlens.usage.invalid); over-long names are capped on the invocation.
        """
        extras = inv.response_attributes
        attributes: dict[str, Any] = dict(extras) if extras else {}
        # What the response names is capped like the request's names (core/limits.py).
        value = inv.response_id
        if value:
            if type(value) is str and len(value) > IDENTIFIER_MAX:
                value = inv.response_id = cap(value)
            attributes[semconv.RESPONSE_ID] = value
        value = inv.response_model
        if value:
            if type(value) is str and len(value) > IDENTIFIER_MAX:
                value = inv.response_model = cap(value)
            attributes[semconv.RESPONSE_MODEL] = value
        reasons = inv.finish_reasons
        if inv.stream and outcome not in (semconv.OUTCOME_COMPLETED, None):
            # A reason was expected but never came: the spec puts `error` in that slot.
            reasons = [r or semconv.FINISH_ERROR for r in reasons] if reasons else [semconv.FINISH_ERROR]
        if reasons:
            if len(reasons) != 1 or type(reasons[0]) is not str or len(reasons[0]) > IDENTIFIER_MAX:
                reasons = cap_all(reasons)
            attributes[semconv.RESPONSE_FINISH_REASONS] = reasons
        if inv.service_tier is not None:
            key = _SERVICE_TIER_KEYS.get(inv.api)  # type: ignore[arg-type]
            if key is not None:
                attributes[key] = inv.service_tier
        # Usage: a count that is not one (negative, not a whole number, absurdly large) is dropped here,
        # for every provider and the proxy, before metrics, pricing and the store see it, and named in
        # llmlens.usage.invalid. The check for a good count is two comparisons.
        most = TOKENS_MAX
        for name, key in self._usage_attributes:
            tokens = getattr(inv, name)
            if tokens is not None:
                if type(tokens) is not int or not 0 <= tokens <= most:
                    tokens = _checked_usage(inv, name)
                if tokens is not None:
                    attributes[key] = tokens
        if inv.invalid_usage:
            keys = self._usage_keys
            attributes[semconv.LLMLENS_USAGE_INVALID] = [
                key for name in inv.invalid_usage for key in keys[name]
            ]
        if inv.dimension_count is not None:
            attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = inv.dimension_count
        if inv.tool_call_count:
            attributes[semconv.LLMLENS_TOOL_CALL_COUNT] = inv.tool_call_count
        if inv.stream:
            times = inv.chunk_times
            if times:
                attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = (times[0] - inv.start_perf) / 1e9
            attributes[semconv.LLMLENS_STREAM_CHUNKS] = len(times)
            if outcome:
                attributes[semconv.LLMLENS_STREAM_OUTCOME] = outcome
        if error is not None:
            attributes[semconv.ERROR_TYPE] = error_type(error)
            status = _status_code(error)
            if status is not None:
                attributes[semconv.HTTP_STATUS_CODE] = status
        if self.content_on_span and inv.output_messages is not None:
            attributes[semconv.OUTPUT_MESSAGES] = _json(inv.output_messages)
        return attributes

    def price(
        self, inv: Invocation, failed: bool, provider: str | None = None, model: str | None = None
    ) -> CallCost | None:
        """What the invocation costs (None with pricing off, or for a failed call that returned nothing).

        `provider` and `model`: price it as a call to these (a proxied request, by its upstream) instead
        of its own provider, response model and request model.
        """
        prices = self.prices
        if prices is None:
            return None
        return prices.price_call(
            provider or inv.provider,
            inv.response_model if model is None else model,
            inv.request_model if model is None else model,
            inv,
            inv.service_tier,
            usage_invalid=bool(inv.invalid_usage),
            failed=failed and not inv.chunk_times,
        )

    def metric_attributes(self, inv: Invocation, err_type: str | None) -> MetricAttributes:
        """The metric attribute sets of calls like this one, built once per kind of call."""
        identity = (
            inv.operation, inv.provider, inv.request_model, inv.response_model, inv.server_address,
            inv.server_port, err_type,
        )  # fmt: skip
        try:
            found = self._metric_attributes.get(identity)
        except TypeError:  # an unhashable model name (a proxied body of the wrong type): not kept
            return MetricAttributes(inv, err_type, self.model_labels, self.metrics)
        if found is None:
            found = MetricAttributes(inv, err_type, self.model_labels, self.metrics)
            if len(self._metric_attributes) < _MAX_ATTRIBUTE_SETS:  # past that, built per call
                self._metric_attributes[identity] = found
        return found

    def record_usage(self, inv: Invocation, sets: MetricAttributes, span: Any) -> None:
        """The token metrics (core/client_metrics.py) and the cost metrics (`inv.cost`) of one call or
        proxied request."""
        for record in sets.token_recorders:
            record(inv, sets, span)
        cost = inv.cost
        if cost is not None and self.costs is not None:  # USD, or why the call has no cost
            self.costs.add(cost, sets.base, sets.key)

    def emit_event(self, inv: Invocation, span_attributes: dict[str, Any], ctx: Any) -> None:
        """The `gen_ai.client.inference.operation.details` event (call only with an event logger)."""
        attributes = {k: v for k, v in span_attributes.items() if k not in _STRINGIFIED_CONTENT}
        if self.capture_content:
            if inv.input_messages is not None:
                attributes[semconv.INPUT_MESSAGES] = inv.input_messages
            if inv.system_instructions is not None:
                attributes[semconv.SYSTEM_INSTRUCTIONS] = inv.system_instructions
            if inv.tool_definitions is not None:
                attributes[semconv.TOOL_DEFINITIONS] = inv.tool_definitions
            if inv.output_messages is not None:
                attributes[semconv.OUTPUT_MESSAGES] = inv.output_messages
        for key in (semconv.OPERATION_NAME, semconv.PROVIDER_NAME, semconv.REQUEST_MODEL):
            value = getattr(inv, _INV_FIELD[key])
            if value:
                attributes[key] = value
        assert self.event_logger is not None
        self.event_logger.emit(
            event_name=semconv.EVENT_OPERATION_DETAILS,
            attributes=attributes,
            context=ctx,
            timestamp=_time_ns(),
        )

    # --- pieces ---------------------------------------------------------------------------------

    def _record_metrics(self, inv: Invocation, err_type: str | None, end_perf: int, span: Any) -> None:
        # The attribute sets (and their keys) of calls like this one were built once: a value costs a
        # dict lookup and a bucket update (FastHistogram's keyed forms), and the span's context, which
        # only a first value of an attribute set needs (exemplars), is built only then.
        sets = self.metric_attributes(inv, err_type)
        for record in sets.timing_recorders:
            record(inv, sets, end_perf, span)
        self.record_usage(inv, sets, span)


_MAX_ATTRIBUTE_SETS = 1000


class MetricAttributes:
    """The attribute sets one kind of call records its metrics with, each with its key for FastHistogram:
    `base` (duration of a call without error, time to first chunk, time per chunk, token histograms,
    cost), `duration` (base + error.type, when there was one), the two gen_ai.token.type sets of
    gen_ai.client.token.usage; the totals of llmlens.usage.tokens and of the usage counters' `unknown`
    modality for `base`, and the recorders of such calls (core/client_metrics.py). Never rebound once
    built."""

    __slots__ = (
        "base", "duration", "duration_key", "failed", "input", "input_key", "key", "output", "output_key",
        "timing_recorders", "token_recorders", "type_totals", "unknown_totals",
    )  # fmt: skip

    def __init__(
        self, inv: Invocation, err_type: str | None, models: ModelLabels, metrics: ClientMetrics
    ) -> None:
        base: dict[str, Any] = {semconv.OPERATION_NAME: inv.operation, semconv.PROVIDER_NAME: inv.provider}
        request_model, response_model = models(inv.request_model), models(inv.response_model)
        if request_model:
            base[semconv.REQUEST_MODEL] = request_model
        if response_model:
            base[semconv.RESPONSE_MODEL] = response_model
        _add_server(base, inv)
        self.base = base
        self.key = tuple(base.items())
        self.duration = base if err_type is None else {**base, semconv.ERROR_TYPE: err_type}
        self.duration_key = tuple(self.duration.items())
        self.input = {**base, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_INPUT}
        self.input_key = tuple(self.input.items())
        self.output = {**base, semconv.TOKEN_TYPE: semconv.TOKEN_TYPE_OUTPUT}
        self.output_key = tuple(self.output.items())
        self.type_totals, self.unknown_totals = metrics.totals(self.key)
        self.failed = err_type is not None
        self.timing_recorders, self.token_recorders = metrics.recorders(inv.operation)


# --- the end of a span, for client and server ---------------------------------------------------------


def end_times(inv: Invocation, end_perf: int | None) -> tuple[int, int | None]:
    """(end perf_counter_ns, the span's end time or None for now): an exit that happened earlier than
    now (an abandoned stream) keeps its time."""
    if end_perf is None:
        return _perf_ns(), None
    return end_perf, inv.start_ns + (end_perf - inv.start_perf)


def end_guarded(
    end: Callable[[Invocation, str | None, BaseException | None, int | None], None],
    inv: Invocation,
    outcome: str | None,
    error: BaseException | None,
    end_perf: int | None,
) -> None:
    """Run `end`; if it fails, telemetry must not break the caller: log it and end the span anyway.

    The invocation leaves `IN_FLIGHT` (core/in_flight.py) first.
    A profiled invocation's profile stops first (so it covers the whole operation) and is handed over
    once the span has ended (so the store writes the request row before its profile)."""
    IN_FLIGHT.pop(id(inv.span), None)
    capture = inv.profile
    if capture is not None:
        inv.profile = None
        _PROFILING.stop(capture)
    try:
        end(inv, outcome, error, end_perf)
    except Exception:
        _log.debug("llmlens: failed to end invocation", exc_info=True)
        span = inv.span
        if span is not None and span.is_recording():
            span.end()
    if capture is not None:
        _PROFILING.hand_over(capture, inv)


def close_span(
    inv: Invocation,
    attributes: dict[str, Any],
    error: BaseException | None,
    outcome: str | None,
    failure: str | None = None,
    end_ns: int | None = None,
) -> Span:
    """Set the end attributes and the status, and end the span.

    ERROR with the exception, or with `failure` (what a failure that raised nothing said); OK for a
    completed call; closed, abandoned and cancelled streams (and a client that went away) stay UNSET:
    the call did not fail, it was cut short.
    """
    span = inv.span
    assert span is not None
    if span.is_recording():
        set_end_attributes(span, attributes)
        if error is not None:
            span.record_exception(error, _exception_attributes(error))
            span.set_status(Status(StatusCode.ERROR, _describe(error)))
        elif failure is not None:
            span.set_status(Status(StatusCode.ERROR, redact(failure)))
        elif outcome is None or outcome == semconv.OUTCOME_COMPLETED:
            span.set_status(_OK)
    span.end(end_time=end_ns)
    return span


def add_cost_attributes(attributes: dict[str, Any], cost: CallCost | None) -> None:
    """The `gen_ai.usage.cost.*` attributes of a priced call; for an unpriced one, why it has none
    (`llmlens.cost.unpriced_reason`, as on the `llmlens.cost.unpriced` metric), so that a span without a
    cost says why wherever it is read."""
    if cost is None:
        return
    if cost.amount is not None:
        attributes[semconv.USAGE_COST_AMOUNT] = cost.amount
        attributes[semconv.USAGE_COST_CURRENCY] = cost.currency
        attributes[semconv.USAGE_COST_SOURCE] = cost.source
        if cost.price_source:
            attributes[semconv.LLMLENS_COST_PRICE_SOURCE] = cost.price_source
    elif cost.unpriced_reason:
        attributes[semconv.LLMLENS_COST_UNPRICED_REASON] = cost.unpriced_reason


def _usage_attributes(names: SemconvNames) -> tuple[tuple[str, str], ...]:
    """(Invocation usage field, span attribute) pairs under these names; a field may have two."""
    cache_write = (
        *([semconv.USAGE_CACHE_CREATION_INPUT_TOKENS] if names.old else []),
        *([semconv.USAGE_CACHE_WRITE_INPUT_TOKENS] if names.new else []),
    )
    return (
        ("input_tokens", semconv.USAGE_INPUT_TOKENS),
        ("output_tokens", semconv.USAGE_OUTPUT_TOKENS),
        ("cache_read_tokens", semconv.USAGE_CACHE_READ_INPUT_TOKENS),
        *(("cache_creation_tokens", key) for key in cache_write),
        ("reasoning_tokens", semconv.USAGE_REASONING_OUTPUT_TOKENS),
    )


# Invocation.api -> the attribute its service tier takes.
_SERVICE_TIER_KEYS = {
    "openai": semconv.OPENAI_RESPONSE_SERVICE_TIER,
    "anthropic": semconv.ANTHROPIC_RESPONSE_SERVICE_TIER,
}


def _checked_usage(inv: Invocation, name: str) -> int | None:
    """A usage field that failed the quick check: the count it stands for (12.0 -> 12), or None after
    clearing it and naming it in `inv.invalid_usage`."""
    value = valid_token_count(getattr(inv, name))
    setattr(inv, name, value)
    if value is None:
        inv.mark_invalid_usage(name)
    return value


def _add_server(attributes: dict[str, Any], inv: Invocation) -> None:
    if inv.server_address:
        attributes[semconv.SERVER_ADDRESS] = inv.server_address
        if inv.server_port:
            attributes[semconv.SERVER_PORT] = inv.server_port


_INV_FIELD = {
    semconv.OPERATION_NAME: "operation",
    semconv.PROVIDER_NAME: "provider",
    semconv.REQUEST_MODEL: "request_model",
}
_STRINGIFIED_CONTENT = frozenset(
    (semconv.INPUT_MESSAGES, semconv.OUTPUT_MESSAGES, semconv.SYSTEM_INSTRUCTIONS, semconv.TOOL_DEFINITIONS)
)


def _add_request_content(inv: Invocation, attributes: dict[str, Any]) -> None:
    if inv.input_messages is not None:
        attributes[semconv.INPUT_MESSAGES] = _json(inv.input_messages)
    if inv.system_instructions is not None:
        attributes[semconv.SYSTEM_INSTRUCTIONS] = _json(inv.system_instructions)
    if inv.tool_definitions is not None:
        attributes[semconv.TOOL_DEFINITIONS] = _json(inv.tool_definitions)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _aws_error(error: BaseException) -> dict[str, Any]:
    """`error.response["Error"]` of a botocore ClientError (a plain dict there), else {}."""
    response = getattr(error, "response", None)
    found = response.get("Error") if isinstance(response, dict) else None
    return found if isinstance(found, dict) else {}


def _status_code(error: BaseException) -> int | None:
    code = getattr(error, "status_code", None)
    if not isinstance(code, int):  # google.genai.errors.APIError: the HTTP response it came with
        code = getattr(getattr(error, "response", None), "status_code", None)
    if not isinstance(code, int):  # botocore ClientError: a dict (no status for an error inside a stream)
        response = getattr(error, "response", None)
        metadata = response.get("ResponseMetadata") if isinstance(response, dict) else None
        code = metadata.get("HTTPStatusCode") if isinstance(metadata, dict) else None
    # Only a real HTTP status: ollama.ResponseError raised for an error line inside a stream has -1.
    return code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 else None


def _exception_attributes(error: BaseException) -> dict[str, str]:
    """The message and stack trace of the span's exception event, without the secrets they may hold (an
    SDK error quoting a URL with `?key=`): the SDK's own are replaced by these."""
    import traceback

    stacktrace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    # An SDK error's message can hold the whole error body the upstream sent (a megabyte, if it likes):
    # both are capped, the trace keeping its end, where the failing call and the message are.
    message = cap(redact(str(error)), EXCEPTION_MESSAGE_MAX)
    stacktrace = redact(stacktrace)
    if len(stacktrace) > STACKTRACE_MAX:
        stacktrace = "..." + stacktrace[-(STACKTRACE_MAX - 3) :]
    return {"exception.message": message, "exception.stacktrace": stacktrace}


def _describe(error: BaseException) -> str:
    text = redact(str(error)) or type(error).__name__
    return text if len(text) <= 500 else text[:497] + "..."
