"""llmlens' cost against genai-prices' own calculation, through the path a real call takes.

Three witnesses, each catching what the others cannot:

1. Every model that genai-prices prices per token for OpenAI, Anthropic, Google, AWS Bedrock, Groq and
   Mistral (the rule: all of them, none picked by hand), each called through `Telemetry` (the meter that
   turns an invocation's usage into `gen_ai.usage.cost.amount` on the span) with plain, cached,
   cache-write and reasoning tokens, and past its long-context tier when it has one. The expected value
   is genai-prices' `calc_price` (Decimal) at test time; ours must be within 1e-9 USD, and equal to the
   cent.
2. Real SDK calls to the fake provider (OpenAI chat and Responses, Anthropic, Gemini, Groq, Bedrock
   Converse), priced by us from the span, against genai-prices' `extract_usage` of the same raw response
   body: genai-prices reads each provider's usage its own way (Anthropic and Bedrock report cached tokens
   apart from the input, OpenAI and Gemini inside it; Gemini reports thinking apart from the output), so
   a provider module that counted them wrong would show here, not in 1.
3. A few costs worked out by hand, with the arithmetic written down, so that a mistake genai-prices and
   llmlens share (or a price that moved) does not go unseen.

Disagreements found and settled (docs/pricing.md, "How the cost is computed"): none in the arithmetic.
Per the providers' billing rules, cached tokens are a part of the input on OpenAI and Gemini and come on
top of it on Anthropic and Bedrock; our spans follow the semantic conventions (input includes them), as
genai-prices' `Usage` does; reasoning tokens are output tokens everywhere (Gemini bills thoughts at the
output price).
"""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from typing import Any

import httpx
import pytest

from llmlens import pricing, semconv
from llmlens.core.telemetry import Telemetry
from llmlens.pricing import TokenUsage
from llmlens.settings import Settings
from price_reference import genai_prices_decimal as genai_prices_total

# gen_ai.provider.name -> genai-prices provider id, for the six providers compared.
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "aws.bedrock": "aws",
    "groq": "groq",
    "mistral_ai": "mistral",
}
TOLERANCE = 1e-9  # USD: a billionth of a dollar, far below a cent


@pytest.fixture(scope="module", autouse=True)
def _prices_loaded() -> None:
    assert pricing.ready(60), "genai-prices data did not load"


def data_provider(provider_id: str) -> Any:
    from genai_prices.data import providers

    return next(p for p in providers if p.id == provider_id)


def current_prices(model: Any) -> dict[str, Any]:
    from datetime import datetime, timezone

    prices = model.get_prices(datetime.now(timezone.utc))
    return {k: v for k, v in vars(prices).items() if v is not None and not k.startswith("_")}


def tier_starts(prices: dict[str, Any]) -> list[int]:
    return sorted({t.start for v in prices.values() if hasattr(v, "tiers") for t in v.tiers})


def metered_cost(otel: Any, telemetry: Telemetry, provider: str, model: str, usage: TokenUsage) -> Any:
    """What a call with this usage gets on its span: an Invocation ended through Telemetry."""
    otel.spans_exporter.clear()
    inv = telemetry.start_invocation("chat", provider, model, "example.com", 443)
    inv.response_model = model
    inv.input_tokens, inv.output_tokens = usage.input_tokens, usage.output_tokens
    inv.cache_read_tokens, inv.cache_creation_tokens = usage.cache_read_tokens, usage.cache_creation_tokens
    inv.reasoning_tokens = usage.reasoning_tokens
    inv.finish()
    (span,) = otel.spans()
    return span.attributes.get(semconv.USAGE_COST_AMOUNT)


def usages(starts: list[int]) -> list[TokenUsage]:
    """Plain; cached, cache-write and reasoning; and for a tiered model, at and past each tier's start."""
    shapes = [
        TokenUsage(input_tokens=1234, output_tokens=567),
        TokenUsage(input_tokens=20_000, output_tokens=2500, cache_read_tokens=12_000,
                   cache_creation_tokens=3000, reasoning_tokens=1800),
    ]  # fmt: skip
    for start in starts:
        shapes.append(TokenUsage(start, 1000, 50_000, 10_000, 400))  # at the threshold: still the base
        shapes.append(TokenUsage(start + 5000, 3000, 50_000, 10_000, 1000))  # past it: the tier, for all
    return shapes


