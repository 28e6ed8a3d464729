"""The one lifecycle of a traced call: begin, activate, call, fail safe, hand back; sync and async.

Every patch engine (providers/_stainless.py, _method_patch.py, google_genai.py, bedrock/patch.py) makes
its wrappers here, so each exit of a call is handled in one place:

1. **begin**: unless instrumentation is suppressed or another LLM call is in flight, the engine's
   `begin(instance, args, kwargs)` turns the call into an `Invocation` (plus whatever the engine needs
   later, its "route"), or None to let the call through untouched. The span starts.
2. **activate**: the span becomes current for the call, so HTTP client spans nest under it and an
   instrumented SDK called from inside makes no second span.
3. **call**: the SDK method runs. Its exception ends the invocation as failed (or cancelled) and goes
   on to the caller unchanged.
4. **hand back**: `hand_back(inv, route, result)` ends the invocation or attaches its end to what the
   SDK returned (a stream proxy, a hooked response), and returns what the caller gets.

Instrumentation code never raises into the application: `fail_safe` turns an error in `begin` into an
untraced call, and one in `hand_back` into a finished invocation and the SDK's own result.

Example:
    >>> call = TracedCall(engine, begin=locate_chat, hand_back=read_chat)
    >>> wrap_function_wrapper(module, "Client.create", call.sync)   # or call.async_ for a coroutine
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from llmlens.core.context import skip_instrumentation
from llmlens.core.invocation import Invocation

_log = logging.getLogger("llmlens")

F = TypeVar("F", bound=Callable[..., Any])

# (instance, args, kwargs) -> (invocation, route) for a call to trace, or None to pass it through.
Begin = Callable[[Any, tuple[Any, ...], dict[str, Any]], "tuple[Invocation, Any] | None"]
# (invocation, route, what the SDK returned) -> what the caller gets, with the invocation's end attached.
HandBack = Callable[[Invocation, Any, Any], Any]
AsyncHandBack = Callable[[Invocation, Any, Any], Awaitable[Any]]
# (invocation, route, the SDK's exception) -> None: read what the error carries (a request id, say).
OnError = Callable[[Invocation, Any, BaseException], None]


class Engine(Protocol):
    """What TracedCall needs of a patch engine: its telemetry, and whether it is switched on."""

    telemetry: Any
    active: bool


def fail_safe(what: str, default: Any = None) -> Callable[[F], F]:
    """Decorate instrumentation code: an exception in it becomes a debug log and `default`.

    Example:
        >>> @fail_safe("reading the usage")
        ... def read_usage(inv, response): ...
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def safe(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception:
                _log.debug("llmlens: %s failed", what, exc_info=True)
                return default

        return safe  # type: ignore[return-value]

    return decorate


class TracedCall:
    """The wrappers (wrapt's `(wrapped, instance, args, kwargs)` form) for one kind of SDK call.

    `activate=False` for a method that only builds a generator (the request goes out on the first
    read, which `core.streams.first_step_in_span` puts in the span's context instead).
    `hand_back_async`: the async form's hand-back when it must await something first (parsing a raw
    response); otherwise both forms use `hand_back`.
    """

    __slots__ = ("activate", "begin", "engine", "hand_back", "hand_back_async", "on_error")

    def __init__(
        self,
        engine: Engine,
        begin: Begin,
        hand_back: HandBack,
        *,
        hand_back_async: AsyncHandBack | None = None,
        on_error: OnError | None = None,
        activate: bool = True,
    ) -> None:
        self.engine = engine
        self.begin = begin
        self.hand_back = hand_back
        self.hand_back_async = hand_back_async
        self.on_error = on_error
        self.activate = activate

    def sync(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        begun = self._begin(instance, args, kwargs)
        if begun is None:
            return wrapped(*args, **kwargs)
        inv, route = begun
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            self._failed(inv, route, error)
            raise
        return self._returned(inv, route, result)

    async def async_(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        begun = self._begin(instance, args, kwargs)
        if begun is None:
            return await wrapped(*args, **kwargs)
        inv, route = begun
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            self._failed(inv, route, error)
            raise
        if self.hand_back_async is None:
            return self._returned(inv, route, result)
        self.engine.telemetry.deactivate(inv)
        try:
            return await self.hand_back_async(inv, route, result)
        except Exception:
            return _finished_anyway(inv, result)

    # --- the steps both forms share ----------------------------------------------------------------

    def _begin(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Invocation, Any] | None:
        """Start the invocation, or None to pass the call through untouched. Never raises."""
        engine = self.engine
        if not engine.active:  # a wrapper still reachable after unpatching (a cached bound method)
            return None
        started: Invocation | None = None
        try:
            if skip_instrumentation():
                return None
            begun = self.begin(instance, args, kwargs)
            if begun is None:
                return None
            telemetry = engine.telemetry
            telemetry.start(begun[0])
            started = begun[0]
            if self.activate:
                telemetry.activate(started)
            return begun
        except Exception:
            _log.debug("llmlens: could not start an invocation; the call goes on untraced", exc_info=True)
            if started is not None:  # its span started: end it, or it would stay open (and in flight)
                try:
                    engine.telemetry.deactivate(started)
                    started.finish()
                except Exception:
                    _log.debug("llmlens: could not end an invocation that failed to start", exc_info=True)
            return None

    def _failed(self, inv: Invocation, route: Any, error: BaseException) -> None:
        self.engine.telemetry.deactivate(inv)
        if self.on_error is not None:
            try:
                self.on_error(inv, route, error)
            except Exception:
                _log.debug("llmlens: could not read the error", exc_info=True)
        inv.fail(error)

    def _returned(self, inv: Invocation, route: Any, result: Any) -> Any:
        self.engine.telemetry.deactivate(inv)
        try:
            return self.hand_back(inv, route, result)
        except Exception:
            return _finished_anyway(inv, result)


def _finished_anyway(inv: Invocation, result: Any) -> Any:
    """A hand-back that failed: the call still ends, and the caller gets the SDK's own result."""
    _log.debug("llmlens: could not read the response", exc_info=True)
    inv.finish()
    return result
