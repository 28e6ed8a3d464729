"""An instrumented application for the profiling tests, run as its own process.

    python tests/profiling_app.py BASE_URL

It instruments the openai SDK with the local store at $LLMLENS_DB, prints `ready`, then runs one command
per line of stdin and answers each with one line of JSON:

    call [SCENARIO]     one chat completion through `app_calling_code` -> {"response_id": ...}
    stream [SCENARIO]   one streamed chat completion, read to its end -> {"response_id": ...}
    flush               the store has written everything so far -> {"flushed": true}
    quit
"""

from __future__ import annotations

import json
import sys

import openai
from opentelemetry.sdk.trace import TracerProvider

from llmlens import Instrumentor


def app_prepares_the_prompt() -> list[dict[str, str]]:
    """Some work of the application's own inside the profiled window (it runs in the stream loop)."""
    total = 0
    for number in range(60_000):
        total += number % 7
    return [{"role": "user", "content": f"Hi {total % 10}"}]


def app_calling_code(client: openai.OpenAI, scenario: str | None, stream: bool) -> str:
    headers = {"x-fake-scenario": scenario} if scenario else None
    messages = app_prepares_the_prompt()
    if not stream:
        response = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, extra_headers=headers
        )
        return response.id
    chunks = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, extra_headers=headers
    )
    response_id = ""
    for chunk in chunks:
        response_id = chunk.id
        app_prepares_the_prompt()  # the application's work per chunk
    return response_id


def main() -> int:
    tracer_provider = TracerProvider()
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, scenario = line.strip().partition(" ")
        if command in ("call", "stream"):
            answer = {"response_id": app_calling_code(client, scenario or None, command == "stream")}
        elif command == "flush":
            answer = {"flushed": tracer_provider.force_flush(10_000)}
        elif command == "quit":
            break
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    instrumentor.uninstrument()
    tracer_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
