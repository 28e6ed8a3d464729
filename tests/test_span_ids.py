"""llmlens's spans get ids that a seeded `random` module cannot repeat, on any tracer provider.

The SDK's default id generator draws from `random`; an application that seeds it for a reproducible run
(`random.seed(42)`, common in evaluation scripts) would make the same trace and span ids every run, and
the local store, which keeps one row per (trace id, span id), would keep only the first run's requests.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from llmlens.core.span_ids import SPAN_IDS
from llmlens.demo.fake_server import FakeProvider

# One seeded run of an application with its own TracerProvider: one openai call, stored.
RUN = """
import random
random.seed(42)
import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
import llmlens

provider = TracerProvider()
trace.set_tracer_provider(provider)
llmlens.Instrumentor().instrument(tracer_provider=provider)
client = openai.OpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0)
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
provider.shutdown()
"""


def test_two_seeded_runs_both_reach_the_store(tmp_path: Path) -> None:
    database = tmp_path / "llmlens.db"
    with FakeProvider() as fake:
        code = textwrap.dedent(RUN).replace("BASE_URL", repr(fake.base_url))
        for _ in range(2):
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LLMLENS_DB": str(database)}
            done = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
            assert done.returncode == 0, done.stderr
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT trace_id, span_id FROM requests").fetchall()
    assert len(rows) == 2, rows  # one row per run: the second run's ids were new
    assert rows[0] != rows[1]


def test_the_instrumentation_tracer_ignores_random_seed_and_leaves_other_tracers_alone(otel: Any) -> None:
    from llmlens.core.telemetry import Telemetry
    from llmlens.settings import Settings

    telemetry = Telemetry(Settings(store=False, pricing=False), otel.tracer_provider, otel.meter_provider)
    ours, theirs = [], []
    other = otel.tracer_provider.get_tracer("the-application")
    for _ in range(2):
        random.seed(42)
        span = telemetry.tracer.start_span("llm")
        ours.append((span.get_span_context().trace_id, span.get_span_context().span_id))
        span.end()
        random.seed(42)
        span = other.start_span("work")
        theirs.append(span.get_span_context().span_id)
        span.end()
    assert ours[0] != ours[1]
    assert all(trace_id and span_id for trace_id, span_id in ours)
    assert theirs[0] == theirs[1]  # the application's own tracer still follows its seed


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, to the parent
        try:
            os.write(write, SPAN_IDS.generate_span_id().to_bytes(8, "big"))
        finally:
            os._exit(0)
    os.close(write)
    child = int.from_bytes(os.read(read, 8), "big")
    os.close(read)
    os.waitpid(pid, 0)
    assert child != SPAN_IDS.generate_span_id()
