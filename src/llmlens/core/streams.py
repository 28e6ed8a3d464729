"""How streams end: one span per streamed call (and per proxied request), ended once, on every exit path.

This table is the single truth of the exits (docs/streaming.md and docs/proxy.md point here). Every
exit goes through `StreamState`; the first one wins.

SDK calls (stream proxies below, for every provider):

| exit path                                   | outcome     | status | end time            |
|---------------------------------------------|-------------|--------|---------------------|
| read to the end                             | completed   | OK     | the last read       |
| `close()`/`aclose()`, `with` exit, SDK helper closing the HTTP response | closed | UNSET | the close |
| dropped (`break`, then garbage collection)  | abandoned   | UNSET  | the last chunk read |
| exception while reading (transport error)   | error       | ERROR  | the exception       |
| task cancelled while reading                | cancelled   | UNSET  | the cancellation    |

Proxied requests (the ASGI middleware and `llm_request(...)`; proxy/exits.py settles the outcome):

| exit path                                             | outcome             | status | end time        |
|-------------------------------------------------------|---------------------|--------|-----------------|
| the response went out whole                           | completed (streams) | OK     | the last byte   |
| ... but a stream carried an error event               | upstream_error      | ERROR  | the last byte   |
| ... but with an HTTP error status (a stream)          | error_response      | ERROR  | the last byte   |
| the client went away (disconnect, stream closed early) | client_disconnected | UNSET  | the disconnect  |
| the handler raised, or returned an unfinished response | server_exception    | ERROR  | the exception   |
| a wrapped stream dropped without ever being read      | abandoned           | UNSET  | the hand-over   |

The stream proxies are `wrapt.ObjectProxy`s, so `isinstance(stream, openai.Stream)` and every attribute of
the SDK stream keep working. Per chunk they do a flag write, one call into the provider's chunk
handler, and nothing else; no JSON, no `model_dump()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from types import GeneratorType
from typing import Any

import wrapt

from llmlens import semconv
from llmlens.core.invocation import Invocation

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns

ChunkHandler = Callable[[Any], None]


class StreamState:
    """How one stream (or one proxied request) ends: every exit path comes here, and the first wins.

    `on_end` runs once, before the end, to hand over what the stream said so far (partial usage,
    finish reasons). `settle`, when given, turns the exit's outcome into the recorded one after
    `on_end` ran: a proxied request that ran to its end but carried an error is `upstream_error` or
    `error_response` (proxy/exits.py).
    """

    __slots__ = ("__weakref__", "handed_perf", "inv", "on_chunk", "on_end", "reading", "settle", "source")

    def __init__(
        self,
        inv: Invocation,
        on_chunk: ChunkHandler,
        on_end: Callable[[], None] | None,
        settle: Callable[[str | None], str | None] | None = None,
    ) -> None:
        self.inv = inv
        self.on_chunk = on_chunk
        self.on_end = on_end
        self.settle = settle
        # True while the SDK is producing a chunk for us: a response close seen then is the SDK's
        # own end-of-stream cleanup, and the outcome comes from what __next__ returns or raises.
        self.reading = False
        # The SDK's own generator, when the proxy reads it directly: while it runs, the SDK is
        # producing a chunk, which tells the same as `reading` without a flag write per chunk.
        self.source: Generator[Any, None, None] | None = None
        self.handed_perf = _perf_ns()

    def sdk_busy(self) -> bool:
        """Is the SDK inside a read, or done reading (so a response close now is its own cleanup)?

        A finished generator counts: when the SDK's generator returns, its frame is cleared and the
        HTTP client's own generators, finalised then, close the response once more, before the
        proxy sees StopIteration.
        """
        if self.reading:
            return True
        source = self.source
        return source is not None and (source.gi_running or source.gi_frame is None)

    def end(self, outcome: str | None, end_perf: int | None = None) -> None:
        inv = self.inv
        if inv.ended:
            return
        self._run_on_end()
        if self.settle is not None:
            try:
                outcome = self.settle(outcome)
            except Exception:
                _log.debug("llmlens: could not settle the outcome", exc_info=True)
        inv.finish(outcome, end_perf)

    def fail(self, error: BaseException, outcome: str = semconv.OUTCOME_ERROR) -> None:
        inv = self.inv
        if inv.ended:
            return
        self._run_on_end()
        inv.fail(error, outcome)

    def stopped(self, error: BaseException) -> bool:
        """A read of the SDK stream raised: exhausted (True, ended as completed) or failed (False)."""
        self.reading = False
        if isinstance(error, (StopIteration, StopAsyncIteration)):
            self.end(semconv.OUTCOME_COMPLETED)
            return True
        self.fail(error)
        return False

    def abandon(self) -> None:
        """The caller dropped the stream: end it as of the last thing we saw, not as of GC time."""
        inv = self.inv
        if inv.ended:
            return
        times = inv.chunk_times
        self.end(semconv.OUTCOME_ABANDONED, times[-1] if times else self.handed_perf)

    def chunk(self, chunk: Any) -> None:
        try:
            self.on_chunk(chunk)
        except Exception:
            _log.debug("llmlens: chunk handler failed", exc_info=True)

    def _run_on_end(self) -> None:
        if self.on_end is not None:
            try:
                self.on_end()
            except Exception:
                _log.debug("llmlens: stream end handler failed", exc_info=True)


def hook_response_close(response: Any, state: StreamState) -> None:
    """End the stream when its HTTP response is closed by anyone (SDK helpers close it directly).

    The response's class becomes a subclass (made once per class, same name) whose `close()` and
    `aclose()` run the original and then end the stream, which the response holds weakly. Nothing
    llmlens adds holds the response, so it is freed by reference counting as without llmlens; and the
    original close is always reachable, even from the SDK's own clean-up of a stream that is cyclic
    garbage, which runs after the weak references to the response are gone.
    """
    if response is None:
        return
    try:
        cls = type(response)
        hooked = _HOOKED_CLASSES.get(cls)
        if hooked is None:
            hooked = _HOOKED_CLASSES[cls] = _close_hooked_class(cls)
        response.__dict__[_STATE_ATTRIBUTE] = weakref.ref(state)
        if hooked is not cls:
            response.__class__ = hooked
    except Exception:  # a response type that refuses either: the stream proxy still covers the exits
        _log.debug("llmlens: cannot hook response close", exc_info=True)


_HOOKED_CLASSES: dict[type, type] = {}
_STATE_ATTRIBUTE = "_llmlens_stream_state"


def _close_hooked_class(cls: type) -> type:
    if _STATE_ATTRIBUTE in cls.__dict__:  # already one of ours
        return cls
    namespace: dict[str, Any] = {
        "__slots__": (), "__module__": cls.__module__, "__qualname__": cls.__qualname__,
        _STATE_ATTRIBUTE: None,
    }  # fmt: skip
    close, aclose = getattr(cls, "close", None), getattr(cls, "aclose", None)
    if close is not None:

        def hooked_close(self: Any) -> Any:
            try:
                return close(self)
            finally:
                _closed(self)

        namespace["close"] = hooked_close
    if aclose is not None:

        async def hooked_aclose(self: Any) -> Any:
            try:
                return await aclose(self)
            finally:
                _closed(self)

        namespace["aclose"] = hooked_aclose
    return type(cls.__name__, (cls,), namespace)


def _closed(response: Any) -> None:
    """The response was closed: unless the SDK closed it itself while reading, the stream ends here."""
    ref = response.__dict__.get(_STATE_ATTRIBUTE)
    state = ref() if ref is not None else None
    if state is not None and not state.sdk_busy():
        state.end(semconv.OUTCOME_CLOSED)


class _StreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """What the sync and async proxies share: the state, and the exits that need no awaiting."""

    def __init__(self, wrapped: Any, state: StreamState, hook_close: bool) -> None:
        super().__init__(wrapped)
        self._self_state = state
        if hook_close:
            hook_response_close(getattr(wrapped, "response", None), state)

    def __del__(self) -> None:
        try:
            self._self_state.abandon()
        except Exception:
            pass


class SyncStreamProxy(_StreamProxy):
    """Wraps a sync SDK stream (e.g. `openai.Stream`).

    `source`: the generator the stream's own `__iter__` merely re-yields from (a Stainless `Stream`'s
    `_iterator`), which the proxy then reads directly, so the proxy adds no generator layer per chunk.
    It goes to `state.source`, where the response close hook looks too.
    """

    def __init__(
        self, wrapped: Any, state: StreamState, hook_close: bool = True, source: Iterator[Any] | None = None
    ) -> None:
        super().__init__(wrapped, state, hook_close)
        if isinstance(source, GeneratorType):
            state.source = source

    def __iter__(self) -> Iterator[Any]:
        # A generator, not `return self`: a `for` loop then costs one generator resume per chunk
        # instead of two Python-level __next__ calls (ours and the SDK's).
        state = self._self_state
        on_chunk = state.on_chunk
        if state.source is not None:
            # Reading the SDK's generator, whose gi_running replaces the `reading` flag: a plain
            # `for` with nothing else per chunk than the handler. (A `break` arrives as
            # GeneratorExit at the yield: the stream stays open, as without llmlens.)
            try:
                for chunk in state.source:
                    try:
                        on_chunk(chunk)
                    except Exception:
                        _log.debug("llmlens: chunk handler failed", exc_info=True)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as error:
                state.fail(error)
                raise
            state.end(semconv.OUTCOME_COMPLETED)
            return
        read = self.__wrapped__.__iter__().__next__
        while True:
            state.reading = True
            try:
                chunk = read()
            except BaseException as error:
                if state.stopped(error):
                    return
                raise
            state.reading = False
            try:
                on_chunk(chunk)
            except Exception:
                _log.debug("llmlens: chunk handler failed", exc_info=True)
            # A `break` closes this generator here (GeneratorExit); the stream itself stays open
            # and usable, as without llmlens: its end is decided by close/exit/GC of the stream.
            yield chunk

    def __next__(self) -> Any:
        state = self._self_state
        state.reading = True
        try:
            chunk = self.__wrapped__.__next__()
        except BaseException as error:
            state.stopped(error)
            raise
        state.reading = False
        state.chunk(chunk)
        return chunk

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.end(semconv.OUTCOME_CLOSED)

    def __enter__(self) -> SyncStreamProxy:
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_state.end(semconv.OUTCOME_CLOSED)


class AsyncStreamProxy(_StreamProxy):
    """Wraps an async SDK stream (e.g. `openai.AsyncStream`).

    `source`: the async generator its `__aiter__` merely re-yields from, read directly. Reads are still
    marked by the `reading` flag: an async generator is not "running" while it awaits the network.
    """

    def __init__(
        self,
        wrapped: Any,
        state: StreamState,
        hook_close: bool = True,
        source: AsyncIterator[Any] | None = None,
    ) -> None:
        super().__init__(wrapped, state, hook_close)
        self._self_source = source

    async def __aiter__(self) -> AsyncIterator[Any]:
        state = self._self_state
        on_chunk = state.on_chunk
        read = (self._self_source or self.__wrapped__.__aiter__()).__anext__
        while True:
            state.reading = True
            try:
                chunk = await read()
            except BaseException as error:
                if state.stopped(error):
                    return
                raise
            state.reading = False
            try:
                on_chunk(chunk)
            except Exception:
                _log.debug("llmlens: chunk handler failed", exc_info=True)
            yield chunk

    async def __anext__(self) -> Any:
        state = self._self_state
        state.reading = True
        try:
            chunk = await self.__wrapped__.__anext__()
        except BaseException as error:
            state.stopped(error)
            raise
        state.reading = False
        state.chunk(chunk)
        return chunk

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_state.end(semconv.OUTCOME_CLOSED)

    async def aclose(self) -> Any:
        wrapped = self.__wrapped__
        try:
            closer = getattr(wrapped, "aclose", None) or wrapped.close
            return await closer()
        finally:
            self._self_state.end(semconv.OUTCOME_CLOSED)

    async def __aenter__(self) -> AsyncStreamProxy:
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return await exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_state.end(semconv.OUTCOME_CLOSED)


# --- streams whose request goes out after the call returned ------------------------------------------


@contextlib.contextmanager
def span_current(telemetry: Any, inv: Invocation) -> Iterator[None]:
    """The invocation's span current (and the call marked in flight) for the duration of the block."""
    telemetry.activate(inv)
    try:
        yield
    finally:
        telemetry.deactivate(inv)


