"""AWS Bedrock Runtime through the real boto3 client, against the fake Bedrock on 127.0.0.1.

Non-streaming calls (`converse`, `invoke_model` for each model family), tool use, usage mapping with
prompt-cache tokens, finish reasons, HTTP errors, content capture, the endpoint, and the patch point
itself (other AWS calls pass through; uninstrument restores botocore). Streams: test_stream_contract.py
(exit paths) and test_bedrock_streams.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3  # a dev dependency: missing, the module fails to import (never skips)
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, ResponseStreamingError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from opentelemetry.trace import SpanKind, StatusCode

from fakes.bedrock_server import BedrockServer
from llmlens.core.invocation import Invocation
from llmlens.providers.bedrock.invoke_formats import (
    AnthropicFormat,
    LlamaFormat,
    NovaFormat,
    OtherFormat,
    format_for,
)
from llmlens.providers.bedrock.usage import converse_usage

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
MISTRAL_LARGE = "mistral.mistral-large-2407-v1:0"
TITAN_EMBED = "amazon.titan-embed-text-v2:0"
MESSAGES: list[Any] = [{"role": "user", "content": [{"text": "What is the weather in Paris?"}]}]
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = {
    "tools": [
        {"toolSpec": {"name": "get_weather", "description": "Weather of a city",
                      "inputSchema": {"json": WEATHER_SCHEMA}}}
    ]
}  # fmt: skip

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(scope="module")
def bedrock() -> Iterator[BedrockServer]:
    with BedrockServer() as server:
        yield server


def attrs(span: Any) -> dict[str, Any]:
    """Span attributes without the cost ones (prices change; pricing has its own tests)."""
    return {
        k: v
        for k, v in (span.attributes or {}).items()
        if not k.startswith(("gen_ai.usage.cost.", "llmlens.cost."))
    }


def anthropic_body(**extra: Any) -> str:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200, "messages": [
        {"role": "user", "content": "What is the weather in Paris?"}]}  # fmt: skip
    return json.dumps({**body, **extra})


def nova_body(**extra: Any) -> str:
    return json.dumps({"schemaVersion": "messages-v1", "messages": MESSAGES, **extra})


# ================================================================================================ Converse


def test_converse_span(otel: Any, instrumented: Any, bedrock: BedrockServer) -> None:
    client = bedrock.client()
    response = client.converse(
        modelId=CLAUDE,
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 100, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"]},
        additionalModelRequestFields={"top_k": 40},
    )
    span = otel.span()
    assert span.name == f"chat {CLAUDE}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.OK
    usage = response["usage"]
    assert attrs(span) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": CLAUDE,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.stop_sequences": ("END",),
        "server.address": "127.0.0.1",
        "server.port": bedrock.port,
        "aws.request_id": response["ResponseMetadata"]["RequestId"],
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": usage["inputTokens"],
        "gen_ai.usage.output_tokens": usage["outputTokens"],
    }
    metrics = otel.metrics()
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1
    assert dict(duration.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": CLAUDE,
        "server.address": "127.0.0.1",
        "server.port": bedrock.port,
    }
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"]}
    assert tokens == {"input": usage["inputTokens"], "output": usage["outputTokens"]}
    assert "gen_ai.client.operation.time_to_first_chunk" not in metrics


def test_converse_usage_adds_the_cache_tokens_to_the_input(
    otel: Any, instrumented: Any, bedrock: BedrockServer
) -> None:
    client = bedrock.client(scenario="input_tokens=12,cache_read=300,cache_write=40")
    response = client.converse(modelId=CLAUDE, messages=MESSAGES)
    usage = response["usage"]
    # What Bedrock sends: inputTokens without the cache; the total counts them once.
    assert (usage["inputTokens"], usage["cacheReadInputTokens"], usage["cacheWriteInputTokens"]) == (
        12,
        300,
        40,
    )
    assert usage["totalTokens"] == 12 + 300 + 40 + usage["outputTokens"]
    span = attrs(otel.span())
    assert span["gen_ai.usage.input_tokens"] == 352
    assert span["gen_ai.usage.cache_read.input_tokens"] == 300
    assert span["gen_ai.usage.cache_creation.input_tokens"] == 40
    assert span["gen_ai.usage.output_tokens"] == usage["outputTokens"]
    (input_point,) = [
        p for p in otel.metrics()["gen_ai.client.token.usage"] if p.attributes["gen_ai.token.type"] == "input"
    ]
    assert input_point.sum == 352


def test_usage_whose_total_already_counts_the_cache_is_not_summed_twice() -> None:
    # Some models report an inputTokens that already includes the cache; totalTokens tells them apart.
    inv = Invocation(None, "chat", "aws.bedrock", "m")  # type: ignore[arg-type]
    converse_usage(
        inv, {"inputTokens": 352, "outputTokens": 8, "totalTokens": 360,
              "cacheReadInputTokens": 300, "cacheWriteInputTokens": 40},
    )  # fmt: skip
    assert (inv.input_tokens, inv.output_tokens, inv.cache_read_tokens, inv.cache_creation_tokens) == (
        352, 8, 300, 40,
    )  # fmt: skip
    inv = Invocation(None, "chat", "aws.bedrock", "m")  # type: ignore[arg-type]
    converse_usage(inv, {"inputTokens": 12, "outputTokens": 8, "cacheReadInputTokens": 300})
    assert (inv.input_tokens, inv.cache_read_tokens, inv.cache_creation_tokens) == (312, 300, None)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_call"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("malformed_tool_use", "malformed_tool_use"),  # no schema value for it: sent as is
    ],
)
def test_converse_finish_reasons(
    otel: Any, instrumented: Any, bedrock: BedrockServer, stop: str, expected: str
) -> None:
    response = bedrock.client(scenario=f"stop={stop}").converse(modelId=NOVA, messages=MESSAGES)
    assert response["stopReason"] == stop
    assert attrs(otel.span())["gen_ai.response.finish_reasons"] == (expected,)


def test_converse_max_tokens_cuts_the_answer(otel: Any, instrumented: Any, bedrock: BedrockServer) -> None:
    response = bedrock.client().converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 3})
    assert response["stopReason"] == "max_tokens"
    span = attrs(otel.span())
    assert span["gen_ai.response.finish_reasons"] == ("length",)
    assert span["gen_ai.usage.output_tokens"] == 3


def test_converse_tool_use(otel: Any, instrument: Any, bedrock: BedrockServer) -> None:
    instrument(capture_content=True)
    client = bedrock.client(scenario="chunks=2,tool")
    response = client.converse(modelId=CLAUDE, messages=MESSAGES, toolConfig=TOOLS)
    blocks = response["output"]["message"]["content"]
    tool_use = blocks[1]["toolUse"]
    assert response["stopReason"] == "tool_use"
    span = attrs(otel.span())
    assert span["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert span["llmlens.response.tool_call_count"] == 1
    assert json.loads(span["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "description": "Weather of a city"}
    ]
    assert json.loads(span["gen_ai.output.messages"]) == [
        {"role": "assistant", "finish_reason": "tool_call", "parts": [
            {"type": "text", "content": blocks[0]["text"]},
            {"type": "tool_call", "id": tool_use["toolUseId"], "name": "get_weather",
             "arguments": {"city": "Paris", "unit": "celsius"}},
        ]},
    ]  # fmt: skip

    # The next turn sends the tool's result back.
    otel.spans_exporter.clear()
    followup = [
        *MESSAGES,
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": [{"toolResult": {"toolUseId": tool_use["toolUseId"],
                                                     "content": [{"json": {"temperature": 21}}]}}]},
    ]  # fmt: skip
    bedrock.client().converse(modelId=CLAUDE, messages=followup, toolConfig=TOOLS)
    messages = json.loads(attrs(otel.span())["gen_ai.input.messages"])
    assert messages[1]["parts"][1] == {
        "type": "tool_call", "id": tool_use["toolUseId"], "name": "get_weather",
        "arguments": {"city": "Paris", "unit": "celsius"},
    }  # fmt: skip
    assert messages[2] == {
        "role": "user",
        "parts": [
            {"type": "tool_call_response", "id": tool_use["toolUseId"], "response": {"temperature": 21}}
        ],
    }


def test_converse_content_is_not_captured_by_default(
    otel: Any, instrumented: Any, bedrock: BedrockServer
) -> None:
    bedrock.client(scenario="tool").converse(
        modelId=CLAUDE, messages=MESSAGES, system=[{"text": "Be brief."}], toolConfig=TOOLS
    )
    span = attrs(otel.span())
    for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                "gen_ai.tool.definitions"):  # fmt: skip
        assert key not in span
    assert span["llmlens.response.tool_call_count"] == 1


def test_converse_content_capture(otel: Any, instrument: Any, bedrock: BedrockServer) -> None:
    instrument(capture_content="SPAN_AND_EVENT")
    image = b"\x89PNG\r\n" + bytes(300)
    messages = [{"role": "user", "content": [
        {"text": "What is in this picture?"},
        {"image": {"format": "png", "source": {"bytes": image}}},
        {"document": {"format": "pdf", "name": "report", "source": {"s3Location": {"uri": "s3://bucket/r.pdf"}}}},
    ]}]  # fmt: skip
    system = [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}]
    response = bedrock.client(scenario="chunks=3").converse(modelId=NOVA, messages=messages, system=system)
    span = attrs(otel.span())
    assert json.loads(span["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(span["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [
            {"type": "text", "content": "What is in this picture?"},
            {"type": "blob", "modality": "image", "mime_type": "image/png",
             "content": f"[llmlens: {len(image)} bytes of base64 data elided]"},
            {"type": "uri", "modality": "document", "uri": "s3://bucket/r.pdf",
             "mime_type": "application/pdf"},
        ]},
    ]  # fmt: skip
    text = response["output"]["message"]["content"][0]["text"]
    assert json.loads(span["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]
    (record,) = otel.logs()
    event = record.log_record
    assert event.event_name == "gen_ai.client.inference.operation.details"
    assert event.attributes["gen_ai.output.messages"][0]["parts"][0]["content"] == text
    assert event.attributes["gen_ai.provider.name"] == "aws.bedrock"


# ============================================================================================= InvokeModel

CLAUDE_BODY = anthropic_body(temperature=0.2, top_k=5)
NOVA_BODY = nova_body(inferenceConfig={"maxTokens": 200, "topP": 0.8})
FAMILIES = [
    pytest.param(CLAUDE, CLAUDE_BODY, "chat", "anthropic", id="anthropic"),
    pytest.param(NOVA, NOVA_BODY, "chat", "nova", id="nova"),
    pytest.param(LLAMA, json.dumps({"prompt": "Weather in Paris?", "max_gen_len": 200}), "text_completion",
                 "llama", id="llama"),
    pytest.param(MISTRAL, json.dumps({"prompt": "<s>[INST] Weather in Paris? [/INST]", "max_tokens": 200}),
                 "text_completion", "mistral", id="mistral"),
    pytest.param(MISTRAL_LARGE, json.dumps({"messages": [{"role": "user", "content": "Weather?"}],
                                            "max_tokens": 200}), "chat", "mistral-chat", id="mistral-chat"),
    pytest.param(f"us.{CLAUDE}", CLAUDE_BODY, "chat", "anthropic", id="cross-region-profile"),
    pytest.param(f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.{NOVA}", NOVA_BODY, "chat",
                 "nova", id="inference-profile-arn"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "body", "operation", "family"), FAMILIES)
def test_invoke_model_families(
    otel: Any, instrument: Any, bedrock: BedrockServer, model: str, body: str, operation: str, family: str
) -> None:
    instrument(capture_content=True)
    response = bedrock.client(scenario="chunks=5").invoke_model(modelId=model, body=body)
    # The user still gets an unread StreamingBody with every byte.
    assert isinstance(response["body"], StreamingBody)
    payload = json.loads(response["body"].read())
    assert response["body"].read() == b""
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    span = otel.span()
    assert span.name == f"{operation} {model}"
    assert span.status.status_code is StatusCode.OK
    got = attrs(span)
    assert got["gen_ai.operation.name"] == operation
    assert got["gen_ai.provider.name"] == "aws.bedrock"
    assert got["gen_ai.request.model"] == model
    assert got["gen_ai.request.max_tokens"] == 200
    assert got["aws.request_id"] == response["ResponseMetadata"]["RequestId"]
    assert got["gen_ai.usage.input_tokens"] == int(headers["x-amzn-bedrock-input-token-count"])
    assert got["gen_ai.usage.output_tokens"] == int(headers["x-amzn-bedrock-output-token-count"]) == 5
    assert got["gen_ai.response.finish_reasons"] == ("stop",)
    text = {
        "anthropic": lambda p: p["content"][0]["text"],
        "nova": lambda p: p["output"]["message"]["content"][0]["text"],
        "llama": lambda p: p["generation"],
        "mistral": lambda p: p["outputs"][0]["text"],
        "mistral-chat": lambda p: p["choices"][0]["message"]["content"],
    }[family](payload)
    assert json.loads(got["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]
    assert json.loads(got["gen_ai.input.messages"])[0]["role"] == "user"
    if family == "anthropic":
        assert (got["gen_ai.response.id"], got["gen_ai.response.model"]) == (payload["id"], payload["model"])
        assert (got["gen_ai.request.temperature"], got["gen_ai.request.top_k"]) == (0.2, 5)
    if family == "nova":
        assert got["gen_ai.request.top_p"] == 0.8


@pytest.mark.parametrize(
    ("model", "body"),
    [(CLAUDE, anthropic_body()), (NOVA, nova_body())],
    ids=["anthropic", "nova"],
)
def test_invoke_model_usage_with_cache(
    otel: Any, instrumented: Any, bedrock: BedrockServer, model: str, body: str
) -> None:
    client = bedrock.client(scenario="chunks=4,input_tokens=9,cache_read=200,cache_write=30")
    response = client.invoke_model(modelId=model, body=body)
    payload = json.loads(response["body"].read())
    usage = payload["usage"]
    if model == CLAUDE:  # Anthropic's own names; input_tokens leaves the cache out
        names = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    else:  # Nova's InvokeModel body: `...TokenCount` names
        names = ("inputTokens", "cacheReadInputTokenCount", "cacheWriteInputTokenCount")
    assert tuple(usage[name] for name in names) == (9, 200, 30)
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "9"
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == "200"
    span = attrs(otel.span())
    assert span["gen_ai.usage.input_tokens"] == 239
    assert span["gen_ai.usage.cache_read.input_tokens"] == 200
    assert span["gen_ai.usage.cache_creation.input_tokens"] == 30
    assert span["gen_ai.usage.output_tokens"] == 4


@pytest.mark.parametrize(
    ("model", "body", "arguments"),
    [
        (CLAUDE, anthropic_body(tools=[{"name": "get_weather", "input_schema": {"type": "object"}}]), None),
        (NOVA, nova_body(toolConfig=TOOLS), None),
        (MISTRAL_LARGE, json.dumps({
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        }), None),
    ],
    ids=["anthropic", "nova", "mistral-chat"],
)  # fmt: skip
def test_invoke_model_tool_use(
    otel: Any, instrument: Any, bedrock: BedrockServer, model: str, body: str, arguments: Any
) -> None:
    instrument(capture_content=True)
    response = bedrock.client(scenario="chunks=0,tool").invoke_model(modelId=model, body=body)
    json.loads(response["body"].read())
    span = attrs(otel.span())
    assert span["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert span["llmlens.response.tool_call_count"] == 1
    (message,) = json.loads(span["gen_ai.output.messages"])
    (call,) = [p for p in message["parts"] if p["type"] == "tool_call"]
    assert call["name"] == "get_weather"
    assert call["arguments"] == {"city": "Paris", "unit": "celsius"}
    assert call["id"].startswith("tooluse_fake")
    assert json.loads(span["gen_ai.tool.definitions"])[0]["name"] == "get_weather"


def test_invoke_model_system_prompt_placement(otel: Any, instrument: Any, bedrock: BedrockServer) -> None:
    # Anthropic's `system`, passed apart from the messages, is gen_ai.system_instructions; a `system`
    # message of an OpenAI-style chat (Mistral Large) is part of its history: an input message.
    instrument(capture_content=True)
    client = bedrock.client(scenario="chunks=2")
    client.invoke_model(modelId=CLAUDE, body=anthropic_body(system="Be brief."))["body"].read()
    mistral = {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"}]
    }
    client.invoke_model(modelId=MISTRAL_LARGE, body=json.dumps(mistral))["body"].read()
    claude, large = (attrs(s) for s in sorted(otel.spans(), key=lambda s: s.start_time))
    assert json.loads(claude["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(claude["gen_ai.input.messages"])[0]["role"] == "user"
    assert "gen_ai.system_instructions" not in large
    assert json.loads(large["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
    ]


@pytest.mark.parametrize(
    ("model", "body", "scenario", "expected"),
    [
        (LLAMA, json.dumps({"prompt": "Hi", "max_gen_len": 2}), "chunks=8", "length"),
        (MISTRAL, json.dumps({"prompt": "Hi", "max_tokens": 2}), "chunks=8", "length"),
        (CLAUDE, anthropic_body(), "stop=stop_sequence", "stop"),
        (NOVA, nova_body(), "stop=content_filtered", "content_filter"),
    ],
    ids=["llama-length", "mistral-length", "anthropic-stop-sequence", "nova-content-filtered"],
)
def test_invoke_model_finish_reasons(
    otel: Any, instrumented: Any, bedrock: BedrockServer, model: str, body: str, scenario: str, expected: str
) -> None:
    bedrock.client(scenario=scenario).invoke_model(modelId=model, body=body)["body"].read()
    assert attrs(otel.span())["gen_ai.response.finish_reasons"] == (expected,)


def test_invoke_model_embeddings(otel: Any, instrumented: Any, bedrock: BedrockServer) -> None:
    body = json.dumps({"inputText": "hello there world", "dimensions": 4})
    response = bedrock.client().invoke_model(modelId=TITAN_EMBED, body=body)
    assert len(json.loads(response["body"].read())["embedding"]) == 4
    span = otel.span()
    assert span.name == f"embeddings {TITAN_EMBED}"
    got = attrs(span)
    assert got["gen_ai.embeddings.dimension.count"] == 4
    assert got["gen_ai.usage.input_tokens"] == 3
    assert "gen_ai.usage.output_tokens" not in got


def test_invoke_model_with_a_file_body_is_sent_whole(
    otel: Any, instrumented: Any, bedrock: BedrockServer
) -> None:
    raw = json.dumps({"prompt": "Weather in Paris?", "max_gen_len": 50}).encode()
    response = bedrock.client().invoke_model(modelId=LLAMA, body=io.BytesIO(raw))
    json.loads(response["body"].read())
    assert bedrock.requests[-1].body == raw  # llmlens did not read the user's file
    span = otel.span()
    assert span.name == f"text_completion {LLAMA}"  # the family, from the model id
    assert "gen_ai.request.max_tokens" not in attrs(span)  # the body was not parsed
    assert attrs(span)["gen_ai.usage.output_tokens"] == 8


def test_invoke_model_body_cut_short(otel: Any, instrumented: Any, bedrock: BedrockServer) -> None:
    # The connection breaks in the middle of the JSON body: invoke_model returns (botocore reads the
    # body lazily); reading it raises, for the user as for llmlens.
    response = bedrock.client(scenario="abort_after=0").invoke_model(modelId=LLAMA, body="{}")
    with pytest.raises(ResponseStreamingError):
        response["body"].read()
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "botocore.exceptions.ResponseStreamingError"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"anthropic_version": "bedrock-2023-05-31", "messages": []}, AnthropicFormat),
        ({"schemaVersion": "messages-v1", "messages": []}, NovaFormat),
        ({"messages": [], "inferenceConfig": {}}, NovaFormat),
        ({"prompt": "Hi", "max_gen_len": 5}, LlamaFormat),
        ({"messages": [{"role": "user", "content": "Hi"}]}, OtherFormat),
    ],
)
def test_the_body_tells_the_format_behind_an_application_inference_profile(body: Any, expected: type) -> None:
    opaque = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
    assert type(format_for(opaque, body)) is expected
    # A known family in the model id wins over the body's look.
    assert type(format_for(f"us.{CLAUDE}", body)) is AnthropicFormat


def test_image_models_are_not_traced(otel: Any, instrumented: Any, bedrock: BedrockServer) -> None:
    with pytest.raises(ClientError):  # the fake has no image models
        bedrock.client().invoke_model(modelId="stability.sd3-large-v1:0", body="{}")
    assert otel.spans() == []


# ================================================================================================== errors


def call(client: Any, operation: str) -> Any:
    if operation == "converse":
        return client.converse(modelId=CLAUDE, messages=MESSAGES)
    if operation == "converse_stream":
        return client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
    if operation == "invoke_model":
        return client.invoke_model(modelId=CLAUDE, body=anthropic_body())
    return client.invoke_model_with_response_stream(modelId=CLAUDE, body=anthropic_body())


@pytest.mark.parametrize(
    "operation", ["converse", "converse_stream", "invoke_model", "invoke_model_with_response_stream"]
)
@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "ThrottlingException"), (400, "ValidationException"), (403, "AccessDeniedException")],
)
def test_http_errors(
    otel: Any, instrumented: Any, bedrock: BedrockServer, operation: str, status: int, code: str
) -> None:
    client = bedrock.client(scenario=f"status={status}")
    with pytest.raises(ClientError) as caught:
        call(client, operation)
    error = caught.value
    assert type(error) is getattr(client.exceptions, code)  # the user's exception, untouched
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    got = attrs(span)
    assert got["error.type"] == code  # the AWS error code, not the generated class's path
    assert got["http.response.status_code"] == status
    assert got["aws.request_id"] == error.response["ResponseMetadata"]["RequestId"]
    assert "gen_ai.usage.input_tokens" not in got
    (exception,) = [e for e in span.events if e.name == "exception"]
    assert code in str(exception.attributes["exception.message"])
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == code


def test_no_connection(otel: Any, instrumented: Any) -> None:
    import socket

    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x", aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip
    with pytest.raises(EndpointConnectionError):
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    got = attrs(otel.span())
    assert got["error.type"] == "botocore.exceptions.EndpointConnectionError"
    assert "http.response.status_code" not in got


def test_one_span_covers_the_retries(otel: Any, instrumented: Any, bedrock: BedrockServer) -> None:
    client = bedrock.client(scenario="status=500", retries={"max_attempts": 1, "mode": "standard"})
    before = len(bedrock.requests)
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    assert len(bedrock.requests) - before == 2  # the first attempt and one retry
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    span = otel.span()
    assert attrs(span)["error.type"] == "InternalServerException"


# ============================================================================== endpoint, provider, patching


@pytest.mark.parametrize(
    ("endpoint_url", "address", "port"),
    [
        (None, "bedrock-runtime.us-east-1.amazonaws.com", 443),
        ("https://vpce-0123.bedrock-runtime.us-east-1.vpce.amazonaws.com:8443",
         "vpce-0123.bedrock-runtime.us-east-1.vpce.amazonaws.com", 8443),
        ("http://localhost", "localhost", 80),
    ],
)  # fmt: skip
def test_server_address_from_the_endpoint(
    otel: Any, instrumented: Any, endpoint_url: str | None, address: str, port: int
) -> None:
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=endpoint_url,
        aws_access_key_id="x", aws_secret_access_key="x",
    )  # fmt: skip
    with Stubber(client) as stub:  # no network: botocore's own stubbing, below our patch point
        stub.add_response("converse", {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
            "metrics": {"latencyMs": 5},
        })  # fmt: skip
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    got = attrs(otel.span())
    assert (got["server.address"], got["server.port"]) == (address, port)
    assert got["gen_ai.usage.input_tokens"] == 3


def test_provider_map_names_a_gateway(otel: Any, instrument: Any, bedrock: BedrockServer) -> None:
    instrument(provider_map={"127.0.0.1": "my.gateway"})
    bedrock.client().converse(modelId=CLAUDE, messages=MESSAGES)
    assert attrs(otel.span())["gen_ai.provider.name"] == "my.gateway"


def test_other_aws_calls_pass_through(otel: Any, instrumented: Any) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x")  # fmt: skip
    with Stubber(s3) as s3_stub, Stubber(runtime) as runtime_stub:
        s3_stub.add_response("list_buckets", {"Buckets": []})
        runtime_stub.add_response("list_async_invokes", {"asyncInvokeSummaries": []})
        assert s3.list_buckets()["Buckets"] == []
        assert runtime.list_async_invokes()["asyncInvokeSummaries"] == []  # Bedrock, but not inference
    assert otel.spans() == []


def test_uninstrument_restores_botocore(otel: Any, instrument: Any, bedrock: BedrockServer) -> None:
    original = BaseClient.__dict__["_make_api_call"]
    instrumentor = instrument()
    assert BaseClient.__dict__["_make_api_call"] is not original
    instrumentor.uninstrument()
    assert BaseClient.__dict__["_make_api_call"] is original
    bedrock.client().converse(modelId=CLAUDE, messages=MESSAGES)
    assert otel.spans() == []


def test_suppressed_and_nested_calls_make_no_span(otel: Any, instrument: Any, bedrock: BedrockServer) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    instrumentor = instrument()
    client = bedrock.client()
    with suppress_instrumentation():
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    assert otel.spans() == []
    # Inside another LLM call (a framework's span over its own Bedrock call): the outer span wins.
    telemetry = instrumentor.telemetry
    outer = telemetry.start_invocation("chat", "my.framework", "agent")
    telemetry.activate(outer)
    client.converse(modelId=CLAUDE, messages=MESSAGES)
    telemetry.deactivate(outer)
    outer.finish()
    assert [s.name for s in otel.spans()] == ["chat agent"]


def test_bedrock_is_a_known_provider(otel: Any, instrument: Any, bedrock: BedrockServer) -> None:
    instrument(providers="openai")  # bedrock left out: botocore stays unpatched
    bedrock.client().converse(modelId=CLAUDE, messages=MESSAGES)
    assert otel.spans() == []
