"""Sums kept in process and read by an observable instrument at collection: `ObservedTotals`.

The SDK's synchronous `Counter.add` costs ~8 µs a call; adding to a dict under a lock costs ~1 µs, and
an observable counter exports the same cumulative sums. Used by the cost metrics (pricing/meter.py) and
the proxy's active requests (core/server_telemetry.py).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

Key = tuple[tuple[str, Any], ...]  # tuple(attributes.items())
OVERFLOW: Key = (("otel.metric.overflow", True),)  # the attribute set past a cardinality limit


class ObservedTotals:
    """A total per attribute set, reported by one observable counter (or up-down counter).

    Past `limit` attribute sets, new ones are added to the `otel.metric.overflow` set, as the SDK does.

    Example:
        >>> active = ObservedTotals.on(meter, "my.active_requests", "{request}", "...", up_down=True)
        >>> active.add((("gen_ai.operation.name", "chat"),), 1)
    """

    __slots__ = ("_lock", "_totals", "limit")

    def __init__(self, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._totals: dict[Key, Any] = {}
        self.limit = limit

    @classmethod
    def on(
        cls,
        meter: Meter,
        name: str,
        unit: str,
        description: str,
        *,
        up_down: bool = False,
        limit: int | None = None,
    ) -> ObservedTotals:
        """New totals, reported by an observable counter `name` created on `meter`."""
        totals = cls(limit)
        create = meter.create_observable_up_down_counter if up_down else meter.create_observable_counter
        create(name, callbacks=[totals.observe], unit=unit, description=description)
        return totals

    def add(self, key: Key, amount: float) -> None:
        """Add `amount` to the total of the attribute set `key` (`tuple(attributes.items())`)."""
        totals = self._totals
        with self._lock:
            total = totals.get(key)
            if total is not None:
                totals[key] = total + amount
            elif self.limit is None or len(totals) < self.limit:
                totals[key] = amount
            else:  # past the cardinality limit
                totals[OVERFLOW] = totals.get(OVERFLOW, 0) + amount

    def observe(self, options: CallbackOptions | None = None) -> list[Observation]:
        """The totals as observations (the instrument's callback)."""
        from opentelemetry.metrics import Observation

        with self._lock:
            items = list(self._totals.items())
        return [Observation(value, dict(key)) for key, value in items]
