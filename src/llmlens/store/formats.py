"""Rendering for the store commands: numbers and times for people, tables, span trees, JSON and CSV.

Terminal output uses local time; JSON and CSV keep nanosecond integers and UTC ISO strings.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import IO, Any

from llmlens.text_table import table

__all__ = [
    "EXPORT_COLUMNS",
    "active_table",
    "bytes_",
    "cost",
    "count",
    "dumps",
    "duration",
    "local_time",
    "model_text",
    "log_table",
    "pct",
    "phase_lines",
    "request_cost",
    "status_text",
    "table",
    "total_cost",
    "tree_lines",
    "write_csv",
    "write_jsonl",
]

NS = 1_000_000_000


def local_time(ns: int | None, millis: bool = False) -> str:
    if ns is None:
        return ""
    moment = datetime.fromtimestamp(ns / NS).astimezone()
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}" if millis else text


def duration(ms: float | None) -> str:
    """845 ms, 2.31 s, 4.2 min."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return ""
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def cost(usd: float | None) -> str:
    if usd is None:
        return ""
    if usd == 0:
        return "$0"
    if usd >= 0.01:
        return f"${usd:,.2f}" if usd >= 100 else f"${usd:.4f}"
    return f"${usd:.2e}"  # a single short call costs fractions of a cent: keep it readable


# gen_ai.usage.cost.source of a cost priced at the model maker's prices because the provider was a relay
# llmlens does not know (llmlens.pricing.COST_SOURCE_INFERRED; the store does not import pricing).
_COST_SOURCE = "gen_ai.usage.cost.source"
_INFERRED = "inferred_from_model"


def request_cost(row: dict[str, Any]) -> str:
    """One request's cost, or "not priced" (no price data, an unknown model, no usage): never $0.
    An inferred cost (a relay llmlens does not know) says so and names the price it used."""
    if row.get("cost_usd") is None:
        return "not priced"
    attributes = row.get("attributes") or {}
    if attributes.get(_COST_SOURCE) == _INFERRED:
        price = attributes.get("llmlens.cost.price_source") or "genai-prices"
        return f"{cost(row['cost_usd'])}, inferred from the model name (unknown provider; {price})"
    return cost(row["cost_usd"])


def total_cost(usd: float | None, unpriced: int, requests: int) -> str:
    """A sum of costs that says what it leaves out: "not priced" when no request had a cost but some
    cost something unknown (no price data, an unknown model), never $0; "$0.0120 (3 not priced)" when
    some had none. Requests that failed before any output are not billed: "$0" when they are all."""
    if not requests:
        return ""
    if usd is None:
        return "not priced" if unpriced else "$0"
    return f"{cost(usd)} ({count(unpriced)} not priced)" if unpriced > 0 else cost(usd)


def cost_cell(row: dict[str, Any]) -> str:
    """A request row's cost for a table: `$2.40e-04`, or `$2.40e-04 inferred` for an inferred one."""
    text = cost(row.get("cost_usd"))
    if text and (row.get("attributes") or {}).get(_COST_SOURCE) == _INFERRED:
        return f"{text} inferred"
    return text


def pct(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}%"


