"""The dashboard's data at 1,000,000 requests: each JSON API call the pages make, timed through the real
application (`llmlens ui` as its own process, uvicorn on 127.0.0.1, read with httpx).

    python benchmarks/ui.py [--rows ROWS] [--db PATH] [--calls N] [--no-pages] [--markdown]

The store is benchmarks/store.py's: ROWS realistic requests over 30 days (8 providers and models, 5%
errors, streams, tokens, costs, API key labels) with their rollups, written as the writer writes them
(`build_store`); `--db PATH` keeps the file and reuses it when it has ROWS rows. It has no profiles and
no requests in flight: Profiles and Live read empty tables, as they mostly do.

Each endpoint, in the order of the pages that use it (Overview, Requests, Request, Live, Profiles,
Storage), is called twice to warm up and then N times one after the other; reported are the median
and the 95th percentile (nearest rank) of the wall time of a call, from sending the request to
having read the whole body, against the goal of 100 ms. `/api/live/stream` sends `/api/live`'s
snapshot every 0.75 s, so `/api/live` stands for it. Then, for information, the HTML of every page
(the same loader, rendered).

Prints a table with PASS/FAIL per endpoint; `--markdown` prints it as Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import math
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from llmlens.store import open_store
from profiling import command, commit
from store import build_store, cpu_model

GOAL_MS = 100.0
LLMLENS = str(Path(sys.executable).with_name("llmlens"))


@dataclass
class Timing:
    page: str
    label: str
    path: str
    samples: list[float]
    status: int
    size: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def ensure_store(path: Path, rows: int) -> float | None:
    """The store at `path` with `rows` requests: built (seconds) or reused (None)."""
    if path.exists():
        try:
            with contextlib.closing(open_store(path, readonly=True)) as conn:
                if conn.execute("SELECT count(*) FROM requests").fetchone()[0] == rows:
                    return None
        except Exception:
            pass
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return build_store(path, rows)


@contextlib.contextmanager
def dashboard(path: Path) -> Iterator[str]:
    """`llmlens ui --db PATH --port 0` as its own process; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    process = subprocess.Popen([LLMLENS, "ui", "--db", str(path), "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            problem = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"llmlens ui did not start: {first}{url}{problem}")
        yield url.rstrip("/")
    finally:
        process.send_signal(2)  # Ctrl-C
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cases(conn: sqlite3.Connection) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(page, what, path) of the API calls and of the HTML pages, with ids from the store."""
    latest, count = conn.execute("SELECT max(id), count(*) FROM requests").fetchone()
    deep = latest - count * 9 // 10  # 90% of the way back: page 18,000 of 50 rows
    middle = latest - count // 2
    error_id = conn.execute(
        "SELECT id FROM requests WHERE is_error = 1 AND id <= ? ORDER BY id DESC LIMIT 1", (middle,)
    ).fetchone()[0]
    api = [
        ("Overview", "overview, 24 h (the default)", "/api/overview"),
        ("Overview", "overview, 1 h", "/api/overview?window=1h"),
        ("Overview", "overview, 7 days", "/api/overview?window=7d"),
        ("Overview", "overview, 30 days", "/api/overview?window=30d"),
        ("Requests", "request log, first page", "/api/requests"),
        ("Requests", "request log, provider = anthropic, status = error",
         "/api/requests?provider=anthropic&status=error"),
        ("Requests", "request log, model = gpt-4o, last 24 h", "/api/requests?model=gpt-4o&since=24h"),
        ("Requests", "request log, error text 'context length'", "/api/requests?error=context+length"),
        ("Requests", f"request log, deep cursor (id {deep:,}, 90% back)", f"/api/requests?cursor={deep}"),
        ("Requests", "request log, provider = groq, deep cursor",
         f"/api/requests?provider=groq&cursor={deep}"),
        ("Requests", "new rows since the latest (the live log's poll)", f"/api/requests/new?after={latest}"),
        ("Request", f"request detail (id {middle:,})", f"/api/requests/{middle}"),
        ("Request", f"request detail, a failed request (id {error_id:,})", f"/api/requests/{error_id}"),
        ("Live", "requests in flight (each event-stream snapshot)", "/api/live"),
        ("Profiles", "profiles and arms", "/api/profiles"),
        ("Storage", "storage statistics", "/api/storage"),
    ]  # fmt: skip
    pages = [
        ("Overview", "page: overview, 24 h", "/"),
        ("Overview", "page: overview, 30 days", "/?window=30d"),
        ("Requests", "page: request log", "/requests"),
        ("Requests", "page: request log, provider = anthropic, status = error",
         "/requests?provider=anthropic&status=error"),
        ("Requests", "page: request log, deep cursor", f"/requests?cursor={deep}"),
        ("Request", "page: request detail", f"/requests/{middle}"),
        ("Live", "page: live", "/live"),
        ("Profiles", "page: profiles", "/profiles"),
        ("Storage", "page: storage", "/storage"),
    ]  # fmt: skip
    return api, pages


def measure(client: httpx.Client, page: str, label: str, path: str, calls: int) -> Timing:
    for _ in range(2):
        client.get(path)
    samples = []
    status, size = 0, 0
    for _ in range(calls):
        started = time.perf_counter()
        response = client.get(path)
        body = response.content
        samples.append((time.perf_counter() - started) * 1000)
        status, size = response.status_code, len(body)
    return Timing(page, label, path, samples, status, size)


def report(args: argparse.Namespace, header: list[str], api: list[Timing], pages: list[Timing]) -> bool:
    def row(t: Timing, verdict: str) -> tuple[str, ...]:
        path = f"`{t.path}`" if args.markdown else t.path
        return (t.page, t.label, path, f"{t.median:.1f}", f"{t.p95:.1f}", f"{t.size / 1024:.1f}", verdict)

    rows: list[tuple[str, ...]] = []
    ok = True
    for t in api:
        passed = t.status == 200 and t.p95 <= GOAL_MS
        ok &= passed
        rows.append(row(t, "PASS" if passed else "FAIL" if t.status == 200 else f"FAIL (HTTP {t.status})"))
    rows += [row(t, "" if t.status == 200 else f"HTTP {t.status}") for t in pages]
    titles = ("page", "call", "path", "median ms", "p95 ms", "KiB", f"≤ {GOAL_MS:.0f} ms (p95)")
    slowest = max(api, key=lambda t: t.p95)
    summary = (f"{sum(1 for t in api if t.status == 200 and t.p95 <= GOAL_MS)} of {len(api)} API calls "
               f"within {GOAL_MS:.0f} ms at p95; slowest: {slowest.label} (median {slowest.median:.1f} ms, "
               f"p95 {slowest.p95:.1f} ms)")  # fmt: skip
    if args.markdown:
        print("\n".join(f"- {line}" for line in header))
        print()
        print("| " + " | ".join(titles) + " |")
        print("|---|---|---|---:|---:|---:|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
        print(f"- {summary}")
    else:
        print("\n".join(header))
        print()
        widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(len(titles))]
        for row in [titles, *rows]:
            print("  ".join(f"{c:<{widths[i]}}" if i < 3 or i == 6 else f"{c:>{widths[i]}}"
                            for i, c in enumerate(row)))  # fmt: skip
        print()
        print(summary)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="request rows in the store")
    parser.add_argument("--db", type=Path, help="keep the store here (reused when it has --rows rows)")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per endpoint")
    parser.add_argument("--no-pages", action="store_true", help="skip the HTML pages")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (for docs/benchmarks.md)")
    args = parser.parse_args(argv)
    if min(args.rows, args.calls) < 1:
        parser.error("counts must be >= 1")
    with tempfile.TemporaryDirectory(prefix="llmlens-ui-bench-") as tmp:
        path = args.db or Path(tmp) / "ui.db"
        build_s = ensure_store(path, args.rows)
        with contextlib.closing(open_store(path, readonly=True)) as conn:
            api_cases, page_cases = cases(conn)
        size = sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))
        with dashboard(path) as base, httpx.Client(base_url=base, timeout=60) as client:
            api = [measure(client, page, label, p, args.calls) for page, label, p in api_cases]
            pages = (
                [] if args.no_pages else [measure(client, pg, lb, p, args.calls) for pg, lb, p in page_cases]
            )
    built = f"built in {build_s:.0f} s" if build_s is not None else "reused"
    header = [
        f"commit: {commit()}",
        f"date: {_dt.date.today().isoformat()}",
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}; "
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, httpx {httpx.__version__}",
        f"command: {command(dict(os.environ))}",
        f"store: {args.rows:,} requests over 30 days ({built}), {size / 2**20:,.0f} MiB; `llmlens ui` as its "
        f"own process on 127.0.0.1, one httpx client, keep-alive",
        f"each call: 2 warm-up calls, then {args.calls} timed one after another; wall time to the last byte",
    ]
    return 0 if report(args, header, api, pages) else 1


if __name__ == "__main__":
    sys.exit(main())
