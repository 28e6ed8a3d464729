"""Real proxies under uvicorn on 127.0.0.1, in front of the fake provider, driven by real clients.

The proxies (tests/proxies/) are plain FastAPI apps: they get the middleware from
`Instrumentor().instrument()` (zero code), and call upstream with the openai or anthropic SDK, which
llmlens instruments too. One proxied request must give one SERVER span with its upstream CLIENT span
as a child, client metrics counted once (by the server side), responses byte for byte what the
application sent, correct ids on every log line under concurrency, and the right outcome when the
client goes away mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llmlens.demo.fake_server import FakeProvider
from proxies import openai_proxy, translating_proxy
from proxies.server import UvicornServer

HI = [{"role": "user", "content": "Hi"}]


def root(fake: FakeProvider) -> str:
    return fake.base_url.rsplit("/v1", 1)[0]


# The two proxies: OpenAI passthrough (openai SDK upstream) and OpenAI -> Anthropic (anthropic SDK).
# Log lines each writes per request with scenario chunks=4: passthrough: the request, 6 chunks (role,
# 4 words, finish), done; translating: the request, message_start, 4 deltas, message_delta.
PROXIES = {
    "passthrough": (lambda fake, sent=None: openai_proxy.create_app(fake.base_url, sent), 8),
    "translating": (lambda fake, sent=None: translating_proxy.create_app(root(fake), sent), 7),
}


def server_spans(otel: Any) -> list[Any]:
    return [s for s in otel.spans() if s.kind == SpanKind.SERVER]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def one_trace(otel: Any, server: Any) -> list[Any]:
    return [s for s in otel.spans() if s.context.trace_id == server.context.trace_id]


class Lines(logging.Handler):
    """Collects the records of the `tests.proxy` logger (the proxies' own log lines)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:  # (Handler.handle holds the handler's lock)
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("tests.proxy")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_one_request_one_record(instrumented: Any, otel: Any, fake: FakeProvider) -> None:
    sent: dict[str, list[bytes]] = {}
    with UvicornServer(openai_proxy.create_app(fake.base_url, sent)) as proxy:
        body = {
            "model": "gpt-4o-mini",
            "messages": HI,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with httpx.Client() as client:
            response = client.post(proxy.url + "/v1/chat/completions", json=body,
                                   headers={"x-test-id": "a", "x-fake-scenario": "chunks=5"})  # fmt: skip
        wait_for(lambda: server_spans(otel))
    (server,) = server_spans(otel)
    spans = one_trace(otel, server)
    upstream = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(upstream) == 1
    (leg,) = upstream
    assert leg.parent.span_id == server.context.span_id
    assert leg.attributes["llmlens.upstream"] is True
    assert server.name == "chat gpt-4o-mini"
    attrs = server.attributes
    assert attrs["llmlens.stream.outcome"] == "completed"
    assert attrs["gen_ai.usage.output_tokens"] == 5 == leg.attributes["gen_ai.usage.output_tokens"]
    assert attrs["llmlens.proxy.upstream.model"] == "gpt-4o-mini"
    assert attrs["llmlens.proxy.target_format"] == "openai"
    assert attrs["http.route"] == "/v1/chat/completions"
    assert response.content == b"".join(sent["a"])
    assert response.headers["x-request-id"] == attrs["llmlens.proxy.request_id"]
    metrics = otel.metrics()
    assert "gen_ai.client.operation.duration" not in metrics  # the upstream leg records no client metric
    assert [p.count for p in metrics["gen_ai.server.request.duration"]] == [1]
    assert sorted(p.sum for p in metrics["gen_ai.client.token.usage"]) == sorted(
        [attrs["gen_ai.usage.input_tokens"], 5]
    )  # tokens: once
    # The local store: one request row (the SERVER span), the upstream leg in the spans table.
    from llmlens.store.attach import attached_store

    store = attached_store(otel.tracer_provider)
    assert store is not None and store.force_flush(5000)
    trace_id = f"{server.context.trace_id:032x}"
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute(
            "SELECT span_kind, source_format, target_format, client_ip, stream_outcome FROM requests "
            "WHERE trace_id = ?", (trace_id,),
        ).fetchall()  # fmt: skip
        legs = conn.execute("SELECT kind FROM spans WHERE trace_id = ?", (trace_id,)).fetchall()
    assert rows == [("server", "openai", "openai", "127.0.0.1", "completed")]
    assert ("client",) in legs


@pytest.mark.parametrize("kind", list(PROXIES))
def test_responses_are_byte_identical_with_and_without_llmlens(
    instrument: Any, otel: Any, fake: FakeProvider, kind: str
) -> None:
    bodies = {
        "json": {"model": "gpt-4o-mini", "messages": HI},
        "stream": {
            "model": "gpt-4o-mini",
            "messages": HI,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        "error": {"model": "fake-error-429", "messages": HI},
    }

    def exchange(label: str) -> dict[str, tuple[int, dict[str, str], bytes, bytes]]:
        sent: dict[str, list[bytes]] = {}
        results = {}
        with UvicornServer(PROXIES[kind][0](fake, sent)) as proxy, httpx.Client() as client:
            for name, body in bodies.items():
                test_id = f"{label}-{name}"
                headers = {"x-test-id": test_id, "x-request-id": "fixed"}
                url = proxy.url + "/v1/chat/completions"
                with client.stream("POST", url, json=body, headers=headers) as response:
                    raw = b"".join(response.iter_raw())
                headers = {k: v for k, v in response.headers.items() if k not in ("date",)}
                results[name] = (response.status_code, headers, raw, b"".join(sent[test_id]))
        return results

    plain = exchange("plain")
    instrument()
    observed = exchange("observed")
    assert len(server_spans(otel)) == 3
    for name in bodies:
        status, headers, raw, sent = observed[name]
        assert raw == sent, name  # exactly what the application sent
        assert plain[name][2] == plain[name][3]
        plain_status, plain_headers, _, _ = plain[name]
        assert status == plain_status
        # The same headers: the inbound x-request-id is echoed only where the app did not set one.
        assert {k: v for k, v in headers.items() if k != "x-request-id"} == {
            k: v for k, v in plain_headers.items() if k != "x-request-id"
        }
        assert headers["x-request-id"] == "fixed"


@pytest.mark.parametrize("kind", list(PROXIES))
def test_client_disconnects_mid_stream(instrumented: Any, otel: Any, fake: FakeProvider, kind: str) -> None:
    with UvicornServer(PROXIES[kind][0](fake)) as proxy, httpx.Client() as client:
        body = {"model": "gpt-4o-mini", "messages": HI, "stream": True}
        headers = {"x-fake-scenario": "chunks=200,chunk_delay_ms=10"}
        with client.stream(
            "POST", proxy.url + "/v1/chat/completions", json=body, headers=headers
        ) as response:
            received = 0
            for piece in response.iter_raw():
                received += piece.count(b"data: ")
                if received >= 3:
                    break  # leaving the block closes the connection
        wait_for(lambda: server_spans(otel))
    (server,) = server_spans(otel)
    assert server.attributes["llmlens.stream.outcome"] == "client_disconnected"
    assert server.status.status_code == StatusCode.UNSET
    assert 3 <= server.attributes["llmlens.stream.chunk_count"] < 200
    assert server.attributes["gen_ai.response.finish_reasons"] == ("error",)


def test_server_exception(instrumented: Any, otel: Any, fake: FakeProvider) -> None:
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy, httpx.Client() as client:
        response = client.post(proxy.url + "/v1/chat/completions", json={"model": "raise", "messages": HI})
        wait_for(lambda: server_spans(otel))
    assert response.status_code == 500
    (server,) = server_spans(otel)
    assert server.attributes["llmlens.stream.outcome"] == "server_exception"
    assert server.attributes["error.type"] == "RuntimeError"
    assert server.status.status_code == StatusCode.ERROR


def test_traceparent_continues_through_the_proxy(instrumented: Any, otel: Any, fake: FakeProvider) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy, httpx.Client() as client:
        client.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                    headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})  # fmt: skip
        wait_for(lambda: server_spans(otel))
    (server,) = server_spans(otel)
    assert f"{server.context.trace_id:032x}" == trace_id
    assert [s.kind for s in one_trace(otel, server)].count(SpanKind.CLIENT) == 1


