"""Other GenAI instrumentations of the SDKs llmlens instruments ("peers"), and which one traces a call.

`opentelemetry-bootstrap -a requirements` suggests the contrib `opentelemetry-instrumentation-openai-v2`
to every openai user; OpenLLMetry (`opentelemetry-instrumentation-openai`, `-anthropic`, ...) and
OpenInference (`openinference-instrumentation-openai`, ...) register `opentelemetry_instrumentor` entry
points too. With one of them on next to llmlens, every call would get two LLM spans, one inside the
other, and its token usage would be counted twice. `opentelemetry-instrument` loads instrumentors in
entry-point order, which nobody controls, so the rule below holds in either order
(`LLMLENS_PEER_INSTRUMENTATIONS`, docs/configuration.md):

- `stand_aside` (the default): llmlens claims each SDK it instruments. A peer of that SDK that is
  already instrumented is uninstrumented (before llmlens patches the SDK, so that the peer's own
  restoring cannot remove llmlens's wrappers); a peer instrumented later finds that its `instrument()`
  does nothing. Either way the peer reports `is_instrumented_by_opentelemetry` as asked, and its
  `uninstrument()` does nothing.
- `defer`: the peer has the SDK. llmlens skips an SDK that a peer already instruments, and stops
  tracing it (unpatches) just before a peer instruments it later.
- `allow`: llmlens does nothing about peers; both trace.

A peer is an `opentelemetry_instrumentor` entry point whose module is in `PEERS`. Each peer that
stands aside, and each SDK llmlens leaves to a peer, is logged once per process. `PeerClaims.unpatch()`
(llmlens's `uninstrument()` runs it) takes the hooks off the peers: one that stood aside is then not
instrumented, and its own `instrument()` works again.

Example:
    >>> claims = PeerClaims(PeerMode.STAND_ASIDE)
    >>> claims.before("openai")      # True: instrument openai (a peer already on was uninstrumented)
    >>> claims.claim("openai", patch)  # or, if patching failed: claims.release("openai")
    >>> claims.unpatch()             # the peers are theirs again
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from llmlens.settings import ENV_PEER_INSTRUMENTATIONS, PeerMode

_log = logging.getLogger("llmlens")

# Peer module -> the llmlens provider (settings.KNOWN_PROVIDERS) whose SDK it instruments. Not here:
# instrumentations of other libraries that only happen to call an LLM SDK (frameworks, agents), and
# contrib's botocore instrumentation, which traces every AWS service, not only Bedrock.
PEERS: Mapping[str, str] = {
    # OpenTelemetry (opentelemetry-util-genai): contrib's openai-v2, and opentelemetry-python-genai's
    # opentelemetry-instrumentation-genai-* packages, which replace it
    "opentelemetry.instrumentation.openai_v2": "openai",
    "opentelemetry.instrumentation.genai.openai": "openai",
    "opentelemetry.instrumentation.genai.anthropic": "anthropic",
    "opentelemetry.instrumentation.genai.bedrock": "bedrock",
    "opentelemetry.instrumentation.google_genai": "google",
    # OpenLLMetry (Traceloop)
    "opentelemetry.instrumentation.openai": "openai",
    "opentelemetry.instrumentation.anthropic": "anthropic",
    "opentelemetry.instrumentation.groq": "groq",
    "opentelemetry.instrumentation.google_generativeai": "google",  # it instruments google-genai
    "opentelemetry.instrumentation.cohere": "cohere",
    "opentelemetry.instrumentation.ollama": "ollama",
    "opentelemetry.instrumentation.bedrock": "bedrock",
    # OpenInference (Arize)
    "openinference.instrumentation.openai": "openai",
    "openinference.instrumentation.anthropic": "anthropic",
    "openinference.instrumentation.groq": "groq",
    "openinference.instrumentation.google_genai": "google",
    "openinference.instrumentation.cohere": "cohere",
    "openinference.instrumentation.ollama": "ollama",
    "openinference.instrumentation.bedrock": "bedrock",
}

_GROUP = "opentelemetry_instrumentor"
_logged: set[tuple[str, str, str]] = set()  # (mode, provider, peer): what was said once already


@dataclass(frozen=True)
class Peer:
    name: str  # the distribution, for messages (the module when the entry point has none)
    module: str
    instance: Any  # the instrumentor's singleton (BaseInstrumentor keeps one per class)


@functools.cache
def peer_entry_points() -> tuple[Any, ...]:
    """The installed peers' entry points (the installed distributions scanned once per process)."""
    return tuple(ep for ep in entry_points(group=_GROUP) if ep.module in PEERS)


