"""llm-rosetta's gateway (the real `llm-rosetta` package, its own asyncio HTTP server) in front of the fake
provider: instrumented by `Instrumentor().instrument()` alone. It translates OpenAI chat to Anthropic
Messages (`gpt-4o-mini` is routed to `claude-haiku-4-5`) and passes Anthropic Messages through."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import llm_rosetta  # noqa: F401  (a dev dependency: missing, the module fails to import, never skips)
from opentelemetry.trace import SpanKind, StatusCode

from llmlens.demo.fake_server import FakeProvider

HI = [{"role": "user", "content": "Hi"}]


def run_gateway(fake: FakeProvider, tmp_path: Path, calls: Any) -> Any:
    """Start the gateway on 127.0.0.1 (in this thread's loop: it installs signal handlers), run `calls`."""
    from llm_rosetta.gateway.app import create_app
    from llm_rosetta.gateway.config import GatewayConfig

    root = fake.base_url.rsplit("/v1", 1)[0]
    config = GatewayConfig({
        "providers": {"anthropic": {"api_key": "sk-ant-upstream", "base_url": root},
                      "openai": {"api_key": "sk-upstream", "base_url": fake.base_url}},
        "models": {"gpt-4o-mini": {"provider": "anthropic", "upstream_model": "claude-haiku-4-5"},
                   "gpt-4o": "openai", "claude-sonnet-4-5": "anthropic"},
        "server": {"data_dir": str(tmp_path), "open_on_no_keys": True},
    })  # fmt: skip

    async def main() -> Any:
        app = create_app(config, config_path=str(tmp_path / "config.jsonc"))
        server = asyncio.create_task(app._serve("127.0.0.1", 0))
        while not getattr(app, "port", None):
            await asyncio.sleep(0.005)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.port}") as client:
                return await calls(client)
        finally:
            app._shutdown_event.set()
            await server

    return asyncio.run(main())


def servers(otel: Any) -> list[Any]:
    return sorted((s for s in otel.spans() if s.kind == SpanKind.SERVER), key=lambda s: s.start_time)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_rosetta_gateway(instrumented: Any, otel: Any, fake: FakeProvider, tmp_path: Path) -> None:
    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        chat = {"model": "gpt-4o-mini", "messages": HI, "stream": True}
        streamed = await client.post("/v1/chat/completions", json=chat, headers={"x-request-id": "ros-1"})
        messages = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": HI}
        plain = await client.post(
            "/v1/messages", json=messages, headers={"authorization": "Bearer sk-client"}
        )
        unknown = await client.post("/v1/chat/completions", json={"model": "nope", "messages": HI})
        return [streamed, plain, unknown]

    lines = Lines()
    gateway_log = logging.getLogger("llm-rosetta-gateway")  # (it does not propagate to the root logger)
    gateway_log.addHandler(lines)
    try:
        streamed, plain, unknown = run_gateway(fake, tmp_path, calls)
    finally:
        gateway_log.removeHandler(lines)
    assert streamed.status_code == plain.status_code == 200 and unknown.status_code == 404
    assert streamed.headers["x-request-id"] == "ros-1"
    chat_span, messages_span, unknown_span = servers(otel)

    attrs = chat_span.attributes
    assert chat_span.name == "chat gpt-4o-mini"
    assert attrs["llmlens.proxy.request_id"] == "ros-1"
    assert attrs["llmlens.proxy.source_format"] == "openai"
    assert attrs["llmlens.proxy.target_format"] == "anthropic"
    assert attrs["llmlens.proxy.upstream.model"] == "claude-haiku-4-5"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["llmlens.stream.outcome"] == "completed"
    assert attrs["llmlens.stream.chunk_count"] == 9  # 8 words and the finish chunk
    assert attrs["client.address"] == "127.0.0.1"
    # ended with the stream (after the handler returned), and the gateway's own log lines carry our ids
    records = [r for r in lines.records if "ros-1" in r.getMessage()]
    assert records and all(r.request_id == "ros-1" for r in records)
    assert all(r.trace_id == f"{chat_span.context.trace_id:032x}" for r in records)

    attrs = messages_span.attributes
    assert messages_span.name == "chat claude-sonnet-4-5"
    assert attrs["llmlens.proxy.source_format"] == "anthropic"
    assert attrs["llmlens.proxy.target_format"] == "anthropic"
    assert attrs["gen_ai.usage.output_tokens"] == json.loads(plain.content)["usage"]["output_tokens"]
    assert len(attrs["llmlens.api_key.label"]) == 12
    assert messages_span.status.status_code == StatusCode.OK

    assert unknown_span.status.status_code == StatusCode.ERROR
    assert unknown_span.attributes["http.response.status_code"] == 404


def test_uninstrument_restores_the_gateway(
    instrumented: Any, otel: Any, fake: FakeProvider, tmp_path: Path
) -> None:
    import llm_rosetta.gateway.app as gateway

    assert hasattr(gateway._proxy_handler, "_llmlens_original")
    instrumented.uninstrument()
    assert not hasattr(gateway._proxy_handler, "_llmlens_original")

    async def calls(client: httpx.AsyncClient) -> int:
        body = {"model": "gpt-4o", "messages": HI}
        return (await client.post("/v1/chat/completions", json=body)).status_code

    assert run_gateway(fake, tmp_path, calls) == 200
    assert servers(otel) == []
