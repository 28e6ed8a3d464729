"""The proxy record for servers that are not ASGI: `llm_request(...)` and `traced_operation(...)`.

`llm_request` gives the same SERVER span, server metrics, correlation ids and upstream linking as the
ASGI middleware, for any request handler: use it as a context manager (sync or async) or a decorator,
tell it about the response (`observe_chunk`, `set_usage`, `set_response`), and wrap a streamed body
with `wrap_stream` / `wrap_async_stream` so the span ends when the stream does, not when the handler
returns. With a `source_format`, the request body, a JSON response and SSE chunks are read the way
the middleware reads them.

Example (a handler of a plain asyncio server; docs/proxy.md has the whole server):

    async def handle(body: bytes, headers: dict[str, str], peer: str) -> AsyncIterator[bytes]:
        with llmlens.llm_request(source_format="openai", body=body, headers=headers, peer=peer) as request:
            with llmlens.traced_operation("convert.request"):
                upstream_body = convert(body)
            stream = await call_upstream(upstream_body)
            return request.wrap_async_stream(stream)    # SSE bytes; the span ends after the last one
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextvars import Token
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from llmlens import semconv
from llmlens.core.context import PROXY_REQUEST_KEY
from llmlens.core.lifecycle import fail_safe
from llmlens.core.limits import cap_text
from llmlens.core.server_telemetry import ServerInvocation, ServerTelemetry
from llmlens.core.streams import StreamState
from llmlens.logs.requests import log_proxy_request
from llmlens.proxy import identity
from llmlens.proxy.config import ProxyConfig, active_telemetry, standalone_telemetry
from llmlens.proxy.exits import request_exits
from llmlens.proxy.formats import FORMATS, JSONObject, StreamReader, WireFormat, error_of
from llmlens.proxy.logging import install_log_correlation, request_id_var
from llmlens.proxy.sse import SSEParser
from llmlens.settings import Settings

__all__ = ["LLMRequest", "TracedOperation", "current_llm_request", "llm_request", "traced_operation"]

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns
T = TypeVar("T")
G = TypeVar("G", Iterator[Any], AsyncIterator[Any])

# source format (llmlens.proxy.source_format) -> the wire format that reads it
_SOURCE_FORMATS = {
    "openai": "openai_chat",
    "openai_chat": "openai_chat",
    "openai_completions": "openai_completions",
    "openai_embeddings": "openai_embeddings",
    "openai_responses": "openai_responses",
    "anthropic": "anthropic_messages",
    "anthropic_messages": "anthropic_messages",
    "anthropic_count_tokens": "anthropic_count_tokens",
    "gemini": "gemini_generate",
    "gemini_generate": "gemini_generate",
    "gemini_stream_generate": "gemini_stream_generate",
}
_configs: dict[int, Any] = {}


def _telemetry(explicit: Any = None) -> Any:
    """The Telemetry to use: the given one, the Instrumentor's, else one on the global providers."""
    if explicit is not None:
        return explicit
    return active_telemetry() or standalone_telemetry()


def _config(telemetry: Any) -> Any:
    settings: Settings = telemetry.settings
    config = _configs.get(id(settings))
    if config is None or config.settings is not settings:
        config = _configs[id(settings)] = ProxyConfig(settings)
    return config


def _decoded(fmt: WireFormat, value: Any) -> Any:
    """JSON text, or a plain dict, as the format's extraction reads it (attributes; Gemini snake_case)."""
    if isinstance(value, (bytes, bytearray)):
        return fmt.decode(bytes(value))
    if isinstance(value, str):
        return fmt.decode(value)
    if isinstance(value, Mapping) and not isinstance(value, JSONObject):
        return fmt.decode(json.dumps(value, default=str))
    return value


def current_llm_request() -> LLMRequest | None:
    """The LLMRequest (or the ASGI middleware's request) this code runs for, if any."""
    inv = otel_context.get_value(PROXY_REQUEST_KEY)
    request = getattr(inv, "owner", None) if inv is not None else None
    return request if isinstance(request, LLMRequest) else None


