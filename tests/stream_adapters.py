"""Stream adapters for the stream contract suite (tests/test_stream_contract.py).

An adapter knows one way to stream from one provider against its fake server on loopback: how to make
the call (`call`/`acall`), what the call returns (the stream itself, or a context manager whose `with`
block holds it: `form`), how to reach the stream inside such a block (`inside`), which items the user's
loop reads (`items`), how to close it, which scenarios make it cut the connection, send an error event
or answer with an HTTP error, and how to tally what the user saw (`Tally`: output chunks, response id,
usage so far, in the provider's own terms). It lists the exit paths it supports (`exits`) and, where the
provider documents a different end on one of them, the outcome it expects instead (`expect`).

The suite drives every adapter through every exit path it supports, in each of its modes (sync,
async), and checks what llmlens promises (docs/streaming.md). Adding a provider or an idiom is adding
an adapter here, not a test file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

WORDS = 8  # the fake servers' default answer: one word per chunk

# Exit paths (see tests/test_stream_contract.py for what each checks).
COMPLETE = "complete"  # the user's loop reads it to the end
COMPLETE_NEXT = "complete_next"  # next()/__anext__() by hand until StopIteration
DRAIN = "drain"  # an SDK helper reads it to the end itself (get_final_message(), ...)
CLOSE_AFTER_BREAK = "close_after_break"  # close()/aclose() after reading two chunks
CLOSE_UNREAD = "close_unread"  # close()/aclose() before reading anything
WITH_EXIT_AFTER_BREAK = "with_exit_after_break"  # `with`/`async with` left after a break
WITH_EXIT_UNREAD = "with_exit_unread"  # `with`/`async with` left without reading
DROP_AFTER_BREAK = "drop_after_break"  # break, then the stream is dropped and garbage collected
DROP_UNREAD = "drop_unread"  # dropped without reading anything
TRANSPORT_ERROR = "transport_error"  # the connection is cut mid-stream
ERROR_EVENT = "error_event"  # the provider sends an error inside the stream (HTTP 200)
HTTP_ERROR = "http_error"  # an HTTP error status, raised when the stream is first read
CANCELLED = "cancelled"  # the task reading it is cancelled (async only)
ASYNCIO_RUN = "asyncio_run"  # `async with await create(...) as s: async for _ in s: break` in asyncio.run

ASYNC_ONLY = frozenset({CANCELLED, ASYNCIO_RUN})
ALL_EXITS = frozenset(
    {COMPLETE, COMPLETE_NEXT, DRAIN, CLOSE_AFTER_BREAK, CLOSE_UNREAD, WITH_EXIT_AFTER_BREAK, WITH_EXIT_UNREAD,
     DROP_AFTER_BREAK, DROP_UNREAD, TRANSPORT_ERROR, ERROR_EVENT, HTTP_ERROR, CANCELLED, ASYNCIO_RUN}
)  # fmt: skip
STREAM_EXITS = frozenset(
    {COMPLETE, COMPLETE_NEXT, CLOSE_AFTER_BREAK, CLOSE_UNREAD, WITH_EXIT_AFTER_BREAK, WITH_EXIT_UNREAD,
     DROP_AFTER_BREAK, DROP_UNREAD, TRANSPORT_ERROR, CANCELLED}
)  # fmt: skip
MANAGER_EXITS = frozenset(
    {COMPLETE, WITH_EXIT_AFTER_BREAK, WITH_EXIT_UNREAD, DROP_AFTER_BREAK, TRANSPORT_ERROR, CANCELLED}
)
GENERATOR_EXITS = frozenset(
    {COMPLETE, COMPLETE_NEXT, CLOSE_AFTER_BREAK, CLOSE_UNREAD, DROP_AFTER_BREAK, DROP_UNREAD,
     TRANSPORT_ERROR, CANCELLED}
)  # fmt: skip

# Forms of what the call returns.
STREAM = "stream"  # the stream itself, which is also a context manager (openai.Stream)
GENERATOR = "generator"  # a plain (async) generator: no `with`
MANAGER = "manager"  # only a context manager; the stream is inside its `with` block

UNCHECKED = "unchecked"  # Adapter.error_event_status: not checked

# What an exit path may end as instead of the contract's outcome (`Adapter.expect`).
NO_SPAN = "no span"  # no request was sent, so there is no call to record


# When a span ends (`Expect.ended`), if not where the contract puts it for the exit path.
AT_COLLECTION = "collection"  # when the stream was garbage collected
AT_HANDOVER = "handover"  # as of the moment the stream was handed to the caller


@dataclass(frozen=True)
class Expect:
    """How one exit path ends for an adapter whose provider documents a different end."""

    outcome: str  # the outcome, or NO_SPAN
    reason: str  # where it is documented
    ended: str | None = None  # AT_COLLECTION, AT_HANDOVER, or None: where the contract says


class Tally:
    """What the user's loop saw: output chunks, the response id, the usage so far."""

    knows_usage = True  # False: what the user reads has no ids or counts (a text stream)

    def __init__(self) -> None:
        self.chunks = 0
        self.response_id: str | None = None
        self.input: int | None = None
        self.output: int | None = None

    @property
    def tokens(self) -> tuple[int | None, int | None] | None:
        """(input, output) as llmlens must report them so far; None when it has none."""
        if self.input is None and self.output is None:
            return None
        return self.input, self.output

    def see(self, item: Any) -> None:
        raise NotImplementedError


