"""`LLMProxyMiddleware`: GenAI telemetry for an ASGI application that relays LLM requests.

Pure ASGI (no BaseHTTPMiddleware, nothing buffered): for a POST on an LLM route it reads the request
body (up to `proxy_max_body` bytes, replayed to the application unchanged), starts a SERVER span named
`{operation} {model}` parented on the caller's `traceparent`, and observes what the application sends:
a JSON body through a bounded copy, an SSE stream event by event as it goes out. The span ends when
the last body chunk has been sent, with the outcome (completed, client_disconnected, upstream_error,
server_exception, error_response), time to first chunk, chunk count and usage. Every other request
costs one dictionary lookup.

While the application handles the request, the context holds the SERVER span and the request
(core/context.py `PROXY_REQUEST_KEY`): SDK calls made for it are its upstream leg (CLIENT child spans,
`llmlens.upstream=true`, no client metrics), logs carry its request and trace ids (llmlens.logs),
and the response carries its `x-request-id`. Once it has ended, one line goes to the proxy's request
log (llmlens.logs.requests).

Example:
    >>> app = FastAPI()
    >>> app.add_middleware(LLMProxyMiddleware)   # or nothing: Instrumentor().instrument() adds it
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from llmlens import semconv
from llmlens.core.context import PROXY_REQUEST_KEY
from llmlens.core.limits import cap_text
from llmlens.core.profiling import SWITCH as _PROFILING
from llmlens.core.server_telemetry import ServerInvocation, ServerTelemetry
from llmlens.core.streams import StreamState
from llmlens.logs.correlation import install_log_correlation, request_id_var
from llmlens.logs.requests import log_proxy_request
from llmlens.proxy import identity
from llmlens.proxy.config import ProxyConfig, active_telemetry, proxy_settings, standalone_telemetry
from llmlens.proxy.exits import request_exits
from llmlens.proxy.formats import StreamReader, WireFormat
from llmlens.proxy.lifespan import run_lifespan
from llmlens.proxy.metrics_path import answer_metrics
from llmlens.proxy.sse import SSEParser
from llmlens.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns

SCOPE_KEY = "llmlens.proxy"  # the ServerInvocation, in the scope: inner apps and middleware skip it
_REQUEST_ID_HEADER = b"x-request-id"
_SSE, _JSON = 1, 2  # how the response body is observed


class LLMProxyMiddleware:
    """ASGI middleware: a SERVER span, server metrics and correlation ids for each LLM request.

    Arguments (all optional; the defaults come from the llmlens settings, docs/proxy.md):
    `routes` adds or overrides path-suffix -> wire-format entries (`"off"` drops one), `telemetry` is a
    `llmlens.core.telemetry.Telemetry` (default: the Instrumentor's, else one on the global providers),
    `settings` a `llmlens.settings.Settings`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[str, str] | None = None,
        telemetry: Any = None,
        settings: Settings | None = None,
        auto: bool = False,
    ) -> None:
        self.app = app
        self._routes = routes
        self._telemetry = telemetry
        self._settings = settings
        # Added by autopatch: stands aside once llmlens is uninstrumented.
        self._auto = auto
        self._config: ProxyConfig | None = None

    @property
    def config(self) -> ProxyConfig:
        config = self._config
        if config is None:
            settings = self._settings
            if settings is None:
                from llmlens.instrumentor import Instrumentor

                instrumentor = Instrumentor()
                settings = instrumentor.settings if instrumentor.is_instrumented_by_opentelemetry else None
            config = self._config = ProxyConfig(settings or proxy_settings(), self._routes)
        return config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(self.app, scope, receive, send)

    async def handle(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `app` for this request, observed if it is an LLM request."""
        fmt = self.match(scope)
        if fmt is None:
            if self.serves_metrics(scope):
                return await answer_metrics(app, scope, receive, send)
            if scope["type"] == "lifespan":
                return await run_lifespan(app, scope, receive, send)
            return await app(scope, receive, send)
        await self.observe(app, fmt, scope, receive, send)

    def serves_metrics(self, scope: Scope) -> bool:
        """Whether this request is for the metrics path (`LLMLENS_PROXY_METRICS_PATH`), when one is set."""
        path = self.config.metrics_path
        return path is not None and scope.get("path") == path and scope["type"] == "http"

    def match(self, scope: Scope) -> WireFormat | None:
        """The wire format of an LLM request; None for anything else (the cheap path)."""
        if scope["type"] != "http" or scope.get("method") != "POST" or SCOPE_KEY in scope:
            return None
        return self.config.routes.match(scope["path"])

    async def observe(
        self, app: ASGIApp, fmt: WireFormat, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run `app` for an LLM request, with its span, metrics and ids."""
        server = self._server_telemetry()
        if server is None:
            return await app(scope, receive, send)
        await ProxyExchange(self.config, server, fmt, scope, receive, send).run(app)

    def _server_telemetry(self) -> ServerTelemetry | None:
        try:
            telemetry = self._telemetry
            if telemetry is None:
                telemetry = active_telemetry()
                if telemetry is None:
                    if self._auto:
                        return None
                    telemetry = standalone_telemetry()
            return ServerTelemetry.of(telemetry)
        except Exception:
            _log.debug("llmlens: proxy telemetry unavailable", exc_info=True)
            return None


class ProxyExchange:
    """One observed request: the wrapped receive and send, and the end of its invocation."""

    __slots__ = (
        "body_size", "buffer", "buffered", "completed", "config", "disconnected", "exits", "feed", "fmt",
        "inv", "mode", "on_event", "parser", "reader", "receive", "replay", "request_id", "response_size",
        "scope", "send", "server",
    )  # fmt: skip

    def __init__(
        self, config: ProxyConfig, server: ServerTelemetry, fmt: WireFormat, scope: Scope, receive: Receive,
        send: Send,
    ) -> None:  # fmt: skip
        self.config = config
        self.server = server
        self.fmt = fmt
        self.scope = scope
        self.receive = receive
        self.send = send
        self.inv: ServerInvocation | None = None
        self.exits: StreamState | None = None  # every end of the request goes through it (proxy/exits.py)
        self.replay: deque[Any] = deque()  # request messages read ahead, given to the app first
        self.disconnected = False
        self.completed = False  # the last body chunk went out
        self.mode = 0
        self.parser: SSEParser | None = None
        self.reader: StreamReader | None = None
        self.feed: Any = None  # the parser's and the reader's bound methods, for the per-chunk path
        self.on_event: Any = None
        self.buffer: list[bytes] | None = None
        self.buffered = 0
        self.body_size = 0
        self.response_size = 0
        self.request_id = ""

    async def run(self, app: ASGIApp) -> None:
        start_ns, start_perf = time.time_ns(), _perf_ns()
        # A profile covers the request from its first byte in (kept if an arm or the sampling picks
        # it once its model is known: llmlens.profiling).
        early = _PROFILING.early() if _PROFILING.on else None
        body = await self._read_ahead()
        try:
            inv, context = self._start(body, start_ns, start_perf, early)
        except Exception:  # telemetry failed: the request goes on untraced
            _log.debug("llmlens: could not start a proxy span", exc_info=True)
            if early is not None:
                _PROFILING.stop(early)
            return await app(self.scope, self._receive, self.send)
        self.inv = inv
        exits = self.exits = request_exits(inv, self._on_end)
        scope = self.scope
        scope[SCOPE_KEY] = inv
        # The framework's own server span would be a second (root) SERVER span: ours replaces it.
        own_flags = [k for k in ("fastapi.telemetry", "starlette.opentelemetry") if k not in scope]
        for key in own_flags:
            scope[key] = None if key == "fastapi.telemetry" else True
        token = otel_context.attach(context)
        id_token = request_id_var.set(self.request_id)
        try:
            await app(scope, self._receive, self._send)
        except BaseException as error:
            exits.fail(error, semconv.OUTCOME_SERVER_EXCEPTION)
            raise
        finally:
            request_id_var.reset(id_token)
            otel_context.detach(token)
            for key in own_flags:
                scope.pop(key, None)
            scope.pop(SCOPE_KEY, None)
            if not inv.ended:
                self._finish_unfinished()
            if self.config.settings.proxy_request_log:
                self._log_request(inv)

    def _log_request(self, inv: ServerInvocation) -> None:
        """The request's line in the proxy's request log (llmlens.logs.requests), once it has ended."""
        try:
            log_proxy_request(inv, "POST", cap_text(self.scope["path"]), self.request_id)
        except Exception:
            _log.debug("llmlens: could not write the request log line", exc_info=True)

    # --- request --------------------------------------------------------------------------------

    async def _read_ahead(self) -> bytes | None:
        """Read the request body (bounded) before the app does; the app gets the same messages."""
        limit = self.config.max_body
        length = _header(self.scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await self.receive()
            except Exception as error:  # the server's receive failed: the app sees the same error
                self.replay.append(error)
                return None
            self.replay.append(message)
            if message.get("type") != "http.request":
                self.disconnected = message.get("type") == "http.disconnect"
                return None
            body = message.get("body") or b""
            if body:
                chunks.append(body)
                size += len(body)
            if size > limit:
                return None  # too big to read for telemetry: the rest passes through unread
            if not message.get("more_body", False):
                self.body_size = size
                return b"".join(chunks) if len(chunks) != 1 else bytes(chunks[0])

    def _start(
        self, body: bytes | None, start_ns: int, start_perf: int, early: Any = None
    ) -> tuple[ServerInvocation, Any]:
        scope, fmt, server = self.scope, self.fmt, self.server
        headers = _headers(scope)
        path = scope["path"]
        inv = ServerInvocation(server, fmt.operation, fmt.provider_for(path), None)
        inv.profile = early
        model, stream = None, False
        if body and body.lstrip()[:1] == b"{":
            try:
                parsed = fmt.decode_request(body)
                if isinstance(parsed, dict):
                    model, stream = fmt.request(inv, parsed, path)
            except Exception:  # malformed or surprising: the request is recorded without its details
                _log.debug("llmlens: unreadable LLM request body", exc_info=True)
        elif not body:
            try:  # Gemini puts the model in the path; nothing to read otherwise
                model, stream = fmt.request(inv, {}, path)
            except Exception:
                pass
        self.request_id = identity.request_id(headers.get("x-request-id"))
        attributes = inv.request_attributes
        attributes[semconv.HTTP_REQUEST_METHOD] = "POST"
        attributes[semconv.URL_PATH] = cap_text(path)
        attributes[semconv.LLMLENS_REQUEST_ID] = self.request_id
        if self.body_size:
            attributes[semconv.HTTP_REQUEST_BODY_SIZE] = self.body_size
        agent = headers.get("user-agent")
        if agent:
            attributes[semconv.USER_AGENT] = cap_text(agent)
        client = scope.get("client")
        address = self.config.clients.resolve(
            client[0] if client else None, headers.get("x-forwarded-for"), headers.get("forwarded")
        )
        if address:
            attributes[semconv.CLIENT_ADDRESS] = address
        key = identity.api_key(headers, scope.get("query_string") or b"")
        if key:
            attributes[semconv.LLMLENS_API_KEY_LABEL] = self.config.labeler.label(key)
        # The caller's trace: an enclosing server span of this process, else the traceparent header.
        parent = None if trace.get_current_span().get_span_context().is_valid else propagate.extract(headers)
        inv.start_ns, inv.start_perf = start_ns, start_perf  # when the request arrived
        server.start_request(fmt.operation, inv.provider, model, stream, None, parent, fmt.name, inv=inv)
        context = trace.set_span_in_context(inv.span, parent)  # type: ignore[arg-type]
        install_log_correlation()
        return inv, otel_context.set_value(PROXY_REQUEST_KEY, inv, context)

    async def _receive(self) -> Message:
        replay = self.replay
        if replay:
            message = replay.popleft()
            if isinstance(message, BaseException):
                raise message
            return message  # type: ignore[no-any-return]
        message = await self.receive()
        if message.get("type") == "http.disconnect":
            self.disconnected = True
            if self.exits is not None and not self.completed:
                self.exits.end(semconv.OUTCOME_CLIENT_DISCONNECTED)
        return message

    # --- response -------------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        inv = self.inv
        if inv is None or inv.ended:
            return await self.send(message)
        kind = message.get("type")
        if kind == "http.response.body":
            body = message.get("body") or b""
            try:
                await self.send(message)
            except BaseException:
                # The bytes could not be delivered: the client is gone.
                self.exits.end(semconv.OUTCOME_CLIENT_DISCONNECTED)  # type: ignore[union-attr]
                raise
            if body:
                try:
                    feed = self.feed
                    if feed is not None:  # SSE, the hot path: parse, then one call per event
                        self.response_size += len(body)
                        on_event = self.on_event
                        for name, data in feed(body):
                            try:
                                on_event(name, data)
                            except Exception:  # one bad event does not stop the others
                                _log.debug("llmlens: unreadable stream event", exc_info=True)
                    else:
                        self._observe(inv, body)
                except Exception:
                    _log.debug("llmlens: could not read a response chunk", exc_info=True)
            if not message.get("more_body", False):
                self.completed = True
                # A 5xx may be the error page of an exception about to reach us: end after the app.
                if (inv.status_code or 0) < 500:
                    self._finish_completed(inv)
            return None
        if kind == "http.response.start":
            try:
                message = self._response_start(inv, message)
            except Exception:
                _log.debug("llmlens: could not read the response start", exc_info=True)
        await self.send(message)
        if kind == "http.response.pathsend":
            self.completed = True
            self._finish_completed(inv)
        return None

    def _response_start(self, inv: ServerInvocation, message: Message) -> Message:
        inv.response_start_perf = _perf_ns()
        inv.status_code = message.get("status")
        headers = message.get("headers") or ()
        content_type = b""
        encoded = False
        has_id = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-type":
                content_type = value.lower()
            elif name == b"content-encoding":
                encoded = value.strip().lower() not in (b"", b"identity")
            elif name == _REQUEST_ID_HEADER:
                has_id = True
        if not encoded:
            if content_type.startswith(b"text/event-stream"):
                self.mode = _SSE
                self.parser = SSEParser()
                inv.stream = True
                self.reader = self.fmt.stream_reader(inv)
                self.feed, self.on_event = self.parser.feed, self.reader.event
            elif not content_type or b"json" in content_type:
                self.mode = _JSON
                self.buffer = []
        if not has_id and self.request_id:
            message = dict(message)
            message["headers"] = [*headers, (_REQUEST_ID_HEADER, self.request_id.encode("latin-1"))]
        return message

    def _observe(self, inv: ServerInvocation, body: bytes) -> None:
        self.response_size += len(body)
        mode = self.mode
        if mode == _SSE:
            assert self.parser is not None and self.reader is not None
            event = self.reader.event
            for name, data in self.parser.feed(body):
                try:
                    event(name, data)
                except Exception:  # one bad event does not stop the others
                    _log.debug("llmlens: unreadable stream event", exc_info=True)
        elif mode == _JSON:
            if inv.stream:  # a JSON-array stream (Gemini without alt=sse): chunks count as they go
                inv.chunk_times.append(_perf_ns())
            buffer = self.buffer
            if buffer is not None:
                self.buffered += len(body)
                if self.buffered > self.config.max_body:
                    self.buffer = None  # too big to read: it still went out untouched
                else:
                    buffer.append(bytes(body))

    # --- the end --------------------------------------------------------------------------------

    def _end_reader(self) -> None:
        """Whatever the stream said so far (partial usage, finish reasons) goes to the invocation."""
        reader, parser = self.reader, self.parser
        if reader is None:
            return
        self.reader = self.feed = None
        try:
            if parser is not None and not self.disconnected:
                for name, data in parser.flush():
                    reader.event(name, data)
        except Exception:
            _log.debug("llmlens: unreadable stream end", exc_info=True)
        try:
            reader.end()
        except Exception:
            _log.debug("llmlens: could not end a stream reader", exc_info=True)

    def _on_end(self) -> None:
        """Before any end: what the stream said so far goes to the invocation; a response that went out
        whole keeps the error its stream carried (proxy/exits.py then settles the outcome)."""
        reader = self.reader
        self._end_reader()
        inv = self.inv
        if self.completed and inv is not None and reader is not None and reader.failure is not None:
            inv.failure, inv.error_message = reader.failure, reader.message

    def _finish_completed(self, inv: ServerInvocation) -> None:
        if inv.ended:
            return
        try:
            if self.mode == _JSON:
                self._read_json(inv)
            if self.response_size:
                inv.response_attributes[semconv.HTTP_RESPONSE_BODY_SIZE] = self.response_size
            route = self.scope.get("route")
            path = getattr(route, "path", None)
            if isinstance(path, str):
                inv.response_attributes[semconv.HTTP_ROUTE] = path
        except Exception:
            _log.debug("llmlens: could not read the response", exc_info=True)
        self.exits.end(semconv.OUTCOME_COMPLETED if inv.stream else None)  # type: ignore[union-attr]

    def _read_json(self, inv: ServerInvocation) -> None:
        buffer = self.buffer
        self.buffer = None
        if not buffer:
            return
        data = b"".join(buffer)
        if data.lstrip()[:1] not in (b"{", b"["):
            return
        body = self.fmt.decode(data)
        status = inv.status_code or 0
        if status >= 400:
            from llmlens.proxy.formats import error_of

            found = error_of(body[0] if isinstance(body, list) and body else body)
            if found is not None:
                inv.failure, inv.error_message = found
            return
        if isinstance(body, list):  # a JSON-array stream: one response per element
            times = list(inv.chunk_times)  # (when the chunks went out, not when they are read here)
            reader = self.fmt.stream_reader(inv)
            for item in body:
                reader.item(item)
                if reader.failure is not None:
                    inv.failure, inv.error_message = reader.failure, reader.message
            reader.end()
            inv.chunk_times[:] = times
        elif isinstance(body, dict):
            self.fmt.response(inv, body)

    def _finish_unfinished(self) -> None:
        """The app returned without ending the response it started (or after a 5xx page)."""
        inv = self.inv
        if inv is None or inv.ended:
            return
        if self.completed:
            self._finish_completed(inv)
        elif self.disconnected:
            self.exits.end(semconv.OUTCOME_CLIENT_DISCONNECTED)  # type: ignore[union-attr]
        else:
            inv.failure = inv.failure or "incomplete_response"
            self.exits.end(semconv.OUTCOME_SERVER_EXCEPTION)  # type: ignore[union-attr]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers as a dict (repeated ones joined with `,`, as HTTP allows)."""
    result: dict[str, str] = {}
    for key, value in scope.get("headers") or ():
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        result[name] = f"{result[name]},{text}" if name in result else text
    return result
