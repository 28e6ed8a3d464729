"""Statistics over a window: totals, breakdowns and running totals from the rollups, and time series
(per second from the request rows, per minute and per hour from the rollups).

The rollups stay fast at a million requests and keep counting after old request rows are pruned; the
`Window` in each result says which whole minutes were read.
"""

from __future__ import annotations

import fnmatch
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from llmlens.store import inputs
from llmlens.store.inputs import QueryError
from llmlens.store.query_common import (
    HOUR_NS,
    MINUTE_NS,
    NS,
    check_by,
    check_order,
    current_ns,
    fields_dict,
    iso,
)
from llmlens.store.rollup_reads import Totals, Window, hours_usable, priced_columns, rollup_groups

MAX_SERIES_POINTS = 20_000


# --- totals, breakdowns, running totals ----------------------------------------------------------


@dataclass
class TotalsResult:
    window: Window
    totals: Totals

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)


def totals(
    conn: sqlite3.Connection, since_ns: int | None = None, until_ns: int | None = None
) -> TotalsResult:
    """Everything in the window added up (from the rollups)."""
    window = Window.of(since_ns, until_ns)
    groups = rollup_groups(conn, window, ())
    return TotalsResult(window, groups[0][1] if groups else Totals())


@dataclass
class Group:
    key: str
    totals: Totals

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **self.totals.to_dict()}


@dataclass
class Breakdown:
    window: Window
    by: str
    groups: list[Group]  # most requests first

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)


_BY = {"provider": "provider", "model": "model", "operation": "operation"}


def breakdown(
    conn: sqlite3.Connection, since_ns: int | None = None, until_ns: int | None = None, by: str = "provider"
) -> Breakdown:
    """Totals per provider, model or operation (from the rollups); the model is the response model."""
    column = _BY[check_by(by)]
    window = Window.of(since_ns, until_ns)
    groups = [Group(key[0], t) for key, t in rollup_groups(conn, window, (column,))]
    groups.sort(key=lambda g: (-g.totals.requests, g.key))
    return Breakdown(window, by, groups)


@dataclass
class Split:
    """Totals of a provider or model, with the streaming and non-streaming requests apart."""

    total: Totals = field(default_factory=Totals)
    streaming: Totals = field(default_factory=Totals)
    non_streaming: Totals = field(default_factory=Totals)

    def add(self, stream: bool, totals: Totals) -> None:
        self.total.add(totals)
        (self.streaming if stream else self.non_streaming).add(totals)

    @property
    def last_accessed(self) -> str | None:
        return self.total.last_accessed

    def to_dict(self) -> dict[str, Any]:
        return {"last_accessed": self.last_accessed, **fields_dict(self)}


@dataclass
class ProviderSplit(Split):
    models: dict[str, Split] = field(default_factory=dict)


@dataclass
class RunningTotals(Split):
    """provider -> model, each with totals and its streaming / non-streaming split."""

    window: Window | None = None
    providers: dict[str, ProviderSplit] = field(default_factory=dict)


