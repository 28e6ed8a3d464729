"""This process's requests in flight, kept by the store's writer thread in `active_requests`.

The request path does as little as it can: `SQLiteSpanProcessor.on_start` asks `is_starting_request`
(one dict look-up) and appends the span to a deque. On the writer thread, every tick:

1. the started spans are taken (`started`): one that has already ended (a call shorter than a tick) is
   dropped, the others are tracked;
2. the ended spans are written; a tracked request among them leaves (`finished`), and its row is deleted
   in the transaction that writes its `requests` row, so a reader finds it in one table or the other;
3. at most every `TICK_S`, one transaction (`tick`): this process's heartbeat (store/processes.py), dead
   processes removed, new requests inserted, and the progress of running streams updated where it
   changed: chunks so far and time to first chunk, read from the invocation (core/in_flight.py),
   since the span carries them only once it ends.

A request whose end never reaches the writer (dropped from a full queue) leaves `LOST_END_S` after its
span ended. At shutdown the process's row is deleted, and with it (trigger) its requests.

Example (what the processor does):
    >>> rows = ActiveRequestRows()
    >>> rows.started(spans_that_started)
    >>> gone = rows.finished(request_spans_that_ended)   # delete these with the request rows
    >>> if rows.due(time.monotonic(), forced=False, store_open=True):
    ...     rows.tick(conn, time.time_ns())
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmlens import semconv
from llmlens.core.in_flight import IN_FLIGHT
from llmlens.core.limits import IDENTIFIER_MAX, TEXT_MAX, cap
from llmlens.store import processes
from llmlens.store.rows import is_request, span_hex, sqlite_safe, trace_hex

TICK_S = 0.5  # progress and heartbeat are written at most this often (a flush writes them at once)
LOST_END_S = 5.0
_TRACKED_MAX = 10_000  # requests in flight one process shows; more are recorded only when they end
NS = 1_000_000_000

ACTIVE_COLUMNS = (
    "trace_id", "span_id", "process_id", "pid", "start_ns", "span_name", "span_kind", "operation",
    "provider", "request_model", "server_address", "stream", "route", "chunks", "ttfc_ms", "updated_ns",
)  # fmt: skip
_INSERT = (
    f"INSERT OR REPLACE INTO active_requests ({', '.join(ACTIVE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ACTIVE_COLUMNS))})"
)
_UPDATE = (
    "UPDATE active_requests SET chunks = ?, ttfc_ms = ?, updated_ns = ? WHERE trace_id = ? AND span_id = ?"
)
DELETE_ROW = "DELETE FROM active_requests WHERE trace_id = ? AND span_id = ?"

Progress = tuple[int | None, float | None]  # (chunks so far, time to first chunk in ms)


def is_starting_request(span: Any) -> bool:
    """`rows.is_request` for a span as `on_start` gets it, fast: the SDK span's own attribute dict is read
    directly (~0.05 µs; through the public read-only mapping it takes ~0.8 µs)."""
    try:
        attributes = span._attributes._dict
    except AttributeError:  # not the SDK's span (or another version of it): the public way
        return is_request(span)
    return semconv.OPERATION_NAME in attributes and not attributes.get(semconv.LLMLENS_UPSTREAM)


@dataclass(slots=True, eq=False)
class _Tracked:
    span: Any  # the live span (its attributes, start and, once it ends, end time)
    written: bool = False  # its row is in the store
    progress: Progress = (None, None)  # as last written


class ActiveRequestRows:
    """What the writer knows of this process's requests in flight, and writes of them. Writer thread only."""

    def __init__(self) -> None:
        self.tracked: dict[tuple[int, int], _Tracked] = {}
        self.stale: list[tuple[str, str]] = []  # rows of ended requests still to delete
        self.process_id: int | None = None  # this process's store_processes row
        self._last_tick = float("-inf")
        self._last_heartbeat = float("-inf")

    # --- the spans ---------------------------------------------------------------------------------

    def started(self, spans: Iterable[Any]) -> int:
        """Track the started request spans; returns how many could not be (too many in flight, or not
        readable)."""
        tracked = self.tracked
        not_tracked = 0
        for span in spans:
            try:
                if span.end_time is not None:  # over already: its request row comes with its end
                    continue
                if len(tracked) >= _TRACKED_MAX:
                    not_tracked += 1
                    continue
                context = span.context
                key = (int(context.trace_id), int(context.span_id))
                int(span.start_time)  # (what its row needs: a span that lacks it would fail every tick)
            except Exception:  # not an SDK span (on_start called by hand): never shown in flight
                not_tracked += 1
                continue
            tracked[key] = _Tracked(span)
        return not_tracked

    def finished(self, spans: Iterable[Any]) -> list[tuple[str, str]]:
        """Forget the ended request spans; the (trace_id, span_id) of their rows, to delete in the
        transaction that writes their request rows (or, if that fails, `not_deleted`)."""
        tracked = self.tracked
        if not tracked:
            return []
        rows = []
        for span in spans:
            context = span.context
            found = tracked.pop((context.trace_id, context.span_id), None)
            if found is not None and found.written:
                rows.append((trace_hex(context.trace_id), span_hex(context.span_id)))
        return rows

    def not_deleted(self, rows: list[tuple[str, str]]) -> None:
        """Rows `finished` gave whose transaction failed: the next tick deletes them."""
        self.stale.extend(rows)

    def forget_file(self) -> None:
        """The store file was closed (replaced, deleted, corrupt): write everything again to the next."""
        self.process_id = None
        self.stale.clear()
        for item in self.tracked.values():
            item.written = False

    # --- the tick ----------------------------------------------------------------------------------

    def due(self, now_s: float, forced: bool, store_open: bool) -> bool:
        """Whether to `tick` now (`now_s`: time.monotonic()): every TICK_S while requests are in flight,
        every HEARTBEAT_IDLE_S once the store is open; `forced` (a flush waits) at once."""
        if self.tracked or self.stale:
            return forced or now_s - self._last_tick >= TICK_S
        if not store_open:
            return False
        return self.process_id is None or now_s - self._last_heartbeat >= processes.HEARTBEAT_IDLE_S

    def tick(self, conn: sqlite3.Connection, now_ns: int, now_s: float) -> None:
        """One transaction: heartbeat, dead processes out, new rows in, changed progress updated."""
        self._last_tick = now_s
        registered = self.process_id is None
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not registered and not processes.heartbeat(conn, self.process_id, now_ns):  # type: ignore[arg-type]
                registered = True  # another writer took this process for dead (frozen? asleep?)
            if registered:
                self.process_id = processes.register(conn, now_ns)
                for item in self.tracked.values():
                    item.written = False
            processes.remove_dead(conn, now_ns)
            if self.stale:
                conn.executemany(DELETE_ROW, self.stale)
            written = self._write_tracked(conn, now_ns)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if registered:
                self.process_id = None
            raise
        self._last_heartbeat = now_s
        self.stale.clear()
        for item, progress in written:
            item.written, item.progress = True, progress

    def _write_tracked(self, conn: sqlite3.Connection, now_ns: int) -> list[tuple[_Tracked, Progress]]:
        inserts, updates, lost, written = [], [], [], []
        for key, item in self.tracked.items():
            span = item.span
            end = span.end_time
            if end is not None:  # its end is on its way to the writer, or was dropped
                if now_ns - end > LOST_END_S * NS:
                    lost.append(key)
                continue
            progress = _progress(span)
            if not item.written:
                inserts.append(self._row(span, progress, now_ns))
            elif progress != item.progress:
                updates.append((*progress, now_ns, trace_hex(key[0]), span_hex(key[1])))
            else:
                continue
            written.append((item, progress))
        for key in lost:
            item = self.tracked.pop(key)
            if item.written:
                conn.execute(DELETE_ROW, (trace_hex(key[0]), span_hex(key[1])))
        if inserts:
            conn.executemany(_INSERT, inserts)
        if updates:
            conn.executemany(_UPDATE, updates)
        return written

    def _row(self, span: Any, progress: Progress, now_ns: int) -> tuple[Any, ...]:
        attributes = span.attributes or {}
        get = attributes.get
        context = span.context
        kind = getattr(span.kind, "name", "INTERNAL").lower()
        # Made safe for SQLite (another instrumentation's span may hold anything): a row SQLite refused
        # would fail every later tick.
        return sqlite_safe((
            trace_hex(context.trace_id), span_hex(context.span_id), self.process_id, os.getpid(),
            span.start_time or now_ns, _text(span.name, 2 * IDENTIFIER_MAX + 1) or "", kind,
            _text(get(semconv.OPERATION_NAME)), _text(get(semconv.PROVIDER_NAME)),
            _text(get(semconv.REQUEST_MODEL)), _text(get(semconv.SERVER_ADDRESS)),
            1 if get(semconv.REQUEST_STREAM) else 0, _text(get(semconv.URL_PATH), TEXT_MAX),
            *progress, now_ns,
        ))  # fmt: skip

    def leave(self, conn: sqlite3.Connection) -> None:
        """At shutdown: this process's row goes, and with it (trigger) its requests in flight."""
        if self.process_id is None:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            processes.remove(conn, self.process_id)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.process_id = None


def _progress(span: Any) -> Progress:
    """Chunks so far and time to first chunk (ms) of the span's invocation; (None, None) for a span
    llmlens did not start (another instrumentation's)."""
    inv = IN_FLIGHT.get(id(span))
    if inv is None or inv.span is not span:
        return None, None
    times = inv.chunk_times
    first = times[:1]  # (a proxy may rewrite the list: never index past its end)
    return len(times), ((first[0] - inv.start_perf) / 1e6 if first else None)


def _text(value: Any, limit: int = IDENTIFIER_MAX) -> str | None:
    return None if value is None else cap(value if type(value) is str else str(value), limit)
