"""The store file itself (`llmlens db info`): file sizes, row counts, schema version, time span, pages,
the retention caps, and the schema checks of the read side (request-log indexes, hourly rollups).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from llmlens.settings import SettingsError
from llmlens.store.query_common import MINUTE_NS, fields_dict, index_names, iso
from llmlens.store.rollup_reads import has_hour_table, hours_usable
from llmlens.store.schema import SCHEMA_VERSION


def database_path(conn: sqlite3.Connection) -> str | None:
    """The file behind a connection's main database (None for an in-memory one)."""
    for _, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return path or None
    return None


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
    profiles: int
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
            **fields_dict(self),
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
    has_hours = has_hour_table(conn)
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
        profiles=int(one("SELECT count(*) FROM profiles")) if _has_table(conn, "profiles") else 0,
        oldest_request_ns=one("SELECT min(start_ns) FROM requests"),
        newest_request_ns=one("SELECT max(start_ns) FROM requests"),
        oldest_rollup_ns=None if oldest_minute is None else oldest_minute * MINUTE_NS,
        page_size=int(one("PRAGMA page_size")), page_count=int(one("PRAGMA page_count")),
        freelist_count=int(one("PRAGMA freelist_count")), journal_mode=str(one("PRAGMA journal_mode")),
        retention=retention,
    )  # fmt: skip


# --- schema checks -------------------------------------------------------------------------------------


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        is not None
    )


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
    present = index_names(conn)
    return [name for name in QUERY_INDEXES if name not in present]


def has_hourly_rollups(conn: sqlite3.Connection) -> bool:
    """The store has `rollup_hour` (schema 2) and it is as current as the minute rollups."""
    return hours_usable(conn)
