"""The proxy middleware's metrics path (`LLMLENS_PROXY_METRICS_PATH`) and the metrics' cardinality guards.

A real FastAPI proxy (tests/proxies/openai_proxy.py) under uvicorn on 127.0.0.1, in front of the fake
provider, gets the middleware from `configure()` (which instruments); its own port answers
`GET /metrics` with llmlens's metrics. The guards: made-up model names beyond
`LLMLENS_METRICS_MAX_MODELS` share one `_OTHER` series, and no route, path, tool name, tool call id or
request id ever becomes a label.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import llmlens
from llmlens.core.metric_labels import OTHER_MODELS, ModelLabels
from llmlens.demo.fake_server import FakeProvider
from proxies import openai_proxy
from proxies.server import UvicornServer

HI = [{"role": "user", "content": "Hi"}]
SERVER_DURATION = "gen_ai_server_request_duration_seconds_count"
# Every label llmlens's series may carry (docs/prometheus.md): nothing a client sends freely but the model.
ALLOWED_LABELS = {
    "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
    "server_address", "server_port", "error_type", "gen_ai_token_type", "gen_ai_token_modality",
    "gen_ai_request_stream", "llmlens_cost_unpriced_reason", "le", "otel_scope_name", "otel_scope_version",
    "otel_scope_schema_url", "service_name", "service_instance_id", "telemetry_sdk_language",
    "telemetry_sdk_name", "telemetry_sdk_version", "job", "instance",
}  # fmt: skip


def chat(proxy: UvicornServer, model: str, **extra: Any) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        body = {"model": model, "messages": HI, **extra}
        response = client.post(proxy.url + "/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response


def series(text: str) -> list[Any]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def test_the_proxy_answers_its_metrics_path(configure: Any, fake: FakeProvider) -> None:
    configure(proxy_metrics_path="/metrics")
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy:
        chat(proxy, "gpt-4o-mini")
        chat(proxy, "gpt-4o-mini", stream=True, stream_options={"include_usage": True})
        with httpx.Client(timeout=10) as client:
            response = client.get(proxy.url + "/metrics")
            openmetrics = client.get(
                proxy.url + "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
            )
            head = client.head(proxy.url + "/metrics")
            post = client.post(proxy.url + "/metrics", json={})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = series(response.text)
    (count,) = [s for s in samples if s.name == SERVER_DURATION]
    assert count.value == 2 and count.labels["gen_ai_request_model"] == "gpt-4o-mini"
    assert [s for s in samples if s.name == "llmlens_server_active_requests"], response.text
    assert "# EOF" in openmetrics.text
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert head.status_code == 200 and head.content == b""
    assert post.status_code in (404, 405)  # another method on the path is the application's


def test_without_the_setting_the_path_is_the_applications(configure: Any, fake: FakeProvider) -> None:
    configure()
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy:
        chat(proxy, "gpt-4o-mini")
        response = httpx.get(proxy.url + "/metrics", timeout=10)
    assert response.status_code == 404


def test_no_reader_leaves_the_path_to_the_application_with_one_warning(
    otel: Any, fake: FakeProvider, caplog: Any
) -> None:
    # instrument() on providers that have no Prometheus reader: nothing to show.
    instrumentor = llmlens.Instrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
                            proxy_metrics_path="/metrics")  # fmt: skip
    try:
        with (
            caplog.at_level(logging.WARNING, logger="llmlens"),
            UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy,
        ):
            chat(proxy, "gpt-4o-mini")
            statuses = [httpx.get(proxy.url + "/metrics", timeout=10).status_code for _ in range(2)]
    finally:
        instrumentor.uninstrument()
    assert statuses == [404, 404]
    warnings = [r for r in caplog.records if "LLMLENS_PROXY_METRICS_PATH" in r.getMessage()]
    assert len(warnings) <= 1  # once per process (an earlier test in this process may have said it)


def test_a_bad_path_setting_is_one_error_line(monkeypatch: Any) -> None:
    from llmlens.settings import Settings, SettingsError

    monkeypatch.setenv("LLMLENS_PROXY_METRICS_PATH", "metrics")
    with pytest.raises(SettingsError, match="LLMLENS_PROXY_METRICS_PATH='metrics' is not valid"):
        Settings.from_env()


def test_made_up_model_names_share_one_series_past_the_budget(
    configure: Any, fake: FakeProvider, monkeypatch: Any
) -> None:
    monkeypatch.setenv("LLMLENS_METRICS_MAX_MODELS", "3")
    configure(proxy_metrics_path="/metrics")
    names = ["gpt-4o-mini", " gpt-4o-mini ", "model-a", "model-b", "model-c", "model-d"]
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy:
        for name in names:
            chat(proxy, name)
        text = httpx.get(proxy.url + "/metrics", timeout=10).text
    counts = {s.labels["gen_ai_request_model"]: s.value for s in series(text) if s.name == SERVER_DURATION}
    # " gpt-4o-mini " is normalised to "gpt-4o-mini"; the 4th and 5th distinct names are _OTHER.
    assert counts == {"gpt-4o-mini": 2, "model-a": 1, "model-b": 1, OTHER_MODELS: 2}


def test_no_route_path_tool_or_id_becomes_a_label(configure: Any, fake: FakeProvider) -> None:
    configure(proxy_metrics_path="/metrics")
    tools = [{"type": "function", "function": {"name": "get_weather_for_user_42", "parameters": {}}}]
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy:
        chat(proxy, "gpt-4o-mini", tools=tools)
        chat(proxy, "gpt-4o-mini", stream=True)
        with httpx.Client(timeout=10) as client:
            client.post(proxy.url + "/v1/chat/completions", json={"model": "fake-error-429", "messages": HI})
            text = client.get(proxy.url + "/metrics").text
    labels = {name for s in series(text) for name in s.labels}
    assert labels <= ALLOWED_LABELS, labels - ALLOWED_LABELS
    for value in ("get_weather_for_user_42", "/v1/chat/completions", "call_", "chatcmpl"):
        assert value not in text


def test_model_labels_budget() -> None:
    labels = ModelLabels(limit=2)
    assert labels(None) is None
    assert [labels("a"), labels(" a"), labels("b"), labels("c"), labels("a"), labels("b")] == [
        "a", "a", "b", OTHER_MODELS, "a", "b",
    ]  # fmt: skip
