"""llmlens with the real `google-genai` SDK against the fake provider (Gemini wire format) on loopback.

Span attributes are compared as whole dicts; values that vary (ids, the port) come from the response or
the fake server. Recorded real Gemini and Vertex responses (tests/recordings/gemini/) are replayed at the
end of this file. The streaming exit paths are in tests/test_stream_contract.py.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from llmlens import semconv
from llmlens.demo import fake_gemini
from llmlens.demo.fake_bodies import Scenario
from llmlens.demo.fake_server import FakeProvider
from llmlens.providers import google_genai
from llmlens.settings import Settings
from replay_server import Recording, ReplayServer

MODEL = "gemini-2.5-flash"
EMBEDDING_MODEL = "gemini-embedding-001"
QUESTION = "What is the weather in Paris?"
# The fake counts the words of every text part plus 1 per content: 6 + 1.
PROMPT_TOKENS = 7
ANSWER = "Hello from the fake Gemini provider. This deterministic"  # the default 8 words
CONTENT_KEYS = {
    semconv.INPUT_MESSAGES,
    semconv.OUTPUT_MESSAGES,
    semconv.SYSTEM_INSTRUCTIONS,
    semconv.TOOL_DEFINITIONS,
}
DURATION = semconv.METRIC_OPERATION_DURATION
TOKEN_USAGE = semconv.METRIC_TOKEN_USAGE


def get_weather(city: str) -> str:
    """Current weather for a city.

    Called by the SDK itself (automatic function calling).
    """
    return f"Sunny in {city}"


WEATHER_TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather for a city",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={"city": types.Schema(type=types.Type.STRING)},
                required=["city"],
            ),
        )
    ]
)


def root(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


def config(scenario: str | None = None, **fields: Any) -> types.GenerateContentConfig:
    """A GenerateContentConfig that selects a fake-provider scenario for this one request."""
    if scenario is not None:
        fields["http_options"] = types.HttpOptions(headers={"x-fake-scenario": scenario})
    return types.GenerateContentConfig(**fields)


def base(
    fake: FakeProvider,
    model: str = MODEL,
    operation: str = "generate_content",
    provider: str = "gcp.gemini",
    **extra: Any,
) -> dict[str, Any]:
    """The attributes every span of a call to the fake provider has."""
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "server.address": "127.0.0.1",
        "server.port": fake.port,
        **extra,
    }


def answer(response: Any, finish: tuple[str, ...] = ("stop",), **extra: Any) -> dict[str, Any]:
    """Response attributes of a default text answer (usage from the response itself)."""
    usage = response.usage_metadata
    return {
        "gen_ai.response.id": response.response_id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": finish,
        "gen_ai.usage.input_tokens": usage.prompt_token_count,
        "gen_ai.usage.output_tokens": usage.candidates_token_count,
        "gen_ai.usage.text.input_tokens": usage.prompt_token_count,
        **extra,
    }


def content(span: Any, key: str) -> Any:
    value = span.attributes[key]
    assert isinstance(value, str)
    return json.loads(value)


def metric_points(otel: Any, name: str) -> list[Any]:
    return otel.metrics().get(name, [])


@pytest.fixture
def client(fake: FakeProvider) -> genai.Client:
    return genai.Client(api_key="fake-key", http_options=types.HttpOptions(base_url=root(fake)))


@pytest.fixture
def vertex(fake: FakeProvider) -> genai.Client:
    """A Vertex AI client in express mode (API key): paths under /v1beta1/publishers/google/models/."""
    return genai.Client(
        vertexai=True, api_key="fake-key", http_options=types.HttpOptions(base_url=root(fake))
    )


@pytest.fixture
def gemini(instrument: Any) -> Any:
    """llmlens instrumented without pricing, so the snapshots need no cost attributes."""
    return instrument(pricing=False)


@pytest.fixture
def captured(instrument: Any) -> Any:
    return instrument(pricing=False, capture_content="SPAN_ONLY")


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ============================================================== the fake speaks Gemini (no llmlens)


def test_fake_generate_content_parses_with_the_sdk(client: genai.Client, fake: FakeProvider) -> None:
    response = client.models.generate_content(
        model=MODEL, contents=QUESTION, config=config("cached=3,reasoning=11")
    )

    assert fake.requests[-1].path == f"/v1/models/{MODEL}:generateContent"
    assert response.text == ANSWER
    assert response.model_version == MODEL
    assert response.response_id is not None and len(response.response_id) == 23
    (candidate,) = response.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.index == 0
    usage = response.usage_metadata
    assert usage is not None
    # As in the real API: cached tokens are a part of the prompt, thoughts are not a part of the
    # candidates, and the total adds them.
    assert (usage.prompt_token_count, usage.cached_content_token_count) == (PROMPT_TOKENS, 3)
    assert (usage.candidates_token_count, usage.thoughts_token_count) == (8, 11)
    assert usage.total_token_count == PROMPT_TOKENS + 8 + 11
    assert usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    assert usage.cache_tokens_details[0].token_count == 3


def test_fake_stream_sends_running_totals(client: genai.Client, fake: FakeProvider) -> None:
    chunks = list(
        client.models.generate_content_stream(
            model=MODEL,
            contents=QUESTION,
            config=config(
                "chunks=3,reasoning=5", thinking_config=types.ThinkingConfig(include_thoughts=True)
            ),
        )
    )

    assert fake.requests[-1].path == f"/v1/models/{MODEL}:streamGenerateContent?alt=sse"
    parts = [chunk.candidates[0].content.parts[0] for chunk in chunks]
    assert [bool(p.thought) for p in parts] == [True, False, False, False]
    assert "".join(p.text for p in parts[1:]) == "Hello from the"
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [None, 1, 2, 3]
    assert {c.usage_metadata.thoughts_token_count for c in chunks} == {5}
    assert [c.candidates[0].finish_reason for c in chunks] == [None, None, None, types.FinishReason.STOP]
    assert len({c.response_id for c in chunks}) == 1


def test_fake_vertex_shapes(vertex: genai.Client, fake: FakeProvider) -> None:
    response = vertex.models.generate_content(model=MODEL, contents=QUESTION)
    assert fake.requests[-1].path == f"/v1beta1/publishers/google/models/{MODEL}:generateContent"
    assert response.candidates[0].index is None
    assert response.usage_metadata.traffic_type == types.TrafficType.ON_DEMAND
    assert response.create_time is not None

    chunks = list(
        vertex.models.generate_content_stream(model=MODEL, contents=QUESTION, config=config("chunks=3"))
    )
    # Vertex sends the counts on the last chunk only.
    assert [c.usage_metadata.total_token_count for c in chunks] == [None, None, PROMPT_TOKENS + 3]


def test_fake_function_call_then_text_after_the_function_response(client: genai.Client) -> None:
    forced = config(
        tools=[WEATHER_TOOL],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    response = client.models.generate_content(model=MODEL, contents=QUESTION, config=forced)
    (call,) = response.function_calls or []
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    assert response.candidates[0].finish_reason == types.FinishReason.STOP

    history = [
        types.Content(role="user", parts=[types.Part.from_text(text=QUESTION)]),
        response.candidates[0].content,
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"r": "sunny"})],
        ),
    ]
    followup = client.models.generate_content(model=MODEL, contents=history, config=forced)
    assert followup.text == ANSWER


def test_fake_errors_are_google_error_bodies(client: genai.Client, fake: FakeProvider) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=QUESTION, config=config("status=429"))
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    body = json.loads(fake_gemini.error_reply(429, model=MODEL)[2])
    assert body["error"]["details"][-1] == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "0s",
    }

    with pytest.raises(errors.ServerError) as server_error:
        client.models.generate_content(model="fake-error-503", contents=QUESTION)
    assert (server_error.value.code, server_error.value.status) == (503, "UNAVAILABLE")

    with pytest.raises(errors.ClientError) as bad_scenario:
        client.models.generate_content(model=MODEL, contents=QUESTION, config=config("bogus=1"))
    assert bad_scenario.value.status == "INVALID_ARGUMENT"
    assert "unknown scenario keyword 'bogus'" in (bad_scenario.value.message or "")


def test_fake_in_stream_error_event(client: genai.Client) -> None:
    seen = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(
            model=MODEL, contents=QUESTION, config=config("chunks=5,error_after=2")
        ):
            seen.append(chunk.text)
    assert seen == ["Hello", " from"]
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
    assert caught.value.response.status_code == 200  # the HTTP response itself was fine


def test_fake_other_shapes(client: genai.Client) -> None:
    blocked = client.models.generate_content(model=MODEL, contents=QUESTION, config=config("refusal"))
    assert blocked.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert blocked.candidates[0].content is None and blocked.text is None

    cut = client.models.generate_content(
        model=MODEL, contents=QUESTION, config=config(max_output_tokens=3, candidate_count=2)
    )
    assert [(c.index, c.finish_reason) for c in cut.candidates] == [(0, "MAX_TOKENS"), (1, "MAX_TOKENS")]
    assert cut.usage_metadata.candidates_token_count == 6

    bare = client.models.generate_content(
        model=MODEL, contents=QUESTION, config=config("no_usage,none_fields")
    )
    assert bare.usage_metadata is None and bare.response_id is None and bare.model_version is None
    assert bare.candidates[0].finish_reason is None

    assert (
        list(
            client.models.generate_content_stream(
                model=MODEL, contents=QUESTION, config=config("empty_stream")
            )
        )
        == []
    )

    image = types.Part.from_bytes(data=b"\x89PNG" + bytes(60), mime_type="image/png")
    with_image = client.models.generate_content(model=MODEL, contents=[QUESTION, image])
    modalities = {d.modality: d.token_count for d in with_image.usage_metadata.prompt_tokens_details}
    assert modalities == {types.MediaModality.TEXT: PROMPT_TOKENS, types.MediaModality.IMAGE: 258}


def test_fake_embeddings(client: genai.Client, vertex: genai.Client, fake: FakeProvider) -> None:
    batch = client.models.embed_content(
        model=EMBEDDING_MODEL,
        contents=["one", "two words"],
        config=types.EmbedContentConfig(output_dimensionality=4),
    )
    assert fake.requests[-1].path == f"/v1/models/{EMBEDDING_MODEL}:batchEmbedContents"
    assert [len(e.values or []) for e in batch.embeddings or []] == [4, 4]
    assert batch.usage_metadata is None  # the Gemini API reports no tokens for embeddings

    single = vertex.models.embed_content(model="gemini-embedding-001", contents="two words")
    assert fake.requests[-1].path == "/v1beta1/publishers/google/models/gemini-embedding-001:embedContent"
    assert len(single.embeddings[0].values or []) == 8
    assert single.embeddings[0].statistics.token_count == 2


def test_fake_routes_only_gemini_paths() -> None:
    assert fake_gemini.route("POST", "/v1/chat/completions", {}, Scenario()) is None
    assert fake_gemini.reply_for("POST", "/v1/messages", None, {}) is None
    reply = fake_gemini.route("GET", f"/v1beta/models/{MODEL}:generateContent", {}, Scenario())
    assert reply is not None and reply.status == 404
    request = {"contents": [{"parts": [{"text": "hi"}]}]}
    stream = fake_gemini.route(
        "POST", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", request, Scenario(chunks=2)
    )
    assert stream is not None and stream.events is not None
    assert all(frame.startswith(b"data: {") and frame.endswith(b"}\r\n\r\n") for frame in stream.events)
    assert fake_gemini.parse_scenario("chunks=2,error_after=1", MODEL) == (Scenario(chunks=2), 1)
    with pytest.raises(ValueError):
        fake_gemini.parse_scenario("error_after=x", MODEL)


# ================================================================================ generate_content


def test_generate_content_span(otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider) -> None:
    response = client.models.generate_content(model=MODEL, contents=QUESTION)

    assert response.text == ANSWER
    span = otel.span()
    assert span.name == f"generate_content {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.OK
    assert span.instrumentation_scope.name == "llmlens"
    assert dict(span.attributes) == {**base(fake), **answer(response)}
    assert not CONTENT_KEYS & set(span.attributes)


def test_every_request_parameter(otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider) -> None:
    response = client.models.generate_content(
        model=f"models/{MODEL}",
        contents=QUESTION,
        config=config(
            temperature=0.25,
            top_p=0.5,
            top_k=40,
            max_output_tokens=64,
            stop_sequences=["\n\n", "END"],
            candidate_count=2,
            seed=42,
            presence_penalty=-0.5,
            frequency_penalty=0.125,
            response_mime_type="application/json",
            thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW),
        ),
    )

    assert len(response.candidates or []) == 2
    assert dict(otel.span().attributes) == {
        **base(fake),  # `models/` dropped: the model id price lists and model_version use
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.top_p": 0.5,
        "gen_ai.request.top_k": 40.0,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.stop_sequences": ("\n\n", "END"),
        "gen_ai.request.choice.count": 2,
        "gen_ai.request.seed": 42,
        "gen_ai.request.presence_penalty": -0.5,
        "gen_ai.request.frequency_penalty": 0.125,
        "gen_ai.output.type": "json",
        "gen_ai.request.reasoning.level": "low",
        **answer(response, finish=("stop", "stop")),
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"thinking_config": types.ThinkingConfig(thinking_budget=2048)},
            {"gen_ai.request.reasoning.level": "2048"},
        ),
        (
            {"thinking_config": types.ThinkingConfig(thinking_budget=0)},
            {"gen_ai.request.reasoning.level": "0"},
        ),
        ({"response_mime_type": "text/plain"}, {"gen_ai.output.type": "text"}),
        ({"response_modalities": ["IMAGE"]}, {"gen_ai.output.type": "image"}),
        ({"candidate_count": 1}, {}),
    ],
    ids=["budget", "budget-off", "text", "image", "one-candidate"],
)
def test_request_parameter_variants(
    otel: Any, gemini: Any, client: genai.Client, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    client.models.generate_content(model=MODEL, contents=QUESTION, config=config(**fields))
    attributes = dict(otel.span().attributes)
    request = {k: v for k, v in attributes.items() if k.startswith(("gen_ai.request.", "gen_ai.output."))}
    assert request == {"gen_ai.request.model": MODEL, **expected}


def test_request_config_as_a_dict(otel: Any, gemini: Any, client: genai.Client) -> None:
    client.models.generate_content(
        model=MODEL,
        contents=QUESTION,
        config={"temperature": 0.5, "max_output_tokens": 10, "stop_sequences": ["x"]},
    )
    attributes = otel.span().attributes
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.request.max_tokens"] == 10
    assert attributes["gen_ai.request.stop_sequences"] == ("x",)


@pytest.mark.asyncio
async def test_async_generate_content(
    otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider
) -> None:
    response = await client.aio.models.generate_content(model=MODEL, contents=QUESTION, config=config(seed=7))

    span = otel.span()
    assert span.status.status_code is StatusCode.OK
    assert dict(span.attributes) == {**base(fake, **{"gen_ai.request.seed": 7}), **answer(response)}


def test_vertex_client_reports_gcp_vertex_ai(
    otel: Any, gemini: Any, vertex: genai.Client, fake: FakeProvider
) -> None:
    response = vertex.models.generate_content(model=MODEL, contents=QUESTION)

    assert dict(otel.span().attributes) == {
        **base(fake, provider="gcp.vertex_ai"),
        **answer(response),
        "gen_ai.usage.text.output_tokens": 8,  # Vertex sends candidatesTokensDetails
    }


def test_server_address_from_the_default_endpoints() -> None:
    settings = Settings()
    patch = google_genai.GoogleGenAIPatch.__new__(google_genai.GoogleGenAIPatch)
    patch.overrides, patch._owner = settings.provider_map, object()
    gemini_client = genai.Client(api_key="k")._api_client
    vertex_client = genai.Client(
        vertexai=True, project="p", location="europe-west4", credentials=Credentials("t")
    )
    assert patch.endpoint(gemini_client, None) == ("gcp.gemini", "generativelanguage.googleapis.com", 443)
    assert patch.endpoint(vertex_client._api_client, None) == (
        "gcp.vertex_ai", "europe-west4-aiplatform.googleapis.com", 443,
    )  # fmt: skip
    per_request = {"http_options": {"base_url": "http://proxy.internal:8080/"}}
    assert patch.endpoint(gemini_client, per_request) == ("gcp.gemini", "proxy.internal", 8080)


def test_provider_map_applies(otel: Any, instrument: Any, client: genai.Client, fake: FakeProvider) -> None:
    instrument(pricing=False, provider_map={"127.0.0.1": "my_gateway"})
    client.models.generate_content(model=MODEL, contents=QUESTION)
    assert otel.span().attributes["gen_ai.provider.name"] == "my_gateway"


def test_span_is_client_child_of_current_span(otel: Any, gemini: Any, client: genai.Client) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as parent:
        client.models.generate_content(model=MODEL, contents=QUESTION)
    llm, handler = otel.spans()
    assert handler.name == "handler"
    assert llm.parent is not None and llm.parent.span_id == parent.get_span_context().span_id


@pytest.mark.asyncio
async def test_http_client_span_is_a_child(otel: Any, gemini: Any, fake: FakeProvider) -> None:
    """Our span is current while the request is sent: the HTTP client's span nests under it."""
    from opentelemetry.instrumentation import httpx as otel_httpx

    http_instrumentor = (
        otel_httpx.HTTPX2ClientInstrumentor()
    )  # google-genai sends through httpx2 when installed
    http_instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        client = genai.Client(api_key="fake-key", http_options=types.HttpOptions(base_url=root(fake)))
        calls = [
            lambda: client.models.generate_content(model=MODEL, contents=QUESTION),
            lambda: list(client.models.generate_content_stream(model=MODEL, contents=QUESTION)),
            lambda: client.models.embed_content(model=EMBEDDING_MODEL, contents="x"),
        ]
        for call in calls:
            call()
            _check_http_child(otel)
        await client.aio.models.generate_content(model=MODEL, contents=QUESTION)
        _check_http_child(otel)
        [c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents=QUESTION)]
        _check_http_child(otel)
    finally:
        http_instrumentor.uninstrument()


