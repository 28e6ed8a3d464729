"""Every setting: its environment variable (valid and invalid values), its `instrument()` argument, and
what `Instrumentor().instrument()` does with a bad value (one error line; the value is left out)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
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
    SemconvNames,
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
        # The keyword takes a dict or the variable's text; anything else must not be taken as-is.
        ("provider_map", 42, "provider"),
        ("provider_map", {"127.0.0.1": ""}, "provider"),
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
    assert instrumentor.settings == Settings(db_path=os.environ[ENV_DB])  # the bad keyword alone is left out
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert otel.span().name == "chat gpt-4o-mini"


def test_a_bad_value_is_left_out_and_the_settings_next_to_it_apply(
    otel: Any, instrument: Any, client: Any, monkeypatch: Any, caplog: Any
) -> None:
    # One typo must not undo the rest: a store turned off stays off, a keyword stays.
    for name in ALL_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_STORE, "off")
    monkeypatch.setenv(ENV_CAPTURE_CONTENT, "span_only")
    monkeypatch.setenv(ENV_CONTENT_MAX_LENGTH, "-1")  # bad
    with caplog.at_level(logging.WARNING, logger="llmlens"):
        instrumentor = instrument(provider_map={"127.0.0.1": "my_gateway"}, emit_event="sometimes")  # 2nd bad
    errors = [r.getMessage() for r in caplog.records if r.name == "llmlens" and r.levelno >= logging.WARNING]
    assert len(errors) == 2, errors
    assert any(ENV_CONTENT_MAX_LENGTH in e for e in errors) and any("emit_event" in e for e in errors)
    assert all(e.endswith("; this value is ignored") for e in errors)
    assert instrumentor.settings == Settings(
        store=False, capture_content=ContentMode.SPAN_ONLY, provider_map={"127.0.0.1": "my_gateway"}
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert otel.span().attributes["gen_ai.provider.name"] == "my_gateway"
    assert "gen_ai.input.messages" in otel.span().attributes


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


# ------------------------------------------------------------------ the table: every setting, one way
#
# Each row of llmlens.settings.SETTINGS / OTEL_SETTINGS, with a valid value and (where one exists) a bad
# one. Written out here rather than derived from the table, so that a row the table gains or loses
# fails `test_the_samples_cover_the_table`.

PRICES_FILE = "<prices file>"  # replaced by a real JSON file of prices in the tests
PRICES = {"openai/x": (1, 2)}  # input, output

# (variable, table, field, valid text, its value, bad text or None when every text is valid)
S, OT = "Settings", "OtelSettings"
SAMPLES: list[tuple[str, str, str, str, Any, str | None]] = [
    (ENV_CAPTURE_CONTENT, S, "capture_content", " span_and_event ", ContentMode.SPAN_AND_EVENT, "maybe"),
    (ENV_EMIT_EVENT, S, "emit_event", "On", True, "maybe"),
    (ENV_CONTENT_MAX_LENGTH, S, "content_max_length", " 42 ", 42, "10k"),
    ("OTEL_SEMCONV_STABILITY_OPT_IN", S, "semconv_opt_in", "http, gen_ai_latest_experimental/dup ",
     SemconvNames.DUP, None),
    (ENV_PROVIDERS, S, "providers", "OpenAI, cohere", frozenset({"openai", "cohere"}), UNKNOWN_PROVIDER),
    (ENV_PROVIDER_MAP, S, "provider_map", "LocalHost:8000 = vllm", {"localhost:8000": "vllm"}, "nonsense"),
    (ENV_PRICING, S, "pricing", "off", False, "maybe"),
    (ENV_PRICES, S, "prices", PRICES_FILE, PRICES, "/nonexistent/prices.json"),
    (ENV_STORE, S, "store", "no", False, "sometimes"),
    (ENV_DB, S, "db_path", " /tmp/x.db ", "/tmp/x.db", None),
    (ENV_PEER_INSTRUMENTATIONS, S, "peer_instrumentations", "Defer", PeerMode.DEFER, "ignore"),
    (ENV_PROXY_AUTO, S, "proxy_auto", "0", False, "maybe"),
    (ENV_PROXY_ROUTES, S, "proxy_routes", "/x/chat=OPENAI_CHAT", {"/x/chat": "openai_chat"}, "/x=nosuch"),
    (ENV_PROXY_PATH_PREFIXES, S, "proxy_path_prefixes", "/api, /codex", ("/api", "/codex"), "api"),
    (ENV_PROXY_TRUSTED_PROXIES, S, "proxy_trusted_proxies", "10.0.0.0/8, ::1", ("10.0.0.0/8", "::1"),
     "10.0.0.300"),
    (ENV_PROXY_API_KEY_NAMES, S, "proxy_api_key_names", "abc = team-a", {"abc": "team-a"}, "label-no-name"),
    (ENV_PROXY_KEY_SECRET, S, "proxy_key_secret", " s3cret ", "s3cret", None),
    (ENV_PROXY_MAX_BODY, S, "proxy_max_body", "1000", 1000, "-1"),
    ("LLMLENS_PROXY_REQUEST_LOG", S, "proxy_request_log", "off", False, "maybe"),
    ("LLMLENS_PROXY_METRICS_PATH", S, "proxy_metrics_path", " /metrics ", "/metrics", "metrics"),
    ("LLMLENS_METRICS_MAX_MODELS", S, "metrics_max_models", "50", 50, "0"),
    ("LLMLENS_STORE_MAX_SUCCESS", S, "store_max_success", " 1000 ", 1000, "abc"),
    ("LLMLENS_STORE_MAX_ERRORS", S, "store_max_errors", "0", 0, "1e3"),
    ("LLMLENS_STORE_MAX_AGE_DAYS", S, "store_max_age_days", "0.5", 0.5, "nan"),
    ("LLMLENS_STORE_MAX_PROFILES", S, "store_max_profiles", "20", 20, "-1"),
    ("LLMLENS_PROFILING", S, "profiling", "off", False, "sometimes"),
    ("LLMLENS_PROFILE_SAMPLE", S, "profile_sample", "0.01", 0.01, "1.5"),
    ("LLMLENS_PROFILE_KEEP_MS", S, "profile_keep_ms", "250", 250.0, "-5"),
    ("LLMLENS_PROFILE_INTERVAL_MS", S, "profile_interval_ms", "0.5", 0.5, "0"),
    ("LLMLENS_HEALTH_WINDOW_S", S, "health_window_s", "60", 60.0, "soon"),
    ("LLMLENS_HEALTH_MIN_REQUESTS", S, "health_min_requests", "3", 3, "2.5"),
    ("LLMLENS_HEALTH_DEGRADED_ERROR_RATE", S, "health_degraded_error_rate", "0.1", 0.1, "lots"),
    ("LLMLENS_HEALTH_CRITICAL_ERROR_RATE", S, "health_critical_error_rate", "0.7", 0.7, "1.5"),
    ("LLMLENS_HEALTH_DEGRADED_P95_MS", S, "health_degraded_p95_ms", "1000", 1000.0, "nan"),
    ("LLMLENS_HEALTH_CRITICAL_P95_MS", S, "health_critical_p95_ms", "200000", 200000.0, "-5"),
    ("LLMLENS_UI_TOKEN", S, "ui_token", " s3cret-token ", "s3cret-token", None),
    ("LLMLENS_PROMETHEUS_PORT", S, "prometheus_port", " 9464 ", 9464, "70000"),
    ("LLMLENS_PROMETHEUS_HOST", S, "prometheus_host", " 0.0.0.0 ", "0.0.0.0", None),
    ("LLMLENS_LOG_LEVEL", S, "log_level", " warn ", "WARNING", "verbose"),
    ("LLMLENS_LOG_FORMAT", S, "log_format", " JSON ", "json", "xml"),
    ("OTEL_SERVICE_NAME", OT, "service_name", " my-app ", "my-app", None),
    ("OTEL_TRACES_EXPORTER", OT, "traces_exporter", "Console, otlp", ("console", "otlp"), "zipkin"),
    ("OTEL_METRICS_EXPORTER", OT, "metrics_exporter", "Prometheus, otlp", ("prometheus", "otlp"), "kafka"),
    ("OTEL_LOGS_EXPORTER", OT, "logs_exporter", "console", ("console",), "bogus"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", OT, "otlp_endpoint", "http://h:9", "http://h:9", None),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", OT, "otlp_traces_endpoint", "http://h:9/t", "http://h:9/t", None),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", OT, "otlp_metrics_endpoint", "http://h/m", "http://h/m", None),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", OT, "otlp_logs_endpoint", "http://h:9/l", "http://h:9/l", None),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", OT, "otlp_protocol", " GRPC ", "grpc", "thrift"),
]  # fmt: skip
BAD_SAMPLES = [(var, table, name, bad) for var, table, name, _, _, bad in SAMPLES if bad is not None]
SECRETS = {ENV_PROXY_KEY_SECRET: "hunter2-secret", ENV_PROXY_API_KEY_NAMES: "sk-label-secret=team-secret"}
REPO = Path(__file__).resolve().parent.parent


def table_class(table: str) -> Any:
    return getattr(settings_module, table)


def all_rows() -> list[Any]:
    return [*settings_module.SETTINGS, *settings_module.OTEL_SETTINGS]


def real_value(raw: str, tmp_path: Path) -> str:
    if raw != PRICES_FILE:
        return raw
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({k: {"input": i, "output": o} for k, (i, o) in PRICES.items()}))
    return str(path)


def expected_value(value: Any) -> Any:
    if value is PRICES:
        from llmlens.pricing import TokenPrices

        return {k: TokenPrices(float(i), float(o)) for k, (i, o) in PRICES.items()}
    return value


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any OTEL_*/LLMLENS_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(extra)
    return env


def run_llmlens(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The `llmlens` command of this interpreter's environment, in a clean environment plus `env`."""
    command = Path(sys.executable).parent / "llmlens"
    return subprocess.run(
        [str(command), *args], env=clean_env(**env), capture_output=True, text=True, timeout=60
    )


