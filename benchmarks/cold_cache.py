"""What a non-streaming call costs when the CPU caches were just filled by other work.

    python benchmarks/cold_cache.py [--rounds R] [--calls N]

`overhead.py` times calls back to back: the SDK's and llmlens' code and data stay in the caches from
one call to the next. A real application does other work between LLM calls, and so does a stream
between its own start and end (3 ms of SDK parsing for 37 chunks). This script times the same
non-streaming calls as `overhead.py` (openai and anthropic, same handlers and providers, `sdk` and
`llmlens` modes, rounds alternating the order) twice: back to back ("warm"), and each right after
about 10 ms of unrelated work (a JSON round trip of a few MB, untimed: "cold"). It prints, per SDK and
condition, the median µs per call of each mode and llmlens' Δ.

What it shows: cold, the SDK's own call costs about twice as much, and so does llmlens' Δ. That is why
a stream's fixed part (its start and end, 3 ms apart) costs more than a whole warm non-streaming call,
and why `overhead.py` measures the per-chunk cost as a slope between two stream lengths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import overhead
from llmlens import Instrumentor

# Untimed work between "cold" calls: a few MB of dicts through the json module (about 10 ms).
_FILLER = [{f"k{i}": list(range(20)), "s": "x" * 50} for i in range(3000)]


def fill_caches() -> None:
    json.loads(json.dumps(_FILLER))


def clients() -> dict[str, Callable[[], Any]]:
    handler, _chunks = overhead.build_handler()
    claude_handler, _events = overhead.build_anthropic_handler()
    openai_client = openai.OpenAI(
        api_key="sk-bench", base_url="http://127.0.0.1:9/v1", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )  # fmt: skip
    anthropic_client = anthropic.Anthropic(
        api_key="sk-ant-bench", base_url="http://127.0.0.1:9", max_retries=0, open_telemetry=False,
        http_client=httpx2.Client(transport=httpx2.MockTransport(claude_handler)),
    )  # fmt: skip
    return {
        "openai": lambda: openai_client.chat.completions.create(
            model=overhead.MODEL, messages=overhead.MESSAGES
        ),
        "anthropic": lambda: anthropic_client.messages.create(
            model=overhead.CLAUDE, max_tokens=256, messages=overhead.CLAUDE_MESSAGES
        ),
    }


def measure(
    call: Callable[[], Any], rounds: int, calls: int, tracer_provider: Any, meter_provider: Any
) -> dict:
    """Per (mode, condition): every timed call's ns."""
    timings: dict[tuple[str, str], list[int]] = {
        (mode, cond): [] for mode in ("sdk", "llmlens") for cond in ("warm", "cold")
    }
    clock = time.perf_counter_ns
    for _ in range(50):
        call()
    for r in range(rounds):
        for mode in ("sdk", "llmlens") if r % 2 else ("llmlens", "sdk"):
            if mode == "llmlens":
                Instrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
            try:
                for cond in ("warm", "cold"):
                    for _ in range(3):
                        call()
                    for _ in range(calls):
                        if cond == "cold":
                            fill_caches()
                        start = clock()
                        call()
                        timings[mode, cond].append(clock() - start)
            finally:
                if mode == "llmlens":
                    Instrumentor().uninstrument()
            tracer_provider.force_flush()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rounds", type=int, default=12, help="rounds, alternating the mode order (default 12)"
    )
    parser.add_argument("--calls", type=int, default=30, help="timed calls per round, mode and condition")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be >= 1")
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(overhead.DiscardingExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    start = time.perf_counter()
    fill_caches()
    filler_ms = (time.perf_counter() - start) * 1000
    print(f"untimed work before each cold call: {filler_ms:.1f} ms", file=sys.stderr)
    print("| SDK | condition | sdk µs/call | llmlens µs/call | Δ µs |")
    print("|---|---|---:|---:|---:|")
    for name, call in clients().items():
        print(f"  measuring {name}...", file=sys.stderr, flush=True)
        timings = measure(call, args.rounds, args.calls, tracer_provider, meter_provider)
        for cond in ("warm", "cold"):
            sdk = statistics.median(timings["sdk", cond]) / 1000
            instrumented = statistics.median(timings["llmlens", cond]) / 1000
            print(f"| {name} | {cond} | {sdk:.1f} | {instrumented:.1f} | {instrumented - sdk:+.1f} |")
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