def _check_http_child(otel: Any) -> None:
    spans = otel.spans()
    (llm,) = [s for s in spans if s.instrumentation_scope.name == "llmlens"]
    (http,) = [s for s in spans if s.instrumentation_scope.name != "llmlens"]
    assert http.kind is SpanKind.CLIENT
    assert http.parent is not None and http.parent.span_id == llm.context.span_id
    otel.spans_exporter.clear()


def test_metrics(otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider) -> None:
    client.models.generate_content(model=MODEL, contents=QUESTION, config=config("reasoning=4"))

    metric_attributes = {**base(fake), "gen_ai.response.model": MODEL}
    (duration,) = metric_points(otel, DURATION)
    assert duration.count == 1 and dict(duration.attributes) == metric_attributes
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metric_points(otel, TOKEN_USAGE)}
    assert tokens == {"input": PROMPT_TOKENS, "output": 8 + 4}
    assert not metric_points(otel, semconv.METRIC_TIME_TO_FIRST_CHUNK)


# ============================================================================================== usage


def test_usage_mapping_with_cache_and_thoughts(otel: Any, gemini: Any, client: genai.Client) -> None:
    """input includes cached tokens; output = candidates + thoughts; total_token_count = input + output."""
    response = client.models.generate_content(
        model=MODEL, contents=QUESTION, config=config("cached=5,reasoning=40")
    )

    usage = response.usage_metadata
    attributes = otel.span().attributes
    assert {k: v for k, v in attributes.items() if k.startswith("gen_ai.usage.")} == {
        "gen_ai.usage.input_tokens": usage.prompt_token_count,  # 7, the 5 cached among them
        "gen_ai.usage.output_tokens": usage.candidates_token_count + usage.thoughts_token_count,  # 8 + 40
        "gen_ai.usage.cache_read.input_tokens": 5,
        "gen_ai.usage.reasoning.output_tokens": 40,
        "gen_ai.usage.text.input_tokens": 7,
        "gen_ai.usage.text.cache_read.input_tokens": 5,
    }
    assert attributes["gen_ai.usage.input_tokens"] + attributes["gen_ai.usage.output_tokens"] == (
        usage.total_token_count
    )


