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
  rows walked (see `_driver`).
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
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from llmlens.settings import SettingsError
from llmlens.store import inputs
from llmlens.store.inputs import QueryError
from llmlens.store.rollups import percentile_from_hist
from llmlens.store.schema import SCHEMA_VERSION

NS = 1_000_000_000
MINUTE_NS = 60 * NS
HOUR_NS = 3600 * NS
# At most this many request rows in a window: percentiles and health are computed exactly from them.
EXACT_MAX_ROWS = 20_000
# Index candidates for a page are counted up to this many rows; a time range walks the start_ns index
# (then sorts by id) only when it holds at most this many, else `id` or another filter's index.
TIME_INDEX_MAX_ROWS = 5_000
# A wide time range that is not the newest rows bounds the page walk by its id span when it holds at
# most about this many rows (see _id_bounds).
ID_BOUNDS_MAX_ROWS = 200_000
MAX_PAGE = 10_000
MAX_SERIES_POINTS = 20_000
STATUSES = ("ok", "error", "unset")

# The model of a request, as the rollups key it: the response model, else the request model.
_MODEL_SQL = "coalesce(nullif(response_model, ''), nullif(request_model, ''), '')"
_PROVIDER_SQL = "coalesce(provider, '')"


# --- small helpers -------------------------------------------------------------------------------


def iso(ns: int | None) -> str | None:
    """ISO 8601 UTC with milliseconds, e.g. `2025-11-23T11:02:03.123Z`."""
    if ns is None:
        return None
    moment = datetime.fromtimestamp(ns / NS, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now(now_ns: int | None) -> int:
    return time.time_ns() if now_ns is None else inputs.timestamp(now_ns, "now_ns")


def _label(q: float) -> str:
    return f"p{q * 100:g}"


def _plain(value: Any) -> Any:
    """Dataclasses to dicts, recursively, with each object's derived fields (its `to_dict`)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields_dict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fields_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def database_path(conn: sqlite3.Connection) -> str | None:
    """The file behind a connection's main database (None for an in-memory one)."""
    for _, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return path or None
    return None


# --- the request log -----------------------------------------------------------------------------


@dataclass
class Filters:
    """Request-log filters; every one that is set must match (None: no filter)."""

    since_ns: int | None = None  # start time >= since
    until_ns: int | None = None  # start time < until
    model: str | None = None  # the request model or the response model
    provider: str | None = None  # gen_ai.provider.name
    status: str | None = None  # ok | error | unset (the span status)
    api_key_label: str | None = None
    operation: str | None = None  # chat, embeddings, ...
    stream: bool | None = None
    error_text: str | None = None  # substring of error_type or error_message (failed requests only)
    trace_id: str | None = None

    def validate(self) -> Filters:
        if self.status is not None and self.status not in STATUSES:
            raise QueryError(f"status {self.status!r} is not valid; accepted values: {', '.join(STATUSES)}")
        if self.since_ns is not None:
            self.since_ns = inputs.timestamp(self.since_ns, "since_ns")
        if self.until_ns is not None:
            self.until_ns = inputs.timestamp(self.until_ns, "until_ns")
        if self.since_ns is not None and self.until_ns is not None and self.since_ns >= self.until_ns:
            raise QueryError(f"since ({iso(self.since_ns)}) is not before until ({iso(self.until_ns)})")
        if self.trace_id is not None:
            self.trace_id = inputs.trace_id(self.trace_id)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Page:
    """One page of the request log, newest first; pass `next_cursor` back for the next (older) page."""

    rows: list[dict[str, Any]]
    next_cursor: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "next_cursor": self.next_cursor}


