"""Query parameters of the pages and the API, checked by the store's own checks (llmlens.store.inputs).

The request-log filters have the names of `llmlens log`'s options: since, until, model, provider,
status, key, operation, stream (yes/no), error, trace; then limit and cursor. A blank value is no
filter. A bad value raises QueryError, whose one line names the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from llmlens.store import inputs
from llmlens.store.queries import Filters, QueryError

FILTER_PARAMS = ("since", "until", "model", "provider", "status", "key", "operation", "stream", "error",
                 "trace")  # fmt: skip
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
YES = ("yes", "true", "1", "on")
NO = ("no", "false", "0", "off")


def text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def filter_text(query: Mapping[str, str]) -> dict[str, str]:
    """The filter parameters that are set, as given (what the page's form shows and its links keep)."""
    return {name: value for name in FILTER_PARAMS if (value := text(query, name)) is not None}


def filters(query: Mapping[str, str]) -> Filters:
    """The request-log Filters of the parameters; QueryError for a bad value."""
    since, until = text(query, "since"), text(query, "until")
    stream = text(query, "stream")
    if stream is not None and stream.lower() not in YES + NO:
        raise QueryError(f"invalid stream {stream!r}; use yes or no")
    trace = text(query, "trace")
    return Filters(
        since_ns=None if since is None else inputs.timestamp(since, "since"),
        until_ns=None if until is None else inputs.timestamp(until, "until"),
        model=text(query, "model"),
        provider=text(query, "provider"),
        status=text(query, "status"),
        api_key_label=text(query, "key"),
        operation=text(query, "operation"),
        stream=None if stream is None else stream.lower() in YES,
        error_text=text(query, "error"),
        trace_id=None if trace is None else inputs.trace_id(trace, "trace"),
    ).validate()


def limit(query: Mapping[str, str]) -> int:
    value = text(query, "limit")
    return DEFAULT_LIMIT if value is None else inputs.count(value, MAX_LIMIT, "limit")


def cursor(query: Mapping[str, str], name: str = "cursor") -> int | None:
    return inputs.cursor(text(query, name), name)


def after(query: Mapping[str, str]) -> int:
    """The `after` id of a live tail (0: from the first row)."""
    value = text(query, "after")
    if value is None or value == "0":
        return 0
    number = inputs.cursor(value, "after")
    return 0 if number is None else number


def choice(query: Mapping[str, str], name: str, choices: Mapping[str, object], default: str) -> str:
    value = text(query, name) or default
    if value not in choices:
        raise QueryError(f"invalid {name} {value!r}; accepted values: {', '.join(choices)}")
    return value
