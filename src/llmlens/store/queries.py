"""The read side of the local store: a plain Python API over an open `sqlite3.Connection`.

The `llmlens` CLI uses it now and the web UI later. Every function takes a connection from
`open_store()` (a read-only one is enough) and returns dataclasses (with `to_dict()` for JSON) or
dicts of plain values. Times are integers in nanoseconds since the epoch (`*_ns`), with ISO 8601 UTC
strings beside them for people.

Where each answer comes from:

- The request log, one request, recent errors, the per-second series and provider health read
  `requests`. Pages are keyset pages on `id` (never OFFSET), newest first. Each page walks one index:
  the `(column, id)` index of the most selective equality filter (counted on the index, capped), or
  the `start_ns` index for a narrow time range, or `id` itself; the other filters are checked on the
  rows walked (see `request_log._driver`).
- Totals, breakdowns, running totals, the per-minute and per-hour series and long-window percentiles
  read the rollups: `rollup_hour` for the whole hours of a window and `rollup_minute` for the minutes
  at its ends. They stay fast at a million requests and keep counting after old request rows are
  pruned. A rollup window is made of whole minutes: `since` rounds down to its minute, and `until`
  (exclusive) includes the minute it falls in. The `Window` in each result says what was covered.
- Percentiles are exact (nearest rank over the request rows) when the window holds at most
  `EXACT_MAX_ROWS` requests and none have been pruned; otherwise they come from the rollups'
  log-spaced histograms and are the upper bound of the bucket holding the exact value (at most 25%
  above it). Each result says which in `source`.

Example:
    >>> conn = open_store(default_db_path(), readonly=True)
    >>> page = request_log(conn, Filters(provider="openai", status="error"), limit=20)
    >>> more = request_log(conn, Filters(provider="openai", status="error"), cursor=page.next_cursor)

This module is the public face of the read side and holds no logic: each name comes from the module
of its concern, all of which share `query_common` (times, checks, request rows, capped counts):

- `request_log`: `Filters`, `Page`, `request_log`, `new_requests`, `latest_id`, `iter_requests`,
  `explain`, `recent_errors`;
- `request_detail`: `get_request` and its `RequestDetail` / `SpanNode` tree;
- `phases`: `phase_timings`, the `Phase`s of a proxied request, which `RequestDetail.phases` holds;
- `active_reads`: `active_requests`, the `ActiveRequest`s in flight in the live processes writing the
  store (`active_requests` and `store_processes`, not `requests`);
- `rollup_reads`: the `Window` and `Totals` every rollup statistic is built from;
- `aggregates`: `totals`, `breakdown`, `running_totals`, `time_series`;
- `percentiles`: `percentiles`, `exact_percentile`;
- `health`: `provider_health`, `HealthThresholds` (from `LLMLENS_HEALTH_*`);
- `storage`: `storage_stats`, `file_sizes`, `missing_indexes`, `has_hourly_rollups`;
- `compat`: `rosetta_metrics_snapshot`, `vandamme_running_totals`.
"""

from __future__ import annotations

from llmlens.store.active_reads import ActiveRequest, active_requests
from llmlens.store.aggregates import (
    MAX_SERIES_POINTS,
    Breakdown,
    Group,
    Point,
    ProviderSplit,
    RunningTotals,
    Split,
    TimeSeries,
    TotalsResult,
    breakdown,
    running_totals,
    time_series,
    totals,
)
from llmlens.store.compat import rosetta_metrics_snapshot, vandamme_running_totals
from llmlens.store.health import (
    ENV_HEALTH_PREFIX,
    HealthReport,
    HealthThresholds,
    ProviderHealth,
    provider_health,
)
from llmlens.store.inputs import QueryError
from llmlens.store.percentile_series import SeriesPoint, percentile_series
from llmlens.store.percentiles import PercentileResult, PercentileValues, exact_percentile, percentiles
from llmlens.store.phases import Phase, phase_timings
from llmlens.store.query_common import EXACT_MAX_ROWS, HOUR_NS, MINUTE_NS, NS, iso, row_dict
from llmlens.store.request_detail import RequestDetail, SpanNode, get_request
from llmlens.store.request_log import (
    ID_BOUNDS_MAX_ROWS,
    MAX_PAGE,
    STATUSES,
    TIME_INDEX_MAX_ROWS,
    Filters,
    Page,
    explain,
    iter_requests,
    latest_id,
    new_requests,
    recent_errors,
    request_log,
)
from llmlens.store.rollup_reads import Totals, Window
from llmlens.store.storage import (
    QUERY_INDEXES,
    StorageStats,
    database_path,
    file_sizes,
    has_hourly_rollups,
    missing_indexes,
    storage_stats,
)

__all__ = [
    # the request log
    "Filters",
    "Page",
    "request_log",
    "new_requests",
    "latest_id",
    "iter_requests",
    "explain",
    "recent_errors",
    "row_dict",
    # one request
    "RequestDetail",
    "SpanNode",
    "get_request",
    "Phase",
    "phase_timings",
    # requests in flight
    "ActiveRequest",
    "active_requests",
    # aggregates
    "Window",
    "Totals",
    "TotalsResult",
    "totals",
    "Group",
    "Breakdown",
    "breakdown",
    "Split",
    "ProviderSplit",
    "RunningTotals",
    "running_totals",
    "Point",
    "TimeSeries",
    "time_series",
    "PercentileValues",
    "PercentileResult",
    "exact_percentile",
    "percentiles",
    "SeriesPoint",
    "percentile_series",
    # provider health
    "ENV_HEALTH_PREFIX",
    "HealthThresholds",
    "ProviderHealth",
    "HealthReport",
    "provider_health",
    # the store file
    "StorageStats",
    "database_path",
    "file_sizes",
    "storage_stats",
    "QUERY_INDEXES",
    "missing_indexes",
    "has_hourly_rollups",
    # compatibility shapes
    "rosetta_metrics_snapshot",
    "vandamme_running_totals",
    # shared
    "QueryError",
    "iso",
    "NS",
    "MINUTE_NS",
    "HOUR_NS",
    "EXACT_MAX_ROWS",
    "TIME_INDEX_MAX_ROWS",
    "ID_BOUNDS_MAX_ROWS",
    "MAX_PAGE",
    "MAX_SERIES_POINTS",
    "STATUSES",
]
