"""The stream contract: one span per streamed call, ended once, on every exit path, for every provider.

Every adapter of tests/stream_adapters.py (a provider and an idiom: openai chat, Responses, raw and
streaming responses, anthropic create and messages.stream(), google-genai, Bedrock, cohere, groq, ollama,
the proxy's wrap_stream) runs through every exit path it supports, sync and async, against its fake
server on loopback, with the real SDK. What is checked is what llmlens promises (docs/streaming.md, the
table in llmlens/core/streams.py):

| exit path                                    | outcome   | status | ended                          |
|----------------------------------------------|-----------|--------|--------------------------------|
| complete, complete_next, drain               | completed | OK     | at the last read               |
| close_after_break, close_unread, with_exit_* | closed    | UNSET  | at the close / the exit        |
| drop_after_break                             | abandoned | UNSET  | at the last chunk read, not GC |
| drop_unread                                  | abandoned | UNSET  | as of the hand-over            |
| transport_error, error_event, http_error     | error     | ERROR  | at the failing read            |
| cancelled                                    | cancelled | UNSET  | at the cancellation            |

and in every case: exactly one span (none before the exit, still one after garbage collection), its
`llmlens.stream.chunk_count` equal to the output chunks the user's own loop saw, finish reasons
(`error` in the slot of a stream cut short), the usage and response id the user saw (partial data is
kept), `error.type` the public name of the exception the user got (or the provider's error type for an
error event), that exception the one the SDK raises without llmlens (same class, message and cause),
the items the user reads the same as without llmlens, and the client metrics of one call. An adapter
whose provider documents a different end for an exit path says so (`stream_adapters.Expect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import stream_adapters as sa

pytestmark = [
    pytest.mark.timeout(30),
    # cohere's own models still read pydantic v1's `__fields__`; not ours to fix.
    pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated:DeprecationWarning"),
]

now = time.time_ns
BREAK_AT = 2  # output chunks read before a break
DELAY_MS = 10  # between chunks, where the exit must fall between two chunks
CANCEL_DELAY_MS = 50
PAUSE_S = 0.05  # between a break and the collection: an end at collection time would show
CLOCK_NS = 2_000_000  # a span ended "as of" an earlier moment maps perf_counter to wall time
ERROR_OUTCOMES = frozenset({"error", "server_exception", "upstream_error", "error_response"})

ADAPTERS = sa.adapters()


class LoopErrors(AssertionError):
    """The event loop reported an error: the SDK's own cleanup of the stream failed under llmlens."""


def _params() -> Iterator[Any]:
    # Every SDK is in the test environment: a missing one fails its cases (at import), never skips them.
    for adapter in ADAPTERS:
        for mode, exit_id in adapter.cases():
            yield pytest.param(adapter, mode, exit_id, id=f"{adapter.name}-{mode}-{exit_id}")


# ============================================================================================== servers


@pytest.fixture(scope="module", autouse=True)
def _fast_collections() -> Iterator[None]:
    """Every case collects garbage several times; with the SDKs loaded a full collection takes about
    0.2 s. Freezing what exists now (modules, SDK classes) leaves the collector only the objects the
    cases make, streams included, which is what the drop paths need collected."""
    import importlib

    for adapter in ADAPTERS:
        if adapter.importable():
            for module in adapter.modules:
                importlib.import_module(module)
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def bedrock() -> Iterator[Any]:
    from fakes.bedrock_server import BedrockServer

    with BedrockServer() as server:
        yield server


@pytest.fixture(scope="module")
def cohere_server() -> Iterator[Any]:
    from fakes.cohere_server import CohereServer

    with CohereServer() as server:
        yield server


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[Any]:
    from fakes.ollama_server import OllamaServer

    with OllamaServer() as server:
        yield server


@pytest.fixture
def proxy_telemetry(otel: Any) -> Any:
    from llmlens.core.telemetry import Telemetry
    from llmlens.settings import Settings

    settings = Settings(store=False, pricing=False, proxy_key_secret="s")
    return Telemetry(settings, otel.tracer_provider, otel.meter_provider)


# ================================================================================================= case


def public_name(error: BaseException) -> str:
    """The exception's type as users know it: its module path up to the first private part."""
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    public = []
    for part in cls.__module__.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return f"{'.'.join(public) or cls.__module__}.{cls.__qualname__}"


