"""`llmlens.configure()` end to end: exporter selection, OTLP to a real collector, console, errors, exit.

`configure()` sets the global tracer, meter and logger providers, which OpenTelemetry lets a process
set only once, so every scenario runs in a fresh Python subprocess: `SCRIPT` calls `configure()` with
the scenario's arguments and environment, makes a chat call and a streamed chat call with the real
openai SDK against a `FakeProvider` on 127.0.0.1, then calls `handle.shutdown()` (or, for the exit
test, leaves the flush to the atexit hook). OTLP goes to a real rotel collector on loopback
(`tests/collector.py`), whose debug log shows what it received.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from collector import RotelCollector

MODEL = "gpt-4o-mini"
SPAN_LINE = f"Name           : chat {MODEL}"  # how rotel's debug log prints a span name
DURATION_LINE = " -> Name: gen_ai.client.operation.duration"
TOKENS_LINE = " -> Name: gen_ai.client.token.usage"
EVENT_LINE = "EventName: gen_ai.client.inference.operation.details"

# argv[1] is a JSON object: {"configure": kwargs, "calls": ["chat", "stream"], "shutdown": bool}.
# Prints `EXPORTERS {...}` when configure() succeeded and `SETTINGS_ERROR <json message>` when it
# raised SettingsError, and nothing else of its own.
SCRIPT = r"""
import json
import sys

import llmlens
from llmlens.settings import SettingsError

spec = json.loads(sys.argv[1])
try:
    handle = llmlens.configure(**spec["configure"])
except SettingsError as error:
    print("SETTINGS_ERROR", json.dumps(str(error)), flush=True)
    sys.exit(3)
print("EXPORTERS", json.dumps(handle.exporters), flush=True)

if spec["calls"]:
    import openai

    from llmlens.demo.fake_server import FakeProvider

    with FakeProvider() as fake:
        client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        messages = [{"role": "user", "content": "Hi"}]
        for call in spec["calls"]:
            if call == "chat":
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            else:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for _ in stream:
                    pass
if spec["shutdown"]:
    handle.shutdown()
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any OTEL_*/LLMLENS_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(extra)
    return env


