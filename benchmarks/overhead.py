"""Per-call overhead of llmlens on the real openai and anthropic SDKs, the network replaced by canned bytes.

    python benchmarks/overhead.py [--rounds R] [--calls N] [--stream-calls M] [--warmup W]
                                  [--slices S] [--design blocks|mixed] [--markdown] [--verbose]

One process runs three modes, interleaved: each of R rounds runs N calls per mode, cut into S slices
that cycle through the modes with the order rotated every slice, so drift of the machine (or another
process waking up) hits every mode alike. `gc.collect()` runs between rounds; gc stays enabled.

* ``none``    - the OpenTelemetry API with no SDK provider behind it (no-op), nothing instrumented;
* ``sdk``     - SDK TracerProvider (BatchSpanProcessor -> an exporter that discards) and MeterProvider
                (InMemoryMetricReader) installed as the globals, nothing instrumented;
* ``llmlens`` - the same providers, plus ``llmlens.Instrumentor().instrument(...)``.

The openai SDK makes no spans of its own, so ``none`` and ``sdk`` differ only by providers that are
installed but unused; ``sdk`` is the baseline that the llmlens overhead is measured against. The
anthropic SDK (2.x) traces itself as soon as a global provider is installed; its client here is built
with ``open_telemetry=False``, so that its ``sdk`` baseline makes no spans either and the Δ is the whole
cost of llmlens (with the SDK's tracing on, llmlens replaces the SDK's span: one span per call either
way, which the start-up checks verify). Global
providers can be set only once per process, so the script swaps the API's globals between ``none`` and
the SDK providers around each slice, and llmlens gets the providers passed explicitly; around each of
its slices it is switched on and off with ``instrument()``/``uninstrument()`` (checked at start-up to
restore pass-through: the original method is back and no span is made).

Workloads: a non-streaming ``chat.completions.create`` and a streamed one (34 content chunks with
``include_usage``: the stream yields 37 chunks, role + 34 content + finish + usage, then ``[DONE]``),
and a long stream of 136 content chunks (asked for by a request header that llmlens does not read);
the same three for anthropic ``messages.create`` (34 ``text_delta`` events: the stream yields 39
events, message_start, content_block_start, 34 deltas, content_block_stop, message_delta,
message_stop; the long one 136 deltas). Each workload runs in blocks of its own (``--design
blocks``, the default) or the three in turn (``--design mixed``, see ``Bench.plan``).
Bodies come from ``llmlens.demo.fake_bodies`` and ``fake_anthropic`` and are built once; an
``httpx2.MockTransport`` serves them, so what is timed is the SDK (request building, JSON/SSE parsing,
pydantic) plus instrumentation.

Reported per mode and workload: the median and the min of the per-round mean µs/call; Δ vs ``sdk``
(median of the paired per-slice differences, R x S pairs); per-chunk overhead = the cost of one more
chunk, (long-stream Δ - stream Δ) / 102, per SDK, with the fixed part of a streamed call, stream Δ -
34 x per-chunk; and, for comparison with older measurements and the peers' study, the estimate
(stream Δ - non-stream Δ) / 34, which assumes a stream's fixed part costs what a whole non-streaming
call does. In blocks it does not: back-to-back non-streaming calls find llmlens' per-call code in
the caches, a stream's start and end (3 ms of SDK parsing apart) do not, and the estimate charges
that difference to the chunks;
spans per call; ``import llmlens`` time (``-X importtime``, median of 5 fresh interpreters) and the
non-stdlib top-level modules it loads. Targets are printed with PASS/FAIL.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.metadata as metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llmlens.demo import fake_anthropic
from llmlens.demo.fake_bodies import Scenario, chat_completion, chat_completion_events

MODES = ("none", "sdk", "llmlens")
# SDK -> (non-streaming workload, streamed workload, long streamed workload)
SDKS = {
    "openai": ("non-stream", "stream", "long stream"),
    "anthropic": ("anthropic non-stream", "anthropic stream", "anthropic long stream"),
}
WORKLOADS = tuple(w for group in SDKS.values() for w in group)
STREAMED = frozenset(w for group in SDKS.values() for w in group[1:])
LONG = frozenset(group[2] for group in SDKS.values())
CONTENT_CHUNKS = 34
LONG_CHUNKS = 4 * CONTENT_CHUNKS
# The long stream is asked for with this header, which llmlens does not read: same request otherwise.
LONG_HEADERS = {"x-bench-stream": "long"}
MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say hello in one sentence."},
]
CLAUDE_MESSAGES = MESSAGES[1:]
STREAM_OPTIONS = {"include_usage": True}

# Targets (docs/benchmarks.md): overhead per non-streaming call, per streamed chunk, import time.
TARGET_CALL_MS = 0.12
TARGET_CHUNK_US = 3.0
TARGET_IMPORT_MS = 50.0
IMPORT_RUNS = 5


# --- the fake provider ------------------------------------------------------------------------------


def build_handler() -> tuple[Callable[[Any], Any], int]:
    """A MockTransport handler serving pre-built bodies; also returns the chunks a stream yields."""
    scenario = Scenario(chunks=CONTENT_CHUNKS)
    request = {"model": MODEL, "messages": MESSAGES}
    _status, json_headers, json_body = chat_completion(request, scenario)
    streamed = {**request, "stream": True, "stream_options": STREAM_OPTIONS}
    frames = chat_completion_events(streamed, scenario)
    sse_body = b"".join(frames)
    long_body = b"".join(chat_completion_events(streamed, Scenario(chunks=LONG_CHUNKS)))
    sse_headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    json_headers = dict(json_headers)
    data_frames = sum(1 for frame in frames if frame.startswith(b"data: {"))

    def handler(http_request: Any) -> Any:
        # The SDK serialises compactly; a substring test keeps the handler's cost tiny and equal for all.
        if b'"stream":true' in http_request.content:
            body = long_body if "x-bench-stream" in http_request.headers else sse_body
            return httpx2.Response(200, headers=sse_headers, content=body)
        return httpx2.Response(200, headers=json_headers, content=json_body)

    return handler, data_frames


def build_anthropic_handler() -> tuple[Callable[[Any], Any], int]:
    """The same for the anthropic SDK (Messages API bodies); also returns the events a stream yields."""
    scenario = Scenario(chunks=CONTENT_CHUNKS)
    request = {"model": CLAUDE, "max_tokens": 256, "messages": CLAUDE_MESSAGES}
    _status, json_headers, json_body = fake_anthropic.message(request, scenario)
    frames = fake_anthropic.message_events({**request, "stream": True}, scenario)
    sse_body = b"".join(frames)
    long_body = b"".join(
        fake_anthropic.message_events({**request, "stream": True}, Scenario(chunks=LONG_CHUNKS))
    )
    sse_headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    events = sum(1 for frame in frames if not frame.startswith(b"event: ping"))  # the SDK skips pings

    def handler(http_request: Any) -> Any:
        if b'"stream":true' in http_request.content or b'"stream": true' in http_request.content:
            body = long_body if "x-bench-stream" in http_request.headers else sse_body
            return httpx2.Response(200, headers=sse_headers, content=body)
        return httpx2.Response(200, headers=json_headers, content=json_body)

    return handler, events


class DiscardingExporter(SpanExporter):  # type: ignore[misc]
    """Counts spans (all, and those of streamed calls) and drops them: the export costs next to nothing."""

    def __init__(self) -> None:
        self.count = 0
        self.streamed = 0
        self.long = 0  # streamed, with more chunks than the short stream has

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.count += len(spans)
        for span in spans:
            attributes = span.attributes or {}
            if attributes.get("gen_ai.request.stream"):
                self.streamed += 1
                if attributes.get("llmlens.stream.chunk_count", 0) > 2 * CONTENT_CHUNKS:
                    self.long += 1
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --- modes ------------------------------------------------------------------------------------------


class Globals:
    """Swap the OpenTelemetry API's global providers between the SDK ones and "unset" (no-op)."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        # The API allows setting the globals once; the benchmark flips its private slots instead.
        from opentelemetry.metrics import _internal as metrics_internal

        self._trace_module = trace
        self._metrics_module = metrics_internal
        self.swappable = hasattr(trace, "_TRACER_PROVIDER") and hasattr(metrics_internal, "_METER_PROVIDER")

    def use(self, sdk: bool) -> None:
        if not self.swappable:
            return
        self._trace_module._TRACER_PROVIDER = self.tracer_provider if sdk else None
        self._metrics_module._METER_PROVIDER = self.meter_provider if sdk else None

    def is_noop(self) -> bool:
        return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@dataclass
