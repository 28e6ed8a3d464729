"""`llmlens demo`: a fake provider on loopback, a mixed workload through the real SDKs, a table.

No key and no network: the fake OpenAI-compatible server runs on 127.0.0.1 in this process, and a
second one answers the Anthropic Messages API calls (made when the anthropic SDK is installed). Spans
are collected in memory here; metrics go to an in-memory reader so the demo can show them too.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from llmlens.demo.fake_server import FakeProvider

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
HELLO = [{"role": "user", "content": "Say hello in a few words."}]


@dataclass
class Step:
    """One call of the workload: a label and the code that makes it with the SDK's (sync, async) clients."""

    label: str
    run: Callable[[Any, Any], Any]
    sdk: str = "openai"


def _scenario(value: str) -> dict[str, Any]:
    return {"extra_headers": {"x-fake-scenario": value}}


def _stream_all(stream: Any) -> None:
    for _ in stream:
        pass


def _break_after(stream: Any, count: int) -> None:
    with stream:
        for i, _ in enumerate(stream):
            if i + 1 >= count:
                break


async def _async_stream(async_client: Any) -> None:
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        **_scenario("chunks=10,chunk_delay_ms=5"),
    )
    async for _ in stream:
        pass


def _expect_error(call: Callable[[], Any]) -> None:
    import openai

    expected: tuple[type[BaseException], ...] = (openai.APIError,)
    try:
        import httpx
    except ImportError:
        pass
    else:
        # openai 2 lets a broken stream's httpx.RemoteProtocolError through; openai 3 wraps it.
        expected += (httpx.TransportError,)
    try:
        call()
    except expected:
        pass  # the demo shows how errors are recorded


STEPS: list[Step] = [
    Step("chat", lambda c, a: c.chat.completions.create(model="gpt-4o-mini", messages=HELLO)),
    Step(
        "chat, streamed with usage",
        lambda c, a: _stream_all(
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
                **_scenario("chunks=12,chunk_delay_ms=10"),
            )
        ),
    ),
    Step(
        "chat, cached + reasoning tokens",
        lambda c, a: c.chat.completions.create(
            model="o4-mini", messages=HELLO, **_scenario("cached=24,reasoning=40")
        ),
    ),
    Step(
        "chat, tool call",
        lambda c, a: c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
        ),
    ),
    Step(
        "chat, streamed tool call",
        lambda c, a: _stream_all(
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Weather in Paris?"}],
                tools=[WEATHER_TOOL],
                tool_choice="required",
                stream=True,
                stream_options={"include_usage": True},
            )
        ),
    ),
    Step("chat, n=2", lambda c, a: c.chat.completions.create(model="gpt-4o-mini", messages=HELLO, n=2)),
    Step(
        "chat, stream closed early",
        lambda c, a: _break_after(
            c.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, stream=True, **_scenario("chunks=20,chunk_delay_ms=5")
            ),
            3,
        ),
    ),
    Step(
        "chat, transport error mid-stream",
        lambda c, a: _expect_error(
            lambda: _stream_all(
                c.chat.completions.create(
                    model="gpt-4o-mini", messages=HELLO, stream=True, **_scenario("chunks=10,abort_after=4")
                )
            )
        ),
    ),
    Step(
        "chat, rate limited (429)",
        lambda c, a: _expect_error(lambda: c.chat.completions.create(model="fake-error-429", messages=HELLO)),
    ),
    Step("responses", lambda c, a: c.responses.create(model="gpt-4.1-mini", input="Say hello.")),
    Step(
        "responses.stream()",
        lambda c, a: _responses_stream(c),
    ),
    Step(
        "embeddings",
        lambda c, a: c.embeddings.create(model="text-embedding-3-small", input=["hello", "world"]),
    ),
    Step("chat, async stream", lambda c, a: asyncio.run(_async_stream(a))),
]


CLAUDE = "claude-haiku-4-5"
CLAUDE_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _anthropic_helper_stream(client: Any) -> None:
    with client.messages.stream(
        model=CLAUDE, max_tokens=256, messages=HELLO, **_scenario("chunks=12,chunk_delay_ms=5")
    ) as stream:
        for _ in stream.text_stream:
            pass
        stream.get_final_message()


