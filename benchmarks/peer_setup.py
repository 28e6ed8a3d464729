"""The instrumentations compared in `stream_matrix.py` and `peers_overhead.py`: how each is switched on.

Each runs in a process of its own (a peer patches the SDKs for the whole process, and some cannot
uninstrument cleanly), in the virtual environment that `benchmarks/peers-env` built for it:

* ``.venv-peers`` (openai 3.x, anthropic 2.x): llmlens, OpenInference, OpenLLMetry, the official
  OpenTelemetry GenAI instrumentations (``-genai-openai``/``-genai-anthropic``) and Logfire;
* ``.venv-peers-legacy`` (openai 2.x, anthropic 0.x): llmlens again, OpenLIT and the contrib
  ``openai-v2``, which cannot be installed with, or do not import on, the newest SDKs.

Every process gets the same OpenTelemetry SDK set-up: a `TracerProvider` with one span processor (the
caller's: batch or simple, the same for all) feeding the caller's exporter, a `MeterProvider` with an
`InMemoryMetricReader`, and a `LoggerProvider` whose records (OpenLIT's and util-genai's events) are
dropped. All are installed as the globals before the instrumentation is switched on, so peers that look
for configured providers (OpenLIT) reuse them. Logfire builds its own providers; it gets the same span
processor through ``additional_span_processors``. Each instrumentation runs with its defaults (content
capture included: on for OpenLLMetry, OpenInference, OpenLIT and Logfire, off for llmlens and the
official ones), except that the local store of llmlens is off (``LLMLENS_STORE=off``: the others export
to the same exporter and nothing else) and OpenLIT instruments only openai and anthropic (not its 15
web-framework and HTTP-client instrumentations) and reads its price table from a local file (by
default it fetches one from GitHub at start-up).
"""

from __future__ import annotations

import atexit
import importlib.metadata as metadata
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# environment -> its virtual environment (benchmarks/peers-env builds both)
VENVS = {"peers": ROOT / ".venv-peers", "legacy": ROOT / ".venv-peers-legacy"}
SDKS = ("openai", "anthropic")


@dataclass(frozen=True)
class Instrumentation:
    name: str
    env: str  # a key of VENVS
    label: str  # how tables name it
    packages: tuple[str, ...]  # distributions whose versions the reports print
    sdks: tuple[str, ...] = SDKS  # the SDKs it instruments


def _instrumentations() -> tuple[Instrumentation, ...]:
    items = []
    for env in VENVS:
        suffix = "" if env == "peers" else " (legacy)"
        items.append(Instrumentation(f"none{suffix and '-legacy'}", env, f"none{suffix}", ()))
        items.append(Instrumentation(f"floor{suffix and '-legacy'}", env, f"floor{suffix}", ()))
        items.append(Instrumentation(f"llmlens{suffix and '-legacy'}", env, f"llmlens{suffix}", ("llmlens",)))
    items += [
        Instrumentation(
            "openinference", "peers", "OpenInference",
            ("openinference-instrumentation-openai", "openinference-instrumentation-anthropic"),
        ),
        Instrumentation(
            "openllmetry", "peers", "OpenLLMetry",
            ("opentelemetry-instrumentation-openai", "opentelemetry-instrumentation-anthropic"),
        ),
        Instrumentation(
            "otel-genai", "peers", "OTel genai",
            ("opentelemetry-instrumentation-genai-openai", "opentelemetry-instrumentation-genai-anthropic"),
        ),
        Instrumentation("logfire", "peers", "Logfire", ("logfire",)),
        Instrumentation("openlit", "legacy", "OpenLIT", ("openlit",)),
        Instrumentation(
            "openai-v2", "legacy", "OTel openai-v2", ("opentelemetry-instrumentation-openai-v2",), ("openai",)
        ),
    ]  # fmt: skip
    return tuple(items)


INSTRUMENTATIONS = {i.name: i for i in _instrumentations()}
# What a worker process does to switch an instrumentation on; "none" and "floor" instrument nothing.
BASELINES = ("none", "none-legacy", "floor", "floor-legacy")


def python_of(instrumentation: Instrumentation) -> Path:
    return VENVS[instrumentation.env] / "bin" / "python"


def tree_label() -> str:
    r"""`commit \`abc1234\`` (plus ` (src/ modified)` when src/ has uncommitted changes): what a result
    was measured on, for the tables' headers."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return f"commit `{git('rev-parse', '--short', 'HEAD')}`{' (src/ modified)' if dirty else ''}"


def missing_envs(names: list[str]) -> list[str]:
    """The virtual environments the instrumentations `names` need that do not exist yet."""
    envs = {INSTRUMENTATIONS[n].env for n in names}
    return sorted(str(VENVS[e]) for e in envs if not (VENVS[e] / "bin" / "python").exists())


def versions(packages: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the SDKs, OpenTelemetry and `packages`, as installed in this process's environment."""
    found = {}
    for name in ("openai", "anthropic", "opentelemetry-sdk", "httpx", "httpx2", *packages):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


# --- OpenTelemetry providers ----------------------------------------------------------------------------


