"""What the fuzz tests call: for every SDK llmlens instruments, a real client pointed at `FuzzServer`, a
seed reply (the fake provider's own body for that endpoint, stream or not) and the call, reduced to a
plain, comparable outcome.

`FuzzServer` answers every request with the `Wire` it was last given (tests/reliability/mutations.py),
so one SDK call sees exactly the bytes the test chose, whatever the path.

`outcome(target, client)` is what the user sees: the return value (or every streamed item) as plain
data (`model_dump()`, dicts), or the exception's public type and message after the items read before
it; with the transport details that differ from one call to the next (dates, addresses) left out.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mutations import EVENTSTREAM, NDJSON, SSE, Codec, Wire

from fakes import bedrock_bodies, cohere_bodies, loopback_server, ollama_bodies
from fakes.loopback_server import LoopbackServer
from llmlens.demo import fake_anthropic, fake_bodies, fake_gemini
from llmlens.demo.fake_bodies import FakeReply, Scenario


class _SameDateHandler(loopback_server._Handler):
    def date_time_string(self, timestamp: float | None = None) -> str:
        return "Thu, 01 Jan 2026 00:00:00 GMT"  # two calls a second apart see the same headers


class FuzzServer(LoopbackServer):
    """A loopback HTTP server that sends `wire` to every request (a stream: one frame per chunk)."""

    def __init__(self) -> None:
        super().__init__(self._reply)
        self.wire: Wire | None = None

    def __enter__(self) -> FuzzServer:
        super().__enter__()
        assert self._server is not None
        self._server.RequestHandlerClass = _SameDateHandler
        return self

    def _reply(
        self, method: str, path: str, headers: dict[str, str], payload: Any
    ) -> tuple[FakeReply, Scenario]:
        wire = self.wire
        assert wire is not None, "FuzzServer: no reply set"
        if wire.frames is None:
            return FakeReply(wire.status, dict(wire.headers), body=wire.body), Scenario()
        frames = list(wire.frames)
        if wire.cut:  # the server aborts at the frame with this index: one past the last real frame
            return FakeReply(wire.status, dict(wire.headers), events=[*frames, b""]), Scenario(
                abort_after=len(frames)
            )
        return FakeReply(wire.status, dict(wire.headers), events=frames), Scenario()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


# ------------------------------------------------------------------------------------------- outcome

_DROPPED_KEYS = frozenset({"sdk_http_response", "ResponseMetadata"})  # response headers: the Date differs


def plain(value: Any) -> Any:
    """`value` as plain data to compare: pydantic models dumped, transport metadata dropped."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = dump(warnings=False)
            except TypeError:
                value = dump()
            except Exception as error:  # a model the SDK built but cannot dump: the same with llmlens
                return ("model_dump failed", type(error).__name__)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in _DROPPED_KEYS}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def public_name(error: BaseException) -> str:
    cls = type(error)
    parts = []
    for part in cls.__module__.split("."):
        if part.startswith("_"):
            break
        parts.append(part)
    return f"{'.'.join(parts)}.{cls.__qualname__}"


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def describe(error: BaseException) -> tuple[str, str, str | None]:
    cause = error.__cause__ or error.__context__
    return (
        public_name(error),
        _ADDRESS.sub(" at 0x?", str(error)),
        public_name(cause) if cause is not None else None,
    )


def outcome(target: Target, client: Any) -> str:
    """What the user's code sees from one call: returned, or raised (after the items read before it)."""
    items: list[Any] = []
    try:
        result = target.call(client, lambda item: items.append(plain(item)))
    except Exception as error:
        return render("raised", items, describe(error))
    return render("returned", items, plain(result))


def render(how: str, items: list[Any], value: Any) -> str:
    """An outcome as text to compare: object addresses, which differ between calls, masked."""
    return _ADDRESS.sub(" at 0x?", repr((how, items, value)))


# ------------------------------------------------------------------------------------------- targets

Emit = Callable[[Any], None]


@dataclass(frozen=True)
class Target:
    """One SDK call under fuzzing: its seed reply, the frame codec of its stream, how to call it."""

    name: str
    sdk: str
    seed: Wire
    codec: Codec | None
    call: Callable[[Any, Emit], Any]  # (client, emit each streamed item) -> the return value

    def __repr__(self) -> str:
        return self.name


