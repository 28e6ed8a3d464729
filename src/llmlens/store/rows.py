"""Finished spans to store rows: pure functions, run on the writer thread only.

A span is an LLM request when it carries `gen_ai.operation.name` and is not the upstream leg of a
proxied request (`llmlens.upstream`): then it becomes one `requests` row. Every other span of a
trace that has a request is kept in `spans`, for the detail view.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

from llmlens import semconv
from llmlens.core.limits import IDENTIFIER_MAX, cap
from llmlens.logs.redact import redact

ERROR_MESSAGE_MAX = 1000
# What an SQLite INTEGER holds: a value outside is stored as NULL (start/end times: clamped).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

# span attribute -> requests column, for the attributes that have their own column.
_COLUMNS: dict[str, str] = {
    semconv.OPERATION_NAME: "operation",
    semconv.PROVIDER_NAME: "provider",
    semconv.REQUEST_MODEL: "request_model",
    semconv.RESPONSE_MODEL: "response_model",
    semconv.OPENAI_API_TYPE: "api",
    semconv.SERVER_ADDRESS: "server_address",
    semconv.SERVER_PORT: "server_port",
    semconv.ERROR_TYPE: "error_type",
    semconv.HTTP_STATUS_CODE: "http_status",
    semconv.USAGE_INPUT_TOKENS: "input_tokens",
    semconv.USAGE_OUTPUT_TOKENS: "output_tokens",
    semconv.USAGE_CACHE_READ_INPUT_TOKENS: "cache_read_tokens",
    semconv.USAGE_CACHE_CREATION_INPUT_TOKENS: "cache_write_tokens",
    semconv.USAGE_REASONING_OUTPUT_TOKENS: "reasoning_tokens",
    semconv.USAGE_COST_AMOUNT: "cost_usd",
    semconv.LLMLENS_STREAM_CHUNKS: "chunk_count",
    semconv.LLMLENS_STREAM_OUTCOME: "stream_outcome",
    semconv.RESPONSE_ID: "response_id",
    semconv.LLMLENS_API_KEY_LABEL: "api_key_label",
    semconv.CLIENT_ADDRESS: "client_ip",
    semconv.LLMLENS_SOURCE_FORMAT: "source_format",
    semconv.LLMLENS_TARGET_FORMAT: "target_format",
    semconv.LLMLENS_PROFILE_ID: "profile_id",
}
_COLUMN_KEYS = tuple(_COLUMNS)
# Columns written per request row, in INSERT order.
REQUEST_COLUMNS: tuple[str, ...] = (
    "trace_id", "span_id", "parent_span_id", "start_ns", "end_ns", "duration_ms", "span_name", "span_kind",
    *_COLUMNS.values(), "stream", "status", "is_error", "error_message", "ttfc_ms", "finish_reasons",
    "service_name", "attributes",
)  # fmt: skip
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status",
    "attributes",
)

_KINDS = {SpanKind.CLIENT: "client", SpanKind.SERVER: "server", SpanKind.INTERNAL: "internal",
          SpanKind.PRODUCER: "producer", SpanKind.CONSUMER: "consumer"}  # fmt: skip
_STATUS = {StatusCode.OK: "ok", StatusCode.ERROR: "error", StatusCode.UNSET: "unset"}
# The cache write count has two names (OTEL_SEMCONV_STABILITY_OPT_IN): the column takes either.
_CACHE_WRITE = _COLUMN_KEYS.index(semconv.USAGE_CACHE_CREATION_INPUT_TOKENS)
_HANDLED = frozenset((*_COLUMNS, semconv.REQUEST_STREAM, semconv.RESPONSE_TIME_TO_FIRST_CHUNK,
                      semconv.RESPONSE_FINISH_REASONS, semconv.USAGE_CACHE_WRITE_INPUT_TOKENS))  # fmt: skip


def trace_hex(value: int) -> str:
    return f"{value:032x}"


def span_hex(value: int) -> str:
    return f"{value:016x}"


def is_request(span: Any) -> bool:
    attributes = span.attributes
    return (
        bool(attributes)
        and semconv.OPERATION_NAME in attributes
        and not attributes.get(semconv.LLMLENS_UPSTREAM)
    )


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, frozenset, set)):
        return list(value)
    return str(value)


# json.dumps with options builds an encoder per call; one encoder, made once, writes the same text.
# Tuples (the SDK's sequence attributes) are arrays to it, as lists are.
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_plain).encode


def request_row(span: Any) -> tuple[Any, ...]:
    """The `requests` row of an LLM request span, in REQUEST_COLUMNS order."""
    attributes = span.attributes or {}
    context = span.context
    parent = span.parent
    status = _STATUS.get(span.status.status_code, "unset")
    start, end = span.start_time or 0, span.end_time or span.start_time or 0
    rest = {k: v for k, v in attributes.items() if k not in _HANDLED}  # (JSON writes a tuple as an array)
    # (another instrumentation's span, with the allow peer mode, may carry a key in its status: redacted)
    error_message = redact(span.status.description) if status == "error" else None
    if error_message and len(error_message) > ERROR_MESSAGE_MAX:
        error_message = error_message[: ERROR_MESSAGE_MAX - 3] + "..."
    ttfc = attributes.get(semconv.RESPONSE_TIME_TO_FIRST_CHUNK)
    reasons = attributes.get(semconv.RESPONSE_FINISH_REASONS)
    resource = getattr(span, "resource", None)
    service = resource.attributes.get(semconv.SERVICE_NAME) if resource is not None else None
    # map() keeps the look-ups in C; sequences (rare in these columns) are joined to text. Every
    # column is an identifier or a number: text is capped (core/limits.py), an integer SQLite cannot
    # hold (a usage count of 10**30 from some other instrumentation) becomes NULL.
    columns = list(map(attributes.get, _COLUMN_KEYS))
    if columns[_CACHE_WRITE] is None:
        columns[_CACHE_WRITE] = attributes.get(semconv.USAGE_CACHE_WRITE_INPUT_TOKENS)
    kinds = set(map(type, columns))
    if tuple in kinds or list in kinds:
        columns = [_column_value(v) for v in columns]
    columns = [
        (v if INT_MIN <= v <= INT_MAX else None) if type(v) is int
        else (cap(v) if type(v) is str and len(v) > IDENTIFIER_MAX else v)
        for v in columns
    ]  # fmt: skip
    if type(reasons) is str:
        reasons = (reasons,)
    return (
        trace_hex(context.trace_id),
        span_hex(context.span_id),
        span_hex(parent.span_id) if parent is not None else None,
        _clamp(start),
        _clamp(end),
        (end - start) / 1e6,
        cap(span.name, 2 * IDENTIFIER_MAX + 1),  # `{operation} {model}`
        _KINDS.get(span.kind, "internal"),
        *columns,
        1 if attributes.get(semconv.REQUEST_STREAM) else 0,
        status,
        1 if status == "error" else 0,
        error_message,
        ttfc * 1000 if isinstance(ttfc, (int, float)) else None,
        cap(",".join(map(str, reasons))) if reasons else None,
        service,
        _json(rest),
    )


def _clamp(value: int) -> int:
    return value if INT_MIN <= value <= INT_MAX else max(INT_MIN, min(INT_MAX, value))


def _column_value(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return value


def sqlite_safe(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row every value of which SQLite can bind: integers outside INTEGER's range clamped, text that
    cannot be encoded as UTF-8 (lone surrogates) repaired, anything else as text. For the slow path, a
    row SQLite refused."""
    return tuple(map(_safe_value, row))


def _safe_value(value: Any) -> Any:
    if value is None or type(value) is float:
        return value
    if isinstance(value, int):
        return max(INT_MIN, min(INT_MAX, int(value)))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def span_row(span: Any) -> tuple[Any, ...]:
    """The `spans` row of any span, in SPAN_COLUMNS order."""
    context = span.context
    parent = span.parent
    return (
        trace_hex(context.trace_id),
        span_hex(context.span_id),
        span_hex(parent.span_id) if parent is not None else None,
        cap(span.name, 2 * IDENTIFIER_MAX + 1),
        _KINDS.get(span.kind, "internal"),
        _clamp(span.start_time or 0),
        _clamp(span.end_time or span.start_time or 0),
        _STATUS.get(span.status.status_code, "unset"),
        _json(dict(span.attributes or {})),
    )
