"""The calculation: one model's prices as floats, and the cost of a call's tokens at those prices."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmlens.pricing.overrides import TokenPrices
from llmlens.pricing.values import COST_SOURCE_LOCAL, SOURCE_FREE, SOURCE_OVERRIDE, UsageLike

NEVER = math.inf  # `expires` of a price that does not change with time (compared with `is`: cheap)


@dataclass(eq=False, slots=True)
class Rates:
    """One model's prices as floats (USD per million tokens; `request` in USD per call).

    Cache and reasoning rates are always set: a model without a cache-read price pays the input price
    for cached tokens, exactly as genai-prices charges them, so the arithmetic has no branches.
    """

    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float
    request: float = 0.0
    source: str = SOURCE_OVERRIDE  # llmlens.cost.price_source
    model: str = ""  # the price entry used
    provider: str = ""  # the genai-prices provider whose list holds that entry ("" for an override)
    cost_source: str = COST_SOURCE_LOCAL  # gen_ai.usage.cost.source: "local" or "inferred_from_model"
    # (start, rates) from the highest start down: all tokens pay a tier's rates once the input
    # exceeds its start (the "cliff" model of genai-prices, Anthropic and Google).
    tiers: tuple[tuple[int, Rates], ...] = field(default=())
    expires: float = NEVER  # epoch seconds when a dated or time-of-day price may change

    def amount(self, usage: UsageLike) -> float:
        """USD for `usage`. Cached tokens pay the cache price and not also the input price."""
        input_tokens = usage.input_tokens or 0
        rates = self
        for start, tier in self.tiers:
            if input_tokens > start:
                rates = tier
                break
        cache_read = usage.cache_read_tokens or 0
        cache_write = usage.cache_creation_tokens or 0
        reasoning = usage.reasoning_tokens or 0
        plain_input = input_tokens - cache_read - cache_write
        plain_output = (usage.output_tokens or 0) - reasoning
        per_million = (
            (plain_input if plain_input > 0 else 0) * rates.input
            + cache_read * rates.cache_read
            + cache_write * rates.cache_write
            + (plain_output if plain_output > 0 else 0) * rates.output
            + reasoning * rates.reasoning
        )
        return per_million / 1_000_000 + rates.request

    def tier_for(self, input_tokens: int) -> tuple[int | None, Rates]:
        """(the start of the tier `input_tokens` falls in, or None for the base prices; its rates)."""
        for start, tier in self.tiers:
            if input_tokens > start:
                return start, tier
        return None, self

    def lines(self, usage: UsageLike) -> list[CostLine]:
        """`amount(usage)` worked out: one line per token kind (and per request), in the order
        `amount` adds them. `llmlens price` prints these; their sum is `amount(usage)`."""
        input_tokens = usage.input_tokens or 0
        _, rates = self.tier_for(input_tokens)
        cache_read = usage.cache_read_tokens or 0
        cache_write = usage.cache_creation_tokens or 0
        reasoning = usage.reasoning_tokens or 0
        counts = (
            ("input", max(input_tokens - cache_read - cache_write, 0), rates.input),
            ("cache_read", cache_read, rates.cache_read),
            ("cache_write", cache_write, rates.cache_write),
            ("output", max((usage.output_tokens or 0) - reasoning, 0), rates.output),
            ("reasoning", reasoning, rates.reasoning),
        )
        result = [
            CostLine(kind, n, per_million, n * per_million / 1_000_000) for kind, n, per_million in counts
        ]
        if rates.request:
            result.append(CostLine("request", 1, rates.request * 1_000_000, rates.request))
        return result


@dataclass(frozen=True)
class CostLine:
    """One term of a cost: `tokens` of one kind at `per_million` USD per million tokens is `amount` USD.
    For the per-request price, `tokens` is 1 and `per_million` is the price of a million requests."""

    kind: str  # input (not cached), cache_read, cache_write, output (not reasoning), reasoning, request
    tokens: int
    per_million: float
    amount: float


def override_rates(prices: TokenPrices, model: str) -> Rates:
    """A user's prices for `model`: reasoning pays the output price, cache the input price unless set."""
    return Rates(
        prices.input,
        prices.output,
        prices.input if prices.cache_read is None else prices.cache_read,
        prices.input if prices.cache_write is None else prices.cache_write,
        prices.output,
        model=model,
    )


FREE = Rates(0.0, 0.0, 0.0, 0.0, 0.0, source=SOURCE_FREE)
