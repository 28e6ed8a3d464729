"""`api/live/stream`: the requests in flight as server-sent events, a snapshot every `INTERVAL_S`.

Each event is `event: snapshot` with the JSON of `in_flight.snapshot()` (what `api/live` answers),
or `event: problem` with `{"error": ...}` when the store cannot be read (it is tried again next time).
A stream ends after `MAX_STREAM_S`, or when `app.state.stopping` is set (`llmlens ui` sets it on
Ctrl-C, so the server stops at once rather than after its graceful timeout); the browser's
EventSource reconnects by itself (`retry:`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from llmlens.store.schema import StoreError
from llmlens.web import in_flight
from llmlens.web.pages.live import INTERVAL_S
from llmlens.web.reader import open_reader

MAX_STREAM_S = 600.0
RETRY_MS = 2000


class _Snapshots:
    """One read-only connection for the stream's life, opened again after a failure."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def event(self) -> str:
        try:
            if self.conn is None:
                self.conn = open_reader(self.path)
            data, name = in_flight.snapshot(self.conn), "snapshot"
        except (StoreError, sqlite3.Error) as error:
            self.close()
            data, name = {"error": str(error)}, "problem"
        return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


async def live_stream(request: Request) -> StreamingResponse:
    snapshots = _Snapshots(str(request.app.state.db_path))
    stopping: threading.Event = request.app.state.stopping

    async def events() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            deadline = time.monotonic() + MAX_STREAM_S
            while time.monotonic() < deadline and not stopping.is_set():
                yield await run_in_threadpool(snapshots.event)
                await anyio.sleep(INTERVAL_S)
        finally:
            snapshots.close()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})  # fmt: skip
