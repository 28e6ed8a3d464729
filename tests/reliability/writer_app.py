"""One of several application processes writing the same store: `python writer_app.py BASE_URL NAME
CALLS START_AT`. Instrumented with the store at `LLMLENS_DB` and service name NAME, it waits until the
wall clock reaches START_AT (so all writers start together), makes CALLS openai calls to the fake
provider (every third streamed), flushes, and prints its store writer's counts as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import openai
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

from llmlens.instrumentor import Instrumentor
from llmlens.store.attach import attached_store


def main() -> None:
    base_url, name, calls, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # any llmlens warning shows on stderr
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    Instrumentor().instrument(tracer_provider=provider, store=True, providers=["openai"])
    client = openai.OpenAI(api_key="sk-test", base_url=base_url, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(calls):
        if i % 3 == 0:
            for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
                pass
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    store = attached_store(provider)
    assert store is not None
    flushed = store.force_flush(60_000)
    stats = store.stats
    print(json.dumps({
        "flushed": flushed,
        "written": stats.written_requests,
        "dropped_queue_full": stats.dropped_queue_full,
        "dropped_store_unavailable": stats.dropped_store_unavailable,
        "last_error": stats.last_error,
    }), flush=True)  # fmt: skip
    provider.shutdown()


if __name__ == "__main__":
    main()
