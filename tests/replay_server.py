"""Replays recorded OpenAI responses (tests/recordings/*.json) on 127.0.0.1, stdlib only.

    with ReplayServer(Recording.load("chat_completion")) as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)
        ...
        server.use(Recording.load("responses_stream"))  # switch what the next requests get

A request with the recording's method and path gets the recorded status, content type and body, byte
for byte. An SSE body (`text/event-stream`) goes out with chunked transfer encoding, one chunk per
event (split after each blank line that ends an event) and flushed as it is written, so the client
really reads a stream; `event_delay` puts a pause between events. Anything else gets a 404 naming the
recording that was expected. Every request is kept in `requests` for the test to compare.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

RECORDINGS = Path(__file__).resolve().parent / "recordings"
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True)
class Recording:
    """One recorded request/response pair (the JSON files in tests/recordings)."""

    name: str
    source: str
    method: str
    path: str
    request_body: Any
    status: int
    content_type: str
    body: str

    @classmethod
    def load(cls, name: str) -> Recording:
        data = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))
        request, response = data["request"], data["response"]
        return cls(
            name=name,
            source=data["source"],
            method=request["method"].upper(),
            path=request["path"],
            request_body=request["body"],
            status=int(response["status"]),
            content_type=response["content_type"],
            body=response["body"],
        )

    @property
    def is_sse(self) -> bool:
        return self.content_type.split(";", 1)[0].strip().lower() == "text/event-stream"

    def sse_events(self) -> list[str]:
        """The body cut after every `\\n\\n`; joined again they give back the body exactly."""
        events, start = [], 0
        while start < len(self.body):
            end = self.body.find("\n\n", start)
            end = len(self.body) if end < 0 else end + 2
            events.append(self.body[start:end])
            start = end
        return events


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked transfer for SSE
    disable_nagle_algorithm = True  # each small SSE chunk leaves at once
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            self._serve_unsafe()
        except _DISCONNECTS:
            self.close_connection = True

    def _serve_unsafe(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        replay = self.server.replay
        replay._received(ReceivedRequest(self.command, path, headers, body))
        recording = replay.recording
        if recording is None or (self.command, path) != (recording.method, recording.path):
            expected = f"{recording.method} {recording.path}" if recording else "nothing"
            message = f"replay server: no recording for {self.command} {path} (serving {expected})"
            payload = json.dumps({"error": {"message": message, "type": "replay_error"}}).encode()
            self._head(404, "application/json", {"content-length": str(len(payload))})
            self.wfile.write(payload)
            return
        if recording.is_sse:
            self._head(recording.status, recording.content_type, {"transfer-encoding": "chunked"})
            for index, event in enumerate(recording.sse_events()):
                if index and replay.event_delay:
                    time.sleep(replay.event_delay)
                data = event.encode("utf-8")
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        else:
            payload = recording.body.encode("utf-8")
            self._head(recording.status, recording.content_type, {"content-length": str(len(payload))})
            self.wfile.write(payload)
            self.wfile.flush()

    def _head(self, status: int, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replay: ReplayServer

    def __init__(self, replay: ReplayServer) -> None:
        self.replay = replay
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut keep-alive connections whose handler threads wait for a next request."""
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], _DISCONNECTS):
            super().handle_error(request, client_address)


class ReplayServer:
    """Serves one recording at a time on 127.0.0.1 (port chosen by the OS); a context manager."""

    def __init__(self, recording: Recording | None = None, event_delay: float = 0.0) -> None:
        self.recording = recording
        self.event_delay = event_delay
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def use(self, recording: Recording | None, event_delay: float = 0.0) -> None:
        """Serve `recording` from now on, and forget the requests received so far."""
        self.recording = recording
        self.event_delay = event_delay
        with self._lock:
            self.requests.clear()

    def _received(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> ReplayServer:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="replay", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ReplayServer is not running; use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
