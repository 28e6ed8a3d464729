"""Every setting llmlens reads, declared once, read and validated in one place.

Each setting is one field of `Settings` (or, for the standard OpenTelemetry variables llmlens
interprets, of `OtelSettings`), declared with `_setting(...)`: its environment variable, its parser,
its default, the keyword that sets it in code and a doc line. `SETTINGS` and `OTEL_SETTINGS` are those
declarations as `Setting` rows; `from_env()`, `with_overrides()`, `llmlens config`, the table in
docs/configuration.md and the settings reference (docs/reference/settings.md, written by
scripts/settings-reference) all derive from them. A variable and a keyword go through the same
parser, and a bad value raises `SettingsError`, whose message is one line naming the variable (or
keyword) and the accepted values.

No other module of llmlens reads the environment: it asks these classes (tests/test_settings.py
checks). The OpenTelemetry SDK and its exporters read their own OTEL_* variables (endpoints, headers,
the sampler, resource attributes); llmlens only reads the ones it interprets itself.

Example:
    >>> Settings.from_env({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}).capture_content
    <ContentMode.SPAN_ONLY: 'SPAN_ONLY'>
"""

from __future__ import annotations

import enum
import functools
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

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


class SemconvNames(str, enum.Enum):
    """Which GenAI metric and attribute names llmlens emits (`OTEL_SEMCONV_STABILITY_OPT_IN`; semconv.md)."""

    DEFAULT = "default"  # gen_ai.client.operation.duration, gen_ai.client.token.usage, ...
    LATEST = "gen_ai_latest_experimental"  # only the newest: gen_ai.client.inference.*, ...
    DUP = "gen_ai_latest_experimental/dup"  # both

    @property
    def old(self) -> bool:
        return self is not SemconvNames.LATEST

    @property
    def new(self) -> bool:
        return self is not SemconvNames.DEFAULT


# The wire formats a proxy route can name (llmlens.proxy.formats.FORMATS), and `off`.
PROXY_ROUTE_FORMATS = (
    "openai_chat", "openai_completions", "openai_responses", "openai_embeddings", "anthropic_messages",
    "anthropic_count_tokens", "gemini_generate", "gemini_stream_generate",
)  # fmt: skip
EXPORTER_NAMES = ("otlp", "console", "none")
METRICS_EXPORTER_NAMES = (*EXPORTER_NAMES, "prometheus")  # a scrape endpoint: metrics only
PROMETHEUS_DEFAULT_PORT = 9464  # the OpenTelemetry specification's default for the Prometheus exporter
OTLP_PROTOCOLS = ("http/protobuf", "grpc")
SIGNALS = ("traces", "metrics", "logs")

# The store's bounds (llmlens.store.inputs has the same; tests/test_settings.py checks): a cap beyond 64
# bits or an age beyond this would overflow SQLite or the nanosecond clock.
INT64_MAX = 2**63 - 1
MAX_DURATION_DAYS = 10_000
MAX_DURATION_S = MAX_DURATION_DAYS * 86400

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


# --- parsers ------------------------------------------------------------------------------------------
# Each takes (where, raw): `where` names the variable or keyword in the error; `raw` is a variable's
# text or a keyword's value. A variable and a keyword with the same text give the same value.


def _invalid(where: str, raw: object, accepted: str) -> SettingsError:
    return SettingsError(f"{where}={raw!r} is not valid; accepted values: {accepted}")


def _parse_content_mode(where: str, raw: object) -> ContentMode:
    if isinstance(raw, ContentMode):
        return raw
    if isinstance(raw, bool):
        return ContentMode.SPAN_ONLY if raw else ContentMode.NO_CONTENT
    accepted = ", ".join(m.value for m in ContentMode) + ", true, false"
    if not isinstance(raw, str):
        raise _invalid(where, raw, accepted)
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
        raise _invalid(where, raw, accepted) from None


