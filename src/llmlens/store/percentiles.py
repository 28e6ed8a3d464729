"""Duration and time-to-first-chunk percentiles over a window, overall and per provider or model.

They are exact (nearest rank over the request rows) when the window holds at most `EXACT_MAX_ROWS`
requests and none have been pruned; otherwise they come from the rollups' log-spaced histograms and
are the upper bound of the bucket holding the exact value (at most 25% above it). Each result says
which in `source`.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlens.store.inputs import QueryError
from llmlens.store.query_common import (
    EXACT_MAX_ROWS,
    MODEL_SQL,
    PROVIDER_SQL,
    check_by,
    count_started,
    fields_dict,
    open_range,
)
from llmlens.store.rollup_reads import Window, rollup_source
from llmlens.store.rollups import percentile_from_hist


def _label(q: float) -> str:
    return f"p{q * 100:g}"


@dataclass
class PercentileValues:
    count: int
    values: dict[str, float | None]  # "p50" -> milliseconds

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)


@dataclass
class PercentileResult:
    metric: str  # duration | ttfc
    source: str  # "requests": exact (nearest rank) | "rollups": histogram bucket upper bound
    window: Window
    overall: PercentileValues
    by: str | None = None
    groups: dict[str, PercentileValues] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.source == "requests"

    @property
    def note(self) -> str:
        if self.exact:
            return "exact (nearest rank over the request rows)"
        return "from the rollup histograms: each value is the upper bound of its bucket (at most 25% high)"

    def to_dict(self) -> dict[str, Any]:
        return {**fields_dict(self), "exact": self.exact, "note": self.note}


def exact_percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


def _qs(qs: Sequence[float]) -> tuple[float, ...]:
    if not qs or any(not isinstance(q, (int, float)) or not 0 < q <= 1 for q in qs):
        raise QueryError(f"quantiles {list(qs)!r} are not valid; each must be > 0 and <= 1 (0.95 = p95)")
    return tuple(float(q) for q in qs)


def _of_values(values: list[float], qs: Sequence[float]) -> PercentileValues:
    """Exact percentiles (nearest rank) of the values (sorted in place)."""
    values.sort()
    return PercentileValues(len(values), {_label(q): exact_percentile(values, q) for q in qs})


def _of_hist(hist: dict[int, int], qs: Sequence[float]) -> PercentileValues:
    """Percentiles from a rollup histogram: the upper bound of the bucket holding each."""
    return PercentileValues(sum(hist.values()), {_label(q): percentile_from_hist(hist, q) for q in qs})


def _window_is_complete(conn: sqlite3.Connection, window: Window) -> bool:
    """True when the request rows of the window are few enough to read and none were pruned."""
    rows = count_started(conn, window.start_ns, window.end_ns, EXACT_MAX_ROWS)
    if rows > EXACT_MAX_ROWS:
        return False
    source, params = rollup_source(conn, window)
    rolled = conn.execute(f"SELECT coalesce(sum(requests), 0) FROM {source}", params)
    return rows == int(rolled.fetchone()[0])


def percentiles(
    conn: sqlite3.Connection,
    since_ns: int | None = None,
    until_ns: int | None = None,
    metric: str = "duration",
    qs: Sequence[float] = (0.5, 0.95, 0.99),
    by: str | None = None,
) -> PercentileResult:
    """Duration or time-to-first-chunk percentiles (ms) over the window, overall and per `by` group."""
    if metric not in ("duration", "ttfc"):
        raise QueryError(f"metric {metric!r} is not valid; accepted values: duration, ttfc")
    qs = _qs(qs)
    if by is not None:
        check_by(by, ("provider", "model"))
    window = Window.of(since_ns, until_ns)
    if _window_is_complete(conn, window):
        source = "requests"
        column = "duration_ms" if metric == "duration" else "ttfc_ms"
        key = {"provider": PROVIDER_SQL, "model": MODEL_SQL, None: "''"}[by]
        values: dict[str, list[float]] = {}
        everything: list[float] = []
        for group, value in conn.execute(
            f"SELECT {key}, {column} FROM requests INDEXED BY requests_by_time "
            f"WHERE start_ns >= ? AND start_ns < ? AND {column} IS NOT NULL",
            open_range(window.start_ns, window.end_ns),
        ):
            values.setdefault(group, []).append(value)
            everything.append(value)
        overall = _of_values(everything, qs)
        per_group = {group: _of_values(v, qs) for group, v in sorted(values.items())}
    else:
        source = "rollups"
        hist_column = "duration_hist" if metric == "duration" else "ttfc_hist"
        key = {"provider": "provider", "model": "model", None: "''"}[by]
        rows, params = rollup_source(conn, window)
        hists: dict[str, dict[int, int]] = {}
        merged: dict[int, int] = {}
        for group, bucket, count in conn.execute(
            f"SELECT {key}, CAST(j.key AS INTEGER), sum(j.value) "
            f"FROM {rows} AS r, json_each(r.{hist_column}) AS j GROUP BY 1, 2",
            params,
        ):
            hists.setdefault(group, {})[bucket] = int(count)
            merged[bucket] = merged.get(bucket, 0) + int(count)
        overall = _of_hist(merged, qs)
        per_group = {group: _of_hist(h, qs) for group, h in sorted(hists.items())}
    return PercentileResult(metric, source, window, overall, by, per_group if by else {})
