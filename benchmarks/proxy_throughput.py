"""Proxy throughput: requests per second through a uvicorn proxy to a fake upstream, with and without llmlens.

    python benchmarks/proxy_throughput.py [--seconds S] [--concurrency C] [--rounds R] [--markdown]

Processes, all on 127.0.0.1:

- the upstream: `llmlens.demo.fake_server.FakeProvider` (every answer 34 words; streams send 34 content
  chunks, the finish chunk and the usage chunk, then `[DONE]`);
- four proxies, each a FastAPI app under uvicorn (one worker, the default event loop and HTTP parser
  of the installed uvicorn), relaying `POST /v1/chat/completions` to the upstream:
  - variant `sdk`: calls the upstream with `openai.AsyncOpenAI` and sends the SDK's objects back as JSON
    or SSE (what tests/proxies/openai_proxy.py does);
  - variant `raw`: relays the request and response bytes with the HTTP client the openai SDK uses
    (`httpx2.AsyncClient` with openai 3, `httpx` otherwise);
  - each variant `plain` (no OpenTelemetry at all) and `llmlens`: a global SDK `TracerProvider` with a
    `BatchSpanProcessor` feeding an exporter that drops spans, a `MeterProvider` with an
    `InMemoryMetricReader`, then `llmlens.Instrumentor().instrument()` with the local store on a temp
    file (`LLMLENS_DB`). The middleware is added to the FastAPI app by llmlens itself. In the `sdk`
    variant the proxy's own openai call is instrumented too (a CLIENT span under the SERVER span): that
    is what a proxy built on the SDK pays. The `raw` variant has only the middleware's SERVER span.
  - with `--otel-baseline`, a third proxy per variant, `otel`: the same providers, without llmlens. It is
    what the proxy costs once OpenTelemetry is set up, before llmlens: FastAPI (0.12x and later) then
    makes its own SERVER span and HTTP metrics for every request, which llmlens replaces for LLM routes.
- the load generator: this process, an asyncio client speaking HTTP/1.1 on raw sockets (much cheaper per
  request than httpx, so it leaves the CPU to the proxy), C keep-alive connections each sending the next
  request as soon as the previous answer is read in full, for S seconds (after a short untimed ramp).

Each round runs, per variant, workload (JSON, stream) and load (C connections = saturation, 1 connection
= latency without queueing), `plain` and `llmlens` back to back in alternating order. Reported: requests
per second, p50/p99 latency to the last byte and, for streams, to the first SSE event; the median over
rounds of the per-round ratio llmlens/plain of requests per second, and the median per-round difference
of p99. The CPU seconds each process used in the timed window show which process was the bottleneck;
the proxy's CPU time per request is the figure least moved by other processes on a shared machine.
`--store off` runs the instrumented proxies without the local store; `--pin split` puts the proxies on
the first CPU and the rest on the others (benchmarks/README.md says why it is not the default).

Goals: at saturation llmlens keeps >= 95% of the plain proxy's requests per second; with one connection
(no queueing, so the difference is llmlens' own time per request) it adds <= 1 ms at p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request  # module level: FastAPI resolves the route's annotations here
from fastapi.responses import Response, StreamingResponse

TARGET_RATIO = 0.95
TARGET_P99_MS = 1.0
SCENARIO = "chunks=34"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
VARIANTS = ("sdk", "raw")
MODES = ("plain", "llmlens")
ALL_MODES = (*MODES, "otel")  # otel: the providers without llmlens (--otel-baseline)
WORKLOADS = ("json", "stream")
RAMP_S = 0.5  # untimed start of every measurement: connections open, caches warm


# ---------------------------------------------------------------------------------------------------
# Child processes: the upstream and the proxies. Each prints its port on stdout once it listens.


def serve_upstream() -> None:
    from llmlens.demo.fake_server import FakeProvider

    provider = FakeProvider().start()
    print(provider.port, flush=True)
    stop = _stop_on_sigterm()
    while not stop.wait(1.0):
        provider.clear()  # it records every request; a long run must not grow without bound
    provider.stop()


def serve_proxy(variant: str, mode: str, upstream: str) -> None:
    import uvicorn

    if mode in ("otel", "llmlens"):
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        import llmlens

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        if mode == "llmlens":
            llmlens.Instrumentor().instrument()
    app = sdk_proxy(upstream) if variant == "sdk" else raw_proxy(upstream)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off")
    )

    # uvicorn re-raises the SIGTERM it caught once it has stopped; with this handler in place that is
    # harmless, so the process lives on to flush the store below.
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))

    async def run() -> None:
        serving = asyncio.ensure_future(server.serve())  # uvicorn stops on SIGTERM
        while not server.started:
            if serving.done():
                serving.result()
                raise SystemExit("uvicorn stopped before it listened")
            await asyncio.sleep(0.01)
        print(server.servers[0].sockets[0].getsockname()[1], flush=True)
        await serving

    asyncio.run(run())
    if mode == "llmlens":
        import llmlens

        llmlens.Instrumentor().uninstrument()  # flushes the store's last rows


def sdk_proxy(upstream: str) -> FastAPI:
    import openai

    app = FastAPI()
    client = openai.AsyncOpenAI(
        base_url=upstream, api_key="sk-upstream", max_retries=0, default_headers={"x-fake-scenario": SCENARIO}
    )

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        if body.get("stream"):
            stream = await client.chat.completions.create(**body)

            async def relay() -> Any:
                async for chunk in stream:
                    yield b"data: " + chunk.model_dump_json(exclude_unset=True).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"

            return StreamingResponse(relay(), media_type="text/event-stream")
        completion = await client.chat.completions.create(**body)
        return Response(completion.model_dump_json(exclude_unset=True), media_type="application/json")

    return app


def raw_proxy(upstream: str) -> FastAPI:
    try:  # the HTTP client the installed openai SDK uses: openai 3 moved to httpx2
        import httpx2 as httpx
    except ImportError:
        import httpx  # type: ignore[no-redef]
    from starlette.background import BackgroundTask

    app = FastAPI()
    client = httpx.AsyncClient(
        base_url=upstream,
        headers={"authorization": "Bearer sk-upstream", "x-fake-scenario": SCENARIO},
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000),
        timeout=30,
    )

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        outgoing = client.build_request(
            "POST", "/chat/completions", content=await request.body(), headers=headers
        )
        reply = await client.send(outgoing, stream=True)
        media_type = reply.headers.get("content-type", "application/json")
        if media_type.startswith("text/event-stream"):
            return StreamingResponse(
                reply.aiter_raw(),
                reply.status_code,
                media_type=media_type,
                background=BackgroundTask(reply.aclose),
            )
        content = await reply.aread()
        await reply.aclose()
        return Response(content, reply.status_code, media_type=media_type)

    return app


def _stop_on_sigterm() -> Any:
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


# ---------------------------------------------------------------------------------------------------
# The load generator: HTTP/1.1 on asyncio streams, no client library.


@dataclass
class Sample:
    """One measurement: one proxy, one workload, one load, one round."""

    variant: str
    mode: str
    workload: str
    connections: int
    round: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    first_p50_ms: float | None
    first_p99_ms: float | None
    answered: int  # every complete answer, the ramp and the end of the window included
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds per wall second

    @property
    def proxy_cpu_ms(self) -> float:
        """The proxy's CPU time per request: unlike req/s, hardly moved by other processes taking turns."""
        return self.cpu["proxy"] * self.seconds * 1000 / self.requests


