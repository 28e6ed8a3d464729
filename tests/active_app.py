"""An instrumented application for the requests-in-flight tests, run as its own process.

    python tests/active_app.py BASE_URL

It instruments the openai SDK with the local store at $LLMLENS_DB, prints `ready`, then runs one command
per line of stdin and answers each with one line of JSON:

    streams N SCENARIO  N streamed chat completions, each in its own thread, read to their end in the
                        background; answered once every one has its response headers -> {"started": N}
    wait                every background stream has ended -> {"chunks": [chunks read, per stream]}
    call                one chat completion -> {"response_id": ...}
    flush               the store has written everything so far -> {"flushed": true}
    quit                exits at once, streams still running or not (a clean exit: the tracer provider
                        shuts down at exit)
"""

from __future__ import annotations

import json
import sys
import threading

import openai
from opentelemetry.sdk.trace import TracerProvider

from llmlens import Instrumentor

HI = [{"role": "user", "content": "Hi"}]


class Streams:
    """Streamed completions read to their end on background threads."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client
        self.threads: list[threading.Thread] = []
        self.chunks: list[int] = []
        self.lock = threading.Lock()

    def start(self, n: int, scenario: str) -> int:
        opened = threading.Barrier(n + 1)
        for _ in range(n):
            thread = threading.Thread(target=self._read, args=(scenario, opened), daemon=True)
            thread.start()
            self.threads.append(thread)
        opened.wait(30)
        return n

    def _read(self, scenario: str, opened: threading.Barrier) -> None:
        stream = self.client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True, extra_headers={"x-fake-scenario": scenario}
        )
        opened.wait(30)
        read = sum(1 for _chunk in stream)
        with self.lock:
            self.chunks.append(read)

    def wait(self) -> list[int]:
        for thread in self.threads:
            thread.join(60)
        self.threads = []
        chunks, self.chunks = self.chunks, []
        return chunks


def main() -> int:
    tracer_provider = TracerProvider()
    Instrumentor().instrument(tracer_provider=tracer_provider)
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    streams = Streams(client)
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "streams":
            answer: dict[str, object] = {"started": streams.start(int(args[0]), args[1])}
        elif command == "wait":
            answer = {"chunks": streams.wait()}
        elif command == "call":
            answer = {"response_id": client.chat.completions.create(model="gpt-4o-mini", messages=HI).id}
        elif command == "flush":
            answer = {"flushed": tracer_provider.force_flush(10_000)}
        elif command == "quit":
            return 0
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
