"""The cost metrics: `llmlens.cost` (USD) and `llmlens.cost.unpriced` (calls), both monotonic counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmlens import semconv
from llmlens.observed import ObservedTotals
from llmlens.pricing.values import CallCost

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

_SERIES_LIMIT = 2000  # attribute sets per cost metric, the SDK's default cardinality limit


class CostMeter:
    """`llmlens.cost` (USD) and `llmlens.cost.unpriced` (calls), both monotonic counters.

    The SDK's synchronous `Counter.add` costs ~8 µs a call; we add to in-process totals instead (~1 µs)
    and report them through observable counters, which export the same cumulative sums. One CostMeter
    per meter, so instrumenting again with the same meter provider keeps adding to the same series.

    Example:
        >>> meter_costs = CostMeter.for_meter(meter)
        >>> meter_costs.add(CallCost(0.0012, "USD", "local", "override"), {"gen_ai.provider.name": "openai"})
    """

    _by_meter: Any = None  # WeakKeyDictionary[Meter, CostMeter], created on first use

    def __init__(self, meter: Meter) -> None:
        self._cost = ObservedTotals.on(
            meter,
            semconv.METRIC_LLMLENS_COST,
            "USD",
            "Cost of GenAI operations, computed locally from token usage and prices",
            limit=_SERIES_LIMIT,
        )
        self._unpriced = ObservedTotals.on(
            meter,
            semconv.METRIC_LLMLENS_COST_UNPRICED,
            "{call}",
            "GenAI operations that could not be priced, by reason",
            limit=_SERIES_LIMIT,
        )

    @classmethod
    def for_meter(cls, meter: Meter) -> CostMeter:
        # An observable counter registered twice on one meter keeps its first callbacks, so a second
        # CostMeter there would never be read. (The API's proxy meter, used before a global provider is
        # set, is a new object per get_meter(): re-instrumenting before that still splits the totals.)
        import weakref

        if cls._by_meter is None:
            cls._by_meter = weakref.WeakKeyDictionary()
        try:
            found: CostMeter | None = cls._by_meter.get(meter)
        except TypeError:  # a meter that cannot be weakly referenced
            return cls(meter)
        if found is None:
            found = cls._by_meter[meter] = cls(meter)
        return found

    def add(self, cost: CallCost, attributes: dict[str, Any], key: tuple[Any, ...] | None = None) -> None:
        """Add a priced call's amount, or count an unpriced call under its reason.

        `key`: `tuple(attributes.items())`, when the caller keeps it with the attributes.
        """
        if cost.amount is None:
            reason = (semconv.LLMLENS_COST_UNPRICED_REASON, cost.unpriced_reason)
            self._unpriced.add((*(key or attributes.items()), reason), 1)
        else:
            self._cost.add(key if key is not None else tuple(attributes.items()), cost.amount)
