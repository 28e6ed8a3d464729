"""Overview: requests, errors, tokens by kind, cost and latency over a window, provider health, the
busiest models and the most frequent errors.

`load` asks the store (totals, time_series, percentiles per bucket, provider_health, breakdown, the
request log of failed requests); `/api/overview` is its answer as JSON and `render` draws it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmlens.settings import SettingsError
from llmlens.store import formats, queries
from llmlens.store.queries import NS, Filters
from llmlens.web import params
from llmlens.web.charts import Series, bar_chart, empty_chart, line_chart
from llmlens.web.html import Markup, join, tag
from llmlens.web.layout import Ctx, message
from llmlens.web.tables import table


@dataclass(frozen=True)
class Span:
    """A window choice: its length, the time series' resolution, and how many latency buckets."""

    seconds: int
    resolution: str
    buckets: int


WINDOWS = {
    "1h": Span(3600, "minute", 12),
    "6h": Span(6 * 3600, "minute", 24),
    "24h": Span(86400, "hour", 24),
    "7d": Span(7 * 86400, "hour", 28),
    "30d": Span(30 * 86400, "day", 30),
}
DEFAULT_WINDOW = "24h"
ERRORS_READ = 500  # the top errors are counted over the newest this many failed requests of the window
TOP = 10
TOKEN_KINDS = (("input", "input_tokens"), ("output", "output_tokens"), ("cache read", "cache_read_tokens"),
               ("cache write", "cache_write_tokens"), ("reasoning", "reasoning_tokens"))  # fmt: skip


def load(conn: sqlite3.Connection, query: Mapping[str, str], now_ns: int | None = None) -> dict[str, Any]:
    name = params.choice(query, "window", WINDOWS, DEFAULT_WINDOW)
    span = WINDOWS[name]
    until = time.time_ns() if now_ns is None else now_ns
    since = until - span.seconds * NS
    try:
        health: dict[str, Any] = queries.provider_health(conn, now_ns=until).to_dict()
    except SettingsError as error:  # a bad LLMLENS_HEALTH_* variable: the rest of the page still shows
        health = {"error": str(error), "providers": {}}
    return {
        "window": name,
        "since_ns": since,
        "until_ns": until,
        "totals": queries.totals(conn, since, until).to_dict(),
        "series": queries.time_series(conn, span.resolution, since, until).to_dict(),
        "latency": latency_series(conn, until, span),
        "health": health,
        "top_models": [g.to_dict() for g in queries.breakdown(conn, since, until, by="model").groups[:TOP]],
        "top_errors": top_errors(conn, since, until),
    }


def latency_series(conn: sqlite3.Connection, until_ns: int, span: Span) -> list[dict[str, Any]]:
    """Duration and time-to-first-chunk percentiles per bucket; buckets are whole minutes, the last
    one holding `until_ns` (one read of the store for the whole chart: queries.percentile_series)."""
    step = span.seconds * NS // span.buckets
    end = (until_ns // step + 1) * step
    points = []
    for point in queries.percentile_series(conn, end - span.buckets * step, step, span.buckets):
        entry: dict[str, Any] = {"start_ns": point.start_ns, "time": queries.iso(point.start_ns)}
        for metric in ("duration", "ttfc"):
            values = getattr(point, metric)
            entry[metric] = {"count": values.count, **values.values, "source": point.source}
        points.append(entry)
    return points


def top_errors(conn: sqlite3.Connection, since_ns: int, until_ns: int) -> dict[str, Any]:
    """The failed requests of the window grouped by provider and error type, the most frequent first."""
    page = queries.request_log(conn, Filters(status="error", since_ns=since_ns, until_ns=until_ns),
                               limit=ERRORS_READ)  # fmt: skip
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in page.rows:  # newest first: the first of a group is its latest
        key = (row["provider"] or "", row["error_type"] or "")
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "provider": key[0], "error_type": key[1], "count": 0, "http_status": row["http_status"],
                "last_message": row["error_message"], "last_id": row["id"], "last_ns": row["start_ns"],
                "last_time": row["start_time"],
            }  # fmt: skip
        group["count"] += 1
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], -g["last_id"]))
    return {"read": len(page.rows), "more": page.next_cursor is not None, "groups": ordered[:TOP]}


