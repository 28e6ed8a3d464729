"""`configure()`'s Prometheus scrape endpoint: its text after real openai calls, its settings, a port
already taken, and a real `prometheus` server scraping it.

Each test calls `configure(set_global=False)` in this process and, at teardown, shuts the endpoint
down and uninstruments. The `prometheus` binary (Debian package `prometheus`) runs on 127.0.0.1 with
its storage in a temporary directory and is stopped by its pid.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

DURATION = "gen_ai_client_operation_duration_seconds"
SCOPE = {"otel_scope_name", "otel_scope_schema_url", "otel_scope_version"}
CHAT_LABELS = {
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "server_address",
    "server_port",
    *SCOPE,
}
MESSAGES = [{"role": "user", "content": "Hi"}]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def samples(text: str, name: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_scrape_shows_the_genai_metrics_with_their_labels(configure: Any, client: Any, fake: Any) -> None:
    handle = configure(prometheus_port=0)
    assert handle.prometheus_port and handle.prometheus.server.server_address[0] == "127.0.0.1"
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    text = scrape(handle.prometheus_port)

    (count,) = samples(text, f"{DURATION}_count")
    assert count.value == 1
    assert count.labels == {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai_compatible",
        "gen_ai_request_model": "gpt-4o-mini",
        "gen_ai_response_model": "gpt-4o-mini",
        "server_address": "127.0.0.1",
        "server_port": str(fake.port),
        "otel_scope_name": "llmlens",
        "otel_scope_schema_url": count.labels["otel_scope_schema_url"],
        "otel_scope_version": count.labels["otel_scope_version"],
    }
    buckets = samples(text, f"{DURATION}_bucket")
    assert buckets and all(set(b.labels) == CHAT_LABELS | {"le"} for b in buckets)
    assert f'{DURATION}_bucket{{gen_ai_operation_name="chat"' in text
    assert "error_type" not in text  # absent, not empty
    tokens = {s.labels["gen_ai_token_type"]: s.value for s in samples(text, "gen_ai_client_token_usage_sum")}
    assert tokens == {"input": 4.0, "output": 8.0}
    # Its own registry: none of prometheus_client's default process and Python metrics.
    assert "python_gc_" not in text and "process_cpu_seconds_total" not in text


def test_a_failed_call_has_error_type_and_the_success_has_none(configure: Any, client: Any) -> None:
    import openai

    handle = configure(prometheus_port=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=MESSAGES)
    counts = {
        s.labels["gen_ai_request_model"]: s.labels
        for s in samples(scrape(handle.prometheus_port), f"{DURATION}_count")
    }
    assert counts["fake-error-429"]["error_type"] == "openai.RateLimitError"
    assert "gen_ai_response_model" not in counts["fake-error-429"]
    assert "error_type" not in counts["gpt-4o-mini"]


def test_otel_metrics_exporter_prometheus_and_the_port_variable(
    configure: Any, client: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("LLMLENS_PROMETHEUS_PORT", "0")
    handle = configure()
    assert handle.exporters == {"traces": [], "metrics": ["prometheus"], "logs": []}
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert samples(scrape(handle.prometheus_port), f"{DURATION}_count")


def test_the_exporter_argument_prometheus_is_for_metrics_only(configure: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("LLMLENS_PROMETHEUS_PORT", "0")
    handle = configure(exporter="prometheus")
    assert handle.exporters == {"traces": [], "metrics": ["prometheus"], "logs": []}
    assert handle.prometheus_port


def test_the_host_variable_chooses_the_address(configure: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("LLMLENS_PROMETHEUS_HOST", "127.0.0.2")
    handle = configure(prometheus_port=0)
    assert handle.prometheus.server.server_address[0] == "127.0.0.2"
    with urllib.request.urlopen(f"http://127.0.0.2:{handle.prometheus_port}/metrics", timeout=5) as response:
        assert response.status == 200


def test_no_endpoint_unless_asked(configure: Any) -> None:
    handle = configure()
    assert handle.prometheus_port is None and handle.exporters["metrics"] == []


def test_a_port_in_use_is_one_error_line_and_the_app_goes_on(
    configure: Any, client: Any, caplog: Any
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.DEBUG, logger="llmlens"):
            handle = configure(prometheus_port=port)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert handle.prometheus_port is None
    errors = [r for r in caplog.records if r.name == "llmlens" and r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors] == [
        f"llmlens: no Prometheus endpoint: cannot listen on 127.0.0.1:{port} (Address already in use)"
    ]
    assert errors[0].exc_info is None


# ------------------------------------------------------------------------------ a real Prometheus server


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Any]:
    """Start `prometheus` scraping 127.0.0.1:`target` every second; yields start(target) -> API URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` binary is missing: apt-get install prometheus (or run scripts/setup)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: int) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: llmlens\n    scrape_interval: 1s\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        )
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def query(api: str, promql: str) -> list[dict[str, Any]]:
    url = f"{api}/api/v1/query?query={urllib.parse.quote(promql)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_a_real_prometheus_scrapes_the_endpoint(
    configure: Any, client: Any, prometheus_server: Any, tmp_path: Path
) -> None:
    import openai

    handle = configure(prometheus_port=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=MESSAGES)
    api = prometheus_server(handle.prometheus_port)

    series: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(series) < 2:
        time.sleep(0.5)
        try:
            series = query(api, f"{DURATION}_count")
        except OSError:  # not listening yet
            continue
    log = (tmp_path / "prometheus.log").read_text(errors="replace")
    assert len(series) == 2, log[-3000:]
    by_model = {s["metric"]["gen_ai_request_model"]: s["metric"] for s in series}
    assert by_model["fake-error-429"]["error_type"] == "openai.RateLimitError"
    assert "error_type" not in by_model["gpt-4o-mini"]
    assert by_model["gpt-4o-mini"]["job"] == "llmlens"
    assert by_model["gpt-4o-mini"]["gen_ai_operation_name"] == "chat"
    tokens = query(api, 'gen_ai_client_token_usage_sum{gen_ai_token_type="output"}')
    assert [float(t["value"][1]) for t in tokens] == [8.0]
