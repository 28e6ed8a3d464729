"""Every setting llmlens reads, validated in one place.

Each setting has an environment variable and an argument of the same meaning; a bad value raises
`SettingsError` whose message is one line naming the variable and the accepted values.

Example:
    >>> Settings.from_env({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}).capture_content
    <ContentMode.SPAN_ONLY: 'SPAN_ONLY'>
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmlens.pricing import TokenPrices

KNOWN_PROVIDERS = ("openai", "anthropic", "groq", "google", "cohere", "ollama", "bedrock")


class SettingsError(ValueError):
    """A setting has a value llmlens cannot use. The message is one line, fit for a user."""


class ContentMode(str, enum.Enum):
    """Where captured prompts and completions go (the util-genai values)."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (ContentMode.SPAN_ONLY, ContentMode.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (ContentMode.EVENT_ONLY, ContentMode.SPAN_AND_EVENT)


class PeerMode(str, enum.Enum):
    """Who traces an SDK that another GenAI instrumentation (a peer) instruments too (llmlens.peers)."""

    STAND_ASIDE = "stand_aside"  # llmlens; the peer's instrument() does nothing
    DEFER = "defer"  # the peer; llmlens leaves that SDK alone
    ALLOW = "allow"  # both: two LLM spans per call, usage counted twice


# Environment variable names, documented in docs/configuration.md.
ENV_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_EMIT_EVENT = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"
ENV_CONTENT_MAX_LENGTH = "LLMLENS_CONTENT_MAX_LENGTH"
ENV_PROVIDERS = "LLMLENS_PROVIDERS"
ENV_PROVIDER_MAP = "LLMLENS_PROVIDER_MAP"
ENV_STORE = "LLMLENS_STORE"
ENV_DB = "LLMLENS_DB"
ENV_PRICING = "LLMLENS_PRICING"
ENV_PRICES = "LLMLENS_PRICES"
ENV_PROXY_AUTO = "LLMLENS_PROXY_AUTO"
ENV_PROXY_ROUTES = "LLMLENS_PROXY_ROUTES"
ENV_PROXY_PATH_PREFIXES = "LLMLENS_PROXY_PATH_PREFIXES"
ENV_PROXY_TRUSTED_PROXIES = "LLMLENS_PROXY_TRUSTED_PROXIES"
ENV_PROXY_API_KEY_NAMES = "LLMLENS_PROXY_API_KEY_NAMES"
ENV_PROXY_KEY_SECRET = "LLMLENS_PROXY_KEY_SECRET"
ENV_PROXY_MAX_BODY = "LLMLENS_PROXY_MAX_BODY"
ENV_PEER_INSTRUMENTATIONS = "LLMLENS_PEER_INSTRUMENTATIONS"

# The wire formats a proxy route can name (llmlens.proxy.formats.FORMATS), and `off`.
PROXY_ROUTE_FORMATS = (
    "openai_chat", "openai_completions", "openai_responses", "openai_embeddings", "anthropic_messages",
    "anthropic_count_tokens", "gemini_generate", "gemini_stream_generate",
)  # fmt: skip

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _parse_content_mode(var: str, raw: str) -> ContentMode:
    value = raw.strip().upper()
    # The old contrib packages took `true`; treat it as SPAN_ONLY rather than silently capturing
    # nothing, the trap util-genai users fall into.
    if value.lower() in _TRUE:
        return ContentMode.SPAN_ONLY
    if value.lower() in _FALSE or value == "":
        return ContentMode.NO_CONTENT
    try:
        return ContentMode(value)
    except ValueError:
        accepted = ", ".join(m.value for m in ContentMode) + ", true, false"
        raise SettingsError(f"{var}={raw!r} is not valid; accepted values: {accepted}") from None


