"""`llmlens price MODEL`: the price entry a call would use, where it came from, and its cost worked out.

It prices through the same `PriceBook` as instrumentation (overrides from `LLMLENS_PRICES` or `--prices`,
then the free local runtimes, then the installed genai-prices data), so what it prints is what a span
of that call gets.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

COMMAND = "price"
_DEFAULT_TOKENS = 1_000_000
_KINDS = {
    "input": "input, not cached",
    "cache_read": "cache read",
    "cache_write": "cache write",
    "output": "output, not reasoning",
    "reasoning": "reasoning",
    "request": "per request",
}
_OVERRIDE_EXAMPLE = '{"openai/gpt-4o-mini": {"input": 0.15, "output": 0.6}}'


def _count(text: str) -> int:
    if not text.replace("_", "").replace(",", "").isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not valid; accepted values: a whole number of tokens >= 0"
        )
    return int(text.replace("_", "").replace(",", ""))


def register(commands: Any) -> None:
    """Add `price` to the `llmlens` parser."""
    price = commands.add_parser(
        COMMAND,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="the price a model's calls get: its entry, where it came from, and a cost worked out",
        description=(
            "Show the price llmlens uses for MODEL: the entry it matched (and how), where the price\n"
            "came from (your overrides, or the genai-prices data installed with llmlens: nothing is\n"
            "fetched), and the cost of the given token counts line by line (each kind of token times\n"
            "its price, the long-context tier when one applies, the total in USD). The counts are those\n"
            "of a span: --input counts every input token, cached ones included, and --output every\n"
            "output token, reasoning included. With no counts, 1,000,000 input and 1,000,000 output\n"
            "tokens, so the lines show the prices per million. Exit status 2 when MODEL has no price.\n\n"
            "examples:\n"
            "  llmlens price gpt-4o-mini\n"
            "  llmlens price claude-sonnet-4-5 --provider anthropic --input 250000 --output 2000\n"
            "  llmlens price gpt-4o-mini --provider openai_compatible   # a relay llmlens does not know\n"
            "  llmlens price my-llama --provider openai_compatible --prices prices.toml --json"
        ),
    )  # fmt: skip
    price.add_argument("model", metavar="MODEL", help="the model name a call sends or its response names")
    price.add_argument(
        "--provider",
        help=(
            "gen_ai.provider.name of the call (openai, anthropic, aws.bedrock, gcp.gemini, groq, "
            "mistral_ai, openai_compatible, ...) or a genai-prices provider id; default: the model's "
            "maker (found as for a relay), priced as a call to it; openai_compatible shows what a relay "
            "llmlens does not know gets (an inferred cost)"
        ),
    )
    price.add_argument("--input", type=_count, metavar="N", help="input tokens, cached ones included")
    price.add_argument("--output", type=_count, metavar="N", help="output tokens, reasoning included")
    price.add_argument(
        "--cached", type=_count, default=0, metavar="N", help="input tokens read from the cache"
    )
    price.add_argument(
        "--cache-write", type=_count, default=0, metavar="N", help="input tokens written to the cache"
    )
    price.add_argument("--reasoning", type=_count, default=0, metavar="N", help="reasoning (thinking) tokens")
    price.add_argument(
        "--service-tier", metavar="TIER", help="the response's service tier (OpenAI flex, priority, ...)"
    )
    price.add_argument(
        "--prices",
        metavar="FILE",
        help="a JSON or TOML price table to use instead of $LLMLENS_PRICES (see docs/pricing.md)",
    )
    price.add_argument("--json", action="store_true", help="one JSON object instead of text")


def run(args: argparse.Namespace, env_prices: Callable[[], tuple[dict[str, Any], str | None]]) -> int:
    """`llmlens price`; `env_prices()` gives LLMLENS_PRICES's table and how to name where it came from
    (the `llmlens` command reads the settings: pricing sits below them)."""
    from llmlens import pricing
    from llmlens.pricing import data

    try:
        overrides, where = _overrides(args.prices, env_prices)
    except ValueError as error:
        return _fail(str(error))
    usage, problem = _usage(args)
    if problem:
        return _fail(problem)
    # The load's warning (no genai-prices) would be a second line: the one below says it for the command.
    logging.getLogger("llmlens").setLevel(logging.ERROR)
    book = pricing.PriceBook(overrides)
    pricing.ready(60)
    provider = args.provider or "openai_compatible"
    rates = book.rates(provider, args.model, None, args.service_tier)
    if isinstance(rates, str):
        return _fail(_unpriced_line(rates, provider, args.model, bool(args.provider)))
    if not args.provider and rates.cost_source == pricing.COST_SOURCE_INFERRED:
        # No provider named: show what a call to the model's maker itself costs.
        maker = _provider_name(rates.provider)
        direct = book.rates(maker, args.model, None, args.service_tier)
        if not isinstance(direct, str):
            provider, rates = maker, direct
    override = book.override_key(provider, args.model)
    report = _report(args, provider, rates, usage, override, where, data.provider_id(provider))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_text(report))
    return 0


def _provider_name(list_id: str) -> str:
    """The gen_ai.provider.name of a genai-prices provider id (`aws` -> `aws.bedrock`)."""
    from llmlens.pricing import GENAI_PRICES_PROVIDERS

    return next((ours for ours, theirs in GENAI_PRICES_PROVIDERS.items() if theirs == list_id), list_id)


def _overrides(
    path: str | None, env_prices: Callable[[], tuple[dict[str, Any], str | None]]
) -> tuple[dict[str, Any], str | None]:
    """The price table and where it came from (`--prices FILE`, else `LLMLENS_PRICES`)."""
    from llmlens.pricing import load_price_table

    if path:
        return load_price_table(path, "--prices"), f"--prices {path}"
    return env_prices()  # a bad LLMLENS_PRICES: SettingsError, a ValueError


def _usage(args: argparse.Namespace) -> tuple[Any, str | None]:
    from llmlens.pricing import TokenUsage

    given = args.input is not None or args.output is not None
    input_tokens = args.input if args.input is not None else (0 if given else _DEFAULT_TOKENS)
    output_tokens = args.output if args.output is not None else (0 if given else _DEFAULT_TOKENS)
    if args.cached + args.cache_write > input_tokens:
        return None, (
            f"--cached {args.cached} and --cache-write {args.cache_write} add up to more than --input "
            f"{input_tokens}; accepted values: --input counts every input token, cached ones included"
        )
    if args.reasoning > output_tokens:
        return None, (
            f"--reasoning {args.reasoning} is more than --output {output_tokens}; accepted values: "
            "--output counts every output token, reasoning included"
        )
    usage = TokenUsage(input_tokens, output_tokens, args.cached, args.cache_write, args.reasoning)
    return usage, None


def _unpriced_line(reason: str, provider: str, model: str, provider_given: bool) -> str:
    from llmlens import pricing
    from llmlens.pricing import data

    add = f"add a price with LLMLENS_PRICES or --prices, e.g. {_OVERRIDE_EXAMPLE}"
    asked = f"{model!r}" + (f" ({provider})" if provider_given else "")
    if reason in (pricing.PRICES_UNAVAILABLE, pricing.PRICES_LOADING):
        why = "no price data: genai-prices is not installed (it needs Python 3.11+) or could not be loaded"
        return f"no price for {asked}: {why}; only your own prices apply: {add}"
    if reason == pricing.UNKNOWN_PROVIDER:
        return f"no price for {asked}: genai-prices has no provider {provider!r}; {add}"
    if reason == pricing.UNSUPPORTED_UNITS:
        return f"no price for {asked}: it is priced by characters, seconds or pages, not by tokens"
    if reason == pricing.AMBIGUOUS_MODEL:
        return (
            f"no price for {asked}: no single maker prices it, and the hosts that list it do not agree "
            f"on one price (ambiguous_model); name the provider with --provider, or {add}"
        )
    close = difflib.get_close_matches(model.lower(), [m.lower() for m in data.model_ids(provider)], n=3)
    hint = f"; close names: {', '.join(close)}" if close else ""
    return f"no price for {asked}: the price data has no such model (unknown_model){hint}; or {add}"


def _report(
    args: argparse.Namespace,
    provider: str,
    rates: Any,
    usage: Any,
    override: str | None,
    where: str | None,
    list_id: str | None,
) -> dict[str, Any]:
    from llmlens import pricing

    if override is not None:
        matched, origin = f"override {override!r}", f"your prices: {where}"
    elif rates.source == pricing.SOURCE_FREE:
        matched, origin = f"{provider} is a local runtime: free", "llmlens (no price per token)"
    else:
        exact = rates.model.lower() == args.model.lower()
        matched = "the exact model id" if exact else "genai-prices' name rules"
        if rates.cost_source == pricing.COST_SOURCE_INFERRED:
            matched += (
                f"; the provider is unknown ({provider}), so the price is {rates.provider}'s, inferred "
                "from the model name"
            )
        elif list_id is not None and rates.provider and rates.provider != list_id:
            matched += f"; {list_id} falls back to {rates.provider}'s price list"
        origin = f"{rates.source.split(' (')[0]}, the data installed with it (nothing is fetched)"
    start, _ = rates.tier_for(usage.input_tokens or 0)
    tiers = [{"above_input_tokens": s, **_prices(t)} for s, t in reversed(rates.tiers)]
    lines = rates.lines(usage)
    return {
        "model": args.model,
        "provider": provider,
        "price_entry": f"{rates.provider}/{rates.model}" if rates.provider else rates.model,
        "matched": matched,
        "price_source": rates.source,
        "from": origin,
        "cost_source": rates.cost_source,
        "service_tier": args.service_tier,
        "usage": usage._asdict(),
        "prices_per_million": _prices(rates),
        "tiers": tiers,
        "tier_applied": start,
        "lines": [
            {
                "kind": line.kind,
                "tokens": line.tokens,
                "usd_per_million": line.per_million,
                "usd": line.amount,
            }
            for line in lines
        ],
        "total_usd": rates.amount(usage),
        "currency": pricing.CURRENCY,
    }


def _prices(rates: Any) -> dict[str, float]:
    prices = {
        "input": rates.input,
        "cache_read": rates.cache_read,
        "cache_write": rates.cache_write,
        "output": rates.output,
        "reasoning": rates.reasoning,
    }
    if rates.request:
        prices["request"] = rates.request * 1_000_000
    return prices


def _money(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".") if value else "0"


def _text(report: dict[str, Any]) -> str:
    from llmlens.text_table import table

    entry = report["price_entry"]  # none for a local runtime: it is free, not priced by an entry
    matched = f"{entry}  (matched by {report['matched']})" if entry else f"none  ({report['matched']})"
    head = [
        ("model", report["model"]),
        ("provider", report["provider"] + (f", tier {tier}" if (tier := report["service_tier"]) else "")),
        ("price entry", matched),
        ("prices from", report["from"]),
        ("cost source", f"{report['cost_source']}  (gen_ai.usage.cost.source)"),
        ("price source", f"{report['price_source']}  (llmlens.cost.price_source)"),
    ]  # fmt: skip
    out = [f"{label:<13}{value}" for label, value in head]
    if report["tiers"]:
        applied = report["tier_applied"]
        input_tokens = report["usage"]["input_tokens"]
        out.append("")
        base = "" if applied is not None else "  <- applies"
        base_prices = _per_million(report["prices_per_million"])
        out.append(f"{'tiers':<13}up to {_first_start(report):,} input tokens: {base_prices}{base}")
        for tier in report["tiers"]:
            mark = "  <- applies" if tier["above_input_tokens"] == applied else ""
            prices = {k: v for k, v in tier.items() if k != "above_input_tokens"}
            out.append(f"{'':<13}above {tier['above_input_tokens']:,}: {_per_million(prices)}{mark}")
        if applied is not None:
            out.append(f"{'':<13}input {input_tokens:,} > {applied:,}: every token pays that tier's prices")
    rows = [
        [_KINDS[line["kind"]], f"{line['tokens']:,}", _money(line["usd_per_million"]), f"{line['usd']:.8f}"]
        for line in report["lines"]
    ]
    rows.append(["total", "", "", f"{report['total_usd']:.8f} USD"])
    out += ["", table(["tokens", "count", "USD per 1M", "USD"], rows, right=[1, 2, 3])]
    return "\n".join(out)  # fmt: skip


def _first_start(report: dict[str, Any]) -> int:
    return min(t["above_input_tokens"] for t in report["tiers"])


def _per_million(prices: dict[str, float]) -> str:
    names = {"cache_read": "cache read", "cache_write": "cache write"}
    return ", ".join(f"{names.get(k, k)} {_money(v)}" for k, v in prices.items()) + " per 1M"


def _fail(message: str) -> int:
    print(f"llmlens: {message}", file=sys.stderr)
    return 2