def load_peers(provider: str, found: tuple[Any, ...]) -> list[Peer]:
    """The peers of one provider's SDK among the entry points `found`, their modules imported. A peer
    that cannot be imported cannot instrument anything either, and is left out."""
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

    peers: dict[str, Peer] = {}
    for entry_point in found:
        module = entry_point.module
        if PEERS.get(module) != provider or entry_point.value in peers:
            continue
        try:
            cls = entry_point.load()
        except Exception:
            _log.debug("llmlens: could not import %s", entry_point.value, exc_info=True)
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseInstrumentor)):
            continue
        # BaseInstrumentor.__new__ returns the class's singleton (made now if need be) without running
        # __init__, which in some peers resets options their user passed to the constructor.
        instance = cls.__new__(cls)
        if not hasattr(instance, "__dict__"):
            continue  # no room for the hooks below
        dist = getattr(entry_point, "dist", None)
        peers[entry_point.value] = Peer(getattr(dist, "name", None) or module, module, instance)
    return list(peers.values())


def _instrumented(peer: Peer) -> bool:
    return bool(getattr(peer.instance, "_is_instrumented_by_opentelemetry", False))


class PeerClaims:
    """What one `Instrumentor.instrument()` did about peers; `unpatch()` undoes it."""

    def __init__(self, mode: PeerMode) -> None:
        self.mode = mode
        self.active = True
        # (provider, peer, the hooks set on its instance: attribute -> function)
        self._hooked: list[tuple[str, Peer, dict[str, Callable[..., Any]]]] = []
        self._peers: dict[str, list[Peer]] = {}

    def _peers_of(self, provider: str) -> list[Peer]:
        if provider not in self._peers:
            try:
                self._peers[provider] = load_peers(provider, peer_entry_points())
            except Exception:  # never stop the instrumentation over this
                _log.debug("llmlens: could not look for other %s instrumentations", provider, exc_info=True)
                self._peers[provider] = []
        return self._peers[provider]

    def coordinated(self, provider: str) -> bool:
        """Whether llmlens must deal with a peer of `provider`'s SDK: one is installed, and the mode is
        not `allow`. Such an SDK is patched at `instrument()`, not on its import (llmlens.import_hooks):
        a peer's `instrument()` imports the SDK, and patching from inside it would defeat the rule."""
        if self.mode is PeerMode.ALLOW:
            return False
        try:
            return any(PEERS.get(ep.module) == provider for ep in peer_entry_points())
        except Exception:
            return False

    def before(self, provider: str) -> bool:
        """Called before llmlens patches `provider`'s SDK: whether to patch it. With `stand_aside`,
        peers already instrumented are uninstrumented here."""
        if self.mode is PeerMode.ALLOW:
            return True
        peers = [p for p in self._peers_of(provider) if _instrumented(p)]
        if self.mode is PeerMode.DEFER:
            if peers:
                _leave_to(provider, peers[0])
                return False
            return True
        stood_aside = []
        for peer in peers:
            try:
                peer.instance.uninstrument()
            except Exception:
                _log.warning(
                    "llmlens: could not uninstrument %s; %s calls may be traced twice",
                    peer.name, provider, exc_info=True,
                )  # fmt: skip
            stood_aside.append(peer)
        if stood_aside:
            _after_uninstrument(provider, stood_aside)
        for peer in stood_aside:
            # It was asked to instrument: it says so, standing aside (its uninstrument() is a no-op).
            peer.instance._is_instrumented_by_opentelemetry = True
            self._hook(peer, provider)
            _stood_aside(provider, peer)
        return True

    def claim(self, provider: str, patch: Any) -> None:
        """Called once llmlens has patched `provider`'s SDK with `patch`."""
        if self.mode is PeerMode.ALLOW:
            return
        for peer in self._peers_of(provider):
            if not any(hooked is peer for _, hooked, _ in self._hooked):
                self._hook(peer, provider, patch)

    def _hook(self, peer: Peer, provider: str, patch: Any = None) -> None:
        instance = peer.instance
        cls = type(instance)

        if self.mode is PeerMode.STAND_ASIDE:

            def instrument(**kwargs: Any) -> None:
                _stood_aside(provider, peer)

            def uninstrument(**kwargs: Any) -> None:
                return None

            hooks: dict[str, Callable[..., Any]] = {"_instrument": instrument, "_uninstrument": uninstrument}
        else:

            def take_over(**kwargs: Any) -> Any:
                try:
                    if self.active and patch is not None:
                        patch.unpatch()
                        _leave_to(provider, peer)
                except Exception:
                    _log.debug("llmlens: could not unpatch %s", provider, exc_info=True)
                return cls._instrument(instance, **kwargs)

            hooks = {"_instrument": take_over}
        instance.__dict__.update(hooks)
        self._hooked.append((provider, peer, hooks))

    def release(self, provider: str | None = None) -> None:
        """Take the hooks off the peers of `provider` (all of them: None), when llmlens could not
        patch that SDK after all, or is uninstrumented. A peer that stood aside is left uninstrumented,
        so that its own `instrument()` applies it."""
        kept = []
        for hooked_provider, peer, hooks in self._hooked:
            if provider is not None and hooked_provider != provider:
                kept.append((hooked_provider, peer, hooks))
                continue
            instance = peer.instance
            for name, function in hooks.items():
                if instance.__dict__.get(name) is function:
                    del instance.__dict__[name]
            if self.mode is PeerMode.STAND_ASIDE:
                instance._is_instrumented_by_opentelemetry = False  # nothing of it is applied
        self._hooked = kept

    def unpatch(self) -> None:
        """llmlens's `uninstrument()`: every peer is released."""
        self.active = False
        self.release()


