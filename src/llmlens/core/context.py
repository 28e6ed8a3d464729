"""Context keys that let the layers of llmlens see each other, so one request is recorded once.

- While an SDK call is in flight, its Invocation is in the context: an instrumented SDK called from
  inside another instrumented SDK call (a wrapper SDK over openai, say) makes no second span; the
  outer LLM span wins.
- While an llmlens proxy handles a request, the proxy's server-side record is in the context: SDK
  calls made for it are its upstream leg. Their CLIENT spans are marked `llmlens.upstream=true` and
  record no `gen_ai.client.*` metrics, so one proxied request is counted once (by the server side).
  What is stored under `PROXY_REQUEST_KEY` implements `ProxyRequest` (core/server_telemetry.py's
  `ServerInvocation` does): `Telemetry.start` hands it each upstream leg.
- OpenTelemetry's `suppress_instrumentation()` turns llmlens off for the calls made inside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from opentelemetry import context as otel_context

if TYPE_CHECKING:
    from llmlens.core.invocation import Invocation

try:  # the key OpenTelemetry's suppress_instrumentation() sets
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
except ImportError:  # pragma: no cover - very old API
    _SUPPRESS_INSTRUMENTATION_KEY = otel_context.create_key("suppress_instrumentation")
_SUPPRESS_PLAIN_KEY = "suppress_instrumentation"

ACTIVE_INVOCATION_KEY = otel_context.create_key("llmlens.active_invocation")
PROXY_REQUEST_KEY = otel_context.create_key("llmlens.proxy_request")

_get_value = otel_context.get_value
_get_current = otel_context.get_current


class ProxyRequest(Protocol):
    """The proxy's record of the request being handled, as the core sees it under `PROXY_REQUEST_KEY`."""

    def add_upstream(self, inv: Invocation) -> None:
        """Called by `Telemetry.start` when an SDK call (an upstream leg) starts while the request runs,
        so the SERVER span can name the upstream provider and model and take its usage and cost."""


def skip_instrumentation() -> bool:
    """True when an SDK call must pass through untraced: suppressed, or nested in another LLM call."""
    context = _get_current()  # (a dict: one look-up of the context for the three keys)
    return bool(
        context.get(ACTIVE_INVOCATION_KEY)
        or context.get(_SUPPRESS_INSTRUMENTATION_KEY)
        or context.get(_SUPPRESS_PLAIN_KEY)
    )


def proxy_request() -> ProxyRequest | None:
    """The proxy request being handled in this context, if any."""
    return _get_value(PROXY_REQUEST_KEY)  # type: ignore[return-value]
