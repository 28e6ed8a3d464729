"""Record many values with the same attributes into one histogram, cheaply.

`gen_ai.client.operation.time_per_output_chunk` needs one record per chunk. Through the public API
each record costs about 7 µs (the SDK copies, validates and hashes the attributes every time), which
alone would be twice our per-chunk budget. With the SDK's own MeterProvider we record the first value
through the public API (which creates the aggregation and samples an exemplar) and add the rest to the
same aggregations under their lock: the exported data points are identical (a test compares them).
Anything unexpected (another SDK, a newer internal layout, a view with an exotic aggregation) falls
back to the public API.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import Histogram

_log = logging.getLogger(__name__)


def record_many(
    histogram: Histogram, values: Sequence[float], attributes: dict[str, Any], context: Context | None
) -> None:
    """Record each of `values` into `histogram`, as `histogram.record` would one by one."""
    if not values:
        return
    histogram.record(values[0], attributes, context)
    if len(values) == 1:
        return
    rest = values[1:]
    try:
        aggregations = _explicit_bucket_aggregations(histogram, attributes)
    except Exception:  # the SDK's private layout changed: stay correct, just slower
        _log.debug("llmlens: bulk histogram path unavailable", exc_info=True)
        aggregations = None
    if aggregations is None:
        for value in rest:
            histogram.record(value, attributes, context)
        return
    for aggregation in aggregations:
        _add_values(aggregation, rest)


def _explicit_bucket_aggregations(histogram: Any, attributes: dict[str, Any]) -> list[Any] | None:
    """The SDK aggregations the first record went into, or None when we cannot be sure."""
    from opentelemetry.sdk.metrics._internal import aggregation as sdk_aggregation
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes

    if not histogram._is_enabled():
        return []  # a disabled instrument drops records; so do we
    consumer = histogram._measurement_consumer
    found = []
    for storage in consumer._reader_storages.values():
        for match in storage._get_or_init_view_instrument_match(histogram):
            if match._reset_on_collect:
                return None  # collection may swap aggregations under us
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
    boundaries = aggregation._boundaries
    with aggregation._lock:
        if aggregation._value is None:
            aggregation._value = aggregation._get_empty_bucket_counts()
        counts = aggregation._value
        total = 0.0
        low = math.inf
        high = -math.inf
        for value in values:
            if value < 0 or not math.isfinite(value):
                continue  # the public API drops these too
            counts[bisect_left(boundaries, value)] += 1
            total += value
            if value < low:
                low = value
            if value > high:
                high = value
        aggregation._sum += total
        if aggregation._record_min_max and high >= low:
            aggregation._min = min(aggregation._min, low)
            aggregation._max = max(aggregation._max, high)
