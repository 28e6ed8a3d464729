"""Retention: successes and errors capped apart, an age limit, and manual prune/vacuum.

Pruning never scans the table: the cap is found by walking the `(is_error, id)` index from the newest
row (at most `cap` steps), and the age limit is a range delete on the `start_ns` index. Spans of a
trace go when its last request row goes (a trigger), rollups when they pass the age limit (an hour
or day row when its whole hour or day has).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass

from llmlens.settings import SettingsError
from llmlens.store.inputs import INT64_MAX, MAX_DURATION_DAYS

ENV_MAX_SUCCESS = "LLMLENS_STORE_MAX_SUCCESS"
ENV_MAX_ERRORS = "LLMLENS_STORE_MAX_ERRORS"
ENV_MAX_AGE_DAYS = "LLMLENS_STORE_MAX_AGE_DAYS"


@dataclass(frozen=True)
class Retention:
    """How much the store keeps. 0 means no limit."""

    max_success: int = 50_000
    max_errors: int = 10_000
    max_age_days: float = 90.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Retention:
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, var, kind in (
            ("max_success", ENV_MAX_SUCCESS, int),
            ("max_errors", ENV_MAX_ERRORS, int),
            ("max_age_days", ENV_MAX_AGE_DAYS, float),
        ):
            raw = (env.get(var) or "").strip()
            if not raw:
                continue
            try:
                value = kind(raw)
            except ValueError:
                value = -1
            # a value beyond 64 bits, "inf" or a huge age would overflow, "nan" would disable the limit
            if kind is int:
                valid = 0 <= value <= INT64_MAX
                accepted = f"an integer from 0 to {INT64_MAX}"
            else:
                valid = 0 <= value <= MAX_DURATION_DAYS  # (False for nan)
                accepted = f"days from 0 to {MAX_DURATION_DAYS}"
            if not valid:
                raise SettingsError(f"{var}={raw!r} is not valid; accepted values: {accepted} (0 = no limit)")
            values[name] = value
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class PruneResult:
    deleted_success: int = 0
    deleted_errors: int = 0
    deleted_by_age: int = 0

    @property
    def total(self) -> int:
        return self.deleted_success + self.deleted_errors + self.deleted_by_age


def _cap(conn: sqlite3.Connection, is_error: int, cap: int) -> int:
    if cap <= 0:
        return 0
    # The class has at most max(id) - min(id) + 1 rows: within the cap, there is nothing to walk.
    low, high = conn.execute(
        "SELECT (SELECT min(id) FROM requests WHERE is_error = ?1),"
        " (SELECT max(id) FROM requests WHERE is_error = ?1)",
        (is_error,),
    ).fetchone()
    if low is None or high - low < cap:
        return 0
    row = conn.execute(
        "SELECT id FROM requests WHERE is_error = ? ORDER BY id DESC LIMIT 1 OFFSET ?", (is_error, cap)
    ).fetchone()
    if row is None:
        return 0
    return conn.execute("DELETE FROM requests WHERE is_error = ? AND id <= ?", (is_error, row[0])).rowcount


def prune(conn: sqlite3.Connection, retention: Retention, now_ns: int | None = None) -> PruneResult:
    """Apply the caps and the age limit in one transaction."""
    result = PruneResult()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if retention.max_age_days > 0:
            cutoff = (now_ns or time.time_ns()) - int(retention.max_age_days * 86400e9)
            result.deleted_by_age = conn.execute(
                "DELETE FROM requests WHERE start_ns < ?", (cutoff,)
            ).rowcount
            conn.execute("DELETE FROM rollup_minute WHERE minute < ?", (cutoff // 60_000_000_000,))
            conn.execute("DELETE FROM rollup_hour WHERE hour < ?", (cutoff // 3_600_000_000_000,))
            conn.execute("DELETE FROM rollup_day WHERE day < ?", (cutoff // 86_400_000_000_000,))
        result.deleted_success = _cap(conn, 0, retention.max_success)
        result.deleted_errors = _cap(conn, 1, retention.max_errors)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def vacuum(conn: sqlite3.Connection) -> None:
    """Give the space of deleted rows back to the file system (rewrites the file; takes a while)."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    # In WAL mode VACUUM writes the new file through the WAL: without this checkpoint the WAL keeps a
    # full copy of the database and the files grow instead of shrinking.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