def masked(text: str) -> str:
    """`text` without the ids that differ from one request to the next (the fakes' and uuids)."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    return re.sub(r"fake\d+", "fake<n>", text)


class Seen:
    """What the user's loop saw, and when: the window of the read that gave the last chunk, and of the
    last read (the one that ended the loop)."""

    def __init__(self, adapter: sa.Adapter) -> None:
        self.tally = adapter.tally()
        self.items: list[Any] = []
        self.chunk_window = (0, 0)
        self.read_window = (0, 0)

    def add(self, item: Any, before: int, after: int) -> None:
        chunks = self.tally.chunks
        self.tally.see(item)
        self.items.append(item)
        if self.tally.chunks > chunks:
            self.chunk_window = (before, after)


def read(seen: Seen, items: Any, stop: int | None = None) -> None:
    before = now()
    try:
        for item in items:
            seen.add(item, before, now())
            if stop is not None and seen.tally.chunks >= stop:
                return
            before = now()
    finally:
        seen.read_window = (before, now())


async def aread(
    seen: Seen, items: Any, stop: int | None = None, on_chunk: Callable[[], None] | None = None
) -> None:
    before = now()
    try:
        async for item in items:
            seen.add(item, before, now())
            if on_chunk is not None and seen.tally.chunks:
                on_chunk()
            if stop is not None and seen.tally.chunks >= stop:
                return
            before = now()
    finally:
        seen.read_window = (before, now())


class Case:
    """One adapter, one mode, one exit path: the client, the instrumentation and the checks."""

    def __init__(
        self, adapter: sa.Adapter, mode: str, exit_id: str, otel: Any, instrument: Any, server: Any
    ) -> None:
        self.adapter, self.mode, self.otel, self.server = adapter, mode, otel, server
        self.exit, _, self.variant = exit_id.partition(":")
        self.expect = adapter.expect.get(self.exit)
        self._instrument = instrument
        gc.collect()  # what earlier cases left; the rest is frozen (see _fast_collections)
        gc.freeze()
        self.early = adapter.client(server, mode) if adapter.client_before_instrument else None
        self.client: Any = None

    # --- setup ----------------------------------------------------------------------------------

    def plain_client(self) -> Any:
        return self.early if self.early is not None else self.adapter.plain_client(self.server, self.mode)

    def instrument(self) -> None:
        if self.adapter.span_kind == "CLIENT":
            self._instrument(**self.adapter.instrument_options)
        self.client = self.early if self.early is not None else self.adapter.client(self.server, self.mode)

    def scenario(self, extra: str = "", delay_ms: int = 0) -> str:
        parts = [self.adapter.base, extra, f"chunk_delay_ms={delay_ms}" if delay_ms else ""]
        return ",".join(p for p in parts if p)

    def requests(self) -> int | None:
        requests = getattr(self.server, "requests", None)
        return None if requests is None else len(requests)

    # --- opening --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def opened(self, client: Any, scenario: str) -> Iterator[Any]:
        """The stream, inside the `with` block of a MANAGER form."""
        adapter = self.adapter
        result = adapter.call(client, scenario)
        if adapter.form != sa.MANAGER:
            yield result
            return
        with result as entered:
            yield adapter.inside(entered)

    @contextlib.asynccontextmanager
    async def aopened(self, client: Any, scenario: str) -> AsyncIterator[Any]:
        adapter = self.adapter
        result = await adapter.acall(client, scenario)
        if adapter.form != sa.MANAGER:
            yield result
            return
        async with result as entered:
            yield await adapter.ainside(entered)

    # --- checks ---------------------------------------------------------------------------------

    def no_span_yet(self) -> None:
        assert self.otel.spans() == [], "a stream that is merely not being read must not end"

    def check(
        self,
        tally: sa.Tally,
        outcome: str,
        window: tuple[int, int],
        error: BaseException | None = None,
        error_type: str | None = None,
        status_code: int | None = None,
    ) -> Any:
        """The one span of the call and its metrics; returns the span."""
        adapter, expect = self.adapter, self.expect
        if expect is not None:
            outcome = expect.outcome
        spans = self.otel.spans()
        if outcome == sa.NO_SPAN:
            assert spans == [], f"{expect}: {[s.name for s in spans]}"
            return None
        assert len(spans) == 1, [(s.name, s.attributes.get("llmlens.stream.outcome")) for s in spans]
        (span,) = spans
        attrs = dict(span.attributes or {})
        assert span.name == adapter.span_name
        assert span.kind == getattr(SpanKind, adapter.span_kind)
        assert attrs["gen_ai.provider.name"] == adapter.provider
        assert attrs.get("llmlens.stream.outcome") == outcome, attrs
        assert attrs["llmlens.stream.chunk_count"] == tally.chunks
        if adapter.span_kind == "CLIENT":
            assert attrs["gen_ai.request.stream"] is True

        if outcome == "completed":
            assert span.status.status_code is StatusCode.OK
            assert attrs.get("gen_ai.response.finish_reasons") == adapter.finish
        else:
            if adapter.finish is not None:  # `error` in the slot of a reason that never came
                assert attrs["gen_ai.response.finish_reasons"] == ("error",)
            expected_status = StatusCode.ERROR if outcome in ERROR_OUTCOMES else StatusCode.UNSET
            assert span.status.status_code is expected_status
        exceptions = [e for e in span.events if e.name == "exception"]
        if outcome in ERROR_OUTCOMES:
            assert attrs["error.type"] == error_type
            if error is not None:
                (event,) = exceptions
                assert event.attributes["exception.type"].endswith(type(error).__qualname__)
        else:
            assert "error.type" not in attrs
            assert not exceptions
        if status_code is not None:
            assert attrs.get("http.response.status_code") == status_code
        elif self.exit == sa.TRANSPORT_ERROR:
            assert "http.response.status_code" not in attrs
        elif self.exit == sa.ERROR_EVENT and adapter.error_event_status != sa.UNCHECKED:
            assert attrs.get("http.response.status_code") == adapter.error_event_status

        # Partial data is kept: usage and response id as far as the user saw them.
        if tally.knows_usage:
            usage = (attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens"))
            assert usage == (tally.tokens or (None, None))
            if outcome == "completed" and adapter.usage_when_complete:
                assert tally.tokens is not None and None not in tally.tokens
            if tally.response_id is not None:
                assert attrs["gen_ai.response.id"] == tally.response_id

        # When it ended.
        ended = expect.ended if expect is not None and expect.ended else None
        low, high = window
        if ended is None and outcome == "abandoned":  # as of an earlier moment: perf_counter time
            low, high = low - CLOCK_NS, high + CLOCK_NS
        assert low <= span.end_time <= high, (low - span.end_time, span.end_time - high)
        assert span.start_time <= span.end_time

        if adapter.span_kind == "CLIENT":
            self.check_metrics(span, attrs, outcome, tally.chunks)
        return span

    def check_metrics(self, span: Any, attrs: dict[str, Any], outcome: str, chunks: int) -> None:
        if chunks:
            ttfc = attrs["gen_ai.response.time_to_first_chunk"]
            assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9 + 1e-3
        else:
            assert "gen_ai.response.time_to_first_chunk" not in attrs
        metrics = self.otel.metrics()
        (duration,) = metrics["gen_ai.client.operation.duration"]
        assert duration.count == 1
        assert duration.attributes.get("error.type") == attrs.get("error.type")
        ttfc_points = metrics.get("gen_ai.client.operation.time_to_first_chunk", [])
        tpoc_points = metrics.get("gen_ai.client.operation.time_per_output_chunk", [])
        failed = outcome == "error"
        assert sum(p.count for p in ttfc_points) == (1 if chunks and not failed else 0)
        assert sum(p.count for p in tpoc_points) == (chunks - 1 if chunks > 1 and not failed else 0)
        reported = sum(k in attrs for k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"))
        assert sum(p.count for p in metrics.get("gen_ai.client.token.usage", [])) == reported

    def still_one_span(self, span: Any) -> None:
        """Nothing ends the call a second time, not even garbage collection."""
        gc.collect()
        if span is None:
            assert self.otel.spans() == []
        else:
            assert self.otel.spans() == [span]

    def check_error(self, plain: BaseException, traced: BaseException) -> None:
        """The user's exception is the one the SDK raises without llmlens (but for per-request ids)."""
        assert type(traced) is type(plain)
        assert masked(str(traced)) == masked(str(plain))
        assert type(traced.__cause__) is type(plain.__cause__)

    def error_scenario(self) -> tuple[str, Callable[[BaseException], str], int | None]:
        adapter = self.adapter
        if self.exit == sa.TRANSPORT_ERROR:
            return self.scenario(adapter.cut), public_name, None
        if self.exit == sa.ERROR_EVENT:
            return adapter.error_event_scenario(self.variant), adapter.error_event_type or public_name, None
        assert adapter.http_error is not None
        scenario, status = adapter.http_error
        return scenario, public_name, status


