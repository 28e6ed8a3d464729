"""The client metrics of one `Telemetry`, under the names `OTEL_SEMCONV_STABILITY_OPT_IN` chose.

The default names: `gen_ai.client.operation.duration`, `gen_ai.client.token.usage` (input and
output), `gen_ai.client.operation.time_to_first_chunk` / `time_per_output_chunk`, and llmlens' own
`llmlens.usage.tokens` counter, which carries the cache and reasoning tokens no metric of those names
does. The newest names (`gen_ai_latest_experimental`): inference operations get
`gen_ai.client.inference.duration`, `...time_to_first_chunk`, `...time_per_output_chunk`, the
`gen_ai.client.inference.usage.*` counters by `gen_ai.token.modality` (every inference, a failed one adds
0) and the `gen_ai.client.inference.operation.{input,output}_tokens` histograms (successful operations
only); embeddings get `gen_ai.client.embeddings.duration` and `...operation.input_tokens`; what is
neither (count_tokens) stays on `gen_ai.client.operation.duration`. `/dup`: both sets.

The choice is made once: `ClientMetrics.recorders(operation)` gives the recorders of an operation, which
`MetricAttributes` (core/telemetry.py) keeps with the attribute sets of that kind of call, so a call runs
the recorders it was given and never asks which names are on.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llmlens import semconv
from llmlens.core.invocation import USAGE_FIELDS
from llmlens.observed import OVERFLOW, Key
from llmlens.settings import SemconvNames

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

    from llmlens.core.histograms import FastHistogram
    from llmlens.core.invocation import Invocation

# (inv, sets, end_perf, span): a duration and stream recorder; (inv, sets, span): a token recorder.
TimingRecorder = Callable[["Invocation", Any, int, Any], None]
TokenRecorder = Callable[["Invocation", Any, Any], None]
HistogramFactory = Callable[[str, str, str, tuple[float, ...]], "FastHistogram"]

_SERIES_LIMIT = 2000  # attribute sets per counter, the SDK's default cardinality limit
# Operations that are not an inference (nothing generated or billed): their duration keeps the
# operation.duration name under every setting.
_NOT_INFERENCE = frozenset((semconv.OP_COUNT_TOKENS,))

# The usage counters of the newest names, in Invocation usage-field order (core/invocation.py).
USAGE_COUNTERS = (
    (semconv.METRIC_INFERENCE_USAGE_INPUT_TOKENS, "Input tokens used, cached ones included"),
    (semconv.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS, "Output tokens used, reasoning ones included"),
    (semconv.METRIC_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS, "Input tokens read from a provider's cache"),
    (semconv.METRIC_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS, "Input tokens written to a provider's cache"),
    (semconv.METRIC_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS, "Output tokens spent on reasoning"),
)
# llmlens.usage.tokens' gen_ai.token.type values, in the same order.
TOKEN_TYPES = (
    semconv.TOKEN_TYPE_INPUT,
    semconv.TOKEN_TYPE_OUTPUT,
    semconv.TOKEN_TYPE_CACHE_READ,
    semconv.TOKEN_TYPE_CACHE_WRITE,
    semconv.TOKEN_TYPE_REASONING,
)
# For each usage counter, in the same order: the per-modality attributes a provider may set (Gemini),
# modality -> attribute name.
_MODALITY_ATTRIBUTES: tuple[dict[str, str], ...] = (
    semconv.USAGE_MODALITY_INPUT_TOKENS,
    semconv.USAGE_MODALITY_OUTPUT_TOKENS,
    semconv.USAGE_MODALITY_CACHE_READ_INPUT_TOKENS,
    {},
    {},
)
_UNKNOWN_MODALITY = (semconv.TOKEN_MODALITY, semconv.TOKEN_MODALITY_UNKNOWN)
_MODALITY_KEYS = frozenset(key for names in _MODALITY_ATTRIBUTES for key in names.values())


def _usage(inv: Invocation) -> tuple[int | None, ...]:
    return (inv.input_tokens, inv.output_tokens, inv.cache_read_tokens, inv.cache_creation_tokens,
            inv.reasoning_tokens)  # fmt: skip


class UsageTotals:
    """Five monotonic token sums per attribute set (one per Invocation usage field), reported at
    collection by observable counters: five of them (the newest names), or one with a `gen_ai.token.type`
    attribute (llmlens.usage.tokens).

    The SDK's synchronous `Counter.add` costs ~8 µs a value. Here each attribute set has a list of five
    totals, looked up once per kind of call (`slot`, kept by MetricAttributes), so a call's counts cost one
    lock and five list updates. A total stays None (no series) until a count is added to it. One per
    meter and counter names (`for_meter`): an observable counter registered twice on one meter keeps its
    first callbacks.

    Example:
        >>> counter = ("llmlens.usage.tokens", "{token}", "Tokens by type")
        >>> totals = UsageTotals.for_meter(meter, [counter], "gen_ai.token.type")
        >>> totals.add(totals.slot((("gen_ai.operation.name", "chat"),)), (12, 5, None, None, None))
    """

    _by_meter: Any = None  # WeakKeyDictionary[Meter, dict[names, UsageTotals]], made on first use

    def __init__(
        self, meter: Meter, counters: Sequence[tuple[str, str, str]], type_attribute: str | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Key, list[int | None]] = {}
        if type_attribute is not None:  # one counter; the index names the token type
            ((name, unit, description),) = counters
            meter.create_observable_counter(
                name, callbacks=[self._typed_observer(type_attribute)], unit=unit, description=description
            )
            return
        for index, (name, unit, description) in enumerate(counters):
            meter.create_observable_counter(
                name, callbacks=[self._observer(index)], unit=unit, description=description
            )

    @classmethod
    def for_meter(
        cls, meter: Meter, counters: Sequence[tuple[str, str, str]], type_attribute: str | None = None
    ) -> UsageTotals:
        """The totals of these counters on `meter`, made once per meter."""
        if cls._by_meter is None:
            cls._by_meter = weakref.WeakKeyDictionary()
        names = tuple(name for name, _, _ in counters)
        try:
            found: dict[tuple[str, ...], UsageTotals] = cls._by_meter.setdefault(meter, {})
        except TypeError:  # a meter that cannot be weakly referenced
            return cls(meter, counters, type_attribute)
        totals = found.get(names)
        if totals is None:
            totals = found[names] = cls(meter, counters, type_attribute)
        return totals

    def slot(self, key: Key) -> list[int | None]:
        """The five totals of the attribute set `key` (`tuple(attributes.items())`); past the cardinality
        limit, those of the `otel.metric.overflow` set, as the SDK does."""
        found = self._slots.get(key)
        if found is None:
            with self._lock:
                found = self._slots.get(key)
                if found is None:
                    if len(self._slots) >= _SERIES_LIMIT:
                        key = OVERFLOW
                    found = self._slots.setdefault(key, [None] * len(USAGE_FIELDS))
        return found

    def add(self, slot: list[int | None], counts: tuple[int | None, ...]) -> None:
        """Add each count that is not None to its total."""
        with self._lock:
            for index, count in enumerate(counts):
                if count is not None:
                    total = slot[index]
                    slot[index] = count if total is None else total + count

    def _items(self) -> list[tuple[Key, list[int | None]]]:
        with self._lock:
            return [(key, list(slot)) for key, slot in self._slots.items()]

    def _observer(self, index: int) -> Callable[[CallbackOptions], list[Observation]]:
        def observe(options: CallbackOptions) -> list[Observation]:
            from opentelemetry.metrics import Observation

            return [Observation(s[index], dict(key)) for key, s in self._items() if s[index] is not None]

        return observe

    def _typed_observer(self, attribute: str) -> Callable[[CallbackOptions], list[Observation]]:
        def observe(options: CallbackOptions) -> list[Observation]:
            from opentelemetry.metrics import Observation

            return [
                Observation(total, {**dict(key), attribute: kind})
                for key, s in self._items()
                for kind, total in zip(TOKEN_TYPES, s, strict=True)
                if total is not None
            ]

        return observe


class Timings:
    """Records a call's duration and, for a stream that did not fail, its chunk timings."""

    __slots__ = ("duration", "first_chunk", "per_chunk")

    def __init__(
        self, duration: FastHistogram, first_chunk: FastHistogram | None, per_chunk: FastHistogram | None
    ) -> None:
        self.duration, self.first_chunk, self.per_chunk = duration, first_chunk, per_chunk

    def __call__(self, inv: Invocation, sets: Any, end_perf: int, span: Any) -> None:
        self.duration.record_keyed((end_perf - inv.start_perf) / 1e9, sets.duration_key, sets.duration, span)
        times = inv.chunk_times
        if times and inv.stream and not sets.failed and self.first_chunk is not None:
            self.first_chunk.record_keyed((times[0] - inv.start_perf) / 1e9, sets.key, sets.base, span)
            self.per_chunk.record_intervals_keyed(times, sets.key, sets.base, span)  # type: ignore[union-attr]