def test_the_samples_cover_the_table() -> None:
    tables = {S: settings_module.SETTINGS, OT: settings_module.OTEL_SETTINGS}
    rows = {(name, s.env, s.name) for name, table in tables.items() for s in table}
    assert rows == {(table, var, name) for var, table, name, *_ in SAMPLES}
    # One row per field: the table is the dataclass, nothing is declared twice.
    assert [s.name for s in settings_module.SETTINGS] == [f.name for f in dataclasses.fields(Settings)]
    assert len({s.env for s in all_rows()}) == len(all_rows())


@pytest.mark.parametrize(
    ("var", "table", "name", "raw", "value", "bad"), SAMPLES, ids=[s[0] for s in SAMPLES]
)
def test_variable_and_keyword_are_parsed_alike(
    tmp_path: Path, var: str, table: str, name: str, raw: str, value: Any, bad: str | None
) -> None:
    cls, raw = table_class(table), real_value(raw, tmp_path)
    from_variable = cls.from_env({var: raw})
    from_keyword = cls.from_env({}, **{name: raw})
    assert getattr(from_variable, name) == expected_value(value)
    assert from_keyword == from_variable
    assert cls().with_overrides(**{name: raw}) == from_variable
    # Unset, empty and blank all mean the default.
    for unset in ({}, {var: ""}, {var: "  "}):
        assert getattr(cls.from_env(unset), name) == getattr(cls(), name)
    assert cls.from_env({}, **{name: None}) == cls()


