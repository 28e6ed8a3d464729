"""llmlens: OpenTelemetry instrumentation for applications and proxies that call LLMs.

    >>> import llmlens
    >>> llmlens.configure()                    # providers + exporters + instrumentation, one call
    >>> llmlens.Instrumentor().instrument()    # or only instrument, with your own providers
    >>> with llmlens.llm_request(source_format="openai", body=body) as request: ...  # a non-ASGI proxy

`import llmlens` imports nothing heavy: the instrumentor and the SDK set-up load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmlens._version import __version__

if TYPE_CHECKING:
    from llmlens.instrumentor import Instrumentor
    from llmlens.proxy.context import llm_request, traced_operation
    from llmlens.sdk_setup import configure

__all__ = ["Instrumentor", "__version__", "configure", "llm_request", "traced_operation"]


def __getattr__(name: str) -> Any:
    # Lazy: importing BaseInstrumentor alone costs ~80 ms, and most imports only want a name.
    if name == "Instrumentor":
        from llmlens.instrumentor import Instrumentor

        return Instrumentor
    if name == "configure":
        from llmlens.sdk_setup import configure

        return configure
    if name in ("llm_request", "traced_operation"):  # proxies that are not ASGI (docs/proxy.md)
        from llmlens.proxy import context

        return getattr(context, name)
    raise AttributeError(f"module 'llmlens' has no attribute {name!r}")
