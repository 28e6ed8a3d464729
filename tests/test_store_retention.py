"""Retention: successes and errors capped apart, the age limit, spans going with their trace's last
request, rollups outliving the request log, vacuum, `Retention.from_env`, and prune cost at a million rows.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.context import Context
from opentelemetry.trace import set_span_in_context

from llmlens.settings import SettingsError
from llmlens.store import Retention, open_store
from llmlens.store.retention import (
    ENV_MAX_AGE_DAYS,
    ENV_MAX_ERRORS,
    ENV_MAX_SUCCESS,
    PruneResult,
    prune,
    vacuum,
)
from test_store_processor import count, emit_request, llm_attributes, new_processor, new_provider, rows_of

DAY_NS = 86_400 * 10**9
MINUTE_NS = 60 * 10**9
HOUR_NS = 60 * MINUTE_NS


@contextlib.contextmanager
def store(path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_store(path)
    try:
        yield conn
    finally:
        conn.close()


def test_successes_and_errors_are_capped_apart(tmp_path: Path) -> None:
    db = tmp_path / "caps.db"
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("test")
    kinds = [False] * 3000 + [True] * 800
    random.Random(1).shuffle(kinds)
    start = time.time_ns() - 3800 * 1_000_000
    for i, error in enumerate(kinds):
        emit_request(
            tracer, llm_attributes(i), error="boom" if error else None, start_ns=start + i * 1_000_000
        )
    assert processor.force_flush()
    provider.shutdown()
    everything = rows_of(db, "SELECT id, is_error, start_ns FROM requests ORDER BY id")
    newest_ok = {r["id"] for r in everything if not r["is_error"]}
    newest_ok = set(sorted(newest_ok)[-1000:])
    newest_errors = set(sorted(r["id"] for r in everything if r["is_error"])[-200:])

    with store(db) as conn:
        result = prune(conn, Retention(max_success=1000, max_errors=200, max_age_days=0))
        assert result == PruneResult(deleted_success=2000, deleted_errors=600, deleted_by_age=0)
        assert prune(conn, Retention(max_success=1000, max_errors=200, max_age_days=0)).total == 0
    kept = rows_of(db, "SELECT id, is_error, start_ns FROM requests")
    assert {r["id"] for r in kept if not r["is_error"]} == newest_ok
    assert {r["id"] for r in kept if r["is_error"]} == newest_errors
    # newest by time as well: every kept success started after every pruned one
    pruned_ok = [r["start_ns"] for r in everything if not r["is_error"] and r["id"] not in newest_ok]
    assert min(r["start_ns"] for r in kept if not r["is_error"]) > max(pruned_ok)
    # the rollups keep counting what the request log no longer holds
    assert rows_of(db, "SELECT sum(requests) AS n, sum(is_error * requests) AS e FROM rollup_minute") == [
        {"n": 3800, "e": 800}
    ]


def test_a_cap_of_zero_means_no_limit(tmp_path: Path) -> None:
    db = tmp_path / "nolimit.db"
    processor = new_processor(db)
    provider = new_provider(processor)
    for i in range(300):
        emit_request(provider.get_tracer("t"), error="x" if i % 3 == 0 else None)
    assert processor.force_flush()
    provider.shutdown()
    with store(db) as conn:
        assert prune(conn, Retention(max_success=0, max_errors=0, max_age_days=0)).total == 0
        assert prune(conn, Retention(max_success=0, max_errors=10, max_age_days=0)).deleted_errors == 90
    assert count(db) == 210


def test_age_limit_prunes_requests_and_rollups_but_keeps_the_recent_ones(tmp_path: Path) -> None:
    db = tmp_path / "age.db"
    now = (time.time_ns() // HOUR_NS) * HOUR_NS + 30 * MINUTE_NS + 30 * 10**9
    ages_days = [200, 120, 90.01, 89.99, 30, 1, 0]
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("t")
    for age in ages_days:
        for error in (None, "boom"):
            emit_request(tracer, error=error, start_ns=now - int(age * DAY_NS), children=1)
    assert processor.force_flush()
    provider.shutdown()
    assert count(db, "rollup_minute") == 2 * len(ages_days)
    hours_before = [r["hour"] for r in rows_of(db, "SELECT hour FROM rollup_hour")]
    days_before = [r["day"] for r in rows_of(db, "SELECT day FROM rollup_day")]

    with store(db) as conn:
        result = prune(conn, Retention(max_success=0, max_errors=0, max_age_days=90), now_ns=now)
    assert result.deleted_by_age == 6 and result.deleted_success == result.deleted_errors == 0
    cutoff = now - 90 * DAY_NS
    starts = [r["start_ns"] for r in rows_of(db, "SELECT start_ns FROM requests")]
    assert len(starts) == 8 and min(starts) >= cutoff
    minutes = [r["minute"] for r in rows_of(db, "SELECT minute FROM rollup_minute")]
    assert len(minutes) == 8 and min(minutes) >= cutoff // MINUTE_NS  # rollups within the age stay
    hours = sorted(r["hour"] for r in rows_of(db, "SELECT hour FROM rollup_hour"))
    assert hours == sorted(h for h in hours_before if h >= cutoff // HOUR_NS)  # whole hours past the age go
    assert min(hours) == cutoff // HOUR_NS  # the hour the cutoff falls in stays (it holds kept minutes)
    days = sorted(r["day"] for r in rows_of(db, "SELECT day FROM rollup_day"))
    assert days == sorted(d for d in days_before if d >= cutoff // DAY_NS) and min(days) == cutoff // DAY_NS
    assert count(db, "spans") == 8  # the pruned requests' child spans went with them

    with store(db) as conn:  # fractional days work too
        assert prune(conn, Retention(0, 0, max_age_days=0.5), now_ns=now).deleted_by_age == 6
    assert count(db) == 2 and count(db, "rollup_minute") == 2
    assert rows_of(
        db, "SELECT sum(requests) AS n FROM rollup_hour WHERE hour >= ?", ((now - DAY_NS // 2) // HOUR_NS,)
    ) == [{"n": 2}]


def test_spans_go_with_the_last_request_of_their_trace(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    processor = new_processor(db)
    provider = new_provider(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("agent run") as agent:  # trace A: two LLM calls, one after the other
        inner = set_span_in_context(agent)
        trace_a, _ = emit_request(tracer, children=2, context=inner)
        trace_b, _ = emit_request(tracer, children=2, context=Context())  # trace B: one call, meanwhile
        _, second_a = emit_request(tracer, children=2, context=inner)
    assert processor.force_flush()
    provider.shutdown()
    a, b = format(trace_a, "032x"), format(trace_b, "032x")
    assert count(db, "spans", f"trace_id = '{a}'") == 5  # 2 + 2 children and the agent span
    assert count(db, "spans", f"trace_id = '{b}'") == 2

    with store(db) as conn:  # keep only the newest request: A's second call
        assert prune(conn, Retention(max_success=1, max_errors=0, max_age_days=0)).deleted_success == 2
    assert [r["span_id"] for r in rows_of(db, "SELECT span_id FROM requests")] == [format(second_a, "016x")]
    assert count(db, "spans", f"trace_id = '{b}'") == 0  # B's last request went: its spans too
    assert count(db, "spans", f"trace_id = '{a}'") == 5  # A still has a request: all its spans stay

    with store(db) as conn:
        assert prune(conn, Retention(0, 0, max_age_days=1), now_ns=time.time_ns() + 2 * DAY_NS).total == 1
    assert count(db) == 0 and count(db, "spans") == 0


def test_vacuum_gives_the_space_back(tmp_path: Path) -> None:
    db = tmp_path / "vacuum.db"
    with store(db) as conn:
        _fill(conn, 20_000, attributes_bytes=600)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        full = os.path.getsize(db)
        assert prune(conn, Retention(max_success=100, max_errors=100, max_age_days=0)).total == 19_800
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert os.path.getsize(db) == full  # deleting alone frees pages inside the file only
        vacuum(conn)
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 200
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    size = os.path.getsize(db) + (os.path.getsize(f"{db}-wal") if os.path.exists(f"{db}-wal") else 0)
    assert size < full / 10, (size, full)


# --- Retention.from_env ---------------------------------------------------------------------------------


def test_from_env_defaults_and_valid_values() -> None:
    assert Retention.from_env({}) == Retention(max_success=50_000, max_errors=10_000, max_age_days=90.0)
    assert (
        Retention.from_env({ENV_MAX_SUCCESS: "", ENV_MAX_ERRORS: "  ", ENV_MAX_AGE_DAYS: ""}) == Retention()
    )
    assert Retention.from_env(
        {ENV_MAX_SUCCESS: " 1000 ", ENV_MAX_ERRORS: "0", ENV_MAX_AGE_DAYS: "0.5"}
    ) == Retention(max_success=1000, max_errors=0, max_age_days=0.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (ENV_MAX_SUCCESS, "-1"),
        (ENV_MAX_SUCCESS, "lots"),
        (ENV_MAX_SUCCESS, "1.5"),
        (ENV_MAX_ERRORS, "-5"),
        (ENV_MAX_ERRORS, "1e3"),
        (ENV_MAX_AGE_DAYS, "-0.1"),
        (ENV_MAX_AGE_DAYS, "ninety"),
        (ENV_MAX_AGE_DAYS, "inf"),
        (ENV_MAX_AGE_DAYS, "nan"),
    ],
)
def test_from_env_rejects_bad_values_with_one_line_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as error:
        Retention.from_env({variable: value})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{variable}=") and repr(value) in message
    assert "accepted values" in message


# --- at a million rows ------------------------------------------------------------------------------------

ROWS = 1_000_000
ERROR_EVERY = 10  # 900,000 successes, 100,000 errors


def _fill(conn: sqlite3.Connection, n: int, attributes_bytes: int = 0, spans_every: int = 0) -> None:
    """n request rows (and a child span per `spans_every` requests), newest last, 1 ms apart."""
    base = time.time_ns() - n * 1_000_000
    attributes = (
        f"'{{\"pad\":\"' || hex(randomblob({attributes_bytes // 2})) || '\"}}'"
        if attributes_bytes
        else "'{}'"
    )
    conn.execute("BEGIN")
    conn.execute(
        f"""
        WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?1 - 1)
        INSERT INTO requests (trace_id, span_id, start_ns, end_ns, duration_ms, span_name, span_kind,
            operation, provider, request_model, response_model, stream, status, is_error, input_tokens,
            output_tokens, cost_usd, attributes)
        SELECT printf('%032x', i), printf('%016x', i), ?2 + i * 1000000, ?2 + i * 1000000 + 250000000,
            250.0, 'chat', 'client', 'chat',
            CASE i % 3 WHEN 0 THEN 'openai' WHEN 1 THEN 'anthropic' ELSE 'gcp.gemini' END,
            'model-' || (i % 7), 'model-' || (i % 7), i % 2, CASE WHEN i % ?3 = 0 THEN 'error' ELSE 'ok' END,
            i % ?3 = 0, 1000, 200, 0.0004, {attributes}
        FROM s
        """,
        (n, base, ERROR_EVERY),
    )
    if spans_every:
        conn.execute(
            """
            WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + ?2 FROM s WHERE i + ?2 < ?1)
            INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status)
            SELECT printf('%032x', i), printf('%016x', i + 1000000000), printf('%016x', i), 'POST', 'client',
                0, 0, 'unset'
            FROM s
            """,
            (n, spans_every),
        )
    conn.execute("COMMIT")


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("million") / "million.db"
    with store(path) as conn:
        _fill(conn, ROWS, spans_every=10)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _best_ms(conn: sqlite3.Connection, retention: Retention, runs: int = 3) -> tuple[float, PruneResult]:
    best = float("inf")
    result = PruneResult()
    for _ in range(runs):
        started = time.perf_counter()
        result = prune(conn, retention)
        best = min(best, (time.perf_counter() - started) * 1000)
    return best, result


@pytest.mark.parametrize(
    "retention",
    [
        Retention(max_success=0, max_errors=0, max_age_days=90),  # only the age limit
        Retention(max_success=2_000_000, max_errors=2_000_000, max_age_days=90),  # caps not reached
    ],
    ids=["age-only", "caps-not-reached"],
)
def test_prune_with_nothing_to_delete_at_a_million_rows(million: Path, retention: Retention) -> None:
    with store(million) as conn:
        _, result = _best_ms(conn, retention)
    assert result.total == 0  # how long it takes is measured in benchmarks/store.py


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, str]]:
    plans = []
    for sql in statements:
        if not re.match(r"\s*(SELECT|DELETE|UPDATE|INSERT)\b", sql, re.IGNORECASE):
            continue
        for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
            plans.append((sql, row[3]))
    return plans


def test_prune_uses_indexes_only(million: Path) -> None:
    with store(million) as conn:
        errors = conn.execute("SELECT count(*) FROM requests WHERE is_error = 1").fetchone()[0]
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        # caps just under the counts: the cap walk and the deletes run (and the trigger, per deleted row)
        result = prune(conn, Retention(max_success=ROWS - errors - 5, max_errors=errors - 5, max_age_days=90))
        conn.set_trace_callback(None)
        assert (result.deleted_success, result.deleted_errors) == (5, 5)
        trace_id = conn.execute("SELECT trace_id FROM requests LIMIT 1").fetchone()[0]
        trigger = [  # what the requests_cleanup_spans trigger runs for each deleted row
            f"SELECT 1 FROM requests WHERE trace_id = '{trace_id}'",
            f"DELETE FROM spans WHERE trace_id = '{trace_id}'",
        ]
        plans = _plans(conn, statements + trigger)
    assert len({sql for sql, _ in plans}) >= 6, statements
    scans = [(sql, detail) for sql, detail in plans if re.match(r"SCAN (?!CONSTANT ROW)", detail)]
    assert not scans, scans
    assert any("USING COVERING INDEX requests_by_class" in detail for _, detail in plans)
    assert any("USING COVERING INDEX requests_by_time" in detail for _, detail in plans)


def test_pruning_by_age_costs_what_it_deletes_not_the_table_size(million: Path) -> None:
    with store(million) as conn:
        oldest = conn.execute("SELECT min(start_ns) FROM requests").fetchone()[0]
        now = (
            oldest + 90 * DAY_NS + 10_000 * 1_000_000
        )  # about the oldest 10,000 rows (1 ms apart) are too old
        cutoff = now - 90 * DAY_NS
        too_old = conn.execute("SELECT count(*) FROM requests WHERE start_ns < ?", (cutoff,)).fetchone()[0]
        with_spans = conn.execute(
            "SELECT count(*) FROM requests r WHERE start_ns < ? AND EXISTS "
            "(SELECT 1 FROM spans s WHERE s.trace_id = r.trace_id)",
            (cutoff,),
        ).fetchone()[0]
        spans_before = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        result = prune(conn, Retention(max_success=0, max_errors=0, max_age_days=90), now_ns=now)
        assert 9_900 <= too_old <= 10_000 and with_spans > 900
        assert result.deleted_by_age == too_old
        assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == spans_before - with_spans
