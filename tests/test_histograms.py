"""record_many, record_intervals and the keyed forms must export exactly what one public `record` per
value exports, under every reader set-up."""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, ExponentialBucketHistogramAggregation, View

from llmlens import semconv
from llmlens.core import histograms
from llmlens.core.histograms import FastHistogram

ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m"}
KEY = tuple(ATTRS.items())


def _points(reader: InMemoryMetricReader) -> list[tuple[Any, ...]]:
    data = reader.get_metrics_data()
    result = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    fields = ["count", "sum", "min", "max", "bucket_counts", "explicit_bounds"]
                    shape = tuple(getattr(p, f, None) for f in fields)
                    shape = tuple(round(v, 12) if isinstance(v, float) else v for v in shape)
                    result.append((metric.name, tuple(sorted(p.attributes.items())), shape))
    return sorted(result, key=repr)


def _run(values: list[list[float]], bulk: bool | str, **provider_options: Any) -> list[Any]:
    """bulk: False (the public API), True (record_many and record, alternating), "keyed" (record_keyed)."""
    readers = provider_options.pop("readers")
    provider = MeterProvider(metric_readers=readers, **provider_options)
    histogram = provider.get_meter("t").create_histogram(
        "h", unit="s", explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS)
    )
    fast = FastHistogram(histogram)
    results = []
    for i, batch in enumerate(values):
        if bulk == "keyed":
            for value in batch:
                fast.record_keyed(value, KEY, ATTRS)
        elif bulk and i % 2:
            fast.record_many(batch, ATTRS, None)
        elif bulk:
            for value in batch:
                fast.record(value, ATTRS)
        else:
            for value in batch:
                histogram.record(value, ATTRS)
        results.append([_points(r) for r in readers])
    provider.shutdown()
    return results


VALUES = [
    [random.Random(seed).uniform(0, 0.2) for _ in range(40)]
    + [0.0, 5.0, 90.0, -1.0, float("nan"), float("inf")]
    + list(semconv.DURATION_BUCKETS[::3])  # exact boundaries: a bucket's upper bound is inclusive
    for seed in range(4)
]


@pytest.mark.parametrize(
    "setup",
    [
        "cumulative",
        "delta",
        "two readers",
        "view with attribute filter",
        "view dropping the metric",
        "exponential view",
    ],
)
def test_bulk_record_equals_one_by_one(setup: str) -> None:
    def options() -> dict[str, Any]:
        if setup == "delta":
            return {"readers": [InMemoryMetricReader({SdkHistogram: AggregationTemporality.DELTA})]}
        if setup == "two readers":
            return {
                "readers": [
                    InMemoryMetricReader(),
                    InMemoryMetricReader({SdkHistogram: AggregationTemporality.DELTA}),
                ]
            }
        views = {
            "view with attribute filter": [
                View(instrument_name="h", attribute_keys={"gen_ai.operation.name"})
            ],
            "view dropping the metric": [View(instrument_name="h", aggregation=DropAggregation())],
            "exponential view": [
                View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation())
            ],
        }.get(setup, [])
        return {"readers": [InMemoryMetricReader()], "views": views}

    expected = _run(VALUES, bulk=False, **options())
    assert _run(VALUES, bulk=True, **options()) == expected
    assert _run(VALUES, bulk="keyed", **options()) == expected
    if setup != "view dropping the metric":
        assert any(expected[-1]), "the comparison must see data points"


def _stamps(seed: int) -> list[int]:
    """perf_counter_ns-like stamps whose gaps include exact boundaries, a ns either side, 0 and 100 s."""
    rng = random.Random(seed)
    edges = [int(b * 1e9) + d for b in semconv.DURATION_BUCKETS for d in (-1, 0, 1)]
    gaps = [rng.randrange(0, 200_000_000) for _ in range(40)] + edges + [0, 100_000_000_000]
    rng.shuffle(gaps)
    stamps = [rng.randrange(10**12)]
    for gap in gaps:
        stamps.append(stamps[-1] + gap)
    return stamps