# Provider -> the packages of its SDK, where peers put their wrappers.
_SDK_PACKAGES: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "groq": ("groq",),
    "google": ("google.genai",),
    "cohere": ("cohere",),
    "ollama": ("ollama",),
    "bedrock": ("botocore", "boto3"),
}


def _after_uninstrument(provider: str, peers: list[Peer]) -> None:
    """Undo what the peers' `uninstrument()` left behind."""
    _strip_wrappers(tuple(p.module for p in peers), _SDK_PACKAGES.get(provider, ()))
    for peer in peers:
        if peer.module == "openinference.instrumentation.openai":
            _drop_restored_request(peer.instance)


def _strip_wrappers(owners: tuple[str, ...], packages: tuple[str, ...]) -> int:
    """Remove the wrapt wrappers that code of the modules `owners` left on the functions and methods
    of the modules under `packages` (the outer layers that are theirs); return how many were removed.
    Some peers' `uninstrument()` misses some of their own: OpenLLMetry's openai one names the classes
    by a dotted path its `unwrap` cannot resolve, and a peer that wrapped another's wrapper restores
    that wrapper bound (a BoundFunctionWrapper), which then goes on tracing every call."""
    from wrapt import BoundFunctionWrapper, FunctionWrapper

    wrapper_types = (FunctionWrapper, BoundFunctionWrapper)

    def owned(value: Any) -> bool:
        # type(), not isinstance(): SDKs keep lazy proxies whose `__class__` would load their target.
        if not issubclass(type(value), wrapper_types):
            return False
        wrapper = value._self_wrapper
        wrapper = getattr(wrapper, "func", wrapper)  # functools.partial
        module = getattr(wrapper, "__module__", None) or type(wrapper).__module__
        return isinstance(module, str) and any(module == o or module.startswith(o + ".") for o in owners)

    removed = 0
    seen: set[int] = set()
    for name, module in list(sys.modules.items()):
        if module is None or not any(name == p or name.startswith(p + ".") for p in packages):
            continue
        # the module, and the classes it defines (type(): see above)
        holders = [module, *(v for v in list(vars(module).values()) if issubclass(type(v), type))]
        for holder in holders:
            if id(holder) in seen or (holder is not module and holder.__module__ != name):
                continue
            seen.add(id(holder))
            for attribute, value in list(vars(holder).items()):
                unwrapped = value
                while owned(unwrapped):
                    unwrapped = unwrapped.__wrapped__
                if unwrapped is not value:
                    setattr(holder, attribute, unwrapped)
                    removed += 1
    return removed


def _drop_restored_request(instance: Any) -> None:
    """OpenInference's openai `uninstrument()` puts back the `request` it found on `OpenAI` and
    `AsyncOpenAI` by setting it on those classes, where it hides any wrapper on the base classes'
    `request` (llmlens's) from then on. Where it is only the base class's method, remove it."""
    import openai

    base = importlib.import_module("openai._base_client")
    for cls, base_cls, saved in (
        (openai.OpenAI, base.SyncAPIClient, "_original_request"),
        (openai.AsyncOpenAI, base.AsyncAPIClient, "_original_async_request"),
    ):
        restored = cls.__dict__.get("request")
        if restored is None or restored is not getattr(instance, saved, None):
            continue
        if _innermost(restored) is _innermost(base_cls.__dict__.get("request")):
            delattr(cls, "request")


def _innermost(function: Any) -> Any:
    for _ in range(32):  # wrappers of wrappers; bounded in case of a cycle
        function = getattr(function, "__func__", function)
        inner = getattr(function, "__wrapped__", None)
        if inner is None:
            break
        function = inner
    return function


def _once(key: tuple[str, str, str]) -> bool:
    if key in _logged:
        return False
    _logged.add(key)
    return True


def _stood_aside(provider: str, peer: Peer) -> None:
    if _once(("stand_aside", provider, peer.name)):
        _log.warning(
            "llmlens: %s stands aside: llmlens traces the %s SDK, one span per call "
            "(set %s=defer to leave %s to %s, or =allow to keep both)",
            peer.name, provider, ENV_PEER_INSTRUMENTATIONS, provider, peer.name,
        )  # fmt: skip


def _leave_to(provider: str, peer: Peer) -> None:
    if _once(("defer", provider, peer.name)):
        _log.info(
            "llmlens: leaves the %s SDK to %s (%s=defer)", provider, peer.name, ENV_PEER_INSTRUMENTATIONS
        )
