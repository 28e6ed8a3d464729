"""Requests in flight across every process writing to the store: the data of the Live page.

The store's `active_requests` answers it (started and not yet ended, in live processes; a stream's
chunks and time to first chunk as of the writer's last refresh, at most half a second old).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from llmlens.store import queries


def snapshot(conn: sqlite3.Connection, now_ns: int | None = None) -> dict[str, Any]:
    """{"now_ns", "now", "requests": [ActiveRequest.to_dict(), longest-running first]}, read now."""
    now = time.time_ns() if now_ns is None else now_ns
    found = queries.active_requests(conn, now)
    return {"now_ns": now, "now": queries.iso(now), "requests": [r.to_dict() for r in found]}
