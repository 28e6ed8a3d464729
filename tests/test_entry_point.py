"""Zero-code instrumentation and the `llmlens` command.

- the distribution's `opentelemetry_instrumentor` entry point `llmlens` loads `Instrumentor`;
- `opentelemetry-instrument python app.py`, where app.py only makes openai calls (against a
  `FakeProvider` it starts itself) and contains no OpenTelemetry code, produces exactly one
  `chat gpt-4o-mini` span per call, to the console and over OTLP to a real rotel collector;
- `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=llmlens` turns it off;
- `llmlens config`, `llmlens --help`, `llmlens demo --help`.

Everything runs in subprocesses, with the scripts of the interpreter running the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from collector import RotelCollector
from llmlens.settings import KNOWN_PROVIDERS

BIN = Path(sys.executable).parent
MODEL = "gpt-4o-mini"
SPAN_NAME = f"chat {MODEL}"

# No OpenTelemetry and no llmlens code: what a user's script looks like.
APP = """
import openai

from llmlens.demo.fake_server import FakeProvider

with FakeProvider() as fake:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
        pass
print("APP DONE", flush=True)
"""

# `opentelemetry-instrument` sets up the SDK only through an `opentelemetry_configurator` entry point;
# llmlens depends on opentelemetry-distro, which provides one.


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any OTEL_*/LLMLENS_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(extra)
    return env


def script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} not found: install the package with its dependencies in this environment")
    return str(path)


def run_instrumented(
    tmp_path: Path, env: Mapping[str, str], app: str = APP
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(app, encoding="utf-8")
    result = subprocess.run(
        [script("opentelemetry-instrument"), sys.executable, "app.py"],
        env=dict(env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert "APP DONE" in result.stdout, result.stdout
    return result


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The spans ConsoleSpanExporter printed (JSON objects), in order."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while (start := stdout.find("{", index)) != -1:
        obj, index = decoder.raw_decode(stdout, start)
        if "context" in obj and "name" in obj:
            spans.append(obj)
    return spans


CONSOLE_ENV = {
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_SERVICE_NAME": "zero-code",
}


# --- the entry point ------------------------------------------------------------------------------


def test_a_configurator_is_installed() -> None:
    # Without one, `opentelemetry-instrument` runs instrumentors against no-op providers: silence.
    assert list(entry_points(group="opentelemetry_configurator"))


def test_instrumentor_entry_point_loads_the_instrumentor() -> None:
    from llmlens.instrumentor import Instrumentor

    found = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == "llmlens"]
    assert len(found) == 1, found
    (entry_point,) = found
    assert entry_point.value == "llmlens.instrumentor:Instrumentor"
    assert entry_point.dist is not None and entry_point.dist.name == "llmlens"
    assert entry_point.load() is Instrumentor


# --- opentelemetry-instrument ---------------------------------------------------------------------


def test_zero_code_console(tmp_path: Path) -> None:
    result = run_instrumented(tmp_path, clean_env(**CONSOLE_ENV))
    spans = [s for s in console_spans(result.stdout) if s["name"] == SPAN_NAME]
    assert len(spans) == 2, f"expected one {SPAN_NAME!r} span per call:\n{result.stdout}"
    for span in spans:
        attributes = span["attributes"]
        assert span["kind"] == "SpanKind.CLIENT"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "openai_compatible"
        assert attributes["gen_ai.request.model"] == MODEL
        assert attributes["gen_ai.response.model"] == MODEL
        assert attributes["server.address"] == "127.0.0.1"
        assert span["resource"]["attributes"]["service.name"] == "zero-code"
    assert [s["attributes"].get("gen_ai.request.stream", False) for s in spans] == [False, True]
    assert spans[0]["attributes"]["gen_ai.usage.input_tokens"] == 4  # the stream asked for no usage
    # The stream span ends when the stream is read to the end, with the stream's own attributes.
    assert spans[1]["attributes"]["llmlens.stream.outcome"] == "completed"


def test_zero_code_otlp_http_to_collector(tmp_path: Path) -> None:
    with RotelCollector() as collector:
        env = clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint,
            OTEL_SERVICE_NAME="zero-code-otlp",
        )
        run_instrumented(tmp_path, env)
        # The app has exited, so everything was sent; rotel prints it within its 200 ms batch timeout.
        collector.wait_for(f"Name           : {SPAN_NAME}", count=2, timeout=5)
        output = collector.wait_for(" -> Name: gen_ai.client.operation.duration", timeout=5)
        assert output.count(f"Name           : {SPAN_NAME}") == 2, output
        for line in (
            " -> service.name: Str(zero-code-otlp)",
            " -> gen_ai.provider.name: Str(openai_compatible)",
            " -> gen_ai.operation.name: Str(chat)",
            " -> gen_ai.usage.output_tokens: Int(8)",
            "InstrumentationScope llmlens",
        ):
            assert line in output, f"{line!r} not in rotel's output:\n{output}"


def test_disabled_instrumentations_turns_llmlens_off(tmp_path: Path) -> None:
    # The app reports whether llmlens got instrumented, so the test does not pass merely because
    # nothing at all was exported.
    probe = APP + (
        "from llmlens.instrumentor import Instrumentor\n"
        "print('LLMLENS INSTRUMENTED', Instrumentor().is_instrumented_by_opentelemetry, flush=True)\n"
    )
    enabled = run_instrumented(tmp_path, clean_env(**CONSOLE_ENV), probe)
    assert "LLMLENS INSTRUMENTED True" in enabled.stdout, enabled.stdout
    # `openai`: the other instrumentations of openai installed here (tests/test_peers.py), which would
    # trace the calls once llmlens is off.
    disabled = run_instrumented(
        tmp_path, clean_env(**CONSOLE_ENV, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="llmlens,openai"), probe
    )
    assert "LLMLENS INSTRUMENTED False" in disabled.stdout, disabled.stdout
    assert SPAN_NAME not in disabled.stdout
    assert not [s for s in console_spans(disabled.stdout) if "gen_ai.operation.name" in s["attributes"]]


# --- the llmlens command --------------------------------------------------------------------------


def llmlens(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("llmlens"), *args], env=clean_env(**env), capture_output=True, text=True, timeout=30
    )


def test_config_prints_the_effective_settings() -> None:
    result = llmlens(
        "config",
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
        OTEL_TRACES_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # A header, then one row per setting: name, variable and source padded, two spaces, the value.
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["setting", "variable", "source", "value"]
    rows = {name: (variable, source, value) for name, variable, source, value in
            (line.split(None, 3) for line in lines)}  # fmt: skip
    assert set(rows) >= {"capture_content", "emit_event", "content_max_length", "providers", "provider_map"}
    assert rows["capture_content"] == (
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "environment",
        "SPAN_ONLY",
    ), result.stdout
    assert rows["content_max_length"] == ("LLMLENS_CONTENT_MAX_LENGTH", "default", "16384"), result.stdout
    assert rows["providers"][2] == ",".join(sorted(KNOWN_PROVIDERS)), result.stdout
    assert rows["traces_exporter"] == ("OTEL_TRACES_EXPORTER", "environment", "console"), result.stdout
    assert rows["metrics_exporter"][2] == "none (no OTLP endpoint is set)", result.stdout


@pytest.mark.parametrize(
    ("variable", "accepted"),
    [
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", ("NO_CONTENT", "SPAN_ONLY", "SPAN_AND_EVENT")),
        ("OTEL_METRICS_EXPORTER", ("otlp", "console", "none")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", ("http/protobuf", "grpc")),
    ],
)
def test_config_bad_variable_exits_2_with_one_line(variable: str, accepted: tuple[str, ...]) -> None:
    result = llmlens("config", **{variable: "bogus"})
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"llmlens: {variable}='bogus' is not valid; accepted values: "), lines[0]
    for value in accepted:
        assert value in lines[0]


@pytest.mark.parametrize(
    ("args", "usage", "description"),
    [
        (("--help",), "usage: llmlens [-h] COMMAND", "OpenTelemetry instrumentation for LLM calls"),
        (("demo", "--help"), "usage: llmlens demo", "Start a fake OpenAI-compatible server on 127.0.0.1"),
    ],
)
def test_help(args: tuple[str, ...], usage: str, description: str) -> None:
    result = llmlens(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps to the terminal width
    assert text.startswith(usage), result.stdout
    assert description in text, result.stdout
