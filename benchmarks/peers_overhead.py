"""What llmlens and each peer instrumentation add to an openai / anthropic call, measured side by side.

    benchmarks/peers-env                         # once: .venv-peers and .venv-peers-legacy
    .venv/bin/python benchmarks/peers_overhead.py [--rounds R] [--slices S] [--calls N] [--cold-calls C]
        [--stream-calls M] [--cold-stream-calls K] [--processor batch|simple] [--only a,b] [--markdown]

Every instrumentation (peer_setup.INSTRUMENTATIONS) runs in a worker process of its own, in its
environment, since peers patch the SDKs for the whole process; so do the two references of each
environment: ``none`` (the SDK providers installed, nothing instrumented: the baseline) and ``floor``
(no instrumentation, but each call wrapped by hand in one span with 20 attributes and followed by three
histogram records: what any instrumentation must pay at least). The workers wait on a pipe and run one
block of calls at a time, never two at once: each round runs every workload, cut into S slices, and
each slice visits every worker in turn, the order rotated from slice to slice, so that drift and other
processes' load hit them all alike.

Calls go through the real SDK clients (``max_retries=0``; anthropic's own tracing off) to a
MockTransport of the SDK's HTTP library serving bytes built once by ``llmlens.demo.fake_bodies`` and
``fake_anthropic`` (as in ``overhead.py``): a chat completion / message, a stream of 34 content chunks
(openai with ``include_usage``) and one of 136. Each workload runs warm (calls back to back) and cold
(each call right after ~10 ms of unrelated, untimed work that fills the CPU caches, as in
``cold_cache.py``). Spans go to one exporter that counts and drops them, behind the SDK's
``BatchSpanProcessor`` (``--processor simple``: ``SimpleSpanProcessor``), the same for every worker.

Reported per instrumentation, SDK and condition (warm/cold):
* Δ per call: the non-streaming call's µs minus the baseline's in the same slice cycle (seconds apart at
  most), the median over the R x S pairs;
* Δ per chunk: (Δ of the 136-chunk stream - Δ of the 34-chunk stream) / 102, the cost of one more chunk;
* spans per call (timed non-streaming and streamed calls), and the memory retained per span: tracemalloc
  over 100 calls of each kind at the end, with the exporter keeping the spans (for the baseline:
  per call).
Then, per environment, its llmlens run against its best peer and its floor, with the goals: llmlens
lowest in every row, at least 2x lower than the best peer per call and 7x lower per chunk, and within 15%
of the floor per call. OpenLIT and openai-v2 run in the legacy environment (openai 2.x, anthropic 0.x),
with its own baseline, floor and llmlens run.

``--json FILE`` keeps the raw measurements; ``--from-json FILE`` prints the report of such a file again
without measuring.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import peer_setup

CONTENT_CHUNKS = 34
LONG_CHUNKS = 4 * CONTENT_CHUNKS
LONG_HEADERS = {"x-bench-stream": "long"}
MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say hello in one sentence."},
]
KINDS = ("call", "stream", "long")
CONDITIONS = ("warm", "cold")
GOAL_CALL_RATIO = 2.0  # best peer's Δ / llmlens's Δ, per call
GOAL_CHUNK_RATIO = 7.0  # the same, per chunk
GOAL_FLOOR = 1.15  # llmlens's Δ / the floor's Δ, per call

# Untimed work before each cold call (the filler of cold_cache.py): about 10 ms.
_FILLER = [{f"k{i}": list(range(20)), "s": "x" * 50} for i in range(3000)]


def fill_caches() -> None:
    json.loads(json.dumps(_FILLER))


# --- worker -----------------------------------------------------------------------------------------


class CountingExporter:
    """Counts spans and drops them; keeps them while `keep` is set (the memory measurement)."""

    def __init__(self) -> None:
        self.count = 0
        self.keep = False
        self.kept: list[Any] = []

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.count += len(spans)
        if self.keep:
            self.kept.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _http_module(sdk: str) -> Any:
    """The HTTP library the installed SDK uses: httpx2 (openai 3, anthropic 2) or httpx."""
    base = __import__(f"{sdk}._base_client", fromlist=["_"])
    return getattr(base, "httpx2", None) or base.httpx


def _handler(sdk: str) -> Callable[[Any], Any]:
    from llmlens.demo import fake_anthropic
    from llmlens.demo.fake_bodies import Scenario, chat_completion, chat_completion_events

    http = _http_module(sdk)
    short, long = Scenario(chunks=CONTENT_CHUNKS), Scenario(chunks=LONG_CHUNKS)
    if sdk == "openai":
        request: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
        _status, json_headers, json_body = chat_completion(request, short)
        streamed = {**request, "stream": True, "stream_options": {"include_usage": True}}
        sse = b"".join(chat_completion_events(streamed, short))
        sse_long = b"".join(chat_completion_events(streamed, long))
    else:
        request = {"model": CLAUDE, "max_tokens": 256, "messages": MESSAGES[1:]}
        _status, json_headers, json_body = fake_anthropic.message(request, short)
        sse = b"".join(fake_anthropic.message_events({**request, "stream": True}, short))
        sse_long = b"".join(fake_anthropic.message_events({**request, "stream": True}, long))
    sse_headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    json_headers = dict(json_headers)

    def handler(http_request: Any) -> Any:
        content = http_request.content
        if b'"stream":true' in content or b'"stream": true' in content:
            body = sse_long if "x-bench-stream" in http_request.headers else sse
            return http.Response(200, headers=sse_headers, content=body)
        return http.Response(200, headers=json_headers, content=json_body)

    return handler


def workloads(sdk: str) -> dict[str, Callable[[], Any]]:
    """kind -> one call of that kind through the real client."""
    http = _http_module(sdk)
    transport = http.MockTransport(_handler(sdk))
    if sdk == "openai":
        import openai

        client = openai.OpenAI(
            api_key="sk-bench", base_url="http://127.0.0.1:9/v1", max_retries=0,
            http_client=http.Client(transport=transport),
        )  # fmt: skip
        create = client.chat.completions.create
        args: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
        stream_args = {**args, "stream": True, "stream_options": {"include_usage": True}}
    else:
        import anthropic

        client = anthropic.Anthropic(
            api_key="sk-ant-bench", base_url="http://127.0.0.1:9", max_retries=0,
            http_client=http.Client(transport=transport), **peer_setup.anthropic_kwargs(),
        )  # fmt: skip
        create = client.messages.create
        args = {"model": CLAUDE, "max_tokens": 256, "messages": MESSAGES[1:]}
        stream_args = {**args, "stream": True}

    def call() -> None:
        create(**args)

    def stream() -> None:
        for _ in create(**stream_args):
            pass

    def long_stream() -> None:
        for _ in create(**stream_args, extra_headers=LONG_HEADERS):
            pass

    return {"call": call, "stream": stream, "long": long_stream}


# 20 span attributes (12 at the start, 8 at the end) and 3 histogram records of 5 attributes: the floor.
FLOOR_START = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
    "gen_ai.request.max_tokens": 256, "gen_ai.request.temperature": 0.0, "gen_ai.request.top_p": 1.0,
    "gen_ai.request.stream": False, "server.address": "127.0.0.1", "server.port": 9,
    "gen_ai.request.seed": 1, "gen_ai.request.frequency_penalty": 0.0, "gen_ai.request.presence_penalty": 0.0,
}  # fmt: skip
FLOOR_END = {
    "gen_ai.response.model": MODEL, "gen_ai.response.id": "chatcmpl-floor",
    "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 20,
    "gen_ai.usage.output_tokens": 34, "gen_ai.usage.cache_read.input_tokens": 0,
    "gen_ai.openai.response.system_fingerprint": "fp", "gen_ai.openai.response.service_tier": "default",
}  # fmt: skip
FLOOR_METRICS = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
    "gen_ai.response.model": MODEL, "server.address": "127.0.0.1",
}  # fmt: skip


def floor_wrapper(
    tracer_provider: Any, meter_provider: Any
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    from opentelemetry.trace import SpanKind

    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    input_attributes = {**FLOOR_METRICS, "gen_ai.token.type": "input"}
    output_attributes = {**FLOOR_METRICS, "gen_ai.token.type": "output"}
    clock = time.perf_counter

    def wrap(fn: Callable[[], Any]) -> Callable[[], Any]:
        def wrapped() -> None:
            start = clock()
            span = tracer.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=FLOOR_START)
            fn()
            span.set_attributes(FLOOR_END)
            span.end()
            duration.record(clock() - start, FLOOR_METRICS)
            tokens.record(20, input_attributes)
            tokens.record(34, output_attributes)

        return wrapped

    return wrap


def worker(name: str, processor_kind: str, warmup: int) -> int:
    # Replies go to the original stdout; anything else the libraries print goes to stderr.
    out: TextIO = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    instrumentation = peer_setup.INSTRUMENTATIONS[name]
    exporter = CountingExporter()
    providers = peer_setup.instrument(name, exporter, processor_kind)
    calls = {sdk: workloads(sdk) for sdk in instrumentation.sdks}
    if name.startswith("floor"):
        wrap = floor_wrapper(providers.tracer_provider, providers.meter_provider)
        calls = {sdk: {kind: wrap(fn) for kind, fn in fns.items()} for sdk, fns in calls.items()}
    for fns in calls.values():  # warm-up, untimed
        for kind, fn in fns.items():
            for _ in range(max(1, warmup // (1 if kind == "call" else 4 if kind == "stream" else 16))):
                fn()
    providers.processor.force_flush()
    clock = time.perf_counter_ns
    reply: dict[str, Any] = {"ready": True, "versions": peer_setup.versions(instrumentation.packages)}
    while True:
        out.write(json.dumps(reply) + "\n")
        out.flush()
        line = sys.stdin.readline()
        if not line:
            return 0
        order = json.loads(line)
        if order["op"] == "quit":
            return 0
        if order["op"] == "memory":
            reply = memory(calls, order["n"], exporter, providers.processor)
            continue
        fn = calls[order["sdk"]][order["kind"]]
        cold = order["cond"] == "cold"
        providers.processor.force_flush()
        before = exporter.count
        gc.collect()
        elapsed = 0
        for _ in range(order["n"]):
            if cold:
                fill_caches()
            start = clock()
            fn()
            elapsed += clock() - start
        providers.processor.force_flush()
        reply = {"ns": elapsed, "spans": exporter.count - before}


def memory(calls: dict[str, dict[str, Callable[[], Any]]], n: int, exporter: Any, processor: Any) -> dict:
    """Bytes retained per call and spans per call, per SDK and kind (call, stream), spans kept."""
    result = {}
    for sdk, fns in calls.items():
        for kind in ("call", "stream"):
            processor.force_flush()
            exporter.kept.clear()
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            exporter.keep = True
            for _ in range(n):
                fns[kind]()
            processor.force_flush()
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            exporter.keep = False
            grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
            result[f"{sdk}/{kind}"] = {"bytes": grown / n, "spans": len(exporter.kept) / n}
            exporter.kept.clear()
    return result


# --- parent -----------------------------------------------------------------------------------------


class Worker:
    def __init__(self, name: str, processor: str, warmup: int, log_dir: Path) -> None:
        self.name = name
        self.instrumentation = peer_setup.INSTRUMENTATIONS[name]
        self.log = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(
            [str(peer_setup.python_of(self.instrumentation)), __file__, "--worker", name,
             "--processor", processor, "--warmup", str(warmup)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
        )  # fmt: skip
        self.versions: dict[str, str] = {}

    def ask(self, order: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if order is not None:
            self.proc.stdin.write(json.dumps(order) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text()[-3000:]
            peer_setup.fail(f"peers_overhead: the {self.name} worker stopped:\n{tail}")
        return json.loads(line)

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        self.proc.wait(timeout=60)


def blocks(args: argparse.Namespace) -> list[tuple[str, str, str, int]]:
    """(sdk, kind, condition, calls) of one round."""
    counts = {
        ("call", "warm"): args.calls, ("call", "cold"): args.cold_calls,
        ("stream", "warm"): args.stream_calls, ("stream", "cold"): args.cold_stream_calls,
        ("long", "warm"): max(1, args.stream_calls // 4),
        ("long", "cold"): max(1, args.cold_stream_calls // 4),
    }  # fmt: skip
    return [
        (sdk, kind, cond, counts[kind, cond]) for sdk in args.sdks for kind in KINDS for cond in CONDITIONS
    ]


def measure(args: argparse.Namespace, names: list[str]) -> tuple[dict, dict, dict]:
    """Per (name, sdk, kind, cond): the mean µs and spans per call of each slice (slice i of every worker
    ran in the same cycle); per name: memory; versions."""
    log_dir = Path(tempfile.mkdtemp(prefix="peers-overhead-"))
    print(f"  starting {len(names)} workers (logs in {log_dir})...", file=sys.stderr, flush=True)
    workers = []
    for name in names:  # one at a time: each warms up while the others wait
        worker = Worker(name, args.processor, args.warmup, log_dir)
        ready = worker.ask()
        worker.versions = ready["versions"]
        workers.append(worker)
    means: dict[tuple[str, str, str, str], list[float]] = {}
    spans: dict[tuple[str, str, str, str], list[float]] = {}
    try:
        for r in range(args.rounds):
            for sdk, kind, cond, n in blocks(args):
                # Each block is cut into slices that visit every worker in turn, the order rotated from
                # slice to slice: the paired values compared below ran seconds apart at most.
                slices = max(1, min(args.slices, n))
                for s in range(slices):
                    size = n // slices + (1 if s < n % slices else 0)
                    shift = (r * slices + s) % len(workers)
                    for worker in workers[shift:] + workers[:shift]:
                        if sdk not in worker.instrumentation.sdks:
                            continue
                        reply = worker.ask({"op": "run", "sdk": sdk, "kind": kind, "cond": cond, "n": size})
                        key = (worker.name, sdk, kind, cond)
                        means.setdefault(key, []).append(reply["ns"] / size / 1000)
                        spans.setdefault(key, []).append(reply["spans"] / size)
            print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        memories = {w.name: w.ask({"op": "memory", "n": args.memory_calls}) for w in workers}
    finally:
        for worker in workers:
            worker.close()
    versions = {w.name: w.versions for w in workers}
    return {"means": means, "spans": spans}, memories, versions


def baseline_of(name: str) -> str:
    return "none" if peer_setup.INSTRUMENTATIONS[name].env == "peers" else "none-legacy"


def deltas(means: dict, names: list[str], sdk: str, kind: str, cond: str) -> dict[str, float]:
    """name -> median over the slices of (name's mean - its environment's baseline mean in that slice)."""
    out = {}
    for name in names:
        own = means.get((name, sdk, kind, cond))
        base = means.get((baseline_of(name), sdk, kind, cond))
        if own and base:
            out[name] = statistics.median(a - b for a, b in zip(own, base, strict=False))
    return out


def report(args: argparse.Namespace, names: list[str], data: dict, memories: dict, versions: dict) -> str:
    means, span_counts = data["means"], data["spans"]
    label = {n: peer_setup.INSTRUMENTATIONS[n].label for n in names}
    peers = [n for n in names if n not in peer_setup.BASELINES and not n.startswith("llmlens")]
    md = args.markdown
    lines: list[str] = []

    def table(head: list[str], rows: list[list[str]]) -> None:
        if md:
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|---|" + "---:|" * (len(head) - 1))
            lines.extend("| " + " | ".join(row) + " |" for row in rows)
        else:
            widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
            lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)))
            lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows)
        lines.append("")

    columns = [(sdk, cond) for sdk in args.sdks for cond in CONDITIONS]
    per_call = {(s, c): deltas(means, names, s, "call", c) for s, c in columns}
    per_stream = {(s, c): deltas(means, names, s, "stream", c) for s, c in columns}
    per_long = {(s, c): deltas(means, names, s, "long", c) for s, c in columns}
    per_chunk = {
        col: {
            n: (per_long[col][n] - per_stream[col][n]) / (LONG_CHUNKS - CONTENT_CHUNKS)
            for n in per_stream[col] if n in per_long[col]
        }
        for col in columns
    }  # fmt: skip

    def fmt(values: dict[str, float], name: str, digits: int = 1) -> str:
        return f"{values[name]:+.{digits}f}" if name in values else "n/a"

    head = ["instrumentation"] + [f"{s} {c}" for s, c in columns]
    lines.append("Baseline (`none`): µs per non-streaming call / per 34-chunk stream, median of the slices")
    lines.append("")
    rows = []
    for base in ("none", "none-legacy"):
        if base not in names:
            continue
        row = [label[base]]
        for s, c in columns:
            call = means.get((base, s, "call", c))
            stream = means.get((base, s, "stream", c))
            row.append(f"{statistics.median(call):.0f} / {statistics.median(stream):.0f}" if call else "n/a")
        rows.append(row)
    table(head, rows)
    lines.append("Δ per call (µs, vs the baseline of the same environment, median of the paired slices)")
    lines.append("")
    shown = [n for n in names if not n.startswith("none")]
    table(head, [[label[n]] + [fmt(per_call[col], n) for col in columns] for n in shown])
    lines.append("Δ per chunk (µs): (Δ 136-chunk stream - Δ 34-chunk stream) / 102")
    lines.append("")
    table(head, [[label[n]] + [fmt(per_chunk[col], n, 2) for col in columns] for n in shown])

    lines.append("Spans per call (non-stream / stream, timed calls) and KiB retained per span (tracemalloc, "
                 f"{args.memory_calls} calls each, spans kept; baseline: per call)")  # fmt: skip
    lines.append("")
    mem_head = ["instrumentation"] + [f"{s} {k}" for s in args.sdks for k in ("spans/call", "KiB/span")]
    mem_rows = []
    for n in names:
        row = [label[n]]
        for s in args.sdks:
            c = span_counts.get((n, s, "call", "warm"))
            st = span_counts.get((n, s, "stream", "warm"))
            row.append(f"{statistics.mean(c):.2f} / {statistics.mean(st):.2f}" if c and st else "n/a")
            kib = []
            for kind in ("call", "stream"):
                m = memories.get(n, {}).get(f"{s}/{kind}")
                if m is None:
                    continue
                per = m["bytes"] / m["spans"] if m["spans"] else m["bytes"]
                kib.append(f"{per / 1024:.2f}")
            row.append(" / ".join(kib) if kib else "n/a")
        mem_rows.append(row)
    table(mem_head, mem_rows)

    # Goals, per environment: its llmlens run against its peers and its floor (same SDKs, same OTel).
    goal_rows = []
    verdicts = []
    for env, ours_name, floor_name in (
        ("peers", "llmlens", "floor"),
        ("legacy", "llmlens-legacy", "floor-legacy"),
    ):
        env_peers = [p for p in peers if peer_setup.INSTRUMENTATIONS[p].env == env]
        for metric, table_ in (("per call", per_call), ("per chunk", per_chunk)):
            for col in columns:
                values = table_[col]
                measured = {p: values[p] for p in env_peers if p in values}
                if ours_name not in values or not measured:
                    continue
                ours = values[ours_name]
                best = min(measured, key=lambda p: measured[p])
                goal = GOAL_CALL_RATIO if metric == "per call" else GOAL_CHUNK_RATIO
                lowest = all(ours < v for v in measured.values())
                # A Δ at or below zero is noise: no ratio can be read from it.
                if ours > 0 and measured[best] > 0:
                    ratio = measured[best] / ours
                    ratio_text = f"{ratio:.1f}x (goal {goal:.0f}x)"
                    ok = lowest and ratio >= goal
                else:
                    ratio_text, ok = "n/a (Δ <= 0: noise)", False
                floor = values.get(floor_name)
                floor_text = "n/a"
                if metric == "per call" and floor is not None:
                    if floor > 0 and ours > 0:
                        floor_ratio = ours / floor
                        floor_text = f"{floor_ratio:.2f}x ({'PASS' if floor_ratio <= GOAL_FLOOR else 'FAIL'})"
                        ok = ok and floor_ratio <= GOAL_FLOOR
                    else:
                        floor_text, ok = "n/a (Δ <= 0: noise)", False
                verdicts.append(ok)
                digits = 1 if metric == "per call" else 2
                goal_rows.append([
                    f"{label[ours_name]}: {col[0]} {col[1]} {metric}", f"{ours:+.{digits}f}",
                    f"{label[best]} {measured[best]:+.{digits}f}",
                    ratio_text, "yes" if lowest else "NO", floor_text,
                    "PASS" if ok else "FAIL",
                ])  # fmt: skip
    lines.append(
        "llmlens against the best peer and the floor of its environment (Δ µs; ratio = best peer's Δ / "
        f"llmlens's Δ; floor: llmlens's Δ / the floor's Δ, goal <= {GOAL_FLOOR:.2f}x)"
    )
    lines.append("")
    table(["row", "llmlens", "best peer", "ratio", "lowest", "vs floor", "result"], goal_rows)

    lines.append("Δ per call of each slice (µs, in order), to see the noise:")
    lines.append("")
    for col in columns:
        for n in shown:
            own = means.get((n, col[0], "call", col[1]))
            base = means.get((baseline_of(n), col[0], "call", col[1]))
            if own and base:
                rounds = ", ".join(f"{a - b:+.0f}" for a, b in zip(own, base, strict=False))
                lines.append(f"- {col[0]} {col[1]} {label[n]}: {rounds}")
    lines.append("")
    lines.append("Versions:")
    for n in names:
        lines.append(f"- {label[n]}: " + ", ".join(f"{k} {v}" for k, v in versions.get(n, {}).items()))
    passed = sum(verdicts)
    lines.append("")
    lines.append(f"goals met in {passed} of {len(verdicts)} rows")
    return "\n".join(lines)


def header(args: argparse.Namespace, argv: list[str]) -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return (
        f"- {peer_setup.tree_label()}, {now:%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.platform()}, "
        f"{platform.python_implementation()} {platform.python_version()}\n"
        f"- command: `python benchmarks/peers_overhead.py {' '.join(argv)}`\n"
        f"- {args.rounds} rounds x {args.calls} warm + {args.cold_calls} cold calls, "
        f"{args.stream_calls} warm + "
        f"{args.cold_stream_calls} cold 34-chunk streams and a quarter as many 136-chunk ones per worker and "
        f"SDK, each block cut into {args.slices} slices; {args.processor} span processor"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--calls", type=int, default=200, help="warm non-streaming calls per round (200)")
    parser.add_argument("--cold-calls", type=int, default=30, help="cold non-streaming calls per round (30)")
    parser.add_argument(
        "--stream-calls",
        type=int,
        default=60,
        help="warm 34-chunk streams per round (60; 136-chunk: a quarter)",
    )
    parser.add_argument(
        "--cold-stream-calls", type=int, default=16, help="cold 34-chunk streams per round (16)"
    )
    parser.add_argument("--slices", type=int, default=4, help="slices per block and round (4)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls per worker at start (100)")
    parser.add_argument("--memory-calls", type=int, default=100, help="calls of each kind under tracemalloc")
    parser.add_argument("--processor", choices=("batch", "simple"), default="batch", help="span processor")
    parser.add_argument("--sdks", default="openai,anthropic", help="comma-separated (openai,anthropic)")
    parser.add_argument("--only", help="comma-separated instrumentations; the baselines are always run")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--json", type=Path, help="also write the raw measurements to this file")
    parser.add_argument("--from-json", type=Path, help="report the measurements of a --json file again")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.processor, args.warmup)
    args.sdks = [s.strip() for s in args.sdks.split(",") if s.strip()]
    if not args.sdks or any(s not in peer_setup.SDKS for s in args.sdks):
        parser.error(f"--sdks: choose among {', '.join(peer_setup.SDKS)}")
    for option in (
        "rounds",
        "slices",
        "calls",
        "cold_calls",
        "stream_calls",
        "cold_stream_calls",
        "memory_calls",
    ):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1")
    names = list(peer_setup.INSTRUMENTATIONS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in peer_setup.INSTRUMENTATIONS]
        if unknown:
            parser.error(f"unknown instrumentation(s): {', '.join(unknown)} (known: {', '.join(names)})")
        envs = {peer_setup.INSTRUMENTATIONS[n].env for n in wanted}
        names = [
            n
            for n in names
            if n in wanted or (n in peer_setup.BASELINES and peer_setup.INSTRUMENTATIONS[n].env in envs)
        ]
    missing = peer_setup.missing_envs(names)
    if missing and not args.from_json:
        parser.error(f"missing virtual environment(s) {', '.join(missing)}: run benchmarks/peers-env first")
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        args.memory_calls = saved.get("memory_calls", args.memory_calls)
        args.sdks = saved.get("sdks", args.sdks)
        data = {k: {tuple(key.split("|")): v for key, v in saved[k].items()} for k in ("means", "spans")}
        print(saved["header"])
        print()
        print(report(args, saved["names"], data, saved["memories"], saved["versions"]))
        return 0
    start = time.perf_counter()
    data, memories, versions = measure(args, names)
    head = f"{header(args, argv)}\n- took {time.perf_counter() - start:.0f} s"
    if args.json:
        raw = {k: {"|".join(key): v for key, v in data[k].items()} for k in ("means", "spans")}
        saved = {
            **raw, "names": names, "memories": memories, "versions": versions, "header": head,
            "memory_calls": args.memory_calls, "sdks": args.sdks,
        }  # fmt: skip
        args.json.write_text(json.dumps(saved, indent=1))
    print(head)
    print()
    print(report(args, names, data, memories, versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
