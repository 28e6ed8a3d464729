"""Per-minute, per-hour and per-day rollups, updated in the same transaction as the request rows.

Totals, breakdowns, time series and percentiles over long windows read these small rows instead of
the request log, so they stay fast at a million requests and keep counting after old request rows
are pruned. `rollup_hour` and `rollup_day` (schema 2) hold the same sums as `rollup_minute` per hour
and per UTC day: a window of weeks reads its whole days from `rollup_day`, the hours at its ends from
`rollup_hour` and the minutes at its ends from `rollup_minute`. Durations and times to first chunk
are kept as log-spaced histograms (see schema.py), so percentiles are exact to within one bucket.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llmlens.store.rows import REQUEST_COLUMNS
from llmlens.store.schema import HIST_BUCKETS, HIST_RATIO

_I = {name: i for i, name in enumerate(REQUEST_COLUMNS)}
_LOG_RATIO = math.log(HIST_RATIO)
_SUMS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
NANOS_PER_MINUTE = 60_000_000_000
NANOS_PER_HOUR = 60 * NANOS_PER_MINUTE
NANOS_PER_DAY = 24 * NANOS_PER_HOUR


def bucket_of(ms: float) -> int:
    """Histogram bucket of a duration in milliseconds: bucket b holds (ratio^(b-1), ratio^b]."""
    if ms <= 1.0:
        return 0
    return min(HIST_BUCKETS - 1, math.ceil(math.log(ms) / _LOG_RATIO))


def bucket_upper_ms(bucket: int) -> float:
    return HIST_RATIO**bucket


def _key(row: Sequence[Any]) -> tuple[Any, ...]:
    return (
        row[_I["start_ns"]] // NANOS_PER_MINUTE,
        row[_I["provider"]] or "",
        row[_I["response_model"]] or row[_I["request_model"]] or "",
        row[_I["operation"]] or "",
        row[_I["stream"]],
        row[_I["is_error"]],
    )


def not_billed(is_error: Any, chunks: Any, input_tokens: Any, output_tokens: Any) -> bool:
    """A request that failed before any output and reported no usage: providers do not bill it, and
    pricing neither prices it nor counts it unpriced (its cost is nothing), so it is not `unpriced`."""
    return bool(is_error) and not chunks and input_tokens is None and output_tokens is None


class _Acc:
    __slots__ = ("cost", "dmax", "dsum", "dur", "last", "n", "priced", "sums", "tcount", "tsum", "ttfc",
                 "unpriced")  # fmt: skip

    def __init__(self) -> None:
        self.n = 0
        self.dsum = 0.0
        self.dmax = 0.0
        self.tsum = 0.0
        self.tcount = 0
        self.sums = [0] * len(_SUMS)
        self.cost = 0.0
        # Requests with a cost, and requests whose cost is unknown (no price data, no price for the model,
        # no usage): a sum over none of the first reads "not priced", never $0.
        self.priced = 0
        self.unpriced = 0
        self.dur: dict[str, int] = {}
        self.ttfc: dict[str, int] = {}
        self.last = 0

    def merge(self, other: _Acc) -> None:
        self.n += other.n
        self.dsum += other.dsum
        self.dmax = max(self.dmax, other.dmax)
        self.tsum += other.tsum
        self.tcount += other.tcount
        self.sums = [a + b for a, b in zip(self.sums, other.sums, strict=True)]
        self.cost += other.cost
        self.priced += other.priced
        self.unpriced += other.unpriced
        for mine, theirs in ((self.dur, other.dur), (self.ttfc, other.ttfc)):
            for bucket, count in theirs.items():
                mine[bucket] = mine.get(bucket, 0) + count
        self.last = max(self.last, other.last)


def _accumulate(rows: Iterable[Sequence[Any]]) -> dict[tuple[Any, ...], _Acc]:
    result: dict[tuple[Any, ...], _Acc] = {}
    for row in rows:
        acc = result.get(key := _key(row))
        if acc is None:
            acc = result[key] = _Acc()
        acc.n += 1
        duration = row[_I["duration_ms"]]
        acc.dsum += duration
        acc.dmax = max(acc.dmax, duration)
        b = str(bucket_of(duration))
        acc.dur[b] = acc.dur.get(b, 0) + 1
        ttfc = row[_I["ttfc_ms"]]
        if ttfc is not None:
            acc.tsum += ttfc
            acc.tcount += 1
            b = str(bucket_of(ttfc))
            acc.ttfc[b] = acc.ttfc.get(b, 0) + 1
        for i, name in enumerate(_SUMS):
            value = row[_I[name]]
            if isinstance(value, int):
                acc.sums[i] += value
        cost = row[_I["cost_usd"]]
        if isinstance(cost, (int, float)):
            acc.cost += cost
            acc.priced += 1
        elif not not_billed(
            row[_I["is_error"]], row[_I["chunk_count"]], row[_I["input_tokens"]], row[_I["output_tokens"]]
        ):
            acc.unpriced += 1
        acc.last = max(acc.last, row[_I["end_ns"]])
    return result


def _merge(stored: str, new: dict[str, int]) -> str:
    merged = json.loads(stored) if stored else {}
    for bucket, count in new.items():
        merged[bucket] = merged.get(bucket, 0) + count
    return json.dumps(merged, separators=(",", ":"))


def _statements(table: str, unit: str) -> tuple[str, str]:
    select = (
        f"SELECT duration_hist, ttfc_hist FROM {table} WHERE {unit} = ? AND provider = ? AND model = ? "
        "AND operation = ? AND stream = ? AND is_error = ?"
    )
    upsert = f"""