class LLMRequest:
    """One LLM request handled by the server: made by `llm_request(...)`, see the module docstring."""

    def __init__(
        self,
        operation: str | None = None,
        *,
        source_format: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        stream: bool | None = None,
        body: Any = None,
        path: str = "",
        headers: Mapping[str, str] | None = None,
        peer: str | None = None,
        request_id: str | None = None,
        target_format: str | None = None,
        upstream_provider: str | None = None,
        upstream_model: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        telemetry: Any = None,
    ) -> None:
        self._args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.operation = operation
        self.source_format = source_format
        self.inv: ServerInvocation | None = None
        self._exits: StreamState | None = None  # every end of the request goes through it (proxy/exits.py)
        self.request_id = request_id or ""
        self._fmt: WireFormat | None = None
        self._reader: StreamReader | None = None
        self._parser: SSEParser | None = None
        self._usage: dict[str, int] = {}
        self._tokens: list[tuple[Any, Token[str | None]]] = []
        self._context: Any = None
        self._streaming = False
        self._config: ProxyConfig | None = None  # set when the request starts
        self._logged = False  # its request log line is written

    # --- as a decorator ---------------------------------------------------------------------------------

    def __call__(self, func: Callable[..., T]) -> Callable[..., T]:
        """Decorate a handler: each call is one request (a returned generator is wrapped)."""
        args = self._args

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*a: Any, **kw: Any) -> Any:
                request = LLMRequest(**args)
                with request:
                    result = await func(*a, **kw)
                    return request._wrap_result(result)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*a: Any, **kw: Any) -> Any:
            request = LLMRequest(**args)
            with request:
                return request._wrap_result(func(*a, **kw))

        return run

    def _wrap_result(self, result: Any) -> Any:
        if inspect.isasyncgen(result):
            return self.wrap_async_stream(result)
        if inspect.isgenerator(result):
            return self.wrap_stream(result)
        if isinstance(result, (dict, bytes, str)):
            self.set_response(result)
        return result

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> LLMRequest:
        """Start the span (once) without making it current; `with` does both."""
        if self.inv is None:
            self._start()
        return self

    def __enter__(self) -> LLMRequest:
        self.start()
        self._attach()
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        self._detach_all()
        inv = self.inv
        if inv is None or inv.ended:
            return
        if error is not None:
            self.fail(error)
        elif not self._streaming:  # a wrapped stream ends the request when it ends
            self.finish()

    async def __aenter__(self) -> LLMRequest:
        return self.__enter__()

    async def __aexit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        self.__exit__(kind, error, tb)

    @fail_safe("starting an LLM request record")  # the request goes on unrecorded
    def _start(self) -> None:
        args = self._args
        telemetry = _telemetry(args["telemetry"])
        server = ServerTelemetry.of(telemetry)
        config = self._config = _config(telemetry)
        headers = {k.lower(): v for k, v in (args["headers"] or {}).items()}
        fmt_name = _SOURCE_FORMATS.get(self.source_format or "")
        fmt = self._fmt = FORMATS[fmt_name](telemetry.settings) if fmt_name else None
        operation = self.operation or (fmt.operation if fmt else semconv.OP_CHAT)
        path = args["path"]
        provider = args["provider"] or (fmt.provider_for(path) if fmt else "unknown")
        inv = ServerInvocation(server, operation, provider, None)
        inv.start_ns, inv.start_perf = time.time_ns(), _perf_ns()
        model, stream = None, False
        body = args["body"]
        if fmt is not None and body is not None:
            try:
                body = _decoded(fmt, body)
                if isinstance(body, Mapping):
                    model, stream = fmt.request(inv, body, path)
            except Exception:
                _log.debug("llmlens: unreadable LLM request body", exc_info=True)
        model = args["model"] or model
        stream = args["stream"] if args["stream"] is not None else stream
        self.request_id = identity.request_id(self.request_id or headers.get("x-request-id"))
        attributes = inv.request_attributes
        attributes.update(args["attributes"] or {})
        attributes[semconv.LLMLENS_REQUEST_ID] = self.request_id
        if path:
            attributes[semconv.URL_PATH] = cap_text(path)
        address = config.clients.resolve(
            args["peer"], headers.get("x-forwarded-for"), headers.get("forwarded")
        )
        if address:
            attributes[semconv.CLIENT_ADDRESS] = address
        if headers.get("user-agent"):
            attributes[semconv.USER_AGENT] = cap_text(headers["user-agent"])
        key = identity.api_key(headers)
        if key:
            attributes[semconv.LLMLENS_API_KEY_LABEL] = config.labeler.label(key)
        inv.set_upstream(args["upstream_provider"], args["upstream_model"], args["target_format"])
        parent = None
        if not trace.get_current_span().get_span_context().is_valid and headers:
            parent = propagate.extract(headers)
        source = self.source_format if fmt is None else fmt.name
        server.start_request(operation, provider, model, stream, None, parent, source, inv=inv)
        inv.owner = self
        self.inv = inv
        self._exits = request_exits(inv, self._end_reader)
        context = trace.set_span_in_context(inv.span, parent)  # type: ignore[arg-type]
        self._context = otel_context.set_value(PROXY_REQUEST_KEY, inv, context)
        install_log_correlation()

    def _attach(self) -> None:
        if self._context is not None:
            self._tokens.append((otel_context.attach(self._context), request_id_var.set(self.request_id)))

    def _detach(self) -> None:
        if self._tokens:
            token, id_token = self._tokens.pop()
            try:
                request_id_var.reset(id_token)
                otel_context.detach(token)
            except Exception:  # ended in another context than it started in
                _log.debug("llmlens: context detach failed", exc_info=True)

    def _detach_all(self) -> None:
        while self._tokens:
            self._detach()

    # --- what the handler tells us ------------------------------------------------------------------------

    @property
    def trace_id(self) -> str:
        span = self.inv.span if self.inv is not None else None
        return f"{span.get_span_context().trace_id:032x}" if span is not None else ""

    def observe_chunk(self, chunk: Any = None) -> None:
        """One piece of the response as it goes out: SSE bytes (parsed when the source format is
        known), a decoded event dict, or anything else (counted as one output chunk)."""
        inv = self.inv
        if inv is None or inv.ended:
            return
        try:
            inv.stream = True
            fmt = self._fmt
            if fmt is not None and self._reader is None:
                self._reader = fmt.stream_reader(inv)
            reader = self._reader
            if reader is not None and isinstance(chunk, (bytes, bytearray, str)):
                if self._parser is None:
                    self._parser = SSEParser()
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                for name, event in self._parser.feed(data):
                    reader.event(name, event)
            elif reader is not None and fmt is not None and isinstance(chunk, Mapping):
                reader.item(_decoded(fmt, chunk))
            else:
                inv.mark_chunk()
        except Exception:
            _log.debug("llmlens: unreadable response chunk", exc_info=True)

    def set_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_creation_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Token counts (input includes cached tokens, as the conventions want); they win over any read."""
        for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                            ("cache_read_tokens", cache_read_tokens),
                            ("cache_creation_tokens", cache_creation_tokens),
                            ("reasoning_tokens", reasoning_tokens)):  # fmt: skip
            if isinstance(value, int) and not isinstance(value, bool):
                self._usage[name] = value

    def set_response(
        self,
        body: Any = None,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Iterable[str] | None = None,
        status_code: int | None = None,
    ) -> None:
        """The response: a JSON body of the source format (dict, bytes or str), and/or its fields."""
        inv = self.inv
        if inv is None or inv.ended:
            return
        try:
            if body is not None and self._fmt is not None:
                body = _decoded(self._fmt, body)
                found = error_of(body)
                if found is not None:
                    inv.failure, inv.error_message = found
                elif isinstance(body, Mapping) and (status_code or 200) < 400:
                    self._fmt.response(inv, body)
        except Exception:
            _log.debug("llmlens: unreadable response body", exc_info=True)
        if model:
            inv.response_model = model
        if response_id:
            inv.response_id = response_id
        if finish_reasons is not None:
            inv.finish_reasons = list(finish_reasons)
        if status_code is not None:
            inv.status_code = status_code
            if status_code >= 400 and inv.failure is None:
                inv.failure = str(status_code)

    def set_upstream(
        self, provider: str | None = None, model: str | None = None, format: str | None = None
    ) -> None:
        """Name the upstream, when no llmlens-instrumented SDK call does."""
        if self.inv is not None:
            self.inv.set_upstream(provider, model, format)

    # --- the end -------------------------------------------------------------------------------------

    def _end_reader(self) -> None:
        reader, parser = self._reader, self._parser
        self._reader = None
        try:
            if reader is not None:
                if parser is not None:
                    for name, data in parser.flush():
                        reader.event(name, data)
                reader.end()
                if reader.failure is not None and self.inv is not None:
                    self.inv.failure, self.inv.error_message = reader.failure, reader.message
        except Exception:
            _log.debug("llmlens: unreadable stream end", exc_info=True)
        inv = self.inv
        if inv is not None:
            for field, count in self._usage.items():
                setattr(inv, field, count)

    def finish(self, outcome: str | None = None) -> None:
        """End the request (normally automatic: at the end of the `with` block or of the stream)."""
        if self._exits is not None:
            self._exits.end(outcome)
            self._log_request()

    def fail(self, error: BaseException) -> None:
        if self._exits is not None:
            self._exits.fail(error, semconv.OUTCOME_SERVER_EXCEPTION)
            self._log_request()

    def _log_request(self) -> None:
        """The request's line in the proxy's request log (llmlens.logs.requests), once, when it has ended:
        every end goes through finish() or fail(), so this is where a request without ASGI writes it."""
        inv = self.inv
        if inv is None or not inv.ended or self._logged or self._config is None:
            return
        self._logged = True
        if not self._config.settings.proxy_request_log:
            return
        try:
            path = inv.request_attributes.get(semconv.URL_PATH) or "-"
            log_proxy_request(inv, "POST", path, self.request_id)
        except Exception:
            _log.debug("llmlens: could not write the request log line", exc_info=True)

    # --- streams ---------------------------------------------------------------------------------------

    def wrap_stream(self, stream: Iterable[T]) -> Iterator[T]:
        """A generator that yields `stream`'s items (observing each) and ends the request with it:
        completed when exhausted, client_disconnected when closed early, server_exception on an error.
        The request's context (span, ids) is current while the stream produces each item."""
        self._streaming = True
        return self._end_when_dropped(self._sync_stream(stream))

    def _sync_stream(self, stream: Iterable[T]) -> Iterator[T]:
        iterator = iter(stream)
        try:
            while True:
                self._attach()
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                finally:
                    self._detach()
                self.observe_chunk(item)
                yield item
        except GeneratorExit:
            self._close_early(iterator)
            raise
        except BaseException as error:
            self.fail(error)
            raise
        self.finish()

    def wrap_async_stream(self, stream: AsyncIterable[T]) -> AsyncIterator[T]:
        """`wrap_stream` for async iterables."""
        self._streaming = True
        return self._end_when_dropped(self._async_stream(stream))

    def _end_when_dropped(self, generator: G) -> G:
        """A stream the server drops without ever reading it still ends the request.

        The generator's body, which ends the request on every other exit, never runs if it never
        started: closing such a generator does nothing. So the request ends when the generator is
        freed, if nothing ended it before, as `abandoned`, at its last chunk or when it was handed over.
        """
        exits = self._exits
        if exits is not None:
            exits.handed_perf = _perf_ns()
            weakref.finalize(generator, exits.abandon)
        return generator

    async def _async_stream(self, stream: AsyncIterable[T]) -> AsyncIterator[T]:
        iterator = stream.__aiter__()
        try:
            while True:
                self._attach()
                try:
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    self._detach()
                self.observe_chunk(item)
                yield item
        except GeneratorExit:
            self._close_early(None)
            close = getattr(iterator, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    pass
            raise
        except BaseException as error:
            self.fail(error)
            raise
        self.finish()

    def _close_early(self, iterator: Any) -> None:
        """The consumer stopped reading: for a server, the client went away."""
        self.finish(semconv.OUTCOME_CLIENT_DISCONNECTED)
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass


def llm_request(operation: str | None = None, **options: Any) -> LLMRequest:
    """Record one LLM request handled by a server that is not ASGI (module docstring; docs/proxy.md).

    Example:
        >>> with llm_request(source_format="anthropic", body=raw_body, headers=headers) as request:
        ...     request.set_response(response_json)
    """
    return LLMRequest(operation, **options)


class TracedOperation:
    """A phase of the request (conversion, upstream connect, ...) as an INTERNAL child span."""

    def __init__(self, name: str, attributes: Mapping[str, Any]) -> None:
        self.name = name
        self.attributes = dict(attributes)
        self._manager: Any = None
        self.span: Any = None

    def __enter__(self) -> Any:
        try:
            tracer = _telemetry().tracer
            self._manager = tracer.start_as_current_span(self.name, kind=SpanKind.INTERNAL,
                                                         attributes=self.attributes)  # fmt: skip
            self.span = self._manager.__enter__()
        except Exception:
            _log.debug("llmlens: could not start %s", self.name, exc_info=True)
            self._manager = None
        return self.span

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if self._manager is not None:
            manager, self._manager = self._manager, None
            manager.__exit__(kind, error, tb)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        self.__exit__(kind, error, tb)

    def __call__(self, func: Callable[..., T]) -> Callable[..., T]:
        name, attributes = self.name, self.attributes
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*a: Any, **kw: Any) -> Any:
                with TracedOperation(name, attributes):
                    return await func(*a, **kw)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*a: Any, **kw: Any) -> Any:
            with TracedOperation(name, attributes):
                return func(*a, **kw)

        return run


def traced_operation(name: str, **attributes: Any) -> TracedOperation:
    """Time a phase of the request as a child span (a context manager, or a decorator).

    Example:
        >>> with traced_operation("convert.request", source="openai", target="anthropic"):
        ...     body = convert(body)
    """
    return TracedOperation(name, attributes)
