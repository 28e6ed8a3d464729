"""A small stdlib HTTP server on 127.0.0.1 that sends `FakeReply`s: the transport under the fake Cohere
and Ollama servers (tests/fakes/cohere_server.py, tests/fakes/ollama_server.py).

HTTP/1.1 with keep-alive. A JSON reply carries ``Content-Length``; a stream goes out with
``Transfer-Encoding: chunked``, one frame (an SSE event, an NDJSON line) per chunk as soon as it is
produced, so time to first chunk and chunk gaps are real. The scenario's transport knobs are applied
here: ``delay_ms`` before the headers, ``chunk_delay_ms`` between frames, and ``abort_after=N``, which cuts
the connection after N frames without ending the chunked body (the client sees a broken transfer).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llmlens.demo.fake_bodies import FakeReply, Scenario

# (method, path, lower-cased headers, decoded JSON body) -> the reply and the scenario it came from.
ReplyFor = Callable[[str, str, dict[str, str], Any], "tuple[FakeReply, Scenario]"]
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass(frozen=True)
class Request:
    """One request as the server received it; header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes = field(default=b"", repr=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small frames leave at once
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""

    def do_POST(self) -> None:
        try:
            self._serve()
        except _DISCONNECTS:
            self.close_connection = True

    do_GET = do_POST

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(Request(self.command, self.path, headers, payload, body))
        reply, scenario = owner.reply_for(self.command, self.path.split("?", 1)[0], headers, payload)
        if scenario.delay_ms:
            time.sleep(scenario.delay_ms / 1000)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.events is None:
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for index, frame in enumerate(reply.events):
            if scenario.abort_after is not None and index >= scenario.abort_after:
                self._abort()
                return
            if index and scenario.chunk_delay_ms:
                time.sleep(scenario.chunk_delay_ms / 1000)
            self.wfile.write(f"{len(frame):X}\r\n".encode() + frame + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: LoopbackServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], _DISCONNECTS):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Serves `reply_for` on 127.0.0.1 in a background thread; a context manager."""

    def __init__(self, reply_for: ReplyFor) -> None:
        self.reply_for = reply_for
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None

    def __enter__(self) -> LoopbackServer:
        self._server = _Server(self)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        for conn in list(server.connections):  # idle keep-alive connections block their threads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not running"
        return int(self._server.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self) -> Request:
        with self.lock:
            return self.requests[-1]