INSERT INTO {table} ({unit}, provider, model, operation, stream, is_error, requests, duration_ms_sum,
    duration_ms_max, ttfc_ms_sum, ttfc_count, {", ".join(_SUMS)}, cost_usd, priced, unpriced, duration_hist,
    ttfc_hist, last_ns)
VALUES ({", ".join("?" * (11 + len(_SUMS) + 6))})
ON CONFLICT ({unit}, provider, model, operation, stream, is_error) DO UPDATE SET
    requests = requests + excluded.requests,
    duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum,
    duration_ms_max = max(duration_ms_max, excluded.duration_ms_max),
    ttfc_ms_sum = ttfc_ms_sum + excluded.ttfc_ms_sum,
    ttfc_count = ttfc_count + excluded.ttfc_count,
    {", ".join(f"{n} = {n} + excluded.{n}" for n in _SUMS)},
    cost_usd = cost_usd + excluded.cost_usd,
    priced = priced + excluded.priced,
    unpriced = unpriced + excluded.unpriced,
    duration_hist = excluded.duration_hist,
    ttfc_hist = excluded.ttfc_hist,
    last_ns = max(last_ns, excluded.last_ns)
"""
    return select, upsert


_MINUTE = _statements("rollup_minute", "minute")
_HOUR = _statements("rollup_hour", "hour")
_DAY = _statements("rollup_day", "day")


def _coarser(finer: dict[tuple[Any, ...], _Acc], ratio: int) -> dict[tuple[Any, ...], _Acc]:
    result: dict[tuple[Any, ...], _Acc] = {}
    for key, acc in finer.items():
        coarse_key = (key[0] // ratio, *key[1:])
        coarse = result.get(coarse_key)
        if coarse is None:
            coarse = result[coarse_key] = _Acc()
        coarse.merge(acc)
    return result


def add(conn: sqlite3.Connection, request_rows: Sequence[Sequence[Any]]) -> None:
    """Fold request rows into the minute, hour and day rollups (inside the caller's transaction)."""
    minutes = _accumulate(request_rows)
    hours = _coarser(minutes, 60)
    days = _coarser(hours, 24)
    for (select, upsert), accs in ((_MINUTE, minutes), (_HOUR, hours), (_DAY, days)):
        for key, acc in accs.items():
            stored = conn.execute(select, key).fetchone()
            duration_hist = _merge(stored[0] if stored else "", acc.dur)
            ttfc_hist = _merge(stored[1] if stored else "", acc.ttfc)
            values = (
                *key,
                acc.n,
                acc.dsum,
                acc.dmax,
                acc.tsum,
                acc.tcount,
                *acc.sums,
                acc.cost,
                acc.priced,
                acc.unpriced,
            )
            conn.execute(upsert, (*values, duration_hist, ttfc_hist, acc.last))


def percentile_from_hist(hist: Mapping[int | str, int], q: float) -> float | None:
    """The q-quantile (0..1) of a merged histogram, as the upper bound of its bucket, in ms.

    Bucket keys may be ints or the strings of the stored JSON (ordered as numbers, not as text).
    """
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(hist, key=int):
        seen += hist[bucket]
        if seen >= rank:
            return bucket_upper_ms(int(bucket))
    return bucket_upper_ms(max(int(b) for b in hist))
