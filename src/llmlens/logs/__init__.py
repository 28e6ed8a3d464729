"""llmlens's logs: where its own log records go, their formats, and the one redactor (docs/logs.md).

- `JsonFormatter`, `TextFormatter` (formatters.py): lines with trace, span and request ids, for
  llmlens's console handler (`LLMLENS_LOG_FORMAT`) and for your own handlers;
- `redact(text)`, `RedactingFilter` (redact.py): API keys and credentials replaced by `[REDACTED]`;
- `RequestContextFilter`, `install_log_correlation()` (correlation.py): `request_id`, `trace_id` and
  `span_id` attributes on log records;
- pipeline.py: the handlers `instrument()` attaches to the `llmlens` logger (the OpenTelemetry logs
  pipeline, and stderr when the application has no handler); requests.py: the proxy's request log.

Example:
    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(llmlens.logs.TextFormatter())
    >>> logging.getLogger().addHandler(handler)
"""

from __future__ import annotations

from llmlens.logs.correlation import RequestContextFilter, current_request_id, install_log_correlation
from llmlens.logs.formatters import JsonFormatter, TextFormatter
from llmlens.logs.redact import REDACTED, RedactingFilter, redact

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "RequestContextFilter",
    "TextFormatter",
    "current_request_id",
    "install_log_correlation",
    "redact",
]
