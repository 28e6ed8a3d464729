"""GenAI telemetry for LLM proxies and gateways (docs/proxy.md).

- `LLMProxyMiddleware`: ASGI middleware (added to Starlette/FastAPI apps automatically when llmlens
  instruments, see `autopatch`);
- `llm_request(...)`, `traced_operation(...)`: the same record for servers that are not ASGI;
- `sse.SSEParser`: the incremental SSE parser.

Names load on first use: importing `llmlens.proxy` imports nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmlens.proxy.asgi import LLMProxyMiddleware
    from llmlens.proxy.context import LLMRequest, current_llm_request, llm_request, traced_operation

__all__ = ["LLMProxyMiddleware", "LLMRequest", "current_llm_request", "llm_request", "traced_operation"]


def __getattr__(name: str) -> Any:
    if name == "LLMProxyMiddleware":
        from llmlens.proxy.asgi import LLMProxyMiddleware

        return LLMProxyMiddleware
    if name in ("LLMRequest", "current_llm_request", "llm_request", "traced_operation"):
        from llmlens.proxy import context

        return getattr(context, name)
    raise AttributeError(f"module 'llmlens.proxy' has no attribute {name!r}")
