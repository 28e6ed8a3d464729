"""Requests in flight: started and not yet ended, in every live process that writes the store.

Each writer keeps its requests in `active_requests` (store/active.py) and its heartbeat in
`store_processes`; a request is shown only while its process is live (store/processes.py: a heartbeat
younger than `EXPIRY_S`, and on this host a pid that still exists). Nothing is written here, so a
read-only connection is enough; the rows of a dead process are deleted by the next writer that notices.

Example:
    >>> for request in active_requests(conn):
    ...     print(request.pid, request.request_model, f"{request.elapsed_ms:.0f} ms", request.chunks)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from llmlens.store import processes
from llmlens.store.query_common import current_ns, fields_dict, iso


@dataclass(frozen=True)
class ActiveRequest:
    """One request in flight. `chunks` and `ttfc_ms` are a stream's so far, as of `updated_ns` (the writer
    refreshes them every half second); `chunks` is None for a span llmlens did not start."""

    trace_id: str
    span_id: str
    pid: int
    hostname: str
    start_ns: int
    elapsed_ms: float  # from its start to the time of the query
    span_name: str
    span_kind: str  # client (an SDK call) or server (a proxied request)
    operation: str | None
    provider: str | None
    request_model: str | None
    server_address: str | None
    stream: bool
    route: str | None  # url.path of a proxied request
    chunks: int | None
    ttfc_ms: float | None
    updated_ns: int
    heartbeat_ns: int  # its process's last heartbeat

    def to_dict(self) -> dict[str, object]:
        return {**fields_dict(self), "start_time": iso(self.start_ns), "updated": iso(self.updated_ns)}


_SELECT = """
    SELECT a.trace_id, a.span_id, a.pid, p.hostname, a.start_ns, a.span_name, a.span_kind, a.operation,
        a.provider, a.request_model, a.server_address, a.stream, a.route, a.chunks, a.ttfc_ms,
        a.updated_ns, p.heartbeat_ns
    FROM active_requests AS a JOIN store_processes AS p ON p.id = a.process_id
    WHERE p.heartbeat_ns >= ?
    ORDER BY a.start_ns, a.trace_id, a.span_id
"""


def active_requests(conn: sqlite3.Connection, now_ns: int | None = None) -> list[ActiveRequest]:
    """The requests in flight at `now_ns` (default: now), longest-running first.

    Example:
        >>> [r.request_model for r in active_requests(open_store(path, readonly=True))]
        ['gpt-4o-mini']
    """
    now = current_ns(now_ns)
    this_host = processes.hostname()
    found = []
    alive: dict[tuple[str, int, int], bool] = {}  # (pid tests are asked once per process)
    for row in conn.execute(_SELECT, (now - int(processes.EXPIRY_S * processes.NS),)):
        trace_id, span_id, pid, host, start_ns, *middle, updated_ns, heartbeat_ns = row
        key = (host, pid, heartbeat_ns)
        live = alive.get(key)
        if live is None:
            live = alive[key] = processes.is_live(host, pid, heartbeat_ns, now, this_host)
        if not live:
            continue
        name, kind, operation, provider, model, server, stream, route, chunks, ttfc_ms = middle
        found.append(
            ActiveRequest(
                trace_id, span_id, pid, host, start_ns, max(0.0, (now - start_ns) / 1e6), name, kind,
                operation, provider, model, server, bool(stream), route, chunks, ttfc_ms, updated_ns,
                heartbeat_ns,
            )
        )  # fmt: skip
    return found
