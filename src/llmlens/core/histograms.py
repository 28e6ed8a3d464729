"""A cheaper `Histogram.record` for attribute sets that repeat: `FastHistogram`.

Through the public API every record costs about 8 µs (the SDK copies, validates and hashes the
attributes each time). An LLM call records several values with the same few attribute sets, and a
stream one value per chunk, which alone would be twice our per-chunk budget. With the SDK's own
MeterProvider, `FastHistogram` records the first value of an attribute set through the public API
(which creates the aggregations) and remembers those aggregations; later values are added to them under
their own lock, as the SDK's `aggregate` does. The exported points are identical (tests compare them)
except that values added this way carry no exemplars (the first value of each attribute set does).

Anything unexpected (another metrics SDK, a newer private layout, delta readers that swap
aggregations at collection, exponential histograms, a reader added later) falls back to the public API.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import pairwise
from operator import sub
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram

_log = logging.getLogger(__name__)
_MAX_CACHED_ATTRIBUTE_SETS = 1000
_UNKNOWN = object()
_INF = math.inf


class FastHistogram:
    """Wraps a histogram; `record`, `record_many` and `record_intervals` behave as the public `record`
    called once per value.

    Example:
        >>> tokens = FastHistogram(meter.create_histogram("gen_ai.client.token.usage"))
        >>> tokens.record(42, {"gen_ai.token.type": "input"})
    """

    __slots__ = ("_cache", "_consumer", "_storages", "histogram")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        # attribute items -> SDK aggregations to add to (None: always use the public API)
        self._cache: dict[tuple[Any, ...], list[Any] | None] = {}
        self._storages: Any = _UNKNOWN
        consumer = getattr(histogram, "_measurement_consumer", None)
        self._consumer = consumer if hasattr(consumer, "_reader_storages") else None

    def record(self, value: float, attributes: dict[str, Any], context: Context | None = None) -> None:
        aggregations = self._aggregations(attributes)
        if aggregations is None:
            self.histogram.record(value, attributes, context)
            if self._consumer is not None:
                self._learn(attributes)
            return
        for aggregation in aggregations:
            _add_values(aggregation, (value,))

    def record_many(
        self, values: Sequence[float], attributes: dict[str, Any], context: Context | None
    ) -> None:
        if not values:
            return
        aggregations = self._aggregations(attributes)
        if aggregations is None:
            self.histogram.record(values[0], attributes, context)
            aggregations = self._learn(attributes) if self._consumer is not None else None
            values = values[1:]
            if aggregations is None:
                for value in values:
                    self.histogram.record(value, attributes, context)
                return
            if not values:  # the one value went through the public API
                return
        for aggregation in aggregations:
            _add_values(aggregation, values)

    def record_intervals(
        self, stamps_ns: Sequence[int], attributes: dict[str, Any], context: Context | None
    ) -> None:
        """Record the gaps between consecutive `perf_counter_ns` stamps, in seconds.

        The same points as `record_many([(b - a) / 1e9 for a, b in pairwise(stamps_ns)])`, but the gaps
        stay integers: they are made by a C loop and sorted as ints, and each bucket is counted by one
        bisection against the boundary converted once to nanoseconds, so a 500-chunk stream costs
        about what a 5-chunk one does.
        """
        if len(stamps_ns) < 2:
            return
        aggregations = self._aggregations(attributes)
        if aggregations is None:
            self.record_many([(b - a) / 1e9 for a, b in pairwise(stamps_ns)], attributes, context)
            return
        _add_intervals(aggregations, stamps_ns)

    # --- the keyed forms: for a caller that keeps `key = tuple(attributes.items())` next to each
    # attribute set it reuses (Telemetry), so a value costs one dict lookup and a bucket update. The
    # span stands in for the context the public API takes: that context is built only on the slow
    # path (the first value of an attribute set), which is the only one that reads it.

    def record_keyed(
        self, value: float, key: tuple[Any, ...], attributes: dict[str, Any], span: Any = None
    ) -> None:
        """`record(value, attributes, <span's context>)`, with `key == tuple(attributes.items())`."""
        consumer = self._consumer
        if consumer is not None and consumer._reader_storages is self._storages and 0 <= value < _INF:
            aggregations = self._cached(key)
            if aggregations is not None:
                for aggregation in aggregations:
                    _add_one(aggregation, value)
                return
        self.record(value, attributes, _context(span))

    def record_intervals_keyed(
        self, stamps_ns: Sequence[int], key: tuple[Any, ...], attributes: dict[str, Any], span: Any = None
    ) -> None:
        """`record_intervals(stamps_ns, attributes, <span's context>)`, with `key` as in `record_keyed`."""
        consumer = self._consumer
        if consumer is not None and consumer._reader_storages is self._storages and len(stamps_ns) > 1:
            aggregations = self._cached(key)
            if aggregations is not None:
                _add_intervals(aggregations, stamps_ns)
                return
        self.record_intervals(stamps_ns, attributes, _context(span))

    def _cached(self, key: tuple[Any, ...]) -> list[Any] | None:
        try:
            return self._cache.get(key)
        except TypeError:  # unhashable attribute values (lists): public API
            return None

    def _aggregations(self, attributes: dict[str, Any]) -> list[Any] | None:
        consumer = self._consumer
        if consumer is None:  # not the SDK's histogram (a no-op meter, another SDK): public API only
            return None
        storages = consumer._reader_storages
        if storages is not self._storages:  # readers changed (or first use): forget what we knew
            self._cache.clear()
            self._storages = storages
            return None
        return self._cached(tuple(attributes.items()))

    def _learn(self, attributes: dict[str, Any]) -> list[Any] | None:
        """After a public record of `attributes`, find (and cache) the aggregations it went to."""
        try:
            key = tuple(attributes.items())
            if key in self._cache:  # learnt already (None: the public API, for good): no second probe
                return self._cache[key]
        except TypeError:
            return None
        try:
            found = _explicit_bucket_aggregations(self.histogram, attributes)
        except Exception:  # the SDK's private layout changed: stay correct, just slower
            _log.debug("llmlens: fast histogram path unavailable", exc_info=True)
            found = None
        if len(self._cache) < _MAX_CACHED_ATTRIBUTE_SETS:
            self._cache[key] = found
        return found


def _context(span: Any) -> Context | None:
    return None if span is None else trace.set_span_in_context(span)


def _add_intervals(aggregations: list[Any], stamps_ns: Sequence[int]) -> None:
    """The gaps between consecutive stamps (at least two), in seconds, into the aggregations."""
    gaps = list(map(sub, stamps_ns[1:], stamps_ns))
    gaps.sort()
    if gaps[0] < 0:  # not monotonic (never from perf_counter_ns): the general path drops negatives
        for aggregation in aggregations:
            _add_values(aggregation, [gap / 1e9 for gap in gaps])
        return
    total = (stamps_ns[-1] - stamps_ns[0]) / 1e9
    for aggregation in aggregations:
        _add_sorted_ns(aggregation, gaps, total)


def _explicit_bucket_aggregations(histogram: Any, attributes: dict[str, Any]) -> list[Any] | None:
    """The SDK aggregations a public record of `attributes` went into, or None when unsure."""
    from opentelemetry.sdk.metrics._internal import aggregation as sdk_aggregation
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    if not histogram._is_enabled():
        return None
    found = []
    for storage in histogram._measurement_consumer._reader_storages.values():
        for match in storage._get_or_init_view_instrument_match(histogram):
            # (1.45.2 on: delta readers swap aggregations at collection; before, none did and the
            # attribute does not exist)
            if getattr(match, "_reset_on_collect", False):
                return None  # collection swaps aggregations under us
            keys = match._view._attribute_keys
            attrs = attributes if keys is None else {k: v for k, v in attributes.items() if k in keys}
            aggregation = match._attributes_aggregation.get(_hash_attributes(attrs))
            if type(aggregation) is sdk_aggregation._DropAggregation:
                continue
            if type(aggregation) is not sdk_aggregation._ExplicitBucketHistogramAggregation:
                return None  # overflow, exponential histograms, ...: let the SDK do it
            found.append(aggregation)
    return found


def _ns_limits(boundaries: Sequence[float]) -> tuple[int, ...]:
    """For each boundary b, the largest integer n with n / 1e9 <= b: a gap of g ns falls in bucket i
    exactly when the public API, given g / 1e9, would put it there (the division is monotonic)."""
    limits = []
    for bound in boundaries:
        n = math.floor(bound * 1e9)
        while (n + 1) / 1e9 <= bound:
            n += 1
        while n / 1e9 > bound:
            n -= 1
        limits.append(n)
    return tuple(limits)


# id(boundaries) -> (boundaries, limits); holding the tuple keeps its id from being reused.
_LIMITS: dict[int, tuple[Sequence[float], tuple[int, ...]]] = {}


def _add_sorted_ns(aggregation: Any, gaps: list[int], total: float) -> None:
    """Add sorted, non-negative nanosecond gaps (seconds once exported) to an explicit-bucket aggregation."""
    boundaries = aggregation._boundaries
    cached = _LIMITS.get(id(boundaries))
    if cached is None or cached[0] is not boundaries:
        cached = _LIMITS[id(boundaries)] = (boundaries, _ns_limits(boundaries))
    limits = cached[1]
    with aggregation._lock:
        if aggregation._value is None:
            aggregation._value = aggregation._get_empty_bucket_counts()
        _count_sorted(aggregation._value, gaps, limits)
        aggregation._sum += total
        if aggregation._record_min_max:
            aggregation._min = min(aggregation._min, gaps[0] / 1e9)
            aggregation._max = max(aggregation._max, gaps[-1] / 1e9)


def _count_sorted(counts: list[int], ordered: Sequence[Any], bounds: Sequence[Any]) -> None:
    """Add sorted values to bucket counts, where bucket i holds (bounds[i-1], bounds[i]]: one bisection
    per bound (usually a few, as gaps sit in the first buckets) instead of one per value."""
    size = len(ordered)
    below = 0
    for index, bound in enumerate(bounds):
        upto = bisect_right(ordered, bound)
        counts[index] += upto - below
        below = upto
        if below == size:
            return
    counts[len(bounds)] += size - below


def _add_one(aggregation: Any, value: float) -> None:
    """Add one finite, non-negative value, as the SDK's `aggregate` does."""
    with aggregation._lock:
        counts = aggregation._value
        if counts is None:
            counts = aggregation._value = aggregation._get_empty_bucket_counts()
        counts[bisect_left(aggregation._boundaries, value)] += 1
        aggregation._sum += value
        if aggregation._record_min_max:
            if value < aggregation._min:
                aggregation._min = value
            if value > aggregation._max:
                aggregation._max = value


def _add_values(aggregation: Any, values: Sequence[float]) -> None:
    low, high, total = min(values), max(values), sum(values)
    if low < 0 or not math.isfinite(total):
        # The public API drops negative and non-finite values: do the same, value by value.
        values = [v for v in values if v >= 0 and math.isfinite(v)]
        if not values:
            return
        low, high, total = min(values), max(values), sum(values)
    boundaries = aggregation._boundaries
    with aggregation._lock:
        if aggregation._value is None:
            aggregation._value = aggregation._get_empty_bucket_counts()
        counts = aggregation._value
        if len(values) == 1:
            counts[bisect_left(boundaries, values[0])] += 1
        else:
            _count_sorted(counts, sorted(values), boundaries)
        aggregation._sum += total
        if aggregation._record_min_max:
            aggregation._min = min(aggregation._min, low)
            aggregation._max = max(aggregation._max, high)
