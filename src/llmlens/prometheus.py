"""llmlens's metrics in the Prometheus text format: a scrape endpoint of its own, or the proxied app's path.

`configure()` makes a `MetricsRegistry` (a `PrometheusMetricReader` on a registry of its own, not
prometheus_client's global one, so a scrape shows llmlens's metrics only and two `configure()` calls do
not collide) when a scrape endpoint is asked for (`PrometheusEndpoint`, served on a thread by
prometheus_client) or when the proxy middleware is to answer `LLMLENS_PROXY_METRICS_PATH`
(`exposition()`, called by proxy/asgi.py). docs/prometheus.md has the names as Prometheus shows them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

_log = logging.getLogger("llmlens")


@dataclass
class MetricsRegistry:
    """A reader for the MeterProvider, and the registry that shows what it reads (without empty labels)."""

    reader: Any
    served: Any

    @classmethod
    def make(cls) -> MetricsRegistry:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()  # the reader's: only what `_WithoutEmptyLabels` reads
        served = CollectorRegistry()
        served.register(_WithoutEmptyLabels(registry))
        return cls(PrometheusMetricReader(registry=registry), served)


class _WithoutEmptyLabels:
    """The reader's metrics without labels whose value is empty.

    The exporter gives every series of a metric the labels of all of them, empty where an attribute is
    absent (`error_type=""` on a success). Prometheus stores an empty label as no label; this makes the
    scrape text say so too."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def collect(self) -> Any:
        for family in self._registry.collect():
            family.samples = [
                sample._replace(labels={k: v for k, v in sample.labels.items() if v != ""})
                for sample in family.samples
            ]
            yield family


@dataclass
class PrometheusEndpoint:
    """A MetricsRegistry served over HTTP by prometheus_client, on a thread of the process."""

    registry: MetricsRegistry
    server: Any
    host: str
    port: int

    @classmethod
    def start(cls, host: str, port: int, registry: MetricsRegistry) -> PrometheusEndpoint | None:
        """Listen on host:port (0: a free port); None, after one error line, when that fails."""
        from prometheus_client import start_http_server

        try:
            server, _thread = start_http_server(port, addr=host, registry=registry.served)
        except OSError as error:  # the port is taken, the address is not ours: the app goes on
            reason = error.strerror or error
            _log.error("llmlens: no Prometheus endpoint: cannot listen on %s:%s (%s)", host, port, reason)
            return None
        return cls(registry, server, host, server.server_port)

    @property
    def reader(self) -> Any:
        return self.registry.reader

    def close(self) -> None:
        try:
            self.server.shutdown()
            self.server.server_close()
        except Exception:
            _log.debug("llmlens: Prometheus endpoint shutdown failed", exc_info=True)


# The registry of the newest configure() that made one: what the proxy's metrics path shows.
_CURRENT: list[MetricsRegistry] = []


def use(registry: MetricsRegistry | None) -> None:
    """Make `registry` the one `exposition()` shows (None: forget the current one)."""
    _CURRENT[:] = [] if registry is None else [registry]


def current() -> MetricsRegistry | None:
    return _CURRENT[0] if _CURRENT else None


def _served_registry() -> Any:
    """llmlens's registry; else prometheus_client's global one if an OpenTelemetry reader feeds it
    (`opentelemetry-instrument` with `OTEL_METRICS_EXPORTER=prometheus`); else None."""
    registry = current()
    if registry is not None:
        return registry.served
    try:
        from opentelemetry.exporter.prometheus import _CustomCollector
        from prometheus_client import REGISTRY

        collectors = list(REGISTRY._collector_to_names)  # private: guarded, a miss means "none"
        if any(isinstance(collector, _CustomCollector) for collector in collectors):
            return REGISTRY
    except Exception:
        _log.debug("llmlens: could not look for an OpenTelemetry Prometheus reader", exc_info=True)
    return None


def exposition(accept: str | None) -> tuple[bytes, str] | None:
    """(body, content type) of a scrape in the format `accept` asks for; None: no reader to show."""
    registry = _served_registry()
    if registry is None:
        return None
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