def run_scenario(
    tmp_path: Path,
    env: Mapping[str, str],
    configure: Mapping[str, Any] | None = None,
    calls: tuple[str, ...] = ("chat", "stream"),
    shutdown: bool = True,
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "scenario.py"
    script.write_text(SCRIPT, encoding="utf-8")
    spec = {"configure": dict(configure or {}), "calls": list(calls), "shutdown": shutdown}
    return subprocess.run(
        [sys.executable, str(script), json.dumps(spec)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def succeeded(result: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    """Assert the script ran cleanly (no error output at all); return the exporters configure() chose."""
    assert result.returncode == 0, describe(result)
    assert result.stderr == "", f"unexpected error output:\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("EXPORTERS ")]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0].removeprefix("EXPORTERS "))


def console_objects(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects the console exporters printed (one per span, metrics batch or log record)."""
    ours = ("EXPORTERS ", "SETTINGS_ERROR ")  # the script's own lines
    stdout = "\n".join(line for line in stdout.splitlines() if not line.startswith(ours))
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while (start := stdout.find("{", index)) != -1:
        obj, index = decoder.raw_decode(stdout, start)
        objects.append(obj)
    return objects


def assert_otlp_received(collector: RotelCollector, service: str) -> str:
    """Both spans (chat and stream) with their gen_ai attributes, and the two required metrics."""
    collector.wait_for(SPAN_LINE, count=2)
    collector.wait_for(DURATION_LINE)
    output = collector.wait_for(TOKENS_LINE)
    assert output.count(SPAN_LINE) == 2, output
    for line in (
        f" -> service.name: Str({service})",
        " -> gen_ai.operation.name: Str(chat)",
        " -> gen_ai.provider.name: Str(openai_compatible)",
        f" -> gen_ai.request.model: Str({MODEL})",
        f" -> gen_ai.response.model: Str({MODEL})",
        " -> gen_ai.usage.input_tokens: Int(4)",
        " -> gen_ai.usage.output_tokens: Int(8)",
        " -> gen_ai.request.stream: Bool(true)",
        " -> server.address: Str(127.0.0.1)",
        " -> gen_ai.token.type: Str(input)",
        " -> gen_ai.token.type: Str(output)",
        "InstrumentationScope llmlens",
    ):
        assert line in output, f"{line!r} not in rotel's output:\n{output}"
    return output


# --- OTLP to a real collector ---------------------------------------------------------------------


def test_otlp_http_protobuf_from_endpoint_variable(tmp_path: Path) -> None:
    with RotelCollector() as collector:
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint)
        result = run_scenario(tmp_path, env, {"service_name": "cfgtest-http"})
        assert succeeded(result) == {"traces": ["otlp"], "metrics": ["otlp"], "logs": ["otlp"]}
        output = assert_otlp_received(collector, "cfgtest-http")
        assert EVENT_LINE not in output  # no event unless asked for


def test_otlp_grpc(tmp_path: Path) -> None:
    with RotelCollector() as collector:
        env = clean_env(
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.grpc_endpoint,
            OTEL_SERVICE_NAME="cfgtest-grpc",  # the standard variable, when no service_name argument
        )
        result = run_scenario(tmp_path, env)
        assert succeeded(result) == {"traces": ["otlp"], "metrics": ["otlp"], "logs": ["otlp"]}
        assert_otlp_received(collector, "cfgtest-grpc")


def test_details_event_reaches_the_collector_with_emit_event(tmp_path: Path) -> None:
    with RotelCollector() as collector:
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint)
        result = run_scenario(tmp_path, env, {"service_name": "cfgtest-event", "emit_event": True})
        succeeded(result)
        output = collector.wait_for(EVENT_LINE, count=2)  # one per call
        logs = output[output.index("ResourceLog #") :]
        assert " -> service.name: Str(cfgtest-event)" in logs, logs
        assert " -> gen_ai.operation.name: Str(chat)" in logs, logs
        assert " -> gen_ai.usage.output_tokens: Int(8)" in logs, logs


def test_nothing_is_lost_at_exit_without_shutdown(tmp_path: Path) -> None:
    with RotelCollector() as collector:
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint)
        result = run_scenario(tmp_path, env, {"service_name": "cfgtest-atexit"}, shutdown=False)
        succeeded(result)
        # The process has exited: whatever rotel gets now was flushed by the atexit hook.
        assert_otlp_received(collector, "cfgtest-atexit")


def test_per_signal_endpoint_exports_only_that_signal(tmp_path: Path) -> None:
    from llmlens.sdk_setup import exporter_names

    # Checked in-process first (a pure function): under the bug, the subprocess below would spend
    # seconds retrying exports to localhost:4318 before it fails.
    traces_only = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    assert exporter_names(None, traces_only) == {"traces": ["otlp"], "metrics": [], "logs": []}
    with RotelCollector() as collector:
        env = clean_env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.http_endpoint}/v1/traces")
        result = run_scenario(tmp_path, env, {"service_name": "cfgtest-traces-only"})
        assert succeeded(result) == {"traces": ["otlp"], "metrics": [], "logs": []}
        output = collector.wait_for(SPAN_LINE, count=2)
        assert " -> service.name: Str(cfgtest-traces-only)" in output, output


# --- console and selection by environment ---------------------------------------------------------


def test_console_exporter_argument(tmp_path: Path) -> None:
    # The argument wins over the environment for all three signals.
    env = clean_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="otlp")
    result = run_scenario(tmp_path, env, {"service_name": "cfgtest-console", "exporter": "console"})
    assert succeeded(result) == {"traces": ["console"], "metrics": ["console"], "logs": ["console"]}
    assert '"gen_ai.operation.name": "chat"' in result.stdout
    objects = console_objects(result.stdout)
    spans = [o for o in objects if o.get("name") == f"chat {MODEL}"]
    assert len(spans) == 2, result.stdout
    for span in spans:
        assert span["attributes"]["gen_ai.provider.name"] == "openai_compatible"
        assert span["attributes"]["gen_ai.usage.input_tokens"] == 4
        assert span["resource"]["attributes"]["service.name"] == "cfgtest-console"
    metric_names = {
        metric["name"]
        for o in objects
        for rm in o.get("resource_metrics", [])
        for sm in rm["scope_metrics"]
        for metric in sm["metrics"]
    }
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= metric_names, metric_names


def test_exporters_chosen_by_otel_variables(tmp_path: Path) -> None:
    env = clean_env(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="cfgtest-env",
    )
    result = run_scenario(tmp_path, env, {"emit_event": True})
    assert succeeded(result) == {"traces": ["console"], "metrics": [], "logs": []}
    objects = console_objects(result.stdout)
    spans = [o for o in objects if o.get("name") == f"chat {MODEL}"]
    assert len(spans) == 2, result.stdout
    assert all(s["resource"]["attributes"]["service.name"] == "cfgtest-env" for s in spans)
    assert not [o for o in objects if "resource_metrics" in o], (
        "metrics exported despite OTEL_METRICS_EXPORTER=none"
    )
    assert "gen_ai.client.inference.operation.details" not in result.stdout, "a log record was exported"
    assert len(objects) == 2, result.stdout


def test_no_exporter_settings_export_nothing_and_print_nothing(tmp_path: Path) -> None:
    result = run_scenario(tmp_path, clean_env(), {"service_name": "cfgtest-quiet"})
    assert succeeded(result) == {"traces": [], "metrics": [], "logs": []}
    assert result.stdout.splitlines() == ['EXPORTERS {"traces": [], "metrics": [], "logs": []}']


# --- bad values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "configure", "variable", "bad", "accepted"),
    [
        ({}, {"exporter": "kafka"}, "exporter", "kafka", ("otlp", "console", "none")),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, {}, "OTEL_TRACES_EXPORTER", "zipkin", ("otlp", "console")),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
            {},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "thrift",
            ("http/protobuf", "grpc"),
        ),
    ],
    ids=["exporter-argument", "traces-exporter-variable", "otlp-protocol-variable"],
)
def test_bad_value_is_one_settings_error_line(
    tmp_path: Path,
    env: dict[str, str],
    configure: dict[str, Any],
    variable: str,
    bad: str,
    accepted: tuple[str, ...],
) -> None:
    result = run_scenario(tmp_path, clean_env(**env), configure, calls=())
    assert result.returncode == 3, f"no SettingsError; {describe(result)}"
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    message = json.loads(line.removeprefix("SETTINGS_ERROR "))
    assert "\n" not in message
    assert message.startswith(f"{variable}={bad!r} is not valid; accepted values: "), message
    for value in accepted:
        assert value in message, message


def test_a_seeded_random_module_does_not_repeat_the_ids(configure: Any) -> None:
    # An application that seeds `random` for a reproducible run must still get new trace and span ids
    # each run: the SDK's default draws them from `random`, and two runs' traces (and store rows) collided.
    import random

    tracer = configure().tracer_provider.get_tracer("test")
    ids = []
    for _ in range(2):
        random.seed(42)
        with tracer.start_as_current_span("work") as span:
            context = span.get_span_context()
            ids.append((context.trace_id, context.span_id))
    assert ids[0] != ids[1]
    assert all(trace_id and span_id for trace_id, span_id in ids)


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("LLMLENS_STORE_MAX_SUCCESS", "abc"),
        ("LLMLENS_PROFILE_SAMPLE", "5"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "bogus"),
        ("LLMLENS_PROMETHEUS_PORT", "http"),
    ],
)
def test_a_bad_llmlens_variable_is_one_error_line_and_the_other_settings_apply(
    tmp_path: Path, variable: str, bad: str
) -> None:
    # configure() raises only for a bad exporter; any other bad value is left out, as in instrument(),
    # and the settings next to it (here the store's file) still apply.
    database = tmp_path / "mine.db"
    env = clean_env(**{variable: bad, "LLMLENS_DB": str(database)})
    result = run_scenario(tmp_path, env, {"service_name": "cfgtest-bad-value"}, calls=("chat",))
    assert result.returncode == 0, describe(result)
    assert [line for line in result.stdout.splitlines() if line.startswith("EXPORTERS ")]
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert f" ERROR llmlens llmlens: {variable}={bad!r} is not valid; accepted values: " in line, line
    assert line.endswith("; this value is ignored"), line
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone() == (1,)


def test_a_store_path_that_is_a_directory_is_one_error_line_and_the_default_store_is_used(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"  # the user data dir, here: where the default store goes
    env = clean_env(LLMLENS_DB=str(tmp_path), XDG_DATA_HOME=str(data))
    result = run_scenario(tmp_path, env, {"service_name": "cfgtest-db-dir"}, calls=("chat",))
    assert result.returncode == 0, describe(result)
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert f"LLMLENS_DB={str(tmp_path)!r} is not valid; accepted values: a file path (" in line, line
    with sqlite3.connect(data / "llmlens" / "llmlens.db") as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone() == (1,)
