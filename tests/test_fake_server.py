"""The fake provider must be parseable by the real ``openai`` SDK in every scenario the other tests use.

``scripts/test`` runs it with openai 3 (httpx2) and openai 2 (httpx); see tests/test_openai_compat.py.
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from llmlens.demo.fake_bodies import Scenario, embeddings_vector, route
from llmlens.demo.fake_server import FakeProvider
from test_openai_compat import OPENAI_MAJOR, STREAM_BREAK_ERROR, httpx_module

MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
# 2 messages * 3 + "Be brief." (2 words) + "What is the weather in Paris?" (6 words)
PROMPT_TOKENS = 14
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
RESPONSES_WEATHER_TOOL: dict[str, Any] = {"type": "function", **WEATHER_TOOL["function"]}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def client(server: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="sk-fake", base_url=server.base_url, max_retries=0) as sync_client:
        yield sync_client


def scenario(value: str) -> dict[str, str]:
    return {"x-fake-scenario": value}


# ------------------------------------------------------------------------------------------------ chat


def test_chat_non_stream(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario("cached=5,reasoning=3")
    )
    assert completion.id.startswith("chatcmpl-fake")
    assert completion.object == "chat.completion"
    assert isinstance(completion.created, int)
    assert completion.model == MODEL
    assert completion.system_fingerprint == "fp_fake"
    assert completion.service_tier == "default"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content is not None
    assert choice.message.content.startswith("Hello from the fake provider")
    assert len(choice.message.content.split()) == 8
    usage = completion.usage
    assert usage is not None
    # Reasoning tokens are a part of the completion tokens (8 words + 3), as in the real API.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        PROMPT_TOKENS,
        8 + 3,
        PROMPT_TOKENS + 8 + 3,
    )
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 5
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 3
    assert completion._request_id is not None and completion._request_id.startswith("req_fake")


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=scenario("chunks=34,cached=2"),
    )
    chunks = list(stream)
    first, usage_chunk = chunks[0], chunks[-1]
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    content = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(content) == 34
    assert len("".join(content).split()) == 34
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 34
    assert usage_chunk.usage.prompt_tokens == PROMPT_TOKENS
    assert usage_chunk.usage.prompt_tokens_details is not None
    assert usage_chunk.usage.prompt_tokens_details.cached_tokens == 2
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_chat_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_chat_n2(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.usage is not None and completion.usage.completion_tokens == 16

    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str | None] = {}
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, n=2, stream=True)
    indices = []
    for chunk in stream:
        for choice in chunk.choices:
            indices.append(choice.index)
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert indices[:4] == [0, 1, 0, 1]  # interleaved, like the real API
    assert texts[0] == texts[1] == completion.choices[0].message.content
    assert finishes == {0: "stop", 1: "stop"}


def test_chat_tool_call_streamed_with_split_arguments(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], stream=True, extra_headers=scenario("tool")
    )
    fragments: list[str] = []
    heads = []
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                assert call.index == 0
                if call.id is not None:
                    heads.append((call.id, call.type, call.function and call.function.name))
                if call.function and call.function.arguments:
                    fragments.append(call.function.arguments)
    assert len(heads) == 1 and heads[0][1:] == ("function", "get_weather")
    assert heads[0][0].startswith("call_")
    assert len(fragments) >= 3
    assert json.loads("".join(fragments)) == {"city": "Paris"}
    assert finish == "tool_calls"


def test_chat_tool_call_non_stream_and_tool_choice(client: openai.OpenAI) -> None:
    required = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = required.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}

    # tool_choice="none" wins over the scenario; without tools a "tool" scenario is plain text.
    none = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice="none",
        extra_headers=scenario("tool"),
    )
    assert none.choices[0].message.tool_calls is None
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=scenario("tool"))
    assert plain.choices[0].finish_reason == "stop"


def test_chat_refusal(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario("refusal")
    )
    message = completion.choices[0].message
    assert message.content is None
    assert message.refusal and message.refusal.startswith("I'm sorry")

    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("refusal")
    )
    chunks = list(stream)
    assert all(c.choices[0].delta.content is None for c in chunks)
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks)
    assert refusal == message.refusal


def test_cached_and_written_tokens_are_part_of_the_prompt(client: openai.OpenAI) -> None:
    small = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario("cached=4,cache_write=6")
    )
    usage = small.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    # 4 + 6 fit in the 14 prompt tokens: the prompt stays as counted.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (PROMPT_TOKENS, 8, 22)
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.prompt_tokens_details.cache_write_tokens == 6

    large = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario("cached=1024,cache_write=100")
    )
    usage = large.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    # More cached + written tokens than counted prompt tokens: the prompt grows to hold them.
    assert (usage.prompt_tokens, usage.total_tokens) == (1124, 1124 + 8)
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.prompt_tokens_details.cached_tokens <= usage.prompt_tokens

    # cache_write_tokens is only sent when something was written.
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=scenario("cached=2"))
    assert plain.usage is not None and plain.usage.prompt_tokens_details is not None
    assert "cache_write_tokens" not in plain.usage.prompt_tokens_details.model_fields_set
    assert plain.usage.prompt_tokens_details.cache_write_tokens is None


def test_reasoning_tokens_are_part_of_the_completion_tokens(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=scenario("chunks=5,reasoning=40,cached=20"),
    )
    usage = list(stream)[-1].usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 40
    assert usage.completion_tokens == 2 * 5 + 40  # both choices' words, then the reasoning
    assert usage.prompt_tokens == 20  # grown from 14 to hold the cached tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    response = client.responses.create(
        model=MODEL, input="Hi", extra_headers=scenario("chunks=3,reasoning=7,cached=30,cache_write=2")
    )
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (32, 3 + 7)
    assert response.usage.total_tokens == 42
    assert response.usage.input_tokens_details.cache_write_tokens == 2


# --------------------------------------------------------------------------------- legacy completions

INSTRUCT_MODEL = "gpt-3.5-turbo-instruct"


def test_completion_non_stream(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=INSTRUCT_MODEL, prompt="Say this is a test")
    assert completion.id.startswith("cmpl-fake")
    assert completion.object == "text_completion"
    assert completion.model == INSTRUCT_MODEL
    assert completion.system_fingerprint == "fp_fake"
    (choice,) = completion.choices
    assert (choice.index, choice.finish_reason, choice.logprobs) == (0, "stop", None)
    assert choice.text == "Hello from the fake provider. This deterministic answer"
    assert completion.usage is not None
    assert completion.usage.model_dump() == {
        "prompt_tokens": 5,  # the words of the prompt
        "completion_tokens": 8,
        "total_tokens": 13,
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
    }


def test_completion_max_tokens_n_and_prompt_lists(client: openai.OpenAI) -> None:
    cut = client.completions.create(model=INSTRUCT_MODEL, prompt="Hi", max_tokens=3)
    assert [(c.text, c.finish_reason) for c in cut.choices] == [("Hello from the", "length")]
    assert cut.usage is not None and cut.usage.completion_tokens == 3

    many = client.completions.create(model=INSTRUCT_MODEL, prompt=["one two", "three"], n=2, max_tokens=20)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]  # two answers to each of the two prompts
    assert {c.finish_reason for c in many.choices} == {"stop"}
    assert many.usage is not None
    assert (many.usage.prompt_tokens, many.usage.completion_tokens) == (3, 4 * 8)

    tokens = client.completions.create(model=INSTRUCT_MODEL, prompt=[1, 2, 3, 4, 5])
    assert tokens.usage is not None and tokens.usage.prompt_tokens == 5
    assert len(tokens.choices) == 1


def test_completion_details_only_when_asked(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model=INSTRUCT_MODEL,
        prompt="Hi",
        extra_headers=scenario("cached=3,reasoning=2,finish=content_filter"),
    )
    assert completion.choices[0].finish_reason == "content_filter"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 2
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 8 + 2)


def test_completion_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model=INSTRUCT_MODEL,
            prompt="Hi",
            n=2,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=scenario("chunks=3"),
        )
    )
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("cmpl-fake")
    assert all(c.object == "text_completion" for c in chunks)
    with_choices = chunks[:-1]
    assert [c.choices[0].index for c in with_choices] == [0, 1] * 4  # interleaved: 3 words, then the finish
    texts = {0: "", 1: ""}
    for chunk in with_choices:
        texts[chunk.choices[0].index] += chunk.choices[0].text
    assert texts == {0: "Hello from the", 1: "Hello from the"}
    assert [c.choices[0].finish_reason for c in with_choices[-2:]] == ["stop", "stop"]
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-2])
    assert all(c.usage is None for c in with_choices)
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (1, 6)

    plain = list(client.completions.create(model=INSTRUCT_MODEL, prompt="Hi", stream=True))
    assert all(c.choices and c.usage is None for c in plain)
    assert (
        "".join(c.choices[0].text for c in plain) == "Hello from the fake provider. This deterministic answer"
    )


def test_completion_odd_shapes_and_errors(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model=INSTRUCT_MODEL,
            prompt="Hi",
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=scenario("none_fields,chunks=2"),
        )
    )
    assert all(c.system_fingerprint is None for c in chunks)
    assert all(choice.finish_reason is None for c in chunks for choice in c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens_details is None

    no_usage = client.completions.create(
        model=INSTRUCT_MODEL, prompt="Hi", extra_headers=scenario("no_usage")
    )
    assert no_usage.usage is None
    empty = client.completions.create(
        model=INSTRUCT_MODEL, prompt="Hi", stream=True, extra_headers=scenario("empty_stream")
    )
    assert list(empty) == []
    with pytest.raises(openai.RateLimitError):
        client.completions.create(model="fake-error-429", prompt="Hi")
    with pytest.raises(openai.InternalServerError):
        client.completions.create(
            model=INSTRUCT_MODEL, prompt="Hi", stream=True, extra_headers=scenario("status=500")
        )


# ------------------------------------------------------------------------------------------- responses


def test_responses_create(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="What is the weather in Paris?", extra_headers=scenario("cached=4,reasoning=2")
    )
    assert response.id.startswith("resp_fake")
    assert response.status == "completed"
    assert response.output_text.startswith("Hello from the fake provider")
    assert response.usage is not None
    assert response.usage.input_tokens == 3 + 6
    assert response.usage.output_tokens == 8 + 2  # the 8 words and the 2 reasoning tokens
    assert response.usage.total_tokens == 3 + 6 + 8 + 2
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.input_tokens_details.cache_write_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    assert response.service_tier == "default"


def test_responses_create_stream_events(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model=MODEL, input="Hi", stream=True, extra_headers=scenario("chunks=5"))
    )
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None and completed.response.usage.output_tokens == 5
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert completed.response.output_text == deltas


def test_responses_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Hi", extra_headers=scenario("chunks=6")) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) == 6
    assert final.output_text == "".join(deltas)
    assert final.usage is not None and final.usage.total_tokens == final.usage.input_tokens + 6


def test_responses_tool_call(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="Weather?", tools=[RESPONSES_WEATHER_TOOL], tool_choice="required"
    )
    item = response.output[0]
    assert item.type == "function_call"
    assert item.name == "get_weather" and item.call_id.startswith("call_")
    assert json.loads(item.arguments) == {"city": "Paris"}

    with client.responses.stream(
        model=MODEL, input="Weather?", tools=[RESPONSES_WEATHER_TOOL], extra_headers=scenario("tool")
    ) as stream:
        fragments = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert len(fragments) >= 3
    final_item = final.output[0]
    assert final_item.type == "function_call"
    assert json.loads("".join(fragments)) == json.loads(final_item.arguments) == {"city": "Paris"}


def test_responses_refusal_stream(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Hi", extra_headers=scenario("refusal")) as stream:
        refusal = "".join(e.delta for e in stream if e.type == "response.refusal.delta")
        final = stream.get_final_response()
    message = final.output[0]
    assert message.type == "message"
    assert message.content[0].type == "refusal" and message.content[0].refusal == refusal
    assert final.output_text == ""


@pytest.mark.parametrize("reason", ["max_output_tokens", "content_filter"])
def test_responses_incomplete(client: openai.OpenAI, reason: str) -> None:
    response = client.responses.create(
        model=MODEL, input="Hi", max_output_tokens=16, extra_headers=scenario(f"incomplete={reason},chunks=3")
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == reason
    assert response.completed_at is None
    assert response.output[0].status == "incomplete"
    assert response.output_text == "Hello from the"  # the partial answer is still there
    assert response.usage is not None and response.usage.output_tokens == 3

    events = list(
        client.responses.create(
            model=MODEL, input="Hi", stream=True, extra_headers=scenario(f"incomplete={reason},chunks=3")
        )
    )
    assert [e.type for e in events][-3:] == [
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert not [e for e in events if e.type == "response.completed"]
    final = events[-1].response
    assert final.status == "incomplete"
    assert final.incomplete_details is not None and final.incomplete_details.reason == reason
    assert final.output_text == "".join(e.delta for e in events if e.type == "response.output_text.delta")

    # The SDK's stream helper yields every event, but only a completed response is a final response.
    with client.responses.stream(
        model=MODEL, input="Hi", extra_headers=scenario(f"incomplete={reason}")
    ) as stream:
        assert [e.type for e in stream][-1] == "response.incomplete"
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()


# ------------------------------------------------------------------------------------------ embeddings


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["one two", "three"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in floats.data)
    assert floats.data[0].embedding == embeddings_vector("one two", 8)
    assert floats.data[0].embedding != floats.data[1].embedding
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (3, 3)

    # Without encoding_format the SDK asks for base64 and decodes it itself.
    decoded = client.embeddings.create(model="text-embedding-3-small", input="one two", dimensions=4)
    assert decoded.data[0].embedding == embeddings_vector("one two", 4)

    raw = client.embeddings.create(model="text-embedding-3-small", input="one two", encoding_format="base64")
    encoded = raw.data[0].embedding
    assert isinstance(encoded, str)
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == floats.data[0].embedding


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "error_class", "code"),
    [
        (400, openai.BadRequestError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, "unsupported_country_region_territory"),
        (404, openai.NotFoundError, "model_not_found"),
        (409, openai.ConflictError, None),
        (422, openai.UnprocessableEntityError, None),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
def test_error_status(
    client: openai.OpenAI, status: int, error_class: type[openai.APIStatusError], code: str | None
) -> None:
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers=scenario(f"status={status}")
        )
    error = caught.value
    assert error.status_code == status
    assert error.code == code
    assert error.type == (
        "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    )
    if status == 429:
        assert error.response.headers["retry-after"] == "0"


def test_error_on_stream_request_and_other_endpoints(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("status=429")
        )
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model=MODEL, input="Hi", extra_headers=scenario("status=500"))
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="e", input="Hi", extra_headers=scenario("status=401"))


def test_error_from_model_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="fake-error-404", input="Hi")
    assert "fake-error-404" in caught.value.message


def test_unknown_route_and_bad_scenario(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.list()
    assert (caught.value.type, caught.value.code) == ("invalid_request_error", None)
    assert "GET /v1/models" in caught.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=scenario("chunkz=3"))
    assert "chunkz" in bad.value.message


# ----------------------------------------------------------------------------------- odd stream shapes


def test_abort_after_raises_mid_stream(client: openai.OpenAI) -> None:
    received = []
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("abort_after=3")
    )
    with pytest.raises(STREAM_BREAK_ERROR) as caught:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    if OPENAI_MAJOR >= 3:  # openai 2 raises the transport's RemoteProtocolError itself
        assert isinstance(caught.value.__cause__, httpx_module.RemoteProtocolError)
    # The client stays usable after the broken connection.
    assert client.chat.completions.create(model=MODEL, messages=MESSAGES).choices


def test_abort_after_on_responses_stream(client: openai.OpenAI) -> None:
    seen: list[str] = []
    with (
        client.responses.stream(model=MODEL, input="Hi", extra_headers=scenario("abort_after=4")) as stream,
        pytest.raises(STREAM_BREAK_ERROR),
    ):
        for event in stream:
            seen.append(event.type)
    assert seen[-1] == "response.content_part.added" and len(seen) == 4


def test_empty_stream(client: openai.OpenAI) -> None:
    assert (
        list(
            client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("empty_stream")
            )
        )
        == []
    )


def test_no_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=scenario("no_usage"),
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert (
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers=scenario("no_usage")
        ).usage
        is None
    )
    assert client.responses.create(model=MODEL, input="Hi", extra_headers=scenario("no_usage")).usage is None


def test_none_fields(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario("none_fields")
    )
    assert completion.system_fingerprint is None and completion.service_tier is None
    assert completion.usage is not None
    assert (
        completion.usage.prompt_tokens_details is None and completion.usage.completion_tokens_details is None
    )

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=scenario("none_fields"),
        )
    )
    assert all(c.system_fingerprint is None and c.service_tier is None for c in chunks)
    assert all(choice.finish_reason is None for c in chunks for choice in c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens_details is None


def test_custom_finish_reason(client: openai.OpenAI) -> None:
    # The SDK builds models without validation, so a value outside the Literal survives as a plain str.
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers=scenario("finish=weird_reason")
    )
    assert completion.choices[0].finish_reason == "weird_reason"
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("finish=weird_reason")
        )
    )
    assert chunks[-1].choices[0].finish_reason == "weird_reason"


def test_delay_causes_client_timeout(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, timeout=0.05, extra_headers=scenario("delay_ms=400")
        )


def test_chunks_are_really_streamed(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("chunks=4,chunk_delay_ms=40")
    )
    arrivals = [time.perf_counter() for _ in stream]
    # 6 frames (role, 4 words, finish) with 40 ms gaps: the first must arrive well before the last.
    assert arrivals[-1] - arrivals[0] >= 0.15


# ------------------------------------------------------------------------------------ server behaviour


def test_requests_are_recorded_with_headers(server: FakeProvider, client: openai.OpenAI) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers={"traceparent": traceparent})
    recorded = next(r for r in reversed(server.requests) if r.headers.get("traceparent") == traceparent)
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer sk-fake"
    assert recorded.json["model"] == MODEL and recorded.json["messages"] == MESSAGES


def test_keep_alive_across_json_and_stream(server: FakeProvider) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        for stream in (False, True, False):
            body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": stream})
            conn.request(
                "POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"}
            )
            response = conn.getresponse()
            data = response.read()
            assert response.status == 200
            assert response.getheader("connection", "").lower() != "close"
            if stream:
                assert response.getheader("transfer-encoding") == "chunked"
                assert data.endswith(b"data: [DONE]\n\n")
            else:
                assert int(response.getheader("content-length") or -1) == len(data)
        assert conn.sock is not None  # still the same open socket after three requests
    finally:
        conn.close()


def test_concurrent_clients_are_served_in_parallel(client: openai.OpenAI) -> None:
    def slow_stream(_: int) -> int:
        headers = scenario("chunks=4,chunk_delay_ms=40")  # 6 frames, 5 gaps: ~0.2 s per stream
        return len(
            list(
                client.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True, extra_headers=headers
                )
            )
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(slow_stream, range(8)))
    assert counts == [6] * 8
    assert time.perf_counter() - started < 0.8  # serially this takes ~1.6 s


def test_mock_transport_reuses_the_pure_bodies() -> None:
    # httpx2 under openai 3, httpx under openai 2: the two share this API.
    def handler(request: Any) -> Any:
        parsed = Scenario.parse(request.headers.get("x-fake-scenario"))
        reply = route(request.method, request.url.path, json.loads(request.content), parsed)
        return httpx_module.Response(reply.status, headers=reply.headers, content=reply.content)

    http_client = httpx_module.Client(transport=httpx_module.MockTransport(handler))
    with openai.OpenAI(
        api_key="sk-fake", base_url="http://fake.test/v1", http_client=http_client, max_retries=0
    ) as mock:
        chunks = list(
            mock.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("chunks=3")
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the"
        with pytest.raises(openai.RateLimitError):
            mock.embeddings.create(model="e", input="x", extra_headers=scenario("status=429"))


def test_scenario_parse() -> None:
    parsed = Scenario.parse(" chunks=34, cached=5; reasoning=3,tool ,finish=weird_reason,abort-after=2 ")
    assert parsed == Scenario(
        chunks=34, cached=5, reasoning=3, tool=True, finish="weird_reason", abort_after=2
    )
    assert Scenario.parse(None) == Scenario() == Scenario.parse("")
    assert Scenario.for_request(None, "fake-error-503").status == 503
    assert Scenario.for_request("chunks=2", "fake-error-503").status is None  # the header wins
    assert Scenario.parse("cache_write=7,incomplete=content_filter") == Scenario(
        cache_write=7, incomplete="content_filter"
    )
    for bad in ("nope", "chunks=x", "status=200", "tool=maybe", "finish=", "incomplete=tired", "incomplete"):
        with pytest.raises(ValueError):
            Scenario.parse(bad)


# ----------------------------------------------------------------------------------------------- async


@pytest.mark.asyncio
async def test_async_chat_stream_and_responses(server: FakeProvider) -> None:
    async with openai.AsyncOpenAI(api_key="sk-fake", base_url=server.base_url, max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=scenario("chunks=34"),
        )
        chunks = [chunk async for chunk in stream]
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 34
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 34

        async with aclient.responses.stream(model=MODEL, input="Hi") as rstream:
            deltas = [e.delta async for e in rstream if e.type == "response.output_text.delta"]
            final = await rstream.get_final_response()
        assert final.output_text == "".join(deltas)


@pytest.mark.asyncio
async def test_async_abort_and_errors(server: FakeProvider) -> None:
    async with openai.AsyncOpenAI(api_key="sk-fake", base_url=server.base_url, max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, extra_headers=scenario("abort_after=3")
        )
        received = []
        with pytest.raises(STREAM_BREAK_ERROR):
            async for chunk in stream:
                received.append(chunk)
        assert len(received) == 3
        with pytest.raises(openai.RateLimitError):
            await aclient.chat.completions.create(model="fake-error-429", messages=MESSAGES)
