"""Zero-code proxies: every Starlette and FastAPI application gets `LLMProxyMiddleware` while llmlens
instruments (`Instrumentor().instrument()` or `opentelemetry-instrument`); `LLMLENS_PROXY_AUTO=off`
turns this off.

What is patched, and why there: `Starlette.__call__` and `FastAPI.__call__`. FastAPI overrides both
`__call__` (where its own OpenTelemetry server span starts, outside the middleware stack) and
`build_middleware_stack` (without calling Starlette's), and the contrib FastAPIInstrumentor wraps each
app's `build_middleware_stack` again, so a patch of `build_middleware_stack` would sit inside those
spans. At `__call__` our middleware runs first, whatever built the application (a module-level app,
a factory, a subclass with its own stack), and for an LLM request:

- FastAPI's native SERVER span (and Starlette's OpenTelemetryMiddleware span) are skipped: they would
  be a second SERVER span, a root of its own trace when the caller sent no `traceparent`;
- the contrib ASGI middleware (from opentelemetry-instrumentation-fastapi/-asgi) sees our span
  current and makes its span an INTERNAL child;

so each LLM request has exactly one SERVER span, ours. Any other request costs one dictionary lookup.
When starlette is not imported yet, the patch waits for its import (a post-import hook).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import wrapt

from llmlens.proxy.asgi import LLMProxyMiddleware, Receive, Scope, Send

_log = logging.getLogger("llmlens")
# module -> class name: the classes whose __call__ is wrapped
_TARGETS = (("starlette.applications", "Starlette"), ("fastapi.applications", "FastAPI"))
_MARK = "_llmlens_proxy_original"
_handler: list[LLMProxyMiddleware] = []  # the middleware of patched applications, while instrumented
_hooked: list[str] = []


class ProxyAutoPatch:
    """Returned to the Instrumentor: `unpatch()` restores the classes."""

    def __init__(self, handler: LLMProxyMiddleware) -> None:
        self.handler = handler

    def unpatch(self) -> None:
        _handler.clear()
        import sys

        for module_name, class_name in _TARGETS:
            module = sys.modules.get(module_name)
            cls = getattr(module, class_name, None) if module is not None else None
            if cls is not None:
                _unpatch_class(cls)


def patch(telemetry: Any, settings: Any) -> ProxyAutoPatch:
    """Wrap Starlette and FastAPI now, or when they are imported."""
    handler = LLMProxyMiddleware(None, telemetry=telemetry, settings=settings, auto=True)  # type: ignore[arg-type]
    _handler[:] = [handler]
    for module_name, class_name in _TARGETS:
        if module_name in _hooked:
            _patch_loaded(module_name, class_name)
            continue
        _hooked.append(module_name)
        wrapt.register_post_import_hook(_hook(class_name), module_name)
    return ProxyAutoPatch(handler)


def _hook(class_name: str) -> Any:
    def on_import(module: Any) -> None:
        if _handler:  # (a hook fires once per import; after uninstrument it does nothing)
            cls = getattr(module, class_name, None)
            if cls is not None:
                _patch_class(cls)

    return on_import


def _patch_loaded(module_name: str, class_name: str) -> None:
    import sys

    module = sys.modules.get(module_name)
    cls = getattr(module, class_name, None) if module is not None else None
    if cls is not None:
        _patch_class(cls)


def _patch_class(cls: type) -> None:
    current = cls.__dict__.get("__call__")
    if current is None or getattr(current, _MARK, None) is not None:
        return  # not its own __call__, or already ours
    original = current

    async def __call__(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        handler = _handler[0] if _handler else None
        if handler is None:  # uninstrumented since: the application as it was
            await original(self, scope, receive, send)
            return
        # What the middleware does for any app: LLM requests observed, the metrics path, the lifespan.
        await handler.handle(functools.partial(original, self), scope, receive, send)

    setattr(__call__, _MARK, original)
    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    __call__.__qualname__ = getattr(original, "__qualname__", "__call__")
    __call__.__doc__ = original.__doc__
    cls.__call__ = __call__  # type: ignore[method-assign]


def _unpatch_class(cls: type) -> None:
    current = cls.__dict__.get("__call__")
    original = getattr(current, _MARK, None)
    if original is not None:
        cls.__call__ = original  # type: ignore[method-assign]
