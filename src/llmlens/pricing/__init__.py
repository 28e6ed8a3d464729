"""Cost of LLM calls in USD, from the price data that ships inside the installed `genai-prices`.

Nothing here touches the network (see `data`). Importing genai-prices takes ~25 ms after
`import openai` and ~130 ms in a bare process (seconds with a cold bytecode cache), so it is loaded in
a background thread started by `instrument()`; a call that ends before the data is loaded is not
priced and is counted as unpriced with the reason `prices_loading`. `ready(timeout)` waits.

The package, by concern:

- `values`: what goes in and out: `TokenUsage`, `Cost`, `CallCost` (a cost, or why there is none) and
  the reason constants;
- `data`: the genai-prices data, loaded in the background, and its lookup;
- `overrides`: the user's own prices (`TokenPrices`, `load_price_table`), imports nothing else of llmlens;
- `rates`: one model's prices as floats, and the arithmetic;
- `book`: `PriceBook`, memoised: overrides, then free local runtimes, then genai-prices;
- `meter`: `CostMeter`, the `llmlens.cost` and `llmlens.cost.unpriced` counters;
- `cli`: `llmlens price MODEL` (not imported here).

Pricing never writes span attributes: `core/telemetry.py` turns a `CallCost` into them.

Example:
    >>> from llmlens import pricing
    >>> book = pricing.PriceBook()
    >>> pricing.ready(10)
    True
    >>> book.cost("openai", "gpt-4o-mini-2024-07-18", pricing.TokenUsage(1000, 200, cache_read_tokens=400))
    Cost(amount=0.00024, currency='USD', price_source='genai-prices 0.2.3', priced_model='gpt-4o-mini')
"""

from __future__ import annotations

from llmlens.pricing.book import FREE_PROVIDERS, PriceBook
from llmlens.pricing.data import GENAI_PRICES_PROVIDERS, load_in_background, load_seconds, ready
from llmlens.pricing.meter import CostMeter
from llmlens.pricing.overrides import PriceTableError, TokenPrices, load_price_table
from llmlens.pricing.values import (
    AMBIGUOUS_MODEL,
    COST_SOURCE_INFERRED,
    COST_SOURCE_LOCAL,
    CURRENCY,
    INVALID_USAGE,
    NO_USAGE,
    PRICES_LOADING,
    PRICES_UNAVAILABLE,
    SOURCE_FREE,
    SOURCE_OVERRIDE,
    UNKNOWN_MODEL,
    UNKNOWN_PROVIDER,
    UNSUPPORTED_UNITS,
    CallCost,
    Cost,
    TokenUsage,
    UsageLike,
)

__all__ = [
    "AMBIGUOUS_MODEL",
    "COST_SOURCE_INFERRED",
    "COST_SOURCE_LOCAL",
    "CURRENCY",
    "FREE_PROVIDERS",
    "GENAI_PRICES_PROVIDERS",
    "INVALID_USAGE",
    "NO_USAGE",
    "PRICES_LOADING",
    "PRICES_UNAVAILABLE",
    "SOURCE_FREE",
    "SOURCE_OVERRIDE",
    "UNKNOWN_MODEL",
    "UNKNOWN_PROVIDER",
    "UNSUPPORTED_UNITS",
    "CallCost",
    "Cost",
    "CostMeter",
    "PriceBook",
    "PriceTableError",
    "TokenPrices",
    "TokenUsage",
    "UsageLike",
    "load_in_background",
    "load_price_table",
    "load_seconds",
    "ready",
]
