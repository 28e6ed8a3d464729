"""Duration and time-to-first-chunk percentiles over time: equal buckets, both metrics, in one read.

`percentiles()` (store/percentiles.py) answers one window; a chart of 30 buckets through it reads the
store 60 times, each window again. Here the whole range is read once: exact (nearest rank over the
request rows, bucketed in Python) when the range holds at most `EXACT_MAX_ROWS` requests and none
were pruned; otherwise from the coarsest rollup table whose rows fit the buckets (days for whole-day
buckets, hours for whole-hour ones, else minutes), each bucket's histograms merged, every value the
upper bound of its bucket (at most 25% high). Each point says which in `source`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmlens.store.inputs import QueryError
from llmlens.store.percentiles import PercentileValues, _of_hist, _of_values, _qs, _window_is_complete
from llmlens.store.query_common import EXACT_MAX_ROWS, HOUR_NS, MINUTE_NS, count_started, fields_dict
from llmlens.store.rollup_reads import Window, hours_usable

DAY_NS = 24 * HOUR_NS
METRICS = ("duration", "ttfc")


@dataclass
class SeriesPoint:
    start_ns: int
    source: str  # "requests": exact | "rollups": histogram bucket upper bounds
    duration: PercentileValues
    ttfc: PercentileValues

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)


def percentile_series(
    conn: sqlite3.Connection,
    start_ns: int,
    step_ns: int,
    buckets: int,
    qs: Sequence[float] = (0.5, 0.95, 0.99),
) -> list[SeriesPoint]:
    """Percentiles (ms) of both metrics for `buckets` buckets of `step_ns`, the first starting at
    `start_ns` (whole minutes: rollups have no finer time)."""
    qs = _qs(qs)
    if step_ns <= 0 or step_ns % MINUTE_NS or start_ns % MINUTE_NS or not 0 < buckets <= 10_000:
        raise QueryError("a percentile series needs whole-minute buckets and start, and 1 to 10,000 buckets")
    end_ns = start_ns + step_ns * buckets
    window = Window.of(start_ns, end_ns)
    exact = count_started(conn, start_ns, end_ns, EXACT_MAX_ROWS) <= EXACT_MAX_ROWS and _window_is_complete(
        conn, window
    )
    if exact:
        values = _exact_values(conn, start_ns, end_ns, step_ns, buckets)
        return [
            SeriesPoint(start_ns + i * step_ns, "requests", _of_values(d, qs), _of_values(t, qs))
            for i, (d, t) in enumerate(values)
        ]
    hists = _rollup_hists(conn, start_ns, end_ns, step_ns, buckets)
    return [
        SeriesPoint(start_ns + i * step_ns, "rollups", _of_hist(d, qs), _of_hist(t, qs))
        for i, (d, t) in enumerate(hists)
    ]


def _exact_values(
    conn: sqlite3.Connection, start_ns: int, end_ns: int, step_ns: int, buckets: int
) -> list[tuple[list[float], list[float]]]:
    values: list[tuple[list[float], list[float]]] = [([], []) for _ in range(buckets)]
    for started, duration, ttfc in conn.execute(
        "SELECT start_ns, duration_ms, ttfc_ms FROM requests INDEXED BY requests_by_time "
        "WHERE start_ns >= ? AND start_ns < ?",
        (start_ns, end_ns),
    ):
        durations, ttfcs = values[(started - start_ns) // step_ns]
        if duration is not None:
            durations.append(duration)
        if ttfc is not None:
            ttfcs.append(ttfc)
    return values


def _rollup_hists(
    conn: sqlite3.Connection, start_ns: int, end_ns: int, step_ns: int, buckets: int
) -> list[tuple[dict[int, int], dict[int, int]]]:
    table, column, unit = "rollup_minute", "minute", MINUTE_NS
    if hours_usable(conn):
        # The coarsest rows that never straddle a bucket (rollup_day shares rollup_hour's schema).
        for candidate, name, size in (("rollup_day", "day", DAY_NS), ("rollup_hour", "hour", HOUR_NS)):
            if step_ns % size == 0 and start_ns % size == 0:
                table, column, unit = candidate, name, size
                break
    hists: list[tuple[dict[int, int], dict[int, int]]] = [({}, {}) for _ in range(buckets)]
    for when, duration_hist, ttfc_hist in conn.execute(
        f"SELECT {column}, duration_hist, ttfc_hist FROM {table} WHERE {column} >= ? AND {column} < ?",
        (start_ns // unit, end_ns // unit),
    ):
        merged = hists[(when * unit - start_ns) // step_ns]
        for target, text in zip(merged, (duration_hist, ttfc_hist), strict=True):
            if text and text != "{}":
                for bucket, count in json.loads(text).items():
                    key = int(bucket)
                    target[key] = target.get(key, 0) + int(count)
    return hists
