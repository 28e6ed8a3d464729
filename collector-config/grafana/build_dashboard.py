"""Writes dashboards/llmlens.json, the Grafana dashboard of llmlens's Prometheus series.

    python collector-config/grafana/build_dashboard.py        # rewrites dashboards/llmlens.json

The queries are written once here rather than by hand in the JSON because each one that reads a
GenAI client metric must work under both of llmlens's metric-name settings: today's names
(`gen_ai_client_operation_duration_seconds`, `llmlens_usage_tokens_total`, ...) and the newest ones
(`OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`: `gen_ai_client_inference_duration_seconds`,
`gen_ai_client_inference_usage_input_tokens_total`, ...), and under `/dup`, where both are emitted, count
nothing twice. `either()` does that: both sides aggregated to the same labels, joined by PromQL `or`,
which keeps a series of the right side only where the left has none with the same labels.
tests/test_dashboard.py checks that the file is this script's output and runs every query against a
real Prometheus under each setting.
"""

from __future__ import annotations

import json
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "llmlens.json"

FILTER = 'job=~"$job", gen_ai_request_model=~"$model"'
RATE = "$__rate_interval"
RANGE = "$__range"
ERRORS = ', error_type!=""'
# Call durations: the newest names split inference and embeddings; today's name holds both (and, under
# every setting, the operations that are neither, such as count_tokens).
NEWEST_DURATION = "gen_ai_client_(inference|embeddings)_duration_seconds"
TODAYS_DURATION = "gen_ai_client_operation_duration_seconds"
TIME_TO_FIRST_CHUNK = (
    "gen_ai_client_inference_time_to_first_chunk_seconds",
    "gen_ai_client_operation_time_to_first_chunk_seconds",
)
TIME_PER_CHUNK = (
    "gen_ai_client_inference_time_per_output_chunk_seconds",
    "gen_ai_client_operation_time_per_output_chunk_seconds",
)
# llmlens_usage_tokens_total's gen_ai_token_type -> the newest names' counter.
TOKEN_TYPES = {
    "input": "gen_ai_client_inference_usage_input_tokens_total",
    "output": "gen_ai_client_inference_usage_output_tokens_total",
    "cache_read": "gen_ai_client_inference_usage_cache_read_input_tokens_total",
    "cache_write": "gen_ai_client_inference_usage_cache_write_input_tokens_total",
    "reasoning": "gen_ai_client_inference_usage_reasoning_output_tokens_total",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def either(newest: str, todays: str) -> str:
    """The newest names' result, and today's where the newest have no series with the same labels."""
    return f"{newest} or {todays}"


def selector(name: str, extra: str = "") -> str:
    """A series selector for a metric name or, with a regex group in it, a name pattern."""
    if "(" in name:
        return f'{{__name__=~"{name}", {FILTER}{extra}}}'
    return f"{name}{{{FILTER}{extra}}}"


def calls(by: str, function: str = "rate", window: str = RATE, extra: str = "") -> str:
    """Calls (or errors, with `extra`) per `by`; `by` holds the operation so that under the newest names
    the operations still on today's name (count_tokens) are added, not hidden."""
    return either(
        f"sum by ({by}) ({function}({selector(NEWEST_DURATION + '_count', extra)}[{window}]))",
        f"sum by ({by}) ({function}({selector(TODAYS_DURATION + '_count', extra)}[{window}]))",
    )


def quantile(q: float, newest: str, todays: str, by: str = "") -> str:
    """A percentile over every operation: buckets by operation from either generation, then merged."""
    outer = ", ".join(label for label in ("le", by) if label)
    inner = f"{outer}, gen_ai_operation_name"
    return (
        f"histogram_quantile({q}, sum by ({outer}) ("
        + either(
            f"sum by ({inner}) (rate({selector(newest + '_bucket')}[{RATE}]))",
            f"sum by ({inner}) (rate({selector(todays + '_bucket')}[{RATE}]))",
        )
        + "))"
    )


def tokens(token_type: str, by: str = "", function: str = "rate", window: str = RATE) -> str:
    grouping = f" by ({by})" if by else ""
    todays = selector("llmlens_usage_tokens_total", f', gen_ai_token_type="{token_type}"')
    return either(
        f"sum{grouping} ({function}({selector(TOKEN_TYPES[token_type])}[{window}]))",
        f"sum{grouping} ({function}({todays}[{window}]))",
    )


def server_quantile(q: float, name: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({selector(name + '_bucket')}[{RATE}])))"


def percentiles(make: object, *names: str) -> list[tuple[str, str]]:
    return [(make(q, *names), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)]  # type: ignore[operator]