def test_usage_mapping_unit() -> None:
    """Every usage field, including tool-use prompt tokens (input) and per-modality details."""
    inv = google_genai.Invocation(None, "generate_content", "gcp.gemini", MODEL)  # type: ignore[arg-type]
    usage = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=1000,
        tool_use_prompt_token_count=50,
        cached_content_token_count=600,
        candidates_token_count=30,
        thoughts_token_count=70,
        total_token_count=1150,
        prompt_tokens_details=[
            types.ModalityTokenCount(modality="TEXT", token_count=742),
            types.ModalityTokenCount(modality="IMAGE", token_count=258),
        ],
        tool_use_prompt_tokens_details=[types.ModalityTokenCount(modality="TEXT", token_count=50)],
        cache_tokens_details=[types.ModalityTokenCount(modality="TEXT", token_count=600)],
        candidates_tokens_details=[
            types.ModalityTokenCount(modality="TEXT", token_count=10),
            types.ModalityTokenCount(modality="AUDIO", token_count=20),
        ],
    )
    google_genai.apply_usage(inv, usage)
    assert (inv.input_tokens, inv.output_tokens) == (1050, 100)
    assert inv.input_tokens + inv.output_tokens == usage.total_token_count
    assert (inv.cache_read_tokens, inv.reasoning_tokens, inv.cache_creation_tokens) == (600, 70, None)
    assert inv.response_attributes == {
        "gen_ai.usage.text.input_tokens": 792,
        "gen_ai.usage.image.input_tokens": 258,
        "gen_ai.usage.text.cache_read.input_tokens": 600,
        "gen_ai.usage.text.output_tokens": 80,  # the candidates' text and the thoughts
        "gen_ai.usage.audio.output_tokens": 20,
    }
    # A chunk without counts (Vertex, before the last) erases nothing.
    google_genai.apply_usage(inv, types.GenerateContentResponseUsageMetadata(traffic_type="ON_DEMAND"))
    assert (inv.input_tokens, inv.output_tokens, inv.cache_read_tokens) == (1050, 100, 600)