def scrub(value: Any) -> Any:
    """A JSON-like view of what the user got, without what differs from one request to the next."""
    if hasattr(value, "model_dump"):
        try:
            value = value.model_dump(warnings=False)
        except TypeError:  # a model_dump without pydantic's options
            value = value.model_dump()
    if isinstance(value, bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


# Per-request ids and times, and the SDK's own response objects.
VOLATILE = frozenset({"id", "created", "created_at", "completed_at", "response_id", "sdk_http_response",
                      "item_id", "ResponseMetadata", "RequestId", "x-amzn-requestid",
                      "generation_id"})  # fmt: skip


_TLS: list[Any] = []


def tls() -> Any:
    """One SSL context for every client the suite makes: building one loads the CA bundle (about 35 ms),
    once per HTTP client otherwise. The fakes are plain HTTP; the SDK's transport is the same."""
    if not _TLS:
        import ssl

        _TLS.append(ssl.create_default_context())
    return _TLS[0]


@dataclass
class Adapter:
    """One way of streaming from one provider (module docstring)."""

    name: str
    span_name: str
    provider: str
    server: str  # the fixture that serves it: fake, bedrock, cohere_server, ollama_server, None
    form: str = STREAM
    modes: tuple[str, ...] = ("sync", "async")
    exits: frozenset[str] = STREAM_EXITS
    # Scenarios: the default answer, a cut mid-stream (after at least one output chunk), an error event.
    base: str = f"chunks={WORDS}"
    cut: str = "abort_after=3"
    error_event: str | None = None
    error_event_type: Callable[[BaseException], str] | None = None  # None: the exception's public name
    http_error: tuple[str, int] | None = None  # (scenario, status)
    # http.response.status_code on an error event's span: the status of the response (200) or None
    # (absent: the provider's error carries no HTTP status).
    error_event_status: Any = UNCHECKED
    lazy: bool = False  # a generator that sends its request when it is first read
    finish: tuple[str, ...] | None = ("stop",)  # None: none (nothing tells the reason)
    usage_when_complete: bool = True
    client_before_instrument: bool = False
    instrument_options: dict[str, Any] = field(default_factory=lambda: {"pricing": False, "store": False})
    async_closers: tuple[str, ...] = ("aclose",)
    expect: dict[str, Expect] = field(default_factory=dict)
    span_kind: str = "CLIENT"
    modules: tuple[str, ...] = ()  # what its calls import (the suite imports them up front)
    partial: bool = False  # one idiom on the paths it changes, beside a full adapter of the same call

    # --- what a subclass says about its SDK --------------------------------------------------------

    def importable(self) -> bool:
        return True

    def client(self, server: Any, mode: str) -> Any:
        raise NotImplementedError

    def plain_client(self, server: Any, mode: str) -> Any:
        """The client of the uninstrumented run (made before instrument())."""
        return self.client(server, mode)

    def error_event_scenario(self, variant: str) -> str:
        assert self.error_event is not None
        return self.error_event

    def call(self, client: Any, scenario: str) -> Any:
        raise NotImplementedError

    async def acall(self, client: Any, scenario: str) -> Any:
        raise NotImplementedError

    def inside(self, entered: Any) -> Any:
        """The stream inside the `with` block of a MANAGER form (sync)."""
        return entered

    async def ainside(self, entered: Any) -> Any:
        return entered

    def items(self, stream: Any) -> Any:
        """What the user's loop iterates."""
        return stream

    def close(self, stream: Any) -> None:
        stream.close()

    async def aclose(self, stream: Any, how: str) -> None:
        await getattr(stream, how)()

    def drain(self, stream: Any, how: str) -> Tally:
        """DRAIN: let the SDK read the stream itself (`how`: a helper's name, or the default one); the
        tally of the final result."""
        raise NotImplementedError

    async def adrain(self, stream: Any, how: str) -> Tally:
        raise NotImplementedError

    def upstream_closed(self) -> bool | None:
        """After an early close: was what the stream reads from closed too (None: not observable)?"""
        return None

    def tally(self) -> Tally:
        raise NotImplementedError

    def view(self, item: Any) -> Any:
        return (type(item), scrub(item))

    # --- derived ------------------------------------------------------------------------------------

    def cases(self) -> Iterator[tuple[str, str]]:
        """(mode, exit) pairs, each async close method its own case."""
        for mode in self.modes:
            for exit_path in sorted(self.exits):
                if exit_path in ASYNC_ONLY and mode == "sync":
                    continue
                if exit_path in (CLOSE_AFTER_BREAK, CLOSE_UNREAD) and mode == "async":
                    for how in self.async_closers:
                        yield mode, exit_path if how == "aclose" else f"{exit_path}:{how}"
                else:
                    yield mode, exit_path


# =============================================================================================== openai


class ChatTally(Tally):
    """Chat completions (openai, groq): an output chunk is one with choices; usage comes last."""

    def see(self, chunk: Any) -> None:
        self.response_id = chunk.id
        if chunk.choices:
            self.chunks += 1
        if chunk.usage is not None:
            self.input, self.output = chunk.usage.prompt_tokens, chunk.usage.completion_tokens


class ResponsesTally(Tally):
    """Responses API events: output_text deltas are the chunks; usage comes with response.completed."""

    def see(self, event: Any) -> None:
        if event.type == "response.output_text.delta":
            self.chunks += 1
        response = getattr(event, "response", None)
        if response is not None:
            self.response_id = response.id
            if response.usage is not None:
                self.input, self.output = response.usage.input_tokens, response.usage.output_tokens


def _openai_client(server: Any, mode: str) -> Any:
    import openai

    if mode == "async":
        http = openai.DefaultAsyncHttpxClient(verify=tls())
        return openai.AsyncOpenAI(
            api_key="sk-test", base_url=server.base_url, max_retries=0, http_client=http
        )
    http = openai.DefaultHttpxClient(verify=tls())
    return openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0, http_client=http)


def _chat_kwargs(scenario: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Say something"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "extra_headers": {"x-fake-scenario": scenario},
    }


