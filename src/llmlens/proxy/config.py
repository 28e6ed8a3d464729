"""What every proxy record needs from the settings (routes, body limit, client addresses, key labels),
built once, and the Telemetry a proxy records with. Shared by the ASGI middleware (asgi.py) and
`llm_request(...)` (context.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from llmlens.proxy import identity
from llmlens.proxy.formats import FORMATS, WireFormat
from llmlens.settings import INSTRUMENT_KEYWORDS, Settings

_log = logging.getLogger("llmlens")

# Path suffix -> wire format. A suffix matches whatever comes before it (`/api/v1/chat/completions`);
# Gemini's `:method` suffixes match `.../models/{model}:method`.
DEFAULT_ROUTES: dict[str, str] = {
    "/v1/chat/completions": "openai_chat",
    "/v1/completions": "openai_completions",
    "/v1/responses": "openai_responses",
    "/v1/embeddings": "openai_embeddings",
    "/v1/messages": "anthropic_messages",
    "/v1/messages/count_tokens": "anthropic_count_tokens",
    ":generateContent": "gemini_generate",
    ":streamGenerateContent": "gemini_stream_generate",
}


class RouteTable:
    """Which requests are LLM requests: one dict lookup on the last path segment for any other path."""

    def __init__(self, routes: Mapping[str, str], prefixes: Iterable[str], settings: Settings) -> None:
        self.prefixes = tuple(prefixes)
        # last segment (or `:method`) -> [(suffix, format)], longest suffix first
        self.index: dict[str, list[tuple[str, WireFormat]]] = {}
        for suffix, name in routes.items():
            if name == "off":
                continue
            fmt = FORMATS[name](settings)
            key = suffix if suffix.startswith(":") else suffix[suffix.rfind("/") + 1 :]
            entries = self.index.setdefault(key, [])
            entries.append((suffix, fmt))
            entries.sort(key=lambda entry: -len(entry[0]))

    def match(self, path: str) -> WireFormat | None:
        last = path[path.rfind("/") + 1 :]
        entries = self.index.get(last)
        if entries is None:
            colon = last.rfind(":")
            if colon < 0 or "/models/" not in path:
                return None
            entries = self.index.get(last[colon:])
            if entries is None:
                return None
            if self.prefixes and not path.startswith(self.prefixes):
                return None
            return entries[0][1]
        if self.prefixes and not path.startswith(self.prefixes):
            return None
        for suffix, fmt in entries:
            if path.endswith(suffix):
                return fmt
        return None


class ProxyConfig:
    """Everything the middleware needs from the settings, built once."""

    def __init__(self, settings: Settings, routes: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        table = {**DEFAULT_ROUTES, **settings.proxy_routes, **(routes or {})}
        self.routes = RouteTable(table, settings.proxy_path_prefixes, settings)
        self.max_body = settings.proxy_max_body
        self.metrics_path = settings.proxy_metrics_path  # GET here: llmlens's metrics (proxy/metrics_path.py)
        self.clients = identity.ClientAddress(identity.parse_networks(settings.proxy_trusted_proxies))
        self._labeler: identity.KeyLabeler | None = None

    @property
    def labeler(self) -> identity.KeyLabeler:
        if self._labeler is None:  # reads (or makes) the secret file: on first use, not at import
            secret = identity.install_secret(self.settings.proxy_key_secret, self.settings.db_path)
            self._labeler = identity.KeyLabeler(secret, self.settings.proxy_api_key_names)
        return self._labeler


def active_telemetry() -> Any:
    """The Instrumentor's Telemetry while it is instrumented, else None."""
    from llmlens.instrumentor import Instrumentor

    instrumentor = Instrumentor()
    return instrumentor.telemetry if instrumentor.is_instrumented_by_opentelemetry else None


_standalone: list[Any] = []


def standalone_telemetry() -> Any:
    """A Telemetry on the global providers, for a middleware used without `instrument()`."""
    if not _standalone:
        from llmlens.core.telemetry import Telemetry

        _standalone.append(Telemetry(proxy_settings()))
    return _standalone[0]


def proxy_settings() -> Settings:
    """The settings of a proxy used without `instrument()`: only what instrumentation reads comes from
    the environment (a bad store or health variable is not the proxy's error), and a bad one is one
    error line and left out, as in `instrument()`: a proxy's requests never fail for telemetry."""
    settings, errors = Settings.from_env_lenient(only=INSTRUMENT_KEYWORDS)
    for error in errors:
        _log.error("llmlens: %s; this value is ignored", error)
    return settings
