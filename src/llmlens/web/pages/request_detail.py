"""Request detail: every column and attribute of one request, the waterfall of its trace, its phases
(a proxied request), its captured content (as text, never as HTML) and its profile.

`load` is `get_request` (`/api/requests/{ref}` is its `to_dict()`); `render` draws it. The waterfall is a
table with one row per span of the trace, indented by depth, each with an SVG bar placed on the
trace's time line.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from llmlens import semconv
from llmlens.store import formats, queries
from llmlens.web.html import Markup, join, pretty_json_or_text, tag
from llmlens.web.layout import Ctx, definition_list
from llmlens.web.tables import table

CONTENT_ATTRIBUTES = (
    ("input messages", semconv.INPUT_MESSAGES),
    ("output messages", semconv.OUTPUT_MESSAGES),
    ("system instructions", semconv.SYSTEM_INSTRUCTIONS),
    ("tool definitions", semconv.TOOL_DEFINITIONS),
)
_CONTENT_KEYS = frozenset(key for _, key in CONTENT_ATTRIBUTES)
BAR_WIDTH = 1000  # the viewBox width of a waterfall bar
MAX_DEPTH_CLASS = 12  # indentation classes depth-0 .. depth-12 (deeper spans share the last)


def load(conn: sqlite3.Connection, ref: str) -> dict[str, Any] | None:
    detail = queries.get_request(conn, ref)
    return None if detail is None else detail.to_dict()


def _summary(r: dict[str, Any], ctx: Ctx) -> Markup:
    server = r["server_address"] or ""
    if server and r["server_port"]:
        server += f":{r['server_port']}"
    stream = ""
    if r["stream"]:
        stream = f"yes, {formats.count(r['chunk_count'])} chunks, {r['stream_outcome'] or 'no outcome'}"
    kinds = (("in", "input_tokens"), ("out", "output_tokens"), ("cache read", "cache_read_tokens"),
             ("cache write", "cache_write_tokens"), ("reasoning", "reasoning_tokens"))  # fmt: skip
    tokens = [f"{label} {formats.count(r[key])}" for label, key in kinds if r[key] is not None]
    copy = tag(
        "button", "copy", type="button", id="copy-trace-id", class_="copy", data_copy_target="trace-id"
    )
    same_trace = tag("a", "requests of this trace", href=ctx.url("requests", {"trace": r["trace_id"]}),
                     id="trace-requests")  # fmt: skip
    trace = tag("span", tag("code", r["trace_id"], id="trace-id"), copy, same_trace)
    rows: list[tuple[str, Any]] = [
        ("request", r["id"]),
        ("trace", trace),
        ("span", tag("code", r["span_id"])),
        ("parent span", tag("code", r["parent_span_id"]) if r["parent_span_id"] else "none"),
        ("time", tag("time", formats.local_time(r["start_ns"], millis=True), datetime=r["start_time"])),
        ("duration", formats.duration(r["duration_ms"])),
        ("span name", r["span_name"]),
        ("kind", r["span_kind"]),
        ("operation", r["operation"] or ""),
        ("provider", r["provider"] or ""),
        ("server", server),
        ("model", formats.model_text(r)),
        ("api", r["api"] or ""),
        ("status", tag("span", formats.status_text(r), class_=f"status status-{r['status']}")),
        ("error", tag("span", r["error_message"], class_="error-message") if r["error_message"] else ""),
        ("http status", r["http_status"] if r["http_status"] is not None else ""),
        ("stream", stream),
        ("first chunk", formats.duration(r["ttfc_ms"])),
        ("tokens", ", ".join(tokens) or "not reported"),
        ("cost", formats.request_cost(r)),
        ("finish", ", ".join(r["finish_reasons"])),
        ("response id", r["response_id"] or ""),
        ("api key", r["api_key_label"] or ""),
        ("client", r["client_ip"] or ""),
        ("formats", " -> ".join(f for f in (r["source_format"], r["target_format"]) if f)),
        ("service", r["service_name"] or ""),
    ]  # fmt: skip
    return definition_list([(label, value) for label, value in rows if value not in ("", None)],
                           "request-summary")  # fmt: skip


def _attributes(attributes: dict[str, Any]) -> Markup:
    rows = [[tag("code", key), tag("code", value if isinstance(value, str) else formats.dumps(value))]
            for key, value in sorted(attributes.items()) if key not in _CONTENT_KEYS]  # fmt: skip
    return tag("section", tag("h2", "attributes"),
               table("request-attributes", ["attribute", "value"], rows, empty="no other attributes"),
               id="attributes")  # fmt: skip


def _content(attributes: dict[str, Any]) -> Markup | None:
    blocks = []
    for label, key in CONTENT_ATTRIBUTES:
        if key in attributes:
            blocks.append(tag("h3", label, tag("code", key, class_="attribute-name")))
            blocks.append(tag("pre", pretty_json_or_text(attributes[key]), class_="content",
                              data_attribute=key))  # fmt: skip
    if not blocks:
        return None
    return tag("section", tag("h2", "captured content"), blocks, id="request-content")


def _waterfall(data: dict[str, Any], ctx: Ctx) -> Markup:
    spans: list[tuple[int, dict[str, Any]]] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        spans.append((depth, node))
        for child in node["children"]:
            walk(child, depth + 1)

    for root in data["tree"]:
        walk(root, 0)
    if not spans:
        return Markup("")
    start = min(node["start_ns"] for _, node in spans)
    end = max(node["end_ns"] for _, node in spans)
    total = max(end - start, 1)
    this = data["request"]["id"]
    rows = []
    for depth, node in spans:
        x = (node["start_ns"] - start) / total * BAR_WIDTH
        width = max((node["end_ns"] - node["start_ns"]) / total * BAR_WIDTH, 1.0)
        kind = "this" if node["request_id"] == this else ("request" if node["request_id"] else "span")
        bar = tag("svg", tag("rect", tag("title", f"{node['name']}: {formats.duration(node['duration_ms'])}"),
                             x=f"{x:.2f}", y=0, width=f"{width:.2f}", height=10,
                             class_=f"bar bar-{kind} bar-status-{node['status']}"),
                  viewBox=f"0 0 {BAR_WIDTH} 10", preserveAspectRatio="none", class_="waterfall-bar",
                  xmlns="http://www.w3.org/2000/svg")  # fmt: skip
        name: Any = node["name"]
        if node["request_id"] is not None and node["request_id"] != this:
            name = tag("a", node["name"], href=ctx.url(f"requests/{node['request_id']}"))
        rows.append(tag(
            "tr",
            tag("td", tag("span", name, class_="span-name"), class_=f"depth-{min(depth, MAX_DEPTH_CLASS)}"),
            tag("td", node["kind"]), tag("td", node["status"], class_=f"status status-{node['status']}"),
            tag("td", "+" + formats.duration((node["start_ns"] - start) / 1e6) if node["start_ns"] > start
                else "+0 ms", class_="num"),
            tag("td", formats.duration(node["duration_ms"]), class_="num"),
            tag("td", bar, class_="bar-cell"),
            data_span_id=node["span_id"], data_request_id=node["request_id"], class_=f"span span-{kind}",
        ))  # fmt: skip
    head = tag("thead", tag("tr", [tag("th", h, scope="col") for h in
                                   ("span", "kind", "status", "start", "duration", "timeline")]))  # fmt: skip
    note = f"{data['span_count']} spans recorded for this trace, {formats.duration(total / 1e6)} in all"
    return tag("section", tag("h2", "trace"), tag("p", note, class_="note"),
               tag("table", head, tag("tbody", rows), id="request-waterfall", class_="data waterfall"),
               id="trace")  # fmt: skip


def _phases(phases: list[dict[str, Any]] | None) -> Markup | None:
    if phases is None:
        return None
    rows = [[p["name"], formats.duration(p["ms"]), p["how"]] for p in phases]
    return tag("section", tag("h2", "phases"),
               table("request-phases", ["phase", "time", "how measured"], rows, numeric=(1,),
                     empty="none that the recorded spans can time"),
               id="phases")  # fmt: skip


def _profile(profile: dict[str, Any] | None, ctx: Ctx) -> Markup | None:
    if profile is None:
        return None
    pid = profile["id"]
    lines = tag("pre", "\n".join(formats.profile_summary_lines(profile)), id="profile-summary")
    links = tag("p", tag("a", "open the profile", href=ctx.url(f"profiles/{pid}"), id="profile-open"), " ",
                tag("a", "speedscope file", href=ctx.url(f"profiles/{pid}/speedscope.json"),
                    id="profile-speedscope", download=f"llmlens-profile-{pid}.speedscope.json"))  # fmt: skip
    return tag("section", tag("h2", "profile"), lines, links, id="request-profile")


def render(data: dict[str, Any], ctx: Ctx) -> Markup:
    r = data["request"]
    return join((
        _summary(r, ctx),
        _waterfall(data, ctx),
        _phases(data["phases"]),
        _profile(data["profile"], ctx),
        _content(r["attributes"]),
        _attributes(r["attributes"]),
    ))  # fmt: skip