def _responses_kwargs(scenario: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": "Say something", "extra_headers": {"x-fake-scenario": scenario}}


@dataclass
class OpenAIChat(Adapter):
    """`client.chat.completions.create(stream=True)`; `via`: plain, `with_raw_response` (`r = r.parse()`)
    or `with_streaming_response` (the stream is `response.parse()` inside its `with` block)."""

    modules: tuple[str, ...] = ("openai",)

    via: str = "plain"
    async_closers: tuple[str, ...] = ("aclose", "close")

    def importable(self) -> bool:
        return _has("openai")

    def client(self, server: Any, mode: str) -> Any:
        return _openai_client(server, mode)

    def _create(self, client: Any) -> Any:
        completions = client.chat.completions
        if self.via == "raw":
            return completions.with_raw_response.create
        if self.via == "streaming_response":
            return completions.with_streaming_response.create
        return completions.create

    def call(self, client: Any, scenario: str) -> Any:
        result = self._create(client)(**_chat_kwargs(scenario))
        return _reparse(result) if self.via == "raw" else result

    async def acall(self, client: Any, scenario: str) -> Any:
        create = self._create(client)
        if self.via == "streaming_response":
            return create(**_chat_kwargs(scenario))
        result = await create(**_chat_kwargs(scenario))
        return await _areparse(result) if self.via == "raw" else result

    def inside(self, entered: Any) -> Any:
        return entered.parse() if self.via == "streaming_response" else entered

    async def ainside(self, entered: Any) -> Any:
        return await entered.parse() if self.via == "streaming_response" else entered

    def tally(self) -> Tally:
        return ChatTally()


def _reparse(raw: Any) -> Any:
    """The idiom `r = r.parse()`: the raw response is dropped (and collected) while its stream is read."""
    import gc

    raw = raw.parse()
    gc.collect()
    return raw


async def _areparse(raw: Any) -> Any:
    """`_reparse` on an async client: openai's LegacyAPIResponse.parse() is synchronous there too, the
    APIResponse of anthropic and groq has an async parse(): `r = await r.parse()`."""
    import gc
    import inspect

    parsed = raw.parse()
    raw = await parsed if inspect.isawaitable(parsed) else parsed
    gc.collect()
    return raw


@dataclass
class OpenAIResponses(Adapter):
    """`client.responses.create(stream=True)`, or (`helper`) the `responses.stream()` manager."""

    modules: tuple[str, ...] = ("openai",)

    helper: bool = False
    async_closers: tuple[str, ...] = ("aclose", "close")
    # created, in_progress, output_item.added, content_part.added, then two deltas; then the cut.
    cut: str = "abort_after=6"

    def importable(self) -> bool:
        return _has("openai")

    def client(self, server: Any, mode: str) -> Any:
        return _openai_client(server, mode)

    def call(self, client: Any, scenario: str) -> Any:
        if self.helper:
            return client.responses.stream(**_responses_kwargs(scenario))
        return client.responses.create(stream=True, **_responses_kwargs(scenario))

    async def acall(self, client: Any, scenario: str) -> Any:
        if self.helper:
            return client.responses.stream(**_responses_kwargs(scenario))
        return await client.responses.create(stream=True, **_responses_kwargs(scenario))

    def drain(self, stream: Any, how: str) -> Tally:
        return _responses_final(stream.get_final_response())

    async def adrain(self, stream: Any, how: str) -> Tally:
        return _responses_final(await stream.get_final_response())

    def tally(self) -> Tally:
        return ResponsesTally()


def _responses_final(final: Any) -> Tally:
    tally = ResponsesTally()
    tally.chunks = len(final.output_text.split())  # one delta per word of the answer
    tally.response_id = final.id
    tally.input, tally.output = final.usage.input_tokens, final.usage.output_tokens
    return tally


# ================================================================================================= groq


@dataclass
class GroqChat(Adapter):
    """`groq` chat completions (a Stainless SDK: the same Stream as openai's); `via` plain or raw."""

    modules: tuple[str, ...] = ("groq",)

    via: str = "plain"

    def importable(self) -> bool:
        return _has("groq")

    def client(self, server: Any, mode: str) -> Any:
        import groq

        # The SDK's paths are /openai/v1/...: its base_url is the server root.
        root = f"http://{server.host}:{server.port}"
        if mode == "async":
            http = groq.DefaultAsyncHttpxClient(verify=tls())
            return groq.AsyncGroq(api_key="gsk-test", base_url=root, max_retries=0, http_client=http)
        http = groq.DefaultHttpxClient(verify=tls())
        return groq.Groq(api_key="gsk-test", base_url=root, max_retries=0, http_client=http)

    def _kwargs(self, scenario: str) -> dict[str, Any]:
        kwargs = _chat_kwargs(scenario, "llama-3.3-70b-versatile")
        # The groq SDK has no stream_options parameter; the fake answers it like OpenAI.
        kwargs["extra_body"] = {"stream_options": kwargs.pop("stream_options")}
        return kwargs

    def call(self, client: Any, scenario: str) -> Any:
        completions = client.chat.completions
        if self.via == "raw":
            return _reparse(completions.with_raw_response.create(**self._kwargs(scenario)))
        return completions.create(**self._kwargs(scenario))

    async def acall(self, client: Any, scenario: str) -> Any:
        completions = client.chat.completions
        if self.via == "raw":
            return await _areparse(await completions.with_raw_response.create(**self._kwargs(scenario)))
        return await completions.create(**self._kwargs(scenario))

    async def aclose(self, stream: Any, how: str) -> None:
        await stream.close()  # groq's AsyncStream has no aclose()

    def tally(self) -> Tally:
        return ChatTally()


# ============================================================================================ anthropic


class MessagesTally(Tally):
    """Anthropic Messages events: content_block_delta is the chunk; message_start brings the input count
    (its output count is a placeholder), message_delta the output count."""

    def see(self, event: Any) -> None:
        if event.type == "content_block_delta":
            self.chunks += 1
        elif event.type == "message_start":
            self.response_id = event.message.id
            self.input = event.message.usage.input_tokens
        elif event.type == "message_delta":
            self.output = event.usage.output_tokens


class TextTally(MessagesTally):
    """The helper's `text_stream`: each text is one content_block_delta (ids and usage not seen)."""

    knows_usage = False

    def see(self, text: Any) -> None:
        self.chunks += 1


def _anthropic_kwargs(scenario: str) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say something"}],
        "extra_headers": {"x-fake-scenario": scenario},
    }


