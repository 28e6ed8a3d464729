"""The store under bad conditions: kill -9 mid-write, a read-only store, a locked file, a full disk, a file
that is not ours, a value SQLite cannot take. Each time the application goes on, nothing raises, there is
exactly one warning, drops are counted, and writing resumes once the cause goes away.

The read-only and full-disk cases mount a small tmpfs (the tests run as root here, and root ignores
file modes). Where mounting is not possible the read-only case falls back to file modes (non-root) or is
skipped, and the full-disk case is also run with `PRAGMA max_page_count` on the writer's connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import llmlens.store.processor as processor_module
from llmlens import semconv
from llmlens.store import SQLiteSpanProcessor, open_store
from llmlens.store.schema import APPLICATION_ID, SCHEMA_VERSION
from test_store_processor import (
    count,
    emit_request,
    hold_write_lock,
    llm_attributes,
    new_processor,
    new_provider,
    rows_of,
)

# --- kill -9 ------------------------------------------------------------------------------------------

STREAMER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_store_processor import emit_request, llm_attributes, new_processor, new_provider

    processor = new_processor(sys.argv[1], batch_size=64, flush_interval_s=0.01)
    tracer = new_provider(processor).get_tracer("streamer")
    done = int(sys.argv[2])
    while True:
        for i in range(250):
            emit_request(tracer, llm_attributes(done + i), children=1)
        done += 250
        if processor.force_flush(timeout_millis=10_000):
            print(done, flush=True)  # acknowledged: every span up to here is committed
    """
)


