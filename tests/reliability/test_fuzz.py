"""Fuzzing every instrumented SDK with damaged replies: llmlens must never change what the user sees.

For each SDK call of tests/reliability/targets.py (openai chat and Responses, sync and async streams;
anthropic messages, its stream and `messages.stream()`; google-genai; groq; cohere; ollama; Bedrock
Converse and ConverseStream), hypothesis damages the fake provider's own reply (tests/reliability/
mutations.py: fields missing or null, wrong types, unknown enums, out-of-range token counts, 1 MB
strings, bytes that are not UTF-8, truncated JSON; for streams also dropped, duplicated, reordered,
split and merged events, garbage between them, a stream that ends early or whose connection drops).
A real loopback server sends the damaged bytes, and the real SDK calls it twice: without llmlens, then
instrumented. Then:

- the outcome is the same: the return value or every streamed item (as plain data), or the same
  exception type and message after the same items;
- llmlens logged nothing above DEBUG and OpenTelemetry warned about nothing (no span ended twice,
  no attribute set on an ended span or of a type it refuses);
- exactly one LLM span, ended, for the call; nothing left in flight, no context left attached;
- that span's row is in the real SQLite store, once.

CI runs a fixed, derandomized set of examples per target (`FUZZ_EXAMPLES`, default 30); the slow
target (scripts/test-slow) runs `test_fuzz_large`, many more random examples per target. A failure
prints the damaged reply's notes (`Wire.notes`) and the two outcomes.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Harness
from hypothesis import HealthCheck, Phase, given, settings
from mutations import Wire, dumps, mutated
from targets import FuzzServer, Target, all_targets, make_client, outcome

pytestmark = [
    # the SDKs' own complaints about the damaged values they are given (an unknown enum, a wrong type)
    pytest.mark.filterwarnings("ignore::UserWarning:google.genai._common"),
    pytest.mark.filterwarnings("ignore::UserWarning:pydantic.main"),
    pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated:DeprecationWarning"),
]
TARGETS = all_targets()
COMMON = {
    "deadline": None,
    "database": None,  # a fresh clone and CI see the same examples: nothing remembered between runs
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    "print_blob": True,
    # no explain phase: it reruns a failing example under line tracing (slow with 1 MB replies); the
    # failing Wire's notes say what was damaged
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
}
CI = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")), derandomize=True, **COMMON)
LARGE = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES_LARGE", "600")), derandomize=False, **COMMON)


@pytest.fixture(scope="module")
def server() -> Iterator[FuzzServer]:
    with FuzzServer() as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with Harness(tmp_path_factory.mktemp("fuzz") / "llmlens.db") as harness:
        yield harness


@pytest.fixture(scope="module")
def clients(server: FuzzServer) -> dict[str, Any]:
    return {}


def check(target: Target, wire: Wire, server: FuzzServer, app: Harness, clients: dict[str, Any]) -> None:
    client = clients.get(target.sdk)
    if client is None:
        client = clients[target.sdk] = make_client(target.sdk, server.root)
    server.wire = wire
    without = outcome(target, client)
    app.reset()
    before = server.count()
    with app.instrumented():
        traced = outcome(target, client)
    requests = server.count() - before
    assert traced == without, f"llmlens changed the outcome of {wire!r}"
    assert requests == 1, requests
    problems = app.problems()
    assert not problems, problems
    spans = app.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]
    (span,) = spans
    assert span.end_time is not None and span.end_time >= span.start_time
    app.flush_store()
    assert app.rows_for(span) == 1, f"no single store row for {span.name}"
    app.calls += 1
    assert app.rows() == app.calls, "a row missing, or one taken for another"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_fuzz(target: Target, server: FuzzServer, app: Harness, clients: dict[str, Any]) -> None:
    @CI
    @given(wire=mutated(target.seed, target.codec))
    def run(wire: Wire) -> None:
        check(target, wire, server, app, clients)

    run()


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_fuzz_large(target: Target, server: FuzzServer, app: Harness, clients: dict[str, Any]) -> None:
    @LARGE
    @given(wire=mutated(target.seed, target.codec))
    def run(wire: Wire) -> None:
        check(target, wire, server, app, clients)

    run()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_seed_reply_is_understood(
    target: Target, server: FuzzServer, app: Harness, clients: dict[str, Any]
) -> None:
    """The undamaged seed is a good reply to its SDK: the call returns, and the span has usage."""
    check(target, target.seed, server, app, clients)
    client = clients[target.sdk]
    assert outcome(target, client).startswith("('returned'"), outcome(target, client)[:500]
    (span,) = app.llm_spans()
    assert span.attributes.get("gen_ai.usage.output_tokens"), dict(span.attributes)


def test_outcome_comparison_can_fail(tmp_path: Path) -> None:
    """The comparison sees a difference between two replies (it is not vacuous)."""
    (target,) = [t for t in TARGETS if t.name == "openai-chat"]
    with FuzzServer() as running:
        client = make_client("openai", running.root)
        running.wire = target.seed
        first = outcome(target, client)
        running.wire = Wire(200, target.seed.headers, body=target.seed.body.replace(b"Hello", b"Howdy"))
        assert outcome(target, client) != first
        running.wire = Wire(500, target.seed.headers, body=b"{}")
        assert "InternalServerError" in outcome(target, client)


def with_index(wire: Wire, codec: Any, index: int) -> Wire:
    """`wire` with every choice or candidate `index` of its stream set to `index`."""

    def bump(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: index if k == "index" and type(v) is int else bump(v) for k, v in value.items()}
        if isinstance(value, list):
            return [bump(v) for v in value]
        return value

    frames = []
    assert wire.frames is not None
    for frame in wire.frames:
        parts = codec.split(frame)
        frames.append(frame if parts is None else codec.join(parts[0], dumps(bump(parts[1])), parts[2]))
    return Wire(wire.status, wire.headers, frames=tuple(frames))


INDEXED = [
    t for t in TARGETS if t.name in ("openai-chat-stream", "groq-chat-stream", "google-genai-generate-stream")
]


@pytest.mark.parametrize("target", INDEXED, ids=[t.name for t in INDEXED])
def test_a_huge_choice_index_costs_no_memory(
    target: Target, server: FuzzServer, app: Harness, clients: dict[str, Any]
) -> None:
    """A choice index of two million (2**63 would take all memory): the traced call allocates what
    the plain one does, not a list of that length."""
    client = clients.get(target.sdk) or clients.setdefault(target.sdk, make_client(target.sdk, server.root))
    server.wire = with_index(target.seed, target.codec, 2_000_000)
    without = outcome(target, client)
    with app.instrumented():
        tracemalloc.start()
        try:
            traced = outcome(target, client)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert traced == without
    assert peak < 4_000_000, f"the traced call allocated {peak / 1e6:.0f} MB"
