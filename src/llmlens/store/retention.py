"""Retention: successes and errors capped apart, an age limit, and manual prune/vacuum.

Pruning never scans the table: the cap is found by walking the `(is_error, id)` index from the newest
row (at most `cap` steps), and the age limit is a range delete on the `start_ns` index. Spans of a
trace go when its last request row goes (a trigger), rollups when they pass the age limit (an hour
or day row when its whole hour or day has).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmlens.settings import SETTINGS, Settings

_ENV = {s.name: s.env for s in SETTINGS}
ENV_MAX_SUCCESS = _ENV["store_max_success"]
ENV_MAX_ERRORS = _ENV["store_max_errors"]
ENV_MAX_AGE_DAYS = _ENV["store_max_age_days"]
ENV_MAX_PROFILES = _ENV["store_max_profiles"]


@dataclass(frozen=True)
class Retention:
    """How much the store keeps. 0 means no limit. The defaults, variables and checks are the
    `store_max_*` rows of `llmlens.settings.SETTINGS`."""

    max_success: int = Settings.store_max_success
    max_errors: int = Settings.store_max_errors
    max_age_days: float = Settings.store_max_age_days
    max_profiles: int = Settings.store_max_profiles

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **keywords: object) -> Retention:
        """The `LLMLENS_STORE_MAX_*` variables (the process's, unless `environ` is given), then
        `keywords` (None = not given); a bad value raises SettingsError."""
        return cls(**Settings.for_api("Retention", environ, **keywords))

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(**settings.values_for("Retention"))


@dataclass
class PruneResult:
    deleted_success: int = 0
    deleted_errors: int = 0
    deleted_by_age: int = 0
    deleted_profiles: int = 0

    @property
    def total(self) -> int:
        return self.deleted_success + self.deleted_errors + self.deleted_by_age


def _keep_newest(
    conn: sqlite3.Connection, table: str, cap: int, where: str = "1", args: tuple[Any, ...] = ()
) -> int:
    """Delete the rows of `table` matching `where` beyond the newest `cap` (by id); how many went.

    The rows number at most max(id) - min(id) + 1: within the cap, there is nothing to walk. Else the
    cap is found by walking an `(..., id)` index from the newest row, at most `cap` steps."""
    if cap <= 0:
        return 0
    low, high = conn.execute(
        f"SELECT (SELECT min(id) FROM {table} WHERE {where}), (SELECT max(id) FROM {table} WHERE {where})",
        (*args, *args),
    ).fetchone()
    if low is None or high - low < cap:
        return 0
    row = conn.execute(
        f"SELECT id FROM {table} WHERE {where} AND id <= ? ORDER BY id DESC LIMIT 1 OFFSET ?",
        (*args, high, cap),
    ).fetchone()
    if row is None:
        return 0
    return conn.execute(f"DELETE FROM {table} WHERE {where} AND id <= ?", (*args, row[0])).rowcount


def cap_profiles(conn: sqlite3.Connection, cap: int) -> int:
    """Keep the newest `cap` profiles (0: all). Inside the caller's transaction."""
    return _keep_newest(conn, "profiles", cap)


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
        result.deleted_success = _keep_newest(conn, "requests", retention.max_success, "is_error = ?", (0,))
        result.deleted_errors = _keep_newest(conn, "requests", retention.max_errors, "is_error = ?", (1,))
        result.deleted_profiles = cap_profiles(conn, retention.max_profiles)
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
