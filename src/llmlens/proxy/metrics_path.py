"""The proxied application's metrics path (`LLMLENS_PROXY_METRICS_PATH`): a `GET` there is answered by the
middleware with llmlens's metrics in the Prometheus text format, so Prometheus scrapes the proxy on the
port it already serves, with no second listener.

The metrics come from the registry `configure()` made (llmlens/prometheus.py), or from the one
`opentelemetry-instrument` feeds with `OTEL_METRICS_EXPORTER=prometheus`. With neither, no reader holds
the metrics: the request goes to the application as if the path were not set, and one warning says why.
Other methods on the path are the application's too.
"""

from __future__ import annotations

import logging
from typing import Any

from llmlens import prometheus

_log = logging.getLogger("llmlens")
_warned: list[bool] = []


async def answer_metrics(app: Any, scope: Any, receive: Any, send: Any) -> None:
    """Answer a GET or HEAD on the metrics path with a scrape; anything else goes to `app`."""
    method = scope.get("method")
    found = None
    if method in ("GET", "HEAD"):
        accept = None
        for name, value in scope.get("headers") or ():
            if name == b"accept":
                accept = value.decode("latin-1")
        try:
            found = prometheus.exposition(accept)
        except Exception:  # a scrape that fails is the app's request again, never an error of ours
            _log.debug("llmlens: could not collect the metrics", exc_info=True)
        if found is None and not _warned:
            _warned.append(True)
            _log.warning(
                "llmlens: LLMLENS_PROXY_METRICS_PATH is set but no Prometheus reader holds the metrics; "
                "call llmlens.configure() (or run under opentelemetry-instrument with "
                "OTEL_METRICS_EXPORTER=prometheus)"
            )
    if found is None:
        return await app(scope, receive, send)
    body, content_type = found
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