def test_kill_9_while_writing_loses_at_most_the_unflushed_queue(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    script = tmp_path / "streamer.py"
    script.write_text(STREAMER.format(tests=str(Path(__file__).parent)))
    rng = random.Random(9)
    acknowledged = 0
    for _round in range(3):  # kill, reopen, kill again: each round starts from the surviving file
        streamer = subprocess.Popen(
            [sys.executable, str(script), str(db), str(count(db) if db.exists() else 0)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert streamer.stdout is not None
        start = acknowledged
        lines = 0
        for line in streamer.stdout:
            acknowledged = int(line)
            lines += 1
            if lines >= 4 and acknowledged - start >= 2000:
                break
        assert lines >= 4, streamer.stderr.read() if streamer.stderr else ""
        time.sleep(rng.uniform(0.001, 0.03))  # somewhere in the next batches' transactions
        os.kill(streamer.pid, signal.SIGKILL)
        rest, _ = streamer.communicate(timeout=30)
        for line in rest.split():  # printed before the kill: acknowledged too
            acknowledged = int(line)
        assert streamer.returncode == -signal.SIGKILL

        assert rows_of(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        with contextlib.closing(open_store(db)) as conn:
            stored = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
            rolled_up = conn.execute("SELECT coalesce(sum(requests), 0) FROM rollup_minute").fetchone()[0]
            spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        assert stored >= acknowledged
        assert stored <= acknowledged + 250 + 64 * 4  # at most what was emitted after the last flush
        assert rolled_up == stored  # rows and rollups commit together
        assert spans == stored  # and each request's child span with it
        acknowledged = stored


# --- read-only, full disk: a small file system of our own ----------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path | None]]:
    """`mount(size)` -> a fresh tmpfs mount point, or None where mounting is not possible."""
    mounts: list[Path] = []

    def mount(size: str) -> Path | None:
        point = tmp_path / f"fs{len(mounts)}"
        point.mkdir()
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
                capture_output=True, timeout=10,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:
            return None
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True, capture_output=True)


@pytest.fixture
def store_log(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[str]]:
    """`lines(word)`: the llmlens.store warnings so far that contain `word`."""
    caplog.set_level(logging.WARNING, logger="llmlens.store")

    def lines(word: str = "") -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "llmlens.store" and r.levelno == logging.WARNING and word in r.getMessage()
        ]

    return lines


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processor_module, "_REOPEN_AFTER_S", 0.2)
    monkeypatch.setattr(processor_module, "_BUSY_TIMEOUT_MS", 200)


def run_app(processor: SQLiteSpanProcessor, tracer: object, rounds: int = 3, per_round: int = 100) -> None:
    """The application: makes requests and flushes; none of this may raise or wait long."""
    for r in range(rounds):
        started = time.monotonic()
        for i in range(per_round):
            emit_request(tracer, llm_attributes(r * per_round + i), children=1)  # type: ignore[arg-type]
        assert time.monotonic() - started < 2.0  # on_end never waits for the store
        assert processor.force_flush(timeout_millis=20_000)


@pytest.mark.usefixtures("fast_retry")
def test_read_only_store_warns_once_and_recovers(
    tmpfs: Callable[[str], Path | None], tmp_path: Path, store_log: Callable[[str], list[str]]
) -> None:
    point = tmpfs("8m")
    if point is None and os.geteuid() == 0:
        pytest.skip("root ignores file modes and mounting a tmpfs is not possible here")
    directory = point or tmp_path / "ro"
    directory.mkdir(exist_ok=True)
    db = directory / "llmlens.db"
    open_store(db).close()
    if point is not None:
        remount(point, "ro")
    else:
        db.chmod(0o444)
        directory.chmod(0o555)

    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("app")
    run_app(processor, tracer)
    time.sleep(0.3)  # past the retry interval: it tries again, fails again, says nothing more
    run_app(processor, tracer)
    assert len(store_log("unavailable")) == 1, store_log()
    assert str(db) in store_log("unavailable")[0]
    assert processor.stats.dropped_store_unavailable == 600
    assert processor.stats.written_requests == 0

    if point is not None:
        remount(point, "rw")
    else:
        directory.chmod(0o755)
        db.chmod(0o644)
    time.sleep(0.3)
    run_app(processor, tracer)
    assert processor.stats.written_requests == 300
    assert count(db) == 300
    assert len(store_log("writable again")) == 1 and len(store_log("unavailable")) == 1
    provider.shutdown()


@pytest.mark.parametrize("how", ["tmpfs", "max_page_count"])
@pytest.mark.usefixtures("fast_retry")
def test_full_disk_warns_once_and_recovers(
    how: str, tmpfs: Callable[[str], Path | None], tmp_path: Path, store_log: Callable[[str], list[str]]
) -> None:
    if how == "tmpfs":
        point = tmpfs("1m")
        if point is None:
            pytest.skip("mounting a tmpfs is not possible here (the max_page_count variant still runs)")
        db = point / "llmlens.db"
    else:
        db = tmp_path / "llmlens.db"
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("app")
    run_app(processor, tracer, rounds=1)
    assert processor.stats.written_requests == 100
    if how == "max_page_count":  # the simulation: this connection may not grow the file any more
        assert processor._conn is not None
        pages = processor._conn.execute("PRAGMA page_count").fetchone()[0]
        processor._conn.execute(f"PRAGMA max_page_count = {pages + 30}")

    big = "x" * 2000  # about 2 KB per row: a few MB in all, more than there is room for
    for _ in range(4):
        for i in range(500):
            emit_request(tracer, llm_attributes(i, **{"app.note": big}))
        assert processor.force_flush(timeout_millis=20_000)
        assert len(store_log("unavailable")) <= 1
    assert len(store_log("unavailable")) == 1, store_log()
    assert "full" in store_log("unavailable")[0]
    assert processor.stats.dropped_store_unavailable > 0
    assert processor.stats.written_requests + processor.stats.dropped_store_unavailable == 2100
    written = processor.stats.written_requests
    assert rows_of(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    assert count(db) == written

    if how == "tmpfs":
        remount(point, "size=32m")  # type: ignore[arg-type]
    else:
        processor._conn.execute("PRAGMA max_page_count = 1073741823")  # type: ignore[union-attr]
    run_app(processor, tracer, rounds=2)
    assert processor.stats.written_requests == written + 200
    assert count(db) == written + 200
    assert len(store_log("writable again")) == 1 and len(store_log("unavailable")) == 1
    provider.shutdown()


# --- a locked file ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_retry")
def test_locked_store_warns_once_and_recovers(tmp_path: Path, store_log: Callable[[str], list[str]]) -> None:
    db = tmp_path / "llmlens.db"
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("app")
    run_app(processor, tracer, rounds=1)
    with hold_write_lock(db):  # held for several busy timeouts
        run_app(processor, tracer, rounds=3)
        assert processor.stats.dropped_store_unavailable == 300
        assert len(store_log("unavailable")) == 1, store_log()
        assert "locked" in store_log("unavailable")[0]
    run_app(processor, tracer, rounds=2)
    assert processor.stats.written_requests == 300
    assert count(db) == 300
    assert len(store_log("writable again")) == 1 and len(store_log("unavailable")) == 1

    # a second outage warns again (once)
    with hold_write_lock(db):
        run_app(processor, tracer, rounds=2)
    assert len(store_log("unavailable")) == 2
    provider.shutdown()


# --- a file that is not ours -------------------------------------------------------------------------------


def _foreign_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {i}",) for i in range(100)])
        conn.commit()


def _other_application_id(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA application_id = 1234")
        conn.commit()


def _newer_llmlens(path: Path) -> None:
    open_store(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.commit()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"name,model\nfoo,bar\n" * 500)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_foreign_sqlite, "another application"),
        (_other_application_id, "another application"),
        (_newer_llmlens, "newer llmlens"),
        (_not_sqlite, "not an llmlens store"),
    ],
    ids=["foreign-sqlite", "other-application-id", "newer-schema", "not-sqlite"],
)
@pytest.mark.usefixtures("fast_retry")
def test_a_file_that_is_not_ours_is_refused_and_left_alone(
    make: Callable[[Path], None], message: str, tmp_path: Path, store_log: Callable[[str], list[str]]
) -> None:
    db = tmp_path / "data.db"
    make(db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    listing = sorted(p.name for p in tmp_path.iterdir())

    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("app")
    run_app(processor, tracer, rounds=2)
    time.sleep(0.3)  # one more attempt after the retry interval
    run_app(processor, tracer, rounds=1)
    provider.shutdown()

    assert len(store_log()) == 1, store_log()
    assert message in store_log()[0] and str(db) in store_log()[0]
    assert "\n" not in store_log()[0]
    assert processor.stats.dropped_store_unavailable == 300 and processor.stats.written_requests == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no -wal / -shm left behind either
    if make is not _not_sqlite:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert (
                conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID
                or make is _newer_llmlens
            )


# --- a value SQLite cannot take ----------------------------------------------------------------------


def _one_batch(tmp_path: Path) -> tuple[Path, SQLiteSpanProcessor, object, object]:
    """A processor that writes only when flushed, so everything emitted before lands in one batch."""
    db = tmp_path / "llmlens.db"
    processor = new_processor(db, flush_interval_s=60)
    provider = new_provider(processor)
    return db, processor, provider, provider.get_tracer("app")


def test_a_value_sqlite_cannot_take_is_fixed_in_its_own_row_and_the_batch_is_written(
    tmp_path: Path, store_log: Callable[[str], list[str]]
) -> None:
    db, processor, provider, tracer = _one_batch(tmp_path)
    for i in range(50):
        emit_request(tracer, llm_attributes(i), children=1)  # type: ignore[arg-type]
    too_big = emit_request(
        tracer,  # type: ignore[arg-type]
        llm_attributes(50, **{semconv.USAGE_INPUT_TOKENS: 10**30, semconv.SERVER_PORT: -(2**70)}),
        children=1,
    )
    not_utf8 = emit_request(
        tracer,
        llm_attributes(51, **{semconv.REQUEST_MODEL: "gpt-\ud800"}),
        name="chat gpt-\ud800",  # type: ignore[arg-type]
    )
    for i in range(52, 100):
        emit_request(tracer, llm_attributes(i), children=1)  # type: ignore[arg-type]
    assert processor.force_flush()

    assert count(db) == 100 and processor.stats.written_requests == 100
    assert processor.stats.batches == 1
    assert processor.stats.dropped_store_unavailable == 0 and processor.stats.dropped_invalid_rows == 0
    big = rows_of(db, "SELECT input_tokens, output_tokens, server_port FROM requests WHERE span_id = ?",
                  (f"{too_big[1]:016x}",))  # fmt: skip
    assert big == [{"input_tokens": None, "output_tokens": 200, "server_port": None}]
    (odd,) = rows_of(db, "SELECT request_model, span_name FROM requests WHERE span_id = ?",
                     (f"{not_utf8[1]:016x}",))  # fmt: skip
    assert odd == {"request_model": "gpt-?", "span_name": "chat gpt-?"}
    assert count(db, "spans") == 99  # the children, the bad row's included
    # rollups took every row; the unknown count adds nothing
    (totals,) = rows_of(db, "SELECT sum(requests) AS n, sum(input_tokens) AS tokens FROM rollup_minute")
    assert totals["n"] == 100
    assert totals["tokens"] == sum(1000 + i for i in range(100) if i != 50)
    assert store_log() == []
    with hold_write_lock(db):  # the writer does not keep a transaction (and the write lock) open
        pass
    provider.shutdown()


def test_a_row_sqlite_refuses_is_dropped_alone_counted_and_warned_about_once(
    tmp_path: Path, store_log: Callable[[str], list[str]]
) -> None:
    db, processor, provider, tracer = _one_batch(tmp_path)
    open_store(db).close()
    with contextlib.closing(sqlite3.connect(db)) as conn:  # a real refusal: a trigger on the table
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON requests WHEN NEW.request_model = 'refused' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        )
        conn.commit()
    for round_ in range(3):
        for i in range(40):
            emit_request(tracer, llm_attributes(i), children=1)  # type: ignore[arg-type]
        emit_request(tracer, llm_attributes(40, **{semconv.REQUEST_MODEL: "refused"}))  # type: ignore[arg-type]
        assert processor.force_flush()
        assert count(db) == 40 * (round_ + 1)
    assert processor.stats.written_requests == 120
    assert processor.stats.dropped_invalid_rows == 3
    assert processor.stats.dropped_store_unavailable == 0
    assert "refused by a trigger" in (processor.stats.last_error or "")
    assert count(db, "spans") == 120
    (totals,) = rows_of(db, "SELECT sum(requests) AS n FROM rollup_minute")
    assert totals["n"] == 120  # the dropped row is not in the rollups either
    assert len(store_log("not recorded")) == 1, store_log()
    assert store_log("unavailable") == []
    provider.shutdown()


