"""Requests: the request log with every filter of `llmlens log`, keyset pages (older via the cursor),
and new rows appearing at the top while the first page is open (app.js polls `requests/newer`).

`load` and `load_newer` ask the store (request_log, new_requests, latest_id); `/api/requests` and
`/api/requests/new` are their answers as JSON, `render` and `render_rows` draw them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from llmlens.store import formats, queries
from llmlens.store.queries import STATUSES
from llmlens.web import params
from llmlens.web.html import Markup, breakable, join, tag
from llmlens.web.layout import Ctx
from llmlens.web.tables import row_html, table

HEADERS = ["id", "time", "provider", "model", "operation", "stream", "status", "duration", "ttfc", "in",
           "out", "cost", "key", "profile"]  # fmt: skip
NUMERIC = (0, 7, 8, 9, 10, 11)
NEWER_MAX = 200  # rows a poll adds at most (the rest come with the next poll)


def load(conn: sqlite3.Connection, query: Mapping[str, str]) -> dict[str, Any]:
    filters = params.filters(query)
    limit, cursor = params.limit(query), params.cursor(query)
    latest = queries.latest_id(conn)  # read first: a row written meanwhile shows up with the next poll
    page = queries.request_log(conn, filters, limit=limit, cursor=cursor)
    return {
        "query": params.filter_text(query), "filters": filters.to_dict(), "limit": limit, "cursor": cursor,
        "rows": page.rows, "next_cursor": page.next_cursor, "latest_id": latest,
    }  # fmt: skip


def load_newer(conn: sqlite3.Connection, query: Mapping[str, str]) -> dict[str, Any]:
    """Rows written after `after` that match the filters, newest first, and the id to ask after next."""
    after = params.after(query)
    rows = queries.new_requests(conn, params.filters(query), after, limit=NEWER_MAX)
    latest = rows[-1]["id"] if len(rows) == NEWER_MAX else max([queries.latest_id(conn), after])
    return {"after": after, "rows": list(reversed(rows)), "latest_id": latest}


# --- the page -----------------------------------------------------------------------------------------


def cells(row: dict[str, Any], ctx: Ctx) -> list[Any]:
    profile = row.get("profile_id")
    status = row.get("status") or ""
    model = formats.model_text(row)
    return [
        tag("a", row["id"], href=ctx.url(f"requests/{row['id']}"), class_="request-link"),
        tag("time", formats.local_time(row.get("start_ns")), datetime=row.get("start_time")),
        row.get("provider") or "",
        tag("span", model, class_="model", title=model),
        row.get("operation") or "",
        "yes" if row.get("stream") else "",
        tag("span", breakable(formats.status_text(row)), title=row.get("error_message") or None,
            class_=f"status status-{'error' if row.get('is_error') else status}"),
        formats.duration(row.get("duration_ms")),
        formats.duration(row.get("ttfc_ms")),
        formats.count(row.get("input_tokens")),
        formats.count(row.get("output_tokens")),
        formats.cost_cell(row),
        row.get("api_key_label") or "",
        tag("a", profile, href=ctx.url(f"profiles/{profile}")) if profile else "",
    ]  # fmt: skip


def render_rows(rows: Sequence[dict[str, Any]], ctx: Ctx) -> Markup:
    """Table rows (`<tr data-id>`), for the page and for the live fragment app.js inserts."""
    return join(row_html(cells(row, ctx), NUMERIC, row["id"]) for row in rows)


def _field(name: str, label: str, value: str | None, placeholder: str = "") -> Markup:
    return tag("label", label, tag("input", type="text", name=name, id=f"filter-{name}", value=value or "",
                                   placeholder=placeholder or None), for_=f"filter-{name}")  # fmt: skip


def _select(name: str, label: str, value: str | None, options: Sequence[tuple[str, str]]) -> Markup:
    choices = [tag("option", text, value=v, selected=(v == (value or ""))) for v, text in options]
    return tag("label", label, tag("select", choices, name=name, id=f"filter-{name}"), for_=f"filter-{name}")


def filter_form(ctx: Ctx, query: Mapping[str, str], limit: int) -> Markup:
    stream = (query.get("stream") or "").lower()
    stream = "yes" if stream in params.YES else "no" if stream in params.NO else ""
    fields = [
        _field("since", "since", query.get("since"), "1h, 7d or ISO time"),
        _field("until", "until", query.get("until"), "ISO time"),
        _field("model", "model", query.get("model")),
        _field("provider", "provider", query.get("provider")),
        _select("status", "status", query.get("status"), [("", "any"), *((s, s) for s in STATUSES)]),
        _field("key", "API key", query.get("key")),
        _field("operation", "operation", query.get("operation")),
        _select("stream", "stream", stream, [("", "any"), ("yes", "streamed"), ("no", "not streamed")]),
        _field("error", "error text", query.get("error")),
        _field("trace", "trace id", query.get("trace"), "32 hex digits"),
        _field("limit", "rows", str(limit)),
    ]  # fmt: skip
    clear = tag("a", "clear", href=ctx.url("requests"), id="filter-clear")
    buttons = tag("div", tag("button", "filter", type="submit", id="filter-apply"), clear, class_="buttons")
    return tag("form", fields, buttons, method="get", action=ctx.url("requests"), id="filter-form",
               class_="filters")  # fmt: skip


def render(data: dict[str, Any], ctx: Ctx, error: str | None = None) -> Markup:
    query: dict[str, str] = data.get("query", {})
    parts = [filter_form(ctx, query, data.get("limit", params.DEFAULT_LIMIT))]
    if error:
        parts.append(tag("p", error, id="filter-problem", class_="notice notice-error", role="alert"))
        return join(parts)
    rows = data["rows"]
    first_page = data["cursor"] is None
    keep = {**query, "limit": data["limit"] if data["limit"] != params.DEFAULT_LIMIT else None}
    body_attributes: dict[str, Any] = {}
    if first_page:  # new rows appear on the first page only; app.js adds `after`
        body_attributes = {"data_newer_url": ctx.url("requests/newer", keep), "data_after": data["latest_id"]}
    empty = "no requests match these filters" if data["filters"] else "no requests recorded yet"
    log = table("request-log", HEADERS, [cells(r, ctx) for r in rows], empty=empty, numeric=NUMERIC,
                row_ids=[r["id"] for r in rows], body_id="request-log-rows",
                body_attributes=body_attributes)  # fmt: skip
    pager = []
    if not first_page:
        pager.append(tag("a", "newest", href=ctx.url("requests", keep), id="page-newest"))
    if data["next_cursor"] is not None:
        pager.append(tag("a", "older", href=ctx.url("requests", {**keep, "cursor": data["next_cursor"]}),
                         id="page-older", rel="next"))  # fmt: skip
    status = tag("p", "live: new requests appear at the top" if first_page else "", id="request-log-live",
                 class_="note")  # fmt: skip
    parts += [status, log, tag("nav", pager, id="pager", class_="pager")]
    return join(parts)