@dataclass
class AnthropicMessages(Adapter):
    """`messages.create(stream=True)` (`via` plain, raw or streaming_response), or (`helper`) the
    `messages.stream()` manager, whose stream the user reads as events or (`text`) as `text_stream`;
    `beta`: the same through `client.beta.messages`."""

    modules: tuple[str, ...] = ("anthropic",)

    via: str = "plain"
    helper: bool = False
    text: bool = False
    beta: bool = False  # client.beta.messages
    # message_start, content_block_start, ping, two deltas; then the cut.
    cut: str = f"chunks={WORDS},abort_after=5"
    error_event: str | None = "stream_error=overloaded_error"
    error_event_type: Callable[[BaseException], str] | None = lambda error: "overloaded_error"

    def importable(self) -> bool:
        return _has("anthropic")

    def client(self, server: Any, mode: str) -> Any:
        import anthropic

        root = f"http://{server.host}:{server.port}"
        if mode == "async":
            http = anthropic.DefaultAsyncHttpxClient(verify=tls())
            return anthropic.AsyncAnthropic(api_key="k", base_url=root, max_retries=0, http_client=http)
        http = anthropic.DefaultHttpxClient(verify=tls())
        return anthropic.Anthropic(api_key="k", base_url=root, max_retries=0, http_client=http)

    def _create(self, client: Any) -> Any:
        messages = client.beta.messages if self.beta else client.messages
        if self.helper:
            return messages.stream
        if self.via in ("raw", "raw_temporary"):
            return messages.with_raw_response.create
        if self.via == "streaming_response":
            return messages.with_streaming_response.create
        return messages.create

    def _kwargs(self, scenario: str) -> dict[str, Any]:
        extra = {} if self.helper else {"stream": True}
        return {**_anthropic_kwargs(scenario), **extra}

    def call(self, client: Any, scenario: str) -> Any:
        result = self._create(client)(**self._kwargs(scenario))
        return _reparse(result) if self.via == "raw" else result

    async def acall(self, client: Any, scenario: str) -> Any:
        create = self._create(client)
        if self.helper or self.via == "streaming_response":
            return create(**self._kwargs(scenario))
        if self.via == "raw_temporary":  # nothing but the parse() coroutine refers to the raw response
            return await (await create(**self._kwargs(scenario))).parse()
        result = await create(**self._kwargs(scenario))
        return await _areparse(result) if self.via == "raw" else result

    def inside(self, entered: Any) -> Any:
        return entered.parse() if self.via == "streaming_response" else entered

    async def ainside(self, entered: Any) -> Any:
        return await entered.parse() if self.via == "streaming_response" else entered

    def items(self, stream: Any) -> Any:
        return stream.text_stream if self.text else stream

    async def aclose(self, stream: Any, how: str) -> None:
        await stream.close()  # anthropic's AsyncStream has no aclose()

    def drain(self, stream: Any, how: str) -> Tally:
        getattr(stream, how or "until_done")()  # until_done, get_final_message, get_final_text
        return _anthropic_final(stream.get_final_message())

    async def adrain(self, stream: Any, how: str) -> Tally:
        await getattr(stream, how or "until_done")()
        return _anthropic_final(await stream.get_final_message())

    def tally(self) -> Tally:
        return TextTally() if self.text else MessagesTally()


def _anthropic_final(final: Any) -> Tally:
    tally = MessagesTally()
    tally.chunks = len(final.content[0].text.split())
    tally.response_id = final.id
    tally.input, tally.output = final.usage.input_tokens, final.usage.output_tokens
    return tally


# ========================================================================================= google-genai


class GeminiTally(Tally):
    """Gemini chunks: each with candidates is an output chunk; every chunk has the running totals."""

    def see(self, chunk: Any) -> None:
        if chunk.candidates:
            self.chunks += 1
        self.response_id = chunk.response_id
        usage = chunk.usage_metadata
        if usage is not None and usage.prompt_token_count is not None:
            self.input = usage.prompt_token_count
            self.output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)


@dataclass
class Gemini(Adapter):
    """`client.models.generate_content_stream()` (`chat`: `client.chats.create().send_message_stream()`),
    sync and `client.aio`. A plain generator that sends nothing until it is first read: closed or dropped
    unread, it made no request and there is no span (as without llmlens)."""

    modules: tuple[str, ...] = ("google.genai", "google.genai.types")

    chat: bool = False
    form: str = GENERATOR
    exits: frozenset[str] = GENERATOR_EXITS | {ERROR_EVENT, HTTP_ERROR}
    error_event: str | None = f"chunks={WORDS},error_after=2"
    error_event_status: Any = 200  # the error came as an event inside a 200 response
    http_error: tuple[str, int] | None = ("status=429", 429)
    lazy: bool = True
    expect: dict[str, Expect] = field(
        default_factory=lambda: {
            CLOSE_UNREAD: Expect(NO_SPAN, "a generator closed unread sends no request"),
            DROP_UNREAD: Expect(NO_SPAN, "a generator dropped unread sends no request"),
        }
    )

    def importable(self) -> bool:
        return _has("google.genai")

    def client(self, server: Any, mode: str) -> Any:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=f"http://127.0.0.1:{server.port}",
            client_args={"verify": tls()},
            async_client_args={"verify": tls()},
        )
        return genai.Client(api_key="fake-key", http_options=options)

    def _config(self, scenario: str) -> Any:
        from google.genai import types

        return types.GenerateContentConfig(
            http_options=types.HttpOptions(headers={"x-fake-scenario": scenario})
        )

    def call(self, client: Any, scenario: str) -> Any:
        if self.chat:
            chat = client.chats.create(model="gemini-2.5-flash", config=self._config(scenario))
            return chat.send_message_stream("Say something")
        return client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Say something", config=self._config(scenario)
        )

    async def acall(self, client: Any, scenario: str) -> Any:
        if self.chat:
            chat = client.aio.chats.create(model="gemini-2.5-flash", config=self._config(scenario))
            return await chat.send_message_stream("Say something")
        return await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Say something", config=self._config(scenario)
        )

    def tally(self) -> Tally:
        return GeminiTally()


