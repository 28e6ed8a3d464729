"""A fake OpenAI-compatible HTTP server for the demo, the tests and the benchmarks.

Stdlib only: a ``ThreadingHTTPServer`` on 127.0.0.1 speaking HTTP/1.1 with keep-alive. JSON replies carry
``Content-Length``; streams use ``Transfer-Encoding: chunked`` and every SSE event is sent as soon as it
is produced, so streaming (and time to first token) is real. Bodies come from
:mod:`llmlens.demo.fake_bodies`.

Routes: ``POST /v1/chat/completions`` (stream or not, ``n``, tools), ``POST /v1/responses`` (stream or
not), ``POST /v1/completions`` (legacy text completions: stream or not, ``n``, a list of prompts,
``max_tokens`` cuts the answer short with ``finish_reason: "length"``) and ``POST /v1/embeddings`` (float
or base64). Anything else gets a 404 OpenAI error body.

It also speaks the Anthropic Messages API: ``POST /v1/messages`` (stream or not) and
``POST /v1/messages/count_tokens``, with Anthropic bodies, SSE events and error bodies from
:mod:`llmlens.demo.fake_anthropic` (point the ``anthropic`` SDK at the server root,
``http://127.0.0.1:PORT``; its docstring lists the scenario keywords that apply there). Groq's
OpenAI-compatible paths (``/openai/v1/chat/completions``, ...) are served like ``/v1/...``, so the ``groq``
SDK works with the same root as its ``base_url``. Gemini API and Vertex AI paths
(``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``, ``:embedContent``,
``:batchEmbedContents``) are answered by :mod:`llmlens.demo.fake_gemini` (point ``google-genai`` at the root).

Usage::

    with FakeProvider() as provider:
        client = openai.OpenAI(api_key="sk-fake", base_url=provider.base_url, max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-fake-scenario": "chunks=34,cached=5,reasoning=3"},
        )
        assert provider.requests[-1].headers["x-fake-scenario"] == "chunks=34,cached=5,reasoning=3"

or from a shell: ``python -m llmlens.demo.fake_server --port 8000`` (prints the base URL).

Scenario selection
------------------
Send the ``x-fake-scenario`` request header with comma- or semicolon-separated keywords:

``chunks=N``          answer with N words; streams send one word per chunk (default 8)
``cached=N``          ``prompt_tokens_details.cached_tokens`` / ``input_tokens_details.cached_tokens``; a
                      part of the prompt tokens, which grow to at least ``cached + cache_write``
``cache_write=N``     ``prompt_tokens_details.cache_write_tokens`` (sent only when N > 0) /
                      ``input_tokens_details.cache_write_tokens``; also a part of the prompt tokens
``reasoning=N``       ``completion_tokens_details.reasoning_tokens`` (Responses: ``output_tokens_details``);
                      a part of the completion/output tokens: those are the answer's words + N
``incomplete=REASON`` Responses API: ``status: "incomplete"`` with ``incomplete_details.reason`` REASON
                      (``max_output_tokens`` or ``content_filter``); streams end with ``response.incomplete``
``tool``              call the first function tool, if the request has tools (``tool_choice`` "required"
                      or a named function forces a tool call without this keyword; "none" prevents it)
``refusal``           answer with ``message.refusal`` and null content (streams: ``delta.refusal``)
``status=CODE``       reply with that HTTP error and an OpenAI error body (429 adds ``retry-after: 0``)
``delay_ms=N``        sleep N ms before sending the response headers (for timeout tests)
``chunk_delay_ms=N``  sleep N ms between stream chunks
``abort_after=N``     streams: send N SSE events, then cut the connection without ending the chunked body,
                      so the client fails mid-stream (openai 3 raises ``openai.APIConnectionError``;
                      openai 2 lets the transport's ``httpx.RemoteProtocolError`` through)
``no_usage``          no usage at all: no usage chunk even with ``include_usage``, ``usage: null`` otherwise
``none_fields``       nulls for optional fields: ``system_fingerprint``, ``service_tier``, token details,
                      and ``finish_reason`` in the last chat/completions chunk
``finish=WORD``       use WORD as the chat/completions ``finish_reason`` (e.g. ``finish=weird_reason``)
``empty_stream``      the stream consists of ``data: [DONE]`` only

An unknown keyword or bad value is answered with a 400 error naming the problem.

Without the header, a model named ``fake-error-<CODE>`` (e.g. ``fake-error-429``) means ``status=<CODE>``,
so a demo can show an error with an unmodified client.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from llmlens.demo import fake_anthropic, fake_gemini
from llmlens.demo.fake_bodies import SCENARIO_HEADER, FakeReply, Scenario, error_reply, route

__all__ = ["SCENARIO_HEADER", "FakeProvider", "RecordedRequest", "main"]

# Errors that only mean "the client went away" (timeouts, aborted streams); never worth a traceback.
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake provider received it. Header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes = field(default=b"", repr=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked transfer for streams
    disable_nagle_algorithm = True  # small SSE frames must leave immediately, not wait for an ACK
    server: _FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            self._serve_unsafe()
        except _DISCONNECTS:
            self.close_connection = True

    def _serve_unsafe(self) -> None:
        body = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        payload = _decode_json(body)
        self.server.provider._record(RecordedRequest(self.command, self.path, headers, payload, body))
        reply, scenario = _reply_for(self.command, self.path, headers.get(SCENARIO_HEADER), payload)
        if scenario.delay_ms:
            time.sleep(scenario.delay_ms / 1000)
        if reply.events is None:
            self._send_json(reply)
        else:
            self._send_stream(reply, reply.events, scenario)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Skip optional trailers up to the blank line that ends the message.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk

    def _start(self, reply: FakeReply, extra: dict[str, str]) -> None:
        self.send_response(reply.status)
        for name, value in {**reply.headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(self, reply: FakeReply) -> None:
        self._start(reply, {"content-length": str(len(reply.body))})
        self.wfile.write(reply.body)

    def _send_stream(self, reply: FakeReply, events: Sequence[bytes], scenario: Scenario) -> None:
        self._start(reply, {"transfer-encoding": "chunked"})
        delay = scenario.chunk_delay_ms / 1000
        for index, frame in enumerate(events):
            if scenario.abort_after is not None and index >= scenario.abort_after:
                self._abort()
                return
            if index and delay:
                time.sleep(delay)
            last = index == len(events) - 1
            # The last frame and the terminating zero-size chunk go out in one write, so a client that
            # stops reading at [DONE] usually finds the body complete and can reuse the connection.
            self.wfile.write(_chunk(frame) + (b"0\r\n\r\n" if last else b""))
        if not events:
            self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """End the connection mid-body: the client sees an incomplete chunked read, not a clean end."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _chunk(data: bytes) -> bytes:
    return f"{len(data):X}\r\n".encode() + data + b"\r\n"