def test_image_prompt_tokens_by_modality(otel: Any, gemini: Any, client: genai.Client) -> None:
    image = types.Part.from_bytes(data=bytes(100), mime_type="image/jpeg")
    client.models.generate_content(model=MODEL, contents=[QUESTION, image])
    attributes = otel.span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == PROMPT_TOKENS + 258
    assert attributes["gen_ai.usage.text.input_tokens"] == PROMPT_TOKENS
    assert attributes["gen_ai.usage.image.input_tokens"] == 258


def test_cost_counts_thinking_tokens_as_output(otel: Any, instrument: Any, client: genai.Client) -> None:
    """pydantic/logfire#1494: without the thoughts, Gemini's cost comes out about half of the bill."""
    instrument(prices={f"gcp.gemini/{MODEL}": {"input": 0.3, "output": 2.5, "cache_read": 0.075}})
    client.models.generate_content(model=MODEL, contents=QUESTION, config=config("cached=4,reasoning=100"))

    attributes = otel.span().attributes
    expected = ((PROMPT_TOKENS - 4) * 0.3 + 4 * 0.075 + (8 + 100) * 2.5) / 1_000_000
    assert attributes["gen_ai.usage.cost.amount"] == pytest.approx(expected)
    assert attributes["gen_ai.usage.cost.currency"] == "USD"


# ==================================================================================== finish reasons


@pytest.mark.parametrize(
    ("raw", "called", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_call"),
        ("MAX_TOKENS", False, "length"),
        *[
            (r, False, "content_filter")
            for r in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII")
        ],
        ("IMAGE_SAFETY", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", True, "error"),
        ("LANGUAGE", False, "language"),
        ("OTHER", False, "other"),
        ("SOMETHING_NEW", False, "something_new"),
        (None, False, "error"),
    ],
)
def test_finish_reason_mapping(raw: Any, called: bool, expected: str) -> None:
    assert google_genai.finish_reason(raw, called) == expected
    if raw is not None and raw != "SOMETHING_NEW":
        assert google_genai.finish_reason(types.FinishReason(raw), called) == expected


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("finish=max_tokens", ("length",)),
        ("refusal", ("content_filter",)),
        ("finish=recitation", ("content_filter",)),
    ],
)
def test_finish_reasons_on_the_span(
    otel: Any, gemini: Any, client: genai.Client, scenario: str, expected: Any
) -> None:
    client.models.generate_content(model=MODEL, contents=QUESTION, config=config(scenario))
    assert otel.span().attributes["gen_ai.response.finish_reasons"] == expected


class _NoContent:
    capture_content = False


def test_blocked_prompt_is_content_filter() -> None:
    """A prompt the API blocks has no candidate at all, only prompt_feedback."""
    inv = google_genai.Invocation(_NoContent(), "generate_content", "gcp.gemini", MODEL)  # type: ignore[arg-type]
    response = types.GenerateContentResponse(
        prompt_feedback=types.GenerateContentResponsePromptFeedback(block_reason="SAFETY"),
        usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=9, total_token_count=9),
    )
    google_genai.apply_response(inv, response, 100)
    assert inv.finish_reasons == ["content_filter"]
    assert (inv.input_tokens, inv.output_tokens) == (9, None)


# ================================================================================ tools, AFC, chats