def row_dict(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """A `requests` row as a dict: every column, attributes parsed, plus `model`, `start_time`, `end_time`."""
    row = dict(zip(names, values, strict=True))
    try:
        row["attributes"] = json.loads(row.get("attributes") or "{}")
    except ValueError:
        row["attributes"] = {"_unparsed": row.get("attributes")}
    row["stream"] = bool(row.get("stream"))
    row["is_error"] = bool(row.get("is_error"))
    reasons = row.get("finish_reasons")
    row["finish_reasons"] = reasons.split(",") if reasons else []
    row["model"] = row.get("response_model") or row.get("request_model") or None
    row["start_time"] = iso(row.get("start_ns"))
    row["end_time"] = iso(row.get("end_ns"))
    return row


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [row_dict(names, values) for values in cursor.fetchall()]


def _count_capped(conn: sqlite3.Connection, lo: int | None, hi: int | None, cap: int) -> int:
    """Request rows with start_ns in [lo, hi), counted on the time index up to `cap` + 1."""
    return int(
        conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM requests INDEXED BY requests_by_time "
            "WHERE start_ns >= ? AND start_ns < ? LIMIT ?)",
            (-(2**63) if lo is None else lo, 2**63 - 1 if hi is None else hi, cap + 1),
        ).fetchone()[0]
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class _Term:
    """One filter condition: `sql` uses `{c}` where a column goes; `index` can drive a page walk."""

    name: str
    sql: str
    params: list[Any]
    index: str | None = None

    def render(self, driving: bool) -> str:
        # `+column` keeps the planner off that column's index, so the chosen driver walks the page.
        return self.sql.replace("{c}", "" if driving else "+")


def _terms(f: Filters) -> list[_Term]:
    terms: list[_Term] = []
    if f.trace_id is not None:
        terms.append(_Term("trace", "{c}trace_id = ?", [f.trace_id], "sqlite_autoindex_requests_1"))
    if f.model is not None:  # rendered specially: request model OR response model
        terms.append(_Term("model", "", [f.model], "requests_by_model"))
    if f.api_key_label is not None:
        terms.append(_Term("key", "{c}api_key_label = ?", [f.api_key_label], "requests_by_key_label"))
    if f.provider is not None:
        terms.append(_Term("provider", "{c}provider = ?", [f.provider], "requests_by_provider"))
    if f.operation is not None:
        terms.append(_Term("operation", "{c}operation = ?", [f.operation], "requests_by_operation"))
    if f.status == "error" or f.error_text:
        terms.append(_Term("failed", "{c}is_error = 1", [], "requests_by_class"))
    elif f.status is not None:
        terms.append(_Term("status", "{c}status = ?", [f.status], "requests_by_status"))
    if f.status is not None and f.status != "error" and f.error_text:
        terms.append(_Term("status", "status = ?", [f.status]))  # unset/ok and error text: nothing matches
    if f.since_ns is not None or f.until_ns is not None:
        lo = -(2**63) if f.since_ns is None else int(f.since_ns)
        hi = 2**63 - 1 if f.until_ns is None else int(f.until_ns)
        terms.append(_Term("time", "{c}start_ns >= ? AND {c}start_ns < ?", [lo, hi], "requests_by_time"))
    if f.stream is not None:
        terms.append(_Term("stream", "stream = ?", [1 if f.stream else 0]))
    if f.error_text:
        pattern = f"%{_escape_like(f.error_text)}%"
        terms.append(
            _Term(
                "error_text",
                "(error_type LIKE ? ESCAPE '\\' OR error_message LIKE ? ESCAPE '\\')",
                [pattern] * 2,
            )
        )
    return terms


def _index_names(conn: sqlite3.Connection) -> set[str]:
    return {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests'")
    }


def _capped(conn: sqlite3.Connection, index: str, where: str, params: Sequence[Any]) -> int:
    return int(
        conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM requests INDEXED BY {index} WHERE {where} LIMIT ?)",
            [*params, TIME_INDEX_MAX_ROWS + 1],
        ).fetchone()[0]
    )


def _driver(conn: sqlite3.Connection, terms: list[_Term]) -> _Term | None:
    """The filter whose index walks the fewest rows for a page.

    Each candidate's matches are counted on its index, up to TIME_INDEX_MAX_ROWS + 1 (a fraction of a
    millisecond); the fewest wins. An `(column, id)` index yields rows already in id order, so a page
    stops after `limit` matches; the time index needs a sort, so it only drives a range of at most
    TIME_INDEX_MAX_ROWS rows. Without a candidate the page walks `id` itself.
    """
    indexes = _index_names(conn)
    best: tuple[int, int, _Term] | None = None
    for rank, term in enumerate(terms):
        if term.index is None or term.index not in indexes:
            continue
        if term.name == "trace":
            return term
        if term.name == "model":
            if "requests_by_response_model" not in indexes:
                continue
            count = _capped(conn, "requests_by_model", "request_model = ?", term.params) + _capped(
                conn, "requests_by_response_model", "response_model = ?", term.params
            )
        else:
            count = _capped(conn, term.index, term.render(True), term.params)
        if term.name == "time" and count > TIME_INDEX_MAX_ROWS:
            continue
        count = min(count, TIME_INDEX_MAX_ROWS + 1)
        if best is None or (count, rank) < best[:2]:
            best = (count, rank, term)
    return best[2] if best else None


