"""Requests in flight: `active_requests` and `store_processes`, written by applications, read from outside.

Real processes and real files: an instrumented application (tests/active_app.py) runs as its own process
and streams slowly from the fake provider on 127.0.0.1, while the test reads the store file it writes, as
`llmlens log --active` and the web UI do, and kills, freezes or stops the application. In-process tests
cover the request path (a store it cannot open, a locked store, a span it cannot read), many threads
starting requests at once, the transaction that ends a request, and a proxied request.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app_process import AppProcess, run_llmlens
from llmlens.demo.fake_server import FakeProvider
from llmlens.store import open_store, processes, queries
from llmlens.store.queries import ActiveRequest
from llmlens.store.schema import StoreError

SLOW = "chunks=20,chunk_delay_ms=100"  # about 2 s
SLOWER = "chunks=200,chunk_delay_ms=100"  # about 20 s: ended by the test
NS = 1_000_000_000


# --- helpers ------------------------------------------------------------------------------------------


class App(AppProcess):
    """tests/active_app.py in its own process."""

    def __init__(self, db: Path, base_url: str) -> None:
        super().__init__("active_app.py", db, base_url)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "llmlens.db"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """A fake provider of this test's own: a stream the test abandons must not hold a shared one."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
def apps(fake: FakeProvider) -> Iterator[Callable[[Path], App]]:
    started: list[App] = []

    def start(db: Path) -> App:
        app = App(db, fake.base_url)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


def in_flight(db: Path, now_ns: int | None = None) -> list[ActiveRequest]:
    """What a reader sees (nothing while the file does not exist yet, or the app is still creating it)."""
    if not db.exists():
        return []
    try:
        conn = open_store(db, readonly=True)
    except StoreError as error:
        if "older schema" in str(error):  # created, not yet migrated: the app's writer is at it
            return []
        raise
    with contextlib.closing(conn):
        return queries.active_requests(conn, now_ns)