@pytest.mark.parametrize(("var", "table", "name", "bad"), BAD_SAMPLES, ids=[s[0] for s in BAD_SAMPLES])
def test_a_bad_value_is_one_line_naming_the_variable_or_keyword(
    var: str, table: str, name: str, bad: str
) -> None:
    cls = table_class(table)
    for environ, keywords, where in (({var: bad}, {}, var), ({}, {name: bad}, name)):
        with pytest.raises(SettingsError) as error:
            cls.from_env(environ, **keywords)
        message = str(error.value)
        assert "\n" not in message and "\r" not in message
        assert message.startswith(f"{where}="), message
        assert "accepted values: " in message, message


STORE_AND_HEALTH = [s for s in SAMPLES if s[2].startswith(("store_max_", "health_"))]


@pytest.mark.parametrize(("var", "table", "name", "raw", "value", "bad"), STORE_AND_HEALTH,
                         ids=[s[0] for s in STORE_AND_HEALTH])  # fmt: skip
def test_retention_and_health_thresholds_come_from_the_table(
    var: str, table: str, name: str, raw: str, value: Any, bad: str
) -> None:
    from llmlens.store.queries import HealthThresholds
    from llmlens.store.retention import Retention

    cls, keyword = (Retention, name[len("store_"):]) if name.startswith("store_") else (
        HealthThresholds, name[len("health_"):])  # fmt: skip
    # The defaults are the table's, and the variable and the keyword give the same value.
    assert getattr(cls(), keyword) == getattr(Settings(), name)
    assert getattr(cls.from_env({var: raw}), keyword) == value
    assert getattr(cls.from_env({}, **{keyword: raw}), keyword) == value
    with pytest.raises(SettingsError) as error:
        cls.from_env({var: bad})
    with pytest.raises(SettingsError) as same:
        Settings.from_env({var: bad})
    assert str(error.value) == str(same.value)


