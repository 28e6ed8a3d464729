"""What pricing takes and gives: token counts in, a cost (or the reason there is none) out.

Plain values with no OpenTelemetry in them: `core/telemetry.py` turns a `CallCost` into span
attributes and metric points.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

CURRENCY = "USD"
SOURCE_OVERRIDE = "override"
SOURCE_FREE = "free"
# How a cost was arrived at (gen_ai.usage.cost.source): worked out here from tokens and the provider's
# prices ("local", the proposal's value), or from the prices of the model's maker because the provider is
# a relay llmlens does not know (`openai_compatible`): see PriceBook and docs/pricing.md.
COST_SOURCE_LOCAL = "local"
COST_SOURCE_INFERRED = "inferred_from_model"

# Why a call has no cost: the `llmlens.cost.unpriced_reason` attribute of `llmlens.cost.unpriced`.
PRICES_LOADING = "prices_loading"  # the call ended before the price data was loaded
PRICES_UNAVAILABLE = "prices_unavailable"  # genai-prices could not be imported
NO_USAGE = "no_usage"  # the response reported no token counts (e.g. a stream without usage)
UNKNOWN_PROVIDER = "unknown_provider"  # no price list for this gen_ai.provider.name (openai_compatible)
UNKNOWN_MODEL = "unknown_model"  # the provider's price list has no such model
# A relay's model (openai_compatible) that no single maker claims and that hosts price differently.
AMBIGUOUS_MODEL = "ambiguous_model"
UNSUPPORTED_UNITS = "unsupported_units"  # the model is priced by characters, seconds, ..., not tokens
# A reported count was not a token count (llmlens.usage.invalid): a price from the rest would be wrong.
INVALID_USAGE = "invalid_usage"


class UsageLike(Protocol):
    """Token counts as our spans have them (an `Invocation` is one).

    `input_tokens` includes cached tokens (read and written) and `output_tokens` includes reasoning
    tokens, for every provider: provider modules add Anthropic's separate cache counts to the input and
    Gemini's thoughts to the output before the span is written.
    """

    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def cache_read_tokens(self) -> int | None: ...
    @property
    def cache_creation_tokens(self) -> int | None: ...
    @property
    def reasoning_tokens(self) -> int | None: ...


class TokenUsage(NamedTuple):
    """Token counts of one call; see `UsageLike` for what each includes."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None  # cache writes
    reasoning_tokens: int | None = None


class Cost(NamedTuple):
    """The cost of one call, as `PriceBook.cost` gives it."""

    amount: float
    currency: str
    price_source: str  # "genai-prices <version>", "override" or "free"
    priced_model: str  # the price entry used, e.g. "gpt-4o-mini" for "gpt-4o-mini-2024-07-18"
    cost_source: str = COST_SOURCE_LOCAL  # "local", or "inferred_from_model" for a relay's call


class CallCost(NamedTuple):
    """What pricing says about one finished call: its cost, or why it has none.

    Priced: `amount`, `currency`, `source` and `price_source` are set and `unpriced_reason` is None.
    Unpriced: only `unpriced_reason` is set (one of the reason constants above). A tuple, not a frozen
    dataclass: one is made per priced call, and a frozen dataclass takes ~2 µs to build, a tuple ~0.2.

    Example:
        >>> CallCost(0.00024, "USD", "local", "genai-prices 0.2.3").priced
        True
        >>> CallCost.unpriced(UNKNOWN_MODEL).unpriced_reason
        'unknown_model'
    """

    amount: float | None = None
    currency: str | None = None
    source: str | None = None  # gen_ai.usage.cost.source: "local" or "inferred_from_model"
    price_source: str | None = None  # llmlens.cost.price_source: "genai-prices <version>", "override", "free"
    unpriced_reason: str | None = None

    @property
    def priced(self) -> bool:
        return self.amount is not None

    @staticmethod
    def unpriced(reason: str) -> CallCost:
        """The (shared) value for a call without a cost for `reason`."""
        found = _UNPRICED.get(reason)
        if found is None:
            found = _UNPRICED[reason] = CallCost(unpriced_reason=reason)
        return found


_UNPRICED: dict[str, CallCost] = {}