STAMPS = [_stamps(seed) for seed in range(3)] + [[5], [], [10, 7, 30]]  # one stamp, none, not monotonic


@pytest.mark.parametrize("setup", ["cumulative", "delta", "view with attribute filter", "exponential view"])
def test_record_intervals_equals_one_record_per_gap(setup: str) -> None:
    def run(intervals: bool | str) -> list[Any]:
        temporality = {SdkHistogram: AggregationTemporality.DELTA} if setup == "delta" else None
        reader = InMemoryMetricReader(temporality)
        views = {
            "view with attribute filter": [
                View(instrument_name="h", attribute_keys={"gen_ai.operation.name"})
            ],
            "exponential view": [
                View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation())
            ],
        }.get(setup, [])
        provider = MeterProvider(metric_readers=[reader], views=views)
        histogram = provider.get_meter("t").create_histogram(
            "h", unit="s", explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS)
        )
        fast = FastHistogram(histogram)
        results = []
        for stamps in STAMPS:
            if intervals == "keyed":
                fast.record_intervals_keyed(stamps, KEY, ATTRS)
            elif intervals:
                fast.record_intervals(stamps, ATTRS, None)
            else:
                for a, b in pairwise(stamps):
                    histogram.record((b - a) / 1e9, ATTRS)
            results.append(_points(reader))
        provider.shutdown()
        return results

    expected = run(intervals=False)
    assert run(intervals=True) == expected
    assert run(intervals="keyed") == expected
    assert expected[-1], "the comparison must see data points"


def test_one_value_first_seen_is_recorded_once_without_error() -> None:
    # A two-chunk stream's only gap, the first value of its attribute set: the public API records it, and
    # nothing is left for the fast path (which raised on the empty rest, ending the call's telemetry).
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram(
        "h", unit="s", explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS)
    )
    fast = FastHistogram(histogram)
    fast.record_intervals([0, 5_000_000], ATTRS, None)
    fast.record_many([0.5], {**ATTRS, "gen_ai.response.model": "n"}, None)
    assert sorted((p[2][0], p[2][1]) for p in _points(reader)) == [(1, 0.005), (1, 0.5)]
    provider.shutdown()


def test_nanosecond_limits_match_float_comparison() -> None:
    limits = histograms._ns_limits(semconv.DURATION_BUCKETS)
    for bound, limit in zip(semconv.DURATION_BUCKETS, limits, strict=True):
        assert limit / 1e9 <= bound < (limit + 1) / 1e9


def test_falls_back_to_public_api_when_sdk_layout_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise AttributeError("private layout changed")

    expected = _run(VALUES[:1], bulk=False, readers=[InMemoryMetricReader()])
    monkeypatch.setattr(histograms, "_explicit_bucket_aggregations", broken)
    assert _run(VALUES[:1], bulk=True, readers=[InMemoryMetricReader()]) == expected


def test_keyed_forms_give_the_first_value_an_exemplar_of_the_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    fast = FastHistogram(provider.get_meter("t").create_histogram("h", unit="s"))
    span = TracerProvider().get_tracer("t").start_span("call")
    fast.record_keyed(0.25, KEY, ATTRS, span)  # the first of its attribute set: the public API
    fast.record_keyed(0.5, KEY, ATTRS, span)  # then the fast path
    data = reader.get_metrics_data()
    [point] = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert point.count == 2
    assert [e.trace_id for e in point.exemplars] == [span.get_span_context().trace_id]
    provider.shutdown()


