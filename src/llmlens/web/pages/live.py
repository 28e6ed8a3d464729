"""Live: the requests in flight across every process writing to the store, with their elapsed time,
chunks so far and time to first chunk.

The page is rendered with a snapshot (llmlens.web.in_flight); app.js then follows `api/live/stream`,
an event stream that sends a new snapshot every `INTERVAL_S`, and redraws the table from it.
"""

from __future__ import annotations

from typing import Any

from llmlens.store import formats
from llmlens.web.html import Markup, join, tag
from llmlens.web.layout import Ctx
from llmlens.web.tables import table

INTERVAL_S = 0.75
HEADERS = ["started", "elapsed", "provider", "model", "operation", "route", "stream", "chunks",
           "first chunk", "process", "trace"]  # fmt: skip
NUMERIC = (1, 7, 8)
EMPTY = "no requests in flight"


def cells(row: dict[str, Any], ctx: Ctx) -> list[Any]:
    return [
        tag("time", formats.local_time(row["start_ns"]), datetime=row["start_time"]),
        formats.duration(row["elapsed_ms"]),
        row["provider"] or "",
        tag("span", row["request_model"] or "", class_="model", title=row["request_model"] or ""),
        row["operation"] or "",
        row["route"] or "",
        "yes" if row["stream"] else "",
        formats.count(row["chunks"]),
        formats.duration(row["ttfc_ms"]),
        f"{row['hostname']} {row['pid']}",
        tag("a", tag("code", row["trace_id"]), href=ctx.url("requests", {"trace": row["trace_id"]})),
    ]


def render(data: dict[str, Any], ctx: Ctx) -> Markup:
    rows = data["requests"]
    count = tag("p", tag("span", len(rows), id="live-count"), " in flight; ",
                tag("span", "connecting", id="live-status"), class_="note")  # fmt: skip
    stream = {"data_stream_url": ctx.url("api/live/stream"), "data_requests_url": ctx.url("requests")}
    live = table("live-requests", HEADERS, [cells(r, ctx) for r in rows], empty=EMPTY, numeric=NUMERIC,
                 body_id="live-rows", body_attributes=stream)  # fmt: skip
    return join((count, live))
