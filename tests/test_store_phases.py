"""Phase timings of proxied requests in `llmlens show`: real proxies on 127.0.0.1 in front of the fake
provider, recorded into a real SQLite file, read back through the `llmlens` command.

No durations are hard-coded: the checks are the relations the phases must keep with each other and
with the request's own duration.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.trace import SpanKind

from llmlens.cli import main as llmlens_main
from llmlens.demo.fake_server import FakeProvider
from llmlens.store.attach import attached_store
from proxies import asyncio_proxy, openai_proxy, translating_proxy
from proxies.server import UvicornServer
from test_proxy_rosetta import run_gateway

HI = [{"role": "user", "content": "Hi"}]
JSON_BODY = {"model": "gpt-4o-mini", "messages": HI}
STREAM_BODY = {"model": "gpt-4o-mini", "messages": HI, "stream": True}
# The fake provider waits before its headers and between chunks, so every phase has some length.
SLOW = {"x-fake-scenario": "chunks=5,delay_ms=20,chunk_delay_ms=5"}
EPSILON_MS = 0.01  # the rounding of `ms` in the JSON output


def root(fake: FakeProvider) -> str:
    return fake.base_url.rsplit("/v1", 1)[0]


def flushed(otel: Any) -> None:
    store = attached_store(otel.tracer_provider)
    assert store is not None and store.force_flush(5000)


def show(db: Path, ref: str | int, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any]]:
    """`llmlens show ID` as text and as `--json`."""
    capsys.readouterr()
    assert llmlens_main(["show", "--db", str(db), str(ref)]) == 0
    text = capsys.readouterr().out
    assert llmlens_main(["show", "--db", str(db), "--json", str(ref)]) == 0
    return text, json.loads(capsys.readouterr().out)


def request_ids(db: Path, capsys: pytest.CaptureFixture[str]) -> list[int]:
    """The request ids in the store, oldest first."""
    capsys.readouterr()
    assert llmlens_main(["log", "--db", str(db), "--json"]) == 0
    return sorted(row["id"] for row in json.loads(capsys.readouterr().out)["rows"])


def phases_of(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    phases = detail["phases"]
    assert isinstance(phases, list)
    for phase in phases:
        assert set(phase) == {"name", "ms", "how"} and phase["how"]
        assert phase["ms"] >= 0, phase
        assert phase["ms"] <= detail["request"]["duration_ms"] + EPSILON_MS, phase  # fits in the request
    return {phase["name"]: phase for phase in phases}


def check_streamed(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The phases of a stream, and the relations between them."""
    request = detail["request"]
    phases = phases_of(detail)
    first_byte, stream = phases["first byte"]["ms"], phases["stream"]["ms"]
    assert first_byte == pytest.approx(request["ttfc_ms"], abs=EPSILON_MS)
    assert stream == pytest.approx(request["duration_ms"] - first_byte, abs=2 * EPSILON_MS)
    assert phases["parse"]["ms"] <= first_byte  # the request was read before anything went back
    return phases


