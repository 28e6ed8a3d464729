"""The request log: filters, keyset pages (newest first, never OFFSET), cursors, live tails, export and
recent errors.

Each page walks one index: the `(column, id)` index of the most selective equality filter (counted on
the index, capped), or the `start_ns` index for a narrow time range, or `id` itself; the other
filters are checked on the rows walked (see `_driver`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmlens.store import inputs
from llmlens.store.inputs import QueryError
from llmlens.store.query_common import count_capped, index_names, open_range, request_rows, time_range

# Index candidates for a page are counted up to this many rows; a time range walks the start_ns index
# (then sorts by id) only when it holds at most this many, else `id` or another filter's index.
TIME_INDEX_MAX_ROWS = 5_000
# A wide time range that is not the newest rows bounds the page walk by its id span when it holds at
# most about this many rows (see _id_bounds).
ID_BOUNDS_MAX_ROWS = 200_000
MAX_PAGE = 10_000
STATUSES = ("ok", "error", "unset")


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
        self.since_ns, self.until_ns = time_range(self.since_ns, self.until_ns)
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
        lo, hi = open_range(f.since_ns, f.until_ns)
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


def _capped(conn: sqlite3.Connection, index: str, where: str, params: Sequence[Any]) -> int:
    return count_capped(conn, index, where, params, TIME_INDEX_MAX_ROWS)


def _driver(conn: sqlite3.Connection, terms: list[_Term]) -> _Term | None:
    """The filter whose index walks the fewest rows for a page.

    Each candidate's matches are counted on its index, up to TIME_INDEX_MAX_ROWS + 1 (a fraction of a
    millisecond); the fewest wins. An `(column, id)` index yields rows already in id order, so a page
    stops after `limit` matches; the time index needs a sort, so it only drives a range of at most
    TIME_INDEX_MAX_ROWS rows. Without a candidate the page walks `id` itself.
    """
    indexes = index_names(conn)
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
    rows = request_rows(conn.execute(sql, params))
    if len(rows) > limit:
        return Page(rows[:limit], rows[limit - 1]["id"])
    return Page(rows, None)


def new_requests(
    conn: sqlite3.Connection, filters: Filters | None, after_id: int, limit: int = 1000
) -> list[dict[str, Any]]:
    """Rows written after `after_id`, oldest first (what `llmlens log --follow` polls for)."""
    f = (filters or Filters()).validate()
    sql, params = _page_sql(conn, f, _limit(limit), after=after_id, descending=False)
    return request_rows(conn.execute(sql, params))


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
        rows = request_rows(conn.execute(sql, params))
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
    return request_rows(cursor)
