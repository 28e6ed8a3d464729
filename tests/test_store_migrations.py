"""Schema migrations: every migration in `schema.MIGRATIONS`, from every earlier version, keeps the data.

For each start version k (0 = a new file) a store is built at k with `migrate(conn, target=k)`, filled
with rows valid for k (real request and span rows made from real spans, restricted to the columns that
exist at k, plus synthetic rows in every table, typed from `PRAGMA table_info`), then opened with
`open_store`: it must reach SCHEMA_VERSION, every row must still be there (on the columns that still
exist), and the schema must be the one a new file gets. Nothing here names a version, so a new
migration is covered the day it is added; a migration that rewrites data on purpose must say so here.

`test_the_harness_covers_a_future_migration` runs the same harness with a made-up migration 2 (and a
destructive one, which it must catch), since today there is only migration 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmlens.store import StoreError, open_store, rollups, schema
from llmlens.store.rows import REQUEST_COLUMNS, SPAN_COLUMNS, is_request, request_row, span_row
from test_store_processor import emit_request, llm_attributes, new_processor, new_provider


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str, int, Any, int]]:
    """(name, declared type, notnull, default, pk) per column."""
    return [(r[1], r[2].upper(), r[3], r[4], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]


def _real_rows() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Request and span rows (in REQUEST_COLUMNS / SPAN_COLUMNS order) from real spans."""
    exporter = InMemorySpanExporter()
    provider = new_provider(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("migrations")
    # At minute 10 of the previous hour, not now: the rollup test below copies rows to later minutes of
    # the same hour, and how many copies stay inside it depends on the minute (it failed at minute 49).
    hour = 3_600_000_000_000
    start = time.time_ns() // hour * hour - hour + 10 * 60_000_000_000
    for i in range(12):
        emit_request(
            tracer, llm_attributes(i), children=2, error="boom" if i % 4 == 0 else None,
            start_ns=start + i, duration_ns=1_500_000_000 + i * 1_000_000,
        )  # fmt: skip
    spans = exporter.get_finished_spans()
    provider.shutdown()
    return [request_row(s) for s in spans if is_request(s)], [span_row(s) for s in spans if not is_request(s)]


def _insert(conn: sqlite3.Connection, table: str, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    placeholders = ", ".join("?" * len(names))
    conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})", rows)


def _synthetic_value(table: str, column: str, declared: str, default: Any, j: int) -> Any:
    if default == "'{}'":  # a JSON column
        return f'{{"synthetic": {j}}}'
    if "INT" in declared:
        return 7_000_000 + j
    if any(t in declared for t in ("REAL", "FLOA", "DOUB")):
        return j + 0.25
    return f"{table}.{column}.{j}"


def _rollup_rows(requests: list[tuple[Any, ...]]) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The rollup rows of `requests` (names and rows per table), written by today's rollups.add."""
    with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        schema.migrate(conn)
        conn.execute("BEGIN")
        rollups.add(conn, requests)
        conn.execute("COMMIT")
        tables = ("rollup_minute", "rollup_hour", "rollup_day")
        return {
            t: ([c[0] for c in _columns(conn, t)], conn.execute(f"SELECT * FROM {t}").fetchall())
            for t in tables
        }


def fill(conn: sqlite3.Connection) -> None:
    """Rows valid for the file's current version, in every table."""
    real_requests, real_spans = _real_rows()
    existing = {t: [c[0] for c in _columns(conn, t)] for t in _tables(conn)}
    conn.execute("BEGIN")
    for table, columns, rows in (
        ("requests", REQUEST_COLUMNS, real_requests),
        ("spans", SPAN_COLUMNS, real_spans),
    ):
        if table in existing:
            keep = [i for i, name in enumerate(columns) if name in existing[table]]
            _insert(conn, table, [columns[i] for i in keep], [tuple(r[i] for i in keep) for r in rows])
    for table, (names, rows) in _rollup_rows(real_requests).items():
        if table in existing:  # as the llmlens of that schema wrote them: the columns it had
            keep = [i for i, name in enumerate(names) if name in existing[table]]
            _insert(conn, table, [names[i] for i in keep], [tuple(r[i] for i in keep) for r in rows])
    for table in existing:
        columns = _columns(conn, table)
        names = [c[0] for c in columns]
        rows = [
            tuple(
                _synthetic_value(table, name, declared, default, j)
                for name, declared, _, default, _ in columns
            )
            for j in range(3)
        ]
        _insert(conn, table, names, rows)
    conn.execute("COMMIT")