class Board:
    """Panels laid out on Grafana's 24-column grid, ids in order."""

    def __init__(self) -> None:
        self.panels: list[dict[str, object]] = []

    def row(self, title: str, y: int) -> None:
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
                "panels": [],
            }
        )

    def panel(
        self,
        title: str,
        kind: str,
        queries: list[tuple[str, str]],
        grid: tuple[int, int, int, int],
        unit: str,
        description: str = "",
    ) -> None:
        x, y, w, h = grid
        instant = kind in ("stat", "bargauge")
        panel: dict[str, object] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [
                {
                    "refId": chr(ord("A") + number),
                    "datasource": DATASOURCE,
                    "expr": expr,
                    "legendFormat": legend,
                    **({"instant": True, "range": False} if instant else {}),
                }
                for number, (expr, legend) in enumerate(queries)
            ],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        }
        if kind == "timeseries":
            panel["fieldConfig"] = {
                "defaults": {
                    "unit": unit,
                    "custom": {"drawStyle": "line", "fillOpacity": 10, "showPoints": "never"},
                },
                "overrides": [],
            }
            panel["options"] = {
                "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        else:
            reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
            if kind == "stat":
                panel["options"] = {"reduceOptions": reduce, "colorMode": "value", "graphMode": "none"}
            else:
                panel["options"] = {
                    "reduceOptions": reduce,
                    "orientation": "horizontal",
                    "displayMode": "gradient",
                    "showUnfilled": True,
                }
        self.panels.append(panel)


def panels() -> list[dict[str, object]]:
    board = Board()
    by_call = "gen_ai_operation_name, gen_ai_request_model"
    by_error = f"{by_call}, error_type"
    cost = selector("llmlens_cost_USD_total")

    board.row("LLM calls", 0)
    board.panel(
        "Calls", "stat", [(f"sum({calls(by_call, 'increase', RANGE)})", "calls")], (0, 1, 4, 4), "short",
        "Calls in the time range, every operation (chat, embeddings, ...).",
    )  # fmt: skip
    board.panel(
        "Error rate",
        "stat",
        [
            (
                f"sum({calls(by_error, 'increase', RANGE, ERRORS)})"
                f" / sum({calls(by_call, 'increase', RANGE)})",
                "errors",
            )
        ],
        (4, 1, 4, 4),
        "percentunit",
        "Share of calls that ended in an error (error_type set).",
    )
    board.panel(
        "Cost", "stat", [(f"sum(increase({cost}[{RANGE}]))", "USD")], (8, 1, 4, 4), "currencyUSD",
        "Estimated cost in the time range (llmlens.cost, from the price list).",
    )  # fmt: skip
    board.panel(
        "Tokens",
        "stat",
        [(f"sum({tokens('input', function='increase', window=RANGE)}) + "
          f"sum({tokens('output', function='increase', window=RANGE)})", "tokens")],
        (12, 1, 4, 4),
        "short",
        "Input plus output tokens in the time range.",
    )  # fmt: skip
    board.panel(
        "Latency p95", "stat", [(quantile(0.95, NEWEST_DURATION, TODAYS_DURATION), "p95")], (16, 1, 4, 4),
        "s",
        "95th percentile of the call duration.",
    )  # fmt: skip
    board.panel(
        "Time to first chunk p95", "stat", [(quantile(0.95, *TIME_TO_FIRST_CHUNK), "p95")], (20, 1, 4, 4),
        "s",
        "95th percentile of the time to the first chunk of streamed calls.",
    )  # fmt: skip
    board.panel(
        "Calls per second by model",
        "timeseries",
        [(f"sum by (gen_ai_request_model) ({calls(by_call)})", "{{gen_ai_request_model}}")],
        (0, 5, 12, 8),
        "reqps",
    )
    board.panel(
        "Errors per second by error type",
        "timeseries",
        [
            (
                f"sum by (error_type, gen_ai_request_model) ({calls(by_error, extra=ERRORS)})",
                "{{error_type}} {{gen_ai_request_model}}",
            )
        ],
        (12, 5, 12, 8),
        "reqps",
    )
    board.panel(
        "Call duration percentiles", "timeseries",
        percentiles(quantile, NEWEST_DURATION, TODAYS_DURATION), (0, 13, 12, 8), "s",
    )  # fmt: skip
    board.panel(
        "Call duration p95 by model",
        "timeseries",
        [(quantile(0.95, NEWEST_DURATION, TODAYS_DURATION, by="gen_ai_request_model"),
          "{{gen_ai_request_model}}")],
        (12, 13, 12, 8),
        "s",
    )  # fmt: skip
    board.panel(
        "Time to first chunk percentiles (streams)", "timeseries",
        percentiles(quantile, *TIME_TO_FIRST_CHUNK), (0, 21, 12, 8), "s",
    )  # fmt: skip
    board.panel(
        "Time per output chunk percentiles (streams)", "timeseries",
        percentiles(quantile, *TIME_PER_CHUNK), (12, 21, 12, 8), "s",
    )  # fmt: skip

    board.row("Tokens and cost", 29)
    board.panel(
        "Tokens per second by type", "timeseries", [(tokens(kind), kind) for kind in TOKEN_TYPES],
        (0, 30, 12, 8), "short",
        "cache_read and cache_write are a part of input, reasoning a part of output.",
    )  # fmt: skip
    board.panel(
        "Tokens per second by model",
        "timeseries",
        [
            (tokens("input", "gen_ai_request_model"), "{{gen_ai_request_model}} input"),
            (tokens("output", "gen_ai_request_model"), "{{gen_ai_request_model}} output"),
        ],
        (12, 30, 12, 8),
        "short",
    )
    board.panel(
        "Cost per hour by model", "timeseries",
        [(f"sum by (gen_ai_request_model) (rate({cost}[{RATE}])) * 3600", "{{gen_ai_request_model}}")],
        (0, 38, 12, 8), "currencyUSD",
    )  # fmt: skip
    board.panel(
        "Cost by model", "bargauge",
        [(f"sort_desc(sum by (gen_ai_request_model) (increase({cost}[{RANGE}])))",
          "{{gen_ai_request_model}}")],
        (12, 38, 6, 8), "currencyUSD", "Estimated cost in the time range.",
    )  # fmt: skip
    unpriced = selector("llmlens_cost_unpriced_total")
    board.panel(
        "Unpriced calls by reason", "bargauge",
        [(f"sum by (llmlens_cost_unpriced_reason) (increase({unpriced}[{RANGE}]))",
          "{{llmlens_cost_unpriced_reason}}")],
        (18, 38, 6, 8), "short",
        "Calls with no cost: a model no price list knows, no usage in the response, ...",
    )  # fmt: skip

    board.row("Proxy (ASGI middleware)", 46)
    server_requests = selector("gen_ai_server_request_duration_seconds_count")
    board.panel(
        "Proxied requests per second by model", "timeseries",
        [(f"sum by (gen_ai_request_model) (rate({server_requests}[{RATE}]))", "{{gen_ai_request_model}}")],
        (0, 47, 8, 8), "reqps",
    )  # fmt: skip
    board.panel(
        "Requests in flight", "timeseries",
        [('sum by (gen_ai_operation_name) (llmlens_server_active_requests{job=~"$job"})',
          "{{gen_ai_operation_name}}")],
        (8, 47, 8, 8), "short", "Requests a proxy is handling (a stream counts until its last byte).",
    )  # fmt: skip
    board.panel(
        "Proxied request duration percentiles", "timeseries",
        percentiles(server_quantile, "gen_ai_server_request_duration_seconds"), (16, 47, 8, 8), "s",
    )  # fmt: skip
    board.panel(
        "Proxy time to first token percentiles", "timeseries",
        percentiles(server_quantile, "gen_ai_server_time_to_first_token_seconds"), (0, 55, 12, 8), "s",
    )  # fmt: skip
    board.panel(
        "Proxy time per output token percentiles", "timeseries",
        percentiles(server_quantile, "gen_ai_server_time_per_output_token_seconds"), (12, 55, 12, 8), "s",
    )  # fmt: skip
    return board.panels


# Series that every instrumented job has under some setting: what the job and model variables list.
VARIABLE_SERIES = (
    '{__name__=~"gen_ai_client_operation_duration_seconds_count|gen_ai_client_inference_duration_seconds_count'
    '|gen_ai_server_request_duration_seconds_count"}'
)


def variable(name: str, label: str, query: str) -> dict[str, object]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def build() -> dict[str, object]:
    return {
        "uid": "llmlens",
        "title": "llmlens",
        "description": (
            "LLM calls and proxied requests instrumented by llmlens: calls, errors, latency, time to first "
            "chunk, tokens and cost. Works with the default metric names and with "
            "OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental (or /dup)."
        ),
        "tags": ["llmlens", "gen_ai", "opentelemetry"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
                    "hide": 0,
                },
                variable("job", "Job", f"label_values({VARIABLE_SERIES}, job)"),
                variable("model", "Model", f"label_values({VARIABLE_SERIES}, gen_ai_request_model)"),
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