# --- the page -----------------------------------------------------------------------------------------


def _window_links(ctx: Ctx, current: str) -> Markup:
    links = [
        tag("a", name, href=ctx.url("", {"window": name}), id=f"window-{name}", class_="window-choice",
            aria_current="true" if name == current else None)
        for name in WINDOWS
    ]  # fmt: skip
    return tag("nav", "window: ", links, id="window-choices", aria_label="time window")


def _kpis(totals: dict[str, Any]) -> Markup:
    cards = [
        ("requests", "requests", formats.count(totals["requests"])),
        ("error-rate", "error rate",
         f"{formats.pct(totals['error_rate'])} ({formats.count(totals['errors'])})"),
        ("cost", "cost",
         formats.total_cost(totals["cost_usd"], totals["unpriced_requests"], totals["requests"]) or "-"),
        ("avg-duration", "avg duration", formats.duration(totals["avg_duration_ms"]) or "-"),
        ("avg-ttfc", "avg first chunk", formats.duration(totals["avg_ttfc_ms"]) or "-"),
    ]  # fmt: skip
    cards += [(f"{key.replace('_', '-')}", f"{label} tokens", formats.count(totals[key]))
              for label, key in TOKEN_KINDS]  # fmt: skip
    return tag(
        "section",
        [tag("div", tag("span", label, class_="kpi-label"), tag("span", value, class_="kpi-value"),
             id=f"kpi-{name}", class_="kpi") for name, label, value in cards],
        id="kpis", class_="kpis",
    )  # fmt: skip


def _usd(value: float) -> str:
    """Short enough for an axis: $0.25, $0.0012, $7.5e-05."""
    return formats.cost(value) if value == 0 or value >= 0.01 else f"${value:.2g}"


def _bucket_label(ns: int, resolution: str) -> str:
    text = formats.local_time(ns)
    if resolution == "day":
        return text[5:10]
    return text[11:16] if resolution != "hour" else text[5:16]


def _charts(data: dict[str, Any]) -> Markup:
    series = data["series"]
    points = series["points"]
    labels = [_bucket_label(p["start_ns"], series["resolution"]) for p in points]
    charts = []
    if not any(p["requests"] for p in points):
        charts.append(empty_chart("chart-requests", "requests", "no requests in this window"))
    else:
        charts.append(bar_chart("chart-requests", f"requests per {series['resolution']}", labels, [
            Series("requests", [p["requests"] for p in points]),
            Series("errors", [p["errors"] for p in points]),
        ]))  # fmt: skip
        charts.append(line_chart("chart-tokens", f"tokens per {series['resolution']}", labels, [
            Series("input", [p["input_tokens"] for p in points]),
            Series("output", [p["output_tokens"] for p in points]),
        ]))  # fmt: skip
        if all(p["cost_usd"] is None for p in points):  # a line at $0 would claim they cost nothing
            charts.append(empty_chart("chart-cost", "cost", "no request in this window was priced"))
        else:
            charts.append(line_chart("chart-cost", f"cost per {series['resolution']} (USD)", labels,
                                     [Series("cost", [p["cost_usd"] for p in points])],
                                     fmt=_usd))  # fmt: skip
    latency = data["latency"]
    latency_labels = [_bucket_label(p["start_ns"], "hour" if data["window"] in ("7d", "30d") else "minute")
                      for p in latency]  # fmt: skip
    for metric, chart_id, title in (("duration", "chart-latency", "duration percentiles"),
                                    ("ttfc", "chart-ttfc", "time to first chunk percentiles")):  # fmt: skip
        if not any(p[metric]["count"] for p in latency):
            nothing = "no requests" if metric == "duration" else "no streams"
            charts.append(empty_chart(chart_id, title, nothing))
            continue
        charts.append(line_chart(
            chart_id, title, latency_labels,
            [Series(q, [p[metric].get(q) for p in latency]) for q in ("p50", "p95", "p99")],
            fmt=lambda v: formats.duration(v) if v else "0",
        ))  # fmt: skip
    return tag("section", charts, id="charts", class_="charts")