def test_health_thresholds_checked_together_blame_the_one_set() -> None:
    from llmlens.store.queries import HealthThresholds

    env = {"LLMLENS_HEALTH_DEGRADED_ERROR_RATE": "0.9"}  # above the default critical rate, 0.5
    message = (
        "LLMLENS_HEALTH_DEGRADED_ERROR_RATE=0.9 is not valid; accepted values: at most the critical error "
        "rate (0.5)"
    )
    for build in (lambda: Settings.from_env(env), lambda: HealthThresholds.from_env(env)):
        with pytest.raises(SettingsError) as error:
            build()
        assert str(error.value) == message
    with pytest.raises(
        SettingsError, match=r"^health_critical_p95_ms=10\.0 is not valid; accepted values: at least"
    ):
        Settings.from_env({}, health_critical_p95_ms=10)


# ------------------------------------------------------------------------------------- llmlens config


def config_rows(stdout: str) -> dict[str, tuple[str, str, str]]:
    """name -> (variable, source, value) from `llmlens config`'s table (a header line, then one row per
    setting: name, variable and source padded, the value last)."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["setting", "variable", "source", "value"], stdout
    rows = {}
    for line in lines[1:]:
        name, variable, source, value = line.split(None, 3)
        rows[name] = (variable, source, value)
    return rows


def test_config_shows_every_setting_with_its_variable_value_and_source(tmp_path: Path) -> None:
    env = {**SECRETS, "LLMLENS_STORE_MAX_SUCCESS": "7", "LLMLENS_HEALTH_WINDOW_S": "60",
           "OTEL_SERVICE_NAME": "config-test", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
           ENV_CAPTURE_CONTENT: "span_only", ENV_DB: str(tmp_path / "x.db")}  # fmt: skip
    result = run_llmlens("config", **env)
    assert result.returncode == 0 and result.stderr == "", result
    rows = config_rows(result.stdout)
    assert {name: variable for name, (variable, _, _) in rows.items()} == {s.name: s.env for s in all_rows()}
    assert {name for name, (_, source, _) in rows.items() if source == "environment"} == {
        "proxy_key_secret", "proxy_api_key_names", "store_max_success", "health_window_s", "service_name",
        "otlp_endpoint", "capture_content", "db_path",
    }  # fmt: skip
    assert {source for _, source, _ in rows.values()} == {"environment", "default"}
    assert rows["store_max_success"][2] == "7"
    assert rows["store_max_errors"][2] == "10000"
    assert rows["health_window_s"][2] == "60"
    assert rows["service_name"][2] == "config-test"
    assert rows["otlp_endpoint"][2] == "http://127.0.0.1:9"
    assert rows["traces_exporter"][2].startswith("otlp ")  # an endpoint is set: OTLP
    assert rows["otlp_protocol"][2] == "http/protobuf"
    assert rows["capture_content"][2] == "SPAN_ONLY"
    assert rows["db_path"][2] == str(tmp_path / "x.db")
    assert rows["proxy_key_secret"][2] == rows["proxy_api_key_names"][2] == "(set, not shown)"
    for secret in ("hunter2", "sk-label-secret", "team-secret"):
        assert secret not in result.stdout


def test_config_json(tmp_path: Path) -> None:
    result = run_llmlens("config", "--json", **SECRETS, LLMLENS_STORE_MAX_AGE_DAYS="0.5")
    assert result.returncode == 0 and result.stderr == "", result
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == [s.name for s in all_rows()]
    assert rows["store_max_age_days"] == {
        "name": "store_max_age_days", "variable": "LLMLENS_STORE_MAX_AGE_DAYS", "source": "environment",
        "value": 0.5,
    }  # fmt: skip
    assert rows["providers"]["value"] == sorted(KNOWN_PROVIDERS) and rows["providers"]["source"] == "default"
    assert rows["metrics_exporter"]["value"] == []
    for secret in ("hunter2", "sk-label-secret", "team-secret"):
        assert secret not in result.stdout


def consumer_message(table: str, var: str, bad: str) -> str:
    """What the code that reads the variable says about the bad value."""
    environ = {var: bad}
    if var.startswith("LLMLENS_STORE_MAX_"):
        from llmlens.store.retention import Retention

        build: Any = lambda: Retention.from_env(environ)  # noqa: E731
    elif var.startswith("LLMLENS_HEALTH_"):
        from llmlens.store.queries import HealthThresholds

        build = lambda: HealthThresholds.from_env(environ)  # noqa: E731
    elif table == "OtelSettings":
        from llmlens.sdk_setup import exporter_names, otlp_protocol

        build = lambda: (exporter_names(None, environ), otlp_protocol(environ))  # noqa: E731
    else:
        build = lambda: Settings.from_env(environ)  # noqa: E731 (what instrument() logs)
    with pytest.raises(SettingsError) as error:
        build()
    return str(error.value)


@pytest.mark.parametrize(("var", "table", "name", "bad"), BAD_SAMPLES, ids=[s[0] for s in BAD_SAMPLES])
def test_config_rejects_every_bad_value_with_exit_2_and_the_users_line(
    var: str, table: str, name: str, bad: str
) -> None:
    result = run_llmlens("config", **{var: bad})
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr.splitlines() == [f"llmlens: {consumer_message(table, var, bad)}"]
    assert result.stderr.startswith(f"llmlens: {var}=")


@pytest.mark.parametrize(
    ("command", "env"),
    [
        ("prune", {"LLMLENS_STORE_MAX_SUCCESS": "abc"}),  # the example
        ("prune", {"LLMLENS_STORE_MAX_AGE_DAYS": "inf"}),
        ("health", {"LLMLENS_HEALTH_MIN_REQUESTS": "2.5"}),
        ("health", {"LLMLENS_HEALTH_DEGRADED_ERROR_RATE": "0.9"}),  # valid alone, not with the critical rate
    ],
)
def test_config_and_the_command_that_reads_it_say_the_same(
    tmp_path: Path, command: str, env: dict[str, str]
) -> None:
    env = {**env, ENV_DB: str(tmp_path / "none.db")}  # the setting is checked before the store is opened
    config, user = run_llmlens("config", **env), run_llmlens(command, **env)
    assert config.returncode == user.returncode == 2, (config, user)
    assert len(config.stderr.splitlines()) == 1, config.stderr
    assert config.stderr == user.stderr


def test_config_reports_every_bad_variable_one_line_each() -> None:
    result = run_llmlens(
        "config", LLMLENS_STORE_MAX_ERRORS="-5", OTEL_LOGS_EXPORTER="kafka", LLMLENS_PRICING="maybe"
    )
    assert (result.returncode, result.stdout) == (2, ""), result
    assert [line.split("=")[0] for line in result.stderr.splitlines()] == [
        "llmlens: LLMLENS_PRICING", "llmlens: LLMLENS_STORE_MAX_ERRORS", "llmlens: OTEL_LOGS_EXPORTER",
    ]  # fmt: skip


# --------------------------------------------------------------------------------- instrument() + table


def test_instrument_keywords_are_the_tables(
    otel: Any, instrument: Any, monkeypatch: Any, caplog: Any
) -> None:
    from llmlens import instrumentor as instrumentor_module

    assert set(instrumentor_module._OPTION_NAMES) == {
        s.name for s in settings_module.SETTINGS if s.api == "instrument()"
    }
    # The store's retention comes from the same settings; a bad health threshold is `llmlens health`'s
    # business, not a reason for instrument() to drop the other settings.
    monkeypatch.setenv("LLMLENS_STORE_MAX_SUCCESS", "7")
    monkeypatch.setenv("LLMLENS_HEALTH_WINDOW_S", "soon")
    monkeypatch.setenv(ENV_CAPTURE_CONTENT, "span_only")
    with caplog.at_level(logging.WARNING, logger="llmlens"):
        instrumentor = instrument()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("llmlens")] == []
    assert instrumentor.settings.capture_content is ContentMode.SPAN_ONLY
    assert instrumentor.settings.store_max_success == 7
    from llmlens.store.attach import attached_store

    assert attached_store(otel.tracer_provider).retention.max_success == 7


def test_instrument_with_a_bad_retention_value_logs_one_line_and_carries_on(
    otel: Any, instrument: Any, client: Any, monkeypatch: Any, caplog: Any
) -> None:
    monkeypatch.setenv("LLMLENS_STORE_MAX_SUCCESS", "abc")
    with caplog.at_level(logging.DEBUG, logger="llmlens"):
        instrumentor = instrument()
    errors = [r.getMessage() for r in caplog.records if r.name == "llmlens" and r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].startswith("llmlens: LLMLENS_STORE_MAX_SUCCESS='abc' is not valid")
    assert instrumentor.settings == Settings(db_path=os.environ[ENV_DB])  # the store's file still applies
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert otel.span().name == "chat gpt-4o-mini"


# ----------------------------------------------------------------------------------------------- docs


def test_the_docs_list_every_setting_from_the_table() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for table in (settings_module.SETTINGS, settings_module.OTEL_SETTINGS):
        expected = settings_module.docs_table(table)
        assert expected in doc, (
            "docs/configuration.md is out of date with llmlens.settings; its table must be:\n" + expected
        )
    documented = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", doc, flags=re.MULTILINE)
    assert documented == [s.env for s in all_rows()]


# ---------------------------------------------------------------------- nobody else reads the environment

# Module (relative to src/llmlens) -> why it may read the environment.
ENVIRONMENT_READERS = {
    "settings.py": "the one place llmlens reads its variables (and the platform's data directory ones)",
}
READS_ENVIRONMENT = re.compile(
    r"\bos\.environ\b|\bgetenv\b|\benviron\.get\(|\benviron\[|from os import .*\benviron\b"
)


def test_no_module_outside_settings_reads_the_environment() -> None:
    root = REPO / "src" / "llmlens"
    readers = {}
    for path in sorted(root.rglob("*.py")):
        lines = [
            line for line in path.read_text(encoding="utf-8").splitlines() if READS_ENVIRONMENT.search(line)
        ]
        if lines:
            readers[path.relative_to(root).as_posix()] = lines
    assert set(readers) == set(ENVIRONMENT_READERS), readers


@pytest.mark.parametrize("host", ["h:abc", "h:0", "h:", "h:70000", "[::1]:x"])
def test_a_provider_map_port_must_be_a_port_number(host: str) -> None:
    with pytest.raises(
        SettingsError, match=r"^LLMLENS_PROVIDER_MAP=.* the port is not a number from 1 to 65535"
    ):
        Settings.from_env({ENV_PROVIDER_MAP: f"{host}=vllm"})


def test_provider_map_hosts_with_and_without_ports() -> None:
    value = "api.x.com=openai,h:8080=vllm,::1=ollama,[::1]:11434=ollama"
    assert Settings.from_env({ENV_PROVIDER_MAP: value}).provider_map == {
        "api.x.com": "openai", "h:8080": "vllm", "::1": "ollama", "[::1]:11434": "ollama",
    }  # fmt: skip


@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "1e400"])
def test_a_health_number_must_be_finite_and_the_message_says_so(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"is not valid; accepted values: a finite number$"):
        Settings.from_env({"LLMLENS_HEALTH_DEGRADED_P95_MS": raw})