def _matches(text: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(text.lower(), pattern.lower())


def running_totals(
    conn: sqlite3.Connection,
    since_ns: int | None = None,
    until_ns: int | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> RunningTotals:
    """Hierarchical totals, provider then model (from the rollups).

    `provider` and `model` are case-insensitive wildcard patterns (`*`, `?`), as in Vandamme.
    """
    window = Window.of(since_ns, until_ns)
    result = RunningTotals(window=window)
    for (prov, mod, stream), t in rollup_groups(conn, window, ("provider", "model", "stream")):
        if not (_matches(prov, provider) and _matches(mod, model)):
            continue
        node = result.providers.setdefault(prov, ProviderSplit())
        node.add(bool(stream), t)
        node.models.setdefault(mod, Split()).add(bool(stream), t)
        result.add(bool(stream), t)
    result.providers = dict(sorted(result.providers.items()))
    for node in result.providers.values():
        node.models = dict(sorted(node.models.items()))
    return result


# --- time series -----------------------------------------------------------------------------------

_DAY_NS = 24 * HOUR_NS
_RESOLUTIONS = {
    "second": (NS, 300),
    "minute": (MINUTE_NS, 86_400),
    "hour": (HOUR_NS, 30 * 86_400),
    "day": (_DAY_NS, 90 * 86_400),
}
# Rollup tables, coarsest first: (table, its time column, the length of one of its rows).
_ROLLUP_TABLES = (
    ("rollup_day", "day", _DAY_NS),
    ("rollup_hour", "hour", HOUR_NS),
    ("rollup_minute", "minute", MINUTE_NS),
)


@dataclass
class Point:
    start_ns: int
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None: no request of the bucket was priced (or it has none)
    total_duration_ms: float = 0.0

    @property
    def avg_duration_ms(self) -> float | None:
        return self.total_duration_ms / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": iso(self.start_ns), "avg_duration_ms": self.avg_duration_ms}


@dataclass
class TimeSeries:
    resolution: str
    step_s: int
    since_ns: int  # start of the first bucket
    until_ns: int  # end (exclusive) of the last bucket
    source: str  # requests | rollups
    points: list[Point]  # oldest first, one per bucket, empty buckets as zeros

    def to_dict(self) -> dict[str, Any]:
        return {**fields_dict(self), "since": iso(self.since_ns), "until": iso(self.until_ns)}


def time_series(
    conn: sqlite3.Connection,
    resolution: str = "minute",
    since_ns: int | None = None,
    until_ns: int | None = None,
    now_ns: int | None = None,
) -> TimeSeries:
    """Counts, errors, tokens, cost and mean duration per bucket.

    `second` reads the request rows (default: the last 5 minutes); `minute` (default: 24 hours), `hour`
    (default: 30 days) and `day` (default: 90 days; UTC days) read the rollups, from the coarsest table
    whose rows fit the buckets. Buckets are whole seconds / minutes / hours / days by start time; the
    first and last bucket are the ones `since` and `until` fall in. A bucket's `cost_usd` is None when
    none of its requests was priced.
    """
    if resolution not in _RESOLUTIONS:
        raise QueryError(
            f"resolution {resolution!r} is not valid; accepted values: {', '.join(_RESOLUTIONS)}"
        )
    step, default_span_s = _RESOLUTIONS[resolution]
    until = current_ns(now_ns) if until_ns is None else inputs.timestamp(until_ns, "until_ns")
    since = until - default_span_s * NS if since_ns is None else inputs.timestamp(since_ns, "since_ns")
    check_order(since, until)
    first, last = since // step, (until - 1) // step
    if last - first + 1 > MAX_SERIES_POINTS:
        raise QueryError(
            f"{last - first + 1} {resolution}s is too many points (at most {MAX_SERIES_POINTS}); "
            "narrow the window or use a coarser resolution"
        )
    points = {b: Point(b * step) for b in range(first, last + 1)}
    if resolution == "second":
        source = "requests"
        rows = conn.execute(
            "SELECT start_ns / ? AS b, count(*), sum(is_error), coalesce(sum(input_tokens), 0), "
            "coalesce(sum(output_tokens), 0), sum(cost_usd), count(cost_usd), sum(duration_ms) "
            "FROM requests INDEXED BY requests_by_time WHERE start_ns >= ? AND start_ns < ? GROUP BY b",
            (NS, first * step, (last + 1) * step),
        )
    else:
        source = "rollups"
        usable = hours_usable(conn)  # (the hour and day tables came together, and are filled together)
        table, unit, size = next(
            t for t in _ROLLUP_TABLES if (usable or t[0] == "rollup_minute") and step % t[2] == 0
        )
        per = step // size
        first_unit, end_unit = first * per, (last + 1) * per
        rows = conn.execute(
            f"SELECT {unit} / ? AS b, sum(requests), sum(requests * is_error), sum(input_tokens), "
            f"sum(output_tokens), sum(cost_usd), sum({priced_columns(conn)['priced']}), sum(duration_ms_sum) "
            f"FROM {table} "
            f"WHERE {unit} >= ? AND {unit} < ? GROUP BY b",
            (per, first_unit, end_unit),
        )
    for b, n, errors, i, o, cost, priced, duration in rows:
        point = points.get(b)
        if point is not None:
            point.requests, point.errors = int(n), int(errors or 0)
            point.input_tokens, point.output_tokens = int(i or 0), int(o or 0)
            point.cost_usd = float(cost or 0.0) if priced else None
            point.total_duration_ms = float(duration or 0.0)
    return TimeSeries(resolution, step // NS, first * step, (last + 1) * step, source, list(points.values()))