def _health(ctx: Ctx, health: dict[str, Any]) -> Markup:
    if health.get("error"):
        return tag("section", tag("h2", "provider health"), message(health["error"], "error", "health-error"),
                   id="health")  # fmt: skip
    cards = []
    for provider, h in health["providers"].items():
        lines = [
            tag("p", f"{formats.count(h['requests'])} requests, {formats.pct(h['error_rate'])} errors, "
                     f"p95 {formats.duration(h['p95_latency_ms']) or '-'}"),
        ]  # fmt: skip
        if h["reasons"]:
            lines.append(tag("p", "; ".join(h["reasons"]), class_="health-reasons"))
        if h["last_error"]:
            lines.append(tag("p", f"last error {formats.local_time(h['last_error_ns'])}: ", h["last_error"],
                             class_="health-last-error"))  # fmt: skip
        cards.append(tag(
            "article",
            tag("h3", tag("a", provider or "(none)", href=ctx.url("requests", {"provider": provider}))),
            tag("span", h["status"], class_=f"status status-{h['status']}"),
            lines, class_="health-card", data_provider=provider, data_status=h["status"],
        ))  # fmt: skip
    if not cards:
        cards.append(tag("p", "no providers seen in the last 24 hours", class_="empty"))
    note = f"overall {health['status']}: requests of the last {health['window_s']:g} s"
    return tag("section", tag("h2", "provider health"), tag("p", note, class_="note"),
               tag("div", cards, id="health-cards", class_="cards"), id="health")  # fmt: skip


def _top_models(ctx: Ctx, groups: list[dict[str, Any]]) -> Markup:
    rows = [
        [tag("a", g["key"] or "(none)", href=ctx.url("requests", {"model": g["key"]})),
         formats.count(g["requests"]), formats.pct(g["error_rate"]), formats.count(g["input_tokens"]),
         formats.count(g["output_tokens"]),
         formats.total_cost(g["cost_usd"], g["unpriced_requests"], g["requests"]),
         formats.duration(g["avg_duration_ms"])]
        for g in groups
    ]  # fmt: skip
    headers = ["model", "requests", "errors", "in tokens", "out tokens", "cost", "avg"]
    return tag("section", tag("h2", "top models"),
               table("top-models", headers, rows, empty="no requests in this window", numeric=range(1, 7)),
               id="models")  # fmt: skip


def _top_errors(ctx: Ctx, errors: dict[str, Any]) -> Markup:
    rows = [
        [g["provider"] or "(none)", g["error_type"] or "(none)", formats.count(g["count"]),
         tag("a", formats.local_time(g["last_ns"]), href=ctx.url(f"requests/{g['last_id']}")),
         tag("span", g["last_message"] or "", class_="error-message")]
        for g in errors["groups"]
    ]  # fmt: skip
    note = f"the newest {errors['read']} failed requests of the window" if errors["more"] else None
    return tag("section", tag("h2", "top errors"), tag("p", note, class_="note") if note else None,
               table("top-errors", ["provider", "error", "count", "last", "last message"], rows,
                     empty="no errors in this window", numeric=(2,)),
               id="errors")  # fmt: skip


def render(data: dict[str, Any], ctx: Ctx) -> Markup:
    return join((
        _window_links(ctx, data["window"]),
        _kpis(data["totals"]["totals"]),
        _charts(data),
        _health(ctx, data["health"]),
        _top_models(ctx, data["top_models"]),
        _top_errors(ctx, data["top_errors"]),
    ))  # fmt: skip