# =========================================================================================== sync paths


@contextlib.contextmanager
def raised(expected: bool) -> Iterator[list[BaseException]]:
    """Catches the exception the block raises (which it must, if `expected`) into the list it yields.
    (The proxy forwards an error event without raising: there the block must not raise.)"""
    caught: list[BaseException] = []
    try:
        yield caught
    except Exception as error:
        if not expected:
            raise
        caught.append(error)
    assert bool(caught) == expected, "the stream did not raise"


def complete(case: Case) -> None:
    plain = Seen(case.adapter)
    with case.opened(case.plain_client(), case.scenario()) as stream:
        plain_type = type(stream)
        read(plain, case.adapter.items(stream))
    case.instrument()
    seen = Seen(case.adapter)
    with case.opened(case.client, case.scenario()) as stream:
        assert isinstance(stream, plain_type)  # still what the SDK returns (isinstance sees through)
        case.no_span_yet()
        read(seen, case.adapter.items(stream))
    span = case.check(seen.tally, "completed", seen.read_window)
    assert seen.tally.chunks > BREAK_AT
    assert [case.adapter.view(i) for i in seen.items] == [case.adapter.view(i) for i in plain.items]
    case.still_one_span(span)


def complete_next(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    stream = case.adapter.call(case.client, case.scenario())
    while True:
        before = now()
        try:
            item = next(stream)
        except StopIteration:
            seen.read_window = (before, now())
            break
        seen.add(item, before, now())
    span = case.check(seen.tally, "completed", seen.read_window)
    case.still_one_span(span)


def drain(case: Case) -> None:
    case.instrument()
    with case.opened(case.client, case.scenario()) as stream:
        case.no_span_yet()
        before = now()
        tally = case.adapter.drain(stream, case.variant)
        after = now()
    span = case.check(tally, "completed", (before, after))
    case.still_one_span(span)


def close_after_break(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    stream = case.adapter.call(case.client, case.scenario(delay_ms=DELAY_MS))
    read(seen, case.adapter.items(stream), stop=BREAK_AT)
    case.no_span_yet()
    before = now()
    case.adapter.close(stream)
    after = now()
    span = case.check(seen.tally, "closed", (before, after))
    assert case.adapter.upstream_closed() in (None, True)
    del stream
    case.still_one_span(span)


def close_unread(case: Case) -> None:
    case.instrument()
    requests = case.requests()
    handed = now()
    stream = case.adapter.call(case.client, case.scenario())
    window = (handed, now())
    case.no_span_yet()
    before = now()
    case.adapter.close(stream)
    after = now()
    del stream
    gc.collect()
    if case.expect is None or case.expect.ended != sa.AT_HANDOVER:
        window = (before, after)
    span = case.check(case.adapter.tally(), "closed", window)
    if span is None or case.adapter.lazy:
        assert case.requests() == requests, "a generator never read sends no request"
    case.still_one_span(span)


def with_exit_after_break(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    with case.adapter.call(case.client, case.scenario(delay_ms=DELAY_MS)) as entered:
        read(seen, case.adapter.items(case.adapter.inside(entered)), stop=BREAK_AT)
        case.no_span_yet()
        before = now()
    span = case.check(seen.tally, "closed", (before, now()))
    del entered
    case.still_one_span(span)


def with_exit_unread(case: Case) -> None:
    case.instrument()
    with case.adapter.call(case.client, case.scenario()) as entered:
        case.no_span_yet()
        before = now()
    span = case.check(case.adapter.tally(), "closed", (before, now()))
    del entered
    case.still_one_span(span)


def drop_after_break(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    result = case.adapter.call(case.client, case.scenario(delay_ms=DELAY_MS))
    # A MANAGER form is entered and never left: the caller just drops it.
    stream = case.adapter.inside(result.__enter__()) if case.adapter.form == sa.MANAGER else result
    read(seen, case.adapter.items(stream), stop=BREAK_AT)
    time.sleep(PAUSE_S)
    case.no_span_yet()
    seen.items.clear()
    collected = now()
    del result, stream
    gc.collect()
    window = seen.chunk_window
    if case.expect is not None and case.expect.ended == sa.AT_COLLECTION:
        window = (collected, now())
    span = case.check(seen.tally, "abandoned", window)
    case.still_one_span(span)


def drop_unread(case: Case) -> None:
    case.instrument()
    requests = case.requests()
    handed = now()
    stream = case.adapter.call(case.client, case.scenario())
    window = (handed, now())
    time.sleep(PAUSE_S)
    case.no_span_yet()
    del stream
    gc.collect()
    span = case.check(case.adapter.tally(), "abandoned", window)
    if span is None or case.adapter.lazy:
        assert case.requests() == requests, "a generator never read sends no request"
    case.still_one_span(span)


def failure(case: Case) -> None:
    """transport_error, error_event, http_error."""
    scenario, error_type, status = case.error_scenario()
    raises = case.exit != sa.ERROR_EVENT or case.adapter.span_kind == "CLIENT"
    plain = Seen(case.adapter)
    with raised(raises) as plain_error, case.opened(case.plain_client(), scenario) as stream:
        read(plain, case.adapter.items(stream))
    case.instrument()
    seen = Seen(case.adapter)
    with raised(raises) as caught, case.opened(case.client, scenario) as stream:
        read(seen, case.adapter.items(stream))
    after = now()
    error = caught[0] if raises else None
    if error is not None:
        case.check_error(plain_error[0], error)
    if case.exit != sa.HTTP_ERROR:
        assert seen.tally.chunks >= 1  # partial output
    type_name = error_type(error) if error is not None else error_type(Exception())
    span = case.check(seen.tally, "error", (seen.read_window[0], after), error, type_name, status)
    case.still_one_span(span)


SYNC: dict[str, Callable[[Case], None]] = {
    sa.COMPLETE: complete,
    sa.COMPLETE_NEXT: complete_next,
    sa.DRAIN: drain,
    sa.CLOSE_AFTER_BREAK: close_after_break,
    sa.CLOSE_UNREAD: close_unread,
    sa.WITH_EXIT_AFTER_BREAK: with_exit_after_break,
    sa.WITH_EXIT_UNREAD: with_exit_unread,
    sa.DROP_AFTER_BREAK: drop_after_break,
    sa.DROP_UNREAD: drop_unread,
    sa.TRANSPORT_ERROR: failure,
    sa.ERROR_EVENT: failure,
    sa.HTTP_ERROR: failure,
}


# ========================================================================================== async paths


async def acomplete(case: Case) -> None:
    plain = Seen(case.adapter)
    async with case.aopened(case.plain_client(), case.scenario()) as stream:
        plain_type = type(stream)
        await aread(plain, case.adapter.items(stream))
    case.instrument()
    seen = Seen(case.adapter)
    async with case.aopened(case.client, case.scenario()) as stream:
        assert isinstance(stream, plain_type)
        case.no_span_yet()
        await aread(seen, case.adapter.items(stream))
    span = case.check(seen.tally, "completed", seen.read_window)
    assert seen.tally.chunks > BREAK_AT
    assert [case.adapter.view(i) for i in seen.items] == [case.adapter.view(i) for i in plain.items]
    await asyncio.sleep(0)
    case.still_one_span(span)


async def acomplete_next(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    stream = await case.adapter.acall(case.client, case.scenario())
    while True:
        before = now()
        try:
            item = await stream.__anext__()
        except StopAsyncIteration:
            seen.read_window = (before, now())
            break
        seen.add(item, before, now())
    span = case.check(seen.tally, "completed", seen.read_window)
    case.still_one_span(span)


async def adrain(case: Case) -> None:
    case.instrument()
    async with case.aopened(case.client, case.scenario()) as stream:
        case.no_span_yet()
        before = now()
        tally = await case.adapter.adrain(stream, case.variant)
        after = now()
    span = case.check(tally, "completed", (before, after))
    case.still_one_span(span)


async def aclose_after_break(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    stream = await case.adapter.acall(case.client, case.scenario(delay_ms=DELAY_MS))
    await aread(seen, case.adapter.items(stream), stop=BREAK_AT)
    case.no_span_yet()
    before = now()
    await case.adapter.aclose(stream, case.variant or "aclose")
    after = now()
    span = case.check(seen.tally, "closed", (before, after))
    assert case.adapter.upstream_closed() in (None, True)
    del stream
    await asyncio.sleep(0)
    case.still_one_span(span)


async def aclose_unread(case: Case) -> None:
    case.instrument()
    requests = case.requests()
    handed = now()
    stream = await case.adapter.acall(case.client, case.scenario())
    window = (handed, now())
    case.no_span_yet()
    before = now()
    await case.adapter.aclose(stream, case.variant or "aclose")
    after = now()
    del stream
    gc.collect()
    await asyncio.sleep(0)
    if case.expect is None or case.expect.ended != sa.AT_HANDOVER:
        window = (before, after)
    span = case.check(case.adapter.tally(), "closed", window)
    if span is None or case.adapter.lazy:
        assert case.requests() == requests, "a generator never read sends no request"
    case.still_one_span(span)


async def awith_exit_after_break(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    result = await case.adapter.acall(case.client, case.scenario(delay_ms=DELAY_MS))
    async with result as entered:
        await aread(seen, case.adapter.items(await case.adapter.ainside(entered)), stop=BREAK_AT)
        case.no_span_yet()
        before = now()
    span = case.check(seen.tally, "closed", (before, now()))
    del result, entered
    await asyncio.sleep(0)
    case.still_one_span(span)


async def awith_exit_unread(case: Case) -> None:
    case.instrument()
    result = await case.adapter.acall(case.client, case.scenario())
    async with result:
        case.no_span_yet()
        before = now()
    span = case.check(case.adapter.tally(), "closed", (before, now()))
    del result
    case.still_one_span(span)


async def adrop_after_break(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    result = await case.adapter.acall(case.client, case.scenario(delay_ms=DELAY_MS))
    if case.adapter.form == sa.MANAGER:
        stream = await case.adapter.ainside(await result.__aenter__())
    else:
        stream = result
    await aread(seen, case.adapter.items(stream), stop=BREAK_AT)
    await asyncio.sleep(PAUSE_S)
    case.no_span_yet()
    seen.items.clear()
    collected = now()
    del result, stream
    gc.collect()
    await asyncio.sleep(0.01)  # the SDK's async generator finaliser runs: it must not add a second end
    window = seen.chunk_window
    if case.expect is not None and case.expect.ended == sa.AT_COLLECTION:
        window = (collected, now())
    span = case.check(seen.tally, "abandoned", window)
    case.still_one_span(span)


async def adrop_unread(case: Case) -> None:
    case.instrument()
    requests = case.requests()
    handed = now()
    stream = await case.adapter.acall(case.client, case.scenario())
    window = (handed, now())
    await asyncio.sleep(PAUSE_S)
    case.no_span_yet()
    del stream
    gc.collect()
    await asyncio.sleep(0)
    span = case.check(case.adapter.tally(), "abandoned", window)
    if span is None or case.adapter.lazy:
        assert case.requests() == requests, "a generator never read sends no request"
    case.still_one_span(span)


async def afailure(case: Case) -> None:
    scenario, error_type, status = case.error_scenario()
    raises = case.exit != sa.ERROR_EVENT or case.adapter.span_kind == "CLIENT"
    plain = Seen(case.adapter)
    with raised(raises) as plain_error:
        async with case.aopened(case.plain_client(), scenario) as stream:
            await aread(plain, case.adapter.items(stream))
    case.instrument()
    seen = Seen(case.adapter)
    with raised(raises) as caught:
        async with case.aopened(case.client, scenario) as stream:
            await aread(seen, case.adapter.items(stream))
    after = now()
    error = caught[0] if raises else None
    if error is not None:
        case.check_error(plain_error[0], error)
    if case.exit != sa.HTTP_ERROR:
        assert seen.tally.chunks >= 1
    type_name = error_type(error) if error is not None else error_type(Exception())
    span = case.check(seen.tally, "error", (seen.read_window[0], after), error, type_name, status)
    case.still_one_span(span)


async def acancelled(case: Case) -> None:
    case.instrument()
    seen = Seen(case.adapter)
    first = asyncio.Event()

    async def consume() -> None:
        async with case.aopened(case.client, case.scenario(delay_ms=CANCEL_DELAY_MS)) as stream:
            await aread(seen, case.adapter.items(stream), on_chunk=first.set)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    before = now()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = now()
    assert seen.tally.chunks >= 1
    span = case.check(seen.tally, "cancelled", (before, after))
    case.still_one_span(span)


ASYNC: dict[str, Callable[[Case], Any]] = {
    sa.COMPLETE: acomplete,
    sa.COMPLETE_NEXT: acomplete_next,
    sa.DRAIN: adrain,
    sa.CLOSE_AFTER_BREAK: aclose_after_break,
    sa.CLOSE_UNREAD: aclose_unread,
    sa.WITH_EXIT_AFTER_BREAK: awith_exit_after_break,
    sa.WITH_EXIT_UNREAD: awith_exit_unread,
    sa.DROP_AFTER_BREAK: adrop_after_break,
    sa.DROP_UNREAD: adrop_unread,
    sa.TRANSPORT_ERROR: afailure,
    sa.ERROR_EVENT: afailure,
    sa.HTTP_ERROR: afailure,
    sa.CANCELLED: acancelled,
}


def asyncio_run(case: Case) -> None:
    """As a script does it: `asyncio.run` closes its loop before anything is collected."""
    case.instrument()
    seen = Seen(case.adapter)
    times: list[int] = []

    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        client = case.adapter.client(case.server, "async")
        async with await case.adapter.acall(client, case.scenario()) as stream:
            await aread(seen, case.adapter.items(stream), stop=1)
            times.append(now())
        times.append(now())

    asyncio.run(main())
    span = case.check(seen.tally, "closed", (times[0], times[1]))  # before any collection
    assert seen.tally.chunks == 1
    case.still_one_span(span)
    if errors:
        raise LoopErrors([f"{e.get('message')}: {e.get('exception')!r}" for e in errors])


# ================================================================================================ suite


async def in_loop(driver: Callable[[Case], Any], case: Case, errors: list[dict[str, Any]]) -> None:
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    await driver(case)
    gc.collect()  # finished tasks whose exception nobody retrieved report it when they are freed
    await asyncio.sleep(0.01)


@pytest.mark.parametrize(("adapter", "mode", "exit_id"), list(_params()))
def test_stream_contract(
    adapter: sa.Adapter, mode: str, exit_id: str, otel: Any, instrument: Any, request: Any
) -> None:
    case = Case(adapter, mode, exit_id, otel, instrument, request.getfixturevalue(adapter.server))
    if mode == "sync":
        SYNC[case.exit](case)
    elif case.exit == sa.ASYNCIO_RUN:
        asyncio_run(case)
    else:
        errors: list[dict[str, Any]] = []
        asyncio.run(in_loop(ASYNC[case.exit], case, errors))
        gc.collect()
        if errors:
            raise LoopErrors([f"{e.get('message')}: {e.get('exception')!r}" for e in errors])


def test_every_adapter_runs_the_contract() -> None:
    """Each adapter supports reading to the end and some early exit, in each of its modes."""
    names = [a.name for a in ADAPTERS]
    assert len(names) == len(set(names))
    for adapter in ADAPTERS:
        for mode in () if adapter.partial else adapter.modes:
            exits = {e.partition(":")[0] for m, e in adapter.cases() if m == mode}
            assert sa.COMPLETE in exits, adapter.name
            assert exits & {sa.CLOSE_AFTER_BREAK, sa.WITH_EXIT_AFTER_BREAK}, adapter.name
            assert exits & {sa.TRANSPORT_ERROR, sa.ERROR_EVENT}, adapter.name
        for exit_path in {*adapter.expect, *(e.partition(":")[0] for e in adapter.exits)}:
            assert exit_path in sa.ALL_EXITS, (adapter.name, exit_path)
