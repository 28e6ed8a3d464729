"""Raw ASGI applications and a driver, for testing the proxy middleware in process with exact control
over request chunks, response chunks, disconnects and failures.

`Canned` answers with given bytes (or the fake provider's reply to the request, for any of the
OpenAI, Anthropic and Gemini wire formats) and records what it received and sent. `drive()` runs an
ASGI application for one request and returns what reached the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmlens.demo import fake_anthropic, fake_bodies, fake_gemini
from llmlens.demo.fake_bodies import FakeReply, Scenario


def fake_reply(path: str, body: Any, scenario: str = "") -> FakeReply:
    """The fake provider's reply to a request, for any of its wire formats."""
    gemini = fake_gemini.reply_for("POST", path, scenario or None, body)
    if gemini is not None:
        return gemini[0]
    model = body.get("model") if isinstance(body, dict) else None
    parsed = Scenario.for_request(scenario or None, model)
    if fake_anthropic.handles(path):
        return fake_anthropic.route("POST", path, body, parsed)
    return fake_bodies.route("POST", path, body, parsed)


@dataclass
class Canned:
    """An ASGI app: reads the whole request, then sends `chunks` (or the fake provider's reply)."""

    chunks: Sequence[bytes] | None = None
    status: int = 200
    content_type: str = "application/json"
    scenario: str = ""
    raise_after: int | None = None  # raise RuntimeError after sending this many body chunks
    chunk_delay: float = 0.0
    finish: bool = True  # send the final empty chunk (more_body=False)
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.received if m["type"] == "http.request")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        chunks, status, content_type = self.chunks, self.status, self.content_type
        if chunks is None:
            try:
                request = json.loads(self.body)
            except ValueError:
                request = None
            query = scope.get("query_string") or b""
            path = scope["path"] + ("?" + query.decode() if query else "")
            reply = fake_reply(path, request, self.scenario)
            status = reply.status
            content_type = reply.headers.get("content-type", content_type)
            chunks = reply.events if reply.events is not None else [reply.body]
        start = {"type": "http.response.start", "status": status,
                 "headers": [(b"content-type", content_type.encode())]}  # fmt: skip
        self.sent.append(start)
        await send(start)
        for number, chunk in enumerate(chunks):
            if self.raise_after is not None and number == self.raise_after:
                raise RuntimeError("the application failed")
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            self.sent.append(message)
            await send(message)
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        if self.raise_after is not None and self.raise_after >= len(chunks):
            raise RuntimeError("the application failed")
        if self.finish:
            message = {"type": "http.response.body", "body": b"", "more_body": False}
            self.sent.append(message)
            await send(message)


@dataclass
class Exchange:
    """What the server saw of one request."""

    messages: list[dict[str, Any]]
    error: BaseException | None = None

    @property
    def start(self) -> dict[str, Any]:
        return next(m for m in self.messages if m["type"] == "http.response.start")

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.start["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


def scope_for(
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    method: str = "POST",
    query: bytes = b"",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    spec_version: str = "2.4",
) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": client, "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def drive(
    app: Any,
    path: str,
    body: bytes | Any = b"",
    *,
    headers: Sequence[tuple[str, str]] = (),
    request_chunks: Sequence[bytes] | None = None,
    method: str = "POST",
    query: bytes = b"",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    send_fails_after: int | None = None,
    disconnect_after: int | None = None,
    spec_version: str = "2.4",
    raise_errors: bool = True,
) -> Exchange:
    """Run `app` for one request; `body` may be bytes or a JSON-able value.

    `send_fails_after=N`: the server's send raises OSError from the Nth body message on (the client
    is gone, ASGI 2.4). `disconnect_after=N`: once N body messages went out, a pending or later
    receive() returns `http.disconnect`.
    """
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    pieces = list(request_chunks) if request_chunks is not None else [body]
    requests = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()
    body_messages = 0

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal body_messages
        if message["type"] == "http.response.body":
            if send_fails_after is not None and body_messages >= send_fails_after:
                raise OSError("client disconnected")
            body_messages += 1
            if disconnect_after is not None and body_messages >= disconnect_after:
                gone.set()
        sent.append(message)

    scope = scope_for(path, headers, method, query, client, spec_version)
    try:
        await app(scope, receive, send)
    except BaseException as error:
        if raise_errors:
            raise
        return Exchange(sent, error)
    return Exchange(sent)
