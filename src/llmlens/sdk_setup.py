"""`configure()`: OpenTelemetry set-up plus instrumentation in one call, for scripts with none yet.

Example:
    >>> import llmlens
    >>> handle = llmlens.configure(service_name="my-app", exporter="console")
    >>> ...                       # openai calls are now traced, measured and exported
    >>> handle.shutdown()         # also runs at interpreter exit: buffered telemetry is flushed

Exporters come from the `exporter` argument, else from the standard variables
`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`, `OTEL_LOGS_EXPORTER` (`otlp`, `console`, `none`,
comma-separated). With none of those set, data goes over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or a
per-signal endpoint) is set, and nowhere otherwise, so a script without a collector prints no
connection errors. OTLP uses `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `grpc`).

llmlens's own log lines (warnings, the proxy's request lines) go to the logs pipeline too, with their
trace ids and secrets redacted; the application's log handlers are left as they are (docs/logs.md).

Metrics can also be scraped: `prometheus_port=` (or `LLMLENS_PROMETHEUS_PORT`, or `prometheus` among the
metrics exporters, on port 9464) serves them at `http://127.0.0.1:PORT/metrics` (docs/prometheus.md).
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmlens import prometheus as _prometheus
from llmlens.prometheus import MetricsRegistry, PrometheusEndpoint
from llmlens.settings import PROMETHEUS_DEFAULT_PORT, OtelSettings, Settings

_log = logging.getLogger("llmlens")


@dataclass
class Configured:
    """The providers `configure()` made; `shutdown()` flushes and stops them (once)."""

    tracer_provider: Any
    meter_provider: Any
    logger_provider: Any
    exporters: dict[str, list[str]]
    instrumentor: Any
    prometheus: PrometheusEndpoint | None = None  # the scrape endpoint, when one is served
    metrics_registry: MetricsRegistry | None = None  # what the endpoint and the proxy's metrics path show
    _stopped: bool = False

    @property
    def prometheus_port(self) -> int | None:
        """The port the Prometheus scrape endpoint listens on (the one picked, for port 0); None: none."""
        return None if self.prometheus is None else self.prometheus.port

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        from llmlens.logs import pipeline

        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is self.logger_provider:  # (what the others said while flushing is exported)
                pipeline.uninstall(provider)  # llmlens's log handlers stop writing to it
            try:
                provider.shutdown()
            except Exception:
                _log.debug("llmlens: provider shutdown failed", exc_info=True)
        if self.prometheus is not None:
            self.prometheus.close()
        if self.metrics_registry is not None and _prometheus.current() is self.metrics_registry:
            _prometheus.use(None)


def exporter_names(exporter: str | None, environ: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Exporter names per signal from the argument or the environment, validated."""
    return OtelSettings.from_env(environ).exporters(exporter)


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    """`OTEL_EXPORTER_OTLP_PROTOCOL`, validated (`http/protobuf` when unset)."""
    return OtelSettings.from_env(environ).otlp_protocol


def _exporter(signal: str, name: str, protocol: str) -> Any:
    if name == "console":
        if signal == "traces":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        if signal == "metrics":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            return ConsoleMetricExporter()
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter()
    kind = "grpc" if protocol == "grpc" else "http"
    module_name = {"traces": "trace_exporter", "metrics": "metric_exporter", "logs": "_log_exporter"}[signal]
    class_name = {"traces": "OTLPSpanExporter", "metrics": "OTLPMetricExporter", "logs": "OTLPLogExporter"}[
        signal
    ]
    import importlib

    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.{module_name}")
    return getattr(module, class_name)()


