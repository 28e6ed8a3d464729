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

import importlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import AsyncGeneratorType, GeneratorType
from typing import Any

from wrapt import wrap_function_wrapper

from llmlens.core.context import skip_instrumentation
from llmlens.core.invocation import Invocation
from llmlens.core.streams import AsyncStreamProxy, StreamState, SyncStreamProxy
from llmlens.core.telemetry import Telemetry
from llmlens.providers._stainless import Route
from llmlens.semconv import OUTCOME_CLOSED

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
            return _StreamContext(manager, self.telemetry, inv, route, data_attribute)

        self._wrap(module_name, qualified_name, locate, hand_back)

    def _wrap(self, module_name: str, qualified_name: str, locate: Locate, hand_back: HandBack) -> None:
        module = importlib.import_module(module_name)
        class_name, method_name = qualified_name.rsplit(".", 1)
        owner = getattr(module, class_name)
        if inspect.iscoroutinefunction(owner.__dict__[method_name]):
            wrapper: Any = self._async_wrapper(locate, hand_back)
        else:  # plain functions, and generator functions whose iterator is the stream
            wrapper = self._sync_wrapper(locate, hand_back)
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

    # --- the wrappers ---------------------------------------------------------------------------

    def _sync_wrapper(self, locate: Locate, hand_back: HandBack) -> Callable[..., Any]:
        def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            begun = self._begin(locate, instance, args, kwargs) if self.active else None
            if begun is None:
                return wrapped(*args, **kwargs)
            inv, route = begun
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:
                self.telemetry.deactivate(inv)
                inv.fail(error)
                raise
            self.telemetry.deactivate(inv)
            return hand_back(inv, route, result)

        return wrapper

    def _async_wrapper(self, locate: Locate, hand_back: HandBack) -> Callable[..., Any]:
        async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            begun = self._begin(locate, instance, args, kwargs) if self.active else None
            if begun is None:
                return await wrapped(*args, **kwargs)
            inv, route = begun
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                self.telemetry.deactivate(inv)
                inv.fail(error)
                raise
            self.telemetry.deactivate(inv)
            return hand_back(inv, route, result)

        return wrapper

    def _begin(
        self, locate: Locate, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Invocation, Route] | None:
        """Start the invocation, or None to pass the call through untouched. Never raises."""
        try:
            if skip_instrumentation():
                return None
            located = locate(instance, args, kwargs)
            if located is None:
                return None
            route, body, stream = located
            provider, host, port = self.endpoint(instance)
            model = body.get("model")
            model = model if isinstance(model, str) and model else None
            inv = Invocation(self.telemetry, route.operation, provider, model, host, port, stream)
            route.request(inv, body)
            self.telemetry.start(inv)
            self.telemetry.activate(inv)
            return inv, route
        except Exception:
            _log.debug("llmlens: could not start an invocation; the call goes on untraced", exc_info=True)
            return None

    def _result(self, inv: Invocation, route: Route, result: Any) -> Any:
        """Attach the end of the invocation to what the SDK returned. Never raises."""
        try:
            if inv.stream and (hasattr(result, "__next__") or hasattr(result, "__anext__")):
                return self._proxy(inv, route, result)
            route.response(inv, result)
        except Exception:
            _log.debug("llmlens: could not read the response", exc_info=True)
        inv.finish()
        return result

    def _proxy(self, inv: Invocation, route: Route, stream: Any) -> Any:
        on_chunk, on_end = route.stream(inv)
        state = StreamState(inv, on_chunk, on_end)
        if isinstance(stream, GeneratorType):
            return SyncStreamProxy(_first_step_in_span(stream, self.telemetry, inv), state, hook_close=False)
        if isinstance(stream, AsyncGeneratorType):
            started = _first_step_in_span_async(stream, self.telemetry, inv)
            return AsyncStreamProxy(started, state, hook_close=False)
        if hasattr(stream, "__anext__"):
            return AsyncStreamProxy(stream, state)
        return SyncStreamProxy(stream, state)


def _first_step_in_span(stream: Iterator[Any], telemetry: Telemetry, inv: Invocation) -> Iterator[Any]:
    """The generator `stream`, its first step (where the SDK sends the request) in the span's context."""
    telemetry.activate(inv)
    try:
        first = next(stream)
    except StopIteration:
        return
    finally:
        telemetry.deactivate(inv)
    yield first
    yield from stream  # close() and GC reach the SDK's generator through `yield from`


async def _first_step_in_span_async(stream: Any, telemetry: Telemetry, inv: Invocation) -> AsyncIterator[Any]:
    """The async generator `stream`, its first step in the span's context."""
    telemetry.activate(inv)
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        return
    finally:
        telemetry.deactivate(inv)
    try:
        yield first
        async for item in stream:
            yield item
    finally:
        await stream.aclose()  # `async for` leaves the SDK's generator open on break, close or error


class _StreamContext:
    """A stream's context manager (sync and async): the request is sent inside the span's context on
    enter, the stream in the entered value is proxied, and the exit ends the invocation if nothing else
    did. A dropped stream ends at that exit too, as `closed`: the SDK's own generator runs it on close
    and on garbage collection alike."""

    def __init__(self, manager: Any, telemetry: Telemetry, inv: Invocation, route: Route, attribute: str):
        self.manager = manager
        self.telemetry = telemetry
        self.inv = inv
        self.route = route
        self.attribute = attribute
        self.state: StreamState | None = None

    def __enter__(self) -> Any:
        self.telemetry.activate(self.inv)
        try:
            value = self.manager.__enter__()
        except BaseException as error:
            self.inv.fail(error)
            raise
        finally:
            self.telemetry.deactivate(self.inv)
        return self._proxy(value, SyncStreamProxy)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.manager.__exit__(*exc_info)
        finally:
            self._end()

    async def __aenter__(self) -> Any:
        self.telemetry.activate(self.inv)
        try:
            value = await self.manager.__aenter__()
        except BaseException as error:
            self.inv.fail(error)
            raise
        finally:
            self.telemetry.deactivate(self.inv)
        return self._proxy(value, AsyncStreamProxy)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.manager.__aexit__(*exc_info)
        finally:
            self._end()

    def _proxy(self, value: Any, proxy_cls: type) -> Any:
        try:
            on_chunk, on_end = self.route.stream(self.inv)
            self.state = StreamState(self.inv, on_chunk, on_end)
            stream = getattr(value, self.attribute)
            setattr(value, self.attribute, proxy_cls(stream, self.state, hook_close=False))
        except Exception:
            _log.debug("llmlens: could not proxy the stream", exc_info=True)
        return value

    def _end(self) -> None:
        if self.state is not None:
            self.state.end(OUTCOME_CLOSED)
        else:
            self.inv.finish(OUTCOME_CLOSED)