def test_function_call(otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider) -> None:
    response = client.models.generate_content(
        model=MODEL,
        contents=QUESTION,
        config=config(
            "tool",
            tools=[WEATHER_TOOL],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )

    assert response.function_calls[0].args == {"city": "Paris"}
    attributes = dict(otel.span().attributes)
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert attributes["llmlens.response.tool_call_count"] == 1
    assert not CONTENT_KEYS & set(attributes)


def test_function_call_content(otel: Any, captured: Any, client: genai.Client) -> None:
    client.models.generate_content(
        model=MODEL,
        contents=QUESTION,
        config=config(
            "tool",
            tools=[WEATHER_TOOL, types.Tool(google_search=types.GoogleSearch())],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )

    span = otel.span()
    assert content(span, semconv.TOOL_DEFINITIONS) == [
        {"type": "function", "name": "get_weather", "description": "Current weather for a city"},
        {"type": "google_search", "name": "google_search"},
    ]
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_call",
        }
    ]


def test_automatic_function_calling_makes_one_span_per_model_call(
    otel: Any, gemini: Any, client: genai.Client
) -> None:
    """The SDK calls the model, runs get_weather, calls the model again: two sibling spans, no nesting."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as parent:
        response = client.models.generate_content(
            model=MODEL, contents=QUESTION, config=config("tool", tools=[get_weather])
        )

    assert response.text == ANSWER
    assert len(response.automatic_function_calling_history or []) == 3  # question, call, function result
    first, second, handler = otel.spans()
    assert handler.name == "handler"
    for span in (first, second):
        assert span.name == f"generate_content {MODEL}"
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert first.end_time <= second.start_time
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert first.attributes["llmlens.response.tool_call_count"] == 1
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "llmlens.response.tool_call_count" not in second.attributes
    # Each call's own usage: the second prompt holds the call and the function's result.
    assert second.attributes["gen_ai.usage.input_tokens"] > first.attributes["gen_ai.usage.input_tokens"]
    (duration,) = metric_points(otel, DURATION)
    assert duration.count == 2


def test_automatic_function_calling_content(otel: Any, captured: Any, client: genai.Client) -> None:
    client.models.generate_content(model=MODEL, contents=QUESTION, config=config("tool", tools=[get_weather]))

    first, second = otel.spans()
    assert content(first, semconv.TOOL_DEFINITIONS) == [
        {"type": "function", "name": "get_weather", "description": "Current weather for a city."}
    ]
    assert content(second, semconv.INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": None, "response": {"result": "Sunny in Paris"}}],
        },
    ]


@pytest.mark.asyncio
async def test_async_automatic_function_calling(otel: Any, gemini: Any, client: genai.Client) -> None:
    response = await client.aio.models.generate_content(
        model=MODEL, contents=QUESTION, config=config("tool", tools=[get_weather])
    )
    assert response.text == ANSWER
    first, second = otel.spans()
    assert [
        first.attributes["gen_ai.response.finish_reasons"],
        second.attributes["gen_ai.response.finish_reasons"],
    ] == [
        ("tool_call",),
        ("stop",),
    ]


def test_chat_makes_one_span_per_message(otel: Any, gemini: Any, client: genai.Client) -> None:
    chat = client.chats.create(model=MODEL, config=config("chunks=3"))
    chat.send_message("Hello")
    chat.send_message("And again")
    chunks = list(chat.send_message_stream("Once more, streamed"))

    assert len(chunks) == 3
    first, second, third = otel.spans()
    assert [s.name for s in (first, second, third)] == [f"generate_content {MODEL}"] * 3
    assert "gen_ai.request.stream" not in first.attributes
    assert third.attributes["gen_ai.request.stream"] is True
    assert third.attributes["llmlens.stream.outcome"] == "completed"
    # The history grows with each turn: each span has its own request's usage.
    inputs = [s.attributes["gen_ai.usage.input_tokens"] for s in (first, second, third)]
    assert inputs == sorted(inputs) and len(set(inputs)) == 3


def test_chat_with_automatic_function_calling(otel: Any, gemini: Any, client: genai.Client) -> None:
    chat = client.chats.create(model=MODEL, config=config("tool", tools=[get_weather]))
    assert chat.send_message(QUESTION).text == ANSWER
    assert [s.attributes["gen_ai.response.finish_reasons"] for s in otel.spans()] == [
        ("tool_call",),
        ("stop",),
    ]


@pytest.mark.asyncio
async def test_async_chat(otel: Any, gemini: Any, client: genai.Client) -> None:
    chat = client.aio.chats.create(model=MODEL)
    await chat.send_message("Hello")
    chunks = [c async for c in await chat.send_message_stream("Again")]
    assert chunks
    first, second = otel.spans()
    assert "gen_ai.request.stream" not in first.attributes
    assert second.attributes["llmlens.stream.outcome"] == "completed"


# ========================================================================================== content


def test_content_capture(otel: Any, captured: Any, client: genai.Client) -> None:
    image = types.Part.from_bytes(data=bytes(300), mime_type="image/png")
    document = types.Part.from_uri(file_uri="gs://bucket/report.pdf", mime_type="application/pdf")
    client.models.generate_content(
        model=MODEL,
        contents=[QUESTION, image, document],
        config=config(system_instruction="Be brief."),
    )

    span = otel.span()
    assert content(span, semconv.SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be brief."}]
    assert content(span, semconv.INPUT_MESSAGES) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": QUESTION},
                # Inline bytes never reach the span: a descriptor stands in for them.
                {
                    "type": "blob",
                    "modality": "image",
                    "content": "[llmlens: 300 bytes of base64 data elided]",
                    "mime_type": "image/png",
                },
                {
                    "type": "uri",
                    "modality": "document",
                    "uri": "gs://bucket/report.pdf",
                    "mime_type": "application/pdf",
                },
            ],
        }
    ]
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ]
    assert semconv.TOOL_DEFINITIONS not in span.attributes


def test_content_capture_history_and_thoughts(otel: Any, captured: Any, client: genai.Client) -> None:
    history = [
        types.Content(role="user", parts=[types.Part.from_text(text="Hi")]),
        types.Content(role="model", parts=[types.Part.from_text(text="Hello!")]),
        {"role": "user", "parts": [{"text": QUESTION}]},
    ]
    client.models.generate_content(
        model=MODEL,
        contents=history,
        config=config("chunks=2", thinking_config=types.ThinkingConfig(include_thoughts=True)),
    )

    span = otel.span()
    assert content(span, semconv.INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}]},
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
    ]
    assert content(span, semconv.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "reasoning",
                    "content": "**Planning the answer**\n\nThe user wants a short, friendly reply.",
                },
                {"type": "text", "content": "Hello from"},
            ],
            "finish_reason": "stop",
        }
    ]


def test_content_is_truncated(otel: Any, instrument: Any, client: genai.Client) -> None:
    instrument(pricing=False, capture_content="SPAN_ONLY", content_max_length=5)
    client.models.generate_content(model=MODEL, contents=QUESTION)
    (message,) = content(otel.span(), semconv.INPUT_MESSAGES)
    assert message["parts"][0]["content"].startswith("What …[llmlens: ")


def test_content_event_only(otel: Any, instrument: Any, client: genai.Client) -> None:
    instrument(pricing=False, capture_content="EVENT_ONLY")
    client.models.generate_content(
        model=MODEL, contents=QUESTION, config=config(system_instruction="Be brief.")
    )

    assert not CONTENT_KEYS & set(otel.span().attributes)
    (log,) = otel.logs()
    attributes = log.log_record.attributes
    assert attributes[semconv.INPUT_MESSAGES][0]["parts"][0]["content"] == QUESTION
    assert attributes[semconv.SYSTEM_INSTRUCTIONS][0]["content"] == "Be brief."
    assert attributes[semconv.OUTPUT_MESSAGES][0]["finish_reason"] == "stop"


# ========================================================================================= embeddings


def test_embed_content(otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider) -> None:
    client.models.embed_content(
        model=EMBEDDING_MODEL,
        contents=["first text", "second"],
        config=types.EmbedContentConfig(output_dimensionality=16, task_type="RETRIEVAL_DOCUMENT"),
    )

    span = otel.span()
    assert span.name == f"embeddings {EMBEDDING_MODEL}"
    assert dict(span.attributes) == {
        **base(fake, model=EMBEDDING_MODEL, operation="embeddings"),
        "gen_ai.embeddings.dimension.count": 16,
    }


@pytest.mark.asyncio
async def test_async_vertex_embed_content_reports_tokens(
    otel: Any, gemini: Any, vertex: genai.Client, fake: FakeProvider
) -> None:
    await vertex.aio.models.embed_content(model=EMBEDDING_MODEL, contents="three little words")

    assert dict(otel.span().attributes) == {
        **base(fake, model=EMBEDDING_MODEL, operation="embeddings", provider="gcp.vertex_ai"),
        "gen_ai.embeddings.dimension.count": 8,
        "gen_ai.usage.input_tokens": 3,
    }


# ============================================================================================= errors


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, errors.ClientError), (404, errors.ClientError), (500, errors.ServerError)],
)
def test_http_error(
    otel: Any, gemini: Any, client: genai.Client, fake: FakeProvider, status: int, error_class: type
) -> None:
    with pytest.raises(error_class):
        client.models.generate_content(model=MODEL, contents=QUESTION, config=config(f"status={status}"))

    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes) == {
        **base(fake),
        "error.type": f"google.genai.errors.{error_class.__name__}",
        "http.response.status_code": status,
    }
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == f"google.genai.errors.{error_class.__name__}"
    (duration,) = metric_points(otel, DURATION)
    assert duration.attributes["error.type"] == f"google.genai.errors.{error_class.__name__}"
    assert not metric_points(otel, TOKEN_USAGE)


@pytest.mark.asyncio
async def test_async_http_error(otel: Any, gemini: Any, client: genai.Client) -> None:
    with pytest.raises(errors.ClientError):
        await client.aio.models.generate_content(model="fake-error-429", contents=QUESTION)
    attributes = otel.span().attributes
    assert (attributes["error.type"], attributes["http.response.status_code"]) == (
        "google.genai.errors.ClientError",
        429,
    )


def test_embed_error(otel: Any, gemini: Any, client: genai.Client) -> None:
    with pytest.raises(errors.ClientError):
        client.models.embed_content(
            model=EMBEDDING_MODEL,
            contents="x",
            config=types.EmbedContentConfig(
                http_options=types.HttpOptions(headers={"x-fake-scenario": "status=403"})
            ),
        )
    assert otel.span().attributes["http.response.status_code"] == 403


def test_connection_refused(otel: Any, gemini: Any, closed_port: int) -> None:
    client = genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{closed_port}")
    )
    with pytest.raises(Exception) as caught:
        client.models.generate_content(model=MODEL, contents=QUESTION)
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["server.port"] == closed_port
    assert span.attributes["error.type"].endswith(type(caught.value).__name__)
    assert "http.response.status_code" not in span.attributes


# ============================================================================= never in the user's way


def test_responses_are_identical_with_and_without_llmlens(
    otel: Any, instrument: Any, client: genai.Client
) -> None:
    def call() -> Any:
        response = client.models.generate_content(
            model=MODEL, contents=QUESTION, config=config("chunks=5,reasoning=2")
        )
        return response.model_dump(exclude={"sdk_http_response", "response_id"})

    plain = call()
    instrumentor = instrument()
    assert call() == plain
    instrumentor.uninstrument()
    assert call() == plain
    assert len(otel.spans()) == 1


def test_uninstrument_restores_every_method(instrument: Any) -> None:
    from google.genai import chats, models

    originals = {
        (cls, name): cls.__dict__[name]
        for cls, names in (
            (
                models.Models,
                (
                    "_generate_content",
                    "_generate_content_stream",
                    "_embed_content",
                    "generate_content_stream",
                ),
            ),
            (
                models.AsyncModels,
                (
                    "_generate_content",
                    "_generate_content_stream",
                    "_embed_content",
                    "generate_content_stream",
                ),
            ),
            (chats.Chat, ("send_message_stream",)),
            (chats.AsyncChat, ("send_message_stream",)),
        )
        for name in names
    }
    instrumentor = instrument()
    assert all(cls.__dict__[name] is not method for (cls, name), method in originals.items())
    instrumentor.uninstrument()
    assert all(cls.__dict__[name] is method for (cls, name), method in originals.items())


def test_suppressed_calls_make_no_span(otel: Any, gemini: Any, client: genai.Client) -> None:
    with suppress_instrumentation():
        client.models.generate_content(model=MODEL, contents=QUESTION)
        list(client.models.generate_content_stream(model=MODEL, contents=QUESTION))
    assert otel.spans() == []


def test_instrumentation_failure_never_breaks_the_call(
    otel: Any, gemini: Any, client: genai.Client, monkeypatch: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in llmlens")

    monkeypatch.setattr(google_genai, "apply_response", broken)
    monkeypatch.setattr(google_genai, "request_attributes", broken)
    assert client.models.generate_content(model=MODEL, contents=QUESTION).text == ANSWER
    assert otel.spans() == []  # the call went on untraced: the request could not be read

    monkeypatch.undo()
    monkeypatch.setattr(google_genai, "apply_response", broken)
    assert client.models.generate_content(model=MODEL, contents=QUESTION).text == ANSWER
    assert otel.span().status.status_code is StatusCode.OK


def test_model_name() -> None:
    assert google_genai.model_name("gemini-2.5-flash") == "gemini-2.5-flash"
    assert google_genai.model_name("models/gemini-2.5-flash") == "gemini-2.5-flash"
    assert google_genai.model_name("publishers/google/models/gemini-2.5-pro") == "gemini-2.5-pro"
    assert google_genai.model_name("projects/p/locations/l/publishers/google/models/x-1") == "x-1"
    assert google_genai.model_name("tunedModels/my-model-123") == "tunedModels/my-model-123"
    assert (
        google_genai.model_name("projects/p/locations/l/endpoints/42")
        == "projects/p/locations/l/endpoints/42"
    )
    assert google_genai.model_name(None) is None


# ============================================================================ recorded real responses


def _recordings() -> list[str]:
    from replay_server import RECORDINGS

    return sorted(path.stem for path in (RECORDINGS / "gemini").glob("*.json"))


FINISH = {
    "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}  # fmt: skip


def _events(rec: Recording) -> list[dict[str, Any]]:
    """The JSON payloads of a recorded stream (its `data:` lines) or the one JSON body."""
    if not rec.is_sse:
        return [json.loads(rec.body)]
    return [json.loads(line[6:]) for line in rec.body.splitlines() if line.startswith("data: ")]


class RecordedCall:
    """How to make the recorded request with the SDK, and what its span should say (from the recording)."""

    def __init__(self, name: str, port: int) -> None:
        self.rec = Recording.load(f"gemini/{name}")
        path = self.rec.path
        self.vertex = "/publishers/" in path
        self.model = path.rsplit("models/", 1)[1].split(":", 1)[0]
        self.method = path.rsplit(":", 1)[1]
        self.stream = self.method == "streamGenerateContent"
        self.embed = "mbed" in self.method
        self.port = port

    def client(self) -> genai.Client:
        url = f"http://127.0.0.1:{self.port}"
        if self.vertex:  # the recorded path names the project and location
            return genai.Client(
                vertexai=True,
                project="test-project",
                location="test-location",
                credentials=Credentials("fake"),
                http_options=types.HttpOptions(base_url=url, api_version="v1beta1"),
            )
        return genai.Client(
            api_key="fake-key", http_options=types.HttpOptions(base_url=url, api_version="v1beta")
        )

    def kwargs(self) -> dict[str, Any]:
        body = self.rec.request_body
        if self.embed:
            (request,) = body["requests"]
            return {
                "model": self.model,
                "contents": request["content"]["parts"][0]["text"],
                "config": types.EmbedContentConfig(
                    output_dimensionality=request.get("outputDimensionality"),
                    task_type=request.get("taskType"),
                ),
            }
        fields = dict(body.get("generationConfig") or {})
        for key in ("tools", "toolConfig", "systemInstruction", "cachedContent"):
            if key in body:
                fields[key] = copy.deepcopy(body[key])
        return {
            "model": self.model,
            "contents": copy.deepcopy(body["contents"]),
            "config": types.GenerateContentConfig.model_validate(fields) if fields else None,
        }

    def call(self, client: genai.Client, is_async: bool) -> Any:
        models = client.aio.models if is_async else client.models
        if self.embed:
            call = models.embed_content(**self.kwargs())
        elif self.stream:
            if not is_async:
                return [
                    c.model_dump(exclude={"sdk_http_response"})
                    for c in models.generate_content_stream(**self.kwargs())
                ]

            async def chunks() -> list[Any]:
                stream = await models.generate_content_stream(**self.kwargs())
                return [c.model_dump(exclude={"sdk_http_response"}) async for c in stream]

            call = chunks()
        else:
            call = models.generate_content(**self.kwargs())
        result = asyncio.run(call) if is_async else call
        return result if isinstance(result, list) else result.model_dump(exclude={"sdk_http_response"})

    def request_attributes(self) -> dict[str, Any]:
        """gen_ai.request.* from the recorded generationConfig (the parameters these recordings use)."""
        config = self.rec.request_body.get("generationConfig") or {}
        attributes: dict[str, Any] = {}
        for key, attribute in (
            ("temperature", "gen_ai.request.temperature"),
            ("maxOutputTokens", "gen_ai.request.max_tokens"),
        ):
            if key in config:
                attributes[attribute] = config[key]
        thinking = config.get("thinkingConfig") or {}
        budget = thinking.get("thinking_budget", thinking.get("thinkingBudget"))
        if budget is not None:
            attributes["gen_ai.request.reasoning.level"] = str(budget)
        return attributes

    def expected(self, capture: bool) -> tuple[dict[str, Any], int]:
        """The span attributes and the output chunk count the recording implies."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "embeddings" if self.embed else "generate_content",
            "gen_ai.provider.name": "gcp.vertex_ai" if self.vertex else "gcp.gemini",
            "gen_ai.request.model": self.model,
            "server.address": "127.0.0.1",
            "server.port": self.port,
        }
        if self.stream:
            attributes["gen_ai.request.stream"] = True
        attributes.update(self.request_attributes())
        events = _events(self.rec)
        if self.rec.status != 200:
            error = events[0]["error"]
            name = "ServerError" if error["code"] >= 500 else "ClientError"
            attributes.update(
                {"error.type": f"google.genai.errors.{name}", "http.response.status_code": self.rec.status}
            )
            return attributes, 0
        if self.embed:
            attributes["gen_ai.embeddings.dimension.count"] = len(events[0]["embeddings"][0]["values"])
            return attributes, 0
        first, usage = events[0], None
        reasons: dict[int, str] = {}
        calls = 0
        chunks = 0
        for event in events:
            if any(
                k in (event.get("usageMetadata") or {}) for k in ("promptTokenCount", "candidatesTokenCount")
            ):
                usage = event["usageMetadata"]
            for position, candidate in enumerate(event.get("candidates") or []):
                index = candidate.get("index", position)
                parts = (candidate.get("content") or {}).get("parts") or []
                calls += sum("functionCall" in p for p in parts)
                if "finishReason" in candidate:
                    called = calls > 0
                    raw = candidate["finishReason"]
                    reason = FINISH.get(raw, raw.lower())
                    reasons[index] = "tool_call" if reason == "stop" and called else reason
            chunks += bool(event.get("candidates"))
        attributes["gen_ai.response.id"] = first["responseId"]
        attributes["gen_ai.response.model"] = first["modelVersion"]
        attributes["gen_ai.response.finish_reasons"] = tuple(reasons[i] for i in sorted(reasons))
        if calls:
            attributes["llmlens.response.tool_call_count"] = calls
        assert usage is not None
        thoughts = usage.get("thoughtsTokenCount")
        attributes["gen_ai.usage.input_tokens"] = usage["promptTokenCount"] + usage.get(
            "toolUsePromptTokenCount", 0
        )
        attributes["gen_ai.usage.output_tokens"] = usage.get("candidatesTokenCount", 0) + (thoughts or 0)
        # The mapping's invariant: input + output is Google's own total.
        assert (
            attributes["gen_ai.usage.input_tokens"] + attributes["gen_ai.usage.output_tokens"]
            == usage["totalTokenCount"]
        )
        if "cachedContentTokenCount" in usage:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage["cachedContentTokenCount"]
        if thoughts is not None:
            attributes["gen_ai.usage.reasoning.output_tokens"] = thoughts
        for key, template in (
            ("promptTokensDetails", "gen_ai.usage.{}.input_tokens"),
            ("cacheTokensDetails", "gen_ai.usage.{}.cache_read.input_tokens"),
            ("candidatesTokensDetails", "gen_ai.usage.{}.output_tokens"),
        ):
            for detail in usage.get(key) or ():
                extra = (
                    (thoughts or 0)
                    if key == "candidatesTokensDetails" and detail["modality"] == "TEXT"
                    else 0
                )
                attributes[template.format(detail["modality"].lower())] = detail["tokenCount"] + extra
        if self.stream:
            attributes["llmlens.stream.chunk_count"] = chunks
            attributes["llmlens.stream.outcome"] = "completed"
        if capture and not self.embed:
            texts = "".join(
                p.get("text", "")
                for e in events
                for c in e.get("candidates") or []
                for p in (c.get("content") or {}).get("parts") or []
                if not p.get("thought")
            )
            attributes[semconv.OUTPUT_MESSAGES] = texts  # compared as the text parts, see below
        return attributes, chunks