def request_bytes(port: int, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[float, float | None, bytes, bool]:
    """Send one request and read its whole response: (seconds to the last byte, seconds to the first body
    chunk of a chunked (streamed) body, the body, whether the status was 200)."""
    start = time.perf_counter()
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    ok = head.startswith(b"http/1.1 200")
    first = None
    if b"transfer-encoding: chunked" in head:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        data = await reader.readexactly(size) if size else b""
        first = time.perf_counter() - start
        # The first chunk's CRLF is still unread, so the terminator is always CRLF 0 CRLF CRLF.
        rest = await reader.readuntil(b"\r\n0\r\n\r\n") if size else await reader.readuntil(b"\r\n")
        body = data + rest
    else:
        marker = head.index(b"content-length:") + len(b"content-length:")
        body = await reader.readexactly(int(head[marker : head.index(b"\r\n", marker)]))
    return time.perf_counter() - start, first, body, ok


def body_ok(body: bytes, workload: str) -> bool:
    if workload == "stream":
        return body.count(b"data: ") == 38 and b"data: [DONE]" in body  # 37 chunks and [DONE]
    return body.startswith(b"{") and b'"completion_tokens"' in body


async def drive(
    port: int, workload: str, connections: int, seconds: float
) -> tuple[list[float], list[float], int, int]:
    """C connections in a closed loop; latencies of the requests sent inside the timed window, errors."""
    request = request_bytes(port, STREAM_BODY if workload == "stream" else BODY)
    begin = time.perf_counter() + RAMP_S
    end = begin + seconds
    latencies: list[float] = []
    firsts: list[float] = []
    errors = answered = 0

    async def connection() -> None:
        nonlocal errors, answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                sent = time.perf_counter()
                if sent >= end:
                    return
                total, first, body, ok = await exchange(reader, writer, request)
                answered += 1
                if sent >= begin and sent + total <= end:
                    if ok and body_ok(body, workload):
                        latencies.append(total)
                        if first is not None:
                            firsts.append(first)
                    else:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, firsts, errors, answered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------
# Orchestration


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    port: int


def start(name: str, role_args: list[str], env: dict[str, str], cores: set[int] | None) -> Child:
    process = subprocess.Popen(
        [sys.executable, __file__, "--role", *role_args], stdout=subprocess.PIPE, text=True, env=env
    )
    if cores:
        os.sched_setaffinity(process.pid, cores)
    line = process.stdout.readline() if process.stdout else ""
    if not line.strip().isdigit():
        process.kill()
        raise SystemExit(f"proxy_throughput: {name} did not start (exit status {process.wait()})")
    return Child(name, process, int(line))


def stop(child: Child) -> None:
    child.process.send_signal(signal.SIGTERM)
    try:
        child.process.wait(15)
    except subprocess.TimeoutExpired:
        child.process.kill()
        child.process.wait()


def measure(
    proxy: Child,
    upstream: Child,
    variant: str,
    mode: str,
    workload: str,
    connections: int,
    r: int,
    seconds: float,
) -> Sample:
    pids = {"proxy": proxy.process.pid, "upstream": upstream.process.pid, "load": os.getpid()}

    async def timed() -> tuple[list[float], list[float], int, int, dict[str, float]]:
        task = asyncio.ensure_future(drive(proxy.port, workload, connections, seconds))
        await asyncio.sleep(RAMP_S)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        await asyncio.sleep(seconds)
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        latencies, firsts, errors, answered = await task
        return latencies, firsts, errors, answered, {n: (after[n] - before[n]) / seconds for n in pids}

    latencies, firsts, errors, answered, cpu = asyncio.run(timed())
    if not latencies and r >= 0:  # r < 0: the warm-up, which only has to send requests
        raise SystemExit(
            f"proxy_throughput: no correct {workload} answer from {variant}/{mode} inside the "
            f"{seconds:g} s window ({errors} wrong); the machine may be too busy for so short a window: "
            "raise --seconds"
        )
    return Sample(
        variant, mode, workload, connections, r, seconds, len(latencies), errors, len(latencies) / seconds,
        percentile(latencies, 0.5) if latencies else 0.0, percentile(latencies, 0.99) if latencies else 0.0,
        percentile(firsts, 0.5) if firsts else None, percentile(firsts, 0.99) if firsts else None,
        answered, cpu,
    )  # fmt: skip


def placement(pin: str) -> tuple[set[int] | None, set[int] | None]:
    """(the proxies' cores, the upstream's and load generator's cores)."""
    cores = sorted(os.sched_getaffinity(0))
    if pin == "none" or len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def run(args: argparse.Namespace) -> tuple[list[Sample], dict[str, dict[str, int]]]:
    proxy_cores, other_cores = args.cores
    if other_cores:
        os.sched_setaffinity(0, other_cores)
    tmp = tempfile.TemporaryDirectory(prefix="llmlens-proxy-bench-")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
        ),
    }
    upstream = start("upstream", ["upstream"], env, other_cores)
    upstream_url = f"http://127.0.0.1:{upstream.port}/v1"
    proxies: dict[tuple[str, str], Child] = {}
    dbs: dict[str, str] = {}
    try:
        for variant in args.variants:
            for mode in args.modes:
                child_env = dict(env)
                if mode == "llmlens" and args.store == "on":
                    dbs[variant] = child_env["LLMLENS_DB"] = os.path.join(tmp.name, f"{variant}.db")
                elif mode == "llmlens":
                    child_env["LLMLENS_STORE"] = "false"
                name = f"{variant}/{mode}"
                proxies[variant, mode] = start(
                    name, ["proxy", variant, mode, upstream_url], child_env, proxy_cores
                )
        loads = [args.concurrency, 1] if args.concurrency != 1 else [1]
        plan = [(v, w, c) for v in args.variants for w in WORKLOADS for c in loads]
        progress(f"warm-up: {args.warmup:g} s per proxy and workload")
        warm = [
            measure(proxy, upstream, variant, mode, workload, args.concurrency, -1, args.warmup)
            for (variant, mode), proxy in proxies.items()
            for workload in (WORKLOADS if args.warmup else ())
        ]
        samples: list[Sample] = []
        for r in range(args.rounds):
            for i, (variant, workload, connections) in enumerate(plan):
                order = args.modes if (r + i) % 2 == 0 else args.modes[::-1]
                for mode in order:
                    sample = measure(
                        proxies[variant, mode],
                        upstream,
                        variant,
                        mode,
                        workload,
                        connections,
                        r,
                        args.seconds,
                    )
                    samples.append(sample)
                    progress(
                        f"round {r + 1}/{args.rounds} {variant:5} {workload:6} c={connections:<3} {mode:7} "
                        f"{sample.rps:7.0f} req/s  p99 {sample.p99_ms:6.1f} ms  errors {sample.errors}  cpu "
                        + " ".join(f"{n} {v:.0%}" for n, v in sample.cpu.items())
                    )
    finally:
        for child in proxies.values():
            stop(child)
        stop(upstream)
    stored = {
        variant: {
            "rows": stored_requests(path),
            "answered": sum(
                s.answered for s in warm + samples if (s.variant, s.mode) == (variant, "llmlens")
            ),
        }
        for variant, path in dbs.items()
    }
    tmp.cleanup()
    return samples, stored