class ClientMetrics:
    """The instruments of one Telemetry, made once for `names`, and the recorders of each operation."""

    def __init__(self, meter: Meter, histogram: HistogramFactory, names: SemconvNames) -> None:
        self.names = names
        duration_buckets, token_buckets = semconv.DURATION_BUCKETS, semconv.TOKEN_BUCKETS
        # operation.duration under every setting: what is neither inference nor embeddings keeps it.
        operation = Timings(
            histogram(semconv.METRIC_OPERATION_DURATION, "s", "GenAI operation duration", duration_buckets),
            None,
            None,
        )
        timings: dict[str, tuple[TimingRecorder, ...]] = {"inference": (), "embeddings": (), "other": ()}
        tokens: dict[str, tuple[TokenRecorder, ...]] = {"inference": (), "embeddings": (), "other": ()}
        if names.old:
            operation.first_chunk = histogram(
                semconv.METRIC_TIME_TO_FIRST_CHUNK, "s",
                "Time from the request to the first chunk of a streamed response", duration_buckets,
            )  # fmt: skip
            operation.per_chunk = histogram(
                semconv.METRIC_TIME_PER_OUTPUT_CHUNK, "s",
                "Time between consecutive chunks of a streamed response", duration_buckets,
            )  # fmt: skip
            self.token_usage = histogram(
                semconv.METRIC_TOKEN_USAGE, "{token}", "Number of input and output tokens used", token_buckets
            )
            self.tokens_by_type = UsageTotals.for_meter(meter, [(
                semconv.METRIC_LLMLENS_USAGE_TOKENS, "{token}",
                "Tokens used, by gen_ai.token.type: input (cached included), output (reasoning included), "
                "cache_read, cache_write, reasoning",
            )], semconv.TOKEN_TYPE)  # fmt: skip
            for kind in timings:
                timings[kind] += (operation,)
                tokens[kind] += (self._record_tokens_by_type,)
        else:
            timings["other"] = (operation,)
        if names.new:
            timings["inference"] += (
                Timings(
                    histogram(semconv.METRIC_INFERENCE_DURATION, "s", "GenAI inference operation duration",
                              duration_buckets),
                    histogram(semconv.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK, "s",
                              "Time from the request to the first chunk of a streamed response",
                              duration_buckets),
                    histogram(semconv.METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK, "s",
                              "Time between consecutive chunks of a streamed response", duration_buckets),
                ),
            )  # fmt: skip
            timings["embeddings"] += (
                Timings(
                    histogram(semconv.METRIC_EMBEDDINGS_DURATION, "s", "GenAI embeddings operation duration",
                              duration_buckets),
                    None,
                    None,
                ),
            )  # fmt: skip
            self.usage = UsageTotals.for_meter(
                meter, [(name, "{token}", description) for name, description in USAGE_COUNTERS]
            )
            self.operation_input = histogram(
                semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS, "{token}",
                "Input tokens of one inference operation", token_buckets,
            )  # fmt: skip
            self.operation_output = histogram(
                semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS, "{token}",
                "Output tokens of one inference operation", token_buckets,
            )  # fmt: skip
            self.embeddings_input = histogram(
                semconv.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS, "{token}",
                "Input tokens of one embeddings operation", token_buckets,
            )  # fmt: skip
            tokens["inference"] += (self._record_inference_tokens,)
            tokens["embeddings"] += (self._record_embeddings_tokens,)
        self._timings = timings
        self._tokens = tokens

    def recorders(self, operation: str) -> tuple[tuple[TimingRecorder, ...], tuple[TokenRecorder, ...]]:
        """(duration and stream recorders, token recorders) of an operation's calls."""
        kind = (
            "embeddings" if operation == semconv.OP_EMBEDDINGS
            else "other" if operation in _NOT_INFERENCE
            else "inference"
        )  # fmt: skip
        return self._timings[kind], self._tokens[kind]

    def totals(self, key: Key) -> tuple[list[int | None] | None, list[int | None] | None]:
        """(llmlens.usage.tokens totals, usage counters' `unknown` modality totals) of the attribute set
        `key`; None for the one these names do not emit. For MetricAttributes, once per kind of call."""
        by_type = self.tokens_by_type.slot(key) if self.names.old else None
        unknown = self.usage.slot((*key, _UNKNOWN_MODALITY)) if self.names.new else None
        return by_type, unknown

    # --- token recorders: (inv, sets, span) ------------------------------------------------------

    def _record_tokens_by_type(self, inv: Invocation, sets: Any, span: Any) -> None:
        """gen_ai.client.token.usage (input, output) and llmlens.usage.tokens (every count reported)."""
        counts = _usage(inv)
        if counts[0] is not None:
            self.token_usage.record_keyed(counts[0], sets.input_key, sets.input, span)
        if counts[1] is not None:
            self.token_usage.record_keyed(counts[1], sets.output_key, sets.output, span)
        self.tokens_by_type.add(sets.type_totals, counts)

    def _record_inference_tokens(self, inv: Invocation, sets: Any, span: Any) -> None:
        """The usage counters (every inference: 0 under `unknown` for a count that did not come back) and,
        for a successful operation, the operation histograms."""
        counts = _usage(inv)
        extras = inv.response_attributes
        if extras and not _MODALITY_KEYS.isdisjoint(extras):
            self._add_by_modality(counts, extras, sets)
        else:
            self.usage.add(sets.unknown_totals, tuple(count or 0 for count in counts))
        if not sets.failed:
            if counts[0] is not None:
                self.operation_input.record_keyed(counts[0], sets.key, sets.base, span)
            if counts[1] is not None:
                self.operation_output.record_keyed(counts[1], sets.key, sets.base, span)

    def _record_embeddings_tokens(self, inv: Invocation, sets: Any, span: Any) -> None:
        if not sets.failed and inv.input_tokens is not None:
            self.embeddings_input.record_keyed(inv.input_tokens, sets.key, sets.base, span)

    def _add_by_modality(self, counts: tuple[int | None, ...], extras: dict[str, Any], sets: Any) -> None:
        """The usage counters of a call whose provider split some counts by modality (Gemini): each
        modality's part under its name, what the parts leave of the total under `unknown`."""
        by_modality: dict[str, list[int | None]] = {}
        unknown: list[int | None] = []
        for index, (count, names) in enumerate(zip(counts, _MODALITY_ATTRIBUTES, strict=True)):
            parts = 0
            for modality, name in names.items():
                part = extras.get(name)
                if type(part) is int and part >= 0:
                    by_modality.setdefault(modality, [None] * len(counts))[index] = part
                    parts += part
            rest = (count or 0) - parts
            unknown.append(rest if rest > 0 or not parts else None)
        for modality, parts_of in by_modality.items():
            self.usage.add(self.usage.slot((*sets.key, (semconv.TOKEN_MODALITY, modality))), tuple(parts_of))
        self.usage.add(sets.unknown_totals, tuple(unknown))
