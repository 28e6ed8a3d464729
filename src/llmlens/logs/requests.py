"""The proxy's request log: one line per proxied LLM request, on the `llmlens.proxy.requests` logger.

    POST /v1/chat/completions 200 chat gpt-4o-mini completed 412 ms tokens=12/34

(method, path, status, operation, requested model, outcome, duration, input/output tokens, and the
error when there was one). The line is written once the request has ended, in the context of its
SERVER span and with its request id, so it carries the trace, span and request ids of the request; its
fields are also attributes of the OpenTelemetry log record (`http.response.status_code`,
`gen_ai.request.model`, ...).

At INFO: the application's handlers get it when that logger is enabled for INFO (by its own level or
an ancestor's: `LLMLENS_LOG_LEVEL=INFO`, or an application logging at INFO), and llmlens's logs
pipeline (llmlens.logs.pipeline) always does while the proxy is used. `LLMLENS_PROXY_REQUEST_LOG=false`
turns the line off.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from llmlens import semconv
from llmlens.logs import pipeline
from llmlens.logs.correlation import request_id_var

__all__ = ["log_proxy_request"]

_logger = logging.getLogger(pipeline.REQUEST_LOGGER_NAME)
_ERROR_MAX = 300  # characters of an error message kept in the line


def log_proxy_request(inv: Any, method: str, path: str, request_id: str) -> None:
    """Write the request line of a proxied request that has ended (`inv`: its ServerInvocation)."""
    standard = _logger.isEnabledFor(logging.INFO)
    installed = pipeline.installed()
    if not standard and (installed is None or not installed.exports()):
        return
    span = inv.span
    ended: Any = getattr(span, "attributes", None) or {}  # the SERVER span's, once it has ended
    status = ended.get(semconv.HTTP_STATUS_CODE, inv.status_code)
    model = _printable(inv.request_model) if inv.request_model else "-"
    path = _printable(path)
    error_type = ended.get(semconv.ERROR_TYPE)
    outcome = ended.get(semconv.LLMLENS_STREAM_OUTCOME) or ("error" if error_type else "ok")
    duration_ms = (time.perf_counter_ns() - inv.start_perf) / 1e6 if inv.start_perf else 0.0
    message = f"{method} {path} {status or '-'} {inv.operation} {model} {outcome} {duration_ms:.0f} ms"
    extra: dict[str, Any] = {
        semconv.HTTP_REQUEST_METHOD: method,
        semconv.URL_PATH: path,
        semconv.OPERATION_NAME: inv.operation,
        semconv.LLMLENS_STREAM_OUTCOME: outcome,
        "llmlens.proxy.duration_ms": round(duration_ms, 3),
    }
    if status:
        extra[semconv.HTTP_STATUS_CODE] = status
    if inv.request_model:
        extra[semconv.REQUEST_MODEL] = inv.request_model
    if inv.input_tokens is not None or inv.output_tokens is not None:
        message += f" tokens={_count(inv.input_tokens)}/{_count(inv.output_tokens)}"
        for key, value in ((semconv.USAGE_INPUT_TOKENS, inv.input_tokens),
                           (semconv.USAGE_OUTPUT_TOKENS, inv.output_tokens)):  # fmt: skip
            if value is not None:
                extra[key] = value
    if error_type:
        extra[semconv.ERROR_TYPE] = error_type
        detail = inv.error_message or (str(inv.error) if inv.error is not None else "")
        detail = _printable(detail[:_ERROR_MAX])
        message += f" error={_printable(str(error_type))}" + (f": {detail}" if detail else "")
    context = trace.set_span_in_context(span) if span is not None else otel_context.get_current()
    if not standard:  # the pipeline only: straight to it, no `logging` record
        assert installed is not None
        extra["llmlens.proxy.request_id"] = request_id
        installed.export_only(_logger.name, message, extra, context)
        return
    token = otel_context.attach(context)  # the record's ids, for the formatters and the OTel handler
    id_token = request_id_var.set(request_id)
    try:
        record = _logger.makeRecord(_logger.name, logging.INFO, __file__, 0, message, None, None, extra=extra)
        _logger.handle(record)  # the application's handlers and llmlens's, as for any record
    finally:
        request_id_var.reset(id_token)
        otel_context.detach(token)


def _printable(text: str) -> str:
    """`text` on one line: what a client chose (a model name, a path, an upstream's message) cannot start a
    line of its own in a text log (`\\n` and other control characters are escaped)."""
    if type(text) is not str:
        text = str(text)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)