def test_every_recording_is_exercised() -> None:
    names = _recordings()
    assert len(names) >= 9, names
    assert {"generate_content_cached", "stream_thinking", "vertex_stream", "model_not_found"} <= set(names)


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.mark.parametrize("mode", ["sync", "async", "sync-content"])
@pytest.mark.parametrize("name", _recordings())
def test_recorded(otel: Any, instrument: Any, replay: ReplayServer, name: str, mode: str) -> None:
    recorded = RecordedCall(name, replay.port)
    replay.use(recorded.rec)
    client, is_async, capture = recorded.client(), mode == "async", mode == "sync-content"

    def run() -> Any:
        if recorded.rec.status != 200:
            with pytest.raises(errors.APIError) as caught:
                recorded.call(client, is_async)
            return (type(caught.value), caught.value.code, caught.value.status)
        return recorded.call(client, is_async)

    baseline = run()
    instrumentor = instrument(pricing=False, capture_content="SPAN_ONLY" if capture else None)
    traced = run()
    assert traced == baseline  # the user sees exactly what they saw without llmlens

    sent = replay.requests[-1]
    assert (sent.method, sent.path) == (recorded.rec.method, recorded.rec.path)
    body = recorded.rec.request_body
    if not recorded.embed:  # the SDK sent the recorded conversation
        assert sent.json["contents"] == body["contents"]
        assert set(sent.json) == set(body)

    span = otel.span()
    expected, chunks = recorded.expected(capture)
    attributes = dict(span.attributes)
    if recorded.stream:
        ttfc = attributes.pop("gen_ai.response.time_to_first_chunk")
        assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9
    if capture and not recorded.embed:  # input content: tests above; here, the output against the recording
        assert json.loads(attributes.pop(semconv.INPUT_MESSAGES))[0]["role"] == "user"
        for key in (semconv.SYSTEM_INSTRUCTIONS, semconv.TOOL_DEFINITIONS):
            attributes.pop(key, None)
    if semconv.OUTPUT_MESSAGES in expected:
        text = expected.pop(semconv.OUTPUT_MESSAGES)
        (message,) = json.loads(attributes.pop(semconv.OUTPUT_MESSAGES))
        assert "".join(p["content"] for p in message["parts"] if p["type"] == "text") == text
        assert message["finish_reason"] == expected["gen_ai.response.finish_reasons"][0]
    assert attributes == expected
    assert span.status.status_code is (StatusCode.ERROR if recorded.rec.status != 200 else StatusCode.OK)
    (duration,) = metric_points(otel, DURATION)
    assert duration.count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metric_points(otel, TOKEN_USAGE)}
    if "gen_ai.usage.output_tokens" in expected:
        assert tokens == {
            "input": expected["gen_ai.usage.input_tokens"],
            "output": expected["gen_ai.usage.output_tokens"],
        }
    if recorded.stream:
        (ttfc_point,) = metric_points(otel, semconv.METRIC_TIME_TO_FIRST_CHUNK)
        assert ttfc_point.count == 1 and chunks >= 1

    instrumentor.uninstrument()
    assert run() == baseline
    gc.collect()
    assert len(otel.spans()) == 1