class Bench:
    rounds: int
    calls: int
    stream_calls: int
    design: str  # "mixed" (each SDK's two workloads alternate, call by call) or "blocks"
    warmup: int
    slices: int
    client: Any
    chunks_per_stream: int
    globals_: Globals
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    exporter: DiscardingExporter
    anthropic_client: Any = None
    events_per_claude_stream: int = 0
    # mode -> workload -> per-round mean µs/call
    results: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # mode -> workload -> per-slice mean µs/call; index i of every mode is the same slice cycle
    slice_results: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    spans: dict[str, dict[str, int]] = field(default_factory=dict)
    timed_calls: dict[str, dict[str, int]] = field(default_factory=dict)
    instrumented_calls: int = 0

    # --- one call of each workload

    def call(self) -> None:
        self.client.chat.completions.create(model=MODEL, messages=MESSAGES)

    def stream(self, headers: dict[str, str] | None = None) -> int:
        chunks = 0
        for _chunk in self.client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options=STREAM_OPTIONS, extra_headers=headers
        ):
            chunks += 1
        return chunks

    def long_stream(self) -> int:
        return self.stream(LONG_HEADERS)

    def claude_call(self, client: Any = None) -> None:
        (client or self.anthropic_client).messages.create(
            model=CLAUDE, max_tokens=256, messages=CLAUDE_MESSAGES
        )

    def claude_stream(self, client: Any = None, headers: dict[str, str] | None = None) -> int:
        events = 0
        for _event in (client or self.anthropic_client).messages.create(
            model=CLAUDE, max_tokens=256, messages=CLAUDE_MESSAGES, stream=True, extra_headers=headers
        ):
            events += 1
        return events

    def claude_long_stream(self) -> int:
        return self.claude_stream(headers=LONG_HEADERS)

    def workload(self, name: str) -> Callable[[], Any]:
        return {
            "non-stream": self.call,
            "stream": self.stream,
            "long stream": self.long_stream,
            "anthropic long stream": self.claude_long_stream,
            "anthropic non-stream": self.claude_call,
            "anthropic stream": self.claude_stream,
        }[name]

    # --- switching modes

    def enter(self, mode: str) -> None:
        self.globals_.use(sdk=mode != "none")
        if mode == "llmlens":
            from llmlens import Instrumentor

            Instrumentor().instrument(
                tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
            )

    def leave(self, mode: str) -> None:
        if mode == "llmlens":
            from llmlens import Instrumentor

            Instrumentor().uninstrument()
        self.globals_.use(sdk=True)

    # --- timing

    def block(self, mode: str, workloads: tuple[str, ...], n: int) -> tuple[dict[str, int], dict[str, int]]:
        """Run `n` cycles of `workloads` (one call each, in turn) in `mode`; returns the elapsed ns and
        the spans exported, per workload. Each call is timed on its own (a timer read costs ~0.1 µs,
        the same in every mode)."""
        fns = [(workload, self.workload(workload)) for workload in workloads]
        elapsed = dict.fromkeys(workloads, 0)
        clock = time.perf_counter_ns
        self.enter(mode)
        try:
            self.tracer_provider.force_flush()  # outside the timed window: count this block's spans
            exporter = self.exporter
            before, streamed_before, long_before = exporter.count, exporter.streamed, exporter.long
            for _ in range(n):
                for workload, fn in fns:
                    start = clock()
                    fn()
                    elapsed[workload] += clock() - start
            self.tracer_provider.force_flush()
            long = exporter.long - long_before
            streamed = exporter.streamed - streamed_before - long
            unary = exporter.count - before - streamed - long
        finally:
            self.leave(mode)
        if mode == "llmlens":
            self.instrumented_calls += n * len(workloads)
        exported = {w: long if w in LONG else streamed if w in STREAMED else unary for w in workloads}
        return elapsed, exported

    def one_round(self, r: int, workloads: tuple[str, ...], n: int, timed: bool) -> None:
        """`n` cycles per mode, cut into slices that cycle through the modes (rotated per slice)."""
        slices = max(1, min(self.slices, n))
        sizes = [n // slices + (1 if i < n % slices else 0) for i in range(slices)]
        elapsed = {mode: dict.fromkeys(workloads, 0) for mode in MODES}
        exported = {mode: dict.fromkeys(workloads, 0) for mode in MODES}
        per_slice: dict[str, dict[str, list[float]]] = {mode: {w: [] for w in workloads} for mode in MODES}
        gc.collect()
        for i, size in enumerate(sizes):
            shift = (r + i) % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                ns, spans = self.block(mode, workloads, size)
                for w in workloads:
                    elapsed[mode][w] += ns[w]
                    exported[mode][w] += spans[w]
                    per_slice[mode][w].append(ns[w] / size / 1000)
        if not timed:
            return
        for mode in MODES:
            for w in workloads:
                self.slice_results.setdefault(mode, {}).setdefault(w, []).extend(per_slice[mode][w])
                self.results.setdefault(mode, {}).setdefault(w, []).append(elapsed[mode][w] / n / 1000)
                spans = self.spans.setdefault(mode, {})
                spans[w] = spans.get(w, 0) + exported[mode][w]
                counts = self.timed_calls.setdefault(mode, {})
                counts[w] = counts.get(w, 0) + n

    def plan(self) -> list[tuple[tuple[str, ...], int, int]]:
        """(workloads run together, cycles per round, warm-up cycles) in the chosen design.

        blocks (the default): each workload in runs of its own. Back-to-back non-streaming calls keep
        llmlens' per-call code warm, while a stream's start and end meet it cold (3 ms of SDK parsing in
        between): the estimate (stream Δ - non-stream Δ) / 34 then charges that difference to the
        chunks; the slope between the 34- and the 136-chunk stream, both cold, does not. mixed: each
        SDK's three calls in turn, so the per-call code meets the same caches in all of them.
        """
        if self.design == "mixed":
            return [(group, max(1, self.stream_calls // 3), self.warmup // 8) for group in SDKS.values()]
        plan = []
        for w in WORKLOADS:
            if w in LONG:
                plan.append(((w,), max(1, self.stream_calls // 4), self.warmup // 16))
            elif w in STREAMED:
                plan.append(((w,), self.stream_calls, self.warmup // 4))
            else:
                plan.append(((w,), self.calls, self.warmup))
        return plan

    def run(self, progress: bool = True) -> None:
        plan = self.plan()
        for workloads, _n, warm in plan:
            if warm:
                self.one_round(0, workloads, warm, timed=False)
        for r in range(self.rounds):
            for workloads, n, _warm in plan:
                self.one_round(r, workloads, n, timed=True)
            if progress:
                print(f"  round {r + 1}/{self.rounds} done", file=sys.stderr, flush=True)


# --- sanity checks ----------------------------------------------------------------------------------


def check_setup(bench: Bench) -> list[str]:
    """Fail loudly if a mode is not what it claims to be; returns notes for the report."""
    from openai import _base_client

    from llmlens import Instrumentor

    notes = []
    original = _base_client.SyncAPIClient.__dict__["request"]

    bench.enter("none")
    noop = bench.globals_.is_noop()
    bench.leave("none")
    if not noop:
        notes.append("could not unset the API's global providers: `none` ran with them installed")

    # llmlens on: one span per call, every workload; the long stream is told apart by its chunk count.
    bench.enter("llmlens")
    patched = _base_client.SyncAPIClient.__dict__["request"] is not original
    bench.tracer_provider.force_flush()
    before, long_before = bench.exporter.count, bench.exporter.long
    bench.call()
    chunks = bench.stream()
    long_chunks = bench.long_stream()
    bench.tracer_provider.force_flush()
    spans_on, long_spans = bench.exporter.count - before, bench.exporter.long - long_before
    bench.leave("llmlens")
    bench.instrumented_calls += 3
    if not patched or spans_on != 3 or long_spans != 1:
        raise SystemExit(
            f"llmlens did not instrument the client (patched={patched}, spans={spans_on}, long={long_spans})"
        )
    if chunks != bench.chunks_per_stream or long_chunks != chunks + LONG_CHUNKS - CONTENT_CHUNKS:
        raise SystemExit(
            f"expected {bench.chunks_per_stream} chunks per stream and {LONG_CHUNKS - CONTENT_CHUNKS} more "
            f"per long stream, got {chunks} and {long_chunks}"
        )

    # llmlens off again: the original method is back and nothing is recorded.
    restored = _base_client.SyncAPIClient.__dict__["request"] is original
    before = bench.exporter.count
    bench.call()
    bench.stream()
    bench.tracer_provider.force_flush()
    if not restored or bench.exporter.count != before:
        raise SystemExit(
            f"uninstrument() did not restore pass-through (restored={restored}, "
            f"spans={bench.exporter.count - before})"
        )
    notes += check_anthropic(bench)
    settings = Instrumentor().settings
    if settings is not None:
        notes.append(
            f"llmlens settings: capture_content={settings.capture_content.value}, "
            f"events={'on' if settings.event_enabled else 'off'}"
        )
    return notes


def check_anthropic(bench: Bench) -> list[str]:
    """The same checks for the anthropic client, plus: with the SDK's own tracing on (a second client),
    a call gives one span with llmlens too, not two (llmlens turns the SDK's span off for its calls)."""
    from anthropic import _base_client

    original = _base_client.SyncAPIClient.__dict__["request"]
    traced = anthropic.Anthropic(
        api_key="sk-ant-bench", base_url="http://127.0.0.1:9", max_retries=0,
        http_client=bench.anthropic_client._client,
    )  # fmt: skip
    counts = {}
    for mode in ("sdk", "llmlens"):
        bench.enter(mode)
        patched = _base_client.SyncAPIClient.__dict__["request"] is not original
        bench.tracer_provider.force_flush()
        before = bench.exporter.count
        bench.claude_call()
        events = bench.claude_stream()
        bench.tracer_provider.force_flush()
        quiet = bench.exporter.count - before
        bench.claude_call(traced)
        bench.claude_stream(traced)
        bench.tracer_provider.force_flush()
        counts[mode] = (patched, quiet, bench.exporter.count - before - quiet, events)
        bench.leave(mode)
    bench.instrumented_calls += 4
    if counts["llmlens"][:3] != (True, 2, 2) or counts["sdk"][:3] != (False, 0, 2):
        raise SystemExit(
            f"anthropic: (patched, spans untraced client, spans traced client, events): {counts}"
        )
    if counts["llmlens"][3] != bench.events_per_claude_stream:
        raise SystemExit(f"expected {bench.events_per_claude_stream} events per anthropic stream: {counts}")
    bench.enter("llmlens")
    bench.tracer_provider.force_flush()
    long_before = bench.exporter.long
    long_events = bench.claude_long_stream()
    bench.tracer_provider.force_flush()
    bench.leave("llmlens")
    bench.instrumented_calls += 1
    expected = bench.events_per_claude_stream + LONG_CHUNKS - CONTENT_CHUNKS
    if long_events != expected or bench.exporter.long - long_before != 1:
        raise SystemExit(
            f"anthropic long stream: {long_events} events (expected {expected}), or not one span"
        )
    return [
        "anthropic: a client with the SDK's own tracing on gets 1 span per call from the SDK alone and "
        "1 (llmlens') with llmlens, checked at start-up"
    ]


def recorded_durations(reader: InMemoryMetricReader) -> int:
    """How many operation-duration measurements the meter provider holds (one per instrumented call)."""
    data = reader.get_metrics_data()
    total = 0
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "gen_ai.client.operation.duration":
                    total += sum(point.count for point in metric.data.data_points)
    return total


# --- import cost ------------------------------------------------------------------------------------


def import_time_ms(runs: int = IMPORT_RUNS) -> tuple[float, list[float]]:
    """Cumulative `-X importtime` of the top-level `llmlens` line, median over fresh interpreters."""
    samples = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import llmlens"],
            capture_output=True,
            text=True,
            check=True,
        )
        cumulative = None
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:"):
                continue
            parts = [p.strip() for p in line[len("import time:") :].split("|")]
            if len(parts) == 3 and parts[2] == "llmlens":  # top level: no indentation before the name
                cumulative = int(parts[1])
        if cumulative is None:
            raise SystemExit("no top-level `llmlens` line in -X importtime output")
        samples.append(cumulative / 1000)
    return statistics.median(samples), samples


_MODULES_SNIPPET = """
import sys
before = set(sys.modules)
{statement}
names = {{m.split(".")[0] for m in set(sys.modules) - before}}
print(" ".join(sorted(n for n in names if n not in sys.stdlib_module_names)))
"""


def third_party_modules(statement: str) -> list[str]:
    """Top-level non-stdlib modules that `statement` loads in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", _MODULES_SNIPPET.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.split()


def wall_import_ms(statement: str, runs: int = IMPORT_RUNS) -> float:
    """Wall time of `statement` in fresh interpreters (no -X importtime overhead), median."""
    code = f"import time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
    samples = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        samples.append(float(proc.stdout) * 1000)
    return statistics.median(samples)


# --- report -----------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    names = (
        "llmlens", "openai", "anthropic", "httpx2", "opentelemetry-api", "opentelemetry-sdk", "wrapt",
        "pydantic",
    )  # fmt: skip
    for dist in names:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "-"
    return found


def source_fingerprint() -> str:
    """Short sha256 over llmlens's .py files: ties a result to a working tree when there is no commit."""
    import hashlib
    from pathlib import Path

    import llmlens

    root = Path(llmlens.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def paired_delta(a: list[float], b: list[float]) -> float:
    """Median of (a - b) over slice cycles: the two slices ran back to back, so drift cancels, and a
    burst of load that hits one slice moves one pair out of dozens, not the median."""
    return statistics.median(x - y for x, y in zip(a, b, strict=True))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def runs_line(bench: Bench) -> str:
    if bench.design == "mixed":
        return (
            f"runs (design: mixed): {bench.rounds} rounds x {max(1, bench.stream_calls // 3)} cycles per "
            "mode of a non-streaming call, a stream and a long stream, each round in "
            f"{bench.slices} slices cycling through the modes; warm-up {bench.warmup // 8} cycles"
        )
    return (
        f"runs (design: blocks): {bench.rounds} rounds x {bench.calls} non-stream / {bench.stream_calls} "
        f"stream / {max(1, bench.stream_calls // 4)} long-stream calls per mode, each round in "
        f"{bench.slices} slices cycling through the modes; warm-up {bench.warmup} / {bench.warmup // 4} / "
        f"{bench.warmup // 16} calls"
    )


def report(
    bench: Bench, import_info: dict[str, Any], notes: list[str], markdown: bool, verbose: bool
) -> None:
    res = bench.results
    base = res["sdk"]
    sl = bench.slice_results
    delta = {w: paired_delta(sl["llmlens"][w], sl["sdk"][w]) for w in WORKLOADS}
    import_ms = import_info["median"]
    min_delta = {w: min(res["llmlens"][w]) - min(base[w]) for w in WORKLOADS}

    header = [
        f"date: {_dt.date.today().isoformat()}",
        f"machine: {os.cpu_count()} CPUs, {platform.machine()}, {platform.system()} {platform.release()}",
        f"python: {platform.python_version()} ({platform.python_implementation()})",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"llmlens source fingerprint: {source_fingerprint()} (sha256 of src/llmlens/**/*.py)",
        runs_line(bench),
        f"stream: {CONTENT_CHUNKS} content chunks, {bench.chunks_per_stream} chunks yielded "
        f"(role + content + finish + usage); long stream: {LONG_CHUNKS} content chunks",
        f"anthropic stream: {CONTENT_CHUNKS} text deltas, {bench.events_per_claude_stream} events yielded "
        "(message_start, content_block_start, deltas, content_block_stop, message_delta, message_stop); "
        f"client built with open_telemetry=False; long stream: {LONG_CHUNKS} text deltas",
        *notes,
    ]

    columns = ("workload", "mode", "median µs/call", "min µs/call", "Δ vs sdk µs", "spans/call",
               "ratio vs sdk", "spread %")  # fmt: skip
    rows = []
    for workload in WORKLOADS:
        for mode in MODES:
            rounds = res[mode][workload]
            med, low = statistics.median(rounds), min(rounds)
            rows.append((
                workload, mode, f"{med:.1f}", f"{low:.1f}",
                f"{paired_delta(sl[mode][workload], sl['sdk'][workload]):+.1f}",
                f"{bench.spans[mode][workload] / bench.timed_calls[mode][workload]:.2f}",
                f"{med / statistics.median(base[workload]):.3f}",
                f"{(max(rounds) - low) / low * 100:.1f}",
            ))  # fmt: skip

    # The same quantities round by round, to show how far the noise reaches.
    round_delta = {w: [x - y for x, y in zip(res["llmlens"][w], base[w], strict=True)] for w in WORKLOADS}

    def spread(values: list[float], fmt: str) -> str:
        return f"rounds {format(min(values), fmt)} .. {format(max(values), fmt)}"

    checks = []
    extra = []
    extra_chunks = LONG_CHUNKS - CONTENT_CHUNKS
    for sdk, (unary, streamed, long) in SDKS.items():
        label = "" if sdk == "openai" else f"{sdk}: "
        # The cost of one more chunk: the slope between the two streams, whose per-call parts are alike.
        per_chunk = (delta[long] - delta[streamed]) / extra_chunks
        round_slope = [
            (lg - sh) / extra_chunks for lg, sh in zip(round_delta[long], round_delta[streamed], strict=True)
        ]
        fixed = delta[streamed] - CONTENT_CHUNKS * per_chunk
        # The estimate of the earlier benchmark: the 34-chunk stream against the non-streaming call.
        estimate = (delta[streamed] - delta[unary]) / CONTENT_CHUNKS
        call_ms = delta[unary] / 1000
        min_chunk = (min_delta[long] - min_delta[streamed]) / extra_chunks
        round_estimate = [
            (s - n) / CONTENT_CHUNKS for s, n in zip(round_delta[streamed], round_delta[unary], strict=True)
        ]
        none_ns = paired_delta(sl["none"][unary], sl["sdk"][unary])
        none_s = paired_delta(sl["none"][streamed], sl["sdk"][streamed])
        checks += [
            (f"{label}overhead per non-streaming call", f"{call_ms:.3f} ms", f"<= {TARGET_CALL_MS} ms",
             call_ms <= TARGET_CALL_MS),
            (f"{label}overhead per streamed chunk", f"{per_chunk:.2f} µs", f"<= {TARGET_CHUNK_US:g} µs",
             per_chunk <= TARGET_CHUNK_US),
        ]  # fmt: skip
        extra += [
            f"{label}Δ per non-streaming call vs sdk: {delta[unary]:.1f} µs = {call_ms:.3f} ms "
            f"({spread(round_delta[unary], '.1f')} µs)",
            f"{label}Δ per streamed call vs sdk: {delta[streamed]:.1f} µs = {delta[streamed] / 1000:.3f} ms "
            f"({spread(round_delta[streamed], '.1f')} µs); {LONG_CHUNKS}-chunk stream: {delta[long]:.1f} µs "
            f"({spread(round_delta[long], '.1f')} µs)",
            f"{label}per-chunk overhead: ({delta[long]:.1f} - {delta[streamed]:.1f}) / {extra_chunks} "
            f"= {per_chunk:.2f} µs ({spread(round_slope, '.2f')} µs); fixed part of a streamed call: "
            f"{delta[streamed]:.1f} - {CONTENT_CHUNKS} x {per_chunk:.2f} = {fixed:.1f} µs",
            f"{label}estimate from the {CONTENT_CHUNKS}-chunk stream alone (older estimate): "
            f"({delta[streamed]:.1f} - {delta[unary]:.1f}) / {CONTENT_CHUNKS} = {estimate:.2f} µs "
            f"({spread(round_estimate, '.2f')} µs); it also counts the fixed part's excess over the "
            "non-streaming call's Δ",
            f"{label}cross-check from the per-mode minima: non-stream {min_delta[unary]:.1f} µs, "
            f"stream {min_delta[streamed]:.1f} µs, long stream {min_delta[long]:.1f} µs, "
            f"per chunk {min_chunk:.2f} µs",
            f"{label}none vs sdk (providers installed but unused): non-stream {none_ns:+.1f} µs, "
            f"stream {none_s:+.1f} µs",
        ]
    checks.append(
        ("import llmlens", f"{import_ms:.1f} ms", f"< {TARGET_IMPORT_MS:g} ms", import_ms < TARGET_IMPORT_MS)
    )
    extra += [
        f"import llmlens: median {import_ms:.1f} ms (-X importtime cumulative; runs: "
        + ", ".join(f"{s:.1f}" for s in import_info["samples"])
        + ")",
        f"import llmlens + llmlens.Instrumentor (wall, info only): {import_info['instrumentor_ms']:.1f} ms",
        "non-stdlib modules loaded by `import llmlens`: " + (", ".join(import_info["modules"]) or "-"),
        "... and by `llmlens.Instrumentor`: " + (", ".join(import_info["instrumentor_modules"]) or "-"),
        f"metrics check: {bench.instrumented_calls} instrumented calls, "
        f"{import_info['durations']} duration measurements recorded",
    ]
    noisy = [f"{r[1]} {r[0]}" for r in rows if float(r[7]) > 10]
    if noisy:
        extra.append(
            "NOISY: per-round spread above 10% for " + ", ".join(noisy) + "; rerun on a quiet machine"
        )
    per_round = [
        f"per-round µs/call, {workload} {mode}: " + ", ".join(f"{v:.1f}" for v in res[mode][workload])
        for workload in WORKLOADS
        for mode in MODES
    ]

    if markdown:
        print("\n".join(f"- {line}" for line in header))
        print()
        print("| " + " | ".join(columns) + " |")
        print("|---|---|" + "---:|" * (len(columns) - 2))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
        print("| target | measured | goal | result |")
        print("|---|---:|---:|---|")
        for name, measured, goal, ok in checks:
            print(f"| {name} | {measured} | {goal} | {verdict(ok)} |")
        print()
        print("\n".join(f"- {line}" for line in extra + (per_round if verbose else [])))
        return

    print("\n".join(header))
    print()
    widths = [max(len(columns[i]), *(len(row[i]) for row in rows)) for i in range(len(columns))]
    for line in (columns, *rows):
        cells = zip(line, widths, strict=True)
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(cells)))
    print()
    print("\n".join(extra + (per_round if verbose else [])))
    print()
    for name, measured, goal, ok in checks:
        print(f"{verdict(ok)}  {name}: {measured} (target {goal})")


# --- main -------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--design", choices=("blocks", "mixed"), default="blocks",
        help="blocks (default): each workload runs in blocks of its own; mixed: each SDK's three "
        "workloads in turn, call by call (see Bench.plan)",
    )  # fmt: skip
    parser.add_argument("--calls", type=int, default=400,
                        help="non-streaming calls per round and mode (blocks design)")  # fmt: skip
    parser.add_argument("--stream-calls", type=int, default=150,
                        help="streamed calls per round and mode; a quarter as many long streams (in "
                        "the mixed design: a third as many cycles of the three workloads)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=200,
                        help="warm-up calls per mode (non-stream; streams use a quarter)")  # fmt: skip
    parser.add_argument("--slices", type=int, default=8,
                        help="slices per round; the slices cycle through the modes (default 8)")  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs)")
    parser.add_argument("--verbose", action="store_true", help="also print every round's mean")
    args = parser.parse_args(argv)
    if min(args.rounds, args.calls, args.stream_calls, args.slices) < 1 or args.warmup < 0:
        parser.error("--rounds, --calls, --stream-calls and --slices must be >= 1, --warmup >= 0")

    handler, chunks = build_handler()
    claude_handler, claude_events = build_anthropic_handler()
    anthropic_client = anthropic.Anthropic(
        api_key="sk-ant-bench",
        base_url="http://127.0.0.1:9",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(claude_handler)),
        open_telemetry=False,  # the baseline makes no spans, as openai's: the Δ is all of llmlens' cost
    )
    client = openai.OpenAI(
        api_key="sk-bench",
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    exporter = DiscardingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    bench = Bench(
        rounds=args.rounds,
        calls=args.calls,
        stream_calls=args.stream_calls,
        design=args.design,
        warmup=args.warmup,
        slices=args.slices,
        client=client,
        chunks_per_stream=chunks,  # one `data: {...}` frame per chunk the SDK yields
        globals_=Globals(tracer_provider, meter_provider),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        reader=reader,
        exporter=exporter,
        anthropic_client=anthropic_client,
        events_per_claude_stream=claude_events,
    )
    notes = check_setup(bench)
    started = time.perf_counter()
    bench.run()
    import_median, import_samples = import_time_ms()
    import_info = {
        "median": import_median,
        "samples": import_samples,
        "modules": third_party_modules("import llmlens"),
        "instrumentor_modules": third_party_modules("import llmlens\nllmlens.Instrumentor"),
        "instrumentor_ms": wall_import_ms("import llmlens\nllmlens.Instrumentor"),
        "durations": recorded_durations(reader),
    }
    print(f"  measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    report(bench, import_info, notes, args.markdown, args.verbose)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
