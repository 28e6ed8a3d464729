"""Faults around an instrumented application: a collector that is down or never answers, several
processes writing one store, the store failing under real SDK calls, `uninstrument()` in the middle of a
stream.

The store's own failure modes are tested at the span-processor level in tests/test_store_reliability.py
(kill -9 mid-batch with `PRAGMA integrity_check` and no partial rows, a read-only tmpfs, a full disk by
tmpfs and by `PRAGMA max_page_count`, a locked file, a file that is not ours, a file deleted or
replaced while in use: one warning each, drops counted, writing resumed) and in
tests/test_store_processor.py (three processes writing one file). Here the same faults meet real SDK
calls: the application's calls go on at their usual speed while the store is locked, deleted, full or
read-only, llmlens says so in one line naming the file, and the rows come back once the fault goes.

Read-only while the store is open, for root (the tests run as root): root ignores file modes, and a
read-only remount (`mount -o remount,ro`, of a bind mount too) is refused while a file on it is open
for writing ("mount point is busy"). `chattr +i` (immutable) on the database and its WAL does stop
root's writes through the open connection ("disk I/O error"); it needs a file system with that
attribute (ext4 here), and the test fails where there is none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Harness
from targets import FuzzServer, all_targets, make_client, outcome, plain, render

from llmlens.demo.fake_server import FakeProvider
from llmlens.instrumentor import Instrumentor

HERE = Path(__file__).resolve().parent
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}


# ------------------------------------------------------------------------------ a collector down or slow


@contextlib.contextmanager
def silent_collector() -> Iterator[int]:
    """A port that accepts connections and never answers (reads nothing, sends nothing)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_app(base_url: str, exporter: str, db: Path, endpoint: str | None = None) -> dict[str, Any]:
    env = {
        **CLEAN_ENV,
        "LLMLENS_DB": str(db),
        # small queue caps, reached in the warm-up round: what the memory bound relies on
        "OTEL_BSP_MAX_QUEUE_SIZE": "32",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "32",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "16",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5",
    }
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    done = subprocess.run(
        [sys.executable, str(HERE / "exporting_app.py"), base_url, exporter, "60"],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


@pytest.mark.timeout(300)
def test_a_collector_down_or_silent_costs_the_application_nothing(fake: FakeProvider, tmp_path: Path) -> None:
    results = {}
    with silent_collector() as port:
        for name, exporter, endpoint in [
            ("none", "none", None),
            ("down", "otlp", f"http://127.0.0.1:{closed_port()}"),
            ("silent", "otlp", f"http://127.0.0.1:{port}"),
        ]:
            results[name] = run_app(fake.base_url, exporter, tmp_path / f"{name}.db", endpoint)
    base = results["none"]
    table = {k: {m: round(v, 2) for m, v in r.items() if m != "stderr"} for k, r in results.items()}
    for name in ("down", "silent"):
        result = results[name]
        # latency: the export happens on the batch processors' threads, never in the call
        assert result["median_ms"] < base["median_ms"] * 2 + 1, table
        assert result["p90_ms"] < base["p90_ms"] * 3 + 2, table
        # memory: the batch queues stop at their caps; the third round adds (almost) nothing
        assert result["memory_third"] - result["memory_second"] < 1_000_000, table
        assert "Traceback" not in result["stderr"], result["stderr"][-3000:]


# -------------------------------------------------------------------------- eight processes, one store


@pytest.mark.timeout(300)
def test_eight_application_processes_write_one_store(fake: FakeProvider, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"  # created by whichever writer comes first
    calls = 60
    start_at = time.time() + 4
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "writer_app.py"),
                fake.base_url,
                f"writer-{k}",
                str(calls),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**CLEAN_ENV, "LLMLENS_DB": str(db)},
        )
        for k in range(8)
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err[-3000:]
        assert "locked" not in err and "llmlens" not in err, err[-3000:]  # no warning, nothing escaped
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats == {
            "flushed": True, "written": calls, "dropped_queue_full": 0, "dropped_store_unavailable": 0,
            "last_error": None,
        }, (stats, err[-2000:])  # fmt: skip
    with contextlib.closing(sqlite3.connect(db)) as conn:
        by_writer = dict(conn.execute("SELECT service_name, count(*) FROM requests GROUP BY service_name"))
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(DISTINCT span_id) FROM requests").fetchone()[0] == 8 * calls
    assert by_writer == {f"writer-{k}": calls for k in range(8)}


# ---------------------------------------------------------------- the store failing under real SDK calls


