"""`llmlens.llm_request(...)` and `llmlens.traced_operation(...)`: the proxy record for servers that are not
ASGI, as a context manager, a decorator and a stream wrapper, and wired into a plain asyncio server.

The exit paths of `wrap_stream()`/`wrap_async_stream()` (read to the end, closed early, dropped read or
unread, an exception, an error event, cancellation) are in the stream contract suite
(tests/test_stream_contract.py, the `proxy*` adapters of tests/stream_adapters.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import llmlens
from llmlens.core.telemetry import Telemetry
from llmlens.demo.fake_server import FakeProvider
from llmlens.proxy.context import current_llm_request
from llmlens.settings import Settings
from proxies.asgi_apps import fake_reply

HI = [{"role": "user", "content": "Hi"}]
CHAT_BODY = {
    "model": "gpt-4o-mini",
    "messages": HI,
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.fixture
def telemetry(otel: Any) -> Telemetry:
    return Telemetry(Settings(store=False, pricing=False, proxy_key_secret="s"), otel.tracer_provider,
                     otel.meter_provider)  # fmt: skip


def servers(otel: Any) -> list[Any]:
    return [s for s in otel.spans() if s.kind == SpanKind.SERVER]


def test_a_json_request(telemetry: Any, otel: Any) -> None:
    body = {"model": "gpt-4o-mini", "messages": HI}
    response = fake_reply("/v1/chat/completions", body, "chunks=3").body
    headers = {"Authorization": "Bearer sk-1", "X-Request-Id": "r-1", "User-Agent": "ua"}
    with llmlens.llm_request(source_format="openai", body=json.dumps(body), headers=headers, peer="10.1.1.1",
                             telemetry=telemetry) as request:  # fmt: skip
        assert current_llm_request() is request
        assert request.request_id == "r-1"
        request.set_response(response)
    assert current_llm_request() is None
    (span,) = servers(otel)
    attrs = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert span.status.status_code == StatusCode.OK
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["llmlens.proxy.request_id"] == "r-1"
    assert attrs["client.address"] == "10.1.1.1"
    assert len(attrs["llmlens.api_key.label"]) == 12
    assert attrs["llmlens.proxy.source_format"] == "openai"
    assert [p.count for p in otel.metrics()["gen_ai.server.request.duration"]] == [1]


def test_fields_without_a_format(telemetry: Any, otel: Any) -> None:
    upstream = {"upstream_provider": "openai", "upstream_model": "gpt-4o", "target_format": "openai"}
    with llmlens.llm_request(
        "chat", model="my-model", provider="vllm", telemetry=telemetry, **upstream
    ) as request:
        request.set_response(model="my-model-v2", response_id="x1", finish_reasons=["stop"])
        request.set_usage(input_tokens=10, output_tokens=4, cache_read_tokens=2)
    attrs = servers(otel)[0].attributes
    assert attrs["gen_ai.request.model"] == "my-model"
    assert attrs["gen_ai.response.model"] == "my-model-v2"
    assert attrs["gen_ai.usage.input_tokens"] == 10
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2
    assert attrs["llmlens.proxy.upstream.model"] == "gpt-4o"
    assert attrs["gen_ai.provider.name"] == "openai"


def test_an_exception_is_a_server_exception(telemetry: Any, otel: Any) -> None:
    with pytest.raises(KeyError), llmlens.llm_request(source_format="openai", telemetry=telemetry):
        raise KeyError("x")
    (span,) = servers(otel)
    assert span.attributes["llmlens.stream.outcome"] == "server_exception"
    assert span.status.status_code == StatusCode.ERROR


def test_decorators_and_traced_operation(telemetry: Any, otel: Any, instrument: Any) -> None:
    instrument()  # llm_request and traced_operation use the Instrumentor's telemetry

    @llmlens.llm_request(source_format="openai")
    async def handler(body: dict[str, Any]) -> AsyncIterator[bytes]:
        async with llmlens.traced_operation("convert.request", direction="in"):
            await asyncio.sleep(0)
        return stream(current_llm_request())

    async def stream(request: Any) -> AsyncIterator[bytes]:
        assert current_llm_request() is request  # the request's context while the stream runs
        yield b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
        yield b"data: [DONE]\n\n"

    @llmlens.traced_operation("convert.response")
    def convert(value: int) -> int:
        return value + 1

    @llmlens.llm_request(source_format="openai", model="sync-model")
    def sync_handler() -> dict[str, Any]:
        assert convert(1) == 2
        return {"id": "c2", "model": "sync-model", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "ok"}}]}  # fmt: skip

    async def main() -> None:
        async for _ in await handler({"model": "m"}):
            pass

    asyncio.run(main())
    sync_handler()
    streamed, plain = sorted(servers(otel), key=lambda s: s.start_time)
    assert streamed.attributes["llmlens.stream.outcome"] == "completed"
    assert plain.attributes["gen_ai.response.id"] == "c2"
    phases = {s.name: s for s in otel.spans() if s.kind == SpanKind.INTERNAL}
    assert phases["convert.request"].parent.span_id == streamed.context.span_id
    assert phases["convert.request"].attributes["direction"] == "in"
    assert phases["convert.response"].parent.span_id == plain.context.span_id


def test_traced_operation_records_an_error(instrumented: Any, otel: Any) -> None:
    with pytest.raises(ValueError), llmlens.traced_operation("upstream.connect"):
        raise ValueError("refused")
    (span,) = otel.spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.events[0].name == "exception"


def test_a_plain_asyncio_server(instrumented: Any, otel: Any, fake: FakeProvider, caplog: Any) -> None:
    from proxies.asyncio_proxy import serve

    async def main() -> tuple[bytes, str]:
        server = await serve(fake.base_url)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient() as client:
            headers = {"x-request-id": "plain-1", "x-fake-scenario": "chunks=3"}
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            response = await client.post(url, json=CHAT_BODY, headers=headers)
            return response.content, response.headers["x-request-id"]

    with caplog.at_level(logging.INFO, logger="tests.proxy"):
        content, request_id = asyncio.run(main())
    assert request_id == "plain-1"
    assert content.endswith(b"data: [DONE]\n\n")
    (server,) = servers(otel)
    spans = [s for s in otel.spans() if s.context.trace_id == server.context.trace_id]
    (upstream,) = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert upstream.parent.span_id == server.context.span_id
    assert upstream.attributes["llmlens.upstream"] is True
    assert {s.name for s in spans if s.kind == SpanKind.INTERNAL} == {"convert.request"}
    attrs = server.attributes
    assert attrs["llmlens.stream.outcome"] == "completed"
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["llmlens.proxy.upstream.model"] == "gpt-4o-mini"
    assert attrs["client.address"] == "127.0.0.1"
    assert server.end_time >= upstream.end_time  # ended with the stream, after the upstream leg
    records = [r for r in caplog.records if r.name == "tests.proxy"]
    assert records and all(r.request_id == "plain-1" for r in records)
    assert all(r.trace_id == f"{server.context.trace_id:032x}" for r in records)


def test_a_record_that_cannot_start_never_breaks_the_request(
    telemetry: Any, otel: Any, monkeypatch: Any, caplog: Any
) -> None:
    # Telemetry failing at the start (here: the server side refuses to start the span) leaves the
    # handler's own work and result untouched: the request goes on unrecorded, with a debug line.
    from llmlens.core.server_telemetry import ServerTelemetry

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("telemetry is broken")

    monkeypatch.setattr(ServerTelemetry, "start_request", refuse)
    with (
        caplog.at_level(logging.DEBUG, logger="llmlens"),
        llmlens.llm_request(
            source_format="openai", body={"model": "m", "messages": HI}, telemetry=telemetry
        ) as request,
    ):
        request.set_response({"id": "x", "model": "m", "choices": []})
        chunks = list(request.wrap_stream(iter([b"data: {}\n\n", b"data: [DONE]\n\n"])))
    assert chunks == [b"data: {}\n\n", b"data: [DONE]\n\n"]
    assert servers(otel) == []
    assert "starting an LLM request record failed" in caplog.text