def test_keyed_forms_with_unhashable_attribute_values_use_the_public_api() -> None:
    attrs = {**ATTRS, "tags": ["a", "b"]}
    key = tuple(attrs.items())  # unhashable: holds a list

    def run(keyed: bool) -> list[Any]:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        histogram = provider.get_meter("t").create_histogram("h", unit="s")
        fast = FastHistogram(histogram)
        for value in (0.1, 0.2):
            if keyed:
                fast.record_keyed(value, key, attrs)
                fast.record_intervals_keyed([0, 10**8, 3 * 10**8], key, attrs)
            else:
                histogram.record(value, attrs)
                for gap in (0.1, 0.2):
                    histogram.record(gap, attrs)
        points = _points(reader)
        provider.shutdown()
        return points

    expected = run(keyed=False)
    assert run(keyed=True) == expected
    assert expected


def test_api_only_histogram_is_a_no_op() -> None:
    from opentelemetry.metrics import NoOpMeterProvider

    histogram = NoOpMeterProvider().get_meter("t").create_histogram("h")
    fast = FastHistogram(histogram)
    fast.record_many([0.1, 0.2, 0.3], ATTRS, None)  # must not raise
    fast.record(0.4, ATTRS)
    fast.record_keyed(0.5, KEY, ATTRS)
    fast.record_intervals_keyed([1, 2, 3], KEY, ATTRS)


def test_reader_added_later_sees_new_values() -> None:
    first = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first])
    histogram = provider.get_meter("t").create_histogram("h", unit="s")
    fast = FastHistogram(histogram)
    for value in (0.1, 0.2, 0.3):
        fast.record(value, ATTRS)
    second = InMemoryMetricReader()
    provider.add_metric_reader(second)
    for value in (0.4, 0.5):
        fast.record(value, ATTRS)
    [(_, _, first_shape)] = _points(first)
    [(_, _, second_shape)] = _points(second)
    assert first_shape[0] == 5
    assert second_shape[0] == 2
    provider.shutdown()


def _cumulative_histogram() -> tuple[Any, InMemoryMetricReader, FastHistogram]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram(
        "h", unit="s", explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS)
    )
    return provider, reader, FastHistogram(histogram)


def test_the_fast_path_works_on_an_sdk_whose_matches_have_no_reset_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # opentelemetry-sdk before 1.45.2 has no `_ViewInstrumentMatch._reset_on_collect` (its aggregations
    # are never swapped at collection): the fast path must stay on there, with the same points.
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    class OlderMatch:
        """A view-instrument match as older SDKs have it: everything but `_reset_on_collect`."""

        def __init__(self, match: Any) -> None:
            self._match = match

        def __getattr__(self, name: str) -> Any:
            if name == "_reset_on_collect":
                raise AttributeError(name)
            return getattr(self._match, name)

    original = MetricReaderStorage._get_or_init_view_instrument_match

    def older_matches(self: Any, instrument: Any) -> Any:
        return [OlderMatch(match) for match in original(self, instrument)]

    monkeypatch.setattr(MetricReaderStorage, "_get_or_init_view_instrument_match", older_matches)
    expected = _run(VALUES[:1], bulk=False, readers=[InMemoryMetricReader()])
    assert _run(VALUES[:1], bulk="keyed", readers=[InMemoryMetricReader()]) == expected
    provider, _reader, fast = _cumulative_histogram()
    fast.record_keyed(0.5, KEY, ATTRS)
    assert fast._cache[KEY], "the aggregations were learnt: later values skip the public API"
    provider.shutdown()


def test_an_attribute_set_the_fast_path_cannot_serve_is_probed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[Any] = []

    def unsure(*args: Any) -> None:
        probes.append(args)
        return None  # e.g. a delta reader on a newer SDK: the public API for this set, for good

    monkeypatch.setattr(histograms, "_explicit_bucket_aggregations", unsure)
    provider, reader, fast = _cumulative_histogram()
    for value in (0.1, 0.2, 0.3):
        fast.record_keyed(value, KEY, ATTRS)
    fast.record_many([0.4, 0.5], ATTRS, None)
    assert len(probes) == 1
    assert [p[2][0] for p in _points(reader)] == [5]
    provider.shutdown()
