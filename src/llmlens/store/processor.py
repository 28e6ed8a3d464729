"""`SQLiteSpanProcessor`: every LLM request into a local SQLite file, off the application's threads.

`on_end` appends the span to a bounded deque and returns (well under 5 µs); a daemon thread turns the
queued spans into rows and writes each batch in one transaction (WAL, `synchronous=NORMAL`). When the
queue is full, spans are dropped and counted, never waited for. `on_start` appends a starting request's
span to a second deque (under 1 µs), from which the thread keeps the requests in flight in
`active_requests` (store/active.py). A store that cannot be written (read-only or full disk, a locked
file, a foreign file) gives one warning and the application goes on; the processor retries now and
then. After `fork()` the child starts with empty queues and its own thread.

Example:
    >>> from llmlens.store import SQLiteSpanProcessor
    >>> tracer_provider.add_span_processor(SQLiteSpanProcessor("requests.db"))
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from llmlens.core.profile_capture import FinishedProfile
from llmlens.store import profiles, rollups
from llmlens.store.active import DELETE_ROW, ActiveRequestRows, is_starting_request
from llmlens.store.paths import default_db_path, file_identity
from llmlens.store.retention import Retention, prune
from llmlens.store.rows import (
    REQUEST_COLUMNS,
    SPAN_COLUMNS,
    is_request,
    request_row,
    span_row,
    sqlite_safe,
)
from llmlens.store.schema import StoreError, open_store

_log = logging.getLogger("llmlens.store")

_INSERT_REQUEST = "INSERT OR IGNORE INTO requests ({}) VALUES ({})".format(
    ", ".join(REQUEST_COLUMNS), ", ".join("?" * len(REQUEST_COLUMNS))
)
_INSERT_SPAN = (
    f"INSERT OR IGNORE INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' * len(SPAN_COLUMNS))})"
)
_REOPEN_AFTER_S = 30.0  # after the store could not be opened, try again this much later
# How long the writer waits for another connection's write lock before it drops the batch and warns.
_BUSY_TIMEOUT_MS = 10_000
_PRUNE_EVERY_S = 10.0
# Non-request spans wait here until their trace's request span ends (children end first).
_PENDING_SPANS_MAX = 20_000
_RECENT_TRACES_MAX = 10_000

_processors: weakref.WeakSet[SQLiteSpanProcessor] = weakref.WeakSet()
_inherited_connections: list[sqlite3.Connection] = []


@dataclass
class StoreStats:
    """What the processor did since it started (this process only)."""

    written_requests: int = 0
    written_spans: int = 0
    written_profiles: int = 0
    dropped_queue_full: int = 0
    dropped_store_unavailable: int = 0
    # Request rows SQLite refused even after their values were made safe (the rest of the batch is kept).
    dropped_invalid_rows: int = 0
    # Times the store file was found deleted or replaced under the writer, and opened (recreated) again.
    reopened: int = 0
    # Requests not shown in flight (the start queue or the requests tracked were full, or a span that
    # could not be read); they are still recorded when they end.
    dropped_in_flight: int = 0
    batches: int = 0
    last_error: str | None = None


class SQLiteSpanProcessor(SpanProcessor):
    """Writes LLM request spans (and the other spans of their traces) to an SQLite store."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        retention: Retention | None = None,
        max_queue_size: int = 50_000,
        batch_size: int = 1024,
        flush_interval_s: float = 0.5,
        active_requests: bool = True,
    ) -> None:
        self.path = str(path) if path is not None else default_db_path(lenient=True)
        self.retention = retention or Retention.from_env()
        self.max_queue_size = max_queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.active_requests = active_requests  # keep the requests in flight in `active_requests`
        self.stats = StoreStats()
        self.enabled = True  # the instrumentor turns this off on uninstrument (processors can't be removed)
        # While disabled, spans that started before this (time_ns) are still written: a stream open at
        # uninstrument ends its span later, and it is a request of the instrumented time.
        self.disabled_at_ns = 0
        self._init_runtime()
        _processors.add(self)

    def _init_runtime(self) -> None:
        # Spans, and the profiles of their requests behind them (FinishedProfile: llmlens.core.profiling).
        self._queue: deque[ReadableSpan | FinishedProfile] = deque()
        self._started: deque[Any] = deque()  # live spans of requests that started (on_start)
        self._active = ActiveRequestRows()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # (spans enqueued, drains begun, event) per flush waiting: released once the writer has taken
        # that many spans and finished a drain (starts and ends) that began after the flush was asked for.
        self._flush_waiters: list[tuple[int, int, threading.Event]] = []
        self._enqueued = 0  # spans ever enqueued; a flush waits until the writer has taken them all
        self._drains = 0
        self._count_lock = threading.Lock()
        self._taken = 0
        self._stopping = False
        self._conn: sqlite3.Connection | None = None
        self._unavailable_since: float | None = None
        self._warned = False
        self._warned_row = False
        self._warned_replaced = False
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._sidecars: dict[str, tuple[int, int] | None] = {}  # the same, of its -wal and -shm
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._pending_count = 0
        self._recent_traces: OrderedDict[int, None] = OrderedDict()
        self._last_prune = 0.0

    # --- SpanProcessor ------------------------------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        # Inside the application's start_span: a test, an append, and never an exception.
        if not self.active_requests or not self.enabled or self._stopping:
            return
        try:
            if not is_starting_request(span):
                return
            started = self._started
            if len(started) >= self.max_queue_size:
                with self._count_lock:
                    self.stats.dropped_in_flight += 1
                return
            started.append(span)  # (not counted: a flush waits for a whole drain that began after it)
            if self._thread is None:
                self._start_thread()
        except Exception:
            _log.debug("llmlens: a request start was not recorded", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        if (not self.enabled and (span.start_time or 0) >= self.disabled_at_ns) or self._stopping:
            return
        queue = self._queue
        # `+=` on an attribute is not atomic across application threads: count under a lock (~0.1 µs).
        if len(queue) >= self.max_queue_size:
            with self._count_lock:
                self.stats.dropped_queue_full += 1
            return
        queue.append(span)
        with self._count_lock:
            self._enqueued += 1
        if self._thread is None:
            self._start_thread()
        elif len(queue) == self.batch_size:
            self._wake.set()

    def submit_profile(self, pending: FinishedProfile) -> None:
        """Queue a finished profile; the writer stores it after its request's span (queued before it)."""
        queue = self._queue
        if self._stopping or len(queue) >= self.max_queue_size:
            pending.resolved(False)
            return
        queue.append(pending)
        with self._count_lock:
            self._enqueued += 1
        if self._thread is None:
            self._start_thread()

    def disable(self) -> None:
        """Record no span that starts from now on; spans already started are still written when they end."""
        self.disabled_at_ns = time.time_ns()
        self.enabled = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until every span enqueued so far is written (or given up on). True if in time."""
        thread = self._thread
        if thread is None or (self._stopping and not thread.is_alive()):
            return True  # nothing ever enqueued, or shut down: no writer left to wait for
        done = threading.Event()
        with self._lock:
            self._flush_waiters.append((self._enqueued, self._drains, done))
        self._wake.set()
        return done.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        if self._stopping:
            return
        self.force_flush()
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    # --- writer thread ----------------------------------------------------------------------

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="llmlens-sqlite-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self._drain()
                self._write_active()
                self._maybe_prune()
            except Exception:  # a bug here must not kill the thread: keep going, say why once
                _log.debug("llmlens: store writer error", exc_info=True)
            self._release_flush_waiters()
            if self._stopping and not self._queue and not self._started:
                self._leave()
                return

    def _drain(self) -> None:
        self._drains += 1
        # Starts first: a request that started and ended since the last tick is then dropped by its end.
        started = self._started
        if started:
            spans = []
            while started:
                spans.append(started.popleft())
            not_tracked = self._active.started(spans)
            if not_tracked:
                with self._count_lock:
                    self.stats.dropped_in_flight += not_tracked
        queue = self._queue
        while queue:
            batch = []
            while queue and len(batch) < self.batch_size:
                batch.append(queue.popleft())
            self._taken += len(batch)
            self._write(batch)

    def _release_flush_waiters(self) -> None:
        with self._lock:
            waiters, self._flush_waiters = self._flush_waiters, []
        for target, drains, event in waiters:
            if self._taken >= target and self._drains > drains:
                event.set()
            else:
                with self._lock:
                    self._flush_waiters.append((target, drains, event))
        if self._flush_waiters:
            self._wake.set()

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            # One stat() per batch: a store deleted (or replaced) under an open connection would take
            # every later row into a file no one can open any more.
            if file_identity(self.path) == self._identity:
                return self._conn
            self._replaced()
        if (
            self._unavailable_since is not None
            and time.monotonic() - self._unavailable_since < _REOPEN_AFTER_S
        ):
            return None
        try:
            conn = open_store(self.path)
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_MS)}")
            self._conn = conn
            self._identity = file_identity(self.path)
            self._sidecars = {suffix: file_identity(self.path + suffix) for suffix in _SIDECARS}
        except StoreError as error:
            self._unavailable(str(error))
        except (sqlite3.Error, OSError) as error:
            self._unavailable(f"cannot open {self.path}: {error}")
        return self._conn

    def _replaced(self) -> None:
        """The file under the open connection was deleted or replaced: close it, so that the next open
        creates the store again (or opens the new file).

        SQLite does not checkpoint or remove the -wal and -shm of a moved database when it closes it; left
        at the path, that WAL would be read into the new file as if it were its own. They are removed if
        they are still the ones this connection had open (checked before closing, while they are)."""
        stale = [s for s, found in self._sidecars.items() if found and file_identity(self.path + s) == found]
        self._close()
        for suffix in stale:
            try:
                os.unlink(self.path + suffix)
            except OSError:
                pass
        self.stats.reopened += 1
        reason = f"{self.path} was deleted or replaced while in use; opening it again"
        self.stats.last_error = reason
        if not self._warned_replaced:
            self._warned_replaced = True
            _log.warning("llmlens: local store %s", reason)

    def _unavailable(self, reason: str) -> None:
        self._unavailable_since = time.monotonic()
        self.stats.last_error = reason
        if not self._warned:
            self._warned = True
            _log.warning("llmlens: local store unavailable, requests are not being recorded (%s)", reason)

    def _write(self, batch: list[Any]) -> None:
        requests, spans, pending_profiles = self._classify(batch)
        try:
            self._write_spans(requests, spans)
        finally:
            if pending_profiles:
                self._write_profiles(pending_profiles)

    def _write_profiles(self, pending: list[FinishedProfile]) -> None:
        """Encode (here, on the writer thread) and store the profiles; tell each whether it was stored."""
        stored: list[tuple[bool, int | None]] = [(False, None)] * len(pending)
        try:
            encoded = []
            for item in pending:
                try:
                    encoded.append((item, profiles.encode(item, _OWN_CODE)))
                except Exception:
                    _log.debug("llmlens: a profile could not be encoded", exc_info=True)
            conn = self._connection() if encoded else None
            if conn is not None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    written = profiles.write(conn, encoded, self.retention.max_profiles)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                by_item = {id(item): result for (item, _), result in zip(encoded, written, strict=True)}
                stored = [by_item.get(id(item), (False, None)) for item in pending]
                self.stats.written_profiles += sum(ok for ok, _ in written)
        except Exception:
            _log.debug("llmlens: profiles not stored", exc_info=True)
        for item, (ok, remaining) in zip(pending, stored, strict=True):
            item.session = None  # (the session can be large: let it go now)
            item.resolved(ok, remaining)

    def _write_spans(self, requests: list[ReadableSpan], spans: list[ReadableSpan]) -> None:
        if not requests and not spans:
            return
        # Rows of requests in flight that ended: deleted in the transaction that writes their request rows.
        ended = self._active.finished(requests)
        conn = self._connection()
        if conn is None:
            self.stats.dropped_store_unavailable += len(requests)
            self._active.not_deleted(ended)
            return
        request_rows = _rows(request_row, requests)
        span_rows = _rows(span_row, spans)
        unbuilt = len(requests) - len(request_rows)
        if unbuilt:
            self.stats.dropped_invalid_rows += unbuilt
            self._row_dropped(unbuilt, "its span could not be read")
        written, written_spans = len(request_rows), len(span_rows)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if ended:
                    conn.executemany(DELETE_ROW, ended)
                if request_rows:
                    conn.executemany(_INSERT_REQUEST, request_rows)
                    rollups.add(conn, request_rows)
                if span_rows:
                    conn.executemany(_INSERT_SPAN, span_rows)
            except _ROW_ERRORS:
                # One row SQLite cannot take must not cost the others: again, row by row.
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                if ended:
                    conn.executemany(DELETE_ROW, ended)
                written, written_spans = self._write_rows(conn, request_rows, span_rows)
            conn.execute("COMMIT")
        except Exception as error:
            # Always end the transaction: left open, it would hold the write lock (blocking every other
            # process) and make every later BEGIN fail.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            self.stats.dropped_store_unavailable += len(request_rows)
            self._active.not_deleted(ended)
            if not isinstance(error, sqlite3.Error):  # a bug of ours: say so at debug level
                self.stats.last_error = f"batch dropped: {error!r}"
                _log.debug("llmlens: store batch dropped", exc_info=True)
                return
            if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
                self._close()  # corrupt or replaced file: reopen later
            self._unavailable(f"{self.path}: {error}")  # which store: an app may write more than one
            return
        self.stats.written_requests += written
        self.stats.written_spans += written_spans
        self.stats.batches += 1
        if self._unavailable_since is not None:
            self._unavailable_since = None
            if self._warned:
                self._warned = False
                _log.warning("llmlens: local store writable again (%s)", self.path)

    def _write_rows(
        self, conn: sqlite3.Connection, request_rows: list[tuple[Any, ...]], span_rows: list[tuple[Any, ...]]
    ) -> tuple[int, int]:
        """Write each row on its own (inside the caller's transaction), its values made safe; a row SQLite
        still refuses is dropped, counted and warned about once. Returns the request and span rows written."""
        written = [0, 0]
        for rows, insert in ((request_rows, _INSERT_REQUEST), (span_rows, _INSERT_SPAN)):
            for row in rows:
                conn.execute("SAVEPOINT llmlens_row")
                try:
                    safe = sqlite_safe(row)
                    conn.execute(insert, safe)
                    if insert is _INSERT_REQUEST:
                        rollups.add(conn, [safe])
                except _ROW_ERRORS as error:
                    conn.execute("ROLLBACK TO llmlens_row")
                    if insert is _INSERT_REQUEST:
                        self.stats.dropped_invalid_rows += 1
                        self._row_dropped(1, f"SQLite refused it: {error}")
                else:
                    written[insert is _INSERT_SPAN] += 1
                conn.execute("RELEASE llmlens_row")
        return written[0], written[1]

    def _row_dropped(self, count: int, why: str) -> None:
        self.stats.last_error = f"{count} request row(s) dropped: {why}"
        if not self._warned_row:
            self._warned_row = True
            _log.warning(
                "llmlens: a request was not recorded in the local store (%s); the others are. "
                "Further such drops are counted in StoreStats.dropped_invalid_rows, not logged",
                why,
            )

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
            self._active.forget_file()

    def _write_active(self) -> None:
        """The requests in flight and this process's heartbeat (store/active.py), when due."""
        active = self._active
        now_s = time.monotonic()
        if self._stopping or not active.due(now_s, bool(self._flush_waiters), self._conn is not None):
            return
        conn = self._connection()
        if conn is None:
            return
        try:
            active.tick(conn, time.time_ns(), now_s)
        except sqlite3.Error as error:  # (the next tick tries again)
            _log.debug("llmlens: requests in flight not written: %s", error)

    def _leave(self) -> None:
        """At shutdown, on the writer thread: this process's requests in flight leave the store."""
        if self._conn is None or self._active.process_id is None:
            return
        try:
            self._active.leave(self._conn)
        except sqlite3.Error as error:
            _log.debug("llmlens: requests in flight not removed at shutdown: %s", error)

    def _classify(
        self, batch: list[Any]
    ) -> tuple[list[ReadableSpan], list[ReadableSpan], list[FinishedProfile]]:
        """Split into request spans, the spans of their traces and profiles; park the rest for a while."""
        requests: list[ReadableSpan] = []
        spans: list[ReadableSpan] = []
        found_profiles: list[FinishedProfile] = []
        recent = self._recent_traces
        pending = self._pending
        for span in batch:
            if type(span) is FinishedProfile:
                found_profiles.append(span)
                continue
            trace_id = span.context.trace_id
            if is_request(span):
                requests.append(span)
                recent[trace_id] = None
                recent.move_to_end(trace_id)
                if len(recent) > _RECENT_TRACES_MAX:
                    recent.popitem(last=False)
                waiting = pending.pop(trace_id, None)
                if waiting:
                    self._pending_count -= len(waiting)
                    spans.extend(waiting)
            elif trace_id in recent:
                spans.append(span)
            else:
                pending.setdefault(trace_id, []).append(span)
                self._pending_count += 1
        while self._pending_count > _PENDING_SPANS_MAX and pending:
            _, evicted = pending.popitem(last=False)
            self._pending_count -= len(evicted)
        return requests, spans, found_profiles

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < _PRUNE_EVERY_S or self._conn is None:
            return
        self._last_prune = now
        try:
            prune(self._conn, self.retention)
        except sqlite3.Error as error:
            _log.debug("llmlens: prune failed: %s", error)

    # --- fork safety ------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here, and an SQLite connection must not cross a fork:
        # keep the parent's object referenced (closing it here could release the parent's locks).
        if self._conn is not None:
            _inherited_connections.append(self._conn)
        self.stats = StoreStats()  # "this process only": the parent's counts stay with the parent
        self._init_runtime()


# Errors that belong to a row, not to the store: a value SQLite cannot bind (an int over 2**63, text that
# is not UTF-8), or a row a constraint or trigger refuses. (Locked, read-only, full, corrupt: the store.)
_ROW_ERRORS = (
    OverflowError, UnicodeError, TypeError, ValueError,
    sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError,
)  # fmt: skip


def _rows(build: Any, spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """The rows of `spans`; a span whose row cannot be built is left out (the caller counts it)."""
    try:
        return [build(s) for s in spans]
    except Exception:
        _log.debug("llmlens: a span could not be turned into a store row", exc_info=True)
    rows = []
    for span in spans:
        try:
            rows.append(build(span))
        except Exception:
            pass
    return rows


_SIDECARS = ("-wal", "-shm")
# A profile's summary names the user's own frames: llmlens' are not theirs (profiles.summarize).
_OWN_CODE = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,)


def _reinit_after_fork() -> None:
    for processor in list(_processors):
        processor._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
