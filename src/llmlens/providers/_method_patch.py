"""Patches for SDKs that have no single request method to wrap (cohere, ollama): named methods, each
call one invocation.

A provider module names the methods and, for each, a `locate` function that turns the call's arguments
into plain data: the `Route` (the same protocol as `_stainless.Route`), the request body as a mapping, and
whether the call streams. What the method returns decides how the invocation ends:

- a value: the route reads it, the invocation ends now;
- an iterator or async iterator (a streamed call): a stream proxy ends it on any exit path;
- for methods wrapped with `wrap_stream_context`, a context manager that sends the request when
  entered: the stream in the value it gives is proxied, and its exit ends the invocation.

SDK streams that are generators send their HTTP request only when first iterated, after the call has
returned. That first step runs inside the span's context, as the call itself does, so HTTP client spans
become children of the LLM span and nested instrumented SDKs see the call in flight.

Example:
    >>> patch = MethodPatch(telemetry, endpoint)
    >>> patch.wrap("ollama._client", "Client._request", locate_request)
    >>> patch.unpatch()
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from types import AsyncGeneratorType, GeneratorType
from typing import Any

from wrapt import wrap_function_wrapper

from llmlens.core.invocation import Invocation
from llmlens.core.lifecycle import TracedCall
from llmlens.core.streams import (
    AsyncStreamProxy,
    StreamContext,
    StreamState,
    SyncStreamProxy,
    first_step_in_span,
    first_step_in_span_async,
)
from llmlens.core.telemetry import Telemetry
from llmlens.providers._stainless import Route

_log = logging.getLogger("llmlens")

# client -> (gen_ai.provider.name, server.address, server.port)
Endpoint = Callable[[Any], tuple[str, "str | None", "int | None"]]
# (instance, args, kwargs) -> (route, request body, streamed) for a call we trace, or None to pass it on.
Locate = Callable[[Any, tuple[Any, ...], dict[str, Any]], "tuple[Route, Mapping[str, Any], bool] | None"]
# (invocation, route, what the method returned) -> what the caller gets, with the invocation's end attached
HandBack = Callable[[Invocation, Route, Any], Any]


class MethodPatch:
    """Wraps SDK methods with wrapt; `unpatch()` restores every one of them."""

    def __init__(self, telemetry: Telemetry, endpoint: Endpoint) -> None:
        self.telemetry = telemetry
        self.endpoint = endpoint
        self.active = False
        self._wrapped: list[tuple[type, str]] = []

    def wrap(self, module_name: str, qualified_name: str, locate: Locate) -> None:
        """Wrap `module.Class.method`, which returns a value or a stream."""
        self._wrap(module_name, qualified_name, locate, self._result)

    def wrap_stream_context(
        self, module_name: str, qualified_name: str, locate: Locate, data_attribute: str = "_data"
    ) -> None:
        """Wrap a method that returns a context manager (sync or async) which sends the request when
        entered and whose value holds the stream in `data_attribute` (Fern's raw `chat_stream`)."""

        def hand_back(inv: Invocation, route: Route, manager: Any) -> Any:
            def open_state() -> StreamState:
                return StreamState(inv, *route.stream(inv))

            return StreamContext(manager, self.telemetry, inv, open_state, data_attribute)

        self._wrap(module_name, qualified_name, locate, hand_back)

    def _wrap(self, module_name: str, qualified_name: str, locate: Locate, hand_back: HandBack) -> None:
        module = importlib.import_module(module_name)
        class_name, method_name = qualified_name.rsplit(".", 1)
        owner = getattr(module, class_name)
        call = TracedCall(self, functools.partial(self._begin, locate), hand_back)
        # plain functions, and generator functions whose iterator is the stream, take the sync form
        wrapper = call.async_ if inspect.iscoroutinefunction(owner.__dict__[method_name]) else call.sync
        wrap_function_wrapper(module, qualified_name, wrapper)
        self._wrapped.append((owner, method_name))
        self.active = True

    def unpatch(self) -> None:
        # Bound methods the SDK or the user cached may outlive unwrapping: `active` turns a wrapper
        # still reachable that way into a plain pass-through.
        self.active = False
        for owner, name in self._wrapped:
            method = owner.__dict__.get(name)
            if method is not None and hasattr(method, "__wrapped__"):
                setattr(owner, name, method.__wrapped__)
        self._wrapped = []

    # --- the steps of a call (core/lifecycle.py runs them) ----------------------------------------

    def _begin(
        self, locate: Locate, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Invocation, Route] | None:
        """The invocation of a call `locate` recognises, or None to pass the call through untouched."""
        located = locate(instance, args, kwargs)
        if located is None:
            return None
        route, body, stream = located
        provider, host, port = self.endpoint(instance)
        model = body.get("model")
        model = model if isinstance(model, str) and model else None
        inv = Invocation(self.telemetry, route.operation, provider, model, host, port, stream)
        route.request(inv, body)
        return inv, route

    def _result(self, inv: Invocation, route: Route, result: Any) -> Any:
        """Attach the end of the invocation to what the SDK returned (core/lifecycle.py makes a failure
        here a finished invocation and the SDK's own result)."""
        if inv.stream and (hasattr(result, "__next__") or hasattr(result, "__anext__")):
            return self._proxy(inv, route, result)
        route.response(inv, result)
        inv.finish()
        return result

    def _proxy(self, inv: Invocation, route: Route, stream: Any) -> Any:
        on_chunk, on_end = route.stream(inv)
        state = StreamState(inv, on_chunk, on_end)
        if isinstance(stream, GeneratorType):
            return SyncStreamProxy(first_step_in_span(stream, self.telemetry, inv), state, hook_close=False)
        if isinstance(stream, AsyncGeneratorType):
            started = first_step_in_span_async(stream, self.telemetry, inv)
            return AsyncStreamProxy(started, state, hook_close=False)
        if hasattr(stream, "__anext__"):
            return AsyncStreamProxy(stream, state)
        return SyncStreamProxy(stream, state)
