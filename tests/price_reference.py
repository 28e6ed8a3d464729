"""genai-prices' own calculation of a call's cost: what the cost tests compare llmlens' with.

Its `Usage` counts input and output as totals (the cached and cache-write tokens are part of the input,
reasoning part of the output), as llmlens' spans do; `usage` is a `llmlens.pricing.TokenUsage` or a dict
with the same field names. Its deprecation warnings (for old model names) are not the tests' business.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens")


def genai_prices_decimal(usage: Any, model: str, provider_id: str) -> Decimal:
    from genai_prices import Usage, calc_price

    get = usage.get if isinstance(usage, dict) else lambda name: getattr(usage, name)
    counts = dict(zip(_FIELDS, (get(name) for name in _FIELDS), strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = calc_price(
            Usage(
                input_tokens=counts["input_tokens"],
                output_tokens=counts["output_tokens"],
                cache_read_tokens=counts["cache_read_tokens"],
                cache_write_tokens=counts["cache_creation_tokens"],
                output_reasoning_tokens=counts["reasoning_tokens"],
            ),
            model,
            provider_id=provider_id,
        )
    return Decimal(result.total_price)


def genai_prices_total(usage: Any, model: str, provider_id: str) -> float:
    return float(genai_prices_decimal(usage, model, provider_id))
