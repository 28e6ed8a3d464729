"""`Instrumentor`: the OpenTelemetry `BaseInstrumentor` that patches every installed LLM SDK.

An SDK is patched when the application imports it (at once if it already has): `instrument()` imports
none itself (llmlens.import_hooks), except where another instrumentation of that SDK is installed
and the order of the two decides which one traces it (llmlens.peers).

Example:
    >>> from llmlens import Instrumentor
    >>> Instrumentor().instrument()                 # global providers
    >>> Instrumentor().instrument(tracer_provider=tp, meter_provider=mp, logger_provider=lp)
    >>> Instrumentor().uninstrument()               # every patched method restored

`opentelemetry-instrument python app.py` finds it through the `opentelemetry_instrumentor` entry point
named `llmlens`.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from llmlens.import_hooks import PendingImports
from llmlens.peers import PeerClaims
from llmlens.settings import INSTRUMENT_KEYWORDS, INSTRUMENT_READS, KNOWN_PROVIDERS, Settings

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
        # A bad value is one clear line and is left out (its setting keeps its default); every other
        # setting applies: bad telemetry settings must not stop the app, nor undo the good ones (a
        # store turned off, another store file).
        settings, errors = Settings.from_env_lenient(only=INSTRUMENT_READS, **options)
        for error in errors:
            _log.error("llmlens: %s; this value is ignored", error)
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
        pending = PendingImports()
        self._patches.extend((pending, peers))  # in this order: uninstrument() stops the hooks first
        for name in KNOWN_PROVIDERS:
            sdk, module_name = _PROVIDER_MODULES[name]
            if name not in settings.providers or not _installed(sdk):
                continue
            apply = functools.partial(self._patch_provider, name, module_name, peers)
            if peers.coordinated(name):
                apply()  # now: the peer rule depends on the order of the two instrument() calls
            else:
                pending.when_imported(sdk, apply)  # an SDK the application never imports costs nothing
        for package, module_name, wanted in (
            ("starlette", "llmlens.proxy.autopatch", settings.proxy_auto),
            ("llm_rosetta", "llmlens.proxy.rosetta", True),
        ):
            if wanted and _installed(package):  # Starlette/FastAPI apps get the middleware (docs/proxy.md)
                pending.when_imported(package, functools.partial(self._patch_proxies, package, module_name))

    def _patch_provider(self, name: str, module_name: str, peers: PeerClaims) -> None:
        """Patch one SDK (it is imported by now), unless a peer has it (llmlens.peers)."""
        sdk = _PROVIDER_MODULES[name][0]
        if not peers.before(name):
            return
        try:
            module = importlib.import_module(module_name)
            patch = module.instrument(self.telemetry, self.settings)
        except Exception:
            peers.release(name)
            _log.warning("llmlens: could not instrument %s; its calls stay untraced", sdk, exc_info=True)
            return
        self._patches.append(patch)
        peers.claim(name, patch)

    def _patch_proxies(self, package: str, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
            self._patches.append(module.patch(self.telemetry, self.settings))
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
