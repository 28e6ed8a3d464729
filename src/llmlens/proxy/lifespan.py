"""The ASGI lifespan of an instrumented application: the local store is flushed when the server shuts
down.

uvicorn (and the servers like it) stops on SIGTERM by shutting the application down, then raising the
signal again with its default handler: the process dies there, without an interpreter exit, so the
atexit flush never runs and the requests still queued for the store's writer thread would be lost (a
`docker stop`, a systemd restart). The middleware sees the application's `lifespan.shutdown.complete`
go out and flushes first: the server exits only once that message has been sent.
"""

from __future__ import annotations

from typing import Any

_SHUTDOWN_DONE = ("lifespan.shutdown.complete", "lifespan.shutdown.failed")


async def run_lifespan(app: Any, scope: Any, receive: Any, send: Any) -> None:
    """Run the application's lifespan, flushing the stores before its shutdown is reported done."""

    async def send_after_flush(message: Any) -> None:
        if message.get("type") in _SHUTDOWN_DONE:
            from llmlens.store.attach import flush_stores

            flush_stores()
        await send(message)

    await app(scope, receive, send_after_flush)
