"""Provider health: ok, degraded or critical per provider, from the error rate and p95 latency of a
recent window, with the thresholds (`HealthThresholds`) read from `LLMLENS_HEALTH_*` variables.

The window is read from the request rows when it holds at most `EXACT_MAX_ROWS` requests, else from
the rollups over its whole minutes.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from llmlens.settings import SettingsError
from llmlens.store import inputs
from llmlens.store.inputs import QueryError
from llmlens.store.percentiles import exact_percentile
from llmlens.store.query_common import (
    EXACT_MAX_ROWS,
    MINUTE_NS,
    NS,
    PROVIDER_SQL,
    count_started,
    current_ns,
    fields_dict,
    iso,
)
from llmlens.store.rollup_reads import Window, rollup_source
from llmlens.store.rollups import percentile_from_hist

ENV_HEALTH_PREFIX = "LLMLENS_HEALTH_"


@dataclass(frozen=True)
class HealthThresholds:
    """When a provider is degraded or critical. Each field has an `LLMLENS_HEALTH_<FIELD>` variable."""

    window_s: float = 300.0  # only requests that started this recently count
    min_requests: int = 5  # fewer requests in the window can make a provider degraded, never critical
    degraded_error_rate: float = 0.05
    critical_error_rate: float = 0.5
    degraded_p95_ms: float = 30_000.0  # p95 latency: time to first chunk for streams, else duration
    critical_p95_ms: float = 120_000.0

    def __post_init__(self) -> None:
        _check_thresholds(asdict(self), {})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> HealthThresholds:
        """Defaults, then `LLMLENS_HEALTH_*` variables, then `overrides`; a bad value raises SettingsError."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {f.name: f.default for f in fields(cls)}
        names: dict[str, str] = {}
        for f in fields(cls):
            var = f"{ENV_HEALTH_PREFIX}{f.name.upper()}"
            raw = (env.get(var) or "").strip()
            if not raw:
                continue
            kind = int if f.name == "min_requests" else float
            try:
                value = kind(raw)
                if not math.isfinite(value):
                    raise ValueError(raw)
            except ValueError:
                noun = "an integer" if kind is int else "a number"
                raise SettingsError(f"{var}={raw!r} is not valid; accepted values: {noun}") from None
            values[f.name] = value
            names[f.name] = var
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
                names.pop(name, None)
        _check_thresholds(values, names)
        return cls(**values)


def _check_thresholds(values: Mapping[str, Any], names: Mapping[str, str]) -> None:
    """Raise SettingsError (naming the variable when the value came from one) for a bad threshold."""

    def fail(name: str, accepted: str) -> None:
        raise SettingsError(
            f"{names.get(name, name)}={values[name]!r} is not valid; accepted values: {accepted}"
        )

    try:
        inputs.duration(values["window_s"])
    except QueryError:
        fail("window_s", f"a number of {inputs.SECONDS_RANGE}")
    if values["min_requests"] < 1:
        fail("min_requests", "an integer >= 1")
    for name in ("degraded_error_rate", "critical_error_rate"):
        if not 0 < values[name] <= 1:
            fail(name, "a fraction > 0 and <= 1 (0.05 = 5%)")
    for name in ("degraded_p95_ms", "critical_p95_ms"):
        if not values[name] > 0:
            fail(name, "milliseconds > 0")
    for low, high, what in (
        ("degraded_error_rate", "critical_error_rate", "error rate"),
        ("degraded_p95_ms", "critical_p95_ms", "p95"),
    ):
        if values[low] > values[high]:  # blame the one that was set, if only one was
            if high in names and low not in names:
                fail(high, f"at least the degraded {what} ({values[low]})")
            fail(low, f"at most the critical {what} ({values[high]})")


@dataclass
class ProviderHealth:
    provider: str
    status: str  # ok | degraded | critical
    reasons: list[str]
    requests: int  # in the window
    errors: int
    error_rate: float
    p95_latency_ms: float | None
    avg_duration_ms: float | None
    errors_last_hour: int
    last_error_ns: int | None
    last_error: str | None  # "ErrorType: message" of the newest failed request (any time)
    clears_ns: int | None  # not ok: when the errors now in the window have all aged out of it

    def to_dict(self) -> dict[str, Any]:
        return {
            **fields_dict(self),
            "last_error_at": iso(self.last_error_ns),
            "clears_at": iso(self.clears_ns),
        }


_LEVEL = {"ok": 0, "degraded": 1, "critical": 2}


@dataclass
class HealthReport:
    status: str  # the worst provider status
    window_s: float
    since_ns: int
    until_ns: int
    source: str  # requests (exact) | rollups (whole minutes, for busy windows)
    thresholds: HealthThresholds
    providers: dict[str, ProviderHealth]

    @property
    def note(self) -> str:
        return (
            f"only requests from the last {self.window_s:g} s count: a provider recovers as its errors "
            "age out of the window (see clears_at); last_error_at is the newest failure at any time"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **fields_dict(self),
            "since": iso(self.since_ns),
            "until": iso(self.until_ns),
            "note": self.note,
        }


def _latency(stream: int, ttfc: float | None, duration: float) -> float:
    return ttfc if stream and ttfc is not None else duration