def make_client(sdk: str, root: str) -> Any:
    """A real client of `sdk` for the server at `root` (http://127.0.0.1:PORT): no retries."""
    if sdk == "openai":
        import openai

        return openai.OpenAI(api_key="sk-fuzz", base_url=root + "/v1", max_retries=0, timeout=20)
    if sdk == "openai-async":
        import openai

        return lambda: openai.AsyncOpenAI(api_key="sk-fuzz", base_url=root + "/v1", max_retries=0, timeout=20)
    if sdk == "anthropic":
        import anthropic

        return anthropic.Anthropic(api_key="k", base_url=root, max_retries=0, timeout=20)
    if sdk == "groq":
        import groq

        return groq.Groq(api_key="gsk-fuzz", base_url=root, max_retries=0, timeout=20)
    if sdk == "google":
        from google import genai
        from google.genai import types

        return genai.Client(api_key="fuzz-key", http_options=types.HttpOptions(base_url=root, timeout=20_000))
    if sdk == "cohere":
        import cohere

        return cohere.ClientV2(api_key="k", base_url=root, timeout=20, max_retries=0)
    if sdk == "ollama":
        import ollama

        return ollama.Client(host=root, timeout=20)
    if sdk == "bedrock":
        import boto3
        from botocore.config import Config

        return boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=root,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=20, connect_timeout=5),
        )
    raise ValueError(sdk)


def _wire(reply: Any) -> Wire:
    events = getattr(reply, "events", None)
    frames = tuple(events) if events is not None else None
    return Wire(reply.status, dict(reply.headers), body=reply.body, frames=frames)


SCENARIO = Scenario(chunks=4, cached=2, reasoning=1)
HI = [{"role": "user", "content": "Say something"}]


def _openai_seed(path: str, request: dict[str, Any]) -> Wire:
    return _wire(fake_bodies.route("POST", path, request, SCENARIO))


def _stream(items: Any, emit: Emit) -> None:
    """Read every item, then close the stream whatever happened, as a careful application does: a
    stream left half-read is finalised by the garbage collector whenever it runs, and inside httpcore's
    pool lock that deadlocks the thread's next request (encode/httpcore#996, with or without llmlens)."""
    try:
        for item in items:
            emit(item)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _openai_targets() -> list[Target]:
    chat = {"model": "gpt-4o-mini", "messages": HI}
    stream = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    responses = {"model": "gpt-4o-mini", "input": "Say something"}

    def chat_stream(client: Any, emit: Emit) -> None:
        with client.chat.completions.create(**stream) as chunks:
            _stream(chunks, emit)

    def chat_stream_async(make: Any, emit: Emit) -> None:
        async def run() -> None:
            async with make() as client:
                chunks = await client.chat.completions.create(**stream)
                try:
                    async for chunk in chunks:
                        emit(chunk)
                finally:
                    await chunks.close()

        asyncio.run(run())

    return [
        Target("openai-chat", "openai", _openai_seed("/v1/chat/completions", chat), None,
               lambda client, emit: client.chat.completions.create(**chat)),
        Target("openai-chat-stream", "openai", _openai_seed("/v1/chat/completions", stream), SSE,
               chat_stream),
        Target("openai-chat-stream-async", "openai-async", _openai_seed("/v1/chat/completions", stream), SSE,
               chat_stream_async),
        Target("openai-responses", "openai", _openai_seed("/v1/responses", responses), None,
               lambda client, emit: client.responses.create(**responses)),
        Target("openai-responses-stream", "openai",
               _openai_seed("/v1/responses", {**responses, "stream": True}), SSE,
               lambda client, emit: _stream(client.responses.create(**responses, stream=True), emit)),
    ]  # fmt: skip