def _sampler(options: dict[str, Any]) -> Any:
    """The OTEL_TRACES_SAMPLER sampler; wrapped so unsampled LLM spans still reach the local store.

    The SDK reads OTEL_TRACES_SAMPLER (and its argument) itself: llmlens does not interpret them."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    try:
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

        base = _get_from_env_or_default()
    except Exception:  # a private helper of the SDK: fall back to its documented default
        base = ParentBased(TraceIdRatioBased(1.0))
    overrides = {"store": options["store"]} if options.get("store") is not None else {}
    settings, _ = Settings.from_env_lenient(only=("store",), **overrides)  # (instrument() says errors)
    if not settings.store:
        return base
    from llmlens.store.sampling import RecordGenAISampler

    return RecordGenAISampler(base)


def configure(
    service_name: str | None = None,
    exporter: str | None = None,
    *,
    metric_export_interval_s: float | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    set_global: bool = True,
    **instrument_options: Any,
) -> Configured:
    """Set up tracer, meter and logger providers with the chosen exporters, then instrument.

    `exporter` ("otlp", "console", "none", or a comma-separated mix) applies to all three signals;
    leave it out to use the `OTEL_*_EXPORTER` variables. `prometheus` there (metrics only) serves a
    scrape endpoint, as `prometheus_port` (or `LLMLENS_PROMETHEUS_PORT`) does on that port (0: a free
    one, see `Configured.prometheus_port`), bound to `prometheus_host` (default 127.0.0.1). Other
    keyword arguments go to `Instrumentor().instrument()` (e.g. `capture_content="SPAN_ONLY"`).
    """
    from opentelemetry import metrics, trace
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from llmlens.core.span_ids import SPAN_IDS
    from llmlens.instrumentor import Instrumentor
    from llmlens.logs import pipeline as log_pipeline

    # What llmlens interprets of the OTEL_* variables (llmlens.settings.OtelSettings); the exporters read
    # their own endpoint, headers and timeout variables, and the SDK its sampler and resource ones.
    otel = OtelSettings.from_env()
    names = otel.exporters(exporter)
    protocol = otel.otlp_protocol
    service_name = service_name or otel.service_name
    resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})

    # The logs first: llmlens's own log lines from here on (a taken Prometheus port) are exported.
    logger_provider = LoggerProvider(resource=resource)
    for name in names["logs"]:
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(_exporter("logs", name, protocol)))
    log_pipeline.install(logger_provider, instrument_options)

    tracer_provider = TracerProvider(
        resource=resource, sampler=_sampler(instrument_options), id_generator=SPAN_IDS
    )
    for name in names["traces"]:
        tracer_provider.add_span_processor(BatchSpanProcessor(_exporter("traces", name, protocol)))
    # A bad value is one ERROR line and left out, as in instrument() (which says a bad metrics path).
    scrape, errors = Settings.from_env_lenient(
        only=("prometheus_port", "prometheus_host"),
        prometheus_port=prometheus_port,
        prometheus_host=prometheus_host,
    )
    for error in errors:
        _log.error("llmlens: %s; this value is ignored", error)
    metrics_path = Settings.from_env_lenient(
        only=("proxy_metrics_path",), proxy_metrics_path=instrument_options.get("proxy_metrics_path")
    )[0].proxy_metrics_path
    if scrape.prometheus_port is not None and "prometheus" not in names["metrics"]:
        names["metrics"].append("prometheus")
    interval_ms = None if metric_export_interval_s is None else metric_export_interval_s * 1000
    readers: list[Any] = [
        PeriodicExportingMetricReader(
            _exporter("metrics", name, protocol), export_interval_millis=interval_ms
        )
        for name in names["metrics"]
        if name != "prometheus"
    ]
    prometheus = registry = None
    if "prometheus" in names["metrics"] or metrics_path:
        registry = MetricsRegistry.make()
        readers.append(registry.reader)
    if "prometheus" in names["metrics"]:
        port = PROMETHEUS_DEFAULT_PORT if scrape.prometheus_port is None else scrape.prometheus_port
        prometheus = PrometheusEndpoint.start(scrape.prometheus_host, port, registry)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        set_logger_provider(logger_provider)

    instrumentor = Instrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()  # re-point the instrumentation at the providers made here
    try:
        instrumentor.instrument(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            logger_provider=logger_provider,
            **instrument_options,
        )
    except BaseException:  # a bad option: do not leave the endpoint listening
        if prometheus is not None:
            prometheus.close()
        log_pipeline.uninstall(logger_provider)
        raise
    configured = Configured(
        tracer_provider, meter_provider, logger_provider, names, instrumentor, prometheus, registry
    )
    if registry is not None:
        _prometheus.use(registry)  # what the proxy middleware's metrics path shows
    atexit.register(configured.shutdown)
    return configured
