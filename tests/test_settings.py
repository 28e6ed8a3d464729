"""Every setting: its environment variable (valid and invalid values), its `instrument()` argument, and
what `Instrumentor().instrument()` does with a bad value (one error line, then the defaults)."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from llmlens import settings as settings_module
from llmlens.providers.endpoints import provider_for
from llmlens.settings import (
    ENV_CAPTURE_CONTENT,
    ENV_CONTENT_MAX_LENGTH,
    ENV_DB,
    ENV_EMIT_EVENT,
    ENV_PEER_INSTRUMENTATIONS,
    ENV_PRICES,
    ENV_PRICING,
    ENV_PROVIDER_MAP,
    ENV_PROVIDERS,
    ENV_PROXY_API_KEY_NAMES,
    ENV_PROXY_AUTO,
    ENV_PROXY_KEY_SECRET,
    ENV_PROXY_MAX_BODY,
    ENV_PROXY_PATH_PREFIXES,
    ENV_PROXY_ROUTES,
    ENV_PROXY_TRUSTED_PROXIES,
    ENV_STORE,
    KNOWN_PROVIDERS,
    ContentMode,
    PeerMode,
    Settings,
    SettingsError,
)

ALL_PROVIDERS = frozenset(KNOWN_PROVIDERS)
UNKNOWN_PROVIDER = "nosuchsdk"  # a name no provider module will ever have

ALL_ENV_VARS = (
    ENV_CAPTURE_CONTENT,
    ENV_EMIT_EVENT,
    ENV_CONTENT_MAX_LENGTH,
    ENV_PROVIDERS,
    ENV_PROVIDER_MAP,
    ENV_STORE,
    ENV_DB,
    ENV_PRICING,
    ENV_PRICES,
    ENV_PROXY_AUTO,
    ENV_PROXY_ROUTES,
    ENV_PROXY_PATH_PREFIXES,
    ENV_PROXY_TRUSTED_PROXIES,
    ENV_PROXY_API_KEY_NAMES,
    ENV_PROXY_KEY_SECRET,
    ENV_PROXY_MAX_BODY,
    ENV_PEER_INSTRUMENTATIONS,
)


def test_the_documented_variable_names() -> None:
    assert ALL_ENV_VARS == (
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT",
        "LLMLENS_CONTENT_MAX_LENGTH",
        "LLMLENS_PROVIDERS",
        "LLMLENS_PROVIDER_MAP",
        "LLMLENS_STORE",
        "LLMLENS_DB",
        "LLMLENS_PRICING",
        "LLMLENS_PRICES",
        "LLMLENS_PROXY_AUTO",
        "LLMLENS_PROXY_ROUTES",
        "LLMLENS_PROXY_PATH_PREFIXES",
        "LLMLENS_PROXY_TRUSTED_PROXIES",
        "LLMLENS_PROXY_API_KEY_NAMES",
        "LLMLENS_PROXY_KEY_SECRET",
        "LLMLENS_PROXY_MAX_BODY",
        "LLMLENS_PEER_INSTRUMENTATIONS",
    )
    # No ENV_* constant is left untested.
    assert {v for k, v in vars(settings_module).items() if k.startswith("ENV_")} == set(ALL_ENV_VARS)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.capture_content is ContentMode.NO_CONTENT
    assert settings.emit_event is None
    assert settings.event_enabled is False
    assert settings.content_max_length == 16384
    assert settings.providers == ALL_PROVIDERS
    assert settings.provider_map == {}


@pytest.mark.parametrize("var", ALL_ENV_VARS)
@pytest.mark.parametrize("raw", ["", "  "])
def test_empty_value_means_unset(var: str, raw: str) -> None:
    # The OpenTelemetry configuration spec: an empty environment variable is treated as unset.
    assert Settings.from_env({var: raw}) == Settings()


def test_reads_os_environ_by_default(monkeypatch: Any) -> None:
    for var in ALL_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(ENV_CONTENT_MAX_LENGTH, "77")
    assert Settings.from_env().content_max_length == 77


def check_error(error: SettingsError, name: str, *accepted: str) -> None:
    message = str(error)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(name)
    assert "accepted values" in message
    for value in accepted:
        assert value in message


# ------------------------------------------------------------------------------------- capture content


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("NO_CONTENT", ContentMode.NO_CONTENT),
        ("SPAN_ONLY", ContentMode.SPAN_ONLY),
        ("EVENT_ONLY", ContentMode.EVENT_ONLY),
        ("SPAN_AND_EVENT", ContentMode.SPAN_AND_EVENT),
        ("span_only", ContentMode.SPAN_ONLY),
        ("  Span_And_Event ", ContentMode.SPAN_AND_EVENT),
        ("true", ContentMode.SPAN_ONLY),
        ("TRUE", ContentMode.SPAN_ONLY),
        ("1", ContentMode.SPAN_ONLY),
        ("yes", ContentMode.SPAN_ONLY),
        ("on", ContentMode.SPAN_ONLY),
        ("false", ContentMode.NO_CONTENT),
        ("0", ContentMode.NO_CONTENT),
        ("no", ContentMode.NO_CONTENT),
        ("off", ContentMode.NO_CONTENT),
        ("", ContentMode.NO_CONTENT),
    ],
)
def test_capture_content(raw: str, mode: ContentMode) -> None:
    assert Settings.from_env({ENV_CAPTURE_CONTENT: raw}).capture_content is mode


@pytest.mark.parametrize(
    ("mode", "on_span", "on_event"),
    [
        (ContentMode.NO_CONTENT, False, False),
        (ContentMode.SPAN_ONLY, True, False),
        (ContentMode.EVENT_ONLY, False, True),
        (ContentMode.SPAN_AND_EVENT, True, True),
    ],
)
def test_content_mode_targets(mode: ContentMode, on_span: bool, on_event: bool) -> None:
    assert (mode.on_span, mode.on_event) == (on_span, on_event)
    # Without an explicit emit_event the event follows the content mode (util-genai's rule).
    assert Settings(capture_content=mode).event_enabled is on_event


@pytest.mark.parametrize("raw", ["maybe", "SPAN", "span-only", "2", "NO_CONTENT\nSPAN_ONLY"])
def test_capture_content_invalid(raw: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_CAPTURE_CONTENT: raw})
    check_error(
        error.value,
        ENV_CAPTURE_CONTENT,
        "NO_CONTENT",
        "SPAN_ONLY",
        "EVENT_ONLY",
        "SPAN_AND_EVENT",
        "true",
        "false",
    )
    assert repr(raw) in str(error.value)


# ------------------------------------------------------------------------------------------ emit event


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("1", True), ("YES", True), (" on ", True), ("false", False), ("0", False),
     ("No", False), ("off", False)],
)  # fmt: skip
def test_emit_event(raw: str, value: bool) -> None:
    settings = Settings.from_env({ENV_EMIT_EVENT: raw})
    assert settings.emit_event is value
    assert settings.event_enabled is value


def test_emit_event_overrides_the_content_mode() -> None:
    env = {ENV_CAPTURE_CONTENT: "EVENT_ONLY", ENV_EMIT_EVENT: "false"}
    assert Settings.from_env(env).event_enabled is False
    env = {ENV_CAPTURE_CONTENT: "SPAN_ONLY", ENV_EMIT_EVENT: "true"}
    assert Settings.from_env(env).event_enabled is True


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled"])
def test_emit_event_invalid(raw: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_EMIT_EVENT: raw})
    check_error(error.value, ENV_EMIT_EVENT, "true", "false")


# -------------------------------------------------------------------------------- content max length


@pytest.mark.parametrize(
    ("raw", "value"), [("0", 0), ("1", 1), ("100", 100), (" 42 ", 42), ("1000000", 1000000)]
)
def test_content_max_length(raw: str, value: int) -> None:
    assert Settings.from_env({ENV_CONTENT_MAX_LENGTH: raw}).content_max_length == value


@pytest.mark.parametrize("raw", ["-1", "abc", "1.5", "10k"])
def test_content_max_length_invalid(raw: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_CONTENT_MAX_LENGTH: raw})
    check_error(error.value, ENV_CONTENT_MAX_LENGTH, "integer >= 0")


# ---------------------------------------------------------------------------------------- providers


@pytest.mark.parametrize("raw", ["openai", "OpenAI", " openai , "])
def test_providers(raw: str) -> None:
    assert Settings.from_env({ENV_PROVIDERS: raw}).providers == frozenset({"openai"})


@pytest.mark.parametrize("raw", ["all", "ALL", "", " , "])
def test_providers_all(raw: str) -> None:
    assert Settings.from_env({ENV_PROVIDERS: raw}).providers == ALL_PROVIDERS


def test_providers_several() -> None:
    assert Settings.from_env({ENV_PROVIDERS: "Cohere, ollama"}).providers == frozenset({"cohere", "ollama"})


@pytest.mark.parametrize("raw", [UNKNOWN_PROVIDER, f"openai,{UNKNOWN_PROVIDER}", "open ai"])
def test_providers_invalid(raw: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_PROVIDERS: raw})
    check_error(error.value, ENV_PROVIDERS, "all", "openai")


# ------------------------------------------------------------------------------------- provider map


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("127.0.0.1=openai", {"127.0.0.1": "openai"}),
        ("Example.COM:8000 = vllm , localhost=ollama", {"example.com:8000": "vllm", "localhost": "ollama"}),
        ("a=b,", {"a": "b"}),
        ("", {}),
    ],
)
def test_provider_map(raw: str, value: dict[str, str]) -> None:
    assert dict(Settings.from_env({ENV_PROVIDER_MAP: raw}).provider_map) == value


@pytest.mark.parametrize("raw", ["openai", "=openai", "host=", "a=b,c", " = "])
def test_provider_map_invalid(raw: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_PROVIDER_MAP: raw})
    check_error(error.value, ENV_PROVIDER_MAP, "host[:port]=provider")


def test_provider_map_is_used_by_host_and_host_port() -> None:
    overrides = Settings.from_env({ENV_PROVIDER_MAP: "LocalHost:8000=vllm,gpu-box=sglang"}).provider_map
    assert provider_for("localhost", 8000, overrides) == "vllm"
    assert provider_for("LOCALHOST", 8000, overrides) == "vllm"
    assert provider_for("localhost", 8001, overrides) == "openai_compatible"
    assert provider_for("gpu-box", 1234, overrides) == "sglang"
    assert provider_for("api.openai.com", 443, overrides) == "openai"


# -------------------------------------------------------------------- instrument() arguments (overrides)


def test_arguments_override_the_environment() -> None:
    env = {ENV_CAPTURE_CONTENT: "SPAN_ONLY", ENV_CONTENT_MAX_LENGTH: "10", ENV_EMIT_EVENT: "true"}
    settings = Settings.from_env(env, capture_content="EVENT_ONLY", content_max_length=20, emit_event=False)
    assert settings.capture_content is ContentMode.EVENT_ONLY
    assert settings.content_max_length == 20
    assert settings.emit_event is False


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (ContentMode.SPAN_AND_EVENT, ContentMode.SPAN_AND_EVENT),
        (ContentMode.NO_CONTENT, ContentMode.NO_CONTENT),
        ("span_only", ContentMode.SPAN_ONLY),
        (True, ContentMode.SPAN_ONLY),
        (False, ContentMode.NO_CONTENT),
    ],
)
def test_capture_content_argument(value: Any, mode: ContentMode) -> None:
    assert Settings().with_overrides(capture_content=value).capture_content is mode


@pytest.mark.parametrize(
    ("value", "providers"),
    [(["openai"], {"openai"}), (("OpenAI",), {"openai"}), ("openai", {"openai"}), ("all", ALL_PROVIDERS)],
)
def test_providers_argument(value: Any, providers: set[str]) -> None:
    assert Settings().with_overrides(providers=value).providers == frozenset(providers)


@pytest.mark.parametrize(("value", "event"), [(True, True), (False, False), ("true", True), ("false", False)])
def test_emit_event_argument(value: Any, event: bool) -> None:
    assert Settings().with_overrides(emit_event=value).event_enabled is event


def test_content_max_length_argument() -> None:
    assert Settings().with_overrides(content_max_length=0).content_max_length == 0
    assert Settings().with_overrides(content_max_length="12").content_max_length == 12


def test_provider_map_argument() -> None:
    overrides = Settings().with_overrides(provider_map={"127.0.0.1": "openai"}).provider_map
    assert provider_for("127.0.0.1", 8000, overrides) == "openai"


def test_provider_map_argument_hosts_are_case_insensitive() -> None:
    overrides = Settings().with_overrides(provider_map={"LocalHost": "vllm"}).provider_map
    assert provider_for("localhost", 8000, overrides) == "vllm"


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("capture_content", "maybe", "SPAN_ONLY"),
        ("content_max_length", -1, "integer >= 0"),
        ("content_max_length", "lots", "integer >= 0"),
        ("providers", [UNKNOWN_PROVIDER], "openai"),
        ("emit_event", "maybe", "true, false"),
        # The keyword takes a dict (docs/configuration.md); anything else must not be taken as-is.
        ("provider_map", "127.0.0.1=openai", "provider"),
        ("provider_map", 42, "provider"),
    ],
)
def test_invalid_arguments(name: str, value: Any, accepted: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings().with_overrides(**{name: value})
    check_error(error.value, name, accepted)


def test_unknown_argument() -> None:
    with pytest.raises(SettingsError) as error:
        Settings().with_overrides(capture_contents="SPAN_ONLY")
    message = str(error.value)
    assert "\n" not in message
    assert "capture_contents" in message
    assert "capture_content" in message.split("accepted", 1)[1]


# ------------------------------------------------------------------------------- Instrumentor + env


BAD_VALUES = [
    (ENV_CAPTURE_CONTENT, "maybe"),
    (ENV_EMIT_EVENT, "maybe"),
    (ENV_CONTENT_MAX_LENGTH, "-5"),
    (ENV_PROVIDERS, UNKNOWN_PROVIDER),
    (ENV_PROVIDER_MAP, "nonsense"),
    (ENV_PRICING, "maybe"),
    (ENV_PRICES, "/nonexistent/prices.json"),
    (ENV_PROXY_AUTO, "maybe"),
    (ENV_PROXY_ROUTES, "/x=nosuchformat"),
    (ENV_PROXY_PATH_PREFIXES, "api"),
    (ENV_PROXY_TRUSTED_PROXIES, "10.0.0.300"),
    (ENV_PROXY_API_KEY_NAMES, "label-without-name"),
    (ENV_PROXY_MAX_BODY, "-1"),
    (ENV_PEER_INSTRUMENTATIONS, "ignore"),
]


@pytest.mark.parametrize(("var", "raw"), BAD_VALUES, ids=[v for v, _ in BAD_VALUES])
def test_instrument_with_a_bad_environment_value(
    otel: Any, instrument: Any, client: Any, monkeypatch: Any, caplog: Any, var: str, raw: str
) -> None:
    for name in ALL_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(var, raw)
    with caplog.at_level(logging.DEBUG, logger="llmlens"):
        instrumentor = instrument()

    errors = [r for r in caplog.records if r.name == "llmlens" and r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    record = errors[0]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "\n" not in message
    assert var in message
    assert "accepted values" in message
    assert record.exc_info is None  # one line, no traceback

    assert instrumentor.is_instrumented_by_opentelemetry
    assert instrumentor.settings == Settings()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    span = otel.span()
    assert span.name == "chat gpt-4o-mini"
    assert "gen_ai.input.messages" not in span.attributes


def test_instrument_with_a_bad_argument(otel: Any, instrument: Any, client: Any, caplog: Any) -> None:
    with caplog.at_level(logging.DEBUG, logger="llmlens"):
        instrumentor = instrument(content_max_length=-3)
    errors = [r for r in caplog.records if r.name == "llmlens" and r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert "content_max_length" in errors[0].getMessage()
    assert instrumentor.settings == Settings()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert otel.span().name == "chat gpt-4o-mini"


def test_instrument_reads_valid_environment_values(
    otel: Any, instrument: Any, client: Any, monkeypatch: Any, caplog: Any
) -> None:
    monkeypatch.setenv(ENV_CAPTURE_CONTENT, "span_only")
    monkeypatch.setenv(ENV_CONTENT_MAX_LENGTH, "5")
    monkeypatch.setenv(ENV_PROVIDERS, "all")
    monkeypatch.setenv(ENV_PROVIDER_MAP, "127.0.0.1=openai")
    monkeypatch.setenv(ENV_EMIT_EVENT, "false")
    monkeypatch.setenv(ENV_STORE, "off")
    with caplog.at_level(logging.WARNING, logger="llmlens"):
        instrumentor = instrument()
    assert [r for r in caplog.records if r.name == "llmlens"] == []
    assert instrumentor.settings == Settings(
        store=False,
        db_path=os.environ[ENV_DB],
        capture_content=ContentMode.SPAN_ONLY,
        emit_event=False,
        content_max_length=5,
        providers=ALL_PROVIDERS,
        provider_map={"127.0.0.1": "openai"},
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi there"}])
    span = otel.span()
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.input.messages"] == (
        '[{"role":"user","parts":[{"type":"text","content":"Hi th…[llmlens: 3 more characters]"}]}]'
    )
    assert otel.logs() == []


def test_instrument_with_the_enum_argument(otel: Any, instrument: Any, client: Any) -> None:
    instrumentor = instrument(capture_content=ContentMode.SPAN_ONLY)
    assert instrumentor.settings.capture_content is ContentMode.SPAN_ONLY
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert "gen_ai.input.messages" in otel.span().attributes


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("true", True), ("off", False), ("0", False)])
def test_store_switch(raw: str, expected: bool) -> None:
    assert Settings.from_env({ENV_STORE: raw}).store is expected


def test_store_switch_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_STORE: "sometimes"})
    assert str(error.value) == "LLMLENS_STORE='sometimes' is not valid; accepted values: true, false"


def test_db_path_from_environment_and_argument() -> None:
    assert Settings.from_env({ENV_DB: " /tmp/x.db "}).db_path == "/tmp/x.db"
    assert Settings.from_env({ENV_DB: "/tmp/x.db"}, db_path="/tmp/y.db").db_path == "/tmp/y.db"


# ------------------------------------------------------------------------ other GenAI instrumentations


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("stand_aside", PeerMode.STAND_ASIDE),
        (" Stand-Aside ", PeerMode.STAND_ASIDE),
        ("defer", PeerMode.DEFER),
        ("ALLOW", PeerMode.ALLOW),
    ],
)
def test_peer_instrumentations(raw: str, mode: PeerMode) -> None:
    assert Settings().peer_instrumentations is PeerMode.STAND_ASIDE
    assert Settings.from_env({ENV_PEER_INSTRUMENTATIONS: raw}).peer_instrumentations is mode
    assert Settings().with_overrides(peer_instrumentations=raw).peer_instrumentations is mode
    assert Settings().with_overrides(peer_instrumentations=mode).peer_instrumentations is mode


@pytest.mark.parametrize("raw", ["ignore", "both", "true"])
def test_peer_instrumentations_invalid(raw: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_PEER_INSTRUMENTATIONS: raw})
    check_error(error.value, ENV_PEER_INSTRUMENTATIONS, "stand_aside, defer, allow")
    with pytest.raises(SettingsError) as error:
        Settings().with_overrides(peer_instrumentations=raw)
    check_error(error.value, "peer_instrumentations", "stand_aside, defer, allow")


# ------------------------------------------------------------------------------------------- proxies


def test_proxy_defaults() -> None:
    settings = Settings()
    assert settings.proxy_auto is True
    assert settings.proxy_routes == {}
    assert settings.proxy_path_prefixes == ()
    assert settings.proxy_trusted_proxies == ()
    assert settings.proxy_api_key_names == {}
    assert settings.proxy_key_secret is None
    assert settings.proxy_max_body == 4 * 1024 * 1024


def test_proxy_settings_from_the_environment() -> None:
    settings = Settings.from_env({
        ENV_PROXY_AUTO: "off",
        ENV_PROXY_ROUTES: " /codex/responses = openai_responses , /v1/embeddings=OFF,:x=gemini_generate",
        ENV_PROXY_PATH_PREFIXES: "/api, /codex",
        ENV_PROXY_TRUSTED_PROXIES: "10.0.0.0/8, 127.0.0.1, ::1",
        ENV_PROXY_API_KEY_NAMES: "0123456789ab=team-a,ba9876543210 = team-b",
        ENV_PROXY_KEY_SECRET: " s3cret ",
        ENV_PROXY_MAX_BODY: "1000",
    })  # fmt: skip
    assert settings.proxy_auto is False
    assert settings.proxy_routes == {
        "/codex/responses": "openai_responses", "/v1/embeddings": "off", ":x": "gemini_generate",
    }  # fmt: skip
    assert settings.proxy_path_prefixes == ("/api", "/codex")
    assert settings.proxy_trusted_proxies == ("10.0.0.0/8", "127.0.0.1", "::1")
    assert settings.proxy_api_key_names == {"0123456789ab": "team-a", "ba9876543210": "team-b"}
    assert settings.proxy_key_secret == "s3cret"
    assert settings.proxy_max_body == 1000
    assert "s3cret" not in repr(settings) and "team-a" not in repr(settings)


@pytest.mark.parametrize(
    ("var", "raw", "accepted"),
    [
        (ENV_PROXY_AUTO, "maybe", "true, false"),
        (ENV_PROXY_ROUTES, "/x=nosuchformat", "openai_chat"),
        (ENV_PROXY_ROUTES, "chat=openai_chat", "path-suffix=format"),
        (ENV_PROXY_PATH_PREFIXES, "api", "/paths"),
        (ENV_PROXY_TRUSTED_PROXIES, "10.0.0.300", "CIDRs"),
        (ENV_PROXY_API_KEY_NAMES, "abc", "label=name"),
        (ENV_PROXY_MAX_BODY, "lots", "integer >= 0"),
    ],
)
def test_proxy_settings_invalid(var: str, raw: str, accepted: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({var: raw})
    check_error(error.value, var, accepted)


def test_proxy_arguments() -> None:
    settings = Settings().with_overrides(
        proxy_auto="false", proxy_routes={"/x/chat": "openai_chat"}, proxy_path_prefixes=["/x"],
        proxy_trusted_proxies=["10.0.0.1"], proxy_api_key_names={"sk-raw-key": "me"}, proxy_max_body="10",
    )  # fmt: skip
    assert settings.proxy_auto is False
    assert settings.proxy_routes == {"/x/chat": "openai_chat"}
    assert settings.proxy_path_prefixes == ("/x",)
    assert settings.proxy_trusted_proxies == ("10.0.0.1",)
    assert settings.proxy_api_key_names == {"sk-raw-key": "me"}
    assert settings.proxy_max_body == 10
    with pytest.raises(SettingsError) as error:
        Settings().with_overrides(proxy_trusted_proxies=["nope"])
    check_error(error.value, "proxy_trusted_proxies", "CIDRs")


def test_proxy_route_formats_are_the_proxys() -> None:
    from llmlens.proxy.formats import FORMATS
    from llmlens.settings import PROXY_ROUTE_FORMATS

    assert set(PROXY_ROUTE_FORMATS) == set(FORMATS)
