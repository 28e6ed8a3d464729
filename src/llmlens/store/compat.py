"""Compatibility shapes: the store's statistics in the JSON of the projects llmlens stands in for,
llm-rosetta's `GET /admin/api/metrics` and Vandamme proxy's `GET /metrics/running-totals`
(docs/store.md has what differs, field by field).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from llmlens.store import inputs
from llmlens.store.active_reads import active_requests
from llmlens.store.aggregates import Split, running_totals, totals
from llmlens.store.health import HealthThresholds, provider_health
from llmlens.store.query_common import MINUTE_NS, NS, current_ns
from llmlens.store.rollup_reads import Totals, Window, rollup_groups
from llmlens.store.storage import storage_stats

_ROSETTA_TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
                       "reasoning_tokens")  # fmt: skip
_CLIENT_CLOSED = ("closed", "abandoned", "cancelled")


def _rosetta_tokens(t: Totals) -> dict[str, int]:
    return {
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_creation_tokens": t.cache_write_tokens,
        "reasoning_tokens": t.reasoning_tokens,
    }


def rosetta_metrics_snapshot(
    conn: sqlite3.Connection,
    series_seconds: int = 60,
    now_ns: int | None = None,
    thresholds: HealthThresholds | None = None,
) -> dict[str, Any]:
    """llm-rosetta's `GET /admin/api/metrics` JSON (`MetricsCollector.snapshot()` + `persistence`).

    Same keys, in the same order (0.13.0, plus the counters newer llm-rosetta added). What differs,
    because the store is not a running proxy (docs/store.md has the table):

    - `uptime_seconds`: seconds since the oldest rollup minute (the store outlives processes);
    - `total_*`, `lifetime_*`, `by_model`, `by_target_provider` and the token counters come from the
      rollups (everything still within the age limit); `by_target_provider` is keyed by provider;
    - `by_status_code`, `by_source_provider` and `total_client_disconnects` count the retained request
      rows; a request without an HTTP status counts as "200" when it succeeded and "0" when it failed
      without a response; `by_source_provider` is the proxy's source format, else the API or operation;
      `total_client_disconnects` counts streams the caller closed or abandoned;
    - `active_streams` counts the streams in flight in the live processes writing the store
      (`active_requests`);
    - `series` buckets requests by start second; `providers` comes from `provider_health` (its window,
      not the last 100 requests) and `status` can also be "degraded".
    """
    series_seconds = inputs.count(series_seconds, 300, "series_seconds")
    now = current_ns(now_ns)
    everything = Window.of(None, None)
    total = totals(conn).totals
    by_model: dict[str, int] = {}
    by_provider: dict[str, int] = {}
    by_model_tokens: dict[str, dict[str, int]] = {}
    by_provider_tokens: dict[str, dict[str, int]] = {}
    for (prov, mod), t in rollup_groups(conn, everything, ("provider", "model")):
        by_model[mod] = by_model.get(mod, 0) + t.requests
        by_provider[prov] = by_provider.get(prov, 0) + t.requests
        for target, key in ((by_model_tokens, mod), (by_provider_tokens, prov)):
            tokens = target.setdefault(key, dict.fromkeys(_ROSETTA_TOKEN_KEYS, 0))
            for k, v in _rosetta_tokens(t).items():
                tokens[k] += v
    by_status: dict[str, int] = {}
    by_source: dict[str, int] = {}
    disconnects = 0
    for code, err, src, closed, n in conn.execute(
        "SELECT http_status, is_error, coalesce(source_format, api, operation, 'unknown'), "
        f"stream_outcome IN {_CLIENT_CLOSED!r}, count(*) FROM requests GROUP BY 1, 2, 3, 4"
    ):
        key = str(code) if code is not None else ("0" if err else "200")
        by_status[key] = by_status.get(key, 0) + n
        by_source[src] = by_source.get(src, 0) + n
        disconnects += n if closed else 0
    first_minute = conn.execute("SELECT min(minute) FROM rollup_minute").fetchone()[0]
    uptime = (now - first_minute * MINUTE_NS) / NS if first_minute is not None else 0.0
    first_second = now // NS - series_seconds + 1
    buckets: dict[int, list[float]] = {}
    errors_by_second: dict[int, int] = {}
    for start_ns, duration, is_error in conn.execute(
        "SELECT start_ns, duration_ms, is_error FROM requests INDEXED BY requests_by_time "
        "WHERE start_ns >= ? AND start_ns < ? ORDER BY start_ns",
        (first_second * NS, (now // NS + 1) * NS),
    ):
        second = start_ns // NS
        buckets.setdefault(second, []).append(duration)
        errors_by_second[second] = errors_by_second.get(second, 0) + is_error
    series = []
    for second in range(first_second, now // NS + 1):
        latencies = buckets.get(second, [])
        series.append(
            {
                "t": second - now // NS,
                "count": len(latencies),
                "avg_ms": round(sum(latencies) / len(latencies), 2) if latencies else 0,
                "errors": errors_by_second.get(second, 0),
                "latencies": [round(v, 2) for v in latencies],
            }
        )
    health = provider_health(conn, thresholds=thresholds, now_ns=now)
    providers = {
        name: {
            "status": h.status,
            "success_rate": round(1 - h.errors / h.requests, 4) if h.requests else 1.0,
            "avg_latency_ms": round(h.avg_duration_ms, 1) if h.avg_duration_ms is not None else 0.0,
            "sample_size": h.requests,
            "last_error": h.last_error,
        }
        for name, h in health.providers.items()
    }
    storage = storage_stats(conn)
    retention = storage.retention
    return {
        "uptime_seconds": round(uptime, 1),
        "total_requests": total.requests,
        "total_errors": total.errors,
        "total_streams": total.streaming,
        "total_client_disconnects": disconnects,
        "lifetime_total_requests": total.requests,
        "lifetime_total_errors": total.errors,
        "error_rate": round(total.errors / total.requests, 4) if total.requests else 0,
        "active_streams": sum(1 for r in active_requests(conn, now) if r.stream),
        "by_model": by_model,
        "by_source_provider": by_source,
        "by_target_provider": by_provider,
        "by_status_code": by_status,
        "total_input_tokens": total.input_tokens,
        "total_output_tokens": total.output_tokens,
        "total_cache_read_tokens": total.cache_read_tokens,
        "total_cache_creation_tokens": total.cache_write_tokens,
        "total_reasoning_tokens": total.reasoning_tokens,
        "by_model_tokens": by_model_tokens,
        "by_provider_tokens": by_provider_tokens,
        "series": series,
        "providers": providers,
        "persistence": {
            "db_bytes": storage.db_bytes,
            "wal_bytes": storage.wal_bytes,
            "shm_bytes": storage.shm_bytes,
            "log_entries": storage.requests,
            "log_success_entries": storage.success_requests,
            "log_error_entries": storage.error_requests,
            "log_max_success": retention.get("max_success"),
            "log_max_error": retention.get("max_errors"),
        },
    }


_VANDAMME_KEYS = ("requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
                  "cache_creation_tokens", "tool_uses", "tool_results", "tool_calls", "average_duration_ms",
                  "total_duration_ms")  # fmt: skip


def _vandamme_totals(t: Totals) -> dict[str, Any]:
    return {
        "requests": t.requests,
        "errors": t.errors,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_creation_tokens": t.cache_write_tokens,
        "tool_uses": 0,
        "tool_results": 0,
        "tool_calls": 0,
        "average_duration_ms": round(t.total_duration_ms / t.requests) if t.requests else 0,
        "total_duration_ms": round(t.total_duration_ms),
    }


def _vandamme_split(split: Split) -> dict[str, Any]:
    out: dict[str, Any] = {"total": _vandamme_totals(split.total)}
    if split.streaming.requests > 0:
        out["streaming"] = _vandamme_totals(split.streaming)
    if split.non_streaming.requests > 0:
        out["non_streaming"] = _vandamme_totals(split.non_streaming)
    return out


def vandamme_running_totals(
    conn: sqlite3.Connection, provider: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """Vandamme proxy's `GET /metrics/running-totals` body (as JSON: `summary` and `providers`).

    Same keys and nesting as its YAML (`create_hierarchical_structure`); the streaming and non-streaming
    sections are left out when empty, as there. What differs (docs/store.md has the table):
    `tool_uses`, `tool_results`, `tool_calls` are 0 (not in the rollups; Vandamme's first two count
    history blocks of the request anyway); `active_requests` counts the requests in flight in every live
    process writing the store, whatever the filters; times are
    UTC ISO 8601 (Vandamme writes naive local time); `total_duration_ms` of a split is the real sum
    (Vandamme's is always 0); `summary.last_accessed` is `{"top": ...}` as there.
    """
    rt = running_totals(conn, provider=provider, model=model)
    summary_totals = _vandamme_totals(rt.total)
    summary: dict[str, Any] = {
        "last_accessed": {"top": rt.last_accessed} if rt.last_accessed else None,
        **{f"total_{k}": summary_totals[k] for k in _VANDAMME_KEYS[:9]},
        "active_requests": len(active_requests(conn)),
        "average_duration_ms": summary_totals["average_duration_ms"],
        "total_duration_ms": summary_totals["total_duration_ms"],
    }
    providers: dict[str, Any] = {}
    for name, node in rt.providers.items():
        entry: dict[str, Any] = {"last_accessed": node.last_accessed, "rollup": _vandamme_split(node)}
        if node.models:
            entry["models"] = {
                m: {"last_accessed": s.last_accessed, **_vandamme_split(s)} for m, s in node.models.items()
            }
        providers[name] = entry
    return {"summary": summary, "providers": providers}
