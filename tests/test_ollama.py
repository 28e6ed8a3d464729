"""llmlens with the real `ollama` client against the fake Ollama server on loopback: no mocks.

Span attributes are compared as whole dicts. Usage: `prompt_eval_count` is the input, `eval_count` the
output; Ollama is a local runtime, so the cost is 0 (`llmlens.cost.price_source` `free`).

The exit paths of `chat(stream=True)` / `generate(stream=True)` (generators: read to the end, `break`
then garbage collection, `close()` before and after reading, a transport error, an error line inside
the stream, an HTTP error raised by the first step, task cancellation), sync and async, are in the
stream contract suite (tests/test_stream_contract.py, the `ollama-*` adapters of
tests/stream_adapters.py). Here: what an ollama stream carries.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from fakes.ollama_bodies import TOOL_CALL_TOKENS
from fakes.ollama_server import OllamaServer, client
from llmlens.providers import ollama as ollama_provider
from llmlens.settings import Settings

MODEL = "llama3.2"
EMBED_MODEL = "all-minilm"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
PROMPT_TOKENS = (3 + 2) + (3 + 6)  # the fake counts 3 per message and its words
# MESSAGES[0] as gen_ai.input.messages has it: a chat's system message is part of its history (only
# generate's `system=`, passed apart, is gen_ai.system_instructions).
SYSTEM_MESSAGE = {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
ANSWER = "Hello from the fake Ollama server. It answers"  # the default 8 words
WORDS = 8
FREE = {
    "gen_ai.usage.cost.amount": 0.0,
    "gen_ai.usage.cost.currency": "USD",
    "gen_ai.usage.cost.source": "local",
    "llmlens.cost.price_source": "free",
}
DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"

pytestmark = pytest.mark.timeout(20)


def get_weather(city: str) -> str:
    """Current weather for a city

    Args:
        city: The city's name
    """
    return "21C"


TOOL_DEFINITIONS = [{"type": "function", "name": "get_weather", "description": "Current weather for a city"}]


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaServer]:
    with OllamaServer() as running:
        yield running


# ------------------------------------------------------------------------------------------- helpers


def base(server: OllamaServer, model: str = MODEL, operation: str = "chat") -> dict[str, Any]:
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": model,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }


def answer(
    prompt_tokens: int, output_tokens: int, finish: str = "stop", model: str = MODEL
) -> dict[str, Any]:
    return {
        "gen_ai.response.model": model,
        "gen_ai.response.finish_reasons": (finish,),
        "gen_ai.usage.input_tokens": prompt_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        **FREE,
    }


def content(span: Any, key: str) -> Any:
    return json.loads(span.attributes[key])


def token_sums(otel: Any) -> dict[str, int]:
    return {p.attributes["gen_ai.token.type"]: p.sum for p in otel.metrics().get(TOKEN_USAGE, [])}


def without_content(attributes: Any) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if not k.startswith(("gen_ai.input", "gen_ai.output",
            "gen_ai.system", "gen_ai.tool"))}  # fmt: skip


def without_ttfc(span: Any) -> dict[str, Any]:
    attributes = dict(span.attributes)
    ttfc = attributes.pop("gen_ai.response.time_to_first_chunk")
    assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9
    return attributes


class Tally:
    """What a test's loop saw of a stream: every `done: false` part is an output chunk."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.chunks = 0

    def see(self, part: Any) -> None:
        self.parts.append(part)
        if not part.done:
            self.chunks += 1