@pytest.mark.parametrize("kind", list(PROXIES))
def test_100_concurrent_streams_log_lines_carry_their_own_ids(
    instrumented: Any, otel: Any, fake: FakeProvider, lines: Lines, kind: str
) -> None:
    count = 100
    make, per_request = PROXIES[kind]
    with UvicornServer(make(fake)) as proxy:

        async def one(client: openai.AsyncOpenAI, number: int) -> tuple[str, str]:
            request_id = f"req-{number:03d}"
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=HI, stream=True,
                extra_headers={"x-request-id": request_id, "x-test-id": request_id,
                               "x-fake-scenario": "chunks=4,chunk_delay_ms=5"},
            )  # fmt: skip
            stream = raw.parse()
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text
            return request_id, raw.headers["x-request-id"]

        async def main() -> list[tuple[str, str]]:
            async with openai.AsyncOpenAI(
                base_url=proxy.url + "/v1", api_key="sk-client", max_retries=0
            ) as client:
                return await asyncio.gather(*(one(client, n) for n in range(count)))

        echoed = asyncio.run(main())
        wait_for(lambda: len(server_spans(otel)) == count)
    assert all(sent == got for sent, got in echoed)
    traces = {
        s.attributes["llmlens.proxy.request_id"]: f"{s.context.trace_id:032x}" for s in server_spans(otel)
    }
    assert len(traces) == count and len(set(traces.values())) == count
    records = [r for r in lines.records if r.getMessage().startswith("request req-")]
    assert len(records) == count * per_request
    for record in records:
        request_id = record.getMessage().split()[1].rstrip(":")
        assert record.request_id == request_id
        assert record.trace_id == traces[request_id]
    assert all(s.attributes["llmlens.stream.outcome"] == "completed" for s in server_spans(otel))


