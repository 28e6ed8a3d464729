"""An OpenAI-format proxy on a plain asyncio server (`asyncio.start_server`, no ASGI), recorded with
`llmlens.llm_request`: the wiring docs/proxy.md shows. It forwards `POST /v1/chat/completions` to the
fake provider with the openai SDK and streams the answer back as SSE (chunked transfer encoding).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import openai

import llmlens

log = logging.getLogger("tests.proxy")


async def serve(upstream: str, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    client = openai.AsyncOpenAI(base_url=upstream, api_key="sk-upstream", max_retries=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            _request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            peer = writer.get_extra_info("peername")[0]
            await respond(writer, body, headers, peer)
        finally:
            writer.close()

    async def respond(writer: asyncio.StreamWriter, body: bytes, headers: dict[str, str], peer: str) -> None:
        with llmlens.llm_request(source_format="openai", body=body, headers=headers, peer=peer,
                                 path="/v1/chat/completions") as request:  # fmt: skip
            with llmlens.traced_operation("convert.request"):
                params: dict[str, Any] = json.loads(body)
            log.info("request %s: upstream call", request.request_id)
            if "x-fake-scenario" in headers:
                params["extra_headers"] = {"x-fake-scenario": headers["x-fake-scenario"]}
            stream = await client.chat.completions.create(**params)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                b"x-request-id: " + request.request_id.encode() + b"\r\n\r\n"
            )
            frames = request.wrap_async_stream(sse(stream, request.request_id))
        async for frame in frames:  # the span ends after the last frame, outside the `with`
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def sse(stream: Any, request_id: str) -> AsyncIterator[bytes]:
        async for chunk in stream:
            log.info("request %s: chunk", request_id)
            yield b"data: " + chunk.model_dump_json(exclude_unset=True).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return await asyncio.start_server(handle, host, port)
