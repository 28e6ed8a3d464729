"""LLMProxyMiddleware in process: each wire format, irregular streams, outcomes, malformed bodies,
identity and correlation, byte identity, metrics. (Real servers: test_proxy_uvicorn.py.)"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llmlens.core.telemetry import Telemetry
from llmlens.proxy.asgi import LLMProxyMiddleware
from llmlens.settings import ContentMode, Settings
from proxies.asgi_apps import Canned, drive, fake_reply

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def telemetry(otel: Any) -> Telemetry:
    return Telemetry(Settings(store=False, pricing=False), otel.tracer_provider, otel.meter_provider)


@pytest.fixture
def wrap(telemetry: Telemetry) -> Any:
    def make(app: Any, **settings: Any) -> LLMProxyMiddleware:
        config = Settings(store=False, pricing=False, proxy_key_secret="test-secret", **settings)
        return LLMProxyMiddleware(app, telemetry=telemetry, settings=config)

    return make


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def server_span(otel: Any) -> Any:
    spans = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    assert len(spans) == 1, [s.name for s in otel.spans()]
    return spans[0]


def sse(*events: Any, name: str | None = None) -> list[bytes]:
    prefix = f"event: {name}\n".encode() if name else b""
    return [
        prefix + b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events
    ]


def points(otel: Any, name: str) -> list[Any]:
    return otel.metrics().get(name, [])


# --- pass-through ------------------------------------------------------------------------------------


def test_other_requests_reach_the_app_with_the_servers_own_receive_and_send(wrap: Any, otel: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope.get("path"), receive, send))

    middleware = wrap(app)

    async def main() -> None:
        async def receive() -> Any:
            return {"type": "http.request"}

        async def send(message: Any) -> None:
            return None

        from proxies.asgi_apps import scope_for

        for scope in (scope_for("/health", method="GET"), scope_for("/v1/models", method="GET"),
                      scope_for("/other"), scope_for(CHAT, method="GET"),
                      {**scope_for(CHAT), "type": "websocket"}, {"type": "lifespan"}):  # fmt: skip
            await middleware(scope, receive, send)
        assert all(r is receive and s is send for _, r, s in seen[:5])
        # The lifespan's send is watched for its shutdown (the store is flushed first: proxy/lifespan.py).
        _, lifespan_receive, lifespan_send = seen[5]
        assert lifespan_receive is receive and lifespan_send is not send

    run(main())
    assert len(seen) == 6
    assert otel.spans() == []


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("/v1/chat/completions", True),
        ("/api/v1/chat/completions", True),  # any prefix
        ("/openai/deployments/x/v1/chat/completions", True),
        ("/v1/completions", True),
        ("/v1/messages", True),
        ("/v1/messages/count_tokens", True),
        ("/v1beta/models/gemini-2.5-flash:generateContent", True),
        ("/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:streamGenerateContent", True),
        ("/messages", False),  # the default table keeps the version segment
        ("/v1/chat/completions/extra", False),
        ("/v1/models", False),
        ("/x:generateContent", False),  # a colon method outside .../models/
    ],
)
def test_route_table(wrap: Any, path: str, matched: bool) -> None:
    assert (wrap(Canned()).match({"type": "http", "method": "POST", "path": path}) is not None) is matched


def test_routes_and_prefixes_are_configurable(wrap: Any) -> None:
    routes = {"/codex/responses": "openai_responses", "/v1/embeddings": "off"}
    middleware = wrap(Canned(), proxy_routes=routes, proxy_path_prefixes=("/api", "/codex"))

    def match(path: str) -> Any:
        return middleware.match({"type": "http", "method": "POST", "path": path})

    assert match("/codex/responses").name == "openai_responses"
    assert match("/api/v1/chat/completions") is not None
    assert match("/v1/chat/completions") is None  # outside the prefixes
    assert match("/api/v1/embeddings") is None  # turned off


# --- OpenAI ----------------------------------------------------------------------------------------------


def test_openai_chat_json(wrap: Any, otel: Any) -> None:
    app = Canned(scenario="chunks=5,cached=2,reasoning=1")
    body = {"model": "gpt-4o-mini", "messages": HI, "temperature": 0.5, "max_tokens": 50, "seed": 3}
    result = run(drive(wrap(app), CHAT, body, headers=[("user-agent", "openai-python/3")]))
    span = server_span(otel)
    attrs = span.attributes
    response = json.loads(result.body)
    assert span.name == "chat gpt-4o-mini"
    assert span.status.status_code == StatusCode.OK
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.seed"] == 3
    assert attrs["gen_ai.response.id"] == response["id"]
    assert attrs["gen_ai.response.model"] == response["model"]
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == response["usage"]["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == response["usage"]["completion_tokens"]
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 1
    assert attrs["llmlens.proxy.source_format"] == "openai"
    assert attrs["openai.api.type"] == "chat_completions"
    assert attrs["http.request.method"] == "POST"
    assert attrs["url.path"] == CHAT
    assert attrs["http.response.status_code"] == 200
    assert attrs["user_agent.original"] == "openai-python/3"
    assert attrs["client.address"] == "127.0.0.1"
    assert attrs["http.request.body.size"] == len(json.dumps(body))
    assert attrs["http.response.body.size"] == len(result.body)
    assert "gen_ai.request.stream" not in attrs and "llmlens.stream.outcome" not in attrs
    # metrics: the request once, on the server side
    (duration,) = points(otel, "gen_ai.server.request.duration")
    assert duration.count == 1
    assert duration.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    usage = {p.attributes["gen_ai.token.type"]: p.sum for p in points(otel, "gen_ai.client.token.usage")}
    assert usage == {
        "input": attrs["gen_ai.usage.input_tokens"],
        "output": attrs["gen_ai.usage.output_tokens"],
    }
    assert "gen_ai.server.time_to_first_token" not in otel.metrics()  # not a stream
    assert [p.value for p in points(otel, "llmlens.server.active_requests")] == [0]


def test_openai_chat_stream(wrap: Any, otel: Any) -> None:
    app = Canned(scenario="chunks=6")
    body = {"model": "gpt-4o-mini", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    result = run(drive(wrap(app), CHAT, body))
    span = server_span(otel)
    attrs = span.attributes
    assert span.status.status_code == StatusCode.OK
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["llmlens.stream.outcome"] == "completed"
    assert attrs["llmlens.stream.chunk_count"] == 8  # role, 6 words, finish (the usage chunk has no choices)
    assert attrs["gen_ai.usage.output_tokens"] == 6
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] < 1
    assert result.headers[b"content-type"].startswith(b"text/event-stream")
    (ttft,) = points(otel, "gen_ai.server.time_to_first_token")
    (tpot,) = points(otel, "gen_ai.server.time_per_output_token")
    assert ttft.count == 1 and tpot.count == 1
    assert list(ttft.explicit_bounds)[:3] == [0.001, 0.005, 0.01]
    assert list(tpot.explicit_bounds)[:3] == [0.01, 0.025, 0.05]


def test_the_span_ends_with_the_last_chunk_not_when_the_app_returns(wrap: Any, otel: Any) -> None:
    app = Canned(scenario="chunks=3", chunk_delay=0.02)
    run(drive(wrap(app), CHAT, {"model": "m", "messages": HI, "stream": True}))
    span = server_span(otel)
    assert (span.end_time - span.start_time) / 1e9 >= 0.06  # covers all the chunks


def _restream(events: list[bytes], how: str) -> list[bytes]:
    stream = b"".join(events)
    if how == "7-byte pieces":
        return [stream[i : i + 7] for i in range(0, len(stream), 7)]
    if how == "one chunk":
        return [stream]
    if how == "crlf":
        return [e.replace(b"\n", b"\r\n") for e in events]
    if how == "single newline":
        return [e.replace(b"\n\n", b"\n") for e in events]
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["7-byte pieces", "one chunk", "crlf", "single newline"])
def test_irregular_sse_gives_the_same_record(wrap: Any, otel: Any, how: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    events = fake_reply(CHAT, body, "chunks=4,cached=1").events
    assert events is not None
    app = Canned(chunks=_restream(events, how), content_type="text/event-stream")
    result = run(drive(wrap(app), CHAT, body))
    assert result.body == b"".join(app.chunks or [])  # what the app sent, untouched
    attrs = server_span(otel).attributes
    assert attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["llmlens.stream.chunk_count"] == 6
    assert attrs["llmlens.stream.outcome"] == "completed"


def test_constant_and_empty_chunk_ids(wrap: Any, otel: Any) -> None:
    chunk = {"id": "", "model": "m", "choices": [{"index": 0, "delta": {"content": "a"}}]}
    last = {"id": "", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    app = Canned(chunks=sse(chunk, chunk, last, b"[DONE]"), content_type="text/event-stream")
    run(drive(wrap(app), CHAT, {"model": "m", "messages": HI, "stream": True}))
    attrs = server_span(otel).attributes
    assert "gen_ai.response.id" not in attrs
    assert attrs["llmlens.stream.chunk_count"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)


def test_openai_stream_without_usage_has_no_token_counts(wrap: Any, otel: Any) -> None:
    run(drive(wrap(Canned(scenario="chunks=3")), CHAT, {"model": "m", "messages": HI, "stream": True}))
    attrs = server_span(otel).attributes
    assert "gen_ai.usage.output_tokens" not in attrs
    assert attrs["llmlens.stream.chunk_count"] == 5
    # time per output token falls back on chunks
    assert points(otel, "gen_ai.server.time_per_output_token")[0].count == 1


def test_openai_error_event_in_a_stream_is_an_upstream_error(wrap: Any, otel: Any) -> None:
    chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "a"}}]}
    error = {"error": {"type": "server_error", "message": "upstream overloaded"}}
    app = Canned(chunks=sse(chunk, error, b"[DONE]"), content_type="text/event-stream")
    run(drive(wrap(app), CHAT, {"model": "m", "messages": HI, "stream": True}))
    span = server_span(otel)
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "upstream overloaded"
    assert span.attributes["llmlens.stream.outcome"] == "upstream_error"
    assert span.attributes["error.type"] == "server_error"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("error",)
    (duration,) = points(otel, "gen_ai.server.request.duration")
    assert duration.attributes["error.type"] == "server_error"
    assert "gen_ai.server.time_to_first_token" not in otel.metrics()  # successful responses only


def test_openai_completions_embeddings_and_responses(wrap: Any, otel: Any) -> None:
    run(drive(wrap(Canned()), "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi"}))
    run(drive(wrap(Canned()), "/v1/embeddings", {"model": "text-embedding-3-small", "input": "Hi"}))
    body = {"model": "gpt-4o", "input": "Hi", "stream": True}
    run(drive(wrap(Canned(scenario="chunks=3,reasoning=2")), "/v1/responses", body))
    completions, embeddings, responses = sorted(otel.spans(), key=lambda s: s.start_time)
    assert completions.name == "text_completion gpt-3.5-turbo-instruct"
    assert completions.attributes["gen_ai.usage.output_tokens"] > 0
    assert embeddings.name == "embeddings text-embedding-3-small"
    assert embeddings.attributes["gen_ai.usage.input_tokens"] > 0
    assert embeddings.attributes["gen_ai.embeddings.dimension.count"] > 0
    assert responses.name == "chat gpt-4o"
    assert responses.attributes["llmlens.proxy.source_format"] == "openai_responses"
    assert responses.attributes["gen_ai.usage.reasoning.output_tokens"] == 2
    assert responses.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert responses.attributes["llmlens.stream.chunk_count"] == 3


def test_responses_failed_event(wrap: Any, otel: Any) -> None:
    failed = {"type": "response.failed", "response": {"id": "r1", "model": "gpt-4o", "status": "failed",
              "error": {"code": "server_error", "message": "boom"}, "usage": None, "output": []}}  # fmt: skip
    app = Canned(chunks=sse(failed, name="response.failed"), content_type="text/event-stream")
    run(drive(wrap(app), "/v1/responses", {"model": "gpt-4o", "input": "Hi", "stream": True}))
    span = server_span(otel)
    assert span.attributes["llmlens.stream.outcome"] == "upstream_error"
    assert span.attributes["error.type"] == "server_error"
    assert span.attributes["gen_ai.response.id"] == "r1"


# --- Anthropic -------------------------------------------------------------------------------------------


def test_anthropic_messages_json_and_stream(wrap: Any, otel: Any) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": HI}
    run(drive(wrap(Canned(scenario="chunks=3,cached=5")), MESSAGES, body))
    run(drive(wrap(Canned(scenario="chunks=3,cached=5")), MESSAGES, {**body, "stream": True}))
    plain, streamed = sorted(otel.spans(), key=lambda s: s.start_time)
    for span in (plain, streamed):
        attrs = span.attributes
        assert span.name == "chat claude-haiku-4-5"
        assert attrs["gen_ai.provider.name"] == "anthropic"
        assert attrs["llmlens.proxy.source_format"] == "anthropic"
        assert attrs["gen_ai.request.max_tokens"] == 64
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 5
        assert attrs["gen_ai.usage.input_tokens"] >= 5 + 1  # cached tokens included (Anthropic excludes them)
        assert attrs["gen_ai.usage.output_tokens"] == 3
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert streamed.attributes["llmlens.stream.chunk_count"] == 3
    assert plain.attributes["gen_ai.usage.input_tokens"] == streamed.attributes["gen_ai.usage.input_tokens"]


def _anthropic_events(start_usage: dict[str, int], delta_usage: dict[str, int]) -> list[bytes]:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "type": "message",
             "role": "assistant", "content": [], "usage": start_usage}}  # fmt: skip
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": delta_usage}
    stop = {"type": "message_stop"}
    events = [("message_start", start), ("content_block_start", block), ("content_block_delta", text),
              ("content_block_delta", text), ("message_delta", delta), ("message_stop", stop)]  # fmt: skip
    # A proxy that adds an OpenAI-style [DONE] after message_stop.
    return [e for name, data in events for e in sse(data, name=name)] + [b"data: [DONE]\n\n"]


@pytest.mark.parametrize(
    ("start_usage", "delta_usage"),
    [
        ({"input_tokens": 0, "output_tokens": 0}, {"input_tokens": 12, "output_tokens": 30}),  # zeros first
        ({"input_tokens": 12, "output_tokens": 1}, {"input_tokens": 12, "output_tokens": 30}),  # cumulative
        ({"input_tokens": 12, "output_tokens": 1}, {"output_tokens": 30}),  # the real API
        ({"input_tokens": 12, "output_tokens": 1}, {"input_tokens": 0, "output_tokens": 30}),  # zero later
    ],
)
def test_anthropic_usage_keeps_the_last_non_zero_count(
    wrap: Any, otel: Any, start_usage: dict[str, int], delta_usage: dict[str, int]
) -> None:
    app = Canned(chunks=_anthropic_events(start_usage, delta_usage), content_type="text/event-stream")
    run(drive(wrap(app), MESSAGES, {"model": "claude-x", "max_tokens": 9, "messages": HI, "stream": True}))
    attrs = server_span(otel).attributes
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 30
    assert attrs["llmlens.stream.outcome"] == "completed"
    assert attrs["llmlens.stream.chunk_count"] == 2


def test_anthropic_error_event(wrap: Any, otel: Any) -> None:
    app = Canned(scenario="chunks=6,stream_error=overloaded_error")
    run(drive(wrap(app), MESSAGES, {"model": "claude-x", "max_tokens": 99, "messages": HI, "stream": True}))
    span = server_span(otel)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "overloaded_error"
    assert span.attributes["llmlens.stream.outcome"] == "upstream_error"
    assert span.attributes["llmlens.stream.chunk_count"] == 2  # partial: what came before the error


def test_anthropic_count_tokens(wrap: Any, otel: Any) -> None:
    run(drive(wrap(Canned()), "/v1/messages/count_tokens", {"model": "claude-x", "messages": HI}))
    span = server_span(otel)
    assert span.name == "count_tokens claude-x"
    assert span.attributes["anthropic.message.count_tokens.input_tokens"] > 0
    assert "gen_ai.usage.input_tokens" not in span.attributes


# --- Gemini ----------------------------------------------------------------------------------------------

GEMINI = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
          "generationConfig": {"temperature": 0.2, "maxOutputTokens": 40}}  # fmt: skip


def test_gemini_generate_and_stream(wrap: Any, otel: Any) -> None:
    path = "/v1beta/models/gemini-2.5-flash"
    run(drive(wrap(Canned(scenario="chunks=3,reasoning=2")), path + ":generateContent", GEMINI))
    run(drive(wrap(Canned(scenario="chunks=3,reasoning=2")), path + ":streamGenerateContent", GEMINI,
              query=b"alt=sse"))  # fmt: skip
    plain, streamed = sorted(otel.spans(), key=lambda s: s.start_time)
    for span in (plain, streamed):
        attrs = span.attributes
        assert span.name == "generate_content gemini-2.5-flash"
        assert attrs["gen_ai.provider.name"] == "gcp.gemini"
        assert attrs["llmlens.proxy.source_format"] == "gemini"
        assert attrs["gen_ai.request.temperature"] == 0.2
        assert attrs["gen_ai.request.max_tokens"] == 40
        assert attrs["gen_ai.usage.reasoning.output_tokens"] == 2
        assert attrs["gen_ai.usage.output_tokens"] == 3 + 2
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert streamed.attributes["gen_ai.request.stream"] is True
    assert streamed.attributes["llmlens.stream.chunk_count"] == 3


def test_gemini_json_array_stream_and_vertex_path(wrap: Any, otel: Any) -> None:
    path = "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:streamGenerateContent"
    events = fake_reply(path + "?alt=sse", GEMINI, "chunks=3").events
    assert events is not None
    items = [json.loads(e.split(b"data: ", 1)[1]) for e in events]
    array = json.dumps(items).encode()  # without alt=sse Google streams a JSON array
    app = Canned(chunks=[array[:40], array[40:90], array[90:]], content_type="application/json")
    run(drive(wrap(app), path, GEMINI))
    attrs = server_span(otel).attributes
    assert attrs["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["llmlens.stream.chunk_count"] == 3
    assert attrs["llmlens.stream.outcome"] == "completed"


# --- errors and outcomes ------------------------------------------------------------------------------


def test_error_response(wrap: Any, otel: Any) -> None:
    run(drive(wrap(Canned(scenario="status=429")), CHAT, {"model": "m", "messages": HI}))
    run(drive(wrap(Canned(scenario="status=529")), MESSAGES, {"model": "c", "max_tokens": 1, "messages": HI,
                                                               "stream": True}))  # fmt: skip
    openai_span, anthropic_span = sorted(otel.spans(), key=lambda s: s.start_time)
    assert openai_span.status.status_code == StatusCode.ERROR
    assert openai_span.attributes["http.response.status_code"] == 429
    assert openai_span.attributes["error.type"] == "rate_limit_exceeded"
    assert anthropic_span.attributes["error.type"] == "overloaded_error"
    assert anthropic_span.attributes["llmlens.stream.outcome"] == "error_response"


@pytest.mark.parametrize("raise_after", [0, 2])
def test_server_exception(wrap: Any, otel: Any, raise_after: int) -> None:
    app = Canned(scenario="chunks=5", raise_after=raise_after)
    result = run(drive(wrap(app), CHAT, {"model": "m", "messages": HI, "stream": True}, raise_errors=False))
    assert isinstance(result.error, RuntimeError)  # the app's exception goes on, unchanged
    span = server_span(otel)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["llmlens.stream.outcome"] == "server_exception"
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.events[0].name == "exception"
    assert [p.value for p in points(otel, "llmlens.server.active_requests")] == [0]


def test_exception_before_the_response_non_stream(wrap: Any, otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise ValueError("bad")

    with pytest.raises(ValueError):
        run(drive(wrap(app), CHAT, {"model": "m", "messages": HI}))
    span = server_span(otel)
    assert span.attributes["llmlens.stream.outcome"] == "server_exception"
    assert span.attributes["error.type"] == "ValueError"


def test_client_gone_send_raises(wrap: Any, otel: Any) -> None:
    app = Canned(scenario="chunks=8")
    body = {"model": "m", "messages": HI, "stream": True}
    result = run(drive(wrap(app), CHAT, body, send_fails_after=3, raise_errors=False))
    assert isinstance(result.error, OSError)
    span = server_span(otel)
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes["llmlens.stream.outcome"] == "client_disconnected"
    assert span.attributes["llmlens.stream.chunk_count"] == 3  # the chunks that went out
    assert span.attributes["gen_ai.response.finish_reasons"] == ("error",)
    assert "error.type" not in span.attributes


def test_client_disconnect_seen_by_receive(wrap: Any, otel: Any) -> None:
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def chat(request: Any) -> Any:
        await request.body()

        async def words() -> Any:
            for number in range(50):
                yield b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"w%d"}}]}\n\n' % number
                await asyncio.sleep(0.005)

        return StreamingResponse(words(), media_type="text/event-stream")

    app = Starlette(routes=[Route(CHAT, chat, methods=["POST"])])
    # ASGI 2.3 (uvicorn's): Starlette listens for http.disconnect and stops the stream.
    run(drive(wrap(app), CHAT, {"model": "m", "messages": HI, "stream": True}, disconnect_after=4,
              spec_version="2.3"))  # fmt: skip
    span = server_span(otel)
    assert span.attributes["llmlens.stream.outcome"] == "client_disconnected"
    assert span.status.status_code == StatusCode.UNSET
    assert 3 <= span.attributes["llmlens.stream.chunk_count"] < 50


# --- malformed bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"model": 5, "stream": "yes", "messages": "Hi", "temperature": "hot", "max_tokens": [1], "n": {}}',
        b'{"model": "m", "messages": [1, null, {"role": 7, "content": {"x": 1}}], "tools": "x", "stop": 5}',
        b"\x00\xff\xfe binary \x89PNG\r\n",
        b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}',  # invalid UTF-8
        b"[1, 2, 3]",
        b"",
        b"   ",
    ],
    ids=[
        "invalid json",
        "wrong types",
        "wrong nested types",
        "binary",
        "bad utf-8",
        "array",
        "empty",
        "blank",
    ],
)
@pytest.mark.parametrize("capture", [False, True])
def test_malformed_bodies_reach_the_app_unchanged(
    telemetry: Any, otel: Any, body: bytes, capture: bool
) -> None:
    settings = Settings(store=False, pricing=False, capture_content=ContentMode.SPAN_AND_EVENT if capture else
                        ContentMode.NO_CONTENT)  # fmt: skip
    tel = Telemetry(settings, otel.tracer_provider, otel.meter_provider) if capture else telemetry
    app = Canned(chunks=[b'{"id": "x", "choices": "nope", "usage": {"prompt_tokens": "many"}}'])
    result = run(drive(LLMProxyMiddleware(app, telemetry=tel, settings=settings), CHAT, body,
                       request_chunks=[body[:3], body[3:]] if len(body) > 3 else None))  # fmt: skip
    assert app.body == body
    assert result.body == b'{"id": "x", "choices": "nope", "usage": {"prompt_tokens": "many"}}'
    span = server_span(otel)
    assert span.name in ("chat", "chat m")
    assert span.status.status_code == StatusCode.OK


def test_a_huge_body_is_not_read_for_telemetry_but_passes_through(wrap: Any, otel: Any) -> None:
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode()
    pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    app = Canned(chunks=[b"{}"])
    run(drive(wrap(app, proxy_max_body=100_000), CHAT, big, request_chunks=pieces))
    assert app.body == big
    assert [m["body"] for m in app.received] == pieces  # the same messages, the same boundaries
    span = server_span(otel)
    assert span.name == "chat"  # too big to read: no model
    # a declared Content-Length over the limit is not even read ahead
    app = Canned(chunks=[b"{}"])
    run(drive(wrap(app, proxy_max_body=100_000), CHAT, big, headers=[("content-length", str(len(big)))]))
    assert app.body == big


def test_a_huge_response_is_sent_whole_and_not_kept(wrap: Any, otel: Any) -> None:
    big = json.dumps({"id": "x", "model": "m", "choices": [], "pad": "y" * 200_000}).encode()
    app = Canned(chunks=[big[:100_000], big[100_000:]])
    result = run(drive(wrap(app, proxy_max_body=50_000), CHAT, {"model": "m", "messages": HI}))
    assert result.body == big
    assert "gen_ai.response.id" not in server_span(otel).attributes


def test_compressed_responses_are_not_parsed(wrap: Any, otel: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"\x1f\x8b\x08garbage"})

    result = run(drive(wrap(app), CHAT, {"model": "m", "messages": HI}))
    assert result.body == b"\x1f\x8b\x08garbage"
    assert server_span(otel).status.status_code == StatusCode.OK


# --- byte identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_the_app_receives_and_the_client_gets_exactly_the_same_messages(
    wrap: Any, otel: Any, path: str
) -> None:
    body = {
        "model": "m",
        "max_tokens": 20,
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    raw = json.dumps(body).encode()
    plain_app, observed_app = Canned(scenario="chunks=5"), Canned(scenario="chunks=5")
    plain = run(drive(plain_app, path, raw, request_chunks=[raw[:10], raw[10:]]))
    observed = run(drive(wrap(observed_app), path, raw, request_chunks=[raw[:10], raw[10:]]))
    assert observed_app.received == plain_app.received  # same request messages, same boundaries
    assert observed.messages[1:] == observed_app.sent[1:]  # every body message as the app sent it
    assert [m.get("more_body") for m in observed.messages] == [m.get("more_body") for m in plain.messages]
    headers = dict(observed.start["headers"])
    assert headers.pop(b"x-request-id")  # the only difference
    assert list(headers.items()) == plain.start["headers"]


# --- identity and correlation ---------------------------------------------------------------------------


def test_request_id_is_honoured_made_and_returned(wrap: Any, otel: Any) -> None:
    body = {"model": "m", "messages": HI}
    given = run(drive(wrap(Canned()), CHAT, body, headers=[("x-request-id", "req-42")]))
    made = run(drive(wrap(Canned()), CHAT, body))
    bad = run(drive(wrap(Canned()), CHAT, body, headers=[("x-request-id", "has space\x01")]))
    assert given.headers[b"x-request-id"] == b"req-42"
    assert len(made.headers[b"x-request-id"]) == 32
    assert bad.headers[b"x-request-id"] != b"has space\x01"
    ids = [s.attributes["llmlens.proxy.request_id"] for s in sorted(otel.spans(), key=lambda s: s.start_time)]
    assert ids == ["req-42", made.headers[b"x-request-id"].decode(), bad.headers[b"x-request-id"].decode()]


def test_an_app_that_sets_its_own_request_id_keeps_it(wrap: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"mine")]})
        await send({"type": "http.response.body", "body": b"{}"})

    result = run(drive(wrap(app), CHAT, {"model": "m"}))
    assert result.start["headers"] == [(b"x-request-id", b"mine")]


def test_traceparent_is_continued(wrap: Any, otel: Any) -> None:
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    run(drive(wrap(Canned()), CHAT, {"model": "m", "messages": HI},
              headers=[("traceparent", f"00-{trace_id}-{parent}-01")]))  # fmt: skip
    span = server_span(otel)
    assert f"{span.context.trace_id:032x}" == trace_id
    assert f"{span.parent.span_id:016x}" == parent
    assert span.parent.is_remote


def test_api_key_is_never_stored(wrap: Any, otel: Any) -> None:
    body = {"model": "m", "messages": HI}
    run(drive(wrap(Canned()), CHAT, body, headers=[("authorization", "Bearer sk-secret-1")]))
    run(drive(wrap(Canned()), MESSAGES, body, headers=[("x-api-key", "sk-secret-1")]))
    run(drive(wrap(Canned()), CHAT, body, headers=[("authorization", "Bearer sk-secret-2")]))
    labels = [s.attributes["llmlens.api_key.label"] for s in sorted(otel.spans(), key=lambda s: s.start_time)]
    assert labels[0] == labels[1] != labels[2]
    assert all(len(label) == 12 and int(label, 16) >= 0 for label in labels)
    assert "sk-secret" not in repr([dict(s.attributes) for s in otel.spans()])
    # a configured name instead of the label
    otel.spans_exporter.clear()
    named = wrap(Canned(), proxy_api_key_names={labels[0]: "team-a"})
    run(drive(named, CHAT, body, headers=[("authorization", "Bearer sk-secret-1")]))
    assert server_span(otel).attributes["llmlens.api_key.label"] == "team-a"


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("10.0.0.1", [("x-forwarded-for", "203.0.113.5, 10.0.0.2")], "203.0.113.5"),
        (
            "10.0.0.1",
            [("x-forwarded-for", "198.51.100.1, 203.0.113.5")],
            "203.0.113.5",
        ),  # rightmost untrusted
        ("10.0.0.1", [("forwarded", 'for="[2001:db8::1]:443";proto=https, for=10.0.0.3')], "2001:db8::1"),
        ("192.0.2.9", [("x-forwarded-for", "203.0.113.5")], "192.0.2.9"),  # peer not trusted: ignored
        ("10.0.0.1", [], "10.0.0.1"),
    ],
)
def test_client_address_trusts_forwarded_headers_only_from_trusted_proxies(
    wrap: Any, otel: Any, peer: str, headers: list[tuple[str, str]], expected: str
) -> None:
    middleware = wrap(Canned(), proxy_trusted_proxies=("10.0.0.0/8",))
    run(drive(middleware, CHAT, {"model": "m", "messages": HI}, headers=headers, client=(peer, 1)))
    assert server_span(otel).attributes["client.address"] == expected


def test_log_lines_carry_the_request_and_trace_ids(wrap: Any, otel: Any, caplog: Any) -> None:
    log = logging.getLogger("tests.proxy.inprocess")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        log.warning("handling")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(2):
            log.warning("streaming")
            await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with caplog.at_level(logging.WARNING, logger="tests.proxy.inprocess"):
        run(drive(wrap(app), CHAT, {"model": "m"}, headers=[("x-request-id", "abc")]))
        log.warning("outside")
    span = server_span(otel)
    records = [r for r in caplog.records if r.name == "tests.proxy.inprocess"]
    assert [(r.getMessage(), r.request_id, r.trace_id) for r in records] == [
        ("handling", "abc", f"{span.context.trace_id:032x}"),
        ("streaming", "abc", f"{span.context.trace_id:032x}"),
        ("streaming", "abc", f"{span.context.trace_id:032x}"),
        ("outside", "", ""),
    ]


# --- content and metrics ------------------------------------------------------------------------------


def test_content_capture(otel: Any) -> None:
    settings = Settings(store=False, pricing=False, capture_content=ContentMode.SPAN_ONLY)
    tel = Telemetry(settings, otel.tracer_provider, otel.meter_provider)
    body = {"model": "m", "messages": [{"role": "system", "content": "Be brief"}, *HI], "stream": True}
    run(drive(LLMProxyMiddleware(Canned(scenario="chunks=2"), telemetry=tel, settings=settings), CHAT, body))
    attrs = server_span(otel).attributes
    # A chat's system message is part of its history: an input message, not a system instruction.
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
    ]
    assert "gen_ai.system_instructions" not in attrs
    (output,) = json.loads(attrs["gen_ai.output.messages"])
    assert output["parts"][0]["type"] == "text" and output["finish_reason"] == "stop"


def test_active_requests_counts_a_stream_until_its_last_byte(wrap: Any, otel: Any) -> None:
    gate = asyncio.Event()
    values = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        task = asyncio.ensure_future(drive(wrap(app), CHAT, {"model": "m", "stream": True}))
        await asyncio.sleep(0.01)
        values.append([p.value for p in points(otel, "llmlens.server.active_requests")])
        gate.set()
        await task
        values.append([p.value for p in points(otel, "llmlens.server.active_requests")])

    run(main())
    assert values == [[1], [0]]
    assert points(otel, "llmlens.server.active_requests")[0].attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.stream": True,
    }  # fmt: skip


def test_the_app_can_name_its_upstream(wrap: Any, otel: Any) -> None:
    from llmlens.core.context import proxy_request

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        request = proxy_request()  # the request the middleware is recording
        request.set_upstream(provider="anthropic", model="claude-haiku-4-5", format="anthropic")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    run(drive(wrap(app), CHAT, {"model": "gpt-4o-mini", "messages": HI}))
    attrs = server_span(otel).attributes
    assert attrs["llmlens.proxy.upstream.provider"] == "anthropic" == attrs["gen_ai.provider.name"]
    assert attrs["llmlens.proxy.upstream.model"] == "claude-haiku-4-5"
    assert attrs["llmlens.proxy.target_format"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"


@pytest.mark.parametrize("capture", [False, True])  # (without capture most chunks skip decoding)
def test_streams_with_choices_and_tool_calls(otel: Any, capture: bool) -> None:
    mode = ContentMode.SPAN_ONLY if capture else ContentMode.NO_CONTENT
    settings = Settings(store=False, pricing=False, capture_content=mode)
    tel = Telemetry(settings, otel.tracer_provider, otel.meter_provider)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    body = {"model": "m", "messages": HI, "stream": True, "n": 2, "tools": tools,
            "stream_options": {"include_usage": True}}  # fmt: skip
    run(drive(LLMProxyMiddleware(Canned(scenario="tool"), telemetry=tel, settings=settings), CHAT, body))
    attrs = server_span(otel).attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_call", "tool_call")
    assert attrs["llmlens.response.tool_call_count"] == 2
    assert attrs["gen_ai.usage.output_tokens"] > 0
    plain = run(
        drive(Canned(scenario="chunks=5"), CHAT, {"model": "m", "messages": HI, "stream": True, "n": 2})
    )
    otel.spans_exporter.clear()
    app = Canned(chunks=[plain.body], content_type="text/event-stream")
    run(
        drive(LLMProxyMiddleware(app, telemetry=tel, settings=settings), CHAT, {"model": "m", "stream": True})
    )
    attrs = server_span(otel).attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("stop", "stop")


def test_an_httpx_upstream_call_is_a_child(wrap: Any, otel: Any, fake: Any) -> None:
    """A proxy that calls upstream with raw httpx (contrib httpx instrumentation on): its CLIENT span is a
    child of ours, and the upstream sees our trace in its traceparent."""
    import httpx
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        async with httpx.AsyncClient() as client:
            upstream = await client.post(fake.base_url + "/chat/completions", content=body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": upstream.content})

    HTTPXClientInstrumentor().instrument(tracer_provider=otel.tracer_provider)
    try:
        run(drive(wrap(app), CHAT, {"model": "gpt-4o-mini", "messages": HI}))
    finally:
        HTTPXClientInstrumentor().uninstrument()
    server = server_span(otel)
    (client,) = [s for s in otel.spans() if s.kind == SpanKind.CLIENT]
    assert client.parent.span_id == server.context.span_id
    assert server.attributes["gen_ai.usage.output_tokens"] > 0
    traceparent = fake.requests[-1].headers.get("traceparent", "")
    assert f"{server.context.trace_id:032x}" in traceparent


# --- settings from the environment --------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [("LLMLENS_HEALTH_WINDOW_S", "abc"), ("LLMLENS_STORE_MAX_SUCCESS", "abc"), ("LLMLENS_PROVIDERS", "nope")],
)
def test_a_bad_variable_never_fails_the_proxied_request(
    telemetry: Telemetry, otel: Any, monkeypatch: Any, caplog: Any, variable: str, value: str
) -> None:
    # A middleware without settings of its own reads them from the environment (as a standalone
    # proxy does): a store or health variable is not its business, a bad instrumentation one is
    # one error line and the defaults. The request goes through and is recorded either way.
    monkeypatch.setenv(variable, value)
    middleware = LLMProxyMiddleware(Canned(scenario="chunks=2"), telemetry=telemetry)
    with caplog.at_level("ERROR", logger="llmlens"):
        result = run(drive(middleware, CHAT, {"model": "m", "messages": HI}))
    assert result.error is None and result.start["status"] == 200
    assert server_span(otel).name == "chat m"
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    expected = 1 if variable == "LLMLENS_PROVIDERS" else 0  # only instrumentation's own variables count
    assert len(errors) == expected and all(variable in e for e in errors)


# --- the chat stream fast path ---------------------------------------------------------------------

_PLAIN_CHUNK = {
    "id": "c1", "object": "chat.completion.chunk", "model": "m", "usage": None,
    "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": None, "finish_reason": None}],
}  # fmt: skip


def _with_choice(**changes: Any) -> dict[str, Any]:
    return {**_PLAIN_CHUNK, "choices": [{**_PLAIN_CHUNK["choices"][0], **changes}]}


@pytest.mark.parametrize(
    "chunk",
    [
        _with_choice(delta={"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
        _with_choice(delta={"refusal": "no"}),
        _with_choice(finish_reason="stop"),
        {**_PLAIN_CHUNK, "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
        {**_PLAIN_CHUNK, "error": {"message": "overloaded"}},
        {**_PLAIN_CHUNK, "choices": [_PLAIN_CHUNK["choices"][0], _with_choice(index=1)["choices"][0]]},
        {**_PLAIN_CHUNK, "choices": []},
    ],
    ids=["tool call", "refusal", "finish reason", "usage", "error", "two choices", "no choice"],
)
def test_the_chat_fast_path_leaves_every_chunk_the_accumulator_needs_to_it(chunk: dict[str, Any]) -> None:
    from types import SimpleNamespace

    from llmlens.providers.openai import ChatCompletionsRoute
    from llmlens.proxy.formats import OpenAIFormat

    inv = SimpleNamespace(chunk_times=[1])  # a first chunk was seen
    fast = OpenAIFormat(ChatCompletionsRoute(Settings())).fast_path(inv)  # type: ignore[arg-type]
    assert fast is not None
    # Content that merely mentions those names (quotes escaped in JSON) is still a plain delta.
    compact = {"separators": (",", ":")}  # as OpenAI sends them; any other spacing takes the slow path
    names = '"tool_calls" "refusal" "error" "usage":{ "finish_reason":1'
    mention = json.dumps(_with_choice(delta={"content": names}), **compact)
    assert fast(b"", mention.encode()) is True
    assert fast(b"", json.dumps(chunk).encode()) is False
    assert fast(b"", json.dumps(chunk, **compact).encode()) is False
    assert len(inv.chunk_times) == 2  # only the plain delta was timed


# --- the JSON reader: json.loads' values and exceptions, decoder made once ----------------------------

_JSON_INPUTS = [
    b'{"a": [1, 2.5, "x", null, true]}', b"[1, 2]", b' {"a": 1}', b'{"a": 1} ', b'{"a": 1}\n', b"{}",
    b'{"a": 1} {"b": 2}', b'{"a": ', b"", b"[", b"{\x00", b'"text"', b"12", b"null",
    '{"a": "é"}'.encode(), '{"a": "é"}'.encode("utf-16"), '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-32"), '{"a": "é"}'.encode("utf-8-sig"), b'{"a": "\xff"}', b'{"a": "\xed\xa0\x80"}',
    b'{"a": "\\ud800"}', '{"a": 1}', '\ufeff{"a": 1}', b'{"a": NaN}', b'{"a": 1e999}',
]  # fmt: skip


@pytest.mark.parametrize("data", _JSON_INPUTS, ids=range(len(_JSON_INPUTS)))
def test_the_json_reader_gives_what_json_loads_gives(data: bytes | str) -> None:
    from llmlens.proxy.formats import JSONObject, json_reader

    def outcome(read: Any) -> Any:
        try:
            value = read(data)
        except Exception as error:  # the same exception type and message
            return type(error), str(error)
        return type(value), value

    for hooks in ({}, {"object_hook": JSONObject}, {"object_pairs_hook": lambda pairs: pairs}):
        expected = outcome(lambda d: json.loads(d, **hooks))  # noqa: B023
        assert outcome(json_reader(**hooks)) == expected, hooks


def test_the_anthropic_fast_path_skips_only_events_with_nothing_to_read() -> None:
    from types import SimpleNamespace

    from llmlens.providers.anthropic import MessagesRoute
    from llmlens.proxy.formats import AnthropicFormat

    inv = SimpleNamespace(chunk_times=[])
    fast = AnthropicFormat(MessagesRoute(Settings())).fast_path(inv)  # type: ignore[arg-type]
    assert fast is not None
    delta = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}'
    assert fast(b"content_block_delta", delta) is True
    for name in (b"ping", b"content_block_stop", b"message_stop"):
        assert fast(name, b'{"type":"' + name + b'"}') is True
    assert len(inv.chunk_times) == 1  # only the delta is a chunk
    for name, data in (
        (b"message_start", b'{"type":"message_start","message":{"usage":{"input_tokens":1}}}'),
        (b"content_block_start", b'{"type":"content_block_start","content_block":{"type":"tool_use"}}'),
        (b"message_delta", b'{"type":"message_delta","usage":{"output_tokens":2}}'),
        (b"error", b'{"type":"error","error":{"type":"overloaded_error"}}'),
        (b"ping", b'{"type":"ping","error":{"type":"overloaded_error"}}'),
        (b"content_block_delta", b'{"type":"content_block_delta","error":{"type":"x"}}'),
    ):
        assert fast(name, data) is False, name
