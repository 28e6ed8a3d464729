"""Storage: the store file's size, rows per class, time span, schema and retention, and a prune button.

`load` is `storage_stats` with `missing_indexes` (`/api/storage`); `prune_now` is what the button POSTs:
the retention limits applied now, as `llmlens prune` does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from llmlens.store import formats, queries
from llmlens.web.html import Markup, join, tag
from llmlens.web.layout import Ctx, definition_list, message


def load(conn: sqlite3.Connection, db_path: str) -> dict[str, Any]:
    stats = queries.storage_stats(conn, db_path).to_dict()
    return {**stats, "missing_indexes": queries.missing_indexes(conn)}


def prune_now(db_path: str, vacuum: bool = False) -> dict[str, Any]:
    """Apply the retention limits (and optionally VACUUM); what was deleted."""
    from llmlens.store.cli import _check_integrity
    from llmlens.store.retention import Retention, prune
    from llmlens.store.retention import vacuum as vacuum_store
    from llmlens.store.schema import open_store

    retention = Retention.from_env()
    conn = open_store(db_path, create=False)
    try:
        _check_integrity(conn, db_path)  # deleting from a damaged file can only damage it more
        result = prune(conn, retention)
        if vacuum:
            vacuum_store(conn)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return {"deleted": result.total, "success_over_cap": result.deleted_success,
            "errors_over_cap": result.deleted_errors, "older_than_max_age": result.deleted_by_age,
            "vacuum": vacuum}  # fmt: skip


def _cap(value: Any, unit: str) -> str:
    return "no limit" if not value else f"{value:,g} {unit}"


def render(data: dict[str, Any], ctx: Ctx, query: Mapping[str, str]) -> Markup:
    s = data
    r = s["retention"]
    retention = r.get("error") or (
        f"{_cap(r['max_success'], 'successes')}, {_cap(r['max_errors'], 'errors')}, "
        f"{_cap(r['max_age_days'], 'days')}, {_cap(r['max_profiles'], 'profiles')}"
    )
    span = (f"{formats.local_time(s['oldest_request_ns'])} to {formats.local_time(s['newest_request_ns'])}"
            if s["requests"] else "empty")  # fmt: skip
    rows: list[tuple[str, Any]] = [
        ("file", s["path"]),
        ("size", f"{formats.bytes_(s['total_bytes'])} (file {formats.bytes_(s['db_bytes'])}, WAL "
                 f"{formats.bytes_(s['wal_bytes'])}, SHM {formats.bytes_(s['shm_bytes'])})"),
        ("requests", formats.count(s["requests"])),
        ("successes", formats.count(s["success_requests"])),
        ("errors", formats.count(s["error_requests"])),
        ("spans", f"{formats.count(s['spans'])} other spans of the recorded traces"),
        ("profiles", formats.count(s["profiles"])),
        ("rollups", f"{formats.count(s['rollup_rows'])} per minute, "
                    f"{formats.count(s['rollup_hour_rows'])} per hour"),
        ("time span", span),
        ("schema", f"version {s['schema_version']} (this llmlens knows {s['schema_version_known']})"),
        ("pages", f"{formats.count(s['page_count'])} x {s['page_size']} B, "
                  f"{formats.count(s['freelist_count'])} free"),
        ("journal", s["journal_mode"]),
        ("retention", retention),
    ]  # fmt: skip
    if s["missing_indexes"]:
        rows.append(("missing indexes", ", ".join(s["missing_indexes"])))
    notice = None
    if query.get("pruned") is not None:
        text = f"pruned: deleted {query['pruned']} requests" + (
            ", then vacuumed" if query.get("vacuumed") else ""
        )
        notice = message(text, element_id="storage-message")
    form = tag(
        "form", ctx.csrf_field(),
        tag("label", tag("input", type="checkbox", name="vacuum", value="1", id="storage-vacuum"),
            " also give the free space back to the file system (VACUUM: rewrites the file)",
            for_="storage-vacuum"),
        tag("div", tag("button", "prune now", type="submit", id="storage-prune"), class_="buttons"),
        method="post", action=ctx.url("storage/prune"), id="storage-prune-form",
        data_confirm="Delete every request the retention limits do not keep?",
    )  # fmt: skip
    explain = tag("p", "Pruning deletes what the retention settings do not keep (LLMLENS_STORE_MAX_SUCCESS, "
                       "LLMLENS_STORE_MAX_ERRORS, LLMLENS_STORE_MAX_AGE_DAYS, LLMLENS_STORE_MAX_PROFILES); "
                       "the writer also does it on its own every few seconds.", class_="note")  # fmt: skip
    return join((notice, definition_list(rows, "storage-stats"),
                 tag("section", tag("h2", "prune"), explain, form, id="prune")))  # fmt: skip