def _anthropic_targets() -> list[Target]:
    request = {"model": "claude-3-5-haiku-latest", "max_tokens": 100, "messages": HI}

    def seed(stream: bool) -> Wire:
        return _wire(fake_anthropic.route("POST", "/v1/messages", {**request, "stream": stream}, SCENARIO))

    def helper(client: Any, emit: Emit) -> Any:
        with client.messages.stream(**request) as stream:
            _stream(stream, emit)
            return stream.get_final_message()

    return [
        Target("anthropic-messages", "anthropic", seed(False), None,
               lambda client, emit: client.messages.create(**request)),
        Target("anthropic-messages-stream", "anthropic", seed(True), SSE,
               lambda client, emit: _stream(client.messages.create(**request, stream=True), emit)),
        Target("anthropic-messages-stream-helper", "anthropic", seed(True), SSE, helper),
    ]  # fmt: skip


def _gemini_targets() -> list[Target]:
    body = {"contents": [{"role": "user", "parts": [{"text": "Say something"}]}]}

    def seed(method: str) -> Wire:
        reply = fake_gemini.reply_for("POST", f"/v1beta/models/gemini-2.5-flash:{method}", "chunks=4", body)
        assert reply is not None
        return _wire(reply[0])

    return [
        Target("google-genai-generate", "google", seed("generateContent"), None,
               lambda client, emit: client.models.generate_content(
                   model="gemini-2.5-flash", contents="Say something")),
        Target("google-genai-generate-stream", "google", seed("streamGenerateContent?alt=sse"), SSE,
               lambda client, emit: _stream(client.models.generate_content_stream(
                   model="gemini-2.5-flash", contents="Say something"), emit)),
    ]  # fmt: skip


def _groq_targets() -> list[Target]:
    chat = {"model": "llama-3.1-8b-instant", "messages": HI}
    stream = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    return [
        Target("groq-chat", "groq", _openai_seed("/v1/chat/completions", chat), None,
               lambda client, emit: client.chat.completions.create(**chat)),
        Target("groq-chat-stream", "groq", _openai_seed("/v1/chat/completions", stream), SSE,
               lambda client, emit: _stream(client.chat.completions.create(**chat, stream=True), emit)),
    ]  # fmt: skip


def _cohere_targets() -> list[Target]:
    request = {"model": "command-r-plus", "messages": HI}

    def seed(stream: bool) -> Wire:
        return _wire(cohere_bodies.route("POST", "/v2/chat", {**request, "stream": stream}, SCENARIO))

    return [
        Target("cohere-chat", "cohere", seed(False), None, lambda client, emit: client.chat(**request)),
        Target("cohere-chat-stream", "cohere", seed(True), SSE,
               lambda client, emit: _stream(client.chat_stream(**request), emit)),
    ]  # fmt: skip


def _ollama_targets() -> list[Target]:
    request = {"model": "llama3.2", "messages": HI}

    def seed(stream: bool) -> Wire:
        return _wire(ollama_bodies.route("POST", "/api/chat", {**request, "stream": stream}, SCENARIO))

    return [
        Target("ollama-chat", "ollama", seed(False), None, lambda client, emit: client.chat(**request)),
        Target("ollama-chat-stream", "ollama", seed(True), NDJSON,
               lambda client, emit: _stream(client.chat(**request, stream=True), emit)),
    ]  # fmt: skip


def _bedrock_targets() -> list[Target]:
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    messages = [{"role": "user", "content": [{"text": "Say something"}]}]
    body = json.dumps({"messages": messages}).encode()

    def seed(operation: str) -> Wire:
        scenario = bedrock_bodies.BedrockScenario()
        return _wire(bedrock_bodies.route("POST", f"/model/{model}/{operation}", body, scenario))

    def converse_stream(client: Any, emit: Emit) -> Any:
        response = client.converse_stream(modelId=model, messages=messages)
        _stream(response["stream"], emit)
        return {key: value for key, value in response.items() if key != "stream"}

    return [
        Target("bedrock-converse", "bedrock", seed("converse"), None,
               lambda client, emit: client.converse(modelId=model, messages=messages)),
        Target("bedrock-converse-stream", "bedrock", seed("converse-stream"), EVENTSTREAM, converse_stream),
    ]  # fmt: skip


def all_targets() -> list[Target]:
    return [
        *_openai_targets(),
        *_anthropic_targets(),
        *_gemini_targets(),
        *_groq_targets(),
        *_cohere_targets(),
        *_ollama_targets(),
        *_bedrock_targets(),
    ]
