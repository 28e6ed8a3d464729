"""Provider health: ok, degraded or critical per provider, from the error rate and p95 latency of a
recent window, with the thresholds (`HealthThresholds`) read from `LLMLENS_HEALTH_*` variables (by
llmlens.settings).

The window is read from the request rows when it holds at most `EXACT_MAX_ROWS` requests, else from
the rollups over its whole minutes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from llmlens.settings import Settings, check_health_thresholds
from llmlens.store import inputs
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

ENV_HEALTH_PREFIX = "LLMLENS_HEALTH_"  # + the field's name in capitals: its variable (llmlens.settings)


@dataclass(frozen=True)
class HealthThresholds:
    """When a provider is degraded or critical. The defaults, the `LLMLENS_HEALTH_<FIELD>` variables and
    the checks are the `health_*` rows of `llmlens.settings.SETTINGS`."""

    window_s: float = Settings.health_window_s  # only requests that started this recently count
    min_requests: int = Settings.health_min_requests  # fewer in the window: degraded at worst
    degraded_error_rate: float = Settings.health_degraded_error_rate
    critical_error_rate: float = Settings.health_critical_error_rate
    # p95 latency: time to first chunk for streams, else duration
    degraded_p95_ms: float = Settings.health_degraded_p95_ms
    critical_p95_ms: float = Settings.health_critical_p95_ms

    def __post_init__(self) -> None:
        check_health_thresholds(asdict(self), {})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> HealthThresholds:
        """Defaults, then the `LLMLENS_HEALTH_*` variables (the process's, unless `environ` is given), then
        `overrides` (None = not given); a bad value raises SettingsError."""
        return cls(**Settings.for_api("HealthThresholds", environ, **overrides))


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