# ============================================================================================== bedrock


class BedrockTally(Tally):
    def see(self, event: dict[str, Any]) -> None:
        if "chunk" in event:
            payload = json.loads(event["chunk"]["bytes"])
            self.payload(payload)
            metrics = payload.get("amazon-bedrock-invocationMetrics")
            if metrics:
                cached = metrics.get("cacheReadInputTokenCount", 0) + metrics.get(
                    "cacheWriteInputTokenCount", 0
                )
                self.input, self.output = metrics["inputTokenCount"] + cached, metrics["outputTokenCount"]
        else:
            self.converse(event)

    def payload(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def converse(self, event: dict[str, Any]) -> None:
        if "contentBlockDelta" in event:
            self.chunks += 1
        elif "metadata" in event:
            usage = event["metadata"]["usage"]
            cached = usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount", 0)) + usage.get(
                "cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount", 0)
            )
            self.input, self.output = usage["inputTokens"] + cached, usage["outputTokens"]

    @property
    def tokens(self) -> tuple[int | None, int | None] | None:
        # llmlens reports Bedrock usage only as a pair.
        return None if self.input is None or self.output is None else (self.input, self.output)


class BedrockAnthropicTally(BedrockTally):
    def payload(self, payload: dict[str, Any]) -> None:
        kind = payload["type"]
        if kind == "content_block_delta":
            self.chunks += 1
        elif kind == "message_start":  # input (and cache) counts come first, output 1
            usage = payload["message"]["usage"]
            cached = usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
            self.input, self.output = usage["input_tokens"] + cached, usage["output_tokens"]
        elif kind == "message_delta":
            self.output = payload["usage"]["output_tokens"]


class BedrockNovaTally(BedrockTally):
    def payload(self, payload: dict[str, Any]) -> None:
        self.converse(payload)


class BedrockLlamaTally(BedrockTally):
    def payload(self, payload: dict[str, Any]) -> None:
        if payload["generation"]:
            self.chunks += 1
        if payload["prompt_token_count"] is not None:
            self.input = payload["prompt_token_count"]
        self.output = payload["generation_token_count"]


class BedrockMistralTally(BedrockTally):
    def payload(self, payload: dict[str, Any]) -> None:
        if "outputs" in payload:
            item = payload["outputs"][0]
            text, calls = item["text"], None
        else:
            item = payload["choices"][0]
            text, calls = item["message"]["content"], item["message"].get("tool_calls")
        if text or calls:
            self.chunks += 1


BEDROCK_MESSAGES: list[Any] = [{"role": "user", "content": [{"text": "Say something"}]}]


@dataclass
class Bedrock(Adapter):
    """boto3 `converse_stream` (`body` None) or `invoke_model_with_response_stream` with a model family's
    body: the botocore EventStream in `response["stream"]`/`response["body"]`. Sync only; an EventStream
    is iterable, not an iterator, and has no `with` form."""

    modules: tuple[str, ...] = ("boto3", "botocore.eventstream")

    model: str = ""
    body: dict[str, Any] | None = None
    family_tally: type[BedrockTally] = BedrockTally
    modes: tuple[str, ...] = ("sync",)
    form: str = GENERATOR
    exits: frozenset[str] = frozenset(
        {COMPLETE, CLOSE_AFTER_BREAK, CLOSE_UNREAD, DROP_AFTER_BREAK, DROP_UNREAD, TRANSPORT_ERROR,
         ERROR_EVENT, "error_event:throttlingException"}
    )  # fmt: skip
    base: str = f"chunks={WORDS},cache_read=6,cache_write=4"  # the cached input is a part of the input
    cut: str = f"chunks={WORDS},abort_after=4"
    error_event: str | None = f"chunks={WORDS},stream_error=modelStreamErrorException,error_after=3"
    error_event_status: Any = None  # the HTTP response itself was a 200
    # botocore's EventStreamError: error.type is the service's own code (`throttlingException`).
    error_event_type: Callable[[BaseException], str] | None = lambda error: str(
        error.response["Error"]["Code"]  # type: ignore[attr-defined]
    )
    instrument_options: dict[str, Any] = field(default_factory=lambda: {"store": False})

    def error_event_scenario(self, variant: str) -> str:
        assert self.error_event is not None
        return self.error_event.replace("modelStreamErrorException", variant) if variant else self.error_event

    def client(self, server: Any, mode: str) -> Any:
        return lambda scenario: server.client(scenario=scenario)

    def call(self, client: Any, scenario: str) -> Any:
        bedrock = client(scenario)
        if self.body is None:
            return bedrock.converse_stream(modelId=self.model, messages=BEDROCK_MESSAGES)["stream"]
        response = bedrock.invoke_model_with_response_stream(modelId=self.model, body=json.dumps(self.body))
        return response["body"]

    def tally(self) -> Tally:
        return self.family_tally()