# ------------------------------------------------------------------ 1. every token-priced model, metered


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_token_priced_model_is_metered_as_genai_prices_prices_it(otel: Any, provider: str) -> None:
    provider_id = PROVIDERS[provider]
    telemetry = Telemetry(Settings(store=False), otel.tracer_provider, otel.meter_provider)
    compared: list[str] = []
    seen = {"cache_read": False, "cache_write": False, "tier": False}
    price_list = data_provider(provider_id)
    for model in price_list.models:
        prices = current_prices(model)
        if "input_mtok" not in prices or "output_mtok" not in prices:
            continue  # priced by characters, images, seconds...: tests/test_pricing.py (unsupported_units)
        if price_list.find_model(model.id) is not model:
            continue  # an id no call would send (`ft:gpt-4o`), or one an earlier entry's rules take
        starts = tier_starts(prices)
        for usage in usages(starts):
            expected = genai_prices_total(usage, model.id, provider_id)
            ours = metered_cost(otel, telemetry, provider, model.id, usage)
            assert ours is not None, (provider, model.id, usage)
            assert abs(Decimal(repr(ours)) - expected) < Decimal(TOLERANCE), (model.id, usage, ours, expected)
            assert round(Decimal(repr(ours)), 2) == round(expected, 2), (model.id, usage)
        compared.append(model.id)
        seen["cache_read"] |= "cache_read_mtok" in prices
        seen["cache_write"] |= "cache_write_mtok" in prices
        seen["tier"] |= bool(starts)
    assert len(compared) >= 5, compared
    # what the comparison covers, per provider (from the installed data)
    assert seen["cache_read"]
    if provider in ("anthropic", "aws.bedrock", "gcp.gemini", "openai"):
        assert seen["cache_write"] and seen["tier"], seen


def test_at_least_thirty_models_across_the_six_providers() -> None:
    counted = {
        ours: sum(
            1
            for m in data_provider(theirs).models
            if {"input_mtok", "output_mtok"} <= set(current_prices(m))
            and data_provider(theirs).find_model(m.id) is m
        )
        for ours, theirs in PROVIDERS.items()
    }
    assert sum(counted.values()) >= 30 and min(counted.values()) >= 5, counted


# ------------------------------------------------------------- 2. real SDK calls, raw provider usage


def extracted_total(body: Any, provider_id: str, model: str, flavor: str = "default") -> Decimal:
    """genai-prices' reading of the provider's own response body, priced by genai-prices."""
    from genai_prices import calc_price, extract_usage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        usage = extract_usage(body, provider_id=provider_id, api_flavor=flavor).usage
        return calc_price(usage, model, provider_id=provider_id).total_price


def assert_same(span: Any, expected: Decimal) -> None:
    ours = span.attributes[semconv.USAGE_COST_AMOUNT]
    assert abs(Decimal(repr(ours)) - expected) < Decimal(TOLERANCE), (ours, expected)
    assert expected > 0


MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_openai_chat_cached_and_reasoning(otel: Any, instrument: Any, client: Any) -> None:
    """OpenAI: `prompt_tokens` includes `cached_tokens`; `completion_tokens` includes reasoning."""
    instrument(provider_map={"127.0.0.1": "openai"})
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", messages=MESSAGES,
        extra_headers={"x-fake-scenario": "cached=3000,cache_write=500,reasoning=700"},
    )  # fmt: skip
    body = json.loads(raw.http_response.text)
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 3000
    assert_same(otel.span(), extracted_total(body, "openai", "gpt-4.1-mini", "chat"))


def test_openai_responses_cached_and_reasoning(otel: Any, instrument: Any, client: Any) -> None:
    instrument(provider_map={"127.0.0.1": "openai"})
    raw = client.responses.with_raw_response.create(
        model="o4-mini", input="What is the weather in Paris?",
        extra_headers={"x-fake-scenario": "cached=2000,reasoning=900"},
    )  # fmt: skip
    body = json.loads(raw.http_response.text)
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == 900
    assert_same(otel.span(), extracted_total(body, "openai", "o4-mini", "responses"))


