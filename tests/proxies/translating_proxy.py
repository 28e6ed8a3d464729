"""A translating proxy (FastAPI): OpenAI chat completions in, Anthropic Messages out (anthropic SDK).

The client's model is an alias (`gpt-4o-mini` -> `claude-haiku-4-5`); responses name the client's
model, as alias-preserving gateways do, so the span must record both. Stream events are converted as
they arrive: text deltas become `delta.content`, `message_delta` the finish reason and (with
`stream_options.include_usage`) a usage chunk; an Anthropic `error` event becomes an OpenAI
`{"error": ...}` event.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

log = logging.getLogger("tests.proxy")
ALIASES = {"gpt-4o-mini": "claude-haiku-4-5"}
_STOP = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop", "tool_use": "tool_calls"}


def _frame(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _anthropic_params(body: dict[str, Any]) -> dict[str, Any]:
    model = body["model"]
    messages = body["messages"]
    params: dict[str, Any] = {
        "model": ALIASES.get(model, model),
        "max_tokens": body.get("max_tokens") or 1024,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"],
    }
    system = [m["content"] for m in messages if m["role"] == "system"]
    if system:
        params["system"] = "\n".join(system)
    return params


def create_app(upstream_root: str, sent: dict[str, list[bytes]] | None = None) -> FastAPI:
    """`upstream_root`: the fake provider's root URL (`http://127.0.0.1:PORT`)."""
    app = FastAPI()
    client = anthropic.AsyncAnthropic(base_url=upstream_root, api_key="sk-ant-upstream", max_retries=0)
    record = sent if sent is not None else {}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        test_id = request.headers.get("x-test-id", "-")
        model = body["model"]
        params = _anthropic_params(body)
        if "x-fake-scenario" in request.headers:
            params["extra_headers"] = {"x-fake-scenario": request.headers["x-fake-scenario"]}
        chunks = record.setdefault(test_id, [])
        log.info("request %s: %s -> %s", test_id, model, params["model"])
        envelope = {"id": "", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            try:
                message = await client.messages.create(**params)
            except anthropic.APIStatusError as error:
                error_body = error.body if isinstance(error.body, dict) else {}
                kind = (error_body.get("error") or {}).get("type") or "api_error"
                content = json.dumps({"error": {"type": kind, "message": str(error)}}).encode()
                chunks.append(content)
                return Response(content, status_code=error.status_code, media_type="application/json")
            usage = message.usage
            content = json.dumps({
                **envelope, "id": message.id, "object": "chat.completion",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(
                        block.text for block in message.content if block.type == "text"
                    )},
                    "finish_reason": _STOP.get(message.stop_reason or "", "stop"),
                }],
                "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                          "total_tokens": usage.input_tokens + usage.output_tokens},
            }).encode()  # fmt: skip
            chunks.append(content)
            return Response(content, media_type="application/json")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = await client.messages.create(**params, stream=True)
        envelope["object"] = "chat.completion.chunk"

        async def relay() -> AsyncIterator[bytes]:
            usage = {"prompt_tokens": 0, "completion_tokens": 0}
            try:
                async for event in stream:
                    choice: dict[str, Any] | None = None
                    if event.type == "message_start":
                        envelope["id"] = event.message.id
                        usage["prompt_tokens"] = event.message.usage.input_tokens
                        choice = {"index": 0, "delta": {"role": "assistant"}}
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        choice = {"index": 0, "delta": {"content": event.delta.text}}
                    elif event.type == "message_delta":
                        usage["completion_tokens"] = event.usage.output_tokens
                        reason = _STOP.get(event.delta.stop_reason or "", "stop")
                        choice = {"index": 0, "delta": {}, "finish_reason": reason}
                    if choice is not None:
                        log.info("request %s: %s", test_id, event.type)
                        frame = _frame({**envelope, "choices": [choice]})
                        chunks.append(frame)
                        yield frame
            except anthropic.APIStatusError as error:
                body = error.body if isinstance(error.body, dict) else {}
                kind = (body.get("error") or {}).get("type") or "api_error"
                frame = _frame({"error": {"type": kind, "message": str(error)}})
                chunks.append(frame)
                yield frame
                return
            if include_usage:
                total = usage["prompt_tokens"] + usage["completion_tokens"]
                frame = _frame({**envelope, "choices": [], "usage": {**usage, "total_tokens": total}})
                chunks.append(frame)
                yield frame
            chunks.append(b"data: [DONE]\n\n")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(relay(), media_type="text/event-stream")

    return app
