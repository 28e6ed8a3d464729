"""`percentile_series`: one read of the store for a chart's worth of percentile buckets, agreeing
bucket by bucket with `percentiles()` over the same window, exact and from the rollups."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llmlens.store import queries
from llmlens.store.schema import open_store
from store_data import NS, generate, insert_fast

HOUR = 3600 * NS
DAY = 24 * HOUR
# Whole UTC days, so day-sized buckets read rollup_day.
START = 1_790_000_000 * NS // DAY * DAY


def filled(path: Path, n: int, days: int) -> sqlite3.Connection:
    insert_fast(path, generate(n, start_ns=START, end_ns=START + days * DAY))
    return open_store(path)


def same_as_windows(conn: sqlite3.Connection, start: int, step: int, buckets: int, source: str) -> None:
    points = queries.percentile_series(conn, start, step, buckets)
    assert [p.start_ns for p in points] == [start + i * step for i in range(buckets)]
    assert {p.source for p in points} == {source}
    counted = 0
    for point in points:
        for metric in ("duration", "ttfc"):
            alone = queries.percentiles(conn, point.start_ns, point.start_ns + step, metric=metric)
            assert alone.source == source
            assert getattr(point, metric).to_dict() == alone.overall.to_dict(), (metric, point.start_ns)
            counted += alone.overall.count
    assert counted > 0


def test_exact_buckets_match_each_window(tmp_path: Path) -> None:
    conn = filled(tmp_path / "s.db", 3_000, 2)
    same_as_windows(conn, START, HOUR, 48, "requests")
    same_as_windows(conn, START + 15 * 60 * NS, 15 * 60 * NS, 24, "requests")  # minute rows


@pytest.mark.parametrize(("step", "buckets"), [(DAY, 7), (6 * HOUR, 28), (HOUR, 24), (5 * 60 * NS, 12)])
def test_rollup_buckets_match_each_window(tmp_path: Path, step: int, buckets: int) -> None:
    conn = filled(tmp_path / "s.db", 6_000, 7)
    # The rows pruned, their rollups kept (the age or count limits did it): only the rollups can answer.
    conn.execute("DELETE FROM requests")
    same_as_windows(conn, START, step, buckets, "rollups")


def test_bad_buckets_are_refused(tmp_path: Path) -> None:
    conn = filled(tmp_path / "s.db", 10, 1)
    for start, step, buckets in ((START + 1, HOUR, 2), (START, HOUR + 1, 2), (START, HOUR, 0)):
        with pytest.raises(queries.QueryError):
            queries.percentile_series(conn, start, step, buckets)
