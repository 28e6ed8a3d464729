"""Log formats that carry the trace, span and request ids: `JsonFormatter` and `TextFormatter`.

llmlens's own console handler uses one of them (`LLMLENS_LOG_FORMAT`); put them on your own handlers
to get the same lines for your application's records:

    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(JsonFormatter())
    >>> logging.getLogger().addHandler(handler)

Both read the ids from the record when a record factory put them there (`install_log_correlation()`,
which the proxy installs), else from the current context when the record is formatted. Both redact
secrets (llmlens.logs.redact) unless made with `redact=False`, and neither ever raises: a record that
cannot be formatted becomes a line that says so.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from llmlens.logs.correlation import annotate
from llmlens.logs.redact import redact as _redact

__all__ = ["JsonFormatter", "TextFormatter", "correlation_prefix"]


def _ids(record: logging.LogRecord) -> tuple[str, str, str]:
    """(trace_id, span_id, request_id) of a record: as the record factory set them, else current."""
    if getattr(record, "trace_id", None) is None:
        annotate(record)
    return record.trace_id or "", record.span_id or "", record.request_id or ""  # type: ignore[attr-defined]


def correlation_prefix(record: logging.LogRecord) -> str:
    """`[trace=4bf92f35 span=00f067aa req=...] ` for a record (the first 8 hex digits of each id);
    only the ids that are set; empty when none is."""
    trace_id, span_id, request_id = _ids(record)
    parts = []
    if trace_id:
        parts.append(f"trace={trace_id[:8]}")
    if span_id:
        parts.append(f"span={span_id[:8]}")
    if request_id:
        parts.append(f"req={request_id}")
    return f"[{' '.join(parts)}] " if parts else ""


def _fallback(record: logging.LogRecord, redact: bool) -> str:
    """The line of a record the formatter could not format (a bad argument, a broken `__str__`)."""
    try:
        text = f"{record.levelname} {record.name}: {record.msg!s} (unformattable: args {record.args!r})"
    except Exception:
        text = "llmlens: unformattable log record"
    return _redact(text) if redact else text


class TextFormatter(logging.Formatter):
    """A text line with a short correlation prefix:

        2026-12-06 15:03:19,123 WARNING llmlens [trace=4bf92f35 span=00f067aa req=r-17] llmlens: message

    `fmt` may be any `logging.Formatter` format; `%(correlation)s` is the prefix (with its trailing
    space, or empty), and `%(trace_id)s`, `%(span_id)s`, `%(request_id)s` are the full ids.
    """

    default_fmt = "%(asctime)s %(levelname)s %(name)s %(correlation)s%(message)s"

    def __init__(
        self, fmt: str | None = None, datefmt: str | None = None, *, redact: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(fmt or self.default_fmt, datefmt, **kwargs)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        try:
            record.correlation = correlation_prefix(record)
            text = super().format(record)
            return _redact(text) if self.redact else text
        except Exception:
            return _fallback(record, self.redact)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601, milliseconds), `level`, `logger`, `message`,
    `trace_id` and `span_id` (null outside a span), and `request_id` and `exception` when there is one.

        {"time": "2026-12-06T15:03:19.123Z", "level": "WARNING", "logger": "llmlens", "message": "...",
         "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    """

    def __init__(self, *, redact: bool = True) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        try:
            return json.dumps(self.fields(record), ensure_ascii=False, default=str)
        except Exception:
            return json.dumps(
                {"level": "ERROR", "logger": "llmlens", "message": _fallback(record, self.redact)}
            )

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The object of one record (before JSON encoding)."""
        trace_id, span_id, request_id = _ids(record)
        when = datetime.fromtimestamp(record.created, tz=timezone.utc)
        message = record.getMessage()
        fields: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": _redact(message) if self.redact else message,
            "trace_id": trace_id or None,
            "span_id": span_id or None,
        }
        if request_id:
            fields["request_id"] = request_id
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = _redact(record.exc_text) if self.redact else record.exc_text
        if record.stack_info:
            fields["stack"] = _redact(record.stack_info) if self.redact else record.stack_info
        return fields