def below_request(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans right below the request's own span in the `--json` tree."""
    nodes = list(detail["tree"])
    while nodes:
        node = nodes.pop()
        if node["request_id"] == detail["request"]["id"]:
            return list(node["children"])
        nodes.extend(node["children"])
    raise AssertionError("the request is not in its tree")


def upstream_leg(detail: dict[str, Any]) -> dict[str, Any]:
    (leg,) = [s for s in below_request(detail) if s["attributes"].get("llmlens.upstream") is True]
    return leg


def check_text(text: str, names: list[str]) -> None:
    """The phases block sits between the attribute lines and the span tree, a line per phase."""
    assert "\nphases\n" in text
    block = text.split("\nphases\n", 1)[1].split("\nspan tree", 1)[0]
    assert text.index("llmlens.proxy.request_id") < text.index("\nphases\n")
    rows = block.strip().splitlines()[2:]  # below the header and its rule
    assert [row.split("  ")[0] for row in rows] == names


def test_passthrough_proxy_json_and_stream(
    instrument: Any, otel: Any, fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    instrument(db_path=str(db))
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy, httpx.Client() as client:
        url = proxy.url + "/v1/chat/completions"
        assert client.post(url, json=JSON_BODY, headers=SLOW).status_code == 200
        assert client.post(url, json=STREAM_BODY, headers=SLOW).status_code == 200
    flushed(otel)
    plain_id, streamed_id = request_ids(db, capsys)

    text, plain = show(db, plain_id, capsys)
    phases = phases_of(plain)
    # A JSON response: its first byte is its status and headers (after the upstream answered), and it
    # has no stream phase.
    assert list(phases) == ["parse", "upstream wait", "first byte"]
    assert "whole upstream call" in phases["upstream wait"]["how"]
    leg = upstream_leg(plain)
    assert phases["upstream wait"]["ms"] == pytest.approx(leg["duration_ms"], abs=EPSILON_MS)
    assert phases["parse"]["ms"] + phases["upstream wait"]["ms"] <= phases["first byte"]["ms"] + EPSILON_MS
    assert phases["first byte"]["ms"] <= plain["request"]["duration_ms"]
    check_text(text, ["parse", "upstream wait", "first byte"])

    text, streamed = show(db, streamed_id, capsys)
    phases = check_streamed(streamed)
    assert list(phases) == ["parse", "upstream wait", "first byte", "stream"]
    assert "first output chunk" in phases["upstream wait"]["how"]
    # Passed through: the upstream's first chunk is the first one relayed, and the upstream call
    # started after the request arrived.
    assert phases["upstream wait"]["ms"] <= phases["first byte"]["ms"]
    check_text(text, ["parse", "upstream wait", "first byte", "stream"])


def test_translating_proxy(
    instrument: Any, otel: Any, fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    instrument(db_path=str(db))
    with UvicornServer(translating_proxy.create_app(root(fake))) as proxy, httpx.Client() as client:
        url = proxy.url + "/v1/chat/completions"
        assert client.post(url, json=JSON_BODY, headers=SLOW).status_code == 200
        assert client.post(url, json=STREAM_BODY, headers=SLOW).status_code == 200
    flushed(otel)
    plain_id, streamed_id = request_ids(db, capsys)
    assert list(phases_of(show(db, plain_id, capsys)[1])) == ["parse", "upstream wait", "first byte"]
    phases = check_streamed(show(db, streamed_id, capsys)[1])
    assert list(phases) == ["parse", "upstream wait", "first byte", "stream"]
    assert "`chat claude-haiku-4-5`" in phases["upstream wait"]["how"]  # the Anthropic leg


def test_llm_request_proxy_times_its_conversion(
    instrument: Any, otel: Any, fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    instrument(db_path=str(db))

    async def call() -> None:
        server = await asyncio_proxy.serve(fake.base_url)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                assert (await client.post(url, json=STREAM_BODY, headers=SLOW)).status_code == 200
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(call())
    flushed(otel)
    (request_id,) = request_ids(db, capsys)
    text, detail = show(db, request_id, capsys)
    phases = check_streamed(detail)
    assert list(phases) == ["parse", "convert", "upstream wait", "first byte", "stream"]
    assert phases["convert"]["how"] == "the convert.request span"
    (convert_span,) = [s for s in below_request(detail) if s["name"] == "convert.request"]
    assert phases["convert"]["ms"] == pytest.approx(convert_span["duration_ms"], abs=EPSILON_MS)
    assert phases["upstream wait"]["ms"] <= phases["first byte"]["ms"]
    check_text(text, ["parse", "convert", "upstream wait", "first byte", "stream"])


def test_upstream_wait_ends_at_the_response_headers_with_an_http_span(
    instrument: Any, otel: Any, fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    http = HTTPX2ClientInstrumentor()  # the transport of the openai SDK's client
    http.instrument(tracer_provider=otel.tracer_provider)
    try:
        instrument(db_path=str(db))
        with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy, httpx.Client() as client:
            url = proxy.url + "/v1/chat/completions"
            assert client.post(url, json=JSON_BODY, headers=SLOW).status_code == 200
            assert client.post(url, json=STREAM_BODY, headers=SLOW).status_code == 200
    finally:
        http.uninstrument()
    flushed(otel)
    for request_id in request_ids(db, capsys):
        detail = show(db, request_id, capsys)[1]
        phases = phases_of(detail)
        leg = upstream_leg(detail)
        (http_span,) = leg["children"]
        assert "response headers" in phases["upstream wait"]["how"]
        headers_ms = (http_span["end_ns"] - leg["start_ns"]) / 1e6
        assert phases["upstream wait"]["ms"] == pytest.approx(headers_ms, abs=EPSILON_MS)
        assert phases["upstream wait"]["ms"] <= leg["duration_ms"]
        if detail["request"]["stream"]:
            assert phases["upstream wait"]["ms"] <= phases["first byte"]["ms"]


def test_rosetta_gateway_without_an_upstream_span(
    instrument: Any, otel: Any, fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    instrument(db_path=str(db))

    async def calls(client: httpx.AsyncClient) -> None:
        chat = {"model": "gpt-4o-mini", "messages": HI, "stream": True}
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        messages = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": HI}
        assert (await client.post("/v1/messages", json=messages)).status_code == 200

    run_gateway(fake, tmp_path, calls)
    flushed(otel)
    streamed_id, plain_id = request_ids(db, capsys)
    # Its upstream client is its own (no CLIENT span) and it times no conversion: those phases are left out.
    phases = check_streamed(show(db, streamed_id, capsys)[1])
    assert list(phases) == ["parse", "first byte", "stream"]
    assert list(phases_of(show(db, plain_id, capsys)[1])) == ["parse"]


def test_an_sdk_call_has_no_phases(
    instrument: Any, otel: Any, fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    instrument(db_path=str(db))
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    flushed(otel)
    (request_id,) = request_ids(db, capsys)
    text, detail = show(db, request_id, capsys)
    assert detail["request"]["span_kind"] == "client"
    assert detail["phases"] is None
    assert "phases" not in text


def test_a_stream_the_client_left_keeps_its_phases_up_to_then(
    instrument: Any, otel: Any, fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    instrument(db_path=str(db))
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy, httpx.Client() as client:
        url, headers = proxy.url + "/v1/chat/completions", {"x-fake-scenario": "chunks=200,chunk_delay_ms=10"}
        with client.stream("POST", url, json=STREAM_BODY, headers=headers) as r:
            received = 0
            for piece in r.iter_raw():
                received += piece.count(b"data: ")
                if received >= 3:
                    break  # leaving the block closes the connection
        deadline = time.monotonic() + 5  # the proxy ends the request when it sees the client gone
        while not any(s.kind == SpanKind.SERVER for s in otel.spans()) and time.monotonic() < deadline:
            time.sleep(0.01)
    flushed(otel)
    (request_id,) = request_ids(db, capsys)
    detail = show(db, request_id, capsys)[1]
    assert detail["request"]["stream_outcome"] == "client_disconnected"
    phases = check_streamed(detail)
    assert phases["stream"]["how"].endswith("the stream ended client_disconnected")
