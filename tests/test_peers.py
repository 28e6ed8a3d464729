"""Other GenAI instrumentations of openai next to llmlens (llmlens.peers): one LLM span per call.

The peers are the real packages the dev extra installs: the contrib `opentelemetry-instrumentation-
openai-v2` (what `opentelemetry-bootstrap -a requirements` suggests to every openai user), OpenLLMetry's
`opentelemetry-instrumentation-openai` and OpenInference's `openinference-instrumentation-openai`. Each
registers an `opentelemetry_instrumentor` entry point named `openai`. Every scenario runs in its own
process against the fake provider on loopback, since a peer patches openai for the whole process (and
OpenLLMetry's own `uninstrument()` leaves its wrappers in place):

- `opentelemetry-instrument python app.py` with the three peers loaded, llmlens's entry point first or
  last: one LLM span per call, llmlens's, the token usage on it alone, and each peer's stand-aside line
  once on stderr; `LLMLENS_PEER_INSTRUMENTATIONS=allow`: every instrumentation's span; `=defer`: none
  of llmlens;
- in code, per peer: the peer's `OpenAIInstrumentor().instrument()` and llmlens's, in either order, give
  one span per call and one count of the tokens in the metrics; the peer's `uninstrument()` while it
  stands aside does nothing; after llmlens's `uninstrument()` the peer's `instrument()` works again;
  `peer_instrumentations="allow"` gives two spans per call, `"defer"` the peer's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest

from test_entry_point import CONSOLE_ENV, clean_env, console_spans, script

# peer distribution -> its instrumentor's module
PEERS = {
    "opentelemetry-instrumentation-openai-v2": "opentelemetry.instrumentation.openai_v2",
    "opentelemetry-instrumentation-openai": "opentelemetry.instrumentation.openai",
    "openinference-instrumentation-openai": "openinference.instrumentation.openai",
}
STAND_ASIDE = "stands aside: llmlens traces the openai SDK"
INPUT_TOKENS = 4  # the fake provider's count for one "Hi" message: 3 per message + 1 word


@pytest.fixture(scope="module", autouse=True)
def _peers_installed() -> None:
    # Never a quiet skip: without the peers this file would test nothing.
    for name, module in PEERS.items():
        try:
            distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed: install llmlens[dev] (pyproject.toml) in this environment")
        result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert result.returncode == 0, f"{module} does not import:\n{result.stderr}"


def llm_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans of an LLM call, by any instrumentation: GenAI semconv (`gen_ai.*`), OpenLLMetry's
    older names (`llm.*`) or OpenInference's."""
    return [
        s for s in spans
        if any(k.startswith(("gen_ai.", "llm.")) or k == "openinference.span.kind" for k in s["attributes"])
    ]  # fmt: skip


def input_tokens(span: dict[str, Any]) -> int:
    attributes = span["attributes"]
    return attributes.get("gen_ai.usage.input_tokens") or attributes.get("llm.token_count.prompt") or 0


def stderr_lines(stderr: str, text: str) -> list[str]:
    return [line for line in stderr.splitlines() if text in line]


# --- opentelemetry-instrument ---------------------------------------------------------------------

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


def first_on_sys_path(directory: Path, *names: str) -> str:
    """A directory for PYTHONPATH that puts these distributions' entry points before all others.

    importlib.metadata lists each distribution once, the first found on sys.path, and
    `opentelemetry-instrument` loads instrumentors in that order: a copy of a distribution's METADATA
    and entry_points.txt in a directory ahead of site-packages moves its entry points first. The code
    they load is the installed one."""
    for name in names:
        dist = distribution(name)
        target = directory / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
        target.mkdir(parents=True)
        for file in ("METADATA", "entry_points.txt"):
            (target / file).write_text(dist.read_text(file) or "", encoding="utf-8")
    return str(directory)


