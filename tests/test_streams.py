"""openai streams: what the stream contract (tests/test_stream_contract.py) does not check.

Every exit path of every openai stream (chat completions, the Responses API, `responses.stream()`,
`with_raw_response`, `with_streaming_response`; sync and async) is in the contract suite, with the
`openai-*` adapters of tests/stream_adapters.py. Here: the SDK's attributes through the proxy, and that
llmlens keeps a consumed stream's HTTP response out of reference cycles. Real openai SDK against the
fake provider on loopback; run under openai 3 and openai 2 (`scripts/test`).
"""

from __future__ import annotations

import gc
from typing import Any

import openai
import pytest

pytestmark = pytest.mark.timeout(10)


def chat_kwargs() -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say something"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "extra_headers": {"x-fake-scenario": "chunks=8"},
    }


def test_sync_stream_is_still_an_openai_stream(otel: Any, instrumented: Any, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(**chat_kwargs())
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # SDK attributes still reachable through the proxy
    with stream:
        for _ in stream:
            pass
    assert otel.span().attributes["llmlens.stream.outcome"] == "completed"


@pytest.mark.asyncio
async def test_async_stream_is_still_an_openai_async_stream(
    otel: Any, instrumented: Any, async_client: Any
) -> None:
    stream = await async_client.chat.completions.create(**chat_kwargs())
    assert isinstance(stream, openai.AsyncStream)
    assert stream.response.status_code == 200
    async with stream:
        async for _ in stream:
            pass
    assert otel.span().attributes["llmlens.stream.outcome"] == "completed"


def test_consumed_stream_is_freed_as_without_llmlens(
    otel: Any, instrument: Any, client: openai.OpenAI
) -> None:
    """llmlens must not tie a stream's HTTP response to itself: the close hook once held the
    response's own bound `close`, a cycle that left every stream's response, span and buffers to the
    cyclic garbage collector (found by the overhead benchmark). So a consumed stream's response is
    freed by reference counting exactly when it is without llmlens: under openai 3 it is; under openai 2
    the SDK's own objects already keep it in a cycle. (A stream closed unread or dropped after a
    `break` is in a cycle of openai's own in both: its Stream and the generator made in `__init__`.)"""
    import weakref

    def freed_by_refcount() -> bool:
        gc.collect()
        gc.disable()
        try:
            stream = client.chat.completions.create(**chat_kwargs())
            response = weakref.ref(stream.response)
            for _chunk in stream:
                pass
            del stream, _chunk
            return response() is None
        finally:
            gc.enable()

    instrumentor = instrument()
    traced = freed_by_refcount()
    assert len(otel.spans()) == 1
    instrumentor.uninstrument()
    assert traced == freed_by_refcount()
    if openai.__version__.startswith("3."):
        assert traced, "under openai 3 the response is freed by reference counting"