def chat_kwargs(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": MESSAGES, "stream": True, **extra}


# --------------------------------------------------------------------------------------- chat, plain


def test_chat_span_has_every_request_parameter(otel: Any, instrumented: Any, server: Any) -> None:
    response = client(server).chat(
        model=MODEL,
        messages=MESSAGES,
        format="json",
        think="high",
        options={
            "temperature": 0.25,
            "top_p": 0.5,
            "top_k": 40,
            "seed": 42,
            "num_predict": 64,
            "stop": ["END", "\n\n"],
            "frequency_penalty": 0.125,
            "presence_penalty": -0.5,
        },
    )

    assert response.message.content == ANSWER
    assert (response.prompt_eval_count, response.eval_count) == (PROMPT_TOKENS, WORDS)
    span = otel.span()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.OK
    assert dict(span.attributes) == {
        **base(server),
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.seed": 42,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.stop_sequences": ("END", "\n\n"),
        "gen_ai.request.frequency_penalty": 0.125,
        "gen_ai.request.presence_penalty": -0.5,
        "gen_ai.output.type": "json",
        "gen_ai.request.reasoning.level": "high",
        **answer(PROMPT_TOKENS, WORDS),
    }
    assert token_sums(otel) == {"input": PROMPT_TOKENS, "output": WORDS}


def test_options_object_and_schema_format(otel: Any, instrumented: Any, server: Any) -> None:
    client(server).chat(
        model=MODEL,
        messages=MESSAGES,
        format={"type": "object", "properties": {"answer": {"type": "string"}}},
        think=True,  # on/off is not a level
        options=ollama.Options(temperature=0.5, num_predict=-1),  # -1: no limit
    )
    assert dict(otel.span().attributes) == {
        **base(server),
        "gen_ai.request.temperature": 0.5,
        "gen_ai.output.type": "json",
        **answer(PROMPT_TOKENS, WORDS),
    }


def test_module_functions_use_the_default_client(
    otel: Any, instrumented: Any, server: Any, monkeypatch: Any
) -> None:
    """`ollama.chat` is bound to a default client when ollama is imported: patching `_request` covers it."""
    default = ollama.chat.__self__
    monkeypatch.setattr(default, "_client", httpx.Client(base_url=server.root))
    response = ollama.chat(model=MODEL, messages=MESSAGES)
    ollama.generate(model=MODEL, prompt="Why is the sky blue?")
    chat, generate = otel.spans()
    assert chat.attributes["gen_ai.usage.output_tokens"] == response.eval_count == WORDS
    assert chat.attributes["server.port"] == generate.attributes["server.port"] == server.port
    assert generate.name == f"text_completion {MODEL}"


def test_num_predict_cuts_the_answer(otel: Any, instrumented: Any, server: Any) -> None:
    response = client(server).chat(model=MODEL, messages=MESSAGES, options={"num_predict": 3})
    assert response.done_reason == "length"
    assert dict(otel.span().attributes) == {
        **base(server), "gen_ai.request.max_tokens": 3, **answer(PROMPT_TOKENS, 3, "length"),
    }  # fmt: skip


def test_unknown_done_reason_passes_through(otel: Any, instrumented: Any, server: Any) -> None:
    client(server, "finish=unload").chat(model=MODEL, messages=MESSAGES)
    assert otel.span().attributes["gen_ai.response.finish_reasons"] == ("unload",)


def test_no_usage(otel: Any, instrumented: Any, server: Any) -> None:
    response = client(server, "no_usage").chat(model=MODEL, messages=MESSAGES)
    assert response.prompt_eval_count is None
    assert dict(otel.span().attributes) == {
        **base(server), "gen_ai.response.model": MODEL, "gen_ai.response.finish_reasons": ("stop",),
        "llmlens.cost.unpriced_reason": "no_usage",
    }  # fmt: skip
    assert token_sums(otel) == {}


@pytest.mark.asyncio
async def test_async_chat(otel: Any, instrumented: Any, server: Any) -> None:
    response = await client(server, is_async=True).chat(model=MODEL, messages=MESSAGES)
    assert response.message.content == ANSWER
    assert dict(otel.span().attributes) == {**base(server), **answer(PROMPT_TOKENS, WORDS)}


# ----------------------------------------------------------------------------------------- generate


def test_generate(otel: Any, instrument: Any, server: Any) -> None:
    instrument(capture_content=True)
    response = client(server, "thinking=2").generate(
        model=MODEL, prompt="Why is the sky blue?", system="Be brief.", options={"temperature": 0}
    )
    assert response.response == ANSWER
    span = otel.span()
    assert span.name == f"text_completion {MODEL}"
    prompt_tokens = 3 + 5 + 2
    assert without_content(span.attributes) == {
        **base(server, operation="text_completion"),
        "gen_ai.request.temperature": 0,
        **answer(prompt_tokens, WORDS + 2),
    }
    assert content(span, "gen_ai.system_instructions") == [{"type": "text", "content": "Be brief."}]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "Why is the sky blue?"}]}
    ]
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "reasoning", "content": "The user"},
            {"type": "text", "content": ANSWER},
        ]},
    ]  # fmt: skip