def test_recorded_cache_and_thinking_mapping(otel: Any, gemini: Any, replay: ReplayServer) -> None:
    """The recorded cache hit: 3520 prompt tokens of which 3512 cached; 2 answer + 42 thought tokens."""
    recorded = RecordedCall("generate_content_cached", replay.port)
    replay.use(recorded.rec)
    recorded.call(recorded.client(), is_async=False)
    usage = {k: v for k, v in otel.span().attributes.items() if k.startswith("gen_ai.usage.")}
    assert usage == {
        "gen_ai.usage.input_tokens": 3520,
        "gen_ai.usage.output_tokens": 44,
        "gen_ai.usage.cache_read.input_tokens": 3512,
        "gen_ai.usage.reasoning.output_tokens": 42,
        "gen_ai.usage.text.input_tokens": 3520,
        "gen_ai.usage.text.cache_read.input_tokens": 3512,
    }


def test_recorded_image_bytes_are_never_captured(otel: Any, captured: Any, replay: ReplayServer) -> None:
    recorded = RecordedCall("generate_content_thinking", replay.port)
    replay.use(recorded.rec)
    client = recorded.client()
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    client.models.generate_content(
        model=recorded.model, contents=[types.Part.from_bytes(data=png, mime_type="image/png"), "Explain"]
    )
    attribute = otel.span().attributes[semconv.INPUT_MESSAGES]
    assert "iVBOR" not in attribute and f"{len(png)} bytes of base64 data elided" in attribute
