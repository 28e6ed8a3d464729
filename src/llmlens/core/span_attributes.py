"""A span's end attributes, set without the SDK checking again values llmlens built itself.

`Span.set_attributes` runs every value through `_clean_attribute_value` (a chain of isinstance tests,
an ABC check for sequences) under the attribute dict's lock: a third of the Python calls the proxy
middleware adds to a request. The values of `close_span` are llmlens's own (str, int, float, bool, or
lists of one of those), so when the span is the SDK's and nothing would be cut or dropped, they go into
its attribute dict directly, under the span's lock, as the SDK would leave them. Anything else (another
span class, a value length limit, an attribute count limit that would be reached, a value of another
type, a span already ended) takes the public `set_attributes`, as before.

Example:
    >>> set_end_attributes(span, {"gen_ai.usage.input_tokens": 12, "gen_ai.response.id": "chatcmpl-1"})
"""

from __future__ import annotations

from typing import Any

from opentelemetry.attributes import BoundedAttributes

_PLAIN = frozenset((str, int, float, bool))


def set_end_attributes(span: Any, attributes: dict[str, Any]) -> None:
    """`span.set_attributes(attributes)`; lists in `attributes` become tuples (as the SDK stores them)."""
    try:  # (another SDK version may name its internals otherwise: AttributeError, then the public way)
        bounded = span._attributes
        if type(bounded) is BoundedAttributes and bounded.max_value_len is None and _plain(attributes):
            limit = bounded.maxlen
            if limit is None or len(bounded._dict) + len(attributes) <= limit:
                with span._lock:
                    if span._end_time is None and not bounded._immutable:
                        bounded._dict.update(attributes)  # (an OrderedDict in older SDKs)
                        return
    except AttributeError:
        pass
    span.set_attributes(attributes)  # (it warns about an ended span, as it always has)


def _plain(attributes: dict[str, Any]) -> bool:
    """Whether every value is one the SDK would store unchanged, once lists are tuples (done here)."""
    for key, value in attributes.items():
        kind = type(value)
        if kind in _PLAIN:
            continue
        if kind is list or kind is tuple:
            if not value:
                return False  # (the SDK keeps an empty sequence; rare enough to leave to it)
            first = type(value[0])
            if first not in _PLAIN or any(type(item) is not first for item in value):
                return False
            if kind is list:
                attributes[key] = tuple(value)
            continue
        return False
    return True