@pytest.mark.asyncio
async def test_async_generate(otel: Any, instrumented: Any, server: Any) -> None:
    await client(server, is_async=True).generate(model=MODEL, prompt="Why?")
    assert dict(otel.span().attributes) == {**base(server, operation="text_completion"), **answer(4, WORDS)}


# ---------------------------------------------------------------------------------------------- embed


def test_embed(otel: Any, instrumented: Any, server: Any) -> None:
    response = client(server).embed(model=EMBED_MODEL, input=["hello world", "good bye now"], dimensions=16)
    assert len(response.embeddings[0]) == 16
    span = otel.span()
    assert span.name == f"embeddings {EMBED_MODEL}"
    assert dict(span.attributes) == {
        **base(server, EMBED_MODEL, "embeddings"),
        "gen_ai.response.model": EMBED_MODEL,
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.embeddings.dimension.count": 16,
        **FREE,
    }
    assert token_sums(otel) == {"input": 5}


def test_legacy_embeddings(otel: Any, instrumented: Any, server: Any) -> None:
    response = client(server).embeddings(model=EMBED_MODEL, prompt="hello world")
    assert len(response.embedding) == 8
    assert dict(otel.span().attributes) == {
        **base(server, EMBED_MODEL, "embeddings"), "gen_ai.embeddings.dimension.count": 8,
        "llmlens.cost.unpriced_reason": "no_usage",  # the legacy endpoint reports no token count
    }  # fmt: skip


@pytest.mark.asyncio
async def test_async_embed(otel: Any, instrumented: Any, server: Any) -> None:
    await client(server, is_async=True).embed(model=EMBED_MODEL, input="hello")
    assert dict(otel.span().attributes) == {
        **base(server, EMBED_MODEL, "embeddings"),
        "gen_ai.response.model": EMBED_MODEL,
        "gen_ai.usage.input_tokens": 1,
        "gen_ai.embeddings.dimension.count": 8,
        **FREE,
    }


# ---------------------------------------------------------------------------------- tools and content


CONVERSATION: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather here?", "images": [b"\x89PNG fake image bytes"]},
    {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
    ]},
    {"role": "tool", "content": "21C", "tool_name": "get_weather"},
]  # fmt: skip
CONVERSATION_INPUT = [
    SYSTEM_MESSAGE,
    {"role": "user", "parts": [
        {"type": "text", "content": "What is the weather here?"},
        {"type": "blob", "modality": "image", "content": "[llmlens: 21 bytes of base64 data elided]"},
    ]},
    {"role": "assistant", "parts": [
        {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}},
    ]},
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": None, "response": "21C"}]},
]  # fmt: skip


def test_tool_call_with_content(otel: Any, instrument: Any, server: Any) -> None:
    instrument(capture_content=True)
    response = client(server, "tool").chat(model=MODEL, messages=CONVERSATION, tools=[get_weather])

    (call,) = response.message.tool_calls
    assert (call.function.name, dict(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert response.done_reason == "stop"  # Ollama's reason for a tool call; llmlens says tool_call
    span = otel.span()
    prompt_tokens = (3 + 2) + (3 + 5) + 3 + (3 + 1)
    assert without_content(span.attributes) == {
        **base(server),
        "llmlens.response.tool_call_count": 1,
        **answer(prompt_tokens, TOOL_CALL_TOKENS, "tool_call"),
    }
    assert content(span, "gen_ai.input.messages") == CONVERSATION_INPUT
    assert "gen_ai.system_instructions" not in span.attributes
    assert content(span, "gen_ai.tool.definitions") == TOOL_DEFINITIONS
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "finish_reason": "tool_call", "parts": [
            {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}},
        ]},
    ]  # fmt: skip


