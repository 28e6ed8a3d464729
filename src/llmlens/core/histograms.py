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
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import Histogram

_log = logging.getLogger(__name__)
_MAX_CACHED_ATTRIBUTE_SETS = 1000
_UNKNOWN = object()


class FastHistogram:
    """Wraps a histogram; `record` and `record_many` behave as the public `record` one value at a time.

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
        for aggregation in aggregations:
            _add_values(aggregation, values)

    def _aggregations(self, attributes: dict[str, Any]) -> list[Any] | None:
        consumer = self._consumer
        if consumer is None:  # not the SDK's histogram (a no-op meter, another SDK): public API only
            return None
        storages = consumer._reader_storages
        if storages is not self._storages:  # readers changed (or first use): forget what we knew
            self._cache.clear()
            self._storages = storages
            return None
        try:
            return self._cache.get(tuple(attributes.items()))
        except TypeError:  # unhashable attribute values (lists): public API
            return None

    def _learn(self, attributes: dict[str, Any]) -> list[Any] | None:
        """After a public record of `attributes`, find (and cache) the aggregations it went to."""
        try:
            key = tuple(attributes.items())
            hash(key)
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


def _explicit_bucket_aggregations(histogram: Any, attributes: dict[str, Any]) -> list[Any] | None:
    """The SDK aggregations a public record of `attributes` went into, or None when unsure."""
    from opentelemetry.sdk.metrics._internal import aggregation as sdk_aggregation
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    if not histogram._is_enabled():
        return None
    found = []
    for storage in histogram._measurement_consumer._reader_storages.values():
        for match in storage._get_or_init_view_instrument_match(histogram):
            if match._reset_on_collect:
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
            # Bucket i holds (boundary[i-1], boundary[i]]: count by bisecting the sorted values once per
            # boundary (usually a few, as gaps sit in the first buckets) instead of once per value.
            ordered = sorted(values)
            size = len(ordered)
            below = 0
            for index, bound in enumerate(boundaries):
                upto = bisect_right(ordered, bound)
                counts[index] += upto - below
                below = upto
                if below == size:
                    break
            else:
                counts[len(boundaries)] += size - below
        aggregation._sum += total
        if aggregation._record_min_max:
            aggregation._min = min(aggregation._min, low)
            aggregation._max = max(aggregation._max, high)
