"""Reading the rollups over a time window: the `Window` covered, `Totals` of a set of requests, and the
rollup rows of a window (whole hours from `rollup_hour`, the minutes at its ends from `rollup_minute`).

A rollup window is made of whole minutes: `since` rounds down to its minute, and `until` (exclusive)
includes the minute it falls in. The rollups keep counting after old request rows are pruned.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmlens.store.query_common import MINUTE_NS, iso, time_range


@dataclass
class Window:
    """The time covered: what was asked (`since_ns`/`until_ns`, None = open) and the rollup minutes read."""

    since_ns: int | None
    until_ns: int | None
    first_minute: int | None  # minutes since the epoch, inclusive; None = from the oldest rollup
    last_minute: int | None  # inclusive; None = up to the newest

    @classmethod
    def of(cls, since_ns: int | None, until_ns: int | None) -> Window:
        since_ns, until_ns = time_range(since_ns, until_ns)
        first = None if since_ns is None else since_ns // MINUTE_NS
        last = None if until_ns is None else (until_ns - 1) // MINUTE_NS
        return cls(since_ns, until_ns, first, last)

    @property
    def start_ns(self) -> int | None:
        """Start of the first whole minute covered."""
        return None if self.first_minute is None else self.first_minute * MINUTE_NS

    @property
    def end_ns(self) -> int | None:
        """End (exclusive) of the last whole minute covered."""
        return None if self.last_minute is None else (self.last_minute + 1) * MINUTE_NS

    def rollup_where(self) -> tuple[str, list[Any]]:
        where, params = [], []
        if self.first_minute is not None:
            where.append("minute >= ?")
            params.append(self.first_minute)
        if self.last_minute is not None:
            where.append("minute <= ?")
            params.append(self.last_minute)
        return " AND ".join(where) or "1", params

    def to_dict(self) -> dict[str, Any]:
        return {
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
            "since": iso(self.since_ns),
            "until": iso(self.until_ns),
            "covered_since": iso(self.start_ns),
            "covered_until": iso(self.end_ns),
        }


@dataclass
class Totals:
    """Counts and sums over a set of requests."""

    requests: int = 0
    errors: int = 0
    streaming: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # the sum over the priced requests; None when none was priced
    priced_requests: int = 0  # requests with a cost
    # requests whose cost is unknown: no price data, no price for the model, no usage (a request that
    # failed before any output is neither priced nor unpriced: it is not billed)
    unpriced_requests: int = 0
    total_duration_ms: float = 0.0
    max_duration_ms: float = 0.0
    ttfc_count: int = 0
    total_ttfc_ms: float = 0.0
    last_ns: int | None = None  # end of the newest request

    @property
    def non_streaming(self) -> int:
        return self.requests - self.streaming

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def avg_duration_ms(self) -> float | None:
        return self.total_duration_ms / self.requests if self.requests else None

    @property
    def avg_ttfc_ms(self) -> float | None:
        return self.total_ttfc_ms / self.ttfc_count if self.ttfc_count else None

    @property
    def last_accessed(self) -> str | None:
        return iso(self.last_ns)

    def add(self, other: Totals) -> None:
        for name in ("requests", "errors", "streaming", "input_tokens", "output_tokens", "cache_read_tokens",
                     "cache_write_tokens", "reasoning_tokens", "priced_requests", "unpriced_requests",
                     "total_duration_ms", "ttfc_count", "total_ttfc_ms"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.cost_usd is not None:
            self.cost_usd = other.cost_usd if self.cost_usd is None else self.cost_usd + other.cost_usd
        self.max_duration_ms = max(self.max_duration_ms, other.max_duration_ms)
        if other.last_ns is not None:
            self.last_ns = other.last_ns if self.last_ns is None else max(self.last_ns, other.last_ns)

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result.update(
            non_streaming=self.non_streaming,
            error_rate=self.error_rate,
            avg_duration_ms=self.avg_duration_ms,
            avg_ttfc_ms=self.avg_ttfc_ms,
            last_accessed=self.last_accessed,
        )
        return result


_ROLLUP_SUMS = (
    "sum(requests), sum(requests * is_error), sum(requests * stream), sum(input_tokens), sum(output_tokens), "
    "sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd), sum(priced), "
    "sum(unpriced), sum(duration_ms_sum), max(duration_ms_max), sum(ttfc_count), sum(ttfc_ms_sum), "
    "max(last_ns)"
)


def _totals_of(values: Sequence[Any]) -> Totals:
    n, errors, streaming, i, o, cr, cw, r, cost, priced, unpriced, dsum, dmax, tcount, tsum, last = values
    return Totals(
        requests=int(n or 0), errors=int(errors or 0), streaming=int(streaming or 0),
        input_tokens=int(i or 0), output_tokens=int(o or 0), cache_read_tokens=int(cr or 0),
        cache_write_tokens=int(cw or 0),
        reasoning_tokens=int(r or 0), cost_usd=float(cost or 0.0) if priced else None,
        priced_requests=int(priced or 0), unpriced_requests=int(unpriced or 0),
        total_duration_ms=float(dsum or 0.0),
        max_duration_ms=float(dmax or 0.0), ttfc_count=int(tcount or 0), total_ttfc_ms=float(tsum or 0.0),
        last_ns=int(last) if last else None,
    )  # fmt: skip


_ROLLUP_COLUMNS = (
    "provider, model, operation, stream, is_error, requests, duration_ms_sum, duration_ms_max, ttfc_ms_sum, "
    "ttfc_count, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, "
    "cost_usd, {priced} AS priced, {unpriced} AS unpriced, duration_hist, ttfc_hist, last_ns"
)
# A file older than schema 5, read as it is (read-only), has neither count: the guesses its migration makes.
_PRICED_GUESS = "CASE WHEN cost_usd <> 0 OR provider = 'ollama' THEN requests ELSE 0 END"
_UNPRICED_GUESS = (
    "CASE WHEN cost_usd <> 0 OR provider = 'ollama' OR (is_error AND input_tokens = 0 AND output_tokens = 0) "
    "THEN 0 ELSE requests END"
)


def priced_columns(conn: sqlite3.Connection) -> dict[str, str]:
    """The rollup rows' counts of priced and unpriced requests (`priced`, `unpriced`), as columns or, for
    a file older than schema 5, as the guesses its migration makes."""
    names = {row[1] for row in conn.execute("PRAGMA table_info(rollup_minute)")}
    if "priced" in names:
        return {"priced": "priced", "unpriced": "unpriced"}
    return {"priced": _PRICED_GUESS, "unpriced": _UNPRICED_GUESS}


def has_hour_table(conn: sqlite3.Connection) -> bool:
    """The store has the `rollup_hour` table (schema 2)."""
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollup_hour'"
    return conn.execute(sql).fetchone() is not None


def hours_usable(conn: sqlite3.Connection) -> bool:
    """The store has the hourly rollups (schema 2) and they are as current as the minute rollups."""
    if not has_hour_table(conn):
        return False
    hour = conn.execute("SELECT max(hour) FROM rollup_hour").fetchone()[0]
    minute = conn.execute("SELECT max(minute) FROM rollup_minute").fetchone()[0]
    return hour == (None if minute is None else minute // 60)


def rollup_source(conn: sqlite3.Connection, window: Window) -> tuple[str, list[Any]]:
    """A FROM item with the rollup rows of the window (columns of rollup_minute).

    With hourly rollups, the whole hours come from `rollup_hour` (as `minute` = hour * 60) and only the
    minutes at the two edges from `rollup_minute`: 60 times fewer rows for long windows.
    """
    first, last = window.first_minute, window.last_minute
    columns = _ROLLUP_COLUMNS.format(**priced_columns(conn))
    minutes = f"SELECT minute, {columns} FROM rollup_minute WHERE"
    if not hours_usable(conn):
        where, params = window.rollup_where()
        return f"({minutes} {where})", params
    h0 = None if first is None else (first + 59) // 60
    h1 = None if last is None else (last + 1) // 60 - 1
    if h0 is not None and h1 is not None and h0 > h1:  # no whole hour inside
        where, params = window.rollup_where()
        return f"({minutes} {where})", params
    parts: list[str] = []
    params: list[Any] = []
    if first is not None and h0 is not None:
        parts.append(f"{minutes} minute >= ? AND minute < ?")
        params += [first, h0 * 60]
    if last is not None and h1 is not None:
        parts.append(f"{minutes} minute >= ? AND minute <= ?")
        params += [(h1 + 1) * 60, last]
    hours = [f"hour {op} ?" for op, h in ((">=", h0), ("<=", h1)) if h is not None]
    parts.append(f"SELECT hour * 60 AS minute, {columns} FROM rollup_hour WHERE {' AND '.join(hours) or '1'}")
    params += [h for h in (h0, h1) if h is not None]
    return "(" + " UNION ALL ".join(parts) + ")", params


def rollup_groups(
    conn: sqlite3.Connection, window: Window, keys: Sequence[str]
) -> list[tuple[tuple[Any, ...], Totals]]:
    source, params = rollup_source(conn, window)
    group = ", ".join(keys)
    select = f"{group}, " if keys else ""
    sql = f"SELECT {select}{_ROLLUP_SUMS} FROM {source}"
    if keys:
        sql += f" GROUP BY {group}"
    result = []
    for values in conn.execute(sql, params):
        totals = _totals_of(values[len(keys) :])
        if totals.requests:
            result.append((tuple(values[: len(keys)]), totals))
    return result
