"""One request: its row, found by id, trace/span, trace or span id, the span tree of its trace and, for
a proxied request, its phase timings (store/phases.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmlens.store import inputs
from llmlens.store.phases import Phase, phase_timings
from llmlens.store.profiles import profile_for_request
from llmlens.store.query_common import fields_dict, request_rows
from llmlens.store.span_tree import SpanNode


@dataclass
class RequestDetail:
    """One request row (every column, attributes parsed), the span tree of its trace and, for a proxied
    request, its phase timings (None for any other request)."""

    request: dict[str, Any]
    trace_id: str
    tree: list[SpanNode]  # the roots, oldest first; the request span sits under its recorded parent
    span_count: int
    phases: list[Phase] | None = None
    # Its profile's listing and summary (store/profiles.py), without the session; None if not profiled.
    profile: dict[str, Any] | None = None

    def spans(self) -> Iterator[tuple[int, SpanNode]]:
        for root in self.tree:
            yield from root.walk()

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)


def get_request(conn: sqlite3.Connection, ref: int | str) -> RequestDetail | None:
    """A request by `id`, by `trace_id/span_id` (or `trace_id:span_id`), by trace id, or by span id.

    A bare trace id picks the trace's outermost request (the first one written if there are several);
    a bare span id is looked up without an index (slow on a very large store). None if not found.
    """
    r = inputs.request_id(ref)
    lookups: list[tuple[str, tuple[Any, ...]]] = []
    if r.row_id is not None:  # (an all-digit span or trace id is tried as a row id first)
        lookups.append(("SELECT * FROM requests WHERE id = ?", (r.row_id,)))
    if r.trace_id is not None and r.span_id is not None:
        lookups.append(("SELECT * FROM requests WHERE trace_id = ? AND span_id = ?", (r.trace_id, r.span_id)))
    elif r.trace_id is not None:
        lookups.append(
            (
                "SELECT * FROM requests WHERE trace_id = ? ORDER BY (parent_span_id IS NOT NULL), id LIMIT 1",
                (r.trace_id,),
            )
        )
    elif r.span_id is not None:
        lookups.append(("SELECT * FROM requests WHERE span_id = ? ORDER BY id LIMIT 1", (r.span_id,)))
    rows: list[dict[str, Any]] = []
    for sql, params in lookups:
        rows = request_rows(conn.execute(sql, params))
        if rows:
            break
    if not rows:
        return None
    request = rows[0]
    trace_id = request["trace_id"]
    nodes: dict[str, SpanNode] = {}
    for values in conn.execute(
        "SELECT span_id, parent_span_id, name, kind, start_ns, end_ns, status, attributes "
        "FROM spans WHERE trace_id = ?",
        (trace_id,),
    ):
        try:
            attributes = json.loads(values[7] or "{}")
        except ValueError:
            attributes = {}
        nodes[values[0]] = SpanNode(*values[:7], attributes)  # type: ignore[arg-type]
    for row in request_rows(conn.execute("SELECT * FROM requests WHERE trace_id = ?", (trace_id,))):
        attributes = dict(row["attributes"])
        nodes[row["span_id"]] = SpanNode(
            row["span_id"], row["parent_span_id"], row["span_name"], row["span_kind"], row["start_ns"],
            row["end_ns"], row["status"], attributes, request_id=row["id"],
        )  # fmt: skip
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = nodes.get(node.parent_span_id) if node.parent_span_id else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.start_ns, n.span_id))
    roots.sort(key=lambda n: (n.start_ns, n.span_id))
    profile = None
    if request.get("profile_id"):
        profile = profile_for_request(conn, trace_id, request["span_id"])
    return RequestDetail(request, trace_id, roots, len(nodes), phase_timings(request, roots), profile)
