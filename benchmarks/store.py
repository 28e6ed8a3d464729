"""The local store's costs: `on_end` on the application thread, sustained ingest, and queries at 1M rows.

    python benchmarks/store.py [--enqueue-spans N] [--enqueue-rounds R] [--ingest-spans M]
                               [--ingest-rounds K] [--rows ROWS] [--db PATH] [--skip-queries]
                               [--markdown]

1. **on_end** (target <= 5 µs per span): the application thread's cost of `SQLiteSpanProcessor.on_end`,
   which only appends to the queue. N finished spans go through `on_end` in R rounds, interleaved with a
   no-op `SpanProcessor` as the baseline; the writer thread is kept asleep meanwhile (huge batch size
   and flush interval), so only the enqueue is timed. Reported: median per span of each and the
   difference. For information, also `span.end()` through a real `TracerProvider` with and without
   the store processor, with the writer thread running as usual.
2. **Sustained ingest** (target >= 20,000 spans/s): M finished LLM request spans with realistic
   attributes (a streamed chat call's 25 attributes; 5% errors) are built first, then timed from the
   first `on_end` to the return of `force_flush()`: the writer thread turning spans into rows and
   rollups and committing them. The queue holds all M (max_queue_size > M), retention is off (no
   pruning mid-run), each round writes a new file. Reported: the median of K rounds. For
   information, the same with two child spans per request (HTTP spans that go to `spans`).
3. **Queries at 1,000,000 rows** (targets: a filtered request-log page <= 20 ms, a full stats call
   <= 200 ms): a store of ROWS realistic requests over 30 days (8 providers/models, 5% errors,
   streams with time to first chunk, tokens, costs, API key labels) with its rollups, written as the
   writer writes them (rows from `rows.request_row`, rollups from `rollups.add`). Then
   `llmlens.store.queries` on a read-only connection, as the CLI uses it: `request_log` with each
   filter, and the `llmlens stats` call (`totals` + `breakdown` + duration and time-to-first-chunk
   `percentiles`) over several windows. Each figure is the median of several warm runs. `--db PATH`
   keeps the file (and reuses it when it has ROWS rows).

Prints a table with PASS/FAIL per target; `--markdown` prints it as Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import hashlib
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from llmlens import semconv
from llmlens.store import Retention, SQLiteSpanProcessor, open_store
from llmlens.store import rollups as rollups_module
from llmlens.store.rows import REQUEST_COLUMNS, request_row

NO_RETENTION = Retention(max_success=0, max_errors=0, max_age_days=0)
RESOURCE = Resource.create({"service.name": "store-benchmark"})
SCOPE = InstrumentationScope("llmlens")
DAY_NS = 86_400 * 10**9

# provider, request model, response model, share, operation
MODELS = [
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.34, "chat"),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", 0.16, "chat"),
    ("openai", "text-embedding-3-small", "text-embedding-3-small", 0.10, "embeddings"),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 0.16, "chat"),
    ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5", 0.08, "chat"),
    ("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash", 0.10, "generate_content"),
    ("openai", "o3-mini", "o3-mini-2025-01-31", 0.04, "chat"),
    ("groq", "llama-3.3-70b", "llama-3.3-70b-versatile", 0.02, "chat"),
]
ERRORS = [
    ("RateLimitError", 429, "Error code: 429 - Rate limit reached for requests"),
    ("APITimeoutError", None, "Request timed out."),
    ("InternalServerError", 500, "Error code: 500 - The server had an error while processing your request"),
    ("BadRequestError", 400, "Error code: 400 - This model's maximum context length is 128000 tokens"),
]


# --- spans --------------------------------------------------------------------------------------------


def attribute_sets(n: int, seed: int = 7) -> list[tuple[dict[str, Any], Status]]:
    """n realistic attribute sets of LLM request spans (what llmlens sets on a call), with statuses."""
    rng = random.Random(seed)
    weights = [m[3] for m in MODELS]
    result = []
    for i in range(n):
        provider, request_model, response_model, _, operation = rng.choices(MODELS, weights)[0]
        error = ERRORS[i % len(ERRORS)] if rng.random() < 0.05 else None
        stream = operation == "chat" and rng.random() < 0.6
        a: dict[str, Any] = {
            semconv.OPERATION_NAME: operation,
            semconv.PROVIDER_NAME: provider,
            semconv.REQUEST_MODEL: request_model,
            semconv.SERVER_ADDRESS: f"api.{provider}.example",
            semconv.SERVER_PORT: 443,
            semconv.REQUEST_STREAM: stream,
            semconv.REQUEST_TEMPERATURE: 0.7,
            semconv.REQUEST_MAX_TOKENS: 1024,
            semconv.LLMLENS_API_KEY_LABEL: f"team-{rng.randrange(6)}",
        }
        if provider == "openai":
            a[semconv.OPENAI_API_TYPE] = "chat_completions" if operation == "chat" else "embeddings"
        if error:
            a[semconv.ERROR_TYPE] = error[0]
            if error[1]:
                a[semconv.HTTP_STATUS_CODE] = error[1]
            status = Status(StatusCode.ERROR, error[2])
        else:
            a[semconv.RESPONSE_MODEL] = response_model
            a[semconv.RESPONSE_ID] = f"resp-{i:08x}"
            a[semconv.USAGE_INPUT_TOKENS] = rng.randrange(50, 8000)
            a[semconv.USAGE_OUTPUT_TOKENS] = 0 if operation == "embeddings" else rng.randrange(5, 1500)
            a[semconv.USAGE_CACHE_READ_INPUT_TOKENS] = rng.choice((0, 0, 1024, 2048))
            a[semconv.USAGE_COST_AMOUNT] = round(rng.uniform(1e-5, 0.02), 6)
            a[semconv.USAGE_COST_CURRENCY] = "USD"
            a[semconv.RESPONSE_FINISH_REASONS] = ("stop",) if operation != "embeddings" else ()
            if response_model.startswith("o3"):
                a[semconv.USAGE_REASONING_OUTPUT_TOKENS] = rng.randrange(100, 2000)
            if stream:
                a[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = rng.lognormvariate(-1.2, 0.6)
                a[semconv.LLMLENS_STREAM_CHUNKS] = rng.randrange(5, 400)
                a[semconv.LLMLENS_STREAM_OUTCOME] = semconv.OUTCOME_COMPLETED
            status = Status(StatusCode.UNSET)
        result.append(({k: v for k, v in a.items() if v != ()}, status))
    return result


def make_spans(n: int, first_id: int, children: int = 0, seed: int = 7) -> list[ReadableSpan]:
    """n finished request spans (distinct ids, attribute dicts shared), each after its `children`."""
    sets = attribute_sets(min(n, 500), seed)
    rng = random.Random(seed)
    now = time.time_ns()
    spans: list[ReadableSpan] = []
    for i in range(n):
        attributes, status = sets[i % len(sets)]
        trace_id = (first_id + i) << 32 | 0xABCDEF
        context = SpanContext(trace_id, first_id + i, False, TraceFlags(1))
        start = now - (n - i) * 1_000_000
        end = start + int(rng.lognormvariate(20.5, 0.8))  # ~0.8 s median
        for c in range(children):
            child = SpanContext(trace_id, (first_id + i) << 8 | (c + 1), False, TraceFlags(1))
            spans.append(
                ReadableSpan(
                    name="POST", context=child, parent=context, resource=RESOURCE,
                    attributes={"http.request.method": "POST", "http.response.status_code": 200},
                    kind=SpanKind.CLIENT, instrumentation_scope=SCOPE, start_time=start + 1000,
                    end_time=end - 1000,
                )
            )  # fmt: skip
        spans.append(
            ReadableSpan(
                name=f"{attributes[semconv.OPERATION_NAME]} {attributes[semconv.REQUEST_MODEL]}",
                context=context, parent=None, resource=RESOURCE, attributes=attributes, kind=SpanKind.CLIENT,
                instrumentation_scope=SCOPE, status=status, start_time=start, end_time=end,
            )
        )  # fmt: skip
    return spans


class NoOpProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        return None


def fresh_path(directory: Path, name: str) -> Path:
    path = directory / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


# --- 1. on_end -----------------------------------------------------------------------------------------


@dataclass
class EnqueueResult:
    store_ns: float
    noop_ns: float
    end_with_store_ns: float
    end_without_ns: float

    @property
    def delta_ns(self) -> float:
        return self.store_ns - self.noop_ns


def bench_enqueue(directory: Path, n: int, rounds: int) -> EnqueueResult:
    spans = make_spans(n, first_id=1)
    store = SQLiteSpanProcessor(
        fresh_path(directory, "enqueue.db"), retention=NO_RETENTION, max_queue_size=10**8,
        batch_size=10**9, flush_interval_s=3600,
    )  # fmt: skip
    store.on_end(spans[0])  # starts the writer thread, which then sleeps through the timing
    store.force_flush()
    noop = NoOpProcessor()
    times: dict[str, list[float]] = {"store": [], "noop": []}
    on_end_store, on_end_noop = store.on_end, noop.on_end
    for r in range(rounds + 1):  # round 0 warms up
        gc.collect()
        for name, on_end in (("store", on_end_store), ("noop", on_end_noop))[:: 1 if r % 2 else -1]:
            started = time.perf_counter_ns()
            for span in spans:
                on_end(span)
            elapsed = time.perf_counter_ns() - started
            if r:
                times[name].append(elapsed / n)
    assert store.stats.dropped_queue_full == 0
    store.enabled = False  # the thread stays asleep with its queue; the process ends soon

    # In situ (information): span start + end through a real TracerProvider, the writer running.
    attributes = attribute_sets(1)[0][0]
    per_mode: dict[str, list[float]] = {"with": [], "without": []}
    with_store = SQLiteSpanProcessor(fresh_path(directory, "insitu.db"), retention=NO_RETENTION)
    providers = {"with": TracerProvider(resource=RESOURCE), "without": TracerProvider(resource=RESOURCE)}
    providers["with"].add_span_processor(with_store)
    providers["without"].add_span_processor(NoOpProcessor())
    for r in range(rounds + 1):
        for mode in ("with", "without")[:: 1 if r % 2 else -1]:
            tracer = providers[mode].get_tracer("bench")
            started = time.perf_counter_ns()
            for _ in range(min(n, 10_000)):
                tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attributes).end()
            if r:
                per_mode[mode].append((time.perf_counter_ns() - started) / min(n, 10_000))
            providers[mode].force_flush()
    for provider in providers.values():
        provider.shutdown()
    return EnqueueResult(
        statistics.median(times["store"]), statistics.median(times["noop"]),
        statistics.median(per_mode["with"]), statistics.median(per_mode["without"]),
    )  # fmt: skip


# --- 2. ingest -----------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    rates: list[float] = field(default_factory=list)  # spans per second, one per round
    requests_per_span: float = 1.0

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def bench_ingest(directory: Path, n: int, rounds: int, children: int = 0) -> IngestResult:
    result = IngestResult(requests_per_span=1 / (1 + children))
    for r in range(rounds):
        spans = make_spans(n // (1 + children), first_id=(r + 10) * 10_000_000, children=children, seed=r)
        path = fresh_path(directory, f"ingest-{children}-{r}.db")
        processor = SQLiteSpanProcessor(path, retention=NO_RETENTION, max_queue_size=len(spans) + 1)
        warm = make_spans(10, first_id=1)  # opens the file, creates the schema: not timed
        for span in warm:
            processor.on_end(span)
        assert processor.force_flush()
        gc.collect()
        started = time.perf_counter()
        on_end = processor.on_end
        for span in spans:
            on_end(span)
        assert processor.force_flush(timeout_millis=600_000)
        elapsed = time.perf_counter() - started
        stats = processor.stats
        assert stats.dropped_queue_full == stats.dropped_store_unavailable == 0, stats
        assert stats.written_requests + stats.written_spans == len(spans) + len(warm), stats
        result.rates.append(len(spans) / elapsed)
        processor.shutdown()
        del spans
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return result


# --- 3. queries at 1M rows -------------------------------------------------------------------------------


def build_store(path: Path, rows: int) -> float:
    """A store of `rows` requests over 30 days, rows and rollups as the writer writes them. Seconds."""
    started = time.perf_counter()
    templates = [request_row(s) for s in make_spans(4000, first_id=1, seed=99)]
    i_trace, i_span = REQUEST_COLUMNS.index("trace_id"), REQUEST_COLUMNS.index("span_id")
    i_start, i_end = REQUEST_COLUMNS.index("start_ns"), REQUEST_COLUMNS.index("end_ns")
    i_parent = REQUEST_COLUMNS.index("parent_span_id")
    insert = "INSERT INTO requests ({}) VALUES ({})".format(
        ", ".join(REQUEST_COLUMNS), ", ".join("?" * len(REQUEST_COLUMNS))
    )
    now = time.time_ns()
    first = now - 30 * DAY_NS
    step = (now - first) // rows
    rng = random.Random(3)
    conn = open_store(path)
    try:
        chunk = 20_000
        for base in range(0, rows, chunk):
            batch = []
            for i in range(base, min(base + chunk, rows)):
                row = list(templates[rng.randrange(len(templates))])
                start = first + i * step + rng.randrange(step)
                row[i_end] = start + (row[i_end] - row[i_start])
                row[i_start] = start
                row[i_trace] = f"{i + 1:032x}"
                row[i_span] = f"{i + 1:016x}"
                row[i_parent] = None
                batch.append(tuple(row))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, batch)
            rollups_module.add(conn, batch)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return time.perf_counter() - started


def timed_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


@dataclass
class QueryResults:
    build_s: float | None
    rows: int
    pages: list[tuple[str, float]]
    stats: list[tuple[str, float]]
    other: list[tuple[str, float]]
    note: str = ""


def bench_queries(path: Path, rows: int, runs: int) -> QueryResults | str:
    try:
        from llmlens.store import queries
    except ImportError:
        return "llmlens.store.queries is not there yet: query targets not measured"

    build_s = None
    existing = 0
    if path.exists():
        try:
            with contextlib.closing(open_store(path, readonly=True)) as conn:
                existing = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        except Exception:
            existing = -1
    if existing != rows:
        fresh_path(path.parent, path.name)
        build_s = build_store(path, rows)

    conn = open_store(path, readonly=True)
    now = conn.execute("SELECT max(start_ns) FROM requests").fetchone()[0] + 1
    hour, day = 3600 * 10**9, DAY_NS
    F = queries.Filters
    page_cases: list[tuple[str, Any]] = [
        ("newest 50, no filter", F()),
        ("provider = anthropic", F(provider="anthropic")),
        ("model = gpt-4o", F(model="gpt-4o")),
        ("status = error", F(status="error")),
        ("provider = openai, status = error", F(provider="openai", status="error")),
        ("api key label = team-3", F(api_key_label="team-3")),
        ("operation = embeddings", F(operation="embeddings")),
        ("last hour", F(since_ns=now - hour)),
        ("a day a week ago", F(since_ns=now - 8 * day, until_ns=now - 7 * day)),
        ("error text 'context length'", F(error_text="context length")),
        ("model = llama-3.3-70b (2%), errors", F(model="llama-3.3-70b", status="error")),
        ("provider = groq, last 24 h, errors", F(provider="groq", status="error", since_ns=now - day)),
    ]
    pages = []
    for label, filters in page_cases:
        pages.append((label, timed_ms(lambda f=filters: queries.request_log(conn, f, limit=50), runs)))
    second = queries.request_log(conn, F(provider="anthropic"), limit=50).next_cursor
    pages.append(
        ("provider = anthropic, page 2 (cursor)",
         timed_ms(lambda: queries.request_log(conn, F(provider="anthropic"), limit=50, cursor=second), runs))
    )  # fmt: skip

    def stats_call(since: int | None, by: str) -> Callable[[], Any]:
        def run() -> Any:  # what `llmlens stats` runs
            queries.totals(conn, since, None)
            queries.breakdown(conn, since, None, by=by)
            queries.percentiles(conn, since, None, metric="duration", by=by)
            queries.percentiles(conn, since, None, metric="ttfc", by=by)

        return run

    stats_cases = [
        ("everything (30 days), by provider", None, "provider"),
        ("everything (30 days), by model", None, "model"),
        ("last 7 days, by model", now - 7 * day, "model"),
        ("last 24 hours, by provider", now - day, "provider"),
        ("last hour, by model", now - hour, "model"),
    ]
    stats = [(label, timed_ms(stats_call(since, by), max(3, runs // 4))) for label, since, by in stats_cases]
    other_cases: list[tuple[str, Callable[[], Any]]] = [
        ("time series per minute, 24 h", lambda: queries.time_series(conn, "minute", now_ns=now)),
        ("time series per hour, 30 days", lambda: queries.time_series(conn, "hour", now_ns=now)),
        ("time series per second, 5 min", lambda: queries.time_series(conn, "second", now_ns=now)),
        ("provider health", lambda: queries.provider_health(conn, now_ns=now)),
        ("running totals (30 days)", lambda: queries.running_totals(conn)),
        ("recent errors (100)", lambda: queries.recent_errors(conn, 100)),
        ("storage statistics", lambda: queries.storage_stats(conn, str(path))),
    ]
    other = []
    for label, fn in other_cases:
        try:
            other.append((label, timed_ms(fn, max(3, runs // 4))))
        except Exception as error:  # another engineer's API in flux: say so, measure the rest
            other.append((f"{label} (failed: {type(error).__name__}: {error})", float("nan")))
    conn.close()
    return QueryResults(build_s, rows, pages, stats, other)


# --- report ------------------------------------------------------------------------------------------


def source_fingerprint() -> str:
    import llmlens

    root = Path(llmlens.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    args: argparse.Namespace, enqueue: EnqueueResult | None, ingest: IngestResult | None,
    ingest_children: IngestResult | None, q: QueryResults | str | None,
) -> bool:  # fmt: skip
    header = [
        f"date: {_dt.date.today().isoformat()}",
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"llmlens source fingerprint: {source_fingerprint()} (sha256 of src/llmlens/**/*.py)",
    ]
    rows: list[tuple[str, str, str, str]] = []  # measure, measured, target, verdict
    checks: list[bool] = []

    def add(name: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        rows.append((name, measured, target, "" if ok is None else verdict(ok)))
        if ok is not None:
            checks.append(ok)

    if enqueue:
        header.append(
            f"on_end: {args.enqueue_spans:,} spans x {args.enqueue_rounds} rounds, interleaved with a no-op "
            "processor; median per span"
        )
        add("on_end, SQLite processor (enqueue)", f"{enqueue.store_ns / 1000:.2f} µs")
        add("on_end, no-op processor (baseline)", f"{enqueue.noop_ns / 1000:.2f} µs")
        delta = enqueue.delta_ns / 1000
        add("on_end cost over the baseline", f"{delta:.2f} µs", "≤ 5 µs", delta <= 5)
        add(
            "span start+end through the SDK, with / without the store",
            f"{enqueue.end_with_store_ns / 1000:.1f} / {enqueue.end_without_ns / 1000:.1f} µs",
        )
    if ingest:
        header.append(
            f"ingest: {args.ingest_spans:,} request spans per round, {args.ingest_rounds} rounds, "
            "first on_end to force_flush() return; median"
        )
        rates = ", ".join(f"{r:,.0f}" for r in ingest.rates)
        add(
            "sustained ingest, LLM request spans",
            f"{ingest.median:,.0f} /s",
            "≥ 20,000 /s",
            ingest.median >= 20_000,
        )
        add("  rounds", rates)
    if ingest_children:
        add(
            "ingest with 2 child spans per request (all spans)",
            f"{ingest_children.median:,.0f} /s ({ingest_children.median / 3:,.0f} requests/s)",
        )
    notes: list[str] = []
    if isinstance(q, str):
        notes.append(q)
    elif q is not None:
        build = f"built in {q.build_s:.0f} s" if q.build_s is not None else "reused"
        header.append(
            f"queries: {q.rows:,} request rows over 30 days ({build}), read-only connection, "
            f"median of {args.query_runs} warm runs (stats: {max(3, args.query_runs // 4)})"
        )
        worst_page = max(ms for _, ms in q.pages)
        for label, ms in q.pages:
            add(f"request log page: {label}", f"{ms:.2f} ms", "≤ 20 ms", ms <= 20)
        for label, ms in q.stats:
            add(f"stats (totals + breakdown + 2 percentiles): {label}", f"{ms:.1f} ms", "≤ 200 ms", ms <= 200)
        for label, ms in q.other:
            add(label, f"{ms:.1f} ms")
        notes.append(f"slowest request-log page: {worst_page:.2f} ms; slowest stats call: "
                     f"{max(ms for _, ms in q.stats):.1f} ms")  # fmt: skip

    if args.markdown:
        print("\n".join(f"- {line}" for line in header))
        print()
        print("| measure | measured | target | result |")
        print("|---|---:|---:|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        if notes:
            print()
            print("\n".join(f"- {n}" for n in notes))
    else:
        print("\n".join(header))
        print()
        widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
        for r in rows:
            print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
        if notes:
            print()
            print("\n".join(notes))
        print()
        print(f"{sum(checks)} of {len(checks)} targets met")
    return all(checks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--enqueue-spans", type=int, default=20_000, help="spans per on_end round")
    parser.add_argument("--enqueue-rounds", type=int, default=7, help="on_end rounds (interleaved)")
    parser.add_argument("--ingest-spans", type=int, default=200_000, help="spans per ingest round")
    parser.add_argument("--ingest-rounds", type=int, default=3, help="ingest rounds")
    parser.add_argument("--rows", type=int, default=1_000_000, help="request rows for the query benchmark")
    parser.add_argument("--query-runs", type=int, default=20, help="warm runs per request-log query")
    parser.add_argument("--db", type=Path, help="keep the query store here (reused when it has --rows rows)")
    parser.add_argument("--skip-queries", action="store_true", help="skip the 1M-row query benchmark")
    parser.add_argument("--skip-children", action="store_true", help="skip the ingest run with child spans")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (for docs/benchmarks.md)")
    args = parser.parse_args(argv)
    if min(args.enqueue_spans, args.enqueue_rounds, args.ingest_spans, args.ingest_rounds, args.rows) < 1:
        parser.error("counts must be >= 1")

    with tempfile.TemporaryDirectory(prefix="llmlens-store-bench-") as tmp:
        directory = Path(tmp)
        log = sys.stderr
        print("on_end ...", file=log, flush=True)
        enqueue = bench_enqueue(directory, args.enqueue_spans, args.enqueue_rounds)
        print("ingest ...", file=log, flush=True)
        ingest = bench_ingest(directory, args.ingest_spans, args.ingest_rounds)
        children = None
        if not args.skip_children:
            children = bench_ingest(directory, args.ingest_spans, max(1, args.ingest_rounds - 1), children=2)
        q = None
        if not args.skip_queries:
            print(
                f"queries at {args.rows:,} rows (building the store takes a while) ...", file=log, flush=True
            )
            q = bench_queries(args.db or directory / "million.db", args.rows, args.query_runs)
    return 0 if report(args, enqueue, ingest, children, q) else 1


if __name__ == "__main__":
    sys.exit(main())
