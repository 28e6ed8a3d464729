"""A known llmlens workload serving its metrics on llmlens's Prometheus endpoint, for tests/test_dashboard.py.

Run as `python tests/dashboard_app.py PORT` (OTEL_SEMCONV_STABILITY_OPT_IN chooses the metric names). It
calls `llmlens.configure(prometheus_port=PORT)`, prints `PORT <port>` once the endpoint is up, then runs
the workload once for each line `go` read on stdin, printing `DONE <n>` after the n-th, and exits at
the end of stdin.

One round of the workload, against the fake provider on 127.0.0.1:
- CHATS chat calls with the scenario `CACHE_SCENARIO` (known cached, cache-written and reasoning
  tokens), each INPUT_TOKENS in and OUTPUT_TOKENS out;
- one streamed chat call (time to first chunk, time per chunk);
- one failed call (HTTP 429, error_type openai.RateLimitError);
- one request through an OpenAI passthrough proxy (tests/proxies/openai_proxy.py) under uvicorn, which
  llmlens instruments with its ASGI middleware (gen_ai.server.* metrics, active requests);
- one call to a model no price list knows (llmlens.cost.unpriced).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL = "gpt-4o-mini"
UNPRICED_MODEL = "llmlens-test-unpriced-model"
CHATS = 3
CACHE_SCENARIO = "cached=2,cache_write=1,reasoning=3"
MESSAGES = [{"role": "user", "content": "Hi"}]


def one_round(client: object, proxy_url: str) -> None:
    import httpx
    import openai

    create = client.chat.completions.create  # type: ignore[attr-defined]
    for _ in range(CHATS):
        create(model=MODEL, messages=MESSAGES, extra_headers={"x-fake-scenario": CACHE_SCENARIO})
    for _ in create(model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}):
        pass
    try:
        create(model="fake-error-429", messages=MESSAGES)
    except openai.RateLimitError:
        pass
    else:
        raise AssertionError("the fake provider did not fail the call")
    create(model=UNPRICED_MODEL, messages=MESSAGES)
    response = httpx.post(
        f"{proxy_url}/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=30,
    )
    response.raise_for_status()


def main() -> int:
    import llmlens

    handle = llmlens.configure(service_name="dashboard-test", prometheus_port=int(sys.argv[1]))
    import openai

    from llmlens.demo.fake_server import FakeProvider
    from proxies import openai_proxy
    from proxies.server import UvicornServer

    print("PORT", handle.prometheus_port, flush=True)
    with FakeProvider() as fake, UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy:
        client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        rounds = 0
        for line in sys.stdin:
            if line.strip() == "go":
                one_round(client, proxy.url)
                rounds += 1
                print("DONE", rounds, flush=True)
    handle.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