def table(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def freeze(app: App, db: Path) -> None:
    """SIGSTOP the app, at a moment its writer holds no write lock on the store (else nothing could write
    to it until the app goes on)."""
    for _ in range(50):
        app.process.send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        with contextlib.closing(sqlite3.connect(db, timeout=0.2, isolation_level=None)) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return
            except sqlite3.OperationalError:  # stopped inside a transaction: let it finish
                app.process.send_signal(signal.SIGCONT)
                time.sleep(0.05)
    raise AssertionError("the app always held the store's write lock")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 5.0, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(poll)


# --- a stream, seen from outside ----------------------------------------------------------------------


def test_a_slow_stream_is_in_flight_with_its_progress_until_it_ends(db: Path, apps: Any) -> None:
    app = apps(db)
    app.ask("call")  # the store exists, its reader can open it
    app.ask("flush")
    asked = time.monotonic()
    app.ask(f"streams 1 {SLOW}")
    first = wait_for("the stream shows in flight", lambda: in_flight(db), timeout=2.0, poll=0.02)
    assert time.monotonic() - asked < 1.2  # within a writer tick or two of its start
    [request] = first
    assert (request.pid, request.provider, request.request_model) == (
        app.pid,
        "openai_compatible",
        "gpt-4o-mini",
    )
    assert (request.operation, request.stream, request.span_kind) == ("chat", True, "client")
    assert request.server_address == "127.0.0.1" and request.hostname == processes.hostname()
    # Read both tables in one snapshot, every 50 ms: the request is in flight or in the log, never in
    # neither (its active row goes in the transaction that writes its request row) nor both.
    seen: list[ActiveRequest] = []
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        while True:
            conn.execute("BEGIN")
            active = queries.active_requests(conn)
            logged = conn.execute(
                "SELECT span_id, chunk_count, ttfc_ms FROM requests WHERE stream = 1"
            ).fetchall()
            conn.execute("COMMIT")
            assert len(active) + len(logged) == 1, (active, logged)
            if logged:
                break
            assert active[0].span_id == request.span_id
            seen.append(active[0])
            time.sleep(0.05)
    finally:
        conn.close()
    chunks = [r.chunks for r in seen]
    assert chunks == sorted(chunks) and len(set(chunks)) >= 3, chunks  # refreshed as chunks came
    assert all(r.elapsed_ms < s.elapsed_ms for r, s in itertools.pairwise(seen))
    timed = [r for r in seen if r.ttfc_ms is not None]
    assert timed and len({r.ttfc_ms for r in timed}) == 1  # set by the first chunk, then fixed
    [(span_id, chunk_count, ttfc_ms)] = logged
    assert span_id == request.span_id
    assert chunks[-1] <= chunk_count and timed[0].ttfc_ms == pytest.approx(ttfc_ms)
    assert app.ask("wait")["chunks"] == [chunk_count]
    assert in_flight(db) == [] and table(db, "SELECT count(*) FROM active_requests") == [(0,)]


def test_many_threads_starting_at_once_lose_no_request(db: Path, apps: Any) -> None:
    app = apps(db)
    # 4 s streams: the server sends as soon as a request arrives, and the first of 24 connections may
    # be read from a second or more before the last one opens.
    app.ask("streams 24 chunks=40,chunk_delay_ms=100")

    def all_24() -> list[ActiveRequest]:
        found = in_flight(db)
        return found if len(found) == 24 else []

    found = wait_for("24 requests in flight", all_24, timeout=3.0)
    assert {r.pid for r in found} == {app.pid} and len({r.span_id for r in found}) == 24
    assert app.ask("wait")["chunks"] == [42] * 24  # (role chunk, 40 content chunks, finish chunk)
    app.ask("flush")
    assert in_flight(db) == []
    assert table(db, "SELECT count(*), sum(chunk_count) FROM requests") == [(24, 24 * 42)]


# --- processes that go ---------------------------------------------------------------------------------


def test_a_clean_exit_takes_its_requests_in_flight_with_it(db: Path, apps: Any) -> None:
    app = apps(db)
    app.ask(f"streams 2 {SLOWER}")
    wait_for("two requests in flight", lambda: len(in_flight(db)) == 2)
    assert app.quit() == 0  # mid-stream: the tracer provider shuts the store down at exit
    assert table(db, "SELECT count(*) FROM active_requests") == [(0,)]
    assert table(db, "SELECT count(*) FROM store_processes") == [(0,)]
    idle = apps(db)  # and a process with nothing in flight leaves no row either
    idle.ask("call")
    idle.ask("flush")
    assert table(db, "SELECT pid FROM store_processes") == [(idle.pid,)]
    assert idle.quit() == 0
    assert table(db, "SELECT count(*) FROM store_processes") == [(0,)]


def test_a_killed_process_is_not_shown_and_the_next_writer_deletes_its_rows(db: Path, apps: Any) -> None:
    app = apps(db)
    app.ask(f"streams 1 {SLOWER}")
    wait_for("the stream in flight", lambda: in_flight(db))
    app.process.send_signal(signal.SIGKILL)
    app.process.wait(10)
    # At once: its pid is gone on this host (its heartbeat would take EXPIRY_S to age).
    assert in_flight(db) == []
    assert table(db, "SELECT pid FROM active_requests") == [(app.pid,)]  # (a reader deletes nothing)
    other = apps(db)
    other.ask("call")
    other.ask("flush")  # its writer's first tick removes the dead process, and so its requests
    assert table(db, "SELECT count(*) FROM active_requests") == [(0,)]
    assert table(db, "SELECT pid FROM store_processes") == [(other.pid,)]


def test_a_frozen_process_expires_then_comes_back(db: Path, apps: Any) -> None:
    app = apps(db)
    app.ask(f"streams 1 {SLOWER}")
    [request] = wait_for("the stream in flight", lambda: in_flight(db))
    freeze(app, db)
    try:
        now = time.time_ns()
        assert [r.span_id for r in in_flight(db, now)] == [request.span_id]  # pid alive, heartbeat fresh
        later = now + int(processes.EXPIRY_S * NS) + NS
        assert in_flight(db, later) == []  # its heartbeat too old then
        # A writer that notices then (the same sweep every writer runs each tick) deletes its rows.
        with contextlib.closing(open_store(db)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            assert processes.remove_dead(conn, later) == 1
            conn.execute("COMMIT")
        assert table(db, "SELECT count(*) FROM active_requests") == [(0,)]
    finally:
        app.process.send_signal(signal.SIGCONT)
    # Its next heartbeat finds its row gone: it registers again and writes its request in flight again.
    back = wait_for("the stream in flight again", lambda: in_flight(db), timeout=3.0)
    assert [r.span_id for r in back] == [request.span_id] and back[0].chunks > request.chunks  # type: ignore[operator]
    assert table(db, "SELECT pid FROM store_processes") == [(app.pid,)]


# --- llmlens log --active ------------------------------------------------------------------------------


def test_llmlens_log_active(db: Path, apps: Any) -> None:
    app = apps(db)
    app.ask("call")
    app.ask("flush")
    result = run_llmlens("log", "--active", db=db)
    assert (result.returncode, result.stdout, result.stderr) == (0, "no requests in flight\n", "")
    app.ask(f"streams 2 {SLOWER}")
    wait_for("two requests with a first chunk", lambda: [r.ttfc_ms for r in in_flight(db)].count(None) == 0
             and len(in_flight(db)) == 2)  # fmt: skip
    result = run_llmlens("log", "--active", db=db)
    assert result.returncode == 0, result.stderr
    header, rule, *rows, footer = result.stdout.splitlines()
    assert header.split() == ["started", "elapsed", "pid", "provider", "model", "operation", "stream",
                              "chunks", "first", "chunk", "route", "or", "server"]  # fmt: skip
    assert set(rule) == {"-", " "} and len(rows) == 2
    for row in rows:
        cells = row.split()
        assert cells[4:9] == [str(app.pid), "openai_compatible", "gpt-4o-mini", "chat", "yes"], row
        assert cells[-1] == "127.0.0.1" and cells[-2] == "ms"  # ... first chunk "NN ms", server
    assert footer.startswith("(2 requests in flight in 1 process, as of ")
    as_json = json.loads(run_llmlens("log", "--active", "--json", "--model", "gpt-4o-mini", db=db).stdout)
    assert [r["pid"] for r in as_json["rows"]] == [app.pid, app.pid]
    first = as_json["rows"][0]
    assert first["stream"] is True and first["chunks"] >= 1 and first["ttfc_ms"] > 0
    assert (
        first["elapsed_ms"] > 0
        and first["start_time"].endswith("Z")
        and as_json["now_ns"] > first["start_ns"]
    )
    assert (
        json.loads(run_llmlens("log", "--active", "--json", "--provider", "anthropic", db=db).stdout)["rows"]
        == []
    )
    with contextlib.closing(open_store(db, readonly=True)) as conn:  # the shapes of the seeds count them
        assert queries.rosetta_metrics_snapshot(conn)["active_streams"] == 2
        assert queries.vandamme_running_totals(conn, provider="nobody")["summary"]["active_requests"] == 2
    limited = run_llmlens("log", "--active", "--limit", "1", db=db)
    assert "(1 of 2 requests in flight in 1 process" in limited.stdout
    for refused, why in ((["--follow"], "no --follow"), (["--status", "ok"], "--status cannot apply"),
                         (["--since", "1h"], "--since cannot apply")):  # fmt: skip
        result = run_llmlens("log", "--active", *refused, db=db)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and why in result.stderr, result.stderr


# --- the request path ----------------------------------------------------------------------------------


def test_the_request_path_never_raises_nor_waits_on_the_store(
    tmp_path: Path, otel: Any, instrument: Any, client: Any
) -> None:
    from llmlens.store.attach import attached_store

    # A store that cannot be opened (its directory is a file): every request still goes through.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    instrument(store=True, db_path=str(blocker / "llmlens.db"))
    store = attached_store(otel.tracer_provider)
    assert store is not None
    for _ in range(3):
        chunks = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True,
            extra_headers={"x-fake-scenario": "chunks=8,chunk_delay_ms=100"},
        )  # fmt: skip
        assert sum(1 for _chunk in chunks) == 10
    assert store.force_flush(10_000)
    assert "cannot" in (store.stats.last_error or "") and not store._active.tracked
    assert store.stats.dropped_store_unavailable == 3

    # A span the processor cannot read: nothing raised into start_span.
    class Unreadable:
        @property
        def _attributes(self) -> Any:
            raise RuntimeError("no")

        @property
        def attributes(self) -> Any:
            raise RuntimeError("no")

    store.on_start(Unreadable())


def test_a_locked_store_does_not_slow_a_stream(
    tmp_path: Path, otel: Any, instrument: Any, client: Any
) -> None:
    from llmlens.store.attach import attached_store

    db = tmp_path / "llmlens.db"
    instrument(store=True, db_path=str(db))
    store = attached_store(otel.tracer_provider)
    assert store is not None
    messages = [{"role": "user", "content": "Hi"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert store.force_flush(10_000)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # every write of the store's writer waits (up to 10 s) from here
    try:
        gaps: list[float] = []
        started = time.monotonic()
        chunks = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True,
            extra_headers={"x-fake-scenario": "chunks=12,chunk_delay_ms=100"},
        )  # fmt: skip
        last = time.monotonic()
        for _chunk in chunks:
            gaps.append(time.monotonic() - last)
            last = time.monotonic()
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(gaps) == 14 and elapsed < 2.5 and max(gaps) < 0.5, (elapsed, gaps)
    assert store.force_flush(20_000)
    assert table(db, "SELECT count(*) FROM requests") == [(2,)]
    assert table(db, "SELECT count(*) FROM active_requests") == [(0,)]


def test_starts_from_many_threads_are_all_tracked(tmp_path: Path) -> None:
    """The deque the request path appends to, under threads that start requests all at once."""
    from opentelemetry.sdk.trace import TracerProvider

    from llmlens import semconv
    from llmlens.store import SQLiteSpanProcessor

    db = tmp_path / "llmlens.db"
    processor = SQLiteSpanProcessor(db, flush_interval_s=0.05)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    spans: list[Any] = []
    gate = threading.Barrier(8)

    def start_many() -> None:
        gate.wait()
        mine = [
            tracer.start_span(
                "chat m", attributes={semconv.OPERATION_NAME: "chat", semconv.REQUEST_MODEL: "m"}
            )
            for _ in range(250)
        ]
        spans.extend(mine)

    threads = [threading.Thread(target=start_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert processor.force_flush(10_000)
    assert len(in_flight(db)) == 2000 == len({f"{s.context.span_id:016x}" for s in spans})
    for span in spans:
        span.end()
    assert processor.force_flush(10_000)
    assert in_flight(db) == [] and table(db, "SELECT count(*) FROM requests") == [(2000,)]
    provider.shutdown()


def test_a_request_leaves_in_flight_in_the_transaction_that_logs_it(tmp_path: Path) -> None:
    """So a reader finds it in one table or the other, never in both, never in neither."""
    from opentelemetry.sdk.trace import TracerProvider

    from llmlens import semconv
    from llmlens.store import SQLiteSpanProcessor

    db = tmp_path / "llmlens.db"
    processor = SQLiteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    span = provider.get_tracer("test").start_span("chat m", attributes={semconv.OPERATION_NAME: "chat"})
    assert processor.force_flush() and len(in_flight(db)) == 1
    statements: list[str] = []
    assert processor._conn is not None
    processor._conn.set_trace_callback(statements.append)  # (called on the writer thread)
    span.end()
    assert processor.force_flush()
    processor._conn.set_trace_callback(None)
    transactions: list[list[str]] = []
    for statement in statements:
        if statement.startswith("BEGIN"):
            transactions.append([])
        elif transactions:
            transactions[-1].append(statement)
    [logged] = [t for t in transactions if any(s.startswith("INSERT OR IGNORE INTO requests") for s in t)]
    assert any(s.startswith("DELETE FROM active_requests") for s in logged), logged
    assert (
        logged[-1] == "COMMIT"
        and in_flight(db) == []
        and table(db, "SELECT count(*) FROM requests") == [(1,)]
    )
    provider.shutdown()


def test_a_proxied_request_in_flight_has_its_route_and_progress(tmp_path: Path) -> None:
    """The SERVER span of a server that is not ASGI (`llm_request`): its path, and the chunks it has sent."""
    from opentelemetry.sdk.trace import TracerProvider

    import llmlens
    from llmlens.core.telemetry import Telemetry
    from llmlens.settings import Settings
    from llmlens.store import SQLiteSpanProcessor

    db = tmp_path / "llmlens.db"
    processor = SQLiteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    telemetry = Telemetry(Settings(store=False, pricing=False, proxy_key_secret="s"), provider)
    with llmlens.llm_request(
        "chat",
        model="my-model",
        provider="vllm",
        stream=True,
        path="/v1/chat/completions",
        telemetry=telemetry,
    ) as request:
        assert processor.force_flush()
        [before] = in_flight(db)
        for _ in range(3):
            request.observe_chunk({"choices": []})
        assert processor.force_flush()
        [after] = in_flight(db)
    assert (before.span_kind, before.route, before.request_model, before.provider) == (
        "server", "/v1/chat/completions", "my-model", "vllm"
    )  # fmt: skip
    assert (before.chunks, before.ttfc_ms) == (0, None)
    assert after.span_id == before.span_id and after.chunks == 3 and after.ttfc_ms > 0  # type: ignore[operator]
    assert processor.force_flush() and in_flight(db) == []
    assert table(db, "SELECT span_kind, chunk_count FROM requests") == [("server", 3)]
    provider.shutdown()


def test_a_span_the_writer_cannot_read_is_counted_and_blocks_no_other(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from opentelemetry.sdk.trace import TracerProvider

    from llmlens import semconv
    from llmlens.store import SQLiteSpanProcessor

    db = tmp_path / "llmlens.db"
    processor = SQLiteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    # Looks like a request to on_start, but has no ids or times (on_start called by hand).
    odd = SimpleNamespace(_attributes=SimpleNamespace(_dict={semconv.OPERATION_NAME: "chat"}), end_time=None)
    processor.on_start(odd)
    span = provider.get_tracer("test").start_span("chat m", attributes={semconv.OPERATION_NAME: "chat"})
    assert processor.force_flush()
    assert [r.span_id for r in in_flight(db)] == [f"{span.get_span_context().span_id:016x}"]
    assert processor.stats.dropped_in_flight == 1
    span.end()
    provider.shutdown()
    assert table(db, "SELECT count(*) FROM active_requests") == [(0,)]


def test_every_exit_of_a_call_takes_its_invocation_out_of_in_flight(
    otel: Any, instrument: Any, client: Any
) -> None:
    """`IN_FLIGHT` (where the writer reads progress) must not keep what has ended."""
    import gc

    import openai

    from llmlens.core.in_flight import IN_FLIGHT

    instrument()
    before = set(IN_FLIGHT)
    hi = [{"role": "user", "content": "Hi"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=hi)
    read = client.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True)
    assert set(IN_FLIGHT) - before  # in flight while the stream is open
    for _chunk in read:
        pass
    closed = client.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True)
    next(iter(closed))
    closed.close()
    dropped = client.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True)
    next(iter(dropped))
    del dropped
    gc.collect()
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=hi, extra_headers={"x-fake-scenario": "status=500"}
        )
    assert set(IN_FLIGHT) == before
    assert len([s for s in otel.spans() if s.attributes.get("gen_ai.operation.name")]) == 5