def test_tool_call_without_content(otel: Any, instrumented: Any, server: Any) -> None:
    client(server, "tool").chat(model=MODEL, messages=MESSAGES, tools=[get_weather])
    attributes = otel.span().attributes
    assert attributes["llmlens.response.tool_call_count"] == 1
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert without_content(attributes) == dict(attributes)


def test_thinking_is_reasoning_content(otel: Any, instrument: Any, server: Any) -> None:
    instrument(capture_content=True)
    client(server, "thinking=3,chunks=2").chat(model=MODEL, messages=MESSAGES, think=True)
    assert content(otel.span(), "gen_ai.output.messages") == [
        {"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "reasoning", "content": "The user wants"},
            {"type": "text", "content": "Hello from"},
        ]},
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------- errors


def test_http_error(otel: Any, instrumented: Any, server: Any) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client(server, "status=404").chat(model="missing-model", messages=MESSAGES)

    assert (caught.value.status_code, caught.value.error) == (404, "model 'missing-model' not found")
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes) == {
        **base(server, "missing-model"),
        "error.type": "ollama.ResponseError",
        "http.response.status_code": 404,
    }
    (event,) = span.events
    assert event.name == "exception"
    (duration,) = otel.metrics()[DURATION]
    assert duration.attributes["error.type"] == "ollama.ResponseError"


@pytest.mark.asyncio
async def test_async_http_error(otel: Any, instrumented: Any, server: Any) -> None:
    with pytest.raises(ollama.ResponseError):
        await client(server, "status=500", is_async=True).embed(model=EMBED_MODEL, input="x")
    assert dict(otel.span().attributes) == {
        **base(server, EMBED_MODEL, "embeddings"), "error.type": "ollama.ResponseError",
        "http.response.status_code": 500,
    }  # fmt: skip


def test_server_not_running(otel: Any, instrumented: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with pytest.raises(ConnectionError):  # the client turns httpx.ConnectError into the builtin
        ollama.Client(host=f"http://127.0.0.1:{port}").chat(model=MODEL, messages=MESSAGES)
    assert dict(otel.span().attributes) == {
        **base_for_port(port), "error.type": "ConnectionError",
    }  # fmt: skip


def base_for_port(port: int) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ollama",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": port,
    }


# ======================================================================================= streams, sync


def test_stream_tool_call(otel: Any, instrument: Any, server: Any) -> None:
    instrument(capture_content=True)
    seen = Tally()
    for part in client(server, "tool,thinking=2").chat(**chat_kwargs(tools=[get_weather])):
        seen.see(part)
    span = otel.span()
    assert seen.chunks == 3  # two thinking words and the tool call
    assert without_content(without_ttfc(span)) == {
        **base(server),
        "gen_ai.request.stream": True,
        "llmlens.response.tool_call_count": 1,
        "llmlens.stream.chunk_count": 3,
        "llmlens.stream.outcome": "completed",
        **answer(PROMPT_TOKENS, 2 + TOOL_CALL_TOKENS, "tool_call"),
    }
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "finish_reason": "tool_call", "parts": [
            {"type": "reasoning", "content": "The user"},
            {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}},
        ]},
    ]  # fmt: skip
    assert content(span, "gen_ai.tool.definitions") == TOOL_DEFINITIONS


def test_stream_content(otel: Any, instrument: Any, server: Any) -> None:
    instrument(capture_content=True)
    for _ in client(server).chat(**chat_kwargs()):
        pass
    span = otel.span()
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ]
    assert content(span, "gen_ai.input.messages") == [
        SYSTEM_MESSAGE,
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
    ]
    assert "gen_ai.system_instructions" not in span.attributes


def test_stream_abandoned_content_keeps_what_arrived(otel: Any, instrument: Any, server: Any) -> None:
    instrument(capture_content=True)
    stream = client(server).chat(**chat_kwargs())
    for index, _ in enumerate(stream):
        if index == 2:
            break
    stream.close()
    assert content(otel.span(), "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello from the"}],
            "finish_reason": "error",
        }
    ]