# --- the file deleted or replaced under the writer ------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "deleted-with-wal", "replaced"])
def test_a_store_deleted_or_replaced_while_in_use_is_opened_again(
    how: str, tmp_path: Path, store_log: Callable[[str], list[str]]
) -> None:
    db = tmp_path / "llmlens.db"
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("app")
    run_app(processor, tracer, rounds=1)
    assert count(db) == 100
    if how == "replaced":  # e.g. a backup restored over it
        other = tmp_path / "restored.db"
        open_store(other).close()
        os.replace(other, db)
    else:
        db.unlink()
        if how == "deleted-with-wal":
            for suffix in ("-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    run_app(processor, tracer, rounds=2)
    assert count(db) == 200  # every row written after the delete is in the (new) file
    assert count(db, "spans") == 200
    (totals,) = rows_of(db, "SELECT sum(requests) AS n FROM rollup_minute")
    assert totals["n"] == 200
    assert processor.stats.reopened == 1 and processor.stats.written_requests == 300
    assert "deleted or replaced" in (processor.stats.last_error or "")
    assert len(store_log("deleted or replaced")) == 1, store_log()
    assert str(db) in store_log("deleted or replaced")[0]
    assert rows_of(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]

    db.unlink()  # again: it is opened again, the warning is not repeated
    run_app(processor, tracer, rounds=1)
    assert count(db) == 100 and processor.stats.reopened == 2
    assert len(store_log("deleted or replaced")) == 1
    provider.shutdown()


# --- streams still open at uninstrument() -------------------------------------------------------------


def test_streams_open_at_uninstrument_still_get_their_rows(
    tmp_path: Path, otel: object, instrument: Callable[..., object], client: object
) -> None:
    from llmlens.instrumentor import Instrumentor
    from llmlens.store.attach import attached_store

    db = tmp_path / "llmlens.db"
    instrument(store=True, db_path=str(db))
    store = attached_store(otel.tracer_provider)  # type: ignore[attr-defined]
    assert store is not None
    messages = [{"role": "user", "content": "Hi"}]
    for _ in range(16):
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[attr-defined]
    streams = [
        client.chat.completions.create(  # type: ignore[attr-defined]
            model="gpt-4o-mini", messages=messages, stream=True, extra_headers={"x-fake-scenario": "chunks=4"}
        )
        for _ in range(3)
    ]
    for stream in streams:
        next(iter(stream))
    del stream
    Instrumentor().uninstrument()
    streams[0].close()
    for _chunk in streams[1]:  # read to the end after uninstrument
        pass
    streams.pop(2)  # dropped: garbage collection ends it
    import gc

    gc.collect()
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[attr-defined]
    assert store.force_flush(10_000)
    spans = [s for s in otel.spans() if s.attributes and "gen_ai.operation.name" in s.attributes]  # type: ignore[attr-defined]
    assert len(spans) == 19
    rows = rows_of(db, "SELECT span_id, stream_outcome FROM requests")
    assert sorted(r["span_id"] for r in rows) == sorted(f"{s.context.span_id:016x}" for s in spans)
    assert sorted(r["stream_outcome"] for r in rows if r["stream_outcome"]) == [
        "abandoned", "closed", "completed"
    ]  # fmt: skip
    # After uninstrument nothing new is recorded: the call made then has no span at all, and a span
    # started after the store was disabled gets no row.
    tracer = otel.tracer_provider.get_tracer("app")  # type: ignore[attr-defined]
    emit_request(tracer, llm_attributes(0))
    assert store.force_flush(10_000)
    assert count(db) == 19