@dataclass
class Providers:
    tracer_provider: Any
    meter_provider: Any
    processor: Any


def install_providers(exporter: Any, processor_kind: str, use_globals: bool = True) -> Providers:
    """The SDK providers every instrumentation gets (module docstring)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    processor = BatchSpanProcessor(exporter) if processor_kind == "batch" else SimpleSpanProcessor(exporter)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    if use_globals:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    _install_logger_provider()
    return Providers(tracer_provider, meter_provider, processor)


def _install_logger_provider() -> None:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    try:
        from opentelemetry.sdk._logs.export import LogExporter as LogRecordExporter
    except ImportError:
        from opentelemetry.sdk._logs.export import LogRecordExporter  # type: ignore[no-redef]

    class DroppingLogExporter(LogRecordExporter):  # type: ignore[misc, valid-type]
        def export(self, batch: Any) -> Any:
            from opentelemetry.sdk._logs.export import LogExportResult

            return LogExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(DroppingLogExporter()))
    set_logger_provider(provider)


# --- switching one instrumentation on ---------------------------------------------------------------


def instrument(name: str, exporter: Any, processor_kind: str) -> Providers:
    """Install the providers and switch `name` on, in this process (once)."""
    if name.startswith("llmlens"):
        os.environ["LLMLENS_STORE"] = "off"
    if name == "logfire":
        return _logfire(exporter, processor_kind)
    providers = install_providers(exporter, processor_kind)
    tp, mp = providers.tracer_provider, providers.meter_provider
    _SWITCHES.get(name.removesuffix("-legacy"), lambda tp, mp: None)(tp, mp)
    return providers


def _llmlens(tp: Any, mp: Any) -> None:
    from llmlens import Instrumentor

    Instrumentor().instrument(tracer_provider=tp, meter_provider=mp)


def _openinference(tp: Any, mp: Any) -> None:
    from openinference.instrumentation.anthropic import AnthropicInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tp)
    AnthropicInstrumentor().instrument(tracer_provider=tp)


def _openllmetry(tp: Any, mp: Any) -> None:
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    AnthropicInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)


def _otel_genai(tp: Any, mp: Any) -> None:
    from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    AnthropicInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)


def _openai_v2(tp: Any, mp: Any) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)


# OpenLIT's price table format ({"chat": {model: {promptPrice, completionPrice}}}, per 1k tokens).
_OPENLIT_PRICES = {
    "chat": {
        "gpt-4o-mini": {"promptPrice": 0.00015, "completionPrice": 0.0006},
        "claude-haiku-4-5": {"promptPrice": 0.001, "completionPrice": 0.005},
    }
}


def _openlit(tp: Any, mp: Any) -> None:
    import openlit
    from openlit._instrumentors import MODULE_NAME_MAP

    prices = Path(tempfile.gettempdir()) / f"llmlens-openlit-prices-{os.getpid()}.json"
    prices.write_text(json.dumps(_OPENLIT_PRICES))
    atexit.register(prices.unlink, missing_ok=True)
    openlit.init(
        pricing_json=str(prices),
        disabled_instrumentors=[n for n in MODULE_NAME_MAP if n not in ("openai", "anthropic")],
    )


def _logfire(exporter: Any, processor_kind: str) -> Providers:
    import logfire
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    processor = BatchSpanProcessor(exporter) if processor_kind == "batch" else SimpleSpanProcessor(exporter)
    _install_logger_provider()
    logfire.configure(
        send_to_logfire=False, console=False, additional_span_processors=[processor], inspect_arguments=False
    )
    logfire.instrument_openai()
    logfire.instrument_anthropic()
    return Providers(trace.get_tracer_provider(), None, processor)


_SWITCHES: dict[str, Callable[[Any, Any], None]] = {
    "llmlens": _llmlens,
    "openinference": _openinference,
    "openllmetry": _openllmetry,
    "otel-genai": _otel_genai,
    "openai-v2": _openai_v2,
    "openlit": _openlit,
}


# --- clients ----------------------------------------------------------------------------------------


def anthropic_kwargs() -> dict[str, Any]:
    """anthropic 2.x traces itself once a global provider is set; off, so that only the instrumentation
    measured makes spans (llmlens would replace the SDK's span; the peers would add theirs to it)."""
    import inspect

    import anthropic

    parameters = inspect.signature(anthropic.Anthropic).parameters
    return {"open_telemetry": False} if "open_telemetry" in parameters else {}


def llm_spans(spans: Any) -> list[Any]:
    """The spans of LLM calls among `spans`: all but HTTP-client instrumentations' (none is on)."""
    return [
        s for s in spans
        if not any(h in s.instrumentation_scope.name for h in ("httpx", "requests", "urllib", "aiohttp"))
    ]  # fmt: skip


def has_tokens(span: Any) -> bool:
    """Whether the span carries token usage, under any instrumentation's attribute names."""
    for key, value in (span.attributes or {}).items():
        usage = "token" in key and ("usage" in key or "token_count" in key)
        if usage and isinstance(value, (int, float)) and value > 0:
            return True
    return False


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(2)
