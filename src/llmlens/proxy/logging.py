"""The log correlation of proxied requests; it lives in `llmlens.logs.correlation` (these names stay)."""

from __future__ import annotations

from llmlens.logs.correlation import (
    RequestContextFilter,
    current_request_id,
    install_log_correlation,
    request_id_var,
    uninstall_log_correlation,
)

__all__ = [
    "RequestContextFilter",
    "current_request_id",
    "install_log_correlation",
    "request_id_var",
    "uninstall_log_correlation",
]
