"""An OpenAI-format passthrough proxy (FastAPI): forwards chat completions upstream with the openai SDK.

It records the exact bytes of every response it sends (by the client's `x-test-id` header), so a test
can check that what the client received is byte for byte what the application sent. It logs a line
per request and per streamed chunk (logger `tests.proxy`, the message names the `x-test-id`), so a
test can check that each line carries the ids of its own request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import openai
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

log = logging.getLogger("tests.proxy")


def create_app(upstream: str, sent: dict[str, list[bytes]] | None = None, **fastapi: Any) -> FastAPI:
    """`upstream`: the fake provider's OpenAI base URL (`http://127.0.0.1:PORT/v1`)."""
    app = FastAPI(**fastapi)
    client = openai.AsyncOpenAI(base_url=upstream, api_key="sk-upstream", max_retries=0)
    record = sent if sent is not None else {}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        test_id = request.headers.get("x-test-id", "-")
        log.info("request %s: model %s", test_id, body.get("model"))
        if body.get("model") == "raise":
            raise RuntimeError("the proxy failed")
        extra = {}
        if "x-fake-scenario" in request.headers:
            extra["extra_headers"] = {"x-fake-scenario": request.headers["x-fake-scenario"]}
        chunks = record.setdefault(test_id, [])
        if body.get("stream"):
            stream = await client.chat.completions.create(**body, **extra)

            async def relay() -> AsyncIterator[bytes]:
                async for number, chunk in _numbered(stream):
                    log.info("request %s: chunk %d", test_id, number)
                    data = b"data: " + chunk.model_dump_json(exclude_unset=True).encode() + b"\n\n"
                    chunks.append(data)
                    yield data
                chunks.append(b"data: [DONE]\n\n")
                yield b"data: [DONE]\n\n"
                log.info("request %s: done", test_id)

            return StreamingResponse(relay(), media_type="text/event-stream")
        try:
            completion = await client.chat.completions.create(**body, **extra)
        except openai.APIStatusError as error:
            payload = error.body if isinstance(error.body, dict) else {"error": str(error)}
            content = json.dumps(payload).encode()
            chunks.append(content)
            return Response(content, status_code=error.status_code, media_type="application/json")
        content = completion.model_dump_json(exclude_unset=True).encode()
        chunks.append(content)
        return Response(content, media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, str]:
        log.info("health")
        return {"status": "ok"}

    return app


async def _numbered(stream: Any) -> AsyncIterator[tuple[int, Any]]:
    number = 0
    async for chunk in stream:
        yield number, chunk
        number += 1