def _anthropic_error_event(client: Any) -> None:
    import anthropic

    stream = client.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=HELLO,
        stream=True,
        **_scenario("stream_error=overloaded_error"),
    )
    try:
        _stream_all(stream)
    except anthropic.APIStatusError:
        pass  # an `event: error` mid-stream: the demo shows how it is recorded


ANTHROPIC_STEPS: list[Step] = [
    Step(
        "anthropic messages, cache + thinking",
        lambda c, a: c.messages.create(
            model=CLAUDE,
            max_tokens=1024,
            messages=HELLO,
            **_scenario("cached=300,cache_write=40,thinking=12"),
        ),
        "anthropic",
    ),
    Step("anthropic messages.stream()", lambda c, a: _anthropic_helper_stream(c), "anthropic"),
    Step(
        "anthropic tool use",
        lambda c, a: c.messages.create(
            model=CLAUDE,
            max_tokens=256,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[CLAUDE_WEATHER_TOOL],
            tool_choice={"type": "any"},
        ),
        "anthropic",
    ),
    Step("anthropic, overloaded mid-stream", lambda c, a: _anthropic_error_event(c), "anthropic"),
]


GEMINI = "gemini-2.5-flash"


def _gemini_config(scenario: str) -> Any:
    from google.genai import types

    return types.GenerateContentConfig(http_options=types.HttpOptions(headers={"x-fake-scenario": scenario}))


GOOGLE_STEPS: list[Step] = [
    Step(
        "gemini generate_content, cache + thinking",
        lambda c, a: c.models.generate_content(
            model=GEMINI,
            contents="Say hello in a few words.",
            config=_gemini_config("cached=16,reasoning=48"),
        ),
        "google",
    ),
    Step(
        "gemini generate_content_stream",
        lambda c, a: _stream_all(
            c.models.generate_content_stream(
                model=GEMINI,
                contents="Say hello in a few words.",
                config=_gemini_config("chunks=10,chunk_delay_ms=5"),
            )
        ),
        "google",
    ),
]


def _sdk_installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # google.genai without the google namespace
        return False


def workload_steps() -> list[Step]:
    """The OpenAI steps, and the Anthropic and Gemini ones when their SDKs are installed."""
    return (
        STEPS
        + (ANTHROPIC_STEPS if _sdk_installed("anthropic") else [])
        + (GOOGLE_STEPS if _sdk_installed("google.genai") else [])
    )


def _responses_stream(client: Any) -> None:
    with client.responses.stream(model="gpt-4.1-mini", input="Say hello.") as stream:
        for _ in stream:
            pass
        stream.get_final_response()


def run_demo(out: TextIO = sys.stdout, capture_content: bool = False, db_path: str | None = None) -> int:
    """Run the workload, record it into the local store, print what was recorded. Returns an exit code."""
    try:
        import openai
    except ImportError:
        print("llmlens demo needs the openai SDK: pip install 'llmlens[openai]'", file=out)
        return 2
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmlens.demo.report import metrics_table, spans_table
    from llmlens.instrumentor import Instrumentor

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = Instrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    from llmlens import pricing
    from llmlens.store.paths import default_db_path

    db_path = db_path or default_db_path()
    started = datetime.now().astimezone()
    steps = workload_steps()
    # Two fake servers: the OpenAI-compatible one is named `openai` below (by its port), the other one
    # answers the anthropic SDK, whose calls are `anthropic` anyway.
    with FakeProvider() as server, FakeProvider() as claude_server:
        instrumentor.instrument(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            capture_content="SPAN_ONLY" if capture_content else None,
            # The fake server stands in for OpenAI: name it so, and the calls are priced as OpenAI's.
            provider_map={f"127.0.0.1:{server.port}": "openai"},
            store=True,
            db_path=db_path,
        )
        pricing.ready(timeout=10)
        arm_id = _arm_profile(out, db_path)
        try:
            print(f"fake OpenAI-compatible provider on {server.base_url}", file=out)
            client = openai.OpenAI(api_key="sk-demo-not-a-real-key", base_url=server.base_url, max_retries=0)
            async_client = openai.AsyncOpenAI(
                api_key="sk-demo-not-a-real-key", base_url=server.base_url, max_retries=0
            )
            clients: dict[str, tuple[Any, Any]] = {"openai": (client, async_client)}
            if any(step.sdk == "anthropic" for step in steps):
                import anthropic

                root = f"http://{claude_server.host}:{claude_server.port}"
                print(f"fake Anthropic Messages API provider on {root}", file=out)
                clients["anthropic"] = (
                    anthropic.Anthropic(api_key="sk-ant-demo-not-a-real-key", base_url=root, max_retries=0),
                    None,
                )
            if any(step.sdk == "google" for step in steps):
                from google import genai

                # The second server: not named `openai`, so the calls are `gcp.gemini` (and priced so).
                root = f"http://{claude_server.host}:{claude_server.port}"
                print(f"fake Gemini API provider on {root}", file=out)
                google_options = genai.types.HttpOptions(base_url=root)
                clients["google"] = (
                    genai.Client(api_key="demo-not-a-real-key", http_options=google_options),
                    None,
                )
            for number, step in enumerate(steps, 1):
                print(f"  [{number:2}/{len(steps)}] {step.label}", file=out)
                step.run(*clients[step.sdk])
        finally:
            instrumentor.uninstrument()
    finished = spans.get_finished_spans()
    print(file=out)
    print(spans_table(finished), file=out)
    print(file=out)
    print(metrics_table(reader.get_metrics_data()), file=out)
    print(f"\n{len(finished)} spans recorded for {len(steps)} calls.", file=out)
    code = _print_store(out, db_path, started)
    _print_profile(out, db_path, arm_id)
    print(f"\nsee it all in the browser: llmlens ui --db {shlex.quote(db_path)}", file=out)
    return code if len(finished) == len(steps) else 1