def run_app(tmp_path: Path, first: tuple[str, ...], **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    path = os.pathsep.join(
        filter(None, [first_on_sys_path(tmp_path / "first", *first), os.environ.get("PYTHONPATH")])
    )
    result = subprocess.run(
        [script("opentelemetry-instrument"), sys.executable, "app.py"],
        env=clean_env(**CONSOLE_ENV, PYTHONPATH=path, LLMLENS_STORE="false", **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "APP DONE" in result.stdout, result.stdout
    return result


def by_trace(spans: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The LLM spans of each call (each call is a trace of its own), in the order of the calls."""
    traces: dict[str, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start_time"]):
        traces.setdefault(span["context"]["trace_id"], []).append(span)
    return list(traces.values())


@pytest.mark.parametrize("llmlens_entry_point", ["first", "last"])
def test_zero_code_one_span_per_call(tmp_path: Path, llmlens_entry_point: str) -> None:
    first = ("llmlens",) if llmlens_entry_point == "first" else tuple(PEERS)
    result = run_app(tmp_path, first)
    calls = by_trace(llm_spans(console_spans(result.stdout)))
    assert len(calls) == 2, result.stdout
    for spans in calls:
        # one span per call, llmlens's (a peer would say `openai`: it cannot tell the fake server apart)
        assert [(s["kind"], s["attributes"]["gen_ai.provider.name"]) for s in spans] == [
            ("SpanKind.CLIENT", "openai_compatible")
        ], result.stdout
    assert sum(input_tokens(s) for s in calls[0]) == INPUT_TOKENS  # usage counted once
    assert calls[1][0]["attributes"]["llmlens.stream.outcome"] == "completed"
    for peer in PEERS:
        lines = stderr_lines(result.stderr, f"llmlens: {peer} {STAND_ASIDE}")
        assert len(lines) == 1, result.stderr
        assert "LLMLENS_PEER_INSTRUMENTATIONS=defer" in lines[0]


def test_zero_code_allow_keeps_every_span(tmp_path: Path) -> None:
    # llmlens first: OpenInference wraps `OpenAI.request`, which hides llmlens's wrapper of the base
    # class's `request` when OpenInference comes first (docs/configuration.md).
    result = run_app(tmp_path, ("llmlens",), LLMLENS_PEER_INSTRUMENTATIONS="allow")
    calls = by_trace(llm_spans(console_spans(result.stdout)))
    assert len(calls) == 2, result.stdout
    for spans in calls:
        names = sorted(s["name"] for s in spans)
        # llmlens's and openai-v2's, OpenLLMetry's, OpenInference's
        assert names == ["ChatCompletion", "chat gpt-4o-mini", "chat gpt-4o-mini", "openai.chat"], names
        assert [s["attributes"].get("gen_ai.provider.name") for s in spans].count("openai_compatible") == 1
    assert sum(input_tokens(s) for s in calls[0]) == 4 * INPUT_TOKENS  # counted by every one of them
    assert STAND_ASIDE not in result.stderr


def test_zero_code_defer_leaves_openai_to_the_peers(tmp_path: Path) -> None:
    # llmlens first, so that it has patched openai when the peers instrument it. (With llmlens last it
    # skips openai; with OpenInference first, llmlens's wrapper would be hidden anyway: see allow.)
    result = run_app(tmp_path, ("llmlens",), LLMLENS_PEER_INSTRUMENTATIONS="defer")
    calls = by_trace(llm_spans(console_spans(result.stdout)))
    assert len(calls) == 2, result.stdout
    for spans in calls:
        assert len(spans) == 3, [s["name"] for s in spans]  # the three peers'
        assert all(s["attributes"].get("gen_ai.provider.name") != "openai_compatible" for s in spans)
    assert STAND_ASIDE not in result.stderr


# --- in code --------------------------------------------------------------------------------------

# Runs the steps named on the command line; prints what each `call` step produced as JSON.
SCRIPT = """
import importlib, json, sys

import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmlens.demo.fake_server import FakeProvider
from llmlens.instrumentor import Instrumentor

spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
reader = InMemoryMetricReader()
providers = {"tracer_provider": tracer_provider, "meter_provider": MeterProvider(metric_readers=[reader])}
peer = importlib.import_module(sys.argv[1]).OpenAIInstrumentor


def input_token_metric():
    total = 0
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "gen_ai.client.token.usage":
                    for point in metric.data.data_points:
                        if point.attributes.get("gen_ai.token.type") == "input":
                            total += point.sum
    return total


results = []
with FakeProvider() as fake:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    for step in sys.argv[2:]:
        name, _, mode = step.partition(":")
        if name == "llmlens":
            Instrumentor().instrument(**providers, **({"peer_instrumentations": mode} if mode else {}))
        elif name == "unllmlens":
            Instrumentor().uninstrument()
        elif name == "peer":
            peer().instrument(**providers)
        elif name == "unpeer":
            peer().uninstrument()
        elif name == "call":
            spans.clear()
            tokens = input_token_metric()
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
                pass
            results.append({
                "spans": [
                    {"name": s.name, "kind": s.kind.name, "scope": s.instrumentation_scope.name,
                     "trace": s.context.trace_id, "attributes": dict(s.attributes)}
                    for s in spans.get_finished_spans()
                ],
                "input_token_metric": input_token_metric() - tokens,
                "peer_instrumented": peer().is_instrumented_by_opentelemetry,
            })
print("RESULTS " + json.dumps(results, default=list), flush=True)
"""


def run_steps(tmp_path: Path, peer: str, *steps: str) -> tuple[list[dict[str, Any]], str]:
    (tmp_path / "steps.py").write_text(SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "steps.py", PEERS[peer], *steps],
        env=clean_env(LLMLENS_STORE="false"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")]
    return json.loads(line.removeprefix("RESULTS ")), result.stderr


def llmlens_alone(call: dict[str, Any]) -> None:
    """One llmlens span per call (two calls: plain and streamed); the input tokens counted once, on
    the spans and in the metrics."""
    spans = llm_spans(call["spans"])
    assert [(s["scope"], s["kind"]) for s in spans] == [("llmlens", "CLIENT")] * 2, spans
    assert sum(input_tokens(s) for s in spans) == INPUT_TOKENS
    assert call["input_token_metric"] == INPUT_TOKENS


def peer_alone(call: dict[str, Any]) -> None:
    spans = llm_spans(call["spans"])
    assert len(spans) == 2, [s["name"] for s in spans]
    assert "llmlens" not in {s["scope"] for s in spans}
    assert call["peer_instrumented"] is True


@pytest.mark.parametrize("peer", PEERS)
def test_in_code_either_order(tmp_path: Path, peer: str) -> None:
    calls, stderr = run_steps(
        tmp_path, peer,
        "peer", "llmlens", "call",      # the peer first: it is uninstrumented
        "unpeer", "call",               # its uninstrument() while it stands aside does nothing
        "unllmlens", "call",            # llmlens off: the peer stays off
        "peer", "call",                 # and its own instrument() works again
        "llmlens", "call",              # it stands aside again
        "unllmlens", "llmlens", "peer", "call",        # llmlens first: the peer's instrument() does nothing
        "unllmlens", "llmlens:allow", "peer", "call",  # allow: both trace
    )  # fmt: skip
    peer_first, after_unpeer, after_unllmlens, peer_again, llmlens_again, llmlens_first, allow = calls
    llmlens_alone(peer_first)
    assert peer_first["peer_instrumented"] is True  # as asked: standing aside
    llmlens_alone(after_unpeer)
    assert after_unpeer["peer_instrumented"] is False
    assert llm_spans(after_unllmlens["spans"]) == []
    peer_alone(peer_again)
    llmlens_alone(llmlens_again)
    llmlens_alone(llmlens_first)
    assert llmlens_first["peer_instrumented"] is True
    # three times it stood aside; said once
    assert len(stderr_lines(stderr, f"llmlens: {peer} {STAND_ASIDE}")) == 1, stderr

    spans = llm_spans(allow["spans"])
    assert len(spans) == 4, [(s["scope"], s["name"]) for s in spans]
    for trace in {s["trace"] for s in spans}:  # each call: llmlens's span and the peer's, nested
        assert sorted(s["scope"] == "llmlens" for s in spans if s["trace"] == trace) == [False, True]
    assert sum(input_tokens(s) for s in spans) == 2 * INPUT_TOKENS


def test_in_code_defer_leaves_openai_to_the_peer(tmp_path: Path) -> None:
    # openai-v2's uninstrument() undoes all it did, so one process serves both orders.
    calls, stderr = run_steps(
        tmp_path, "opentelemetry-instrumentation-openai-v2",
        "peer", "llmlens:defer", "call", "unllmlens", "call", "unpeer",  # llmlens skips openai
        "llmlens:defer", "peer", "call", "unllmlens", "call",            # llmlens unpatches openai
    )  # fmt: skip
    assert len(calls) == 4
    for call in calls:
        peer_alone(call)
    assert STAND_ASIDE not in stderr
