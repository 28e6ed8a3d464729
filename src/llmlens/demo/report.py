"""Plain-text tables of recorded spans and metrics, for the demo (and any terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmlens import semconv
from llmlens.text_table import table


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f}"


def _status(span: Any) -> str:
    attributes = span.attributes
    error = attributes.get(semconv.ERROR_TYPE)
    if error:
        return f"ERROR {error}"
    outcome = attributes.get(semconv.LLMLENS_STREAM_OUTCOME)
    code = span.status.status_code.name
    return f"{code} ({outcome})" if outcome and outcome != semconv.OUTCOME_COMPLETED else code


def spans_table(spans: Sequence[Any]) -> str:
    """One row per GenAI span, oldest first."""
    rows = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        a = span.attributes
        model = a.get(semconv.REQUEST_MODEL, "")
        response_model = a.get(semconv.RESPONSE_MODEL)
        if response_model and response_model != model:
            model = f"{model} -> {response_model}"
        tokens_in = a.get(semconv.USAGE_INPUT_TOKENS)
        tokens_out = a.get(semconv.USAGE_OUTPUT_TOKENS)
        extra = [
            f"cached {a[semconv.USAGE_CACHE_READ_INPUT_TOKENS]}"
            if a.get(semconv.USAGE_CACHE_READ_INPUT_TOKENS)
            else "",
            f"reasoning {a[semconv.USAGE_REASONING_OUTPUT_TOKENS]}"
            if a.get(semconv.USAGE_REASONING_OUTPUT_TOKENS)
            else "",
            f"tools {a[semconv.LLMLENS_TOOL_CALL_COUNT]}" if a.get(semconv.LLMLENS_TOOL_CALL_COUNT) else "",
        ]
        duration = (span.end_time - span.start_time) / 1e9 if span.end_time and span.start_time else None
        rows.append(
            [
                a.get(semconv.OPERATION_NAME, span.name),
                a.get(semconv.OPENAI_API_TYPE, ""),
                model,
                a.get(semconv.PROVIDER_NAME, ""),
                "yes" if a.get(semconv.REQUEST_STREAM) else "",
                tokens_in,
                tokens_out,
                " ".join(e for e in extra if e),
                _ms(duration),
                _ms(a.get(semconv.RESPONSE_TIME_TO_FIRST_CHUNK)),
                a.get(semconv.LLMLENS_STREAM_CHUNKS, ""),
                ",".join(a.get(semconv.RESPONSE_FINISH_REASONS, ()) or ()),
                _status(span),
            ]
        )
    headers = ["operation", "api", "model", "provider", "stream", "in", "out", "detail", "ms", "ttfc ms",
               "chunks", "finish", "status"]  # fmt: skip
    return table(headers, rows, right=(5, 6, 8, 9, 10))


def metrics_table(metrics_data: Any) -> str:
    """Count and sum of every llmlens histogram, per metric (all attribute sets added up)."""
    totals: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    if metrics_data is not None:
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    total = totals.setdefault(metric.name, [0, 0.0])
                    units[metric.name] = metric.unit or ""
                    for point in metric.data.data_points:
                        if hasattr(point, "count"):  # histogram
                            total[0] += point.count
                            total[1] += point.sum
                        else:  # counter: its value is the running sum
                            total[0] += 1
                            total[1] += point.value
    rows = [
        [name, units[name], int(count), f"{total:.6f}" if units[name] in ("s", "USD") else int(total)]
        for name, (count, total) in sorted(totals.items())
    ]
    return table(["metric", "unit", "points", "sum"], rows, right=(2, 3))