def test_translating_proxy(instrumented: Any, otel: Any, fake: FakeProvider) -> None:
    sent: dict[str, list[bytes]] = {}
    with UvicornServer(translating_proxy.create_app(root(fake), sent)) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-client", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True},
            extra_headers={"x-test-id": "t", "x-fake-scenario": "chunks=6,cached=3"},
        )  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        plain = client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, extra_headers={"x-test-id": "u"}
        )
        wait_for(lambda: len(server_spans(otel)) == 2)
    assert text.split() and plain.model == "gpt-4o-mini"
    for server in server_spans(otel):
        attrs = server.attributes
        assert server.name == "chat gpt-4o-mini"
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini"  # what the client asked for
        assert attrs["gen_ai.response.model"] == "gpt-4o-mini"  # what the proxy answered
        assert attrs["llmlens.proxy.upstream.model"] == "claude-haiku-4-5"  # what it asked upstream
        assert attrs["llmlens.proxy.upstream.provider"] == "anthropic"
        assert attrs["gen_ai.provider.name"] == "anthropic"
        assert attrs["llmlens.proxy.source_format"] == "openai"
        assert attrs["llmlens.proxy.target_format"] == "anthropic"
        (leg,) = [s for s in one_trace(otel, server) if s.kind == SpanKind.CLIENT]
        assert leg.name == "chat claude-haiku-4-5"
        assert leg.parent.span_id == server.context.span_id
        assert leg.attributes["llmlens.upstream"] is True
        # priced by what the upstream leg really used (anthropic prices), counted once
        assert attrs.get("gen_ai.usage.cost.amount") == leg.attributes.get("gen_ai.usage.cost.amount")
    streamed = next(s for s in server_spans(otel) if s.attributes.get("gen_ai.request.stream"))
    assert streamed.attributes["llmlens.stream.outcome"] == "completed"
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 6
    # client metrics: only the test's own openai calls, never the proxy's anthropic leg
    client_points = otel.metrics()["gen_ai.client.operation.duration"]
    assert {p.attributes["gen_ai.provider.name"] for p in client_points} == {"openai_compatible"}


def test_translating_proxy_usage_from_the_upstream_leg_and_error_events(
    instrumented: Any, otel: Any, fake: FakeProvider
) -> None:
    with UvicornServer(translating_proxy.create_app(root(fake))) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-client", max_retries=0)
        # no include_usage: the response to the client has no usage; the upstream leg's counts are used
        list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True,
                                            extra_headers={"x-fake-scenario": "chunks=4"}))  # fmt: skip
        wait_for(lambda: len(server_spans(otel)) == 1)
        (server,) = server_spans(otel)
        assert server.attributes["gen_ai.usage.output_tokens"] == 4
        otel.spans_exporter.clear()
        with httpx.Client() as raw:
            raw.post(proxy.url + "/v1/chat/completions",
                     json={"model": "gpt-4o-mini", "messages": HI, "stream": True},
                     headers={"x-fake-scenario": "chunks=6,stream_error=overloaded_error"})  # fmt: skip
        wait_for(lambda: len(server_spans(otel)) == 1)
    (server,) = server_spans(otel)
    assert server.attributes["llmlens.stream.outcome"] == "upstream_error"
    assert server.attributes["error.type"] == "overloaded_error"
    assert server.status.status_code == StatusCode.ERROR