def _parse_bool(where: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    value = raw.strip().lower() if isinstance(raw, str) else None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _invalid(where, raw, "true, false")


def _parse_peer_mode(where: str, raw: object) -> PeerMode:
    if isinstance(raw, PeerMode):
        return raw
    value = str(raw).strip().lower().replace("-", "_")
    try:
        return PeerMode(value)
    except ValueError:
        raise _invalid(where, raw, ", ".join(m.value for m in PeerMode)) from None


def _parse_semconv_names(where: str, raw: object) -> SemconvNames:
    # A comma-separated list shared with other conventions (`http`, `database/dup`, ...): their tokens are
    # not ours to judge. `/dup` wins over the plain token, as OpenTelemetry's transition rules say.
    if isinstance(raw, SemconvNames):
        return raw
    if isinstance(raw, (list, tuple)) and all(isinstance(token, str) for token in raw):
        raw = ",".join(raw)
    if not isinstance(raw, str):
        raise _invalid(where, raw, "a comma-separated list of opt-in tokens")
    tokens = {token.strip().lower() for token in raw.split(",")}
    for names in (SemconvNames.DUP, SemconvNames.LATEST, SemconvNames.DEFAULT):
        if names.value in tokens:
            return names
    return SemconvNames.DEFAULT


def _whole_number(raw: object) -> int | None:
    """An int from an int or its text; None for anything else (a bool, a float, '1.5', '10k')."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            return None
    return None


def _real_number(raw: object) -> float | None:
    """A finite float from a number or its text; None for anything else (nan, inf, 'ninety')."""
    value: float | None = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except OverflowError:
            value = None
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    return value if value is not None and math.isfinite(value) else None


def _parse_non_negative_int(where: str, raw: object) -> int:
    value = _whole_number(raw)
    if value is None or value < 0:
        raise _invalid(where, raw, "an integer >= 0 (0 = no limit)")
    return value


def _parse_positive_int(where: str, raw: object) -> int:
    value = _whole_number(raw)
    if value is None or not 1 <= value <= INT64_MAX:
        raise _invalid(where, raw, "an integer >= 1")
    return value


def _parse_cap(where: str, raw: object) -> int:
    value = _whole_number(raw)
    if value is None or not 0 <= value <= INT64_MAX:  # beyond 64 bits SQLite cannot hold it
        raise _invalid(where, raw, f"an integer from 0 to {INT64_MAX} (0 = no limit)")
    return value


def _parse_age_days(where: str, raw: object) -> float:
    value = _real_number(raw)  # "inf" or a huge age would overflow, "nan" would disable the limit
    if value is None or not 0 <= value <= MAX_DURATION_DAYS:
        raise _invalid(where, raw, f"days from 0 to {MAX_DURATION_DAYS} (0 = no limit)")
    return value


def _parse_providers(where: str, raw: object) -> frozenset[str]:
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, Iterable) and all(isinstance(p, str) for p in raw):
        text = ",".join(raw)
    else:
        raise _invalid(where, raw, f"all, or a comma-separated list of {', '.join(KNOWN_PROVIDERS)}")
    names = {p.strip().lower() for p in text.split(",") if p.strip()}
    if not names or names == {"all"}:
        return frozenset(KNOWN_PROVIDERS)
    unknown = names - set(KNOWN_PROVIDERS)
    if unknown:
        raise SettingsError(
            f"{where}={raw!r} names unknown providers {sorted(unknown)}; "
            f"accepted values: all, or a comma-separated list of {', '.join(KNOWN_PROVIDERS)}"
        )
    return frozenset(names)


def _pairs(where: str, raw: object, accepted: str) -> list[tuple[str, str]]:
    """`a=b,c=d` text or a mapping, as stripped pairs; both sides must be non-empty."""
    if isinstance(raw, Mapping):
        items = [(str(k), str(v)) for k, v in raw.items()]
    elif isinstance(raw, str):
        items = [(i.partition("=")[0], i.partition("=")[2]) for i in raw.split(",") if i.strip()]
        if any("=" not in i for i in raw.split(",") if i.strip()):
            raise _invalid(where, raw, accepted)
    else:
        raise _invalid(where, raw, accepted)
    pairs = [(k.strip(), v.strip()) for k, v in items]
    if any(not k or not v for k, v in pairs):
        raise _invalid(where, raw, accepted)
    return pairs


def _parse_provider_map(where: str, raw: object) -> Mapping[str, str]:
    accepted = "a comma-separated list of host[:port]=provider (in code, a dict)"
    pairs = _pairs(where, raw, accepted)
    for host, _ in pairs:
        # host, host:port, an IPv6 address, or [an IPv6 address]:port; a port is a number
        if host.startswith("["):
            rest = host.partition("]")[2]  # "" or ":port" (anything else is no port number either)
            port = rest.removeprefix(":") if rest else None
        else:
            port = host.rpartition(":")[2] if host.count(":") == 1 else None
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise _invalid(where, raw, accepted + f"; in {host!r} the port is not a number from 1 to 65535")
    return {host.lower(): provider for host, provider in pairs}


def _parse_names(where: str, raw: object) -> Mapping[str, str]:
    return dict(_pairs(where, raw, "a comma-separated list of label=name (in code, a dict)"))


def _parse_prices(var: str, raw: object) -> Mapping[str, TokenPrices]:
    from llmlens.pricing import load_price_table  # reads the override file (JSON or TOML)

    return load_price_table(raw.strip() if isinstance(raw, str) else raw, var, SettingsError)


def _parse_proxy_routes(where: str, raw: object) -> Mapping[str, str]:
    formats = ", ".join(PROXY_ROUTE_FORMATS)
    accepted = f"a comma-separated list of path-suffix=format; formats: {formats}, off"
    if isinstance(raw, Mapping):
        items: Iterable[tuple[object, object]] = raw.items()
    elif isinstance(raw, str):
        items = (i.partition("=")[::2] for i in raw.split(","))
    else:
        raise _invalid(where, raw, accepted)
    result: dict[str, str] = {}
    for suffix, fmt in items:
        suffix, fmt = str(suffix).strip(), str(fmt).strip().lower()
        if not suffix and not fmt:
            continue
        if suffix[:1] not in ("/", ":") or (fmt not in PROXY_ROUTE_FORMATS and fmt != "off"):
            raise _invalid(where, raw, accepted)
        result[suffix] = fmt
    return result


def _items(where: str, raw: object, accepted: str) -> tuple[str, ...]:
    """`a,b` text or a list of strings, as stripped non-empty items."""
    if isinstance(raw, str):
        values: Iterable[object] = raw.split(",")
    elif isinstance(raw, Iterable) and not isinstance(raw, Mapping):
        values = raw
    else:
        raise _invalid(where, raw, accepted)
    return tuple(str(v).strip() for v in values if str(v).strip())


def _parse_path_prefixes(where: str, raw: object) -> tuple[str, ...]:
    accepted = "a comma-separated list of /paths"
    prefixes = _items(where, raw, accepted)
    if any(not p.startswith("/") for p in prefixes):
        raise _invalid(where, raw, accepted)
    return prefixes


def _parse_url_path(where: str, raw: object) -> str | None:
    """One absolute URL path (`/metrics`); empty: none."""
    value = raw.strip() if isinstance(raw, str) else None
    if value == "":
        return None
    if value is None or not value.startswith("/") or any(c in value for c in "?# ,"):
        raise _invalid(where, raw, "a URL path such as /metrics")
    return value


def _parse_networks(where: str, raw: object) -> tuple[str, ...]:
    import ipaddress

    accepted = "a comma-separated list of IP addresses or CIDRs"
    networks = _items(where, raw, accepted)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise _invalid(where, raw, accepted) from None
    return networks


def _parse_text(where: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise _invalid(where, raw, "a string")
    return raw.strip()


def _parse_path(where: str, raw: object) -> str:
    if not isinstance(raw, (str, os.PathLike)):
        raise _invalid(where, raw, "a file path")
    path: str = os.fspath(raw).strip()  # type: ignore[union-attr]
    if os.path.isdir(path):  # (the store's file: a directory would fail at the first write, far from here)
        raise _invalid(where, raw, f"a file path ({path} is a directory)")
    return path


def _health_number(where: str, raw: object, *, whole: bool = False) -> Any:
    value = _whole_number(raw) if whole else _real_number(raw)
    if value is None:
        raise _invalid(where, raw, "an integer" if whole else "a finite number")
    return value


def _parse_health_window(where: str, raw: object) -> float:
    value = float(_health_number(where, raw))
    if not 1e-9 <= value <= MAX_DURATION_S:  # what llmlens.store.inputs.duration accepts
        raise _invalid(
            where, value, f"a number of seconds > 0, at most {MAX_DURATION_S} ({MAX_DURATION_DAYS:,} days)"
        )
    return value


def _parse_health_min_requests(where: str, raw: object) -> int:
    value = int(_health_number(where, raw, whole=True))
    if value < 1:
        raise _invalid(where, value, "an integer >= 1")
    return value


def _parse_health_rate(where: str, raw: object) -> float:
    value = float(_health_number(where, raw))
    if not 0 < value <= 1:
        raise _invalid(where, value, "a fraction > 0 and <= 1 (0.05 = 5%)")
    return value


def _parse_health_ms(where: str, raw: object) -> float:
    value = float(_health_number(where, raw))
    if not value > 0:
        raise _invalid(where, value, "milliseconds > 0")
    return value


def _parse_fraction(where: str, raw: object) -> float:
    value = _real_number(raw)
    if value is None or not 0 <= value <= 1:
        raise _invalid(where, raw, "a fraction from 0 to 1 (0.01 = 1% of requests; 0 = off)")
    return value


def _parse_keep_ms(where: str, raw: object) -> float:
    value = _real_number(raw)
    if value is None or not 0 <= value <= MAX_DURATION_S * 1000:
        raise _invalid(where, raw, "milliseconds >= 0 (0 = keep every sampled request)")
    return value


def _parse_interval_ms(where: str, raw: object) -> float:
    value = _real_number(raw)
    if value is None or not 0.05 <= value <= 1000:
        raise _invalid(where, raw, "milliseconds from 0.05 to 1000")
    return value


def _parse_exporters(where: str, raw: object, allowed: tuple[str, ...] = EXPORTER_NAMES) -> tuple[str, ...]:
    """`otlp`, `console`, `none` or a comma-separated mix; `none` (or nothing) is the empty tuple."""
    accepted = f"{', '.join(allowed)} (comma-separated)"
    if not isinstance(raw, str):
        raise _invalid(where, raw, accepted)
    names = [n.strip().lower() for n in raw.split(",") if n.strip()] or ["none"]
    if any(n not in allowed for n in names):
        raise _invalid(where, raw, accepted)
    return tuple(dict.fromkeys(n for n in names if n != "none"))


def _parse_metrics_exporters(where: str, raw: object) -> tuple[str, ...]:
    """As `_parse_exporters`, plus `prometheus` (the scrape endpoint)."""
    return _parse_exporters(where, raw, METRICS_EXPORTER_NAMES)


def _parse_port(where: str, raw: object) -> int:
    value = _whole_number(raw)
    if value is None or not 0 <= value <= 65535:
        raise _invalid(where, raw, "a TCP port from 0 to 65535 (0 = any free port)")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


def _parse_log_level(where: str, raw: object) -> str:
    """A level name (any case; in code, also a `logging` level number), as its upper-case name."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in (10, 20, 30, 40, 50):
        return LOG_LEVELS[raw // 10 - 1]
    value = raw.strip().upper() if isinstance(raw, str) else None
    if value == "WARN":
        value = "WARNING"
    if value not in LOG_LEVELS:
        raise _invalid(where, raw, ", ".join(LOG_LEVELS) + " (any case)")
    return value


def _parse_log_format(where: str, raw: object) -> str:
    value = raw.strip().lower() if isinstance(raw, str) else None
    if value not in LOG_FORMATS:
        raise _invalid(where, raw, ", ".join(LOG_FORMATS))
    return value


def _parse_protocol(where: str, raw: object) -> str:
    value = raw.strip().lower() if isinstance(raw, str) else None
    if value not in OTLP_PROTOCOLS:
        raise _invalid(where, raw, ", ".join(OTLP_PROTOCOLS))
    return value


# --- the table --------------------------------------------------------------------------------------

_UNSET: Any = object()
_FIELD_NAME = "<the field's name>"  # the default keyword of a setting: the name of its field


@dataclass(frozen=True)
class Setting:
    """One row of a settings table: everything about one setting, from its `_setting(...)` declaration."""

    name: str  # the field of Settings/OtelSettings, and the keyword of their from_env()/with_overrides()
    env: str  # the environment variable
    parse: Callable[[str, Any], Any]  # (variable or keyword, raw value) -> value, or SettingsError
    default: Any
    keyword: str | None  # the keyword that sets it in code, of `api` (None: only the variable does)
    api: str  # what takes `keyword`, and reads the setting: "instrument()", "Retention", ...
    values: str  # the accepted values, for docs/configuration.md
    doc: str  # what it does: one line, for docs/configuration.md
    default_doc: str | None = None  # the default in words, when the value alone does not say it
    secret: bool = False  # never printed: `llmlens config` only says it is set
    merge: bool = False  # a keyword's mapping is added to the variable's instead of replacing it

    def read(self, environ: Mapping[str, str]) -> Any:
        """The variable's value, parsed; `_UNSET` when it is unset or empty (empty = unset, as
        OpenTelemetry's environment specification says)."""
        raw = environ.get(self.env)
        if raw is None or not raw.strip():
            return _UNSET
        return self.parse(self.env, raw)

    def default_text(self) -> str:
        """The default as docs/configuration.md shows it."""
        if self.default_doc:
            return self.default_doc
        return (
            f"`{as_text(self.default)}`"
            if as_text(self.default)
            else ("none" if self.default is None else "empty")
        )


def _setting(
    env: str,
    parse: Callable[[str, Any], Any],
    default: Any,
    *,
    values: str,
    doc: str,
    keyword: str | None = _FIELD_NAME,
    api: str = "instrument()",
    default_doc: str | None = None,
    secret: bool = False,
    merge: bool = False,
) -> Any:
    """A settings field: its default plus the rest of its `Setting` row (in the field's metadata)."""
    row = dict(env=env, parse=parse, keyword=keyword, api=api, values=values, doc=doc,
               default_doc=default_doc, secret=secret, merge=merge)  # fmt: skip
    if isinstance(default, (dict, list, set)):
        return field(
            default_factory=lambda: type(default)(default), metadata={"setting": row}, repr=not secret
        )
    return field(default=default, metadata={"setting": row}, repr=not secret)


@functools.cache
def _rows(cls: type) -> tuple[Setting, ...]:
    rows = []
    for f in fields(cls):
        row = dict(f.metadata["setting"])
        if row["keyword"] == _FIELD_NAME:
            row["keyword"] = f.name
        default = f.default_factory() if callable(f.default_factory) else f.default
        rows.append(Setting(name=f.name, default=default, **row))
    return tuple(rows)


_T = TypeVar("_T", bound="_Table")


class _Table:
    """`from_env()` and `with_overrides()` for a frozen dataclass of `_setting` fields."""

    # Checks of several settings together: (settings, where each value came from) -> SettingsError.
    _checks: ClassVar[tuple[Callable[[Any, Mapping[str, str]], None], ...]] = ()

    @classmethod
    def table(cls) -> tuple[Setting, ...]:
        return _rows(cls)

    @classmethod
    def from_env(
        cls: type[_T],
        environ: Mapping[str, str] | None = None,
        /,
        *,
        only: Iterable[str] | None = None,
        **keywords: Any,
    ) -> _T:
        """Defaults, then the environment (`os.environ` unless given), then the keywords.

        `only` names the settings to read from the environment (the others keep their defaults), for
        code that uses only a few (`instrument()`, the store's path): a bad variable it does not use is
        not its error. A bad value raises SettingsError.
        """
        values, sources = cls._env_values(environ, only, None)
        return cls()._apply(values, sources, keywords)  # type: ignore[attr-defined,no-any-return]

    @classmethod
    def _env_values(
        cls, environ: Mapping[str, str] | None, only: Iterable[str] | None, errors: list[str] | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """(setting -> value, setting -> its variable) of the variables that are set, among `only`.
        A bad one raises SettingsError, or with `errors` is left out and its message appended there."""
        env = os.environ if environ is None else environ
        rows = {s.name: s for s in cls.table()}
        wanted = rows if only is None else {name: rows[name] for name in only}
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, row in wanted.items():
            try:
                value = row.read(env)
            except SettingsError as error:
                if errors is None:
                    raise
                errors.append(str(error))
                continue
            if value is not _UNSET:
                values[name], sources[name] = value, row.env
        return values, sources

    @classmethod
    def from_env_lenient(
        cls: type[_T],
        environ: Mapping[str, str] | None = None,
        /,
        *,
        only: Iterable[str] | None = None,
        **keywords: Any,
    ) -> tuple[_T, list[str]]:
        """`from_env()` for code that must not stop an application: a bad variable or keyword is left
        out (the setting keeps its default, or the variable's value when the keyword was the bad one)
        and its error is returned, one line each; every other value applies. If the values that are
        good alone fail a check across settings, the keywords alone apply, or else the defaults."""
        errors: list[str] = []
        values, sources = cls._env_values(environ, only, errors)
        base = cls()
        good: dict[str, Any] = {}
        for name, raw in keywords.items():
            try:
                base._apply({}, {}, {name: raw})  # type: ignore[attr-defined]
            except SettingsError as error:
                errors.append(str(error))
                continue
            good[name] = raw
        for attempt in ((values, sources, good), ({}, {}, good)):
            try:
                return base._apply(*attempt), errors  # type: ignore[attr-defined]
            except SettingsError as error:
                errors.append(str(error))
        return base, errors

    def with_overrides(self: _T, **keywords: Any) -> _T:
        """These settings with keyword values (the `instrument()` arguments) put in; validated."""
        return self._apply({}, {}, keywords)  # type: ignore[attr-defined,no-any-return]

    def _apply(self: _T, values: dict[str, Any], sources: dict[str, str], keywords: Mapping[str, Any]) -> _T:
        rows = {s.name: s for s in self.table()}
        unknown = set(keywords) - set(rows)
        if unknown:
            raise SettingsError(f"unknown llmlens option(s) {sorted(unknown)}; accepted: {sorted(rows)}")
        for name, raw in keywords.items():
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue  # not given, as an empty variable is unset
            row = rows[name]
            value = row.parse(name, raw)
            if row.merge:  # added to the table of the variable; for the same key, this one wins
                value = {**values.get(name, getattr(self, name)), **value}
            values[name], sources[name] = value, name
        result = replace(self, **values)  # type: ignore[type-var]
        for check in self._checks:
            check(result, sources)
        return result

    def sources(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Setting name -> "environment" when its variable is set, else "default"."""
        env = os.environ if environ is None else environ
        return {s.name: "environment" if (env.get(s.env) or "").strip() else "default" for s in self.table()}


def variable_text(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The text of setting `name`'s variable as set (stripped), None when unset or empty: for messages
    that say where a value came from (`llmlens price`: `LLMLENS_PRICES=prices.toml`)."""
    env = os.environ if environ is None else environ
    (row,) = [s for s in SETTINGS if s.name == name]
    return (env.get(row.env) or "").strip() or None


def _check_health_order(settings: Settings, sources: Mapping[str, str]) -> None:
    """The degraded thresholds are at most the critical ones (`sources`: where each value came from)."""
    check_health_thresholds(
        {s.keyword: getattr(settings, s.name) for s in SETTINGS if s.api == "HealthThresholds"},
        {s.keyword: sources[s.name] for s in SETTINGS if s.api == "HealthThresholds" and s.name in sources},
    )


def check_health_thresholds(values: Mapping[str, Any], where: Mapping[str, str]) -> None:
    """Raise SettingsError for bad `HealthThresholds` values (keyed by its fields); `where` names the
    variable or keyword each value that was set came from, so the message can blame the one that was."""
    for row in SETTINGS:
        if row.api == "HealthThresholds" and row.keyword is not None:
            row.parse(where.get(row.keyword, row.keyword), values[row.keyword])
    for low, high, what in (
        ("degraded_error_rate", "critical_error_rate", "error rate"),
        ("degraded_p95_ms", "critical_p95_ms", "p95"),
    ):
        if values[low] > values[high]:  # blame the one that was set, if only one was
            if high in where and low not in where:
                raise _invalid(where[high], values[high], f"at least the degraded {what} ({values[low]})")
            raise _invalid(where.get(low, low), values[low], f"at most the critical {what} ({values[high]})")


@dataclass(frozen=True)
class Settings(_Table):
    """What llmlens does: the instrumentation (fixed when `instrument()` runs), the local store's
    retention, `llmlens health`'s thresholds and the dashboard's token. Each field is one row of
    `SETTINGS`."""

    # --- instrumentation: instrument() (and configure()) keywords ---
    capture_content: ContentMode = _setting(  # noqa: RUF009 (a field, as field() is)
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", _parse_content_mode, ContentMode.NO_CONTENT,
        values="`NO_CONTENT`, `SPAN_ONLY`, `EVENT_ONLY`, `SPAN_AND_EVENT` (any case); `true` = `SPAN_ONLY`, "
        "`false` = `NO_CONTENT`",
        doc="Whether prompts, completions, system instructions and tool definitions are recorded, and where: "
        "as JSON strings on the span (`gen_ai.input.messages`, ...) and/or as structured attributes of the "
        "`gen_ai.client.inference.operation.details` log event. Off by default: nothing a user typed leaves "
        "the process unless you turn this on.",
    )  # fmt: skip
    # None: emit the details event when the content mode asks for events (util-genai's rule).
    emit_event: bool | None = _setting(
        "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", _parse_bool, None,
        values="`true`, `false`", default_doc="on for `EVENT_ONLY`/`SPAN_AND_EVENT`, else off",
        doc="Emit the `gen_ai.client.inference.operation.details` log event for every call (without content "
        "unless capture is on).",
    )  # fmt: skip
    semconv_opt_in: SemconvNames = _setting(  # noqa: RUF009
        "OTEL_SEMCONV_STABILITY_OPT_IN", _parse_semconv_names, SemconvNames.DEFAULT,
        values="comma-separated tokens; llmlens reads `gen_ai_latest_experimental` and "
        "`gen_ai_latest_experimental/dup` and ignores the others",
        default_doc="unset: the default names",
        doc="Which GenAI metric names are emitted: the default ones (`gen_ai.client.operation.duration`, "
        "`gen_ai.client.token.usage`, with `llmlens.usage.tokens`), only the newest "
        "(`gen_ai_latest_experimental`: `gen_ai.client.inference.*`, `gen_ai.client.embeddings.*`, "
        "`gen_ai.usage.cache_write.input_tokens`) or both (`gen_ai_latest_experimental/dup`); see "
        "[semconv.md](semconv.md#metrics).",
    )  # fmt: skip
    content_max_length: int = _setting(
        "LLMLENS_CONTENT_MAX_LENGTH", _parse_non_negative_int, 16384,
        values="integer >= 0 (0 = no limit)",
        doc="Longest text kept per captured content part, in characters; longer text is cut and ends with "
        "`…[llmlens: N more characters]`. The JSON structure of the messages is kept. Inline base64 data "
        "(`data:` URLs for images, audio, files) is always replaced by a `blob` part saying how many bytes "
        "were elided.",
    )  # fmt: skip
    providers: frozenset[str] = _setting(
        "LLMLENS_PROVIDERS", _parse_providers, frozenset(KNOWN_PROVIDERS),
        values="`all`, or a comma-separated list of " + ", ".join(f"`{p}`" for p in KNOWN_PROVIDERS)
        + " (in code, also a list)",
        default_doc="`all`", doc="Which installed SDKs to instrument (see [providers.md](providers.md)).",
    )  # fmt: skip
    # host or host:port -> gen_ai.provider.name, for OpenAI-compatible servers we cannot recognise.
    provider_map: Mapping[str, str] = _setting(
        "LLMLENS_PROVIDER_MAP", _parse_provider_map, {},
        values="comma-separated `host[:port]=provider` (in code, also a dict)",
        doc="Names the `gen_ai.provider.name` of OpenAI-compatible servers llmlens cannot recognise from the "
        "host (for example `llm.internal:8000=vllm`).",
    )  # fmt: skip
    pricing: bool = _setting(
        "LLMLENS_PRICING", _parse_bool, True, values="`true`, `false`",
        doc="Put `gen_ai.usage.cost.*` on spans and record `llmlens.cost` / `llmlens.cost.unpriced` (see "
        "[pricing.md](pricing.md)).",
    )  # fmt: skip
    # The user's prices: 'provider/model' (fnmatch pattern) -> USD per million tokens.
    prices: Mapping[str, TokenPrices] = _setting(
        "LLMLENS_PRICES", _parse_prices, {}, merge=True,
        values="path to a JSON or TOML file of `provider/model` (patterns allowed) → USD per million tokens "
        "(in code, also a dict, added to the variable's)",
        doc="Your own prices; they win over the `genai-prices` data.",
    )  # fmt: skip
    # Record every LLM request in the local SQLite store (llmlens.store) when the tracer provider is
    # the OpenTelemetry SDK's.
    store: bool = _setting(
        "LLMLENS_STORE", _parse_bool, True, values="`true`, `false`",
        doc="Record every LLM request in the local SQLite store (see [store.md](store.md)). It is added to "
        "the SDK tracer provider `instrument()` uses.",
    )  # fmt: skip
    # The store file; None: the user's data directory (default_db_path()).
    db_path: str | None = _setting(
        "LLMLENS_DB", _parse_path, None, values="a file path",
        default_doc="the user data dir: `~/.local/share/llmlens/llmlens.db` on Linux (`$XDG_DATA_HOME`), "
        "`~/Library/Application Support/llmlens/` on macOS, `%LOCALAPPDATA%\\llmlens\\` on Windows",
        doc="Where the store lives; also the default of every `llmlens` store command (`--db` overrides).",
    )  # fmt: skip
    # Other GenAI instrumentations of an SDK llmlens instruments (docs/configuration.md).
    peer_instrumentations: PeerMode = _setting(  # noqa: RUF009
        "LLMLENS_PEER_INSTRUMENTATIONS", _parse_peer_mode, PeerMode.STAND_ASIDE,
        values="`stand_aside`, `defer`, `allow` (any case; in code, also a `llmlens.settings.PeerMode`)",
        doc="Who traces an SDK that another GenAI instrumentation (OpenTelemetry's "
        "`opentelemetry-instrumentation-genai-*` or contrib's `opentelemetry-instrumentation-openai-v2`, "
        "OpenLLMetry, OpenInference) instruments too: llmlens alone, the other one alone, or both (see "
        "[below](#other-instrumentations-of-the-same-sdk)).",
    )  # fmt: skip

    # --- proxies (llmlens.proxy; docs/proxy.md) ---
    proxy_auto: bool = _setting(
        "LLMLENS_PROXY_AUTO", _parse_bool, True, values="`true`, `false`",
        doc="Add the LLM proxy middleware to every Starlette/FastAPI app (see [proxy.md](proxy.md)).",
    )  # fmt: skip
    proxy_routes: Mapping[str, str] = _setting(
        "LLMLENS_PROXY_ROUTES", _parse_proxy_routes, {},
        values="comma-separated `path-suffix=format` (a proxy wire format, or `off`; in code, also a dict)",
        doc="Routes added to the proxy's table; `=off` removes a default one.",
    )  # fmt: skip
    proxy_path_prefixes: tuple[str, ...] = _setting(
        "LLMLENS_PROXY_PATH_PREFIXES", _parse_path_prefixes, (),
        values="comma-separated `/paths` (in code, also a list)", default_doc="empty (any path)",
        doc="Only paths under these prefixes are LLM routes.",
    )  # fmt: skip
    proxy_trusted_proxies: tuple[str, ...] = _setting(
        "LLMLENS_PROXY_TRUSTED_PROXIES", _parse_networks, (),
        values="comma-separated IP addresses or CIDRs (in code, also a list)",
        doc="Peers whose `X-Forwarded-For` / `Forwarded` headers are believed.",
    )  # fmt: skip
    # API key label (or, in code, the key itself) -> a name recorded instead of the label.
    proxy_api_key_names: Mapping[str, str] = _setting(
        "LLMLENS_PROXY_API_KEY_NAMES", _parse_names, {}, secret=True,
        values="comma-separated `label=name` (in code, also a dict, whose keys may be the API keys)",
        doc="Names recorded instead of API key labels (never printed by `llmlens config`).",
    )  # fmt: skip
    # Secret for the API key labels (HMAC); None: a file next to the store, made once.
    proxy_key_secret: str | None = _setting(
        "LLMLENS_PROXY_KEY_SECRET", _parse_text, None, secret=True, values="a string",
        default_doc="a random one, kept in a file next to the store",
        doc="The HMAC secret of the API key labels (never printed by `llmlens config`).",
    )  # fmt: skip
    proxy_max_body: int = _setting(
        "LLMLENS_PROXY_MAX_BODY", _parse_non_negative_int, 4 * 1024 * 1024,
        values="integer >= 0 (bytes)",
        doc="Request bodies up to this size are read for their model and parameters; JSON responses are "
        "kept (a copy) up to it.",
    )  # fmt: skip

    proxy_metrics_path: str | None = _setting(
        "LLMLENS_PROXY_METRICS_PATH", _parse_url_path, None, values="a URL path such as `/metrics`",
        default_doc="none (every path is the application's)",
        doc="The proxy middleware answers `GET` on this path with llmlens's metrics in the Prometheus "
        "text format, on the proxied application's own port (see [prometheus.md](prometheus.md)).",
    )  # fmt: skip
    metrics_max_models: int = _setting(
        "LLMLENS_METRICS_MAX_MODELS", _parse_positive_int, 200, values="integer >= 1",
        doc="Distinct model names that get their own metric series in a process; later ones are recorded "
        "in metrics as `_OTHER` (spans and the store keep the real name). Bounds the series a proxy's "
        "clients can make by sending made-up model names.",
    )  # fmt: skip
    proxy_request_log: bool = _setting(
        "LLMLENS_PROXY_REQUEST_LOG", _parse_bool, True, values="`true`, `false`",
        doc="Write one INFO line per proxied LLM request (logger `llmlens.proxy.requests`: method, path, "
        "status, operation, model, outcome, duration, tokens, error) with the request's trace, span and "
        "request ids. It goes to the OpenTelemetry logs pipeline of `instrument()`, and to your handlers "
        "when that logger is enabled for INFO (see [logs.md](logs.md)).",
    )  # fmt: skip

    # --- the store's retention (llmlens.store.retention.Retention) ---
    store_max_success: int = _setting(
        "LLMLENS_STORE_MAX_SUCCESS", _parse_cap, 50_000, keyword="max_success", api="Retention",
        values="integer >= 0 (0 = no limit)", doc="Successful requests kept.",
    )  # fmt: skip
    store_max_errors: int = _setting(
        "LLMLENS_STORE_MAX_ERRORS", _parse_cap, 10_000, keyword="max_errors", api="Retention",
        values="integer >= 0 (0 = no limit)",
        doc="Failed requests kept, counted apart from successes so errors are not pushed out by traffic.",
    )  # fmt: skip
    store_max_age_days: float = _setting(
        "LLMLENS_STORE_MAX_AGE_DAYS", _parse_age_days, 90.0, keyword="max_age_days", api="Retention",
        values=f"days from 0 to {MAX_DURATION_DAYS} (0 = no limit)",
        doc="Requests and rollups older than this are pruned.",
    )  # fmt: skip

    store_max_profiles: int = _setting(
        "LLMLENS_STORE_MAX_PROFILES", _parse_cap, 200, keyword="max_profiles", api="Retention",
        values="integer >= 0 (0 = no limit)",
        doc="Profiles kept (see [profiling.md](profiling.md)); the oldest go first.",
    )  # fmt: skip

    # --- profiling (llmlens.profiling; docs/profiling.md) ---
    profiling: bool = _setting(
        "LLMLENS_PROFILING", _parse_bool, True, values="`true`, `false`",
        doc="Watch the store for `llmlens profile arm` (a read of the store every 0.5 s in a background "
        "thread) and allow sampling. Off: no profile is ever taken.",
    )  # fmt: skip
    profile_sample: float = _setting(
        "LLMLENS_PROFILE_SAMPLE", _parse_fraction, 0.0, values="a fraction from 0 to 1",
        doc="Profile this fraction of LLM requests all the time; keep only those slower than "
        "`LLMLENS_PROFILE_KEEP_MS` or failed.",
    )  # fmt: skip
    profile_keep_ms: float = _setting(
        "LLMLENS_PROFILE_KEEP_MS", _parse_keep_ms, 2000.0, values="milliseconds >= 0",
        doc="A sampled profile is kept when its request took at least this long (or failed).",
    )  # fmt: skip
    profile_interval_ms: float = _setting(
        "LLMLENS_PROFILE_INTERVAL_MS", _parse_interval_ms, 1.0, values="milliseconds from 0.05 to 1000",
        doc="pyinstrument's sampling interval for every profile.",
    )  # fmt: skip

    # --- provider health (`llmlens health`; llmlens.store's HealthThresholds) ---
    health_window_s: float = _setting(
        "LLMLENS_HEALTH_WINDOW_S", _parse_health_window, 300.0, keyword="window_s", api="HealthThresholds",
        values="seconds > 0", doc="Only requests that started this recently count (`--window` overrides).",
    )  # fmt: skip
    health_min_requests: int = _setting(
        "LLMLENS_HEALTH_MIN_REQUESTS", _parse_health_min_requests, 5, keyword="min_requests",
        api="HealthThresholds", values="integer >= 1",
        doc="Fewer requests in the window can make a provider degraded, never critical.",
    )  # fmt: skip
    health_degraded_error_rate: float = _setting(
        "LLMLENS_HEALTH_DEGRADED_ERROR_RATE", _parse_health_rate, 0.05, keyword="degraded_error_rate",
        api="HealthThresholds", values="a fraction > 0 and <= 1, at most the critical one",
        doc="The error rate from which a provider is degraded.",
    )  # fmt: skip
    health_critical_error_rate: float = _setting(
        "LLMLENS_HEALTH_CRITICAL_ERROR_RATE", _parse_health_rate, 0.5, keyword="critical_error_rate",
        api="HealthThresholds", values="a fraction > 0 and <= 1",
        doc="The error rate from which a provider is critical.",
    )  # fmt: skip
    health_degraded_p95_ms: float = _setting(
        "LLMLENS_HEALTH_DEGRADED_P95_MS", _parse_health_ms, 30_000.0, keyword="degraded_p95_ms",
        api="HealthThresholds", values="milliseconds > 0, at most the critical one",
        doc="The p95 latency (time to first chunk for streams, else duration) from which a provider is "
        "degraded.",
    )  # fmt: skip
    health_critical_p95_ms: float = _setting(
        "LLMLENS_HEALTH_CRITICAL_P95_MS", _parse_health_ms, 120_000.0, keyword="critical_p95_ms",
        api="HealthThresholds", values="milliseconds > 0",
        doc="The p95 latency from which a provider is critical.",
    )  # fmt: skip

    # --- the dashboard (`llmlens ui`, llmlens.web.create_app; docs/ui.md) ---
    ui_token: str | None = _setting(
        "LLMLENS_UI_TOKEN", _parse_text, None, keyword="token", api="create_app()", secret=True,
        values="a string (long and random)",
        default_doc="none: no token, and `llmlens ui` binds loopback only",
        doc="The token every request to the dashboard must carry (`?token=` once, then a cookie; or "
        "`Authorization: Bearer`); `llmlens ui` needs one to bind a non-loopback address (see "
        "[ui.md](ui.md)).",
    )  # fmt: skip

    # --- the Prometheus scrape endpoint of configure() (docs/prometheus.md) ---
    prometheus_port: int | None = _setting(
        "LLMLENS_PROMETHEUS_PORT", _parse_port, None, api="configure()",
        values="a TCP port (0 = any free port)",
        default_doc=f"none: no endpoint, unless `OTEL_METRICS_EXPORTER` names `prometheus` (then "
        f"`{PROMETHEUS_DEFAULT_PORT}`)",
        doc="The port of the Prometheus scrape endpoint `configure()` serves the metrics on (see "
        "[prometheus.md](prometheus.md)).",
    )  # fmt: skip
    prometheus_host: str = _setting(
        "LLMLENS_PROMETHEUS_HOST", _parse_text, "127.0.0.1", api="configure()",
        values="an address to bind",
        doc="The address the Prometheus scrape endpoint binds (`0.0.0.0`: every interface).",
    )  # fmt: skip

    # --- llmlens's own log lines (llmlens.logs; docs/logs.md) ---
    # None: WARNING for llmlens's handlers, and the `llmlens` logger's level left alone.
    log_level: str | None = _setting(
        "LLMLENS_LOG_LEVEL", _parse_log_level, None,
        values="`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` (any case; in code, also a `logging` level)",
        default_doc="`WARNING`, and the `llmlens` logger's own level left as it is",
        doc="The lowest level of llmlens's own log lines (logger `llmlens`) that reach the OpenTelemetry "
        "logs pipeline and llmlens's console handler. Set, it is also the `llmlens` logger's level (`INFO` "
        "puts the proxy's request lines on your handlers too). Secrets are always redacted (see "
        "[logs.md](logs.md)).",
    )  # fmt: skip
    log_format: str = _setting(
        "LLMLENS_LOG_FORMAT", _parse_log_format, "text", values="`text`, `json`",
        doc="The format of the lines llmlens's console handler writes to stderr (only when your application "
        "has no handler of its own for them): `text` with a `[trace=… span=… req=…]` prefix, or one JSON "
        "object per line. Your own handlers can use the same formats: `llmlens.logs.TextFormatter`, "
        "`llmlens.logs.JsonFormatter` (see [logs.md](logs.md)).",
    )  # fmt: skip

    _checks = (_check_health_order,)

    @property
    def event_enabled(self) -> bool:
        return self.capture_content.on_event if self.emit_event is None else self.emit_event

    def values_for(self, api: str) -> dict[str, Any]:
        """The settings `api` takes ("Retention", "HealthThresholds"), by its keywords."""
        return {s.keyword: getattr(self, s.name) for s in self.table() if s.api == api and s.keyword}

    @classmethod
    def for_api(cls, api: str, environ: Mapping[str, str] | None = None, **keywords: Any) -> dict[str, Any]:
        """`values_for(api)`, reading only the variables of `api`'s settings; `keywords` are `api`'s
        (None = not given). For `Retention.from_env()` and `HealthThresholds.from_env()`."""
        rows = {s.keyword: s for s in cls.table() if s.api == api and s.keyword}
        unknown = set(keywords) - set(rows)
        if unknown:
            raise SettingsError(f"unknown {api} option(s) {sorted(unknown)}; accepted: {sorted(rows)}")
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for keyword, row in rows.items():
            raw = keywords.get(keyword)
            if raw is not None and not (isinstance(raw, str) and not raw.strip()):
                values[row.name], sources[row.name] = row.parse(keyword, raw), keyword
            elif (value := row.read(env)) is not _UNSET:
                values[row.name], sources[row.name] = value, row.env
        settings = replace(cls(), **values)
        for check in cls._checks:
            check(settings, sources)
        return settings.values_for(api)


@dataclass(frozen=True)
class OtelSettings(_Table):
    """The standard OpenTelemetry variables llmlens interprets itself, for `llmlens.configure()` (and
    shown by `llmlens config`). The SDK and its exporters read these and the other OTEL_* variables
    themselves (endpoints, headers, timeouts, the sampler, resource attributes)."""

    service_name: str | None = _setting(
        "OTEL_SERVICE_NAME", _parse_text, None, keyword="service_name", api="configure()",
        values="a string", default_doc="the SDK's: `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else "
        "`unknown_service`",
        doc="The `service.name` of the resource `configure()` makes.",
    )  # fmt: skip
    traces_exporter: tuple[str, ...] | None = _setting(
        "OTEL_TRACES_EXPORTER", _parse_exporters, None, keyword="exporter", api="configure()",
        values="`otlp`, `console`, `none` (comma-separated)",
        default_doc="`otlp` when an OTLP endpoint variable (for all signals or this one) is set, else `none`",
        doc="Where `configure()` sends spans (its `exporter` argument sets all three signals).",
    )  # fmt: skip
    metrics_exporter: tuple[str, ...] | None = _setting(
        "OTEL_METRICS_EXPORTER", _parse_metrics_exporters, None, keyword="exporter", api="configure()",
        values="`otlp`, `console`, `prometheus`, `none` (comma-separated)",
        default_doc="`otlp` when an OTLP endpoint variable (for all signals or this one) is set, else `none`",
        doc="Where `configure()` sends metrics.",
    )  # fmt: skip
    logs_exporter: tuple[str, ...] | None = _setting(
        "OTEL_LOGS_EXPORTER", _parse_exporters, None, keyword="exporter", api="configure()",
        values="`otlp`, `console`, `none` (comma-separated)",
        default_doc="`otlp` when an OTLP endpoint variable (for all signals or this one) is set, else `none`",
        doc="Where `configure()` sends log events.",
    )  # fmt: skip
    otlp_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT", _parse_text, None, keyword=None, api="configure()",
        values="a URL", default_doc="none",
        doc="Set: the signals without an exporter variable go over OTLP (the exporters read the URL).",
    )  # fmt: skip
    otlp_traces_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", _parse_text, None, keyword=None, api="configure()",
        values="a URL", default_doc="none", doc="The same, for spans only.",
    )  # fmt: skip
    otlp_metrics_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", _parse_text, None, keyword=None, api="configure()",
        values="a URL", default_doc="none", doc="The same, for metrics only.",
    )  # fmt: skip
    otlp_logs_endpoint: str | None = _setting(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", _parse_text, None, keyword=None, api="configure()",
        values="a URL", default_doc="none", doc="The same, for log events only.",
    )  # fmt: skip
    otlp_protocol: str = _setting(
        "OTEL_EXPORTER_OTLP_PROTOCOL", _parse_protocol, "http/protobuf", keyword=None, api="configure()",
        values="`http/protobuf`, `grpc`", doc="Which OTLP exporters `configure()` makes.",
    )  # fmt: skip

    def exporters(self, exporter: str | None = None) -> dict[str, list[str]]:
        """Exporter names per signal: `exporter` (configure()'s argument, for all signals), else the
        signal's variable, else `otlp` when an OTLP endpoint for it is set and none otherwise."""
        chosen = None if exporter is None else _parse_metrics_exporters("exporter", exporter)
        result: dict[str, list[str]] = {}
        for signal in SIGNALS:
            names = chosen if chosen is not None else getattr(self, f"{signal}_exporter")
            if names is None:
                endpoint = self.otlp_endpoint or getattr(self, f"otlp_{signal}_endpoint")
                names = ("otlp",) if endpoint else ()
            # `prometheus` in the argument is for metrics: traces and logs have no scrape endpoint
            result[signal] = [n for n in names if signal == "metrics" or n != "prometheus"]
        return result


SETTINGS: tuple[Setting, ...] = Settings.table()
OTEL_SETTINGS: tuple[Setting, ...] = OtelSettings.table()

# The variables' names, for messages that name them (and for older imports).
_ENV = {s.name: s.env for s in SETTINGS}
ENV_CAPTURE_CONTENT = _ENV["capture_content"]
ENV_EMIT_EVENT = _ENV["emit_event"]
ENV_CONTENT_MAX_LENGTH = _ENV["content_max_length"]
ENV_PROVIDERS = _ENV["providers"]
ENV_PROVIDER_MAP = _ENV["provider_map"]
ENV_STORE = _ENV["store"]
ENV_DB = _ENV["db_path"]
ENV_PRICING = _ENV["pricing"]
ENV_PRICES = _ENV["prices"]
ENV_PROXY_AUTO = _ENV["proxy_auto"]
ENV_PROXY_ROUTES = _ENV["proxy_routes"]
ENV_PROXY_PATH_PREFIXES = _ENV["proxy_path_prefixes"]
ENV_PROXY_TRUSTED_PROXIES = _ENV["proxy_trusted_proxies"]
ENV_PROXY_API_KEY_NAMES = _ENV["proxy_api_key_names"]
ENV_PROXY_KEY_SECRET = _ENV["proxy_key_secret"]
ENV_PROXY_MAX_BODY = _ENV["proxy_max_body"]
ENV_PEER_INSTRUMENTATIONS = _ENV["peer_instrumentations"]

# instrument()'s keywords (configure() passes them on).
INSTRUMENT_KEYWORDS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.api == "instrument()")
# What instrument() reads: those and the store's retention. A bad health threshold is `llmlens health`'s
# business (and `llmlens config`'s), not a reason for instrument() to fall back to the defaults.
INSTRUMENT_READS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.api in ("instrument()", "Retention"))