def _parse_bool(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{var}={raw!r} is not valid; accepted values: true, false")


def _parse_peer_mode(var: str, raw: object) -> PeerMode:
    if isinstance(raw, PeerMode):
        return raw
    value = str(raw).strip().lower().replace("-", "_")
    try:
        return PeerMode(value)
    except ValueError:
        accepted = ", ".join(m.value for m in PeerMode)
        raise SettingsError(f"{var}={raw!r} is not valid; accepted values: {accepted}") from None


def _parse_non_negative_int(var: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise SettingsError(f"{var}={raw!r} is not valid; accepted values: an integer >= 0 (0 = no limit)")
    return value


def _parse_providers(var: str, raw: str) -> frozenset[str]:
    names = {p.strip().lower() for p in raw.split(",") if p.strip()}
    if not names or names == {"all"}:
        return frozenset(KNOWN_PROVIDERS)
    unknown = names - set(KNOWN_PROVIDERS)
    if unknown:
        raise SettingsError(
            f"{var}={raw!r} names unknown providers {sorted(unknown)}; "
            f"accepted values: all, or a comma-separated list of {', '.join(KNOWN_PROVIDERS)}"
        )
    return frozenset(names)


def _parse_provider_map(var: str, raw: str) -> Mapping[str, str]:
    result: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        host, sep, provider = item.partition("=")
        if not sep or not host.strip() or not provider.strip():
            raise SettingsError(
                f"{var}={raw!r} is not valid; accepted values: a comma-separated list of host[:port]=provider"
            )
        result[host.strip().lower()] = provider.strip()
    return result


def _parse_prices(var: str, raw: object) -> Mapping[str, TokenPrices]:
    from llmlens.pricing import load_price_table  # reads the override file (JSON or TOML)

    return load_price_table(raw.strip() if isinstance(raw, str) else raw, var)


def _parse_proxy_routes(var: str, raw: object) -> Mapping[str, str]:
    formats = ", ".join(PROXY_ROUTE_FORMATS)
    accepted = f"a comma-separated list of path-suffix=format; formats: {formats}, off"
    items = raw.items() if isinstance(raw, Mapping) else (i.partition("=")[::2] for i in str(raw).split(","))
    result: dict[str, str] = {}
    for suffix, fmt in items:
        suffix, fmt = str(suffix).strip(), str(fmt).strip().lower()
        if not suffix and not fmt:
            continue
        if suffix[:1] not in ("/", ":") or (fmt not in PROXY_ROUTE_FORMATS and fmt != "off"):
            raise SettingsError(f"{var}={raw!r} is not valid; accepted values: {accepted}")
        result[suffix] = fmt
    return result


def _parse_path_prefixes(var: str, raw: object) -> tuple[str, ...]:
    values = str(raw).split(",") if isinstance(raw, str) else [str(v) for v in raw]  # type: ignore[attr-defined]
    prefixes = tuple(v.strip() for v in values if v.strip())
    if any(not p.startswith("/") for p in prefixes):
        raise SettingsError(f"{var}={raw!r} is not valid; accepted values: a comma-separated list of /paths")
    return prefixes


def _parse_networks(var: str, raw: object) -> tuple[str, ...]:
    import ipaddress

    values = str(raw).split(",") if isinstance(raw, str) else [str(v) for v in raw]  # type: ignore[attr-defined]
    networks = tuple(v.strip() for v in values if v.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            accepted = "a comma-separated list of IP addresses or CIDRs"
            raise SettingsError(f"{var}={raw!r} is not valid; accepted values: {accepted}") from None
    return networks


def _parse_names(var: str, raw: object) -> Mapping[str, str]:
    if isinstance(raw, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in raw.items()}
    result: dict[str, str] = {}
    for item in str(raw).split(","):
        if not item.strip():
            continue
        label, sep, name = item.partition("=")
        if not sep or not label.strip() or not name.strip():
            accepted = "a comma-separated list of label=name"
            raise SettingsError(f"{var}={raw!r} is not valid; accepted values: {accepted}")
        result[label.strip()] = name.strip()
    return result


@dataclass(frozen=True)
class Settings:
    """What the instrumentation does, fixed when `instrument()` runs."""

    capture_content: ContentMode = ContentMode.NO_CONTENT
    # None: emit the details event when the content mode asks for events (util-genai's rule).
    emit_event: bool | None = None
    # Longest text kept per captured content part, in characters; 0 means no limit.
    content_max_length: int = 16384
    providers: frozenset[str] = frozenset(KNOWN_PROVIDERS)
    # host or host:port -> gen_ai.provider.name, for OpenAI-compatible servers we cannot recognise.
    provider_map: Mapping[str, str] = field(default_factory=dict)
    # Record every LLM request in the local SQLite store (llmlens.store) when the tracer provider is
    # the OpenTelemetry SDK's.
    store: bool = True
    # The store file; None: $LLMLENS_DB, else the user's data directory.
    db_path: str | None = None
    # Cost of every call from its token usage (llmlens.pricing; docs/pricing.md).
    pricing: bool = True
    # The user's prices: 'provider/model' (fnmatch pattern) -> USD per million tokens.
    prices: Mapping[str, TokenPrices] = field(default_factory=dict)
    # --- proxies (llmlens.proxy; docs/proxy.md) ---
    # Add the proxy middleware to every Starlette/FastAPI app when instrumenting.
    proxy_auto: bool = True
    # Extra routes (path suffix -> wire format, or `off` to drop a default one).
    proxy_routes: Mapping[str, str] = field(default_factory=dict)
    # Only paths under these prefixes are LLM routes (empty: any path).
    proxy_path_prefixes: tuple[str, ...] = ()
    # Peers whose X-Forwarded-For / Forwarded headers are believed (IPs or CIDRs).
    proxy_trusted_proxies: tuple[str, ...] = ()
    # API key label (or, in code, the key itself) -> a name recorded instead of the label.
    proxy_api_key_names: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Secret for the API key labels (HMAC); None: a file next to the store, made once.
    proxy_key_secret: str | None = field(default=None, repr=False)
    # Request bodies up to this size are read for their model and parameters (bytes).
    proxy_max_body: int = 4 * 1024 * 1024
    # Other GenAI instrumentations of an SDK llmlens instruments (docs/configuration.md).
    peer_instrumentations: PeerMode = PeerMode.STAND_ASIDE

    @property
    def event_enabled(self) -> bool:
        return self.capture_content.on_event if self.emit_event is None else self.emit_event

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the environment, then apply keyword overrides (the `instrument()` arguments)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        readers = (
            ("capture_content", ENV_CAPTURE_CONTENT, _parse_content_mode),
            ("emit_event", ENV_EMIT_EVENT, _parse_bool),
            ("content_max_length", ENV_CONTENT_MAX_LENGTH, _parse_non_negative_int),
            ("providers", ENV_PROVIDERS, _parse_providers),
            ("provider_map", ENV_PROVIDER_MAP, _parse_provider_map),
            ("store", ENV_STORE, _parse_bool),
            ("db_path", ENV_DB, lambda var, raw: raw.strip()),
            ("pricing", ENV_PRICING, _parse_bool),
            ("prices", ENV_PRICES, _parse_prices),
            ("proxy_auto", ENV_PROXY_AUTO, _parse_bool),
            ("proxy_routes", ENV_PROXY_ROUTES, _parse_proxy_routes),
            ("proxy_path_prefixes", ENV_PROXY_PATH_PREFIXES, _parse_path_prefixes),
            ("proxy_trusted_proxies", ENV_PROXY_TRUSTED_PROXIES, _parse_networks),
            ("proxy_api_key_names", ENV_PROXY_API_KEY_NAMES, _parse_names),
            ("proxy_key_secret", ENV_PROXY_KEY_SECRET, lambda var, raw: raw.strip()),
            ("proxy_max_body", ENV_PROXY_MAX_BODY, _parse_non_negative_int),
            ("peer_instrumentations", ENV_PEER_INSTRUMENTATIONS, _parse_peer_mode),
        )
        for name, var, parse in readers:
            raw = env.get(var)
            if raw is not None and raw.strip():  # empty = unset, as OpenTelemetry's env spec says
                values[name] = parse(var, raw)
        settings = cls(**values)  # type: ignore[arg-type]
        return settings.with_overrides(**overrides) if overrides else settings

    def with_overrides(self, **overrides: object) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise SettingsError(f"unknown llmlens option(s) {sorted(unknown)}; accepted: {sorted(known)}")
        values = dict(overrides)
        mode = values.get("capture_content")
        if isinstance(mode, bool):
            values["capture_content"] = ContentMode.SPAN_ONLY if mode else ContentMode.NO_CONTENT
        elif isinstance(mode, str) and not isinstance(mode, ContentMode):
            values["capture_content"] = _parse_content_mode("capture_content", mode)
        if "providers" in values:
            providers = values["providers"]
            raw = providers if isinstance(providers, str) else ",".join(providers)  # type: ignore[arg-type]
            values["providers"] = _parse_providers("providers", raw)
        emit = values.get("emit_event")
        if isinstance(emit, str):
            values["emit_event"] = _parse_bool("emit_event", emit)
        elif emit is not None and not isinstance(emit, bool):
            raise SettingsError(f"emit_event={emit!r} is not valid; accepted values: true, false")
        if "provider_map" in values:
            mapping = values["provider_map"]
            if not isinstance(mapping, Mapping):
                accepted = "a dict of host[:port] -> provider"
                raise SettingsError(f"provider_map={mapping!r} is not valid; accepted values: {accepted}")
            values["provider_map"] = {str(k).strip().lower(): str(v).strip() for k, v in mapping.items()}
        store = values.get("store")
        if isinstance(store, str):
            values["store"] = _parse_bool("store", store)
        elif store is not None and not isinstance(store, bool):
            raise SettingsError(f"store={store!r} is not valid; accepted values: true, false")
        if values.get("db_path") is not None:
            values["db_path"] = str(values["db_path"])
        pricing = values.get("pricing")
        if isinstance(pricing, str):
            values["pricing"] = _parse_bool("pricing", pricing)
        elif pricing is not None and not isinstance(pricing, bool):
            raise SettingsError(f"pricing={pricing!r} is not valid; accepted values: true, false")
        if "prices" in values:  # added to the LLMLENS_PRICES table; for the same key, this one wins
            values["prices"] = {**self.prices, **_parse_prices("prices", values["prices"])}
        if "content_max_length" in values:
            values["content_max_length"] = _parse_non_negative_int(
                "content_max_length", str(values["content_max_length"])
            )
        if "peer_instrumentations" in values:
            values["peer_instrumentations"] = _parse_peer_mode(
                "peer_instrumentations", values["peer_instrumentations"]
            )
        _proxy_overrides(values)
        return replace(self, **values)  # type: ignore[arg-type]


def _proxy_overrides(values: dict[str, object]) -> None:
    auto = values.get("proxy_auto")
    if isinstance(auto, str):
        values["proxy_auto"] = _parse_bool("proxy_auto", auto)
    elif auto is not None and not isinstance(auto, bool):
        raise SettingsError(f"proxy_auto={auto!r} is not valid; accepted values: true, false")
    for name, parse in (
        ("proxy_routes", _parse_proxy_routes),
        ("proxy_path_prefixes", _parse_path_prefixes),
        ("proxy_trusted_proxies", _parse_networks),
        ("proxy_api_key_names", _parse_names),
    ):
        if values.get(name) is not None:
            values[name] = parse(name, values[name])
    if values.get("proxy_key_secret") is not None:
        values["proxy_key_secret"] = str(values["proxy_key_secret"])
    if "proxy_max_body" in values:
        values["proxy_max_body"] = _parse_non_negative_int("proxy_max_body", str(values["proxy_max_body"]))
