"""The collector configurations of collector-config/: rotel run from its files, and the structure of the
otelcol-contrib YAML and the docker compose stack.

rotel: a real `rotel-agent` (tests/collector.py) started from collector-config/rotel.env, with only its
listening ports and its forward endpoint moved to free loopback ports, receives an instrumented openai
workload (a subprocess calling `llmlens.configure()` against the fake provider, over OTLP/gRPC or
OTLP/HTTP) and forwards it to a real OTLP receiver (tests/otlp_receiver.py). The workload also writes
down every OTLP request its exporters sent (the same encoder the exporters use), so each span, metric
point and log record that arrives is compared, field by field, with what left the application: equal,
except that the drop step (rotel_drop_content.py) removed the captured content; with the drop step's
lines taken out of the file, equal outright.

otelcol-contrib and docker compose cannot run here (no image pulls), so their files are checked for
structure: every pipeline names defined components, processors in a sane order, the drop step covers
the content keys, and every file the compose stack mounts exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import RotelCollector
from otlp_receiver import (
    OtlpReceiver,
    attributes,
    flat_log_records,
    flat_metric_points,
    flat_spans,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "collector-config"
ROTEL_ENV = CONFIG / "rotel.env"
OTELCOL = CONFIG / "otelcol-contrib.yaml"
COMPOSE = CONFIG / "docker-compose.yml"

CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
}
DROP_SETTINGS = ("ROTEL_OTLP_WITH_TRACE_PROCESSOR", "ROTEL_OTLP_WITH_LOGS_PROCESSOR")
CALLS = 3  # the workload's calls: a span and an event each

# argv[1]: where to write what the exporters sent (one file per signal: length-prefixed protobufs).
# The OTLP exporters (gRPC and HTTP) are wrapped so that each export also writes down the request it
# encodes, with the exporters' own encoders; then configure() runs with the test's environment, a chat
# call and a streamed chat call (with a tool definition) and a Responses API call (with instructions)
# go to the fake provider, and shutdown() flushes everything.
WORKLOAD = r"""
import sys
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc import _log_exporter as grpc_logs
from opentelemetry.exporter.otlp.proto.grpc import metric_exporter as grpc_metrics
from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_traces
from opentelemetry.exporter.otlp.proto.http import _log_exporter as http_logs
from opentelemetry.exporter.otlp.proto.http import metric_exporter as http_metrics
from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_traces

out = Path(sys.argv[1])


def tee(cls, encode, name):
    export = cls.export

    def export_and_write_down(self, data, *args, **kwargs):
        payload = encode(data).SerializeToString()
        with (out / name).open("ab") as file:
            file.write(len(payload).to_bytes(4, "big") + payload)
        return export(self, data, *args, **kwargs)

    cls.export = export_and_write_down


for module in (grpc_traces, http_traces):
    tee(module.OTLPSpanExporter, encode_spans, "traces")
for module in (grpc_metrics, http_metrics):
    tee(module.OTLPMetricExporter, encode_metrics, "metrics")
for module in (grpc_logs, http_logs):
    tee(module.OTLPLogExporter, encode_logs, "logs")

import openai

import llmlens
from llmlens.demo.fake_server import FakeProvider

handle = llmlens.configure(service_name="pipeline-test", emit_event=True, metric_export_interval_s=3600)
with FakeProvider() as fake:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    options = {"stream": True, "stream_options": {"include_usage": True}}
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools, **options):
        pass
    client.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="Hi")
handle.shutdown()
print("WORKLOAD DONE", flush=True)
"""


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and `#` comment lines ignored (the docker --env-file format)."""
    settings: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key.strip(), f"{path.name}:{number}: not KEY=VALUE: {raw!r}"
        settings[key.strip()] = value.strip()
    return settings


def read_requests(path: Path, request_type: Any) -> list[Any]:
    requests = []
    data = path.read_bytes() if path.exists() else b""
    while data:
        size = int.from_bytes(data[:4], "big")
        request = request_type()
        request.ParseFromString(data[4 : 4 + size])
        requests.append(request)
        data = data[4 + size :]
    return requests