def platform_data_home(environ: Mapping[str, str] | None = None) -> str:
    """The platform's per-user data directory (`$XDG_DATA_HOME` on Linux, `%LOCALAPPDATA%` on Windows),
    where the store lives unless `LLMLENS_DB` says otherwise. Not llmlens settings: platform conventions."""
    env = os.environ if environ is None else environ
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        return env.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support")
    return env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")


def validate_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """The error of every bad variable of both tables, one line each, as the code that reads it would
    raise it (empty: all valid). For `llmlens config`."""
    env = os.environ if environ is None else environ
    errors: list[str] = []
    for row in (*SETTINGS, *OTEL_SETTINGS):
        try:
            row.read(env)
        except SettingsError as error:
            errors.append(str(error))
    if not errors:  # each value is valid alone: now the checks of several together
        for table in (Settings, OtelSettings):
            try:
                table.from_env(env)
            except SettingsError as error:
                errors.append(str(error))
    return errors


# --- display ----------------------------------------------------------------------------------------


def as_text(value: Any) -> str:
    """A value as a variable would spell it."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (frozenset, set)):
        return ",".join(sorted(value))
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def plain(value: Any) -> Any:
    """A value as JSON can hold it."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    return value


def docs_table(rows: Iterable[Setting]) -> str:
    """The Markdown table of docs/configuration.md for these settings."""
    lines = ["| Variable | Keyword | Values | Default | What it does |", "|---|---|---|---|---|"]
    for s in rows:
        if s.keyword is None:
            keyword = "\u2013"  # an en dash: none
        elif s.api == "instrument()":
            keyword = f"`{s.keyword}`"
        else:
            keyword = f"`{s.api.removesuffix('()')}({s.keyword}=)`"
        lines.append(f"| `{s.env}` | {keyword} | {s.values} | {s.default_text()} | {s.doc} |")
    return "\n".join(lines)