def snapshot(conn: sqlite3.Connection) -> dict[str, tuple[list[str], set[tuple[Any, ...]]]]:
    result = {}
    for table in _tables(conn):
        names = [c[0] for c in _columns(conn, table)]
        result[table] = (names, set(conn.execute(f"SELECT {', '.join(names)} FROM {table}")))
    return result


def schema_of(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return sorted(
        (t, n, " ".join((sql or "").split()))
        for t, n, sql in conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        )
    )


def check_upgrade_from(start: int, directory: Path) -> None:
    """The harness: a store at version `start` with data, opened with open_store, keeps all of it."""
    directory.mkdir(parents=True, exist_ok=True)
    fresh = directory / "fresh.db"
    with contextlib.closing(open_store(fresh)) as conn:
        want_schema = schema_of(conn)

    path = directory / f"from-{start}.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert schema.migrate(conn, target=start) == start
        assert conn.execute("PRAGMA user_version").fetchone()[0] == start
        fill(conn)
        before = snapshot(conn)

    with contextlib.closing(open_store(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        assert schema_of(conn) == want_schema, "migrating gives another schema than a new file"
        after = {t: {c[0] for c in _columns(conn, t)} for t in _tables(conn)}
        for table, (names, rows) in before.items():
            assert table in after, f"migration from {start} dropped table {table}"
            kept = [n for n in names if n in after[table]]
            assert kept, f"migration from {start} dropped every column of {table}"
            now = set(conn.execute(f"SELECT {', '.join(kept)} FROM {table}"))
            old = {tuple(row[names.index(n)] for n in kept) for row in rows}
            missing = old - now
            assert not missing, f"migration from {start} lost {len(missing)} of {len(old)} rows of {table}"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # and the migrated file works as a store: the processor writes to it, retention prunes it
    processor = new_processor(path)
    provider = new_provider(processor)
    emit_request(provider.get_tracer("after"), children=1)
    assert processor.force_flush()
    provider.shutdown()
    assert processor.stats.written_requests == 1 and processor.stats.dropped_store_unavailable == 0


@pytest.mark.parametrize("start", range(schema.SCHEMA_VERSION))
def test_every_migration_from_every_earlier_version(start: int, tmp_path: Path) -> None:
    check_upgrade_from(start, tmp_path)


def _by_unit(rows: list[dict[str, Any]], unit: str, ratio: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rollup rows summed into coarser units (minute -> hour: ratio 60), histograms merged."""
    result: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        m = dict(row)
        key = (
            m.pop(unit) // ratio,
            *(m.pop(k) for k in ("provider", "model", "operation", "stream", "is_error")),
        )
        e = result.setdefault(key, {"duration_hist": {}, "ttfc_hist": {}})
        for name, value in m.items():
            if name.endswith("_hist"):
                for bucket, n in json.loads(value).items():
                    e[name][bucket] = e[name].get(bucket, 0) + n
            elif name in ("duration_ms_max", "last_ns"):
                e[name] = max(e.get(name, value), value)
            else:
                e[name] = e.get(name, 0) + value
    return result


def test_migration_2_fills_hour_and_day_rollups_from_the_minute_rollups(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        schema.migrate(conn, target=1)
        fill(conn)
        conn.execute("BEGIN")  # more minutes in one hour, other hours, other days, for the same keys
        for shift in (1, 7, 60, 1440, 3 * 1440 + 120):
            conn.execute(
                "INSERT OR IGNORE INTO rollup_minute SELECT minute + ?, provider, model, operation, stream, "
                "is_error, requests, duration_ms_sum, duration_ms_max * 2, ttfc_ms_sum, ttfc_count, "
                "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, "
                "cost_usd, duration_hist, ttfc_hist, last_ns + 1 FROM rollup_minute WHERE minute % 60 < 50",
                (shift,),
            )
        conn.execute("COMMIT")
        conn.row_factory = sqlite3.Row
        minutes = [dict(r) for r in conn.execute("SELECT * FROM rollup_minute")]

    with contextlib.closing(open_store(path)) as conn:
        conn.row_factory = sqlite3.Row
        for table, unit, ratio in (("rollup_hour", "hour", 60), ("rollup_day", "day", 1440)):
            expected = _by_unit(minutes, "minute", ratio)
            assert len(expected) < len(minutes) / 2  # coarser rows really merge finer ones
            got = {}
            for h in (dict(r) for r in conn.execute(f"SELECT * FROM {table}")):
                key = (
                    h.pop(unit),
                    *(h.pop(k) for k in ("provider", "model", "operation", "stream", "is_error")),
                )
                h["duration_hist"], h["ttfc_hist"] = (
                    json.loads(h["duration_hist"]),
                    json.loads(h["ttfc_hist"]),
                )
                got[key] = h
            assert set(got) == set(expected), table
            for key, want in expected.items():
                for name, value in want.items():
                    assert got[key][name] == pytest.approx(value), (table, key, name)


def test_migrate_stops_at_the_target_and_steps_one_at_a_time(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "steps.db", isolation_level=None)) as conn:
        for target in range(schema.SCHEMA_VERSION + 1):
            assert schema.migrate(conn, target=target) == target
            assert conn.execute("PRAGMA user_version").fetchone()[0] == target
        assert schema.migrate(conn) == schema.SCHEMA_VERSION  # nothing left to do
        assert not conn.in_transaction


def test_the_harness_covers_a_future_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    future = """
    ALTER TABLE requests ADD COLUMN region TEXT;
    CREATE INDEX requests_by_region ON requests (region, id);
    CREATE TRIGGER spans_touch AFTER INSERT ON spans BEGIN SELECT 1; SELECT 2; END;
    """
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, future))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    for start in range(schema.SCHEMA_VERSION):
        check_upgrade_from(start, tmp_path / f"ok-{start}")

    for name, lossy, caught in (
        (
            "loses-a-row",
            "DELETE FROM spans WHERE span_id = (SELECT min(span_id) FROM spans);",
            r"lost 1 of \d+ rows of spans",
        ),
        ("drops-a-table", "DROP TABLE meta;", "dropped table meta"),
    ):
        monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS[:-1], lossy))
        with pytest.raises(AssertionError, match=caught):
            check_upgrade_from(schema.SCHEMA_VERSION - 1, tmp_path / name)


# --- files open_store must refuse ---------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_newer_schema_is_refused_and_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    open_store(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
        conn.commit()
    before = _digest(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"newer llmlens .*upgrade llmlens") as error:
            open_store(path, readonly=readonly)
        assert "\n" not in str(error.value)
    assert _digest(path) == before


@pytest.mark.parametrize(
    ("application_id", "with_table", "accepted"),
    [
        (schema.APPLICATION_ID, True, True),  # ours
        (0, False, True),  # an empty SQLite file: becomes ours
        (0, True, False),  # another application that sets no id
        (0x12345678, False, False),  # another application's id, even with no tables
        (0x12345678, True, False),
    ],
)
def test_application_id_decides_whose_file_it_is(
    application_id: int, with_table: bool, accepted: bool, tmp_path: Path
) -> None:
    path = tmp_path / "some.db"
    if application_id == schema.APPLICATION_ID:
        open_store(path).close()
    else:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute(f"PRAGMA application_id = {application_id}")
            if with_table:
                conn.execute("CREATE TABLE things (x)")
            conn.commit()
    before = _digest(path)
    if accepted:
        with contextlib.closing(open_store(path)) as conn:
            assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
            assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    else:
        with pytest.raises(StoreError, match="another application"):
            open_store(path)
        assert _digest(path) == before


def test_not_sqlite_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a database\n" * 100)
    before = _digest(text)
    with pytest.raises(StoreError, match="not an llmlens store"):
        open_store(text)
    assert _digest(text) == before
    with pytest.raises(StoreError, match="no llmlens store at"):
        open_store(tmp_path / "missing.db", readonly=True)
    with pytest.raises(StoreError, match="no llmlens store at"):
        open_store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_read_only_open_of_an_older_schema_asks_for_a_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
        schema.migrate(conn, target=schema.SCHEMA_VERSION - 1)
    with pytest.raises(StoreError, match="older schema"):
        open_store(path, readonly=True)
    open_store(path).close()
    with contextlib.closing(open_store(path, readonly=True)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION


OPENER = textwrap.dedent(
    """
    import sys, time
    from llmlens.store import open_store
    path, start_at = sys.argv[1], float(sys.argv[2])
    while time.time() < start_at:
        pass
    try:
        conn = open_store(path)
        print(conn.execute("PRAGMA user_version").fetchone()[0])
    except Exception as error:
        print(type(error).__name__, error)
    """
)


def test_processes_creating_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    script = tmp_path / "opener.py"
    script.write_text(OPENER)
    for round_ in range(3):
        path = tmp_path / f"new-{round_}.db"
        start_at = time.time() + 1.0
        openers = [
            subprocess.Popen(
                [sys.executable, str(script), str(path), str(start_at)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        outputs = [opener.communicate(timeout=60)[0].strip() for opener in openers]
        assert outputs == [str(schema.SCHEMA_VERSION)] * 4, outputs
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert (
                conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'requests'").fetchone()[0] == 1
            )