def bedrock_adapters() -> list[Adapter]:
    claude = "anthropic.claude-3-haiku-20240307-v1:0"
    nova = "us.amazon.nova-pro-v1:0"
    families: list[tuple[str, str, dict[str, Any] | None, type[BedrockTally]]] = [
        ("converse", claude, None, BedrockTally),
        ("converse-nova", nova, None, BedrockTally),
        ("anthropic", claude, {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
                               "messages": [{"role": "user", "content": "Say something"}]},
         BedrockAnthropicTally),
        ("nova", nova, {"schemaVersion": "messages-v1", "messages": BEDROCK_MESSAGES}, BedrockNovaTally),
        ("llama", "meta.llama3-8b-instruct-v1:0", {"prompt": "Say something"}, BedrockLlamaTally),
        ("mistral", "mistral.mistral-7b-instruct-v0:2", {"prompt": "<s>[INST] Say something [/INST]"},
         BedrockMistralTally),
        ("mistral-chat", "mistral.mistral-large-2407-v1:0",
         {"messages": [{"role": "user", "content": "Say something"}]}, BedrockMistralTally),
    ]  # fmt: skip
    adapters: list[Adapter] = []
    for name, model, body, tally in families:
        kind = "text_completion" if body is not None and "prompt" in body else "chat"
        adapters.append(
            Bedrock(f"bedrock-{name}", f"{kind} {model}", "aws.bedrock", "bedrock", model=model, body=body,
                    family_tally=tally)
        )  # fmt: skip
    return adapters


# =============================================================================================== cohere


class CohereTally(Tally):
    """Cohere v2 chat events: content, tool-plan and tool-call deltas are chunks; billed usage at the end."""

    def see(self, event: Any) -> None:
        if event.type in ("content-delta", "tool-plan-delta", "tool-call-delta"):
            self.chunks += 1
        elif event.type == "message-start":
            self.response_id = event.id
        elif event.type == "message-end":
            billed = event.delta.usage.billed_units
            self.input, self.output = int(billed.input_tokens), int(billed.output_tokens)


COHERE_MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Paris?"},
]


# A client made before instrument(): its span starts when the request is sent (the first read), and a
# stream it drops ends `closed` when collected (src/llmlens/providers/cohere.py, module docstring).
COHERE_EARLY = {
    CLOSE_UNREAD: Expect(NO_SPAN, "providers/cohere.py: the span starts when the request is sent"),
    DROP_UNREAD: Expect(NO_SPAN, "providers/cohere.py: the span starts when the request is sent"),
    DROP_AFTER_BREAK: Expect(
        "closed", "providers/cohere.py: a dropped stream ends `closed` when collected", ended=AT_COLLECTION
    ),
}


@dataclass
class Cohere(Adapter):
    """`ClientV2.chat_stream()`: a generator whose first step sends the request. `early`: a client made
    before instrument(), recorded by the raw-client patches (its span starts when the request is sent).
    `raw`: `with client.with_raw_response.chat_stream(...) as raw: raw.data`."""

    modules: tuple[str, ...] = ("cohere", "fakes.cohere_server")

    early: bool = False
    raw: bool = False
    form: str = GENERATOR
    exits: frozenset[str] = GENERATOR_EXITS | {HTTP_ERROR}
    # message-start, content-start and two deltas, then the cut.
    cut: str = f"chunks={WORDS},abort_after=4"
    http_error: tuple[str, int] | None = ("status=429", 429)
    lazy: bool = True

    def importable(self) -> bool:
        return _has("cohere")

    def client(self, server: Any, mode: str) -> Any:
        import cohere
        import httpx

        if mode == "async":
            http = httpx.AsyncClient(verify=tls(), timeout=30)
            return cohere.AsyncClientV2(api_key="k", base_url=server.root, max_retries=0, httpx_client=http)
        http = httpx.Client(verify=tls(), timeout=30)
        return cohere.ClientV2(api_key="k", base_url=server.root, max_retries=0, httpx_client=http)

    def _kwargs(self, scenario: str) -> dict[str, Any]:
        from fakes.cohere_server import scenario as options

        return {
            "model": "command-a-03-2025",
            "messages": COHERE_MESSAGES,
            "request_options": options(scenario),
        }

    def call(self, client: Any, scenario: str) -> Any:
        if self.raw:
            return client.with_raw_response.chat_stream(**self._kwargs(scenario))
        return client.chat_stream(**self._kwargs(scenario))

    async def acall(self, client: Any, scenario: str) -> Any:
        if self.raw:
            return client.with_raw_response.chat_stream(**self._kwargs(scenario))
        return client.chat_stream(**self._kwargs(scenario))

    def inside(self, entered: Any) -> Any:
        return entered.data

    async def ainside(self, entered: Any) -> Any:
        return entered.data

    def tally(self) -> Tally:
        return CohereTally()


# =============================================================================================== ollama


class OllamaTally(Tally):
    """Ollama parts: every `done: false` part is an output chunk; the last one has the counts."""

    def see(self, part: Any) -> None:
        if not part.done:
            self.chunks += 1
        if part.prompt_eval_count is not None:
            self.input, self.output = part.prompt_eval_count, part.eval_count


