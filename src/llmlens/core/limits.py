"""Limits on what a caller (or an upstream response) can make llmlens record.

A proxy's client chooses the model name, a response carries its own id and finish reasons, and each
of these becomes a span name, an attribute, a metric attribute and a store column. `cap()` keeps them
at `IDENTIFIER_MAX` characters (a longer value keeps its first 253 and ends in `...`); `cap_text()` does
the same for free-form request metadata (a user agent) at `TEXT_MAX`. `valid_token_count()` is the one
check a usage count passes before it is recorded, priced or stored (docs/configuration.md, "Limits").
"""

from __future__ import annotations

from typing import Any

IDENTIFIER_MAX = 256  # model, operation and provider names, response ids, finish reasons, labels
TEXT_MAX = 1024  # user agents and other free-form request metadata
FINISH_REASONS_MAX = 64  # finish reasons kept per call (one per choice)
# The exception event of a failed call: an SDK error's message may quote the whole error body.
EXCEPTION_MESSAGE_MAX = TEXT_MAX
STACKTRACE_MAX = 16 * 1024  # its end is kept: the failing call and the message
# More tokens than any call has used: a count above this is a provider bug, not usage.
TOKENS_MAX = 10**12


def cap(value: Any, limit: int = IDENTIFIER_MAX) -> Any:
    """`value` cut to `limit` characters if it is a longer string; anything else unchanged."""
    if type(value) is str and len(value) > limit:
        return value[: limit - 3] + "..."
    return value


def cap_text(value: Any) -> Any:
    return cap(value, TEXT_MAX)


def cap_all(values: list[Any]) -> list[Any]:
    """A list of identifiers (finish reasons): at most FINISH_REASONS_MAX, each capped."""
    if len(values) > FINISH_REASONS_MAX:
        values = values[:FINISH_REASONS_MAX]
    for value in values:
        if type(value) is str and len(value) > IDENTIFIER_MAX:
            return [cap(v) for v in values]
    return values


def valid_token_count(value: Any) -> int | None:
    """`value` as a token count, or None when it is not one: negative, not a whole number (a bool, a
    string, 1.5, NaN) or above TOKENS_MAX. A whole float (12.0) counts as its int."""
    if type(value) is int:
        return value if 0 <= value <= TOKENS_MAX else None
    if type(value) is float and value.is_integer() and 0 <= value <= TOKENS_MAX:
        return int(value)
    return None
