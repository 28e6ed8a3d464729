"""Model names as metric attribute values, with a budget: the guard on the metrics' cardinality.

A span can carry any model name a caller sends (capped in length, core/limits.py), but every distinct
value of a metric attribute is a series kept in memory until the process ends, here, in the collector
and in Prometheus. A proxy's clients choose the model name; one client looping over random names would
otherwise grow every metric without bound. So a process gives its first `limit` distinct model names
their own series and records every later one as `OTHER_MODELS` (one warning, the first time). Names are
normalised first (surrounding whitespace dropped), so `" gpt-4o"` and `"gpt-4o"` are one series.

The other metric attributes are bounded by construction: operation and provider names come from
llmlens' own tables, `error.type` from exception classes or an upstream's error code, and routes, raw
paths, tool names and ids, request ids and API key labels are never metric attributes.

Example:
    >>> labels = ModelLabels(limit=2)
    >>> labels("gpt-4o "), labels("claude-sonnet-4"), labels("random-123")
    ('gpt-4o', 'claude-sonnet-4', '_OTHER')
"""

from __future__ import annotations

import logging
import threading
from typing import Any

OTHER_MODELS = "_OTHER"  # the value of every model name past the budget

_log = logging.getLogger("llmlens")


class ModelLabels:
    """The metric attribute value of a model name: normalised, and `OTHER_MODELS` past the budget."""

    __slots__ = ("_lock", "_warned", "known", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.known: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self, model: Any) -> Any:
        if type(model) is not str:  # None (no model) stays absent; a wrong type is the caller's value
            return model
        name = model.strip()
        if name in self.known:
            return name
        with self._lock:
            if name in self.known or len(self.known) < self.limit:
                self.known.add(name)
                return name
            warn, self._warned = not self._warned, True
        if warn:
            _log.warning(
                "llmlens: more than %d model names seen; later ones are recorded in metrics as %s "
                "(spans and the store keep the real name; raise LLMLENS_METRICS_MAX_MODELS to keep more)",
                self.limit, OTHER_MODELS,
            )  # fmt: skip
        return OTHER_MODELS