def _id_bounds(conn: sqlite3.Connection, lo: int, hi: int) -> tuple[int, int] | None:
    """The smallest and largest id of the rows that started in [lo, hi), if that range is not huge.

    A time range too wide for the time index to drive may still lie far from the newest rows (`--since
    8d --until 7d`): walking ids from the newest row would pass every newer row first. Its exact id
    span, read from the covering time index, lets the walk start at the range's newest row instead.
    Ids follow start times closely, so the ids at the two ends of the range estimate its size first.
    """
    first = conn.execute(
        "SELECT id FROM requests INDEXED BY requests_by_time WHERE start_ns >= ? ORDER BY start_ns LIMIT 1",
        (lo,),
    ).fetchone()
    last = conn.execute(
        "SELECT id FROM requests INDEXED BY requests_by_time WHERE start_ns < ? "
        "ORDER BY start_ns DESC LIMIT 1",
        (hi,),
    ).fetchone()
    if first is None or last is None:
        return (1, 0)  # nothing starts in the range
    if abs(last[0] - first[0]) > ID_BOUNDS_MAX_ROWS:
        return None
    low, high = conn.execute(
        "SELECT min(id), max(id) FROM requests INDEXED BY requests_by_time "
        "WHERE start_ns >= ? AND start_ns < ?",
        (lo, hi),
    ).fetchone()
    return (1, 0) if low is None else (int(low), int(high))


def _page_sql(
    conn: sqlite3.Connection,
    f: Filters,
    limit: int,
    before: int | None = None,
    after: int | None = None,
    descending: bool = True,
) -> tuple[str, list[Any]]:
    """The SELECT of one keyset page, and its parameters (see `_driver` for the index it walks)."""
    terms = _terms(f)
    driver = _driver(conn, terms)
    where: list[str] = []
    params: list[Any] = []
    for term in terms:
        if term.name == "model":
            if term is not driver:
                where.append("(+request_model = ? OR +response_model = ?)")
                params += [f.model, f.model]
            continue
        where.append(term.render(term is driver))
        params += term.params
    if before is not None:
        where.append("id < ?")
        params.append(int(before))
    if after is not None:
        where.append("id > ?")
        params.append(int(after))
    time_term = next((t for t in terms if t.name == "time"), None)
    if (
        time_term is not None
        and time_term is not driver
        and (f.until_ns if descending else f.since_ns) is not None
    ):
        bounds = _id_bounds(conn, *time_term.params)
        if bounds is not None:
            where.append("id >= ? AND id <= ?")
            params += list(bounds)
    order = "DESC" if descending else "ASC"
    if driver is None or driver.name != "model":
        source = "requests"
        if driver is not None and driver.name != "trace":
            source += f" INDEXED BY {driver.index}"
        clause = " AND ".join(where) or "1"
        return f"SELECT * FROM {source} WHERE {clause} ORDER BY id {order} LIMIT ?", [*params, limit]
    # The model is the request or the response model: two index walks, each already in id order,
    # merged (the second skips the rows the first one has).
    rest = "".join(f" AND {w}" for w in where)
    first = (
        f"SELECT * FROM requests INDEXED BY requests_by_model WHERE request_model = ?{rest} "
        f"ORDER BY id {order} LIMIT ?"
    )
    second = (
        "SELECT * FROM requests INDEXED BY requests_by_response_model WHERE response_model = ? "
        f"AND +request_model IS NOT ?{rest} ORDER BY id {order} LIMIT ?"
    )
    sql = (
        f"SELECT * FROM (SELECT * FROM ({first}) UNION ALL SELECT * FROM ({second})) "
        f"ORDER BY id {order} LIMIT ?"
    )
    return sql, [f.model, *params, limit, f.model, f.model, *params, limit, limit]


def _limit(limit: int, maximum: int = MAX_PAGE, what: str = "limit") -> int:
    return inputs.count(limit, maximum, what)


def request_log(
    conn: sqlite3.Connection, filters: Filters | None = None, limit: int = 50, cursor: int | str | None = None
) -> Page:
    """A page of request rows, newest first (by `id`, the order they were written)."""
    f = (filters or Filters()).validate()
    limit = _limit(limit)
    sql, params = _page_sql(conn, f, limit + 1, before=inputs.cursor(cursor))
    rows = _rows(conn.execute(sql, params))
    if len(rows) > limit:
        return Page(rows[:limit], rows[limit - 1]["id"])
    return Page(rows, None)


def new_requests(
    conn: sqlite3.Connection, filters: Filters | None, after_id: int, limit: int = 1000
) -> list[dict[str, Any]]:
    """Rows written after `after_id`, oldest first (what `llmlens log --follow` polls for)."""
    f = (filters or Filters()).validate()
    sql, params = _page_sql(conn, f, _limit(limit), after=after_id, descending=False)
    return _rows(conn.execute(sql, params))


