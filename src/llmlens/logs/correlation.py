"""Trace and request ids on log records: of the current span, and of the proxied request being handled.

Both come from context variables (the request id from the proxy middleware, the trace and span ids
from the current OpenTelemetry span), read when the record is made: concurrent requests, and the
streaming that goes on after a handler returned, each see their own. Nothing global is swapped per
request (the record factory is installed once).

- `install_log_correlation()`: once per process, a record factory that adds `request_id`, `trace_id`
  and `span_id` to every record (empty strings outside a request), so a format string such as
  `"%(asctime)s %(request_id)s %(trace_id)s %(message)s"` works everywhere. The proxy middleware calls it.
- `RequestContextFilter`: the same as a `logging.Filter`, for handlers you configure yourself.

Example:
    >>> install_log_correlation()
    >>> logging.basicConfig(format="%(levelname)s [%(request_id)s %(trace_id)s] %(message)s")
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

__all__ = [
    "RequestContextFilter",
    "annotate",
    "current_request_id",
    "install_log_correlation",
    "request_id_var",
    "uninstall_log_correlation",
]

request_id_var: ContextVar[str | None] = ContextVar("llmlens_request_id", default=None)
_get_span = trace.get_current_span
_installed: list[Any] = []


def current_request_id() -> str | None:
    """The id of the proxied request this code runs for, if any."""
    return request_id_var.get()


def annotate(record: logging.LogRecord) -> None:
    """Set `request_id`, `trace_id` and `span_id` on `record` from the current context."""
    record.request_id = request_id_var.get() or ""
    context = _get_span().get_span_context()
    if context.is_valid:
        record.trace_id = f"{context.trace_id:032x}"
        record.span_id = f"{context.span_id:016x}"
    else:
        record.trace_id = record.span_id = ""


class RequestContextFilter(logging.Filter):
    """Adds `request_id`, `trace_id` and `span_id` to the records it sees; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") or not record.request_id:
            annotate(record)
        return True


def install_log_correlation() -> None:
    """Install the record factory once; it wraps whatever factory was there before."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            annotate(record)
        except Exception:  # a log line is never lost to correlation
            pass
        return record

    _installed.append((factory, previous))
    logging.setLogRecordFactory(factory)


def uninstall_log_correlation() -> None:
    """Put the previous factory back, if ours is still the one installed."""
    if _installed:
        factory, previous = _installed.pop()
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)