def test_user_sees_identical_parts(otel: Any, instrument: Any, server: Any) -> None:
    def view() -> list[Any]:
        return [(type(p), p.model_dump()) for p in client(server, "thinking=2").chat(**chat_kwargs())]

    plain = view()
    assert otel.spans() == []
    instrument()
    assert view() == plain
    assert len(otel.spans()) == 1


# ============================================================================================ plumbing


def test_http_client_span_is_a_child(otel: Any, instrumented: Any, server: Any) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    httpx_instrumentor = HTTPXClientInstrumentor()
    httpx_instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        ollama_client = client(server)
        for call in (
            lambda: ollama_client.chat(model=MODEL, messages=MESSAGES),
            lambda: list(ollama_client.chat(**chat_kwargs())),  # the request is sent by the first step
        ):
            call()
            spans = otel.spans()
            (llm,) = [s for s in spans if s.instrumentation_scope.name == "llmlens"]
            (http,) = [s for s in spans if s.instrumentation_scope.name != "llmlens"]
            assert http.parent is not None and http.parent.span_id == llm.context.span_id
            otel.spans_exporter.clear()
    finally:
        httpx_instrumentor.uninstrument()


def test_suppressed(otel: Any, instrumented: Any, server: Any) -> None:
    with suppress_instrumentation():
        client(server).chat(model=MODEL, messages=MESSAGES)
        list(client(server).chat(**chat_kwargs()))
    assert otel.spans() == []


def test_other_api_calls_are_not_traced(otel: Any, instrumented: Any, server: Any) -> None:
    with pytest.raises(ollama.ResponseError):  # the fake has no /api/tags: a 404, and no LLM span
        client(server).list()
    assert otel.spans() == []


def test_uninstrument_restores_the_client(otel: Any, instrument: Any, server: Any) -> None:
    import importlib

    _client = importlib.import_module("ollama._client")  # `ollama._client` is the default Client instance
    instrumentor = instrument()
    assert hasattr(_client.Client.__dict__["_request"], "__wrapped__")
    instrumentor.uninstrument()
    assert not hasattr(_client.Client.__dict__["_request"], "__wrapped__")
    assert not hasattr(_client.AsyncClient.__dict__["_request"], "__wrapped__")
    client(server).chat(model=MODEL, messages=MESSAGES)
    assert otel.spans() == []


def test_failing_extraction_never_breaks_the_call(
    otel: Any, instrumented: Any, server: Any, monkeypatch: Any
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected instrumentation failure")

    monkeypatch.setattr(ollama_provider.ChatRoute, "response", boom)
    monkeypatch.setattr(ollama_provider.StreamAccumulator, "on_part", boom)
    assert client(server).chat(model=MODEL, messages=MESSAGES).message.content == ANSWER
    assert dict(otel.span().attributes) == {**base(server), "llmlens.cost.unpriced_reason": "no_usage"}
    otel.spans_exporter.clear()
    assert len(list(client(server).chat(**chat_kwargs()))) == WORDS + 1
    assert otel.span().attributes["llmlens.stream.outcome"] == "completed"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (None, ("ollama", "127.0.0.1", 11434)),
        ("https://ollama.com", ("ollama", "ollama.com", 443)),
        ("gpu-box:8080", ("ollama", "gpu-box", 8080)),
        ("http://[::1]:11435", ("ollama", "::1", 11435)),
    ],
)
def test_endpoint(host: str | None, expected: tuple[str, str, int], monkeypatch: Any) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    endpoint = ollama_provider.client_endpoint(Settings())
    ollama_client = ollama.Client(host=host)
    assert endpoint(ollama_client) == expected
    assert endpoint(ollama_client) == expected  # cached


def test_provider_map_names_the_server(otel: Any, instrument: Any, server: Any) -> None:
    instrument(provider_map={f"127.0.0.1:{server.port}": "ramalama"})
    client(server).chat(model=MODEL, messages=MESSAGES)
    assert otel.span().attributes["gen_ai.provider.name"] == "ramalama"
