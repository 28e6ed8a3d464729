"""`OTEL_SEMCONV_STABILITY_OPT_IN`: the default GenAI metric names, the newest (`gen_ai_latest_experimental`)
or both (`gen_ai_latest_experimental/dup`), through real SDK calls to the fake provider on 127.0.0.1 and
the OpenTelemetry SDK's in-memory readers.

What each setting promises (docs/semconv.md, "Metrics"):
- the default names: gen_ai.client.operation.duration, gen_ai.client.token.usage (input, output), the
  operation.* chunk histograms, and llmlens.usage.tokens (every token type, cache and reasoning included);
  the span's cache write count is gen_ai.usage.cache_creation.input_tokens;
- the newest: gen_ai.client.inference.* for inference (duration, chunk histograms, the usage counters by
  gen_ai.token.modality for every call, failed ones adding 0 under `unknown`, the operation token
  histograms for successful calls only), gen_ai.client.embeddings.* for embeddings, operation.duration
  for what is neither (count_tokens); gen_ai.usage.cache_write.input_tokens on the span;
- /dup: both, and both span attributes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
import pytest

from llmlens import semconv
from llmlens.settings import SemconvNames
from test_openai_compat import STREAM_BREAK_ERROR

DEFAULT, LATEST, DUP = "", "gen_ai_latest_experimental", "gen_ai_latest_experimental/dup"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Hi there"}]

OLD_METRICS = {
    semconv.METRIC_OPERATION_DURATION,
    semconv.METRIC_TOKEN_USAGE,
    semconv.METRIC_LLMLENS_USAGE_TOKENS,
}
OLD_STREAM_METRICS = {semconv.METRIC_TIME_TO_FIRST_CHUNK, semconv.METRIC_TIME_PER_OUTPUT_CHUNK}
USAGE_COUNTERS = {
    "input": semconv.METRIC_INFERENCE_USAGE_INPUT_TOKENS,
    "output": semconv.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS,
    "cache_read": semconv.METRIC_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_write": semconv.METRIC_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
    "reasoning": semconv.METRIC_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
}
NEW_METRICS = {
    semconv.METRIC_INFERENCE_DURATION,
    semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS,
    semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS,
    *USAGE_COUNTERS.values(),
}
NEW_STREAM_METRICS = {
    semconv.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK,
    semconv.METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK,
}
EXPECTED = {
    DEFAULT: (OLD_METRICS, OLD_STREAM_METRICS),
    LATEST: (NEW_METRICS, NEW_STREAM_METRICS),
    DUP: (OLD_METRICS | NEW_METRICS, OLD_STREAM_METRICS | NEW_STREAM_METRICS),
}
MODES = pytest.mark.parametrize("mode", [DEFAULT, LATEST, DUP], ids=["default", "latest", "dup"])


@pytest.fixture
def opt_in(instrument: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """instrument() with OTEL_SEMCONV_STABILITY_OPT_IN set to `value` (None: unset), pricing off."""

    def run(value: str | None) -> Any:
        if value is None:
            monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
        else:
            monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", value)
        return instrument(pricing=False)

    return run


def scenario(value: str) -> dict[str, Any]:
    return {"extra_headers": {"x-fake-scenario": value}}


def points(otel: Any, name: str) -> list[Any]:
    return otel.metrics().get(name, [])


def one(otel: Any, name: str) -> Any:
    (point,) = points(otel, name)
    return point


def by_modality(otel: Any, name: str) -> dict[str, int]:
    return {p.attributes[semconv.TOKEN_MODALITY]: p.value for p in points(otel, name)}


def common(fake: Any, **extra: Any) -> dict[str, Any]:
    return {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai_compatible",
        semconv.REQUEST_MODEL: MODEL,
        semconv.RESPONSE_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: fake.port,
        **extra,
    }


def call(client: Any, stream: bool, value: str) -> Any:
    """A chat call (a stream read to its end, with its usage chunk); returns the usage."""
    if not stream:
        return client.chat.completions.create(model=MODEL, messages=MESSAGES, **scenario(value)).usage
    usage = None
    for chunk in client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **scenario(value)
    ):
        usage = chunk.usage or usage
    return usage


@MODES
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_each_setting_emits_its_names(
    opt_in: Any, otel: Any, client: Any, fake: Any, mode: str, stream: bool
) -> None:
    opt_in(mode)
    usage = call(client, stream, "chunks=6,cached=4,cache_write=2,reasoning=3")
    names, stream_names = EXPECTED[mode]
    assert set(otel.metrics()) == names | (stream_names if stream else set())
    span = otel.span()
    base = common(fake)
    counts = {
        "input": usage.prompt_tokens,
        "output": usage.completion_tokens,
        "cache_read": 4,
        "cache_write": 2,
        "reasoning": 3,
    }

    if mode in (DEFAULT, DUP):
        duration = one(otel, semconv.METRIC_OPERATION_DURATION)
        assert (dict(duration.attributes), duration.count) == (base, 1)
        tokens = {p.attributes[semconv.TOKEN_TYPE]: p.sum for p in points(otel, semconv.METRIC_TOKEN_USAGE)}
        assert tokens == {"input": counts["input"], "output": counts["output"]}
        by_type = points(otel, semconv.METRIC_LLMLENS_USAGE_TOKENS)
        assert {p.attributes[semconv.TOKEN_TYPE]: p.value for p in by_type} == counts
        assert all(dict(p.attributes) == {**base, semconv.TOKEN_TYPE: p.attributes[semconv.TOKEN_TYPE]}
                   for p in by_type)  # fmt: skip
        if stream:
            assert one(otel, semconv.METRIC_TIME_TO_FIRST_CHUNK).count == 1
            assert one(otel, semconv.METRIC_TIME_PER_OUTPUT_CHUNK).count > 1
    if mode in (LATEST, DUP):
        duration = one(otel, semconv.METRIC_INFERENCE_DURATION)
        assert (dict(duration.attributes), duration.count) == (base, 1)
        assert tuple(duration.explicit_bounds) == semconv.DURATION_BUCKETS
        assert 0 < duration.sum <= (span.end_time - span.start_time) / 1e9
        for kind, name in USAGE_COUNTERS.items():
            point = one(otel, name)
            assert dict(point.attributes) == {**base, semconv.TOKEN_MODALITY: "unknown"}, name
            assert point.value == counts[kind], name
        for name, count in (
            (semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS, counts["input"]),
            (semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS, counts["output"]),
        ):
            point = one(otel, name)
            assert (dict(point.attributes), point.count, point.sum) == (base, 1, count)
            assert tuple(point.explicit_bounds) == semconv.TOKEN_BUCKETS
        if stream:
            assert one(otel, semconv.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK).count == 1
            assert one(otel, semconv.METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK).count > 1

    # The cache write count on the span, under each setting's name(s).
    written = {k: v for k, v in span.attributes.items() if k.startswith("gen_ai.usage.cache_")}
    old = {semconv.USAGE_CACHE_CREATION_INPUT_TOKENS: 2}
    new = {semconv.USAGE_CACHE_WRITE_INPUT_TOKENS: 2}
    cache_read = {semconv.USAGE_CACHE_READ_INPUT_TOKENS: 4}
    assert written == {DEFAULT: {**cache_read, **old}, LATEST: {**cache_read, **new},
                       DUP: {**cache_read, **old, **new}}[mode]  # fmt: skip


@MODES
def test_a_failed_call_counts_zero_tokens_and_no_token_histogram(
    opt_in: Any, otel: Any, client: Any, fake: Any, mode: str
) -> None:
    opt_in(mode)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, **scenario("status=429"))
    base = common(fake)
    del base[semconv.RESPONSE_MODEL]  # no response came back
    failed = {**base, semconv.ERROR_TYPE: "openai.RateLimitError"}
    metrics = otel.metrics()
    if mode == DEFAULT:
        assert set(metrics) == {semconv.METRIC_OPERATION_DURATION}
        assert dict(one(otel, semconv.METRIC_OPERATION_DURATION).attributes) == failed
        return
    assert dict(one(otel, semconv.METRIC_INFERENCE_DURATION).attributes) == failed
    # Every inference adds to the counters, a failed one 0 under `unknown`, without error.type.
    for name in USAGE_COUNTERS.values():
        point = one(otel, name)
        assert (dict(point.attributes), point.value) == ({**base, semconv.TOKEN_MODALITY: "unknown"}, 0)
    # The operation histograms are for operations that succeeded.
    assert semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS not in metrics
    assert semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS not in metrics
    assert (semconv.METRIC_OPERATION_DURATION in metrics) is (mode == DUP)


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_a_failed_stream_counts_and_records_no_histogram(
    opt_in: Any, otel: Any, client: Any, stream: bool
) -> None:
    # A stream cut after two events (an error while reading, no usage chunk), or a 500.
    opt_in(LATEST)
    with pytest.raises(STREAM_BREAK_ERROR if stream else openai.InternalServerError):
        call(client, stream, "chunks=6,abort_after=2" if stream else "status=500")
    metrics = otel.metrics()
    assert one(otel, semconv.METRIC_INFERENCE_DURATION).attributes.get(semconv.ERROR_TYPE)
    assert {n: one(otel, n).value for n in USAGE_COUNTERS.values()} == dict.fromkeys(
        USAGE_COUNTERS.values(), 0
    )
    assert not {
        semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS,
        semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS,
        semconv.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK,
        semconv.METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK,
    } & set(metrics)


def test_a_successful_call_without_usage_counts_zero_and_records_no_histogram(
    opt_in: Any, otel: Any, client: Any
) -> None:
    opt_in(LATEST)
    call(client, False, "no_usage")
    assert {n: one(otel, n).value for n in USAGE_COUNTERS.values()} == dict.fromkeys(
        USAGE_COUNTERS.values(), 0
    )
    assert semconv.METRIC_INFERENCE_OPERATION_INPUT_TOKENS not in otel.metrics()


def test_a_successful_zero_token_answer_records_zero(opt_in: Any, otel: Any, client: Any) -> None:
    opt_in(LATEST)
    usage = call(client, False, "chunks=0")
    assert usage.completion_tokens == 0
    point = one(otel, semconv.METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS)
    assert (point.count, point.sum) == (1, 0)


@MODES
def test_embeddings_have_their_own_metrics_under_the_newest_names(
    opt_in: Any, otel: Any, client: Any, mode: str
) -> None:
    opt_in(mode)
    result = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    tokens = result.usage.prompt_tokens
    old = {semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE, semconv.METRIC_LLMLENS_USAGE_TOKENS}
    new = {semconv.METRIC_EMBEDDINGS_DURATION, semconv.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS}
    assert set(otel.metrics()) == {DEFAULT: old, LATEST: new, DUP: old | new}[mode]
    if mode != DEFAULT:
        assert one(otel, semconv.METRIC_EMBEDDINGS_DURATION).count == 1
        point = one(otel, semconv.METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS)
        assert (point.count, point.sum) == (1, tokens)


@MODES
def test_count_tokens_keeps_the_operation_duration(opt_in: Any, otel: Any, fake: Any, mode: str) -> None:
    import anthropic

    opt_in(mode)
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url=f"http://{fake.host}:{fake.port}", max_retries=0
    )
    client.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
    metrics = otel.metrics()
    assert semconv.METRIC_OPERATION_DURATION in metrics
    assert one(otel, semconv.METRIC_OPERATION_DURATION).attributes[semconv.OPERATION_NAME] == "count_tokens"
    assert not {semconv.METRIC_INFERENCE_DURATION, *USAGE_COUNTERS.values()} & set(metrics)


def test_gemini_counts_are_split_by_the_modality_it_reports(opt_in: Any, otel: Any, fake: Any) -> None:
    from google import genai
    from google.genai import types

    opt_in(LATEST)
    client = genai.Client(
        api_key="fake-key", http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{fake.port}")
    )
    headers = types.HttpOptions(headers={"x-fake-scenario": "chunks=5,cached=3,reasoning=2"})
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="What is the weather?",
        config=types.GenerateContentConfig(http_options=headers),
    )
    usage = response.usage_metadata
    # The Gemini API details its prompt and cache tokens by modality (all TEXT here), not its candidates:
    # the output count goes to `unknown`.
    assert by_modality(otel, semconv.METRIC_INFERENCE_USAGE_INPUT_TOKENS) == {
        "text": usage.prompt_token_count
    }
    assert by_modality(otel, semconv.METRIC_INFERENCE_USAGE_OUTPUT_TOKENS) == {
        "unknown": usage.candidates_token_count + usage.thoughts_token_count
    }
    assert by_modality(otel, semconv.METRIC_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS) == {"text": 3}
    # No modality detail for these: the whole count (or 0) under `unknown`.
    assert by_modality(otel, semconv.METRIC_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS) == {"unknown": 2}
    assert by_modality(otel, semconv.METRIC_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS) == {"unknown": 0}
    attributes = {**one(otel, semconv.METRIC_INFERENCE_DURATION).attributes}
    for point in points(otel, semconv.METRIC_INFERENCE_USAGE_INPUT_TOKENS):
        assert dict(point.attributes) == {**attributes, semconv.TOKEN_MODALITY: "text"}


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("http,database/dup, gen_ai_latest_experimental ,", SemconvNames.LATEST),
        ("gen_ai_latest_experimental,gen_ai_latest_experimental/dup", SemconvNames.DUP),
        ("http/dup", SemconvNames.DEFAULT),
        ("not a token!!,,=;", SemconvNames.DEFAULT),
        ("", SemconvNames.DEFAULT),
        (None, SemconvNames.DEFAULT),
    ],
)
def test_other_tokens_in_the_list_are_ignored_without_a_word(
    opt_in: Any, otel: Any, client: Any, caplog: Any, value: str | None, names: SemconvNames
) -> None:
    with caplog.at_level(logging.DEBUG, logger="llmlens"):
        instrumentor = opt_in(value)
        call(client, False, "chunks=3")
    assert instrumentor.settings.semconv_opt_in is names
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    metrics = set(otel.metrics())
    assert (semconv.METRIC_OPERATION_DURATION in metrics) is names.old
    assert (semconv.METRIC_INFERENCE_DURATION in metrics) is names.new


def test_the_setting_is_read_once_when_instrumenting(
    opt_in: Any, otel: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opt_in(LATEST)
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "")
    call(client, False, "chunks=3")
    assert semconv.METRIC_INFERENCE_DURATION in otel.metrics()
    assert semconv.METRIC_OPERATION_DURATION not in otel.metrics()


def test_the_keyword_sets_it_in_code(instrument: Any, otel: Any, client: Any) -> None:
    instrument(pricing=False, semconv_opt_in="gen_ai_latest_experimental/dup")
    call(client, False, "chunks=3")
    assert {semconv.METRIC_OPERATION_DURATION, semconv.METRIC_INFERENCE_DURATION} <= set(otel.metrics())


# ----------------------------------------------------------------------------------- Prometheus names

PROMETHEUS_OLD = {
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_client_token_usage",
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "gen_ai_client_operation_time_per_output_chunk_seconds",
    "llmlens_usage_tokens_total",
}
PROMETHEUS_NEW = {
    "gen_ai_client_inference_duration_seconds",
    "gen_ai_client_inference_time_to_first_chunk_seconds",
    "gen_ai_client_inference_time_per_output_chunk_seconds",
    "gen_ai_client_inference_usage_input_tokens_total",
    "gen_ai_client_inference_usage_output_tokens_total",
    "gen_ai_client_inference_usage_cache_read_input_tokens_total",
    "gen_ai_client_inference_usage_cache_write_input_tokens_total",
    "gen_ai_client_inference_usage_reasoning_output_tokens_total",
    "gen_ai_client_inference_operation_input_tokens",
    "gen_ai_client_inference_operation_output_tokens",
    "gen_ai_client_embeddings_duration_seconds",
    "gen_ai_client_embeddings_operation_input_tokens",
}


@MODES
def test_the_prometheus_names_are_the_documented_ones(
    client: Any, fake: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    import llmlens

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", mode)
    handle = llmlens.configure(set_global=False, prometheus_port=0, pricing=False)
    try:
        call(client, False, "chunks=3,cached=2,cache_write=1,reasoning=1")
        call(client, True, "chunks=3")
        with pytest.raises(openai.RateLimitError):
            call(client, False, "status=429")
        client.embeddings.create(model="text-embedding-3-small", input="hello")
        url = f"http://127.0.0.1:{handle.prometheus_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        handle.shutdown()
        handle.instrumentor.uninstrument()
    names = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created") and sample.name != "target_info":
                names.add(sample.name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count"))
    assert (
        names == {DEFAULT: PROMETHEUS_OLD, LATEST: PROMETHEUS_NEW, DUP: PROMETHEUS_OLD | PROMETHEUS_NEW}[mode]
    )
    by_type = {
        s.labels["gen_ai_token_type"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "llmlens_usage_tokens_total"
    }
    if mode != LATEST:
        assert set(by_type) == {"input", "output", "cache_read", "cache_write", "reasoning"}
    # docs/prometheus.md names every one of them.
    doc = (Path(__file__).resolve().parent.parent / "docs" / "prometheus.md").read_text(encoding="utf-8")
    assert [name for name in sorted(names) if f"`{name}" not in doc] == []


@MODES
def test_an_invalid_cache_write_count_is_named_under_each_name(otel: Any, mode: str) -> None:
    from llmlens.core.telemetry import Telemetry
    from llmlens.settings import Settings

    settings = Settings(store=False, pricing=False).with_overrides(semconv_opt_in=mode)
    telemetry = Telemetry(settings, otel.tracer_provider, otel.meter_provider)
    inv = telemetry.start_invocation("chat", "openai", MODEL, "api.openai.com", 443)
    inv.input_tokens, inv.output_tokens, inv.cache_creation_tokens = 12, 3, -1
    inv.finish()
    attributes = otel.span().attributes
    old, new = semconv.USAGE_CACHE_CREATION_INPUT_TOKENS, semconv.USAGE_CACHE_WRITE_INPUT_TOKENS
    names = {DEFAULT: (old,), LATEST: (new,), DUP: (old, new)}[mode]
    assert attributes[semconv.LLMLENS_USAGE_INVALID] == names
    assert not {old, new} & set(attributes)