def stored_requests(path: str) -> int:
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM requests").fetchone()[0])
    except sqlite3.Error:
        return -1


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Report


@dataclass
class Row:
    variant: str
    workload: str
    connections: int
    plain: list[Sample]
    llmlens: list[Sample]
    otel: list[Sample] = field(default_factory=list)  # with --otel-baseline

    def med(self, mode: str, attr: str) -> float | None:
        values = [getattr(s, attr) for s in getattr(self, mode)]
        return statistics.median(values) if values and values[0] is not None else None

    @property
    def ratios(self) -> list[float]:
        return [b.rps / a.rps for a, b in zip(self.plain, self.llmlens, strict=True)]

    @property
    def p99_deltas(self) -> list[float]:
        return [b.p99_ms - a.p99_ms for a, b in zip(self.plain, self.llmlens, strict=True)]

    @property
    def noise(self) -> float:
        """The larger round-to-round spread of either mode's requests per second, relative to its median."""
        spreads = []
        for samples in (self.plain, self.llmlens):
            values = [s.rps for s in samples]
            spreads.append((max(values) - min(values)) / statistics.median(values))
        return max(spreads)


def rows(samples: list[Sample]) -> list[Row]:
    keys = list(dict.fromkeys((s.variant, s.workload, s.connections) for s in samples))
    out = []
    for key in keys:
        pick = [s for s in samples if (s.variant, s.workload, s.connections) == key]
        by_mode = {m: sorted((s for s in pick if s.mode == m), key=lambda s: s.round) for m in ALL_MODES}
        out.append(Row(*key, by_mode["plain"], by_mode["llmlens"], by_mode["otel"]))
    return out


