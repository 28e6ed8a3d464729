"""`Instrumentor`: the OpenTelemetry `BaseInstrumentor` that patches every installed LLM SDK.

Example:
    >>> from llmlens import Instrumentor
    >>> Instrumentor().instrument()                 # global providers
    >>> Instrumentor().instrument(tracer_provider=tp, meter_provider=mp, logger_provider=lp)
    >>> Instrumentor().uninstrument()               # every patched method restored

`opentelemetry-instrument python app.py` finds it through the `opentelemetry_instrumentor` entry point
named `llmlens`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from llmlens.peers import PeerClaims
from llmlens.settings import INSTRUMENT_KEYWORDS, INSTRUMENT_READS, KNOWN_PROVIDERS, Settings, SettingsError

_log = logging.getLogger("llmlens")

# Provider name -> (SDK import name, llmlens module that instruments it).
_PROVIDER_MODULES = {
    "openai": ("openai", "llmlens.providers.openai"),
    "anthropic": ("anthropic", "llmlens.providers.anthropic"),
    "groq": ("groq", "llmlens.providers.groq"),
    "google": ("google.genai", "llmlens.providers.google_genai"),
    "cohere": ("cohere", "llmlens.providers.cohere"),
    "ollama": ("ollama", "llmlens.providers.ollama"),
    "bedrock": ("botocore", "llmlens.providers.bedrock"),
}

_OPTION_NAMES = INSTRUMENT_KEYWORDS  # the instrument() rows of llmlens.settings.SETTINGS


class Instrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments openai (and, as they land, the other SDKs) with GenAI spans, metrics and events.

    Keyword options of `instrument()` override the environment: `capture_content`,
    `emit_event`, `content_max_length`, `providers`, `provider_map` (see docs/configuration.md).
    """

    # BaseInstrumentor is a singleton (`Instrumentor()` always returns the same object), so state
    # lives in attributes set by _instrument, never in an __init__ that a second call would rerun.
    _patches: list[Any] = []
    telemetry: Any = None
    settings: Settings | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        # Every SDK is optional: we instrument the ones that are installed, checked in _instrument.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        from llmlens.core.telemetry import Telemetry
        from llmlens.logs import pipeline

        options = {k: kwargs[k] for k in _OPTION_NAMES if kwargs.get(k) is not None}
        # llmlens's own log lines (a settings error below included) go to the logs pipeline (docs/logs.md).
        pipeline.install(kwargs.get("logger_provider"), options)
        try:
            settings = Settings.from_env(only=INSTRUMENT_READS, **options)
        except SettingsError as error:
            # One clear line, then carry on with defaults: bad telemetry settings must not stop the app.
            _log.error("llmlens: %s; using the defaults", error)
            settings = Settings()
        self.settings = settings
        self._patches = []
        self.telemetry = Telemetry(
            settings,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            logger_provider=kwargs.get("logger_provider"),
        )
        if settings.store:
            from llmlens.store.attach import attach_store
            from llmlens.store.retention import Retention

            store = attach_store(
                kwargs.get("tracer_provider"), settings.db_path, Retention.from_settings(settings)
            )
            if store is not None and settings.profiling:
                from llmlens.core.profiling import SWITCH
                from llmlens.profiling.watcher import ArmWatcher

                SWITCH.configure(store, settings, ArmWatcher)  # arms read from the store, profiles into it
        # Other GenAI instrumentations of the same SDKs stand aside, or llmlens does (llmlens.peers).
        peers = PeerClaims(settings.peer_instrumentations)
        self._patches.append(peers)
        for name in KNOWN_PROVIDERS:
            if name not in settings.providers:
                continue
            sdk, module_name = _PROVIDER_MODULES[name]
            if not _installed(sdk) or not peers.before(name):
                continue
            try:
                module = importlib.import_module(module_name)
                patch = module.instrument(self.telemetry, settings)
            except Exception:
                peers.release(name)
                _log.warning("llmlens: could not instrument %s; its calls stay untraced", sdk, exc_info=True)
                continue
            self._patches.append(patch)
            peers.claim(name, patch)
        self._instrument_proxies(settings)

    def _instrument_proxies(self, settings: Settings) -> None:
        """Starlette/FastAPI apps get the proxy middleware; llm-rosetta its hooks (docs/proxy.md)."""
        for package, module_name, wanted in (
            ("starlette", "llmlens.proxy.autopatch", settings.proxy_auto),
            ("llm_rosetta", "llmlens.proxy.rosetta", True),
        ):
            if not wanted or not _installed(package):
                continue
            try:
                module = importlib.import_module(module_name)
                self._patches.append(module.patch(self.telemetry, settings))
            except Exception:
                _log.warning("llmlens: could not instrument %s proxies", package, exc_info=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        from llmlens.core.profiling import SWITCH
        from llmlens.logs import pipeline
        from llmlens.store.attach import detach_stores

        pipeline.uninstall()
        SWITCH.shutdown()
        detach_stores()
        for patch in self._patches:
            try:
                patch.unpatch()
            except Exception:
                _log.debug("llmlens: unpatch failed", exc_info=True)
        self._patches = []


def _installed(sdk: str) -> bool:
    """Whether an SDK can be imported; `google.genai` needs its namespace parent, which may be absent."""
    try:
        return importlib.util.find_spec(sdk) is not None
    except (ImportError, ValueError):
        return False
