"""PriceBook: the price of a call from plain inputs (provider, models, service tier, token counts).

The user's overrides come first, then the local runtimes (free), then genai-prices. After the first
call of a (provider, model, service tier), a price is a dict lookup and a few float operations.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from llmlens.pricing import data
from llmlens.pricing.overrides import Overrides, TokenPrices
from llmlens.pricing.rates import FREE, NEVER, Rates, override_rates
from llmlens.pricing.values import (
    CURRENCY,
    INVALID_USAGE,
    NO_USAGE,
    PRICES_LOADING,
    UNKNOWN_MODEL,
    CallCost,
    Cost,
    UsageLike,
)

_time = time.time
_new = tuple.__new__  # a CallCost without NamedTuple's keyword handling: ~0.1 µs instead of ~0.4
_MEMO_LIMIT = 4096  # (provider, model) pairs remembered; past it the memo starts again

# Local runtimes: no bill per token, so the cost is 0 (an override still wins).
FREE_PROVIDERS = frozenset({"ollama"})

_Key = tuple[str, "str | None", "str | None", "str | None"]


class PriceBook:
    """Prices calls: the user's overrides first, then genai-prices. Memoised per (provider, model).

    Example:
        >>> book = PriceBook({"openai_compatible/my-llama*": TokenPrices(input=0.2, output=0.6)})
        >>> book.cost("openai_compatible", "my-llama-70b", TokenUsage(1_000_000, 0)).amount
        0.2
    """

    def __init__(self, overrides: Mapping[str, TokenPrices] | None = None) -> None:
        self._overrides = Overrides(overrides)
        self._memo: dict[_Key, Rates | str] = {}
        data.load_in_background()

    def price_call(
        self,
        provider: str,
        model: str | None,
        request_model: str | None,
        usage: UsageLike,
        service_tier: str | None = None,
        *,
        usage_invalid: bool = False,
        failed: bool = False,
    ) -> CallCost | None:
        """What a finished call costs, or why it has no cost; None when it is neither.

        `model`: the response model (None when the response named none; the request model is then
        used, and is tried when `model` has no price). `usage_invalid`: a reported count was not a
        token count. `failed`: the call failed before any output arrived, so without usage it was
        not billed and is not counted as unpriced either.
        """
        if usage_invalid:
            return CallCost.unpriced(INVALID_USAGE)
        if usage.input_tokens is None and usage.output_tokens is None:
            return None if failed else CallCost.unpriced(NO_USAGE)
        key = (provider, model or request_model, request_model, service_tier)
        rates = self._memo.get(key)  # rates(), inlined: this runs on every call
        if rates is None or (
            type(rates) is Rates and rates.expires is not NEVER and rates.expires <= _time()
        ):
            rates = self._resolve(key)
        if type(rates) is not Rates:
            return CallCost.unpriced(rates)  # type: ignore[arg-type]
        return _new(CallCost, (rates.amount(usage), CURRENCY, rates.cost_source, rates.source, None))

    def cost(
        self,
        provider: str,
        model: str | None,
        usage: UsageLike,
        *,
        request_model: str | None = None,
        service_tier: str | None = None,
    ) -> Cost | None:
        """The cost of a call, or None when it cannot be priced (`unpriced_reason` says why).

        `model` is the response model when the response named one, else the request model; the
        `request_model` is tried when `model` is unknown. `service_tier` selects a price variant
        (OpenAI's `flex`, `priority`) when genai-prices has one.
        """
        rates = self.rates(provider, model, request_model, service_tier)
        if isinstance(rates, str) or (usage.input_tokens is None and usage.output_tokens is None):
            return None
        return Cost(rates.amount(usage), CURRENCY, rates.source, rates.model, rates.cost_source)

    def unpriced_reason(
        self, provider: str, model: str | None, usage: UsageLike, *, request_model: str | None = None
    ) -> str | None:
        """Why `cost()` returns None for this call (one of the reason constants), or None if it doesn't."""
        if usage.input_tokens is None and usage.output_tokens is None:
            return NO_USAGE
        rates = self.rates(provider, model, request_model)
        return rates if isinstance(rates, str) else None

    def rates(
        self,
        provider: str,
        model: str | None,
        request_model: str | None = None,
        service_tier: str | None = None,
    ) -> Rates | str:
        """The compiled prices for a call, or the reason it has none. ~0.2 µs once memoised."""
        key = (provider, model, request_model, service_tier)
        rates = self._memo.get(key)
        if rates is None or (
            type(rates) is Rates and rates.expires is not NEVER and rates.expires <= _time()
        ):
            rates = self._resolve(key)
        return rates

    def override_key(self, provider: str, name: str) -> str | None:
        """The key of the override entry that prices `provider/name` (lower case), or None."""
        found = self._overrides.find_entry(provider, [name]) if self._overrides else None
        return None if found is None else found[1]

    # --- resolving (once per key) -------------------------------------------------------------------

    def _resolve(self, key: _Key) -> Rates | str:
        provider, model, request_model, service_tier = key
        names = [name for name in (model, request_model) if name]
        if len(names) == 2 and names[0] == names[1]:
            del names[1]
        found = self._overrides.find(provider, names) if self._overrides else None
        result: Rates | str
        if found is not None:
            result = override_rates(found[1], found[0])
        elif provider in FREE_PROVIDERS:
            result = FREE
        elif not names:
            result = UNKNOWN_MODEL
        elif not data.loaded():
            return PRICES_LOADING  # not memoised: priced once the data is there
        elif data.GENAI_PRICES_PROVIDERS.get(provider, provider) is None:
            # A relay llmlens does not know: the price of the model's maker, marked inferred (data.infer).
            result = data.infer(names, service_tier)
        else:
            result = data.lookup(provider, names, service_tier)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = result
        return result