def latest_id(conn: sqlite3.Connection) -> int:
    """The id of the newest request row (0 when empty)."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM requests").fetchone()[0])


def iter_requests(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    *,
    batch_size: int = 1000,
    oldest_first: bool = True,
) -> Iterator[dict[str, Any]]:
    """Every matching row, one keyset page at a time (never the whole result in memory)."""
    f = (filters or Filters()).validate()
    batch_size = _limit(batch_size, what="batch_size")
    position: int | None = None
    while True:
        if oldest_first:
            sql, params = _page_sql(conn, f, batch_size, after=position or 0, descending=False)
        else:
            sql, params = _page_sql(conn, f, batch_size, before=position, descending=True)
        rows = _rows(conn.execute(sql, params))
        yield from rows
        if len(rows) < batch_size:
            return
        position = rows[-1]["id"]


def explain(
    conn: sqlite3.Connection, filters: Filters, limit: int = 50, cursor: int | None = None
) -> list[str]:
    """The query plan of a request-log page (EXPLAIN QUERY PLAN details), for tests and tuning."""
    sql, params = _page_sql(conn, filters.validate(), _limit(limit) + 1, before=inputs.cursor(cursor))
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def recent_errors(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The newest failed requests, newest first."""
    cursor = conn.execute(
        "SELECT * FROM requests INDEXED BY requests_by_class WHERE is_error = 1 ORDER BY id DESC LIMIT ?",
        (_limit(limit),),
    )
    return _rows(cursor)


# --- one request and its span tree ---------------------------------------------------------------


@dataclass
class SpanNode:
    """One span of the request's trace; `request_id` is set when the span is a request row."""

    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    request_id: int | None = None
    children: list[SpanNode] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def walk(self, depth: int = 0) -> Iterator[tuple[int, SpanNode]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    def to_dict(self) -> dict[str, Any]:
        result = _fields_dict(self)
        result["duration_ms"] = self.duration_ms
        result["start_time"] = iso(self.start_ns)
        return result


@dataclass
class RequestDetail:
    """One request row (every column, attributes parsed) and the span tree of its trace."""

    request: dict[str, Any]
    trace_id: str
    tree: list[SpanNode]  # the roots, oldest first; the request span sits under its recorded parent
    span_count: int

    def spans(self) -> Iterator[tuple[int, SpanNode]]:
        for root in self.tree:
            yield from root.walk()

    def to_dict(self) -> dict[str, Any]:
        return _fields_dict(self)


def get_request(conn: sqlite3.Connection, ref: int | str) -> RequestDetail | None:
    """A request by `id`, by `trace_id/span_id` (or `trace_id:span_id`), by trace id, or by span id.

    A bare trace id picks the trace's outermost request (the first one written if there are several);
    a bare span id is looked up without an index (slow on a very large store). None if not found.
    """
    r = inputs.request_id(ref)
    lookups: list[tuple[str, tuple[Any, ...]]] = []
    if r.row_id is not None:  # (an all-digit span or trace id is tried as a row id first)
        lookups.append(("SELECT * FROM requests WHERE id = ?", (r.row_id,)))
    if r.trace_id is not None and r.span_id is not None:
        lookups.append(("SELECT * FROM requests WHERE trace_id = ? AND span_id = ?", (r.trace_id, r.span_id)))
    elif r.trace_id is not None:
        lookups.append(
            (
                "SELECT * FROM requests WHERE trace_id = ? ORDER BY (parent_span_id IS NOT NULL), id LIMIT 1",
                (r.trace_id,),
            )
        )
    elif r.span_id is not None:
        lookups.append(("SELECT * FROM requests WHERE span_id = ? ORDER BY id LIMIT 1", (r.span_id,)))
    rows: list[dict[str, Any]] = []
    for sql, params in lookups:
        rows = _rows(conn.execute(sql, params))
        if rows:
            break
    if not rows:
        return None
    request = rows[0]
    trace_id = request["trace_id"]
    nodes: dict[str, SpanNode] = {}
    for values in conn.execute(
        "SELECT span_id, parent_span_id, name, kind, start_ns, end_ns, status, attributes "
        "FROM spans WHERE trace_id = ?",
        (trace_id,),
    ):
        try:
            attributes = json.loads(values[7] or "{}")
        except ValueError:
            attributes = {}
        nodes[values[0]] = SpanNode(*values[:7], attributes)  # type: ignore[arg-type]
    for row in _rows(conn.execute("SELECT * FROM requests WHERE trace_id = ?", (trace_id,))):
        attributes = dict(row["attributes"])
        nodes[row["span_id"]] = SpanNode(
            row["span_id"], row["parent_span_id"], row["span_name"], row["span_kind"], row["start_ns"],
            row["end_ns"], row["status"], attributes, request_id=row["id"],
        )  # fmt: skip
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = nodes.get(node.parent_span_id) if node.parent_span_id else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.start_ns, n.span_id))
    roots.sort(key=lambda n: (n.start_ns, n.span_id))
    return RequestDetail(request, trace_id, roots, len(nodes))


# --- aggregates from the rollups -----------------------------------------------------------------