@contextlib.contextmanager
def locked(db: Path, app: Harness) -> Iterator[None]:
    with contextlib.closing(sqlite3.connect(db, timeout=1, isolation_level=None)) as conn:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")


@contextlib.contextmanager
def deleted(db: Path, app: Harness) -> Iterator[None]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    yield


@contextlib.contextmanager
def full(db: Path, app: Harness) -> Iterator[None]:
    from llmlens.store.attach import attached_store

    store = attached_store(app.tracer_provider)
    assert store is not None and store._conn is not None
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # this writer may not grow the file any more
    yield
    store._conn.execute("PRAGMA max_page_count = 1073741823")


@contextlib.contextmanager
def read_only(db: Path, app: Harness) -> Iterator[None]:
    """`chattr +i` on the store and its WAL: the one thing here that stops root writing an open file."""
    files = [str(p) for p in (db, Path(f"{db}-wal")) if p.exists()]
    done = subprocess.run(["chattr", "+i", *files], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"chattr +i is not possible here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *files], check=True, capture_output=True)


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmlens.store.processor as processor_module

    monkeypatch.setattr(processor_module, "_REOPEN_AFTER_S", 0.2)
    monkeypatch.setattr(processor_module, "_BUSY_TIMEOUT_MS", 200)


@pytest.mark.usefixtures("fast_retry")
@pytest.mark.parametrize("fault", [locked, deleted, full, read_only], ids=lambda f: f.__name__)
def test_the_store_failing_under_real_calls(
    fault: Callable[[Path, Harness], Any], tmp_path: Path, fake: FakeProvider
) -> None:
    import openai

    db = tmp_path / "llmlens.db"
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]

    def calls(n: int) -> float:
        """n calls (every other streamed); the slowest one's seconds."""
        slowest = 0.0
        for i in range(n):
            started = time.perf_counter()
            if i % 2:
                for _chunk in client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, stream=True
                ):
                    pass
            else:
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            slowest = max(slowest, time.perf_counter() - started)
        return slowest

    with Harness(db) as app, app.instrumented(providers=["openai"]):
        calls(10)
        app.flush_store()
        before = app.llm_spans()
        with fault(db, app):
            slowest = calls(20)
            app.flush_store()
            time.sleep(0.3)  # past the retry interval: it tries again, and says nothing more
            calls(10)
            app.flush_store()
        time.sleep(0.3)
        calls(10)
        app.flush_store()
        warnings = [r.getMessage() for r in app.llmlens_log.records if r.levelno >= logging.WARNING]
        spans = app.llm_spans()

    assert slowest < 1.0, slowest  # no call waited for the store
    assert len(spans) == 50 and len(before) == 10
    assert len(warnings) in (1, 2), warnings  # the fault, and (where it was one) that it is over
    assert "\n" not in warnings[0] and str(db) in warnings[0], warnings
    if len(warnings) == 2:
        assert "writable again" in warnings[1], warnings
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = {row[0] for row in conn.execute("SELECT span_id FROM requests")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    last = {f"{s.context.span_id:016x}" for s in spans[-10:]}
    assert last <= stored  # recovered: the calls after the fault are stored
    if fault is not deleted:
        assert {f"{s.context.span_id:016x}" for s in before} <= stored


# ------------------------------------------------------------------------- uninstrument() mid-stream

STREAMS = [t for t in all_targets() if t.codec is not None]


@pytest.mark.parametrize("target", STREAMS, ids=[t.name for t in STREAMS])
def test_uninstrument_in_the_middle_of_a_stream(target: Any, tmp_path: Path) -> None:
    """The stream goes on as without llmlens; its span ends once, completed, and gets its row."""
    with FuzzServer() as server, Harness(tmp_path / "llmlens.db") as app:
        server.wire = target.seed
        client = make_client(target.sdk, server.root)
        without = outcome(target, client)
        instrumentor = Instrumentor()
        instrumentor.instrument(
            tracer_provider=app.tracer_provider, meter_provider=app.meter_provider,
            logger_provider=app.logger_provider, **app.options,
        )  # fmt: skip
        items: list[Any] = []

        def emit(item: Any) -> None:
            items.append(plain(item))
            if len(items) == 2:
                instrumentor.uninstrument()

        result = target.call(client, emit)
        assert not instrumentor.is_instrumented_by_opentelemetry
        assert render("returned", items, plain(result)) == without
        assert app.problems() == []
        (span,) = app.llm_spans()
        assert span.attributes["llmlens.stream.outcome"] == "completed"
        app.flush_store()
        assert app.rows_for(span) == 1
