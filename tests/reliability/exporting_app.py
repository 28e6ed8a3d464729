"""An application set up with `llmlens.configure()` that times its own openai calls, for the collector
fault tests: `python exporting_app.py BASE_URL EXPORTER CALLS`, EXPORTER `otlp` (the endpoint comes from
`OTEL_EXPORTER_OTLP_ENDPOINT`) or `none`.

It makes CALLS calls to the fake provider at BASE_URL (every other one streamed), three times over,
and prints one line of JSON: the median and 90th percentile call time of the last two rounds, and the
traced memory (tracemalloc, started after the first round) after the second and third. Then it leaves
with `os._exit`: the exporters' shutdown against a collector that never answers would wait out their
timeouts, and that is not what is measured here.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import tracemalloc

import openai

import llmlens


def main() -> None:
    base_url, exporter, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    llmlens.configure(
        service_name="faults", exporter=exporter, metric_export_interval_s=0.2, providers=["openai"]
    )
    client = openai.OpenAI(api_key="sk-test", base_url=base_url, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]

    def one_round() -> list[float]:
        times = []
        for i in range(calls):
            started = time.perf_counter()
            if i % 2:
                for _chunk in client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                ):
                    pass
            else:
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            times.append(time.perf_counter() - started)
        return times

    one_round()  # warm-up: imports, connections, the batch queues filling up
    tracemalloc.start()
    second = one_round()
    after_second = tracemalloc.get_traced_memory()[0]
    third = one_round()
    after_third = tracemalloc.get_traced_memory()[0]
    times = sorted(second + third)
    result = {
        "median_ms": statistics.median(times) * 1000,
        "p90_ms": times[int(len(times) * 0.9)] * 1000,
        "memory_second": after_second,
        "memory_third": after_third,
    }
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