@dataclass
class Window:
    """The time covered: what was asked (`since_ns`/`until_ns`, None = open) and the rollup minutes read."""

    since_ns: int | None
    until_ns: int | None
    first_minute: int | None  # minutes since the epoch, inclusive; None = from the oldest rollup
    last_minute: int | None  # inclusive; None = up to the newest

    @classmethod
    def of(cls, since_ns: int | None, until_ns: int | None) -> Window:
        since_ns = None if since_ns is None else inputs.timestamp(since_ns, "since_ns")
        until_ns = None if until_ns is None else inputs.timestamp(until_ns, "until_ns")
        if since_ns is not None and until_ns is not None and since_ns >= until_ns:
            raise QueryError(f"since ({iso(since_ns)}) is not before until ({iso(until_ns)})")
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
    cost_usd: float = 0.0
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
                     "cache_write_tokens", "reasoning_tokens", "cost_usd", "total_duration_ms", "ttfc_count",
                     "total_ttfc_ms"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
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
    "sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd), "
    "sum(duration_ms_sum), max(duration_ms_max), sum(ttfc_count), sum(ttfc_ms_sum), max(last_ns)"
)


def _totals_of(values: Sequence[Any]) -> Totals:
    n, errors, streaming, i, o, cr, cw, r, cost, dsum, dmax, tcount, tsum, last = values
    return Totals(
        requests=int(n or 0), errors=int(errors or 0), streaming=int(streaming or 0),
        input_tokens=int(i or 0), output_tokens=int(o or 0), cache_read_tokens=int(cr or 0),
        cache_write_tokens=int(cw or 0),
        reasoning_tokens=int(r or 0), cost_usd=float(cost or 0.0), total_duration_ms=float(dsum or 0.0),
        max_duration_ms=float(dmax or 0.0), ttfc_count=int(tcount or 0), total_ttfc_ms=float(tsum or 0.0),
        last_ns=int(last) if last else None,
    )  # fmt: skip


_ROLLUP_COLUMNS = (
    "provider, model, operation, stream, is_error, requests, duration_ms_sum, duration_ms_max, ttfc_ms_sum, "
    "ttfc_count, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, "
    "cost_usd, duration_hist, ttfc_hist, last_ns"
)


