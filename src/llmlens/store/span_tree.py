"""SpanNode: one span of a request's trace, as `llmlens show` draws the tree (store/request_detail.py)
and the phase timings read it (store/phases.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llmlens.store.query_common import fields_dict, iso


@dataclass
class SpanNode:
    """One span of the request's trace; `request_id` is set when the span is a request row."""

    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any]
    request_id: int | None = None
    children: list[SpanNode] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def walk(self, depth: int = 0) -> Iterator[tuple[int, SpanNode]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    def to_dict(self) -> dict[str, Any]:
        result = fields_dict(self)
        result["duration_ms"] = self.duration_ms
        result["start_time"] = iso(self.start_ns)
        return result