def bytes_(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def status_text(row: dict[str, Any]) -> str:
    """ok / error RateLimitError (429) / unset (closed)."""
    status = row.get("status") or ""
    if row.get("is_error"):
        detail = row.get("error_type") or ""
        if row.get("http_status"):
            detail = f"{detail} ({row['http_status']})".strip()
        return f"error {detail}".strip()
    outcome = row.get("stream_outcome")
    if outcome and outcome != "completed":
        return f"{status} ({outcome})"
    return status


def model_text(row: dict[str, Any]) -> str:
    request, response = row.get("request_model") or "", row.get("response_model") or ""
    if response and request and response != request:
        return f"{request} -> {response}"
    return response or request


LOG_HEADERS = ["id", "time", "provider", "model", "operation", "stream", "status", "duration", "ttfc",
               "in", "out", "cost", "key", "profile"]  # fmt: skip
LOG_RIGHT = (0, 7, 8, 9, 10, 11)


def log_cells(row: dict[str, Any]) -> list[str]:
    return [
        str(row["id"]),
        local_time(row.get("start_ns")),
        row.get("provider") or "",
        model_text(row),
        row.get("operation") or "",
        "yes" if row.get("stream") else "",
        status_text(row),
        duration(row.get("duration_ms")),
        duration(row.get("ttfc_ms")),
        count(row.get("input_tokens")),
        count(row.get("output_tokens")),
        cost_cell(row),
        row.get("api_key_label") or "",
        str(row.get("profile_id") or ""),  # `llmlens profile show ID` opens it
    ]


def log_table(rows: Sequence[dict[str, Any]]) -> str:
    return table(LOG_HEADERS, [log_cells(r) for r in rows], right=LOG_RIGHT)


class LogLines:
    """Fixed-width request-log lines, for `--follow` (rows arrive after the header is printed)."""

    MIN = (6, 19, 10, 24, 9, 6, 10, 9, 7, 6, 6, 8, 8, 7)

    def __init__(self, first_rows: Sequence[dict[str, Any]] = ()) -> None:
        widths = [max(len(h), m) for h, m in zip(LOG_HEADERS, self.MIN, strict=True)]
        for row in first_rows:
            for i, cell in enumerate(log_cells(row)):
                widths[i] = max(widths[i], min(len(cell), 40))
        self.widths = widths

    def _line(self, cells: Sequence[str]) -> str:
        out = []
        for i, (cell, width) in enumerate(zip(cells, self.widths, strict=True)):
            cell = cell if len(cell) <= width else cell[: width - 1] + "~"
            out.append(cell.rjust(width) if i in LOG_RIGHT else cell.ljust(width))
        return "  ".join(out).rstrip()

    def header(self) -> str:
        return self._line(LOG_HEADERS) + "\n" + "  ".join("-" * w for w in self.widths)

    def line(self, row: dict[str, Any]) -> str:
        return self._line(log_cells(row))


ACTIVE_HEADERS = ["started", "elapsed", "pid", "provider", "model", "operation", "stream", "chunks",
                  "first chunk", "route or server"]  # fmt: skip


def active_table(requests: Sequence[Any]) -> str:
    """Requests in flight (`llmlens.store.queries.ActiveRequest`), as `llmlens log --active` prints them."""
    rows = []
    for r in requests:
        streamed = r.stream and r.chunks is not None
        rows.append([
            local_time(r.start_ns, millis=True), duration(r.elapsed_ms), str(r.pid), r.provider or "",
            r.request_model or "", r.operation or "", "yes" if r.stream else "",
            count(r.chunks) if streamed else "", duration(r.ttfc_ms) if streamed else "",
            r.route or r.server_address or "",
        ])  # fmt: skip
    return table(ACTIVE_HEADERS, rows, right=(1, 2, 7, 8))


def tree_lines(detail: Any) -> list[str]:
    """The span tree of a RequestDetail, one line per span, drawn with box characters."""
    nodes: list[tuple[str, Any]] = []

    def walk(node: Any, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        nodes.append((prefix + branch, node))
        child_prefix = prefix if root else prefix + ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            walk(child, child_prefix, i == len(node.children) - 1, False)

    for root in detail.tree:
        walk(root, "", True, True)
    if not nodes:
        return []
    start = min(node.start_ns for _, node in nodes)
    rows = []
    for prefix, node in nodes:
        name = prefix + node.name
        if node.request_id is not None:
            marker = "  <- this request" if node.request_id == detail.request["id"] else ""
            name += f"  [request {node.request_id}]{marker}"
        rows.append(
            [
                name,
                node.kind,
                "+" + (duration((node.start_ns - start) / 1e6) if node.start_ns > start else "0 ms"),
                duration(node.duration_ms),
                node.status,
            ]
        )
    return table(["span", "kind", "start", "duration", "status"], rows, right=(2, 3)).splitlines()


def phase_lines(phases: Sequence[Any]) -> list[str]:
    """The phase timings of a proxied request (store/phases.py `Phase`s), one line each."""
    if not phases:
        return []
    rows = [[phase.name, duration(phase.ms), phase.how] for phase in phases]
    return table(["phase", "time", "how measured"], rows, right=(1,)).splitlines()


# --- export ----------------------------------------------------------------------------------------

# Every column of `requests`, then the derived ones of `query_common.row_dict`.
EXPORT_COLUMNS: tuple[str, ...] = (
    "id", "trace_id", "span_id", "parent_span_id", "start_ns", "end_ns", "start_time", "end_time",
    "duration_ms", "span_name", "span_kind", "operation", "provider", "request_model", "response_model",
    "model", "api", "server_address", "server_port", "stream", "status", "is_error", "error_type",
    "error_message", "http_status", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "ttfc_ms", "chunk_count", "stream_outcome",
    "finish_reasons", "response_id", "api_key_label", "client_ip", "source_format", "target_format",
    "service_name", "profile_id", "attributes",
)  # fmt: skip


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str))
        out.write("\n")
        n += 1
    return n


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str], columns: Sequence[str] = EXPORT_COLUMNS) -> int:
    writer = csv.writer(out)
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
        n += 1
    return n


# --- profiles (llmlens.profiling) -------------------------------------------------------------------


def profile_summary_lines(profile: dict[str, Any], top: int = 5) -> list[str]:
    """A few lines: what was profiled, how long, and where the time went in the user's own code."""
    summary = profile.get("summary") or {}
    duration = summary.get("duration_ms", profile.get("duration_ms") or 0)
    samples = summary.get("sample_count", profile.get("sample_count") or 0)
    lines = [
        f"{profile.get('reason', '?')} profile {profile.get('id')}: {duration:.1f} ms, {samples} samples,"
        f" CPU {summary.get('cpu_ms', 0):.1f} ms"
    ]
    packages = summary.get("by_package") or []
    if packages:
        shares = ", ".join(f"{p['package']} {p.get('share', 0) * 100:.0f}%" for p in packages[:top])
        lines.append(f"time by package (innermost frame of each sample): {shares}")
    frames = summary.get("top_frames") or []
    if not frames:
        lines.append("no samples in your own code (all the time was in libraries or waiting)")
        return lines
    lines.append("time by your own code (the innermost frame of yours on each sample's stack):")
    for frame in frames[:top]:
        where = frame.get("file") or ""
        if frame.get("line"):
            where += f":{frame['line']}"
        share, ms = frame.get("share", 0) * 100, frame.get("ms", 0)
        lines.append(f"  {share:5.1f}%  {ms:9.1f} ms  {frame.get('function')}  {where}")
    return lines


def profile_open_hint(profile_id: Any, db: str | None = None) -> str:
    """The command that opens the profile."""
    where = f" --db {db}" if db else ""
    return (
        f"llmlens profile show {profile_id}{where}  (add --format html --output profile.html for a browser,"
        " --format speedscope --output profile.json for speedscope.app)"
    )