def _hours_usable(conn: sqlite3.Connection) -> bool:
    """The store has the hourly rollups (schema 2) and they are as current as the minute rollups."""
    if (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollup_hour'").fetchone()
        is None
    ):
        return False
    hour = conn.execute("SELECT max(hour) FROM rollup_hour").fetchone()[0]
    minute = conn.execute("SELECT max(minute) FROM rollup_minute").fetchone()[0]
    return hour == (None if minute is None else minute // 60)


def _rollup_source(conn: sqlite3.Connection, window: Window) -> tuple[str, list[Any]]:
    """A FROM item with the rollup rows of the window (columns of rollup_minute).

    With hourly rollups, the whole hours come from `rollup_hour` (as `minute` = hour * 60) and only the
    minutes at the two edges from `rollup_minute`: 60 times fewer rows for long windows.
    """
    first, last = window.first_minute, window.last_minute
    minutes = f"SELECT minute, {_ROLLUP_COLUMNS} FROM rollup_minute WHERE"
    if not _hours_usable(conn):
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
    parts.append(
        f"SELECT hour * 60 AS minute, {_ROLLUP_COLUMNS} FROM rollup_hour WHERE {' AND '.join(hours) or '1'}"
    )
    params += [h for h in (h0, h1) if h is not None]
    return "(" + " UNION ALL ".join(parts) + ")", params


def _rollup_groups(
    conn: sqlite3.Connection, window: Window, keys: Sequence[str]
) -> list[tuple[tuple[Any, ...], Totals]]:
    source, params = _rollup_source(conn, window)
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


@dataclass
class TotalsResult:
    window: Window
    totals: Totals

    def to_dict(self) -> dict[str, Any]:
        return _fields_dict(self)


def totals(
    conn: sqlite3.Connection, since_ns: int | None = None, until_ns: int | None = None
) -> TotalsResult:
    """Everything in the window added up (from the rollups)."""
    window = Window.of(since_ns, until_ns)
    groups = _rollup_groups(conn, window, ())
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
        return _fields_dict(self)


_BY = {"provider": "provider", "model": "model", "operation": "operation"}


def _by(by: str | None, allowed: Sequence[str] = ("provider", "model", "operation")) -> str:
    if by not in allowed:
        raise QueryError(f"by {by!r} is not valid; accepted values: {', '.join(allowed)}")
    return by


def breakdown(
    conn: sqlite3.Connection, since_ns: int | None = None, until_ns: int | None = None, by: str = "provider"
) -> Breakdown:
    """Totals per provider, model or operation (from the rollups); the model is the response model."""
    column = _BY[_by(by)]
    window = Window.of(since_ns, until_ns)
    groups = [Group(key[0], t) for key, t in _rollup_groups(conn, window, (column,))]
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
        return {"last_accessed": self.last_accessed, **_fields_dict(self)}


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
    for (prov, mod, stream), t in _rollup_groups(conn, window, ("provider", "model", "stream")):
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


# --- percentiles -----------------------------------------------------------------------------------


@dataclass
class PercentileValues:
    count: int
    values: dict[str, float | None]  # "p50" -> milliseconds

    def to_dict(self) -> dict[str, Any]:
        return _fields_dict(self)


@dataclass
class PercentileResult:
    metric: str  # duration | ttfc
    source: str  # "requests": exact (nearest rank) | "rollups": histogram bucket upper bound
    window: Window
    overall: PercentileValues
    by: str | None = None
    groups: dict[str, PercentileValues] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.source == "requests"

    @property
    def note(self) -> str:
        if self.exact:
            return "exact (nearest rank over the request rows)"
        return "from the rollup histograms: each value is the upper bound of its bucket (at most 25% high)"

    def to_dict(self) -> dict[str, Any]:
        return {**_fields_dict(self), "exact": self.exact, "note": self.note}


def exact_percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


def _qs(qs: Sequence[float]) -> tuple[float, ...]:
    if not qs or any(not isinstance(q, (int, float)) or not 0 < q <= 1 for q in qs):
        raise QueryError(f"quantiles {list(qs)!r} are not valid; each must be > 0 and <= 1 (0.95 = p95)")
    return tuple(float(q) for q in qs)


def _window_is_complete(conn: sqlite3.Connection, window: Window) -> bool:
    """True when the request rows of the window are few enough to read and none were pruned."""
    rows = _count_capped(conn, window.start_ns, window.end_ns, EXACT_MAX_ROWS)
    if rows > EXACT_MAX_ROWS:
        return False
    source, params = _rollup_source(conn, window)
    rolled = conn.execute(f"SELECT coalesce(sum(requests), 0) FROM {source}", params)
    return rows == int(rolled.fetchone()[0])


def percentiles(
    conn: sqlite3.Connection,
    since_ns: int | None = None,
    until_ns: int | None = None,
    metric: str = "duration",
    qs: Sequence[float] = (0.5, 0.95, 0.99),
    by: str | None = None,
) -> PercentileResult:
    """Duration or time-to-first-chunk percentiles (ms) over the window, overall and per `by` group."""
    if metric not in ("duration", "ttfc"):
        raise QueryError(f"metric {metric!r} is not valid; accepted values: duration, ttfc")
    qs = _qs(qs)
    if by is not None:
        _by(by, ("provider", "model"))
    window = Window.of(since_ns, until_ns)
    if _window_is_complete(conn, window):
        source = "requests"
        column = "duration_ms" if metric == "duration" else "ttfc_ms"
        key = {"provider": _PROVIDER_SQL, "model": _MODEL_SQL, None: "''"}[by]
        values: dict[str, list[float]] = {}
        everything: list[float] = []
        for group, value in conn.execute(
            f"SELECT {key}, {column} FROM requests INDEXED BY requests_by_time "
            f"WHERE start_ns >= ? AND start_ns < ? AND {column} IS NOT NULL",
            (-(2**63) if window.start_ns is None else window.start_ns,
             2**63 - 1 if window.end_ns is None else window.end_ns),
        ):  # fmt: skip
            values.setdefault(group, []).append(value)
            everything.append(value)
        everything.sort()
        overall = PercentileValues(len(everything), {_label(q): exact_percentile(everything, q) for q in qs})
        per_group = {}
        for group, group_values in sorted(values.items()):
            group_values.sort()
            per_group[group] = PercentileValues(
                len(group_values), {_label(q): exact_percentile(group_values, q) for q in qs}
            )
    else:
        source = "rollups"
        hist_column = "duration_hist" if metric == "duration" else "ttfc_hist"
        key = {"provider": "provider", "model": "model", None: "''"}[by]
        rows, params = _rollup_source(conn, window)
        hists: dict[str, dict[int, int]] = {}
        merged: dict[int, int] = {}
        for group, bucket, count in conn.execute(
            f"SELECT {key}, CAST(j.key AS INTEGER), sum(j.value) "
            f"FROM {rows} AS r, json_each(r.{hist_column}) AS j GROUP BY 1, 2",
            params,
        ):
            hists.setdefault(group, {})[bucket] = int(count)
            merged[bucket] = merged.get(bucket, 0) + int(count)
        overall = PercentileValues(
            sum(merged.values()), {_label(q): percentile_from_hist(merged, q) for q in qs}
        )
        per_group = {
            group: PercentileValues(sum(h.values()), {_label(q): percentile_from_hist(h, q) for q in qs})
            for group, h in sorted(hists.items())
        }
    return PercentileResult(metric, source, window, overall, by, per_group if by else {})


# --- time series -----------------------------------------------------------------------------------

_RESOLUTIONS = {"second": (NS, 300), "minute": (MINUTE_NS, 86_400), "hour": (HOUR_NS, 30 * 86_400)}


@dataclass
class Point:
    start_ns: int
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
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
        return {**_fields_dict(self), "since": iso(self.since_ns), "until": iso(self.until_ns)}


def time_series(
    conn: sqlite3.Connection,
    resolution: str = "minute",
    since_ns: int | None = None,
    until_ns: int | None = None,
    now_ns: int | None = None,
) -> TimeSeries:
    """Counts, errors, tokens, cost and mean duration per bucket.

    `second` reads the request rows (default: the last 5 minutes); `minute` (default: 24 hours) and
    `hour` (default: 30 days) read the rollups. Buckets are whole seconds / minutes / hours by start
    time; the first and last bucket are the ones `since` and `until` fall in.
    """
    if resolution not in _RESOLUTIONS:
        raise QueryError(
            f"resolution {resolution!r} is not valid; accepted values: {', '.join(_RESOLUTIONS)}"
        )
    step, default_span_s = _RESOLUTIONS[resolution]
    until = _now(now_ns) if until_ns is None else inputs.timestamp(until_ns, "until_ns")
    since = until - default_span_s * NS if since_ns is None else inputs.timestamp(since_ns, "since_ns")
    if since >= until:
        raise QueryError(f"since ({iso(since)}) is not before until ({iso(until)})")
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
            "coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0), sum(duration_ms) "
            "FROM requests INDEXED BY requests_by_time WHERE start_ns >= ? AND start_ns < ? GROUP BY b",
            (NS, first * step, (last + 1) * step),
        )
    else:
        source = "rollups"
        per = step // MINUTE_NS
        table, unit = (
            ("rollup_hour", "hour") if per == 60 and _hours_usable(conn) else ("rollup_minute", "minute")
        )
        if unit == "hour":
            per, first_unit, end_unit = 1, first, last + 1
        else:
            first_unit, end_unit = first * per, (last + 1) * per
        rows = conn.execute(
            f"SELECT {unit} / ? AS b, sum(requests), sum(requests * is_error), sum(input_tokens), "
            f"sum(output_tokens), sum(cost_usd), sum(duration_ms_sum) FROM {table} "
            f"WHERE {unit} >= ? AND {unit} < ? GROUP BY b",
            (per, first_unit, end_unit),
        )
    for b, n, errors, i, o, cost, duration in rows:
        point = points.get(b)
        if point is not None:
            point.requests, point.errors = int(n), int(errors or 0)
            point.input_tokens, point.output_tokens = int(i or 0), int(o or 0)
            point.cost_usd, point.total_duration_ms = float(cost or 0.0), float(duration or 0.0)
    return TimeSeries(resolution, step // NS, first * step, (last + 1) * step, source, list(points.values()))


# --- provider health -------------------------------------------------------------------------------

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
            **_fields_dict(self),
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
            **_fields_dict(self),
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
    until = _now(now_ns)
    since = until - int(t.window_s * NS)
    stats: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return stats.setdefault(
            name,
            {"n": 0, "errors": 0, "duration": 0.0, "latencies": [], "hist": {}, "last_window_error": None,
             "error_leaves": None},
        )  # fmt: skip

    if _count_capped(conn, since, until, EXACT_MAX_ROWS) <= EXACT_MAX_ROWS:
        source = "requests"
        for name, is_error, duration, stream, ttfc, start_ns, end_ns in conn.execute(
            f"SELECT {_PROVIDER_SQL}, is_error, duration_ms, stream, ttfc_ms, start_ns, end_ns "
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
    day, day_params = _rollup_source(conn, Window.of(until - 86_400 * NS, None))
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
            f"WHERE is_error = 1 AND {_PROVIDER_SQL} = ? ORDER BY id DESC LIMIT 1",
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


# --- storage ---------------------------------------------------------------------------------------


@dataclass
class StorageStats:
    path: str | None
    db_bytes: int
    wal_bytes: int
    shm_bytes: int
    schema_version: int
    schema_version_known: int
    requests: int
    success_requests: int
    error_requests: int
    spans: int
    rollup_rows: int
    rollup_hour_rows: int
    oldest_request_ns: int | None
    newest_request_ns: int | None
    oldest_rollup_ns: int | None
    page_size: int
    page_count: int
    freelist_count: int
    journal_mode: str
    retention: dict[str, Any]  # the caps from the environment (or the error reading them)

    @property
    def total_bytes(self) -> int:
        return self.db_bytes + self.wal_bytes + self.shm_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            **_fields_dict(self),
            "total_bytes": self.total_bytes,
            "oldest_request": iso(self.oldest_request_ns),
            "newest_request": iso(self.newest_request_ns),
            "oldest_rollup": iso(self.oldest_rollup_ns),
        }


def file_sizes(path: str | None) -> tuple[int, int, int]:
    def size(p: str) -> int:
        try:
            return os.path.getsize(p)
        except OSError:
            return 0

    if not path:
        return 0, 0, 0
    return size(path), size(path + "-wal"), size(path + "-shm")


def storage_stats(conn: sqlite3.Connection, path: str | None = None) -> StorageStats:
    """File sizes, row counts per class, schema version, time span, pages and the retention caps."""
    from llmlens.store.retention import Retention

    path = path or database_path(conn)
    db, wal, shm = file_sizes(path)

    def one(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    success = int(one("SELECT count(*) FROM requests WHERE is_error = 0"))
    errors = int(one("SELECT count(*) FROM requests WHERE is_error = 1"))
    oldest_minute = one("SELECT min(minute) FROM rollup_minute")
    has_hours = one("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rollup_hour'") > 0
    try:
        r = Retention.from_env()
        retention: dict[str, Any] = asdict(r)
    except SettingsError as error:
        retention = {"error": str(error)}
    return StorageStats(
        path=path, db_bytes=db, wal_bytes=wal, shm_bytes=shm,
        schema_version=int(one("PRAGMA user_version")), schema_version_known=SCHEMA_VERSION,
        requests=success + errors, success_requests=success, error_requests=errors,
        spans=int(one("SELECT count(*) FROM spans")),
        rollup_rows=int(one("SELECT count(*) FROM rollup_minute")),
        rollup_hour_rows=int(one("SELECT count(*) FROM rollup_hour")) if has_hours else 0,
        oldest_request_ns=one("SELECT min(start_ns) FROM requests"),
        newest_request_ns=one("SELECT max(start_ns) FROM requests"),
        oldest_rollup_ns=None if oldest_minute is None else oldest_minute * MINUTE_NS,
        page_size=int(one("PRAGMA page_size")), page_count=int(one("PRAGMA page_count")),
        freelist_count=int(one("PRAGMA freelist_count")), journal_mode=str(one("PRAGMA journal_mode")),
        retention=retention,
    )  # fmt: skip


# --- compatibility shapes --------------------------------------------------------------------------

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
    - `active_streams` is always 0 (the store sees finished spans only);
    - `series` buckets requests by start second; `providers` comes from `provider_health` (its window,
      not the last 100 requests) and `status` can also be "degraded".
    """
    series_seconds = inputs.count(series_seconds, 300, "series_seconds")
    now = _now(now_ns)
    everything = Window.of(None, None)
    total = totals(conn).totals
    by_model: dict[str, int] = {}
    by_provider: dict[str, int] = {}
    by_model_tokens: dict[str, dict[str, int]] = {}
    by_provider_tokens: dict[str, dict[str, int]] = {}
    for (prov, mod), t in _rollup_groups(conn, everything, ("provider", "model")):
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
        "active_streams": 0,
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
    history blocks of the request anyway); `active_requests` is 0 (finished spans only); times are
    UTC ISO 8601 (Vandamme writes naive local time); `total_duration_ms` of a split is the real sum
    (Vandamme's is always 0); `summary.last_accessed` is `{"top": ...}` as there.
    """
    rt = running_totals(conn, provider=provider, model=model)
    summary_totals = _vandamme_totals(rt.total)
    summary: dict[str, Any] = {
        "last_accessed": {"top": rt.last_accessed} if rt.last_accessed else None,
        **{f"total_{k}": summary_totals[k] for k in _VANDAMME_KEYS[:9]},
        "active_requests": 0,
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


# --- schema checks -------------------------------------------------------------------------------------

# The `(column, id)` indexes of schema migration 2, one per equality filter of the request log.
QUERY_INDEXES = (
    "requests_by_model",
    "requests_by_response_model",
    "requests_by_provider",
    "requests_by_status",
    "requests_by_key_label",
    "requests_by_operation",
    "requests_by_class",
    "requests_by_time",
)


def missing_indexes(conn: sqlite3.Connection) -> list[str]:
    """The request-log indexes this store lacks (none once schema 2 is applied)."""
    present = _index_names(conn)
    return [name for name in QUERY_INDEXES if name not in present]


def has_hourly_rollups(conn: sqlite3.Connection) -> bool:
    """The store has `rollup_hour` (schema 2) and it is as current as the minute rollups."""
    return _hours_usable(conn)