@dataclass
class Ollama(Adapter):
    """`Client.chat(stream=True)` (`generate`: `generate(stream=True)`): a generator whose first step
    sends the request. The client takes the scenario header per client, so a client per call."""

    modules: tuple[str, ...] = ("ollama", "fakes.ollama_server")

    generate: bool = False
    form: str = GENERATOR
    exits: frozenset[str] = GENERATOR_EXITS | {ERROR_EVENT, HTTP_ERROR}
    cut: str = "abort_after=3"
    error_event: str | None = "stream_error=model runner crashed"
    error_event_status: Any = None  # the client's ResponseError has status -1: not an HTTP status
    http_error: tuple[str, int] | None = ("status=404", 404)
    lazy: bool = True
    instrument_options: dict[str, Any] = field(default_factory=lambda: {"store": False})

    def importable(self) -> bool:
        return _has("ollama")

    def client(self, server: Any, mode: str) -> Any:
        import ollama

        from fakes.ollama_server import headers

        cls = ollama.AsyncClient if mode == "async" else ollama.Client
        return lambda scenario: cls(host=server.root, headers=headers(scenario), verify=tls())

    def _kwargs(self) -> dict[str, Any]:
        if self.generate:
            return {"model": "llama3.2", "prompt": "Why?", "stream": True}
        return {"model": "llama3.2", "messages": COHERE_MESSAGES, "stream": True}

    def call(self, client: Any, scenario: str) -> Any:
        ollama = client(scenario)
        return (ollama.generate if self.generate else ollama.chat)(**self._kwargs())

    async def acall(self, client: Any, scenario: str) -> Any:
        ollama = client(scenario)
        return await (ollama.generate if self.generate else ollama.chat)(**self._kwargs())

    def tally(self) -> Tally:
        return OllamaTally()

    def view(self, item: Any) -> Any:
        return (type(item), scrub(item))


# ================================================================================================ proxy


class ProxyTally(Tally):
    """Anthropic SSE frames as a proxy forwards them: content_block_delta frames are the chunks."""

    def see(self, frame: Any) -> None:
        text = frame.decode() if isinstance(frame, bytes) else str(frame)
        kind = text.split("\n", 1)[0].removeprefix("event: ").strip()
        data = json.loads(text.split("data: ", 1)[1]) if "data: " in text else {}
        if kind == "content_block_delta":
            self.chunks += 1
        elif kind == "message_start":
            self.response_id = data["message"]["id"]
            self.input = data["message"]["usage"]["input_tokens"]
        elif kind == "message_delta":
            self.output = data["usage"]["output_tokens"]


class ItemTally(Tally):
    """Items with no wire format: each one a chunk, no ids, no usage."""

    def see(self, item: Any) -> None:
        self.chunks += 1


class UpstreamCut(ConnectionError):
    """What the proxy's upstream raises when its connection is cut (the proxy's own exception)."""


@dataclass
class Proxy(Adapter):
    """The proxy record for servers that are not ASGI: `llm_request(source_format="anthropic", ...)`
    and `request.wrap_stream()`/`wrap_async_stream()` of the upstream's SSE frames (the fake's bytes).
    A server span; its outcomes are a server's (docs/proxy.md): closed early is `client_disconnected`,
    an exception `server_exception`, an error event `upstream_error`."""

    modules: tuple[str, ...] = ("llmlens.proxy.context", "proxies.asgi_apps")

    form: str = GENERATOR
    exits: frozenset[str] = GENERATOR_EXITS | {ERROR_EVENT}
    span_kind: str = "SERVER"
    cut: str = "cut_after=5"  # message_start, content_block_start, ping, two deltas
    error_event: str | None = "stream_error=overloaded_error"
    error_event_type: Callable[[BaseException], str] | None = lambda error: "overloaded_error"
    source_format: str | None = "anthropic"  # None: `llm_request("chat", model="m", stream=True)`, items
    _last: Any = None
    expect: dict[str, Expect] = field(
        default_factory=lambda: {
            CLOSE_AFTER_BREAK: Expect("client_disconnected", "docs/proxy.md: closed early"),
            # close() of a generator that never started runs none of its body: only the finaliser
            # ends the request, as of the hand-over.
            CLOSE_UNREAD: Expect(
                "abandoned", "docs/proxy.md: freed without ever being read", ended=AT_HANDOVER
            ),
            DROP_UNREAD: Expect(
                "abandoned", "docs/proxy.md: freed without ever being read", ended=AT_HANDOVER
            ),
            TRANSPORT_ERROR: Expect("server_exception", "docs/proxy.md: the application raised"),
            ERROR_EVENT: Expect("upstream_error", "docs/proxy.md: an error event in a started stream"),
        }
    )

    def client(self, server: Any, mode: str) -> Any:
        return server  # the Telemetry the records go to (see the suite's `proxy_telemetry`)

    def plain_client(self, server: Any, mode: str) -> Any:
        return None

    def _upstream(self, scenario: str, mode: str) -> Any:
        import asyncio
        import time

        from proxies.asgi_apps import fake_reply

        options = dict(part.partition("=")[::2] for part in scenario.split(",") if part)
        cut = int(options.pop("cut_after", 0)) or None
        delay = int(options.pop("chunk_delay_ms", 0)) / 1000
        body = {"model": "claude-x", "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}],
                "stream": True}  # fmt: skip
        if self.source_format is None:  # anything, counted
            frames: list[Any] = [f"chunk {number}" for number in range(int(options.get("chunks", WORDS)))]
        else:
            frames = fake_reply("/v1/messages", body, ",".join(f"{k}={v}" for k, v in options.items())).events
        assert frames

        def upstream() -> Iterator[bytes]:
            for number, frame in enumerate(frames):
                if number == cut:
                    raise UpstreamCut("upstream connection reset")
                if number and delay:
                    time.sleep(delay)
                yield frame

        async def aupstream() -> Any:
            for number, frame in enumerate(frames):
                if number == cut:
                    raise UpstreamCut("upstream connection reset")
                if number and delay:
                    await asyncio.sleep(delay)
                yield frame

        self._last = upstream() if mode == "sync" else aupstream()
        return self._last

    def upstream_closed(self) -> bool | None:
        """docs/proxy.md: closed early, the wrapped stream is closed too."""
        last = self._last
        return (last.gi_frame if hasattr(last, "gi_frame") else last.ag_frame) is None

    def _record(self, telemetry: Any) -> Any:
        import llmlens

        if self.source_format is None:
            return llmlens.llm_request("chat", model="m", stream=True, telemetry=telemetry)
        body = {"model": "claude-x", "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}],
                "stream": True}  # fmt: skip
        return llmlens.llm_request(source_format="anthropic", body=body, telemetry=telemetry)

    def call(self, client: Any, scenario: str) -> Any:
        upstream = self._upstream(scenario, "sync")
        if client is None:  # uninstrumented: the upstream as it is
            return upstream
        with self._record(client) as request:
            return request.wrap_stream(upstream)

    async def acall(self, client: Any, scenario: str) -> Any:
        upstream = self._upstream(scenario, "async")
        if client is None:
            return upstream
        async with self._record(client) as request:
            return request.wrap_async_stream(upstream)

    def tally(self) -> Tally:
        return ItemTally() if self.source_format is None else ProxyTally()

    def view(self, item: Any) -> Any:
        import re

        return item if isinstance(item, str) else re.sub(rb'"id": ?"[^"]*"', b'"id":""', item)