def first_step_in_span(stream: Iterator[Any], telemetry: Any, inv: Invocation) -> Iterator[Any]:
    """The generator `stream`, its first step (where the SDK sends the request) in the span's context,
    so HTTP client spans nest under the LLM span and nested instrumented SDKs see the call in flight."""
    with span_current(telemetry, inv):
        try:
            first = next(stream)
        except StopIteration:
            return
    yield first
    yield from stream  # close() and GC reach the SDK's generator through `yield from`


async def first_step_in_span_async(stream: Any, telemetry: Any, inv: Invocation) -> AsyncIterator[Any]:
    """The async generator `stream`, its first step in the span's context."""
    with span_current(telemetry, inv):
        try:
            first = await stream.__anext__()
        except StopAsyncIteration:
            return
    try:
        yield first
        async for item in stream:
            yield item
    finally:
        await stream.aclose()  # `async for` leaves the SDK's generator open on break, close or error


class StreamContext:
    """A stream's context manager (sync and async) that sends the request when entered: the request
    goes out inside the span's context, the stream the entered value holds in `attribute` is proxied,
    and the exit ends the invocation if nothing else did. A dropped stream ends at that exit too, as
    `closed`: the SDK's own generator runs it on close and on garbage collection alike.

    `open_state`: makes the stream's StreamState (its chunk and end handlers) once the request is out.
    """

    def __init__(
        self,
        manager: Any,
        telemetry: Any,
        inv: Invocation,
        open_state: Callable[[], StreamState],
        attribute: str,
    ) -> None:
        self.manager = manager
        self.telemetry = telemetry
        self.inv = inv
        self.open_state = open_state
        self.attribute = attribute
        self.state: StreamState | None = None

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        with span_current(self.telemetry, self.inv):
            try:
                yield
            except BaseException as error:
                self.inv.fail(error)
                raise

    def __enter__(self) -> Any:
        with self._sending():
            value = self.manager.__enter__()
        return self._proxy(value, SyncStreamProxy)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.manager.__exit__(*exc_info)
        finally:
            self._end()

    async def __aenter__(self) -> Any:
        with self._sending():
            value = await self.manager.__aenter__()
        return self._proxy(value, AsyncStreamProxy)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.manager.__aexit__(*exc_info)
        finally:
            self._end()

    def _proxy(self, value: Any, proxy_cls: type) -> Any:
        try:
            self.state = self.open_state()
            stream = getattr(value, self.attribute)
            setattr(value, self.attribute, proxy_cls(stream, self.state, hook_close=False))
        except Exception:
            _log.debug("llmlens: could not proxy the stream", exc_info=True)
        return value

    def _end(self) -> None:
        if self.state is not None:
            self.state.end(semconv.OUTCOME_CLOSED)
        else:
            self.inv.finish(semconv.OUTCOME_CLOSED)


