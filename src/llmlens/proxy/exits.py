"""How a proxied request ends, for the ASGI middleware and `llm_request(...)` alike.

Each request's exits go through one `core.streams.StreamState` (the exit table is in core/streams.py):
its `on_end` hands the response reader's findings to the invocation, and `settle` decides what a
request that ran to its end really was.
"""

from __future__ import annotations

from collections.abc import Callable

from llmlens import semconv
from llmlens.core.server_telemetry import ServerInvocation
from llmlens.core.streams import StreamState


def request_exits(inv: ServerInvocation, end_reader: Callable[[], None]) -> StreamState:
    """The StreamState through which every exit of one proxied request goes."""

    def settle(outcome: str | None) -> str | None:
        return settle_outcome(inv, outcome)

    return StreamState(inv, _no_chunk, end_reader, settle)


def settle_outcome(inv: ServerInvocation, outcome: str | None) -> str | None:
    """The outcome of a request whose response went out whole (`completed`, or None for a plain JSON
    response): an HTTP error status wins, then an error the stream carried. Other exits stand."""
    if outcome not in (None, semconv.OUTCOME_COMPLETED):
        return outcome
    status = inv.status_code or 0
    if status >= 400 and inv.failure is None:
        inv.failure = str(status)
    if not inv.stream:
        return outcome
    if status >= 400:
        return semconv.OUTCOME_ERROR_RESPONSE
    if inv.failure is not None:
        return semconv.OUTCOME_UPSTREAM_ERROR  # an error event in a stream that had started
    return semconv.OUTCOME_COMPLETED


def _no_chunk(chunk: object) -> None:
    return None  # a proxied response's chunks are read by the format's stream reader, not here