# The demo profiles its first call this slow (the streamed chat, 12 chunks 10 ms apart): faster calls are
# profiled too but not kept, as `llmlens profile arm --min-duration` does.
PROFILE_MIN_MS = 80.0


def _arm_profile(out: TextIO, db: str) -> int | None:
    """Arm one profile, as `llmlens profile arm --next 1 --model gpt-4o-mini --min-duration 80` would."""
    from llmlens import profiling

    try:
        arm_id = profiling.arm(1, model="gpt-4o-mini", min_duration_ms=PROFILE_MIN_MS, expires=300, db=db)
    except Exception as error:  # the store cannot be written: the demo goes on without a profile
        print(f"(no profile: {error})", file=out)
        return None
    print(f"armed a profile: the next gpt-4o-mini call of at least {PROFILE_MIN_MS:g} ms", file=out)
    return arm_id


def _print_profile(out: TextIO, db_path: str, arm_id: int | None) -> None:
    """The summary of the profile the demo armed, and the commands that open it."""
    from llmlens.store.formats import profile_open_hint, profile_summary_lines
    from llmlens.store.profiles import profile_of_arm
    from llmlens.store.schema import open_store

    if arm_id is None:
        return
    conn = open_store(db_path, create=False)
    try:
        profile = profile_of_arm(conn, arm_id)
    finally:
        conn.close()
    if profile is None:
        print(f"\nno gpt-4o-mini call took {PROFILE_MIN_MS:g} ms or more: no profile kept", file=out)
        return
    print(f"\nprofile of request {profile['request_id']} ({profile['model']}):", file=out)
    for line in profile_summary_lines(profile):
        print(f"  {line}", file=out)
    print(f"open it: {profile_open_hint(profile['id'], db_path)}", file=out)


def _print_store(out: TextIO, db_path: str, started: datetime) -> int:
    """What the local store now holds for this run: `llmlens stats` and the newest `llmlens log` rows."""
    from contextlib import redirect_stdout

    from llmlens.store.cli import main  # the store commands alone: the demo sits below llmlens.cli

    since = started.isoformat(timespec="seconds")
    print(f"\nrecorded into the local store {db_path}", file=out)
    with redirect_stdout(out):
        print(f"\n$ llmlens stats --since {since}", file=out)
        code = main(["stats", "--db", db_path, "--since", since])
        print("\n$ llmlens log --limit 8", file=out)
        code = code or main(["log", "--db", db_path, "--limit", "8"])
    print(
        "\nlook further with `llmlens log`, `llmlens show ID`, `llmlens stats --by model`, `llmlens health`",
        file=out,
    )
    return code