def run_workload(tmp_path: Path, protocol: str, endpoint: str) -> dict[str, list[Any]]:
    """The instrumented workload in its own process; returns what its exporters sent, by signal."""
    sent = tmp_path / "sent"
    sent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_AND_EVENT",
        LLMLENS_STORE="false",
    )
    result = subprocess.run(
        [sys.executable, "-c", WORKLOAD, str(sent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "WORKLOAD DONE" in result.stdout, result.stdout + result.stderr
    # The OTLP exporters report every failed export on stderr: none may have failed.
    assert "Failed to export" not in result.stderr, result.stderr
    return {
        "traces": read_requests(sent / "traces", ExportTraceServiceRequest),
        "metrics": read_requests(sent / "metrics", ExportMetricsServiceRequest),
        "logs": read_requests(sent / "logs", ExportLogsServiceRequest),
    }


def without_content(key_values: Any) -> list[Any]:
    return [kv for kv in key_values if kv.key not in CONTENT_KEYS]


def key(*messages: Any) -> tuple[bytes, ...]:
    return tuple(m.SerializeToString(deterministic=True) for m in messages)


# --- rotel, from its files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "port", "drop"),
    [("grpc", "grpc", True), ("http/protobuf", "http", True), ("http/protobuf", "http", False)],
    ids=["grpc-drop", "http-drop", "http-keep"],
)
def test_rotel_env_forwards_every_signal_intact_and_drops_the_content(
    tmp_path: Path, protocol: str, port: str, drop: bool
) -> None:
    settings = parse_env_file(ROTEL_ENV)
    assert settings["ROTEL_EXPORTER"] == "otlp" and settings["ROTEL_OTLP_EXPORTER_PROTOCOL"] == "grpc"
    for name in DROP_SETTINGS:
        assert (CONFIG.parent / settings[name]).is_file(), f"{name}={settings[name]} names no file"
        if not drop:  # what the README says to do to keep the content: take the two lines out
            del settings[name]
    with OtlpReceiver() as backend:
        settings["ROTEL_OTLP_EXPORTER_ENDPOINT"] = backend.grpc_endpoint
        with RotelCollector(env=settings, args=(), cwd=ROOT) as collector:
            endpoint = collector.grpc_endpoint if port == "grpc" else collector.http_endpoint
            sent = run_workload(tmp_path, protocol, endpoint)
            sent_spans = list(flat_spans(sent["traces"]))
            sent_points = list(flat_metric_points(sent["metrics"]))
            sent_logs = list(flat_log_records(sent["logs"]))
            assert len(sent_spans) == CALLS and len(sent_logs) == CALLS, (sent_spans, sent_logs)
            assert sent_points
            backend.wait_for(
                lambda r: (
                    len(r.spans()) >= len(sent_spans)
                    and len(r.metric_points()) >= len(sent_points)
                    and len(r.log_records()) >= len(sent_logs)
                )
            )
            output = collector.output()
        assert set(backend.transports) == {"grpc"}

    # The workload captured every kind of content, on spans and on the events.
    for sent in ([span for _, _, span in sent_spans], [record for _, _, record in sent_logs]):
        captured = [CONTENT_KEYS & set(attributes(item.attributes)) for item in sent]
        assert set().union(*captured) == CONTENT_KEYS, captured
        assert all({"gen_ai.input.messages", "gen_ai.output.messages"} <= keys for keys in captured)

    # Spans: the same spans, every field equal; only the content attributes gone when dropping.
    received = {span.span_id: (resource, scope, span) for resource, scope, span in backend.spans()}
    assert len(received) == len(backend.spans()) == CALLS, output
    for resource, scope, span in sent_spans:
        got_resource, got_scope, got = received[span.span_id]
        assert key(got_resource, got_scope) == key(resource, scope)
        expected = type(span)()
        expected.CopyFrom(span)
        if drop:
            del expected.attributes[:]
            expected.attributes.extend(without_content(span.attributes))
        assert got == expected, f"span {span.name} changed on the way:\n{got}\nexpected\n{expected}"
        assert attributes(got.attributes)["gen_ai.usage.input_tokens"] > 0

    # Log records (the operation.details events): the same, content gone when dropping.
    expected_logs = []
    for resource, scope, record in sent_logs:
        expected = type(record)()
        expected.CopyFrom(record)
        if drop:
            del expected.attributes[:]
            expected.attributes.extend(without_content(record.attributes))
        expected_logs.append(key(resource, scope, expected))
    got_logs = [key(*triple) for triple in backend.log_records()]
    assert sorted(got_logs) == sorted(expected_logs)
    for _, _, record in backend.log_records():
        assert record.event_name == "gen_ai.client.inference.operation.details"
        assert bool(CONTENT_KEYS & set(attributes(record.attributes))) is not drop

    # Metric points: every one of them, unchanged (metrics carry no content).
    assert sorted(key(*point) for point in backend.metric_points()) == sorted(
        key(*point) for point in sent_points
    )
    names = {metric.name for _, _, metric, _ in backend.metric_points()}
    assert "llmlens.cost" in names and any(name.startswith("gen_ai.client.") for name in names), names


def test_rotel_drop_step_clears_content_from_a_map_body(tmp_path: Path) -> None:
    """A log record whose body is a map loses the content keys there too (llmlens puts its event's
    content in attributes, other emitters in the body); the rest of the body stays."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    settings = parse_env_file(ROTEL_ENV)
    with OtlpReceiver() as backend:
        settings["ROTEL_OTLP_EXPORTER_ENDPOINT"] = backend.grpc_endpoint
        with RotelCollector(env=settings, args=(), cwd=ROOT) as collector:
            provider = LoggerProvider()
            exporter = OTLPLogExporter(endpoint=f"{collector.http_endpoint}/v1/logs")
            provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
            body = {"gen_ai.input.messages": "[secret]", "gen_ai.output.messages": "[reply]", "kept": 1}
            provider.get_logger("test").emit(event_name="x", body=body, attributes={"kept": "yes"})
            provider.shutdown()
            backend.wait_for(lambda r: len(r.log_records()) >= 1)
    ((_, _, record),) = backend.log_records()
    assert attributes(record.body.kvlist_value.values) == {"kept": 1}
    assert attributes(record.attributes) == {"kept": "yes"}


# --- otelcol-contrib.yaml -------------------------------------------------------------------------


def otelcol() -> dict[str, Any]:
    return yaml.safe_load(OTELCOL.read_text(encoding="utf-8"))


def test_otelcol_pipelines_name_defined_components_in_a_sane_order() -> None:
    config = otelcol()
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for signal, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline[kind]:
                assert name in config[kind], f"{signal}: {kind[:-1]} {name} is not defined"
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter", f"{signal}: memory_limiter must come first"
        assert processors[-1] == "batch", f"{signal}: batch must come last"
        assert pipeline["receivers"] == ["otlp"]
    assert "transform/drop_content" in pipelines["traces"]["processors"]
    assert "transform/drop_content" in pipelines["logs"]["processors"]
    assert "debug" in config["exporters"]
    exporters = {signal: set(p["exporters"]) for signal, p in pipelines.items()}
    assert "prometheusremotewrite" in exporters["metrics"]
    assert {"otlp/jaeger", "clickhouse"} <= exporters["traces"]
    assert "clickhouse" in exporters["logs"]
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert grpc.endswith(":4317") and http.endswith(":4318")
    limiter = config["processors"]["memory_limiter"]
    assert "check_interval" in limiter and ("limit_mib" in limiter or "limit_percentage" in limiter)


def test_otelcol_drop_step_deletes_every_content_key_from_spans_logs_and_bodies() -> None:
    transform = otelcol()["processors"]["transform/drop_content"]
    traces = " ".join(transform["trace_statements"])
    logs = " ".join(transform["log_statements"])
    for content_key in CONTENT_KEYS:
        assert f'delete_key(span.attributes, "{content_key}")' in traces
        assert f'delete_key(log.attributes, "{content_key}")' in logs
        assert f'delete_key(log.body, "{content_key}") where IsMap(log.body)' in logs


# --- docker-compose.yml ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_services_use_pinned_images_and_mount_files_that_exist() -> None:
    services = compose()["services"]
    assert {"otelcol", "prometheus", "grafana", "jaeger", "clickhouse"} <= set(services)
    for name, service in services.items():
        image = service["image"]
        tag = image.rpartition(":")[2]
        assert ":" in image and tag and tag != "latest", f"{name}: image {image} is not pinned"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):  # a bind mount of a file of this directory (else a named volume)
                assert (CONFIG / source).exists(), f"{name} mounts {source}, which does not exist"
    otelcol_service = services["otelcol"]
    assert any(v.startswith("./otelcol-contrib.yaml:") for v in otelcol_service["volumes"])
    assert "--web.enable-remote-write-receiver" in services["prometheus"]["command"]
    assert any(v.startswith("./prometheus.yml:") for v in services["prometheus"]["volumes"])


def test_compose_endpoints_match_the_collector_exporters() -> None:
    """The hosts and ports the collector exports to are services of the stack."""
    services = compose()["services"]
    exporters = otelcol()["exporters"]
    assert exporters["prometheusremotewrite"]["endpoint"] == "http://prometheus:9090/api/v1/write"
    assert exporters["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert exporters["clickhouse"]["endpoint"].startswith("tcp://clickhouse:9000")
    clickhouse_env = services["clickhouse"]["environment"]
    assert clickhouse_env["CLICKHOUSE_USER"] == exporters["clickhouse"]["username"]
    assert clickhouse_env["CLICKHOUSE_PASSWORD"] == exporters["clickhouse"]["password"]
    assert set(services["otelcol"]["depends_on"]) >= {"prometheus", "jaeger", "clickhouse"}


def test_prometheus_yml_scrapes_the_llmlens_endpoint_and_the_collector() -> None:
    config = yaml.safe_load((CONFIG / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert any(t.endswith(":9464") for ts in targets.values() for t in ts), targets
    assert any(t == "otelcol:8888" for ts in targets.values() for t in ts), targets
