"""A fake AWS Bedrock Runtime on 127.0.0.1 (stdlib only), serving `fakes.bedrock_bodies` replies.

    with BedrockServer() as server:
        client = server.client()                      # a real boto3 bedrock-runtime client for it
        with server.scenario(client, "chunks=4,tool"):  # or server.client(scenario="chunks=4,tool")
            client.converse_stream(modelId=..., messages=[...])

Routes are the botocore service model's: `POST /model/{modelId}/converse`, `/converse-stream`,
`/invoke` and `/invoke-with-response-stream`. A scenario (see the bedrock_bodies docstring) travels in the
`x-fake-scenario` header, which `scenario()` adds to every request of one client through botocore's
own event system (`before-sign.bedrock-runtime`), so model ids stay real. Event streams go out with
chunked transfer encoding, one chunk per event-stream message, flushed as written; `abort_after=N`
cuts the connection after N messages. Every request is kept in `requests`.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from fakes.bedrock_bodies import SCENARIO_HEADER, BedrockReply, BedrockScenario, error_reply, route

_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each event-stream message leaves at once
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""

    def do_POST(self) -> None:
        try:
            self._serve()
        except _DISCONNECTS:
            self.close_connection = True

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.owner._received(ReceivedRequest(self.command, self.path, headers, body))
        try:
            scenario = BedrockScenario.parse(headers.get(SCENARIO_HEADER))
        except ValueError as error:
            scenario = BedrockScenario()
            reply = error_reply(400, "ValidationException", f"invalid {SCENARIO_HEADER}: {error}")
        else:
            reply = route(self.command, self.path, body, scenario)
        if scenario.delay_ms:
            time.sleep(scenario.delay_ms / 1000)
        if reply.events is None:
            self._send_body(reply, scenario)
        else:
            self._send_events(reply, reply.events, scenario)

    def _start(self, reply: BedrockReply, extra: dict[str, str]) -> None:
        self.send_response(reply.status)
        for name, value in {**reply.headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_body(self, reply: BedrockReply, scenario: BedrockScenario) -> None:
        self._start(reply, {"content-length": str(len(reply.body))})
        if scenario.abort_after is not None:  # half the body, then the connection goes away
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.wfile.flush()
            self._abort()
            return
        self.wfile.write(reply.body)

    def _send_events(self, reply: BedrockReply, events: list[bytes], scenario: BedrockScenario) -> None:
        self._start(reply, {"transfer-encoding": "chunked"})
        delay = scenario.chunk_delay_ms / 1000
        for index, message in enumerate(events):
            if scenario.abort_after is not None and index >= scenario.abort_after:
                self._abort()
                return
            if index and delay:
                time.sleep(delay)
            self.wfile.write(f"{len(message):X}\r\n".encode() + message + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """Cut the connection mid-body: the client sees a broken read, not a clean end."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: BedrockServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _DISCONNECTS):
            return
        super().handle_error(request, client_address)


class BedrockServer:
    """The fake Bedrock Runtime on a free port of 127.0.0.1; a context manager."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()

    def __enter__(self) -> BedrockServer:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-bedrock",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server = self._server
        if server is None:
            return
        server.shutdown()
        with server.connections_lock:
            for conn in list(server.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _received(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def client(self, scenario: str | None = None, **config: Any) -> Any:
        """A real boto3 `bedrock-runtime` client for this server: dummy credentials, one attempt (no
        retries) unless `config` says otherwise; `scenario` goes with every request it makes."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(**{"retries": {"total_max_attempts": 1}, **config}),
        )
        if scenario is not None:
            client.meta.events.register("before-sign.bedrock-runtime", _scenario_header(scenario))
        return client

    @staticmethod
    @contextlib.contextmanager
    def scenario(client: Any, value: str) -> Iterator[None]:
        """Send `x-fake-scenario: value` with every request `client` makes inside the block."""

        client.meta.events.register(
            "before-sign.bedrock-runtime", _scenario_header(value), unique_id="fake-scenario"
        )
        try:
            yield
        finally:
            client.meta.events.unregister("before-sign.bedrock-runtime", unique_id="fake-scenario")


def _scenario_header(value: str) -> Any:
    def add_header(request: Any, **_: Any) -> None:
        request.headers[SCENARIO_HEADER] = value

    return add_header