def provider_health(
    conn: sqlite3.Connection,
    window_s: float | None = None,
    thresholds: HealthThresholds | None = None,
    now_ns: int | None = None,
) -> HealthReport:
    """ok | degraded | critical per provider, from the error rate and p95 latency of the last `window_s`.

    Providers seen in the last 24 hours are listed even when idle now (then ok, with `last_error_at`).
    Fewer than `min_requests` requests in the window can make a provider degraded, not critical.
    """
    t = thresholds or HealthThresholds.from_env()
    if window_s is not None:
        t = HealthThresholds(**{**asdict(t), "window_s": inputs.duration(window_s, "window_s")})
    until = current_ns(now_ns)
    since = until - int(t.window_s * NS)
    stats: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return stats.setdefault(
            name,
            {"n": 0, "errors": 0, "duration": 0.0, "latencies": [], "hist": {}, "last_window_error": None,
             "error_leaves": None},
        )  # fmt: skip

    if count_started(conn, since, until, EXACT_MAX_ROWS) <= EXACT_MAX_ROWS:
        source = "requests"
        for name, is_error, duration, stream, ttfc, start_ns, end_ns in conn.execute(
            f"SELECT {PROVIDER_SQL}, is_error, duration_ms, stream, ttfc_ms, start_ns, end_ns "
            "FROM requests INDEXED BY requests_by_time WHERE start_ns >= ? AND start_ns < ?",
            (since, until),
        ):
            e = entry(name)
            e["n"] += 1
            e["duration"] += duration
            e["latencies"].append(_latency(stream, ttfc, duration))
            if is_error:
                e["errors"] += 1
                e["last_window_error"] = max(e["last_window_error"] or 0, end_ns)
                e["error_leaves"] = max(e["error_leaves"] or 0, start_ns + int(t.window_s * NS))
    else:  # a busy window: whole minutes from the rollups (streams: ttfc histogram)
        source = "rollups"
        window = Window.of(since, until)
        where, params = window.rollup_where()
        for name, minute, stream, is_error, n, dsum, dhist, thist, tcount, last in conn.execute(
            "SELECT provider, minute, stream, is_error, requests, duration_ms_sum, duration_hist, ttfc_hist, "
            f"ttfc_count, last_ns FROM rollup_minute WHERE {where}",
            params,
        ):
            e = entry(name)
            e["n"] += n
            e["duration"] += dsum
            if is_error:
                e["errors"] += n
                e["last_window_error"] = max(e["last_window_error"] or 0, last)
                leaves = (minute + 1) * MINUTE_NS + int(t.window_s * NS)
                e["error_leaves"] = max(e["error_leaves"] or 0, leaves)
            hist = json.loads(thist if stream and tcount == n else dhist)
            for bucket, count in hist.items():
                e["hist"][int(bucket)] = e["hist"].get(int(bucket), 0) + count
    # Every provider seen in the last 24 hours is listed (idle ones as ok, with their last error).
    day, day_params = rollup_source(conn, Window.of(until - 86_400 * NS, None))
    for (name,) in conn.execute(f"SELECT DISTINCT provider FROM {day}", day_params):
        entry(name)
    errors_last_hour = dict(
        conn.execute(
            "SELECT provider, sum(requests) FROM rollup_minute WHERE minute >= ? AND is_error = 1 "
            "GROUP BY provider",
            ((until - 3600 * NS) // MINUTE_NS,),
        ).fetchall()
    )
    providers: dict[str, ProviderHealth] = {}
    for name in sorted(stats):
        e = stats[name]
        n, errors = e["n"], e["errors"]
        if source == "requests":
            p95 = exact_percentile(sorted(e["latencies"]), 0.95)
        else:
            p95 = percentile_from_hist(e["hist"], 0.95)
        status, reasons = _judge(t, n, errors, p95)
        last = conn.execute(
            "SELECT end_ns, error_type, error_message FROM requests INDEXED BY requests_by_class "
            f"WHERE is_error = 1 AND {PROVIDER_SQL} = ? ORDER BY id DESC LIMIT 1",
            (name,),
        ).fetchone()
        last_error_ns, last_error = None, None
        if last is not None:
            last_error_ns = last[0]
            last_error = ": ".join(p for p in (last[1], last[2]) if p) or "error"
        window_error = e["last_window_error"]
        if window_error is not None and (last_error_ns is None or window_error > last_error_ns):
            last_error_ns = window_error  # its row was pruned; the rollup still knows when
        clears = e["error_leaves"] if status != "ok" else None
        providers[name] = ProviderHealth(
            name, status, reasons, n, errors, errors / n if n else 0.0, p95, e["duration"] / n if n else None,
            errors_last_hour.get(name, 0), last_error_ns, last_error, clears,
        )  # fmt: skip
    worst = max((p.status for p in providers.values()), key=_LEVEL.__getitem__, default="ok")
    return HealthReport(worst, t.window_s, since, until, source, t, providers)


def _judge(t: HealthThresholds, n: int, errors: int, p95: float | None) -> tuple[str, list[str]]:
    if n == 0:
        return "ok", [f"no requests in the last {t.window_s:g} s"]
    level, reasons = 0, []
    rate = errors / n
    if rate >= t.critical_error_rate:
        level = 2
        reasons.append(f"error rate {rate:.0%} >= {t.critical_error_rate:.0%} ({errors} of {n})")
    elif rate >= t.degraded_error_rate:
        level = 1
        reasons.append(f"error rate {rate:.0%} >= {t.degraded_error_rate:.0%} ({errors} of {n})")
    if p95 is not None and p95 >= t.critical_p95_ms:
        level = 2
        reasons.append(f"p95 latency {p95:,.0f} ms >= {t.critical_p95_ms:,.0f} ms")
    elif p95 is not None and p95 >= t.degraded_p95_ms:
        level = max(level, 1)
        reasons.append(f"p95 latency {p95:,.0f} ms >= {t.degraded_p95_ms:,.0f} ms")
    if level == 2 and n < t.min_requests:
        level = 1
        reasons.append(f"only {n} requests (critical needs {t.min_requests})")
    return ("ok", "degraded", "critical")[level], reasons
