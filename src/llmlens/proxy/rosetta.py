"""llm-rosetta's gateway, instrumented when llmlens instruments (and the `llm-rosetta` package is there).

The gateway is not ASGI: it runs its own asyncio HTTP server, and every LLM route (OpenAI chat and
Responses, Anthropic Messages, Gemini generate/stream, Google interactions) calls one module function,
`llm_rosetta.gateway.app._proxy_handler(request, source_provider, model_override, force_stream)`.
That function is wrapped with `llm_request` (proxy/context.py): one SERVER span per request, started
from the request body and headers, ended with the response, or for a stream when its generator
ends (the gateway closes it when the client goes away: outcome client_disconnected). The upstream
provider, model and format come from the gateway's own routing (`config.resolve`), since its upstream
HTTP client is its own (vendored, not httpx). The gateway's request id is ours: an inbound
`x-request-id` is honoured, else the one we make is given to the gateway, so its log lines, its
response header and our span agree.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import wrapt

from llmlens.proxy.context import LLMRequest
from llmlens.proxy.identity import request_id

_log = logging.getLogger("llmlens")
_MODULE = "llm_rosetta.gateway.app"
_MARK = "_llmlens_original"

# the gateway's source provider -> our wire format name (None: not one we read)
_SOURCES: dict[str, str | None] = {
    "openai_chat": "openai_chat",
    "openai_responses": "openai_responses",
    "anthropic": "anthropic_messages",
    "google": "gemini_generate",
    "google_interactions": None,
}
# the gateway's target provider type -> (gen_ai.provider.name, llmlens.proxy.target_format)
_TARGETS = {
    "openai_chat": ("openai", "openai"),
    "openai_responses": ("openai", "openai_responses"),
    "anthropic": ("anthropic", "anthropic"),
    "google": ("gcp.gemini", "gemini"),
    "google_interactions": ("gcp.gemini", "google_interactions"),
}
_state: dict[str, Any] = {"telemetry": None, "hooked": False}


class RosettaPatch:
    """Returned to the Instrumentor: `unpatch()` puts the gateway's handler back."""

    def unpatch(self) -> None:
        _state["telemetry"] = None
        module = sys.modules.get(_MODULE)
        current = getattr(module, "_proxy_handler", None) if module is not None else None
        original = getattr(current, _MARK, None)
        if original is not None:
            module._proxy_handler = original  # type: ignore[union-attr]


def patch(telemetry: Any, settings: Any) -> RosettaPatch:
    """Wrap the gateway's handler now, or when `llm_rosetta.gateway.app` is imported."""
    _state["telemetry"] = telemetry
    if not _state["hooked"]:
        _state["hooked"] = True
        wrapt.register_post_import_hook(_wrap_module, _MODULE)
    elif _MODULE in sys.modules:
        _wrap_module(sys.modules[_MODULE])
    return RosettaPatch()


def _wrap_module(module: Any) -> None:
    original = getattr(module, "_proxy_handler", None)
    if original is None or getattr(original, _MARK, None) is not None or _state["telemetry"] is None:
        return

    async def _proxy_handler(
        request: Any, source_provider: str, model_override: str | None = None, force_stream: bool = False
    ) -> Any:
        telemetry = _state["telemetry"]
        record = _record(module, telemetry, request, source_provider, model_override, force_stream)
        if record is None:
            return await original(request, source_provider, model_override, force_stream)
        with record:
            response = await original(request, source_provider, model_override, force_stream)
            _observe(record, response)
        return response

    setattr(_proxy_handler, _MARK, original)
    _proxy_handler.__wrapped__ = original  # type: ignore[attr-defined]
    module._proxy_handler = _proxy_handler


def _record(
    module: Any, telemetry: Any, request: Any, source: str, model: str | None, force_stream: bool
) -> LLMRequest | None:
    if telemetry is None:
        return None
    try:
        fmt = _SOURCES.get(source)
        if fmt == "gemini_generate" and force_stream:
            fmt = "gemini_stream_generate"
        headers = request.headers
        rid = request_id(headers.get("x-request-id"))
        headers["x-request-id"] = rid  # the gateway's get_request_id() then uses ours
        client = getattr(request, "client_addr", None)
        record = LLMRequest(
            source_format=fmt or source,
            body=request.body,
            headers=headers,
            peer=client[0] if client else None,
            path=request.path,
            request_id=rid,
            model=model,
            stream=True if force_stream else None,
            telemetry=telemetry,
        )
        record.start()
        _upstream(module, record, source)
        return record
    except Exception:
        _log.debug("llmlens: could not record an llm-rosetta request", exc_info=True)
        return None


def _upstream(module: Any, record: LLMRequest, source: str) -> None:
    """Where the gateway's routing sends this model: provider, model and wire format upstream."""
    inv = record.inv
    config = getattr(module, "_config", None)
    if inv is None or config is None or not inv.request_model:
        return
    try:
        route, _ = config.resolve(source, inv.request_model)
    except Exception:  # an unknown model: the gateway answers 404 itself
        return
    provider, fmt = _TARGETS.get(str(route.target_provider), (str(route.target_provider), None))
    record.set_upstream(provider, route.upstream_model or inv.request_model, fmt)


def _observe(record: LLMRequest, response: Any) -> None:
    try:
        generator = getattr(response, "_generator", None)
        if generator is not None:  # a StreamingResponse: the span ends with its generator
            record.set_response(status_code=response.status_code)
            response._generator = record.wrap_async_stream(generator)
        else:
            record.set_response(getattr(response, "body", None), status_code=response.status_code)
    except Exception:
        _log.debug("llmlens: could not observe an llm-rosetta response", exc_info=True)
