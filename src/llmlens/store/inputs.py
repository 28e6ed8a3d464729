"""The numbers, times and ids a user gives the store: one check per kind, for the CLI and the queries.

Each check takes the text of a command-line value or what a caller of `llmlens.store.queries` passed,
and returns the value, or raises `QueryError` (a `ValueError`) with one line that says what is
accepted. The bounds keep every value inside what the store holds (SQLite's 64-bit integers, times in
nanoseconds since the epoch), so nothing overflows later in a query.

- `duration`: `30s`, `15m`, `1h`, `7d`, `2w` (or seconds), more than 0 and at most 10,000 days;
- `timestamp`: a duration ago or an ISO 8601 time (or nanoseconds), from 1970 to 2261;
- `request_id` (ID, TRACE_ID/SPAN_ID, TRACE_ID or SPAN_ID) and `trace_id`;
- `cursor`: the `next_cursor` of a request-log page;
- `count`: a whole number from 1 to a maximum (page and batch sizes).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

NS = 1_000_000_000
INT64_MAX = 2**63 - 1
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION_DAYS = 10_000
MAX_DURATION_S = MAX_DURATION_DAYS * 86400
MIN_TIME_NS = 0  # 1970-01-01T00:00Z
MAX_TIME_NS = 9_214_646_400 * NS  # 2262-01-01T00:00Z, exclusive (int64 nanoseconds end in April 2262)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE | re.ASCII)
_DIGITS = re.compile(r"\s*(\d+)\s*", re.ASCII)
_HEX = frozenset("0123456789abcdef")

DURATION_TEXT = f"use a number > 0 and a unit, at most {MAX_DURATION_DAYS}d: 30s, 15m, 1h, 7d"
SECONDS_RANGE = f"seconds > 0, at most {MAX_DURATION_S} ({MAX_DURATION_DAYS:,} days)"
DURATION_SECONDS = f"use {SECONDS_RANGE}"
TIME_TEXT = "use a duration ago (30s, 15m, 1h, 7d) or an ISO time (2025-11-23T10:00) from 1970 to 2261"
TIME_NS = f"use nanoseconds since the epoch, from {MIN_TIME_NS} (1970) to {MAX_TIME_NS - 1} (2261)"
REQUEST_ID_TEXT = "use ID (a request row id), TRACE_ID/SPAN_ID, TRACE_ID (32 hex) or SPAN_ID (16 hex)"
CURSOR_TEXT = "use the cursor given with the previous page (next_cursor)"


class QueryError(ValueError):
    """A query argument is not valid. The message is one line, fit for a user."""


def _bad(what: str, value: Any, accepted: str) -> QueryError:
    return QueryError(f"invalid {what} {value!r}; {accepted}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(text: str) -> int | None:
    """ASCII digits (with spaces around) to an int, None if not that or beyond 64 bits."""
    match = _DIGITS.fullmatch(text)
    if not match:
        return None
    digits = match.group(1).lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else None  # (int() refuses 4,300+ digits anyway)


# --- duration -----------------------------------------------------------------------------------


def duration(value: str | float, what: str = "duration") -> float:
    """Seconds, from `30s`, `15m`, `1h`, `7d`, `2w` (a number and a unit) or from a number of seconds."""
    seconds = math.nan
    accepted = DURATION_SECONDS
    if isinstance(value, str):
        accepted = DURATION_TEXT
        match = _DURATION.fullmatch(value)
        if match:
            seconds = float(match.group(1)) * UNITS[match.group(2).lower()]
    elif _is_number(value):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            pass
    if not 1 / NS <= seconds <= MAX_DURATION_S:  # (False for nan)
        raise _bad(what, value, accepted)
    return seconds


# --- timestamp ----------------------------------------------------------------------------------


def timestamp(value: str | int, what: str = "time", now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch, from a duration ago (`15m`, `7d`), an ISO 8601 time (local time
    unless it has a zone, such as `Z` or `+02:00`) or a number of nanoseconds."""
    ns: int | None = None
    accepted = TIME_NS
    if isinstance(value, str):
        accepted = TIME_TEXT
        ns = _parse_time(value, now_ns)
    elif _is_number(value):
        try:
            ns = int(value)
        except (OverflowError, ValueError):  # inf, nan
            pass
    if ns is None or not MIN_TIME_NS <= ns < MAX_TIME_NS:
        raise _bad(what, value, accepted)
    return ns


def _parse_time(text: str, now_ns: int | None) -> int | None:
    if _DURATION.fullmatch(text):
        try:
            seconds = duration(text)
        except QueryError:
            return None
        return (time.time_ns() if now_ns is None else now_ns) - round(seconds * NS)
    try:
        moment = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text.strip()))
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time
        delta = moment - _EPOCH
    except (ValueError, OverflowError, OSError):  # not ISO 8601, or a year the platform cannot place
        return None
    return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000


# --- ids ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRef:
    """What `llmlens show ID` was given: a row id, a trace id and a span id, or one of them."""

    text: str
    row_id: int | None = None  # an all-digit value that fits a row id (it may also be a trace/span id)
    trace_id: str | None = None
    span_id: str | None = None


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= _HEX


def request_id(value: str | int, what: str = "request id") -> RequestRef:
    """A request row id, `TRACE_ID/SPAN_ID` (or `TRACE_ID:SPAN_ID`), a trace id or a span id."""
    if _is_number(value):
        if isinstance(value, int) and 1 <= value <= INT64_MAX:
            return RequestRef(str(value), row_id=value)
        raise _bad(what, value, REQUEST_ID_TEXT)
    if not isinstance(value, str):
        raise _bad(what, value, REQUEST_ID_TEXT)
    text = value.strip().lower()
    number = _whole(text)
    row_id = number if number is not None and 1 <= number <= INT64_MAX else None
    if "/" in text or ":" in text:
        trace, _, span = text.replace(":", "/").partition("/")
        if _is_hex(trace, 32) and _is_hex(span, 16):
            return RequestRef(text, trace_id=trace, span_id=span)
    elif _is_hex(text, 32):
        return RequestRef(text, row_id=row_id, trace_id=text)
    elif _is_hex(text, 16):
        return RequestRef(text, row_id=row_id, span_id=text)
    elif row_id is not None:
        return RequestRef(text, row_id=row_id)
    raise _bad(what, value, REQUEST_ID_TEXT)


def trace_id(value: str, what: str = "trace id") -> str:
    """A trace id: 32 hex digits (returned in lower case)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _is_hex(text, 32):
        raise _bad(what, value, "use 32 hex digits")
    return text


# --- cursor -------------------------------------------------------------------------------------


def cursor(value: str | int | None, what: str = "cursor") -> int | None:
    """The `next_cursor` of the previous request-log page (a row id); None for the first page."""
    if value is None:
        return None
    number = _whole(value) if isinstance(value, str) else value if _is_number(value) else None
    if not isinstance(number, int) or not 1 <= number <= INT64_MAX:
        raise _bad(what, value, CURSOR_TEXT)
    return number


# --- count --------------------------------------------------------------------------------------


def count(value: str | int, maximum: int, what: str = "value") -> int:
    """A whole number from 1 to `maximum`, e.g. rows per page."""
    number = _whole(value) if isinstance(value, str) else value if _is_number(value) else None
    if not isinstance(number, int) or not 1 <= number <= maximum:
        raise _bad(what, value, f"use a whole number from 1 to {maximum}")
    return number