# ============================================================================================= registry


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def adapters() -> list[Adapter]:
    chat, gen = "chat gpt-4o-mini", "generate_content gemini-2.5-flash"
    openai_exits = STREAM_EXITS | {ASYNCIO_RUN}
    return [
        OpenAIChat("openai-chat", chat, "openai_compatible", "fake", exits=openai_exits),
        OpenAIChat("openai-chat-raw", chat, "openai_compatible", "fake", via="raw"),
        OpenAIChat("openai-chat-streaming-response", chat, "openai_compatible", "fake", form=MANAGER,
                   exits=MANAGER_EXITS, via="streaming_response"),
        OpenAIResponses("openai-responses", chat, "openai_compatible", "fake"),
        OpenAIResponses("openai-responses-stream", chat, "openai_compatible", "fake", form=MANAGER,
                        exits=MANAGER_EXITS | {DRAIN}, helper=True),
        GroqChat("groq-chat", "chat llama-3.3-70b-versatile", "groq", "fake", exits=openai_exits),
        GroqChat("groq-chat-raw", "chat llama-3.3-70b-versatile", "groq", "fake", via="raw",
                 exits=frozenset({COMPLETE, CLOSE_AFTER_BREAK, DROP_AFTER_BREAK, TRANSPORT_ERROR})),
        AnthropicMessages("anthropic-create", "chat claude-haiku-4-5", "anthropic", "fake",
                          exits=openai_exits | {ERROR_EVENT}),
        AnthropicMessages("anthropic-create-raw", "chat claude-haiku-4-5", "anthropic", "fake", via="raw"),
        AnthropicMessages("anthropic-create-raw-temporary", "chat claude-haiku-4-5", "anthropic", "fake",
                          via="raw_temporary", modes=("async",), exits=frozenset({COMPLETE}), partial=True),
        AnthropicMessages("anthropic-create-streaming-response", "chat claude-haiku-4-5", "anthropic", "fake",
                          form=MANAGER, exits=MANAGER_EXITS, via="streaming_response"),
        AnthropicMessages("anthropic-stream", "chat claude-haiku-4-5", "anthropic", "fake", form=MANAGER,
                          exits=MANAGER_EXITS | {DRAIN, f"{DRAIN}:get_final_message",
                                                 f"{DRAIN}:get_final_text", ERROR_EVENT}, helper=True),
        AnthropicMessages("anthropic-beta-create", "chat claude-haiku-4-5", "anthropic", "fake", beta=True,
                          exits=frozenset({COMPLETE, CLOSE_AFTER_BREAK, DROP_AFTER_BREAK, TRANSPORT_ERROR})),
        AnthropicMessages("anthropic-beta-stream", "chat claude-haiku-4-5", "anthropic", "fake", form=MANAGER,
                          helper=True, beta=True,
                          exits=frozenset({COMPLETE, DRAIN, WITH_EXIT_AFTER_BREAK, TRANSPORT_ERROR})),
        AnthropicMessages("anthropic-stream-text", "chat claude-haiku-4-5", "anthropic", "fake",
                          form=MANAGER, exits=MANAGER_EXITS | {ERROR_EVENT}, helper=True, text=True),
        Gemini("gemini", gen, "gcp.gemini", "fake"),
        Gemini("gemini-chat", gen, "gcp.gemini", "fake", chat=True),
        *bedrock_adapters(),
        Cohere("cohere", "chat command-a-03-2025", "cohere", "cohere_server"),
        Cohere("cohere-early", "chat command-a-03-2025", "cohere", "cohere_server", early=True,
               client_before_instrument=True, expect=COHERE_EARLY),
        Cohere("cohere-raw", "chat command-a-03-2025", "cohere", "cohere_server", raw=True, form=MANAGER,
               modes=("sync",), exits=frozenset({COMPLETE, WITH_EXIT_AFTER_BREAK, WITH_EXIT_UNREAD,
                                                  TRANSPORT_ERROR})),
        Ollama("ollama-chat", "chat llama3.2", "ollama", "ollama_server"),
        Ollama("ollama-generate", "text_completion llama3.2", "ollama", "ollama_server", generate=True,
               exits=frozenset({COMPLETE, CLOSE_AFTER_BREAK, DROP_AFTER_BREAK, TRANSPORT_ERROR})),
        Proxy("proxy", "chat claude-x", "anthropic", "proxy_telemetry"),
        Proxy("proxy-plain", "chat m", "unknown", "proxy_telemetry", source_format=None,
              exits=GENERATOR_EXITS, finish=None, usage_when_complete=False),
    ]  # fmt: skip
