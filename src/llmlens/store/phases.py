"""Phase timings of a proxied request: where its time went, read from the span tree of its trace.

A proxied request's row is the SERVER span of the llmlens proxy (the ASGI middleware or
`llm_request`, both of which set `llmlens.proxy.request_id`). Under it the store keeps the proxy's own
work: `convert.*` spans (`traced_operation`), the upstream leg (the CLIENT span of an instrumented
SDK, `llmlens.upstream=true`) and, under that, the HTTP client span when an HTTP client
instrumentation is on. The phases, in milliseconds:

- parse: from the request's arrival until the proxy had read and decoded it
  (`llmlens.proxy.parse_duration`, set on the SERVER span);
- convert: the `convert` and `convert.*` spans below the request, summed;
- upstream wait: from the upstream call's start to its response headers (the end of its HTTP client
  span), else to its first output chunk (a stream), else to its end (a JSON response, read whole);
- first byte: from the arrival to the first chunk sent to the client (the row's time to first chunk);
- stream: from that first chunk to the last byte sent (the span's end).

A phase the recorded spans cannot time is left out, never guessed: a JSON response has no first
byte or stream phase, a proxy whose upstream client is not instrumented (llm-rosetta's vendored one)
has no upstream wait, and a proxy that times no conversion has no convert phase.

Example:
    >>> detail = get_request(conn, 42)
    >>> [(p.name, round(p.ms)) for p in phase_timings(detail.request, detail.tree) or []]
    [('parse', 0), ('upstream wait', 212), ('first byte', 215), ('stream', 1830)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmlens import semconv

if TYPE_CHECKING:
    from llmlens.store.span_tree import SpanNode

CONVERT = "convert"  # a span named `convert` or `convert.*` times a format conversion
_HTTP_METHOD_KEYS = ("http.request.method", "http.method")  # current and older HTTP conventions


@dataclass(frozen=True)
class Phase:
    """One phase of a proxied request: its name, its length in milliseconds, and how it was measured."""

    name: str
    ms: float
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ms": round(self.ms, 3), "how": self.how}


def is_proxied(request: Mapping[str, Any]) -> bool:
    """True for the row of a request handled by an llmlens proxy (its SERVER span)."""
    attributes = request.get("attributes") or {}
    return request.get("span_kind") == "server" and semconv.LLMLENS_REQUEST_ID in attributes


def phase_timings(request: Mapping[str, Any], tree: Sequence[SpanNode]) -> list[Phase] | None:
    """The phases of a proxied request (a `row_dict` row), from the span tree of its trace.

    None for a request that is not proxied; a list (empty if no phase could be timed) otherwise.
    """
    if not is_proxied(request):
        return None
    node = _find(tree, request["span_id"])
    below = [span for _, span in node.walk()][1:] if node is not None else []
    phases = (measure(request, below) for measure in _MEASURES)
    return [phase for phase in phases if phase is not None and phase.ms >= 0]


def _find(tree: Iterable[SpanNode], span_id: str) -> SpanNode | None:
    for root in tree:
        for _, node in root.walk():
            if node.span_id == span_id:
                return node
    return None


def _ms(seconds: Any) -> float | None:
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return float(seconds) * 1000
    return None


# --- one function per phase: (request row, the spans below it) -> Phase or None ---------------------


def _parse(request: Mapping[str, Any], below: list[SpanNode]) -> Phase | None:
    ms = _ms(request["attributes"].get(semconv.LLMLENS_PARSE_DURATION))
    if ms is None:
        return None
    return Phase("parse", ms, f"arrival to the request read and decoded ({semconv.LLMLENS_PARSE_DURATION})")


def _convert(request: Mapping[str, Any], below: list[SpanNode]) -> Phase | None:
    spans = [s for s in below if s.name == CONVERT or s.name.startswith(CONVERT + ".")]
    if not spans:
        return None
    ms = sum(s.duration_ms for s in spans)
    if len(spans) == 1:
        return Phase("convert", ms, f"the {spans[0].name} span")
    names = ", ".join(sorted({s.name for s in spans}))
    return Phase("convert", ms, f"{len(spans)} conversion spans ({names}), summed")


def _upstream_wait(request: Mapping[str, Any], below: list[SpanNode]) -> Phase | None:
    legs = [s for s in below if s.attributes.get(semconv.LLMLENS_UPSTREAM) is True]
    if not legs:
        return None
    leg = max(legs, key=lambda s: (s.start_ns, s.span_id))  # the last one started gave the answer
    which = f"`{leg.name}`" + (f", the last of {len(legs)} upstream calls" if len(legs) > 1 else "")
    http = [s for _, s in leg.walk() if s is not leg and s.kind == "client" and _is_http(s)]
    if http:  # an HTTP client instrumentation ends its span at the response headers
        answered = max(http, key=lambda s: (s.start_ns, s.span_id))  # retries: the last one answered
        ms = (answered.end_ns - leg.start_ns) / 1e6
        return Phase("upstream wait", ms, f"upstream call start to its response headers ({which}, HTTP span)")
    first_chunk = _ms(leg.attributes.get(semconv.RESPONSE_TIME_TO_FIRST_CHUNK))
    if first_chunk is not None:
        return Phase("upstream wait", first_chunk, f"upstream call start to its first output chunk ({which})")
    if leg.attributes.get(semconv.REQUEST_STREAM):
        return None  # a stream that sent no chunk: its span's end is not when the upstream answered
    return Phase("upstream wait", leg.duration_ms, f"the whole upstream call, response read ({which})")


def _is_http(span: SpanNode) -> bool:
    return any(key in span.attributes for key in _HTTP_METHOD_KEYS)


def _first_byte(request: Mapping[str, Any], below: list[SpanNode]) -> Phase | None:
    ttfc = request.get("ttfc_ms")
    if ttfc is not None and request.get("stream"):
        return Phase("first byte", float(ttfc), "arrival to the first chunk sent to the client")
    ms = _ms(request["attributes"].get(semconv.LLMLENS_RESPONSE_START))
    if ms is None:
        return None
    return Phase(
        "first byte",
        ms,
        f"arrival to the response's status and headers sent ({semconv.LLMLENS_RESPONSE_START})",
    )


def _stream(request: Mapping[str, Any], below: list[SpanNode]) -> Phase | None:
    ttfc = request.get("ttfc_ms")
    if ttfc is None or not request.get("stream"):
        return None
    how = "first chunk sent to the last byte sent (duration - first byte)"
    outcome = request.get("stream_outcome")
    if outcome and outcome != semconv.OUTCOME_COMPLETED:
        how += f"; the stream ended {outcome}"
    return Phase("stream", float(request["duration_ms"]) - float(ttfc), how)


_MEASURES: tuple[Callable[[Mapping[str, Any], list[SpanNode]], Phase | None], ...] = (
    _parse,
    _convert,
    _upstream_wait,
    _first_byte,
    _stream,
)
