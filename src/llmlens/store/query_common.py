"""What every query module of the store shares: time units, ISO times, argument checks, results as
dicts, request rows as dicts, and row counts on an index that stop early.

The public API is `llmlens.store.queries`; this module imports nothing else of the read side.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any

from llmlens.store import inputs
from llmlens.store.inputs import QueryError

NS = 1_000_000_000
MINUTE_NS = 60 * NS
HOUR_NS = 3600 * NS
# At most this many request rows in a window: percentiles and health are computed exactly from them.
EXACT_MAX_ROWS = 20_000

# The model of a request, as the rollups key it: the response model, else the request model.
MODEL_SQL = "coalesce(nullif(response_model, ''), nullif(request_model, ''), '')"
PROVIDER_SQL = "coalesce(provider, '')"


# --- times ---------------------------------------------------------------------------------------


def iso(ns: int | None) -> str | None:
    """ISO 8601 UTC with milliseconds, e.g. `2025-11-23T11:02:03.123Z`."""
    if ns is None:
        return None
    moment = datetime.fromtimestamp(ns / NS, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def current_ns(now_ns: int | None) -> int:
    """`now_ns` checked, or the current time."""
    return time.time_ns() if now_ns is None else inputs.timestamp(now_ns, "now_ns")


def check_order(since_ns: int | None, until_ns: int | None) -> None:
    """Raise QueryError unless `since_ns` is before `until_ns` (either may be None: open)."""
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise QueryError(f"since ({iso(since_ns)}) is not before until ({iso(until_ns)})")


def time_range(since_ns: int | None, until_ns: int | None) -> tuple[int | None, int | None]:
    """`since_ns` and `until_ns` checked (nanosecond times, None: open), since before until."""
    since_ns = None if since_ns is None else inputs.timestamp(since_ns, "since_ns")
    until_ns = None if until_ns is None else inputs.timestamp(until_ns, "until_ns")
    check_order(since_ns, until_ns)
    return since_ns, until_ns


def open_range(lo: int | None, hi: int | None) -> tuple[int, int]:
    """`[lo, hi)` with None as the smallest and largest 64-bit integer (what SQLite compares with)."""
    return -(2**63) if lo is None else int(lo), 2**63 - 1 if hi is None else int(hi)


def check_by(by: str | None, allowed: Sequence[str] = ("provider", "model", "operation")) -> str:
    """A grouping key checked against the ones a query accepts."""
    if by not in allowed:
        raise QueryError(f"by {by!r} is not valid; accepted values: {', '.join(allowed)}")
    return by


# --- results as dicts ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Dataclasses to dicts, recursively, with each object's derived fields (its `to_dict`)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_dict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def fields_dict(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as plain values (nested results through their `to_dict`)."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


# --- request rows --------------------------------------------------------------------------------


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


def request_rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """Every row of a `SELECT * FROM requests ...` as `row_dict`s."""
    names = [d[0] for d in cursor.description]
    return [row_dict(names, values) for values in cursor.fetchall()]


# --- counting on an index ------------------------------------------------------------------------


def index_names(conn: sqlite3.Connection) -> set[str]:
    """The indexes of the `requests` table."""
    return {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests'")
    }


def count_capped(conn: sqlite3.Connection, index: str, where: str, params: Sequence[Any], cap: int) -> int:
    """Request rows matching `where`, counted on `index` up to `cap` + 1."""
    return int(
        conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM requests INDEXED BY {index} WHERE {where} LIMIT ?)",
            [*params, cap + 1],
        ).fetchone()[0]
    )


def count_started(conn: sqlite3.Connection, lo: int | None, hi: int | None, cap: int) -> int:
    """Request rows with start_ns in [lo, hi), counted on the time index up to `cap` + 1."""
    return count_capped(conn, "requests_by_time", "start_ns >= ? AND start_ns < ?", open_range(lo, hi), cap)