def test_anthropic_cache_reads_and_writes_past_the_long_context_tier(
    otel: Any, instrument: Any, fake: Any
) -> None:
    """Anthropic: `input_tokens` excludes the cache reads and writes, reported apart; 250k cached tokens
    put claude-sonnet-4-5 past its 200k tier, which then prices every token."""
    import anthropic

    instrument()
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url=f"http://{fake.host}:{fake.port}", max_retries=0
    )
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=256, messages=MESSAGES,
        extra_headers={"x-fake-scenario": "cached=250000,cache_write=4000"},
    )  # fmt: skip
    body = json.loads(raw.http_response.text)
    usage = body["usage"]
    assert usage["cache_read_input_tokens"] == 250_000 and usage["input_tokens"] < 1000
    span = otel.span()
    assert span.attributes[semconv.USAGE_INPUT_TOKENS] == (
        usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    )
    (start,) = tier_starts(current_prices(data_provider("anthropic").find_model("claude-sonnet-4-5")))
    assert span.attributes[semconv.USAGE_INPUT_TOKENS] > start  # past the tier, as the cached tokens count
    assert_same(span, extracted_total(body, "anthropic", "claude-sonnet-4-5"))


def test_gemini_thoughts_are_output_and_cached_tokens_input(otel: Any, instrument: Any, fake: Any) -> None:
    """Gemini: `promptTokenCount` includes `cachedContentTokenCount`; `thoughtsTokenCount` is NOT a
    part of `candidatesTokenCount` and is billed as output: our span's output adds it."""
    from google import genai
    from google.genai import types

    instrument()
    scenario = "cached=230000,reasoning=1500"
    root = f"http://{fake.host}:{fake.port}"
    client = genai.Client(api_key="fake-key", http_options=types.HttpOptions(
        base_url=root, headers={"x-fake-scenario": scenario}))  # fmt: skip
    client.models.generate_content(model="gemini-2.5-pro", contents="What is the weather in Paris?")
    body = httpx.post(
        f"{root}/v1beta/models/gemini-2.5-pro:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}]},
        headers={"x-fake-scenario": scenario, "x-goog-api-key": "fake-key"},
    ).json()
    meta = body["usageMetadata"]
    assert meta["thoughtsTokenCount"] == 1500 and meta["cachedContentTokenCount"] == 230_000
    span = otel.span()
    assert span.attributes[semconv.USAGE_OUTPUT_TOKENS] == meta["candidatesTokenCount"] + 1500
    assert_same(span, extracted_total(body, "google", "gemini-2.5-pro"))


def test_groq_cached_tokens(otel: Any, instrument: Any, fake: Any) -> None:
    import groq

    instrument()
    client = groq.Groq(api_key="gsk-test", base_url=f"http://{fake.host}:{fake.port}", max_retries=0)
    model = next(m.id for m in data_provider("groq").models if "cache_read_mtok" in current_prices(m))
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, extra_headers={"x-fake-scenario": "cached=800"}
    )
    body = json.loads(raw.http_response.text)
    assert otel.span().attributes[semconv.PROVIDER_NAME] == "groq"
    assert_same(otel.span(), extracted_total(body, "groq", model))


def test_bedrock_converse_cache_reads_and_writes(otel: Any, instrument: Any) -> None:
    """Bedrock Converse: `inputTokens` excludes `cacheReadInputTokens` and `cacheWriteInputTokens`."""
    from fakes.bedrock_server import BedrockServer

    instrument()
    model = "us.anthropic.claude-sonnet-4-20250514-v1:0"
    with BedrockServer() as server:
        client = server.client(scenario="input_tokens=900,cache_read=6000,cache_write=1500")
        response = client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    assert body["usage"]["cacheReadInputTokens"] == 6000 and body["usage"]["inputTokens"] == 900
    span = otel.span()
    assert span.attributes[semconv.USAGE_INPUT_TOKENS] == 900 + 6000 + 1500
    assert_same(span, extracted_total(body, "aws", model))


# ------------------------------------------------------------------------ 3. worked out by hand