# --- one user stream over several request streams ------------------------------------------------------


class StreamSession:
    """One stream the user holds over the one or more request streams it reads (google-genai's automatic
    function calling and continuations send several requests for one user stream).

    While the user stream produces a chunk, its session is current (`current_session()`), so a request
    stream started then joins it (`join_session`); the user's `close()` or drop then reaches the
    request being read.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: StreamState | None = None  # the request being read now

    def close(self) -> None:
        if self.state is not None:
            self.state.end(semconv.OUTCOME_CLOSED)

    def abandon(self) -> None:
        if self.state is not None:
            self.state.abandon()


# Set only while a user stream produces a chunk: a request started then belongs to its session.
_SESSION: contextvars.ContextVar[StreamSession | None] = contextvars.ContextVar(
    "llmlens_stream_session", default=None
)


def current_session() -> StreamSession | None:
    """The session of the user stream producing a chunk right now, if any."""
    return _SESSION.get()


def join_session(state: StreamState) -> None:
    """Make `state` the request stream of the current user stream, if one is being read."""
    session = _SESSION.get()
    if session is not None:
        session.state = state


class _SessionStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """What the sync and async user streams share: the session, and the drop that abandons it."""

    def __init__(self, wrapped: Any, session: StreamSession) -> None:
        super().__init__(wrapped)
        self._self_session = session

    def __del__(self) -> None:
        try:
            self._self_session.abandon()
        except Exception:
            pass


class SyncSessionStream(_SessionStream):
    """A user's generator over request streams, seen through; its session is current while it reads."""

    def __iter__(self) -> Iterator[Any]:
        read = self.__next__
        while True:
            try:
                chunk = read()
            except StopIteration:
                return
            yield chunk

    def __next__(self) -> Any:
        token = _SESSION.set(self._self_session)
        try:
            return next(self.__wrapped__)
        finally:
            _SESSION.reset(token)

    def close(self) -> Any:
        self._self_session.close()  # first: closing the generator below drops the request stream too
        return self.__wrapped__.close()


class AsyncSessionStream(_SessionStream):
    """The async form of SyncSessionStream."""

    async def __aiter__(self) -> AsyncIterator[Any]:
        read = self.__anext__
        while True:
            try:
                chunk = await read()
            except StopAsyncIteration:
                return
            yield chunk

    async def __anext__(self) -> Any:
        token = _SESSION.set(self._self_session)
        try:
            return await self.__wrapped__.__anext__()
        finally:
            _SESSION.reset(token)

    async def aclose(self) -> Any:
        self._self_session.close()
        return await self.__wrapped__.aclose()