def header_lines(args: argparse.Namespace) -> list[str]:
    from importlib import metadata

    from profiling import command, commit
    from store import cpu_model

    found = []
    for dist in ("uvicorn", "fastapi", "openai", "httpx2", "httpx"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    from importlib.util import find_spec

    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    parser = "httptools" if find_spec("httptools") else "h11"
    versions = ", ".join(found) + f"; uvicorn runs {loop} and {parser}"
    proxy_cores, other_cores = args.cores
    pinning = (
        f"proxies on CPU {sorted(proxy_cores)}, upstream and load on CPUs {sorted(other_cores or [])}"
        if proxy_cores
        else "no CPU pinning"
    )
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"commit: {commit()}",
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}",
        f"placement: {pinning}",
        f"python {platform.python_version()}; {versions}",
        f"command: {command(dict(os.environ))}",
        f"llmlens store: {args.store}; {args.rounds} rounds x {args.seconds:g} s per proxy, workload and "
        f"load; saturation = "
        f"{args.concurrency} connections; streams: 37 chunks + [DONE]",
    ]


def report(args: argparse.Namespace, samples: list[Sample], stored: dict[str, dict[str, int]]) -> bool:
    md = args.markdown
    table = rows(samples)
    cols = [
        "variant", "workload", "conns", "plain req/s", "llmlens req/s", "ratio", "ratio range", "noise",
        "plain p50/p99 ms", "llmlens p50/p99 ms", "Δp99 ms", "first event p99 ms plain/llmlens",
        "proxy CPU ms/req plain/llmlens (busy)", "Δ CPU ms/req",
    ]  # fmt: skip
    with_otel = any(row.otel for row in table)
    if with_otel:
        cols += ["otel req/s", "llmlens/otel", "otel p99 ms", "otel CPU ms/req"]
    lines = []
    for row in table:
        ratio = statistics.median(row.ratios)
        first = (
            f"{row.med('plain', 'first_p99_ms'):.1f} / {row.med('llmlens', 'first_p99_ms'):.1f}"
            if row.workload == "stream"
            else "-"
        )
        cpu = {m: statistics.median(s.cpu["proxy"] for s in getattr(row, m)) for m in MODES}  # plain, llmlens
        cpu_ms = {m: statistics.median(s.proxy_cpu_ms for s in getattr(row, m)) for m in MODES}
        cpu_delta = statistics.median(
            b.proxy_cpu_ms - a.proxy_cpu_ms for a, b in zip(row.plain, row.llmlens, strict=True)
        )
        lines.append([
            row.variant, row.workload, str(row.connections),
            f"{row.med('plain', 'rps'):.0f}", f"{row.med('llmlens', 'rps'):.0f}", f"{ratio:.3f}",
            f"{min(row.ratios):.3f} to {max(row.ratios):.3f}", f"{row.noise:.0%}",
            f"{row.med('plain', 'p50_ms'):.1f} / {row.med('plain', 'p99_ms'):.1f}",
            f"{row.med('llmlens', 'p50_ms'):.1f} / {row.med('llmlens', 'p99_ms'):.1f}",
            f"{statistics.median(row.p99_deltas):+.2f}", first,
            f"{cpu_ms['plain']:.2f} / {cpu_ms['llmlens']:.2f} ({cpu['plain']:.0%} / {cpu['llmlens']:.0%})",
            f"{cpu_delta:+.2f}",
        ])  # fmt: skip
        if with_otel:
            ratios = [b.rps / a.rps for a, b in zip(row.otel, row.llmlens, strict=True)]
            lines[-1] += [
                f"{row.med('otel', 'rps'):.0f}", f"{statistics.median(ratios):.3f}",
                f"{row.med('otel', 'p99_ms'):.1f}",
                f"{statistics.median(s.proxy_cpu_ms for s in row.otel):.2f}",
            ]  # fmt: skip
    out = [("- " if md else "") + line for line in header_lines(args)]
    out.append("")
    if md:
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        out.extend("| " + " | ".join(cells) + " |" for cells in lines)
    else:
        widths = [max(len(c), *(len(cells[i]) for cells in lines)) for i, c in enumerate(cols)]
        out.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
        out.extend("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)) for cells in lines)
    out.append("")
    passed = True
    for row in table:
        out.append(verdict(row, args.concurrency))
        passed &= out[-1].startswith("PASS")
    for variant, count in stored.items():
        ok = count["rows"] == count["answered"]
        out.append(
            f"{'PASS' if ok else 'FAIL'} store of {variant}/llmlens: {count['rows']} request rows for "
            f"{count['answered']} requests answered (every answer, warm-up included)"
        )
        passed &= ok
    errors = sum(s.errors for s in samples)
    if errors:
        out.append(f"ERRORS: {errors} responses were not a 200 with the expected body")
        passed = False
    print("\n".join(out))
    return passed


def verdict(row: Row, concurrency: int) -> str:
    """PASS/FAIL against the goal of the row's load, flagged when the rounds disagree more than the effect."""
    label = f"{row.variant} {row.workload}"
    if row.connections == concurrency and concurrency != 1:
        values, unit = row.ratios, ""
        middle = statistics.median(values)
        effect, ok = abs(1 - middle), middle >= TARGET_RATIO
        text = f"llmlens keeps {middle:.1%} of req/s at saturation (goal >= {TARGET_RATIO:.0%})"
    else:
        values, unit = row.p99_deltas, " ms"
        middle = statistics.median(values)
        effect, ok = abs(middle), middle <= TARGET_P99_MS
        text = f"llmlens adds {middle:+.2f} ms at p99, one connection (goal <= {TARGET_P99_MS:g} ms)"
    spread = max(values) - min(values)
    if len(values) < 2:
        text += "; one round, no estimate of the noise"
    elif spread > effect:
        text += f"; NOISY: the rounds spread over {spread:.3g}{unit}, more than the effect"
    return f"{'PASS' if ok else 'FAIL'} {label}: {text}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Requests/s through a uvicorn proxy to a fake upstream, with and without llmlens.",
        epilog="Each round: 2 variants x 2 workloads x 2 loads x 2 modes (3 with --otel-baseline). "
        "The defaults take about 5 minutes.",
    )
    parser.add_argument(
        "--seconds", type=float, default=6.0, help="timed seconds per measurement (default 6)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections at saturation (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="untimed seconds per proxy and workload (default 1)"
    )
    parser.add_argument(
        "--variants",
        default="sdk,raw",
        help="comma-separated: sdk (relay through the openai SDK), raw (relay the bytes)",
    )
    parser.add_argument(
        "--pin", choices=("none", "split"), default="none",
        help="none: the scheduler places every process (default); split: proxies on the first CPU, "
        "upstream and load generator on the others",
    )  # fmt: skip
    parser.add_argument(
        "--store", choices=("on", "off"), default="on",
        help="llmlens' local store in the instrumented proxies (default on, a temp file); off: its share",
    )  # fmt: skip
    parser.add_argument(
        "--otel-baseline", action="store_true",
        help="also run each variant with the OpenTelemetry providers and no llmlens (FastAPI's own "
        "telemetry on): llmlens' cost over a proxy that already exports OpenTelemetry",
    )  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="print Markdown instead of plain text")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE as JSON")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        if args.role[0] == "upstream":
            serve_upstream()
        else:
            serve_proxy(*args.role[1:])
        return 0
    args.modes = (*MODES, "otel") if args.otel_baseline else MODES
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad or not args.variants:
        parser.error(f"--variants: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(VARIANTS)}")
    if args.seconds <= 0 or args.rounds < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error(
            "--seconds and --concurrency must be positive, --rounds at least 1, --warmup not negative"
        )
    args.cores = placement(args.pin)
    samples, stored = run(args)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"samples": [asdict(s) for s in samples], "stored": stored}, indent=1)
        )
    return 0 if report(args, samples, stored) else 1


if __name__ == "__main__":
    raise SystemExit(main())
