"""What pricing costs per call once a model's price is resolved: at most 5 µs.

    python benchmarks/cost.py [--rounds R] [--calls N] [--markdown]

Every row calls the same code instrumentation runs when a call ends, N times in a loop, R rounds
(the rows interleaved, the order alternating), and takes the median round's µs per call:

- `baseline`: a plain Python function taking the same five arguments and returning None (the loop and
  call overhead every row also pays): the ratios are against it;
- `price_call`: `PriceBook.price_call` for a memoised model, with cached, cache-write and reasoning
  tokens: OpenAI `gpt-4o-mini`; Anthropic `claude-sonnet-4-5` past its 200k tier; a relay llmlens does not
  know (`openai_compatible`) sending `gpt-4o-mini` (inferred from the model);
- `per call, all of it`: `price_call`, the four cost attributes written into the span's attribute dict
  (`core.telemetry.add_cost_attributes`) and the `llmlens.cost` counter (`CostMeter.add`, on an SDK
  MeterProvider): everything pricing adds to a call but the SDK storing the attributes on the span;
- `first lookup`: a new PriceBook's first call of a model (genai-prices matches the name, llmlens
  compiles the price): paid once per (provider, model, service tier); for information, no target.

The target (5 µs) applies to the `price_call` and `per call, all of it` rows. Exit status 1 when one
misses it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmlens import pricing
from llmlens.core.telemetry import add_cost_attributes
from llmlens.text_table import table as text_table
from profiling import command, commit
from store import cpu_model

TARGET_US = 5.0


class Usage:
    """Token counts as an Invocation holds them (slots, plain attributes)."""

    __slots__ = (
        "cache_creation_tokens",
        "cache_read_tokens",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
    )

    def __init__(
        self, input_tokens: int, output_tokens: int, cached: int, written: int, reasoning: int
    ) -> None:
        self.input_tokens, self.output_tokens = input_tokens, output_tokens
        self.cache_read_tokens, self.cache_creation_tokens = cached, written
        self.reasoning_tokens = reasoning


SMALL = Usage(1200, 300, 400, 100, 120)
LONG = Usage(250_000, 2000, 100_000, 10_000, 500)  # past claude-sonnet-4-5's 200k tier


def baseline(provider: str, model: str, request_model: str, usage: Any, tier: Any) -> None:
    return None


def rows(book: pricing.PriceBook, meter: pricing.CostMeter) -> dict[str, Callable[[], Any]]:
    price = book.price_call
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    key = tuple(attributes.items())

    def all_of_it() -> None:
        cost = price("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", SMALL, "default")
        span_attributes: dict[str, Any] = {}
        add_cost_attributes(span_attributes, cost)
        meter.add(cost, attributes, key)  # type: ignore[arg-type]

    return {
        "baseline (a function call)": lambda: baseline("openai", "gpt-4o-mini", "gpt-4o-mini", SMALL, None),
        "price_call: openai gpt-4o-mini": lambda: price(
            "openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", SMALL, "default"
        ),
        "price_call: anthropic, past the 200k tier": lambda: price(
            "anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", LONG, None
        ),
        "price_call: openai_compatible (inferred)": lambda: price(
            "openai_compatible", "gpt-4o-mini", "gpt-4o-mini", SMALL, None
        ),
        "per call, all of it (openai)": all_of_it,
    }


def per_call_us(call: Callable[[], Any], calls: int) -> float:
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(calls):
        call()
    return (clock() - started) / calls / 1000


def first_lookups(models: list[tuple[str, str]]) -> float:
    """Median µs of a fresh PriceBook's first call of a model (the data is loaded; the memo is empty)."""
    times = []
    for provider, model in models:
        book = pricing.PriceBook()
        started = time.perf_counter_ns()
        book.price_call(provider, model, model, SMALL)
        times.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--calls", type=int, default=100_000, help="calls per row and round (default 100000)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (for docs/pricing.md)")
    args = parser.parse_args(argv)
    if not pricing.ready(60):
        print("benchmarks/cost.py: the genai-prices data did not load", file=sys.stderr)
        return 2
    reader = InMemoryMetricReader()
    meter = pricing.CostMeter.for_meter(MeterProvider(metric_readers=[reader]).get_meter("bench"))
    book = pricing.PriceBook()
    cases = rows(book, meter)
    for call in cases.values():  # the first lookup of each model, and warm-up
        per_call_us(call, 1000)
    for name, call in cases.items():
        if name.startswith("price_call"):
            cost = call()
            assert cost is not None and cost.amount, (name, cost)  # priced, not a shortcut
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.rounds):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            samples[name].append(per_call_us(cases[name], args.calls))
    first = first_lookups([("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"),
                           ("gcp.gemini", "gemini-2.5-pro"), ("aws.bedrock", "amazon.nova-pro-v1:0"),
                           ("groq", "llama-3.3-70b-versatile"), ("mistral_ai", "mistral-large-latest"),
                           ("openai_compatible", "gpt-4o-mini")])  # fmt: skip

    base = statistics.median(samples[next(iter(cases))])
    table: list[tuple[str, str, str, str]] = []
    ok = True
    for name, values in samples.items():
        us = statistics.median(values)
        targeted = not name.startswith("baseline")
        passed = us <= TARGET_US
        ok &= passed or not targeted
        verdict = ("PASS" if passed else "FAIL") if targeted else ""
        table.append((name, f"{us:.2f}", f"{us / base:.1f}x", verdict))
    table.append(("first lookup of a model (median of 7)", f"{first:.0f}", f"{first / base:,.0f}x", ""))

    header = [
        f"commit: {commit()}",
        f"date: {_dt.date.today().isoformat()}",
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}; "
        f"python {platform.python_version()}, {pricing.data.version()}",
        f"command: {command(dict(os.environ))}",
        f"each row: {args.rounds} rounds of {args.calls:,} calls, interleaved; the median round's µs a call",
    ]
    titles = ("what", "µs per call", "vs baseline", f"≤ {TARGET_US:g} µs")
    if args.markdown:
        print("\n".join(f"- {line}" for line in header), end="\n\n")
        print("| " + " | ".join(titles) + " |")
        print("|---|---:|---:|---|")
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        print("\n".join(header), end="\n\n")
        print(text_table(list(titles), table, right=[1, 2]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