def rates_are(provider_id: str, model: str, **expected: Any) -> None:
    """The installed data still has the prices the arithmetic below uses (else update the test)."""
    prices = current_prices(next(m for m in data_provider(provider_id).models if m.id == model))
    for key, value in expected.items():
        found = prices[key]
        found = (found.base, *(t.price for t in found.tiers)) if hasattr(found, "tiers") else found
        assert found == value, f"{provider_id}/{model} {key} is now {found}: update the worked example"


def test_by_hand_gpt_4o_mini_cached(otel: Any) -> None:
    rates_are("openai", "gpt-4o-mini", input_mtok=Decimal("0.15"), cache_read_mtok=Decimal("0.075"),
              output_mtok=Decimal("0.6"))  # fmt: skip
    telemetry = Telemetry(Settings(store=False), otel.tracer_provider, otel.meter_provider)
    usage = TokenUsage(input_tokens=1000, output_tokens=200, cache_read_tokens=400, reasoning_tokens=50)
    # input not cached:   600 x 0.15  / 1e6 = 0.000090
    # cache read:         400 x 0.075 / 1e6 = 0.000030
    # output (incl. 50 reasoning, paid as output): 200 x 0.6 / 1e6 = 0.000120
    # total                                  = 0.000240
    assert metered_cost(otel, telemetry, "openai", "gpt-4o-mini-2024-07-18", usage) == pytest.approx(
        0.000240, abs=1e-15
    )


def test_by_hand_claude_sonnet_past_200k(otel: Any) -> None:
    rates_are("anthropic", "claude-sonnet-4-5",
              input_mtok=(Decimal(3), Decimal(6)), output_mtok=(Decimal(15), Decimal("22.5")),
              cache_read_mtok=(Decimal("0.3"), Decimal("0.6")),
              cache_write_mtok=(Decimal("3.75"), Decimal("7.5")))  # fmt: skip
    telemetry = Telemetry(Settings(store=False), otel.tracer_provider, otel.meter_provider)
    # Anthropic reported input_tokens=50,000, cache_read 150,000, cache_creation 10,000: 210,000 in all
    usage = TokenUsage(210_000, 2000, cache_read_tokens=150_000, cache_creation_tokens=10_000)
    # 210,000 > 200,000: every token pays the long-context prices
    # input not cached:  50,000 x 6    / 1e6 = 0.300
    # cache read:       150,000 x 0.6  / 1e6 = 0.090
    # cache write:       10,000 x 7.5  / 1e6 = 0.075
    # output:             2,000 x 22.5 / 1e6 = 0.045
    # total                                  = 0.510
    assert metered_cost(otel, telemetry, "anthropic", "claude-sonnet-4-5-20250929", usage) == pytest.approx(
        0.510, abs=1e-12
    )
    # 200,000 exactly is not past the threshold: the base prices
    # 40,000 x 3 + 150,000 x 0.3 + 10,000 x 3.75 + 2,000 x 15 = 120,000 + 45,000 + 37,500 + 30,000 -> 0.2325
    at = TokenUsage(200_000, 2000, cache_read_tokens=150_000, cache_creation_tokens=10_000)
    assert metered_cost(otel, telemetry, "anthropic", "claude-sonnet-4-5", at) == pytest.approx(
        0.2325, abs=1e-12
    )


def test_by_hand_gemini_2_5_pro_thinking_past_200k(otel: Any) -> None:
    rates_are("google", "gemini-2.5-pro",
              input_mtok=(Decimal("1.25"), Decimal("2.5")), output_mtok=(Decimal(10), Decimal(15)),
              cache_read_mtok=(Decimal("0.125"), Decimal("0.25")))  # fmt: skip
    telemetry = Telemetry(Settings(store=False), otel.tracer_provider, otel.meter_provider)
    # promptTokenCount 300,000 (of which cached 100,000), candidates 1,000, thoughts 4,000
    usage = TokenUsage(300_000, 5000, cache_read_tokens=100_000, reasoning_tokens=4000)
    # input not cached: 200,000 x 2.5  / 1e6 = 0.500
    # cache read:       100,000 x 0.25 / 1e6 = 0.025
    # output (1,000 + 4,000 thinking): 5,000 x 15 / 1e6 = 0.075
    # total                                  = 0.600
    assert metered_cost(otel, telemetry, "gcp.gemini", "gemini-2.5-pro", usage) == pytest.approx(
        0.600, abs=1e-12
    )