def _decode_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _reply_for(method: str, path: str, header: str | None, payload: Any) -> tuple[FakeReply, Scenario]:
    gemini = fake_gemini.reply_for(method, path, header, payload)  # /v1beta/models/{model}:generateContent...
    if gemini is not None:
        return gemini
    model = payload.get("model") if isinstance(payload, dict) else None
    anthropic = fake_anthropic.handles(path)
    if path.startswith(_GROQ_PREFIX):  # Groq's OpenAI-compatible API: same bodies, longer path
        path = path[len("/openai") :]
    try:
        scenario = Scenario.for_request(header, model)
    except ValueError as exc:
        message = f"invalid {SCENARIO_HEADER} header: {exc}"
        if anthropic:
            return FakeReply.from_triple(fake_anthropic.error_reply(400, message)), Scenario()
        return FakeReply.from_triple(error_reply(400, message, param=SCENARIO_HEADER)), Scenario()
    if anthropic:
        return fake_anthropic.route(method, path, payload, scenario), scenario
    return route(method, path, payload, scenario), scenario


_GROQ_PREFIX = "/openai/v1/"


class _FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must never keep the test process alive
    allow_reuse_address = True
    # socketserver's default backlog of 5 makes bursts of concurrent clients (benchmarks) see resets.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Cut idle keep-alive connections, whose handler threads would otherwise block on read."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _DISCONNECTS):
            return
        super().handle_error(request, client_address)


class FakeProvider:
    """A fake OpenAI-compatible provider on ``127.0.0.1``; usable as a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._requested = (host, port)
        self._server: _FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()

    def start(self) -> FakeProvider:
        if self._server is not None:
            return self
        self._server = _FakeHTTPServer(self._requested, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return str(self._running().server_address[0])

    @property
    def port(self) -> int:
        return int(self._running().server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to an OpenAI client, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (the live list; call :meth:`clear` to reset)."""
        return self._requests

    def clear(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self._requests.append(request)

    def _running(self) -> _FakeHTTPServer:
        if self._server is None:
            raise RuntimeError("FakeProvider is not running; call start() or use it as a context manager")
        return self._server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a fake OpenAI-compatible provider in the foreground.")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    args = parser.parse_args(argv)
    provider = FakeProvider(port=args.port, host=args.host).start()
    print(provider.base_url, flush=True)
    print(f"Select behaviour with the {SCENARIO_HEADER} header; Ctrl-C to stop.", file=sys.stderr, flush=True)
    stopped = threading.Event()
    # SIGTERM (e.g. from a process manager or a test harness) should stop as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
    try:
        while not stopped.wait(timeout=0.5):  # a timed wait keeps Ctrl-C responsive
            pass
    except KeyboardInterrupt:
        pass
    finally:
        provider.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
