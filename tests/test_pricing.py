"""llmlens.pricing with the real genai-prices data (no mocks).

Expected costs are worked out here from the per-million prices read out of the package data
(`genai_prices.data`) and plain arithmetic, not by calling our code again; genai-prices' own
`calc_price` is a second witness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llmlens import pricing, semconv
from llmlens.pricing import PriceBook, TokenPrices, TokenUsage
from llmlens.settings import ENV_PRICES, ENV_PRICING, Settings, SettingsError
from price_reference import genai_prices_total

MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
COST_KEYS = {
    semconv.USAGE_COST_AMOUNT,
    semconv.USAGE_COST_CURRENCY,
    semconv.USAGE_COST_SOURCE,
    semconv.LLMLENS_COST_PRICE_SOURCE,
}


@pytest.fixture(scope="module", autouse=True)
def _prices_loaded() -> None:
    assert pricing.ready(60), "genai-prices data did not load"


def data_model(provider_id: str, model_id: str) -> Any:
    """The genai-prices ModelInfo, read straight from the package data."""
    from genai_prices.data import providers

    provider = next(p for p in providers if p.id == provider_id)
    return next(m for m in provider.models if m.id == model_id)


def per_million(provider_id: str, model_id: str, **context: str) -> dict[str, Any]:
    """The model's current prices, USD per million tokens (Decimal or TieredPrices), by price key."""
    model = data_model(provider_id, model_id)
    prices = model.get_prices(datetime.now(timezone.utc), context or None)
    return {k: v for k, v in vars(prices).items() if v is not None}


def f(value: Decimal) -> float:
    return float(value)


def test_gpt_4o_mini_cached_tokens_pay_the_cache_read_price_only() -> None:
    p = per_million("openai", "gpt-4o-mini")
    usage = TokenUsage(input_tokens=1000, output_tokens=200, cache_read_tokens=400)
    expected = (600 * f(p["input_mtok"]) + 400 * f(p["cache_read_mtok"]) + 200 * f(p["output_mtok"])) / 1e6
    assert f(p["cache_read_mtok"]) < f(p["input_mtok"])  # else the test proves nothing

    cost = PriceBook().cost("openai", "gpt-4o-mini", usage)

    assert cost is not None
    assert cost.amount == pytest.approx(expected, rel=1e-12)
    assert cost.amount == pytest.approx(genai_prices_total(usage, "gpt-4o-mini", "openai"), rel=1e-12)
    assert (cost.currency, cost.priced_model) == ("USD", "gpt-4o-mini")
    import genai_prices

    assert cost.price_source == f"genai-prices {genai_prices.__version__}"


def test_gpt_4_1() -> None:
    p = per_million("openai", "gpt-4.1")
    usage = TokenUsage(input_tokens=5000, output_tokens=1000)
    expected = (5000 * f(p["input_mtok"]) + 1000 * f(p["output_mtok"])) / 1e6
    cost = PriceBook().cost("openai", "gpt-4.1", usage)
    assert cost is not None and cost.amount == pytest.approx(expected, rel=1e-12)


def test_o4_mini_reasoning_tokens_are_output_tokens() -> None:
    p = per_million("openai", "o4-mini")
    assert "output_reasoning_mtok" not in p  # reasoning is billed as output
    usage = TokenUsage(input_tokens=1000, output_tokens=3000, reasoning_tokens=2500)
    expected = (1000 * f(p["input_mtok"]) + 3000 * f(p["output_mtok"])) / 1e6
    cost = PriceBook().cost("openai", "o4-mini", usage)
    assert cost is not None and cost.amount == pytest.approx(expected, rel=1e-12)
    assert cost.amount == pytest.approx(genai_prices_total(usage, "o4-mini", "openai"), rel=1e-12)


def test_claude_sonnet_cache_read_and_write() -> None:
    p = per_million("anthropic", "claude-sonnet-4-5")
    # Our spans' input includes Anthropic's cache reads and writes (the provider module adds them).
    usage = TokenUsage(input_tokens=100 + 2000 + 3000, output_tokens=500, cache_read_tokens=3000,
                       cache_creation_tokens=2000)  # fmt: skip
    base = {k: v.base if hasattr(v, "tiers") else v for k, v in p.items()}
    expected = (
        100 * f(base["input_mtok"])
        + 2000 * f(base["cache_write_mtok"])
        + 3000 * f(base["cache_read_mtok"])
        + 500 * f(base["output_mtok"])
    ) / 1e6

    cost = PriceBook().cost("anthropic", "claude-sonnet-4-5-20250929", usage)

    assert cost is not None and cost.priced_model == "claude-sonnet-4-5"
    assert cost.amount == pytest.approx(expected, rel=1e-12)
    assert cost.amount == pytest.approx(
        genai_prices_total(usage, "claude-sonnet-4-5-20250929", "anthropic"), rel=1e-12
    )


def test_claude_sonnet_long_context_tier_applies_to_all_tokens() -> None:
    p = per_million("anthropic", "claude-sonnet-4-5")
    (tier,) = p["input_mtok"].tiers
    over = tier.start + 1000

    def tier_price(key: str) -> float:
        (t,) = p[key].tiers
        return f(t.price)

    usage = TokenUsage(input_tokens=over, output_tokens=100, cache_read_tokens=1000)
    expected = ((over - 1000) * tier_price("input_mtok") + 1000 * tier_price("cache_read_mtok")
                + 100 * tier_price("output_mtok")) / 1e6  # fmt: skip
    cost = PriceBook().cost("anthropic", "claude-sonnet-4-5", usage)
    assert cost is not None and cost.amount == pytest.approx(expected, rel=1e-12)


def test_gemini_flash_cached_and_thinking_tokens() -> None:
    p = per_million("google", "gemini-2.5-flash")
    usage = TokenUsage(input_tokens=2000, output_tokens=500, cache_read_tokens=1000, reasoning_tokens=300)
    expected = (1000 * f(p["input_mtok"]) + 1000 * f(p["cache_read_mtok"]) + 500 * f(p["output_mtok"])) / 1e6
    cost = PriceBook().cost("gcp.gemini", "gemini-2.5-flash", usage)
    assert cost is not None and cost.amount == pytest.approx(expected, rel=1e-12)
    assert PriceBook().cost("gcp.vertex_ai", "gemini-2.5-flash", usage) == cost


def test_embeddings_have_no_output() -> None:
    p = per_million("openai", "text-embedding-3-small")
    cost = PriceBook().cost("openai", "text-embedding-3-small", TokenUsage(input_tokens=12345))
    assert cost is not None and cost.amount == pytest.approx(12345 * f(p["input_mtok"]) / 1e6, rel=1e-12)


def test_service_tier_selects_the_price_variant() -> None:
    standard = per_million("openai", "gpt-4o")
    priority = per_million("openai", "gpt-4o", service_tier="priority")
    assert f(priority["input_mtok"]) > f(standard["input_mtok"])
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    book = PriceBook()
    plain = book.cost("openai", "gpt-4o", usage)
    fast = book.cost("openai", "gpt-4o", usage, service_tier="priority")
    assert plain is not None and fast is not None
    assert plain.amount == pytest.approx(
        (1000 * f(standard["input_mtok"]) + 100 * f(standard["output_mtok"])) / 1e6
    )
    assert fast.amount == pytest.approx(
        (1000 * f(priority["input_mtok"]) + 100 * f(priority["output_mtok"])) / 1e6
    )


def test_price_call_takes_plain_inputs_and_returns_a_value() -> None:
    """What instrumentation calls: plain inputs in, a CallCost (or None) out, no span attributes."""
    book = PriceBook()
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    p = per_million("openai", "gpt-4o", service_tier="priority")
    cost = book.price_call("openai", "gpt-4o-2024-08-06", "gpt-4o", usage, "priority")
    assert cost is not None and cost.priced and cost.unpriced_reason is None
    assert cost.amount == pytest.approx((1000 * f(p["input_mtok"]) + 100 * f(p["output_mtok"])) / 1e6)
    assert (cost.currency, cost.source) == ("USD", "local")
    assert cost.price_source.startswith("genai-prices ")  # type: ignore[union-attr]
    # the request model stands in for a response model the response did not name
    assert book.price_call("openai", None, "gpt-4o", usage, "priority") == cost
    unknown = book.price_call("openai", None, "no-such-model", usage)
    assert unknown == pricing.CallCost(unpriced_reason=pricing.UNKNOWN_MODEL) and not unknown.priced
    invalid = book.price_call("openai", None, "gpt-4o", usage, usage_invalid=True)
    assert invalid == pricing.CallCost.unpriced(pricing.INVALID_USAGE)
    assert book.price_call("openai", None, "gpt-4o", TokenUsage()) == pricing.CallCost.unpriced(
        pricing.NO_USAGE
    )
    # a failed call that returned nothing is not billed: neither priced nor counted as unpriced
    assert book.price_call("openai", None, "gpt-4o", TokenUsage(), failed=True) is None


def test_telemetry_prices_the_invocation_and_writes_the_attributes(otel: Any) -> None:
    """Pricing gives a value; Telemetry keeps it on the invocation and puts it on the span and metric."""
    from llmlens.core.invocation import Invocation
    from llmlens.core.telemetry import Telemetry

    telemetry = Telemetry(Settings(store=False), otel.tracer_provider, otel.meter_provider)
    inv = Invocation(telemetry, "chat", "openai", "gpt-4o", "api.openai.com", 443)
    telemetry.start(inv)
    inv.response_model, inv.service_tier, inv.api = "gpt-4o-2024-08-06", "priority", "openai"
    inv.input_tokens, inv.output_tokens = 1000, 100
    inv.finish()
    assert inv.cost == telemetry.prices.price_call(  # type: ignore[union-attr]
        "openai", "gpt-4o-2024-08-06", "gpt-4o", TokenUsage(1000, 100), "priority"
    )
    attributes = otel.span().attributes
    assert attributes[semconv.OPENAI_RESPONSE_SERVICE_TIER] == "priority"
    assert attributes[semconv.USAGE_COST_AMOUNT] == inv.cost.amount  # type: ignore[union-attr]
    assert attributes[semconv.LLMLENS_COST_PRICE_SOURCE] == inv.cost.price_source  # type: ignore[union-attr]
    (point,) = cost_points(otel)[0]
    assert point.value == inv.cost.amount  # type: ignore[union-attr]


def test_every_token_priced_model_agrees_with_genai_prices() -> None:
    """Our float arithmetic against genai-prices' Decimal one, for every model it prices by tokens."""
    import warnings

    from genai_prices.data import providers

    book = PriceBook()
    ours_by_id = {v: k for k, v in pricing.GENAI_PRICES_PROVIDERS.items() if v}
    usage = TokenUsage(input_tokens=300_000, output_tokens=700, cache_read_tokens=1200,
                       cache_creation_tokens=800, reasoning_tokens=300)  # fmt: skip
    compared = 0
    for provider in providers:
        for model in provider.models:
            cost = book.cost(ours_by_id.get(provider.id, provider.id), model.id, usage)
            if cost is None:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = genai_prices_total(usage, model.id, provider.id)
            assert cost.amount == pytest.approx(expected, rel=1e-9, abs=1e-12), (provider.id, model.id)
            compared += 1
    assert compared > 1000


# ------------------------------------------------------------------------- names, models, providers


@pytest.mark.parametrize(
    ("provider", "dated", "priced_as"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai", "o4-mini-2025-04-16", "o4-mini"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("gcp.gemini", "gemini-2.0-flash-001", "gemini-2.0-flash"),
    ],
)
def test_dated_model_names(provider: str, dated: str, priced_as: str) -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    book = PriceBook()
    cost = book.cost(provider, dated, usage)
    assert cost is not None and cost.priced_model == priced_as
    assert cost == book.cost(provider, priced_as, usage)


def test_response_model_first_then_request_model() -> None:
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=0)
    book = PriceBook()
    by_response = book.cost("openai", "gpt-4.1-2025-04-14", usage, request_model="gpt-4o-mini")
    assert by_response is not None and by_response.priced_model == "gpt-4.1"
    # An Azure deployment name as the response model: unknown, so the request model prices it.
    fallback = book.cost("azure.ai.openai", "my-deployment", usage, request_model="gpt-4o")
    assert fallback is not None and fallback.priced_model == "gpt-4o"


def test_unknown_model_and_provider() -> None:
    book = PriceBook()
    usage = TokenUsage(input_tokens=10, output_tokens=10)
    assert book.cost("openai", "no-such-model", usage) is None
    assert book.unpriced_reason("openai", "no-such-model", usage) == pricing.UNKNOWN_MODEL
    # a relay llmlens does not know: priced by the model's maker if known (tests/test_cost_inferred.py)
    assert book.unpriced_reason("openai_compatible", "my-llama", usage) == pricing.UNKNOWN_MODEL
    assert book.unpriced_reason("vllm", "llama-3", usage) == pricing.UNKNOWN_PROVIDER
    assert book.unpriced_reason("openai", "gpt-4o-mini", TokenUsage()) == pricing.NO_USAGE
    assert book.unpriced_reason("openai", "tts-1", usage) == pricing.UNSUPPORTED_UNITS  # priced per character


def test_ollama_is_free_unless_overridden() -> None:
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    free = PriceBook().cost("ollama", "llama3.2", usage)
    assert free is not None and (free.amount, free.price_source) == (0.0, "free")
    priced = PriceBook({"ollama/llama3*": TokenPrices(input=0.1, output=0.2)}).cost(
        "ollama", "llama3.2", usage
    )
    assert priced is not None and (priced.amount, priced.price_source) == (pytest.approx(0.3), "override")


@pytest.mark.parametrize(
    ("ours", "theirs", "model"),
    [
        ("openai", "openai", "gpt-4o-mini"),
        ("azure.ai.openai", "azure", "gpt-4o"),
        ("anthropic", "anthropic", "claude-3-5-haiku-latest"),
        ("aws.bedrock", "aws", "us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("gcp.gemini", "google", "gemini-2.5-flash"),
        ("gcp.vertex_ai", "google", "gemini-2.5-pro"),
        ("groq", "groq", "llama-3.3-70b-versatile"),
        ("deepseek", "deepseek", "deepseek-reasoner"),
        ("mistral_ai", "mistral", "mistral-large-latest"),
        ("x_ai", "x-ai", "grok-3"),
        ("perplexity", "perplexity", "sonar"),
        ("cohere", "cohere", "command-r-plus"),
        ("openrouter", "openrouter", "openai/gpt-4o-mini"),
        ("together_ai", "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("fireworks_ai", "fireworks", "accounts/fireworks/models/llama-v3p1-8b-instruct"),
    ],
)
def test_provider_names_map_to_genai_prices(ours: str, theirs: str, model: str) -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    cost = PriceBook().cost(ours, model, usage)
    assert cost is not None
    assert cost.amount == pytest.approx(genai_prices_total(usage, model, theirs), rel=1e-12)


def test_time_dependent_prices_are_resolved_again_when_they_change() -> None:
    book = PriceBook()
    rates = book.rates("deepseek", "deepseek-chat")
    assert not isinstance(rates, str)
    assert time.time() < rates.expires < time.time() + 86400  # off-peak hours start or end within a day
    rates.expires = time.time() - 1
    again = book.rates("deepseek", "deepseek-chat")
    assert again is not rates and not isinstance(again, str)
    assert book.rates("openai", "gpt-4o-mini").expires == float("inf")


# ------------------------------------------------------------------------------------------ overrides


def test_override_wins_over_genai_prices() -> None:
    book = PriceBook({"openai/gpt-4o-mini": TokenPrices(input=1, output=2, cache_read=0.5)})
    cost = book.cost(
        "openai", "gpt-4o-mini", TokenUsage(input_tokens=1000, output_tokens=100, cache_read_tokens=400)
    )
    assert cost is not None
    assert cost.amount == pytest.approx((600 * 1 + 400 * 0.5 + 100 * 2) / 1e6)
    assert (cost.price_source, cost.priced_model) == ("override", "gpt-4o-mini")


def test_override_cache_prices_default_to_the_input_price() -> None:
    book = PriceBook({"openai_compatible/my-llama": TokenPrices(input=1, output=2)})
    usage = TokenUsage(input_tokens=1000, output_tokens=100, cache_read_tokens=400, cache_creation_tokens=100)
    cost = book.cost("openai_compatible", "my-llama", usage)
    assert cost is not None and cost.amount == pytest.approx((1000 * 1 + 100 * 2) / 1e6)


def test_override_pattern_precedence() -> None:
    book = PriceBook(
        {
            "*/*": TokenPrices(input=9, output=9),
            "openai_compatible/llama-*": TokenPrices(input=2, output=2),
            "openai_compatible/llama-3*": TokenPrices(input=3, output=3),
            "openai_compatible/llama-3.1-8b": TokenPrices(input=4, output=4),
        }
    )
    one_million = TokenUsage(input_tokens=1_000_000, output_tokens=0)

    def price(model: str) -> float:
        cost = book.cost("openai_compatible", model, one_million)
        assert cost is not None
        return cost.amount

    assert price("llama-3.1-8b") == 4  # exact beats every pattern
    assert price("LLaMA-3.1-70b") == 3  # the most specific pattern; case does not matter
    assert price("llama-2") == 2
    assert price("mistral") == 9


def test_overrides_from_a_json_file_and_the_keyword(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "openai_compatible/llama-*": {"input": 0.2, "output": 0.6},
                "openai_compatible/qwen-*": {
                    "input": 0.1,
                    "output": 0.3,
                    "cache_read": 0.01,
                    "cache_write": 0.2,
                },
            }
        )
    )
    settings = Settings.from_env(
        {ENV_PRICES: str(path)},
        prices={
            "openai_compatible/qwen-*": {"input": 5, "output": 5},
            "openai/gpt-4o*": {"input": 1, "output": 1},
        },
    )
    assert settings.prices == {
        "openai_compatible/llama-*": TokenPrices(0.2, 0.6),
        "openai_compatible/qwen-*": TokenPrices(5.0, 5.0),  # the keyword wins for the same key
        "openai/gpt-4o*": TokenPrices(1.0, 1.0),
    }
    book = PriceBook(settings.prices)
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert book.cost("openai_compatible", "llama-70b", usage).amount == pytest.approx(0.8)  # type: ignore[union-attr]
    assert book.cost("openai_compatible", "qwen-2", usage).amount == pytest.approx(10)  # type: ignore[union-attr]
    assert book.cost("openai", "gpt-4o-mini-2024-07-18", usage).amount == pytest.approx(2)  # type: ignore[union-attr]


def test_overrides_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        textwrap.dedent(
            """
            "ollama/*" = { input = 0, output = 0 }

            ["openai_compatible/llama-*"]
            input = 0.2
            output = 0.6
            cache_read = 0.05
            """
        )
    )
    settings = Settings.from_env({ENV_PRICES: str(path)})
    assert settings.prices == {
        "ollama/*": TokenPrices(0.0, 0.0),
        "openai_compatible/llama-*": TokenPrices(0.2, 0.6, cache_read=0.05),
    }


def test_instrument_takes_a_prices_file_path_as_keyword(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"openai/x": {"input": 1, "output": 2}}')
    assert Settings.from_env({}, prices=path).prices == {"openai/x": TokenPrices(1.0, 2.0)}


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.json", None, "cannot read the file"),
        ("bad.json", '{"openai/x": {"input": 1,, }', "is not valid JSON"),
        ("bad.toml", '["openai/x"]\ninput = = 1\n', "is not valid TOML"),
        ("list.json", "[1, 2]", "holds a list"),
        ("key.json", '{"gpt-4o": {"input": 1, "output": 2}}', "key 'gpt-4o' is not valid"),
        ("missing.toml", '["openai/x"]\ninput = 1\n', "misses output"),
        ("negative.json", '{"openai/x": {"input": -1, "output": 2}}', "input=-1 is not valid"),
        ("text.json", '{"openai/x": {"input": "1", "output": 2}}', "input='1' is not valid"),
        (
            "field.json",
            '{"openai/x": {"input": 1, "output": 2, "reasoning": 3}}',
            "unknown fields ['reasoning']",
        ),
        ("scalar.json", '{"openai/x": 3}', "'openai/x' is not a table"),
    ],
)
def test_a_bad_price_file_is_one_line_error(
    tmp_path: Path, name: str, content: str | None, fragment: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_PRICES: str(path)})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{ENV_PRICES}={str(path)!r}")
    assert fragment in message
    assert "; accepted values: " in message  # the house style of every settings error


def test_a_bad_prices_keyword() -> None:
    with pytest.raises(SettingsError, match=r"^prices=42 is not valid"):
        Settings().with_overrides(prices=42)
    with pytest.raises(SettingsError, match="misses input and output"):
        Settings().with_overrides(prices={"openai/x": {}})


def test_the_price_table_reader_has_its_own_error() -> None:
    """llmlens.pricing knows nothing of settings: its reader raises PriceTableError unless asked for
    another error type (settings.py asks for SettingsError)."""
    with pytest.raises(pricing.PriceTableError, match=r"^prices=42 is not valid; accepted values: "):
        pricing.load_price_table(42, "prices")
    with pytest.raises(SettingsError, match="misses input and output") as error:
        pricing.load_price_table({"openai/x": {}}, "prices", SettingsError)
    assert not isinstance(error.value, pricing.PriceTableError)


def test_pricing_imports_neither_settings_nor_core() -> None:
    out = run_python(
        """
        import json, sys
        from llmlens import pricing
        names = [n for n in sys.modules if n.startswith(("llmlens.settings", "llmlens.core"))]
        print(json.dumps(sorted(names)))
        """
    )
    assert json.loads(out) == []


def test_pricing_setting() -> None:
    assert Settings().pricing is True
    assert Settings.from_env({ENV_PRICING: "off"}).pricing is False
    assert Settings.from_env({ENV_PRICING: "on"}).pricing is True
    assert Settings.from_env({}, pricing="off").pricing is False
    with pytest.raises(SettingsError) as error:
        Settings.from_env({ENV_PRICING: "maybe"})
    assert ENV_PRICING in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------------ loading, import, network


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_llmlens_does_not_import_genai_prices() -> None:
    out = run_python(
        """
        import sys
        import llmlens
        from llmlens import pricing  # our module is light too: the data loads only when asked
        print(json := __import__("json").dumps(
            [name for name in ("genai_prices", "httpx2", "pydantic") if name in sys.modules]))
        """
    )
    assert json.loads(out) == []


def test_prices_without_network() -> None:
    """Every socket connection fails; the data loads, calls are priced, and nothing tried to connect."""
    out = run_python(
        """
        import json, socket
        attempts = []
        def refuse(self, *args, **kwargs):
            attempts.append(args)
            raise OSError("network is off in this test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = lambda *a, **k: refuse(None, *a)

        from llmlens import pricing
        book = pricing.PriceBook()
        assert pricing.ready(60)
        cost = book.cost("openai", "gpt-4o-mini", pricing.TokenUsage(1000, 100))
        import genai_prices.update_prices as updates
        print(json.dumps({"amount": cost.amount, "attempts": len(attempts),
                          "updater_thread": updates._shared_updater.thread is not None}))
        """
    )
    result = json.loads(out)
    assert result["amount"] > 0
    assert result["attempts"] == 0
    assert result["updater_thread"] is False  # genai-prices' auto-update never started


def test_a_call_before_the_data_is_loaded_is_unpriced(monkeypatch: Any) -> None:
    """A fresh process state: nothing loaded yet, so `prices_loading` (not memoised), then priced."""
    fresh = pricing.data._PriceData()
    monkeypatch.setattr(fresh, "start", lambda: None)  # hold the load back
    monkeypatch.setattr(pricing.data, "_DATA", fresh)
    book = PriceBook()
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    assert book.unpriced_reason("openai", "gpt-4o-mini", usage) == pricing.PRICES_LOADING
    assert book.unpriced_reason("openai_compatible", "gpt-4o-mini", usage) == pricing.PRICES_LOADING
    assert book.cost("ollama", "x", usage) is not None  # free needs no data either
    assert not pricing.ready(0)
    fresh._load()  # what the background thread does
    assert pricing.ready(0)
    assert book.cost("openai", "gpt-4o-mini", usage) is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_right_after_instrument_prices_in_the_child() -> None:
    """gunicorn --preload: instrument() in the parent, then fork at once; the child prices its calls."""
    out = run_python(
        """
        import os
        from llmlens import pricing
        book = pricing.PriceBook()  # starts the load, as instrument() does
        pid = os.fork()
        if pid == 0:
            ok = pricing.ready(60) and book.cost("openai", "gpt-4o-mini", pricing.TokenUsage(10, 10))
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    assert out.strip() == "0"


def test_loading_restarts_in_a_forked_child_that_has_no_data() -> None:
    fresh = pricing.data._PriceData()
    fresh.after_fork_in_child()  # as if forked before the load finished: starts its own thread
    assert fresh.loaded.wait(60) and fresh.snapshot is not None


# ----------------------------------------------------------------------------------------- end to end


def cost_points(otel: Any) -> tuple[list[Any], list[Any]]:
    metrics = otel.metrics()
    return metrics.get(semconv.METRIC_LLMLENS_COST, []), metrics.get(semconv.METRIC_LLMLENS_COST_UNPRICED, [])


def test_instrumented_call_gets_cost_on_span_and_metric(otel: Any, instrument: Any, client: Any) -> None:
    instrument(provider_map={"127.0.0.1": "openai"})
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-scenario": "cached=5,reasoning=3"}
    )
    usage = completion.usage
    p = per_million("openai", "gpt-4o-mini")
    cached = usage.prompt_tokens_details.cached_tokens
    assert cached == 5 and usage.completion_tokens_details.reasoning_tokens == 3
    expected = ((usage.prompt_tokens - cached) * f(p["input_mtok"]) + cached * f(p["cache_read_mtok"])
                + usage.completion_tokens * f(p["output_mtok"])) / 1e6  # fmt: skip

    span = otel.span()
    attributes = span.attributes
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-12)
    assert attributes[semconv.USAGE_COST_CURRENCY] == "USD"
    assert attributes[semconv.USAGE_COST_SOURCE] == "local"
    assert attributes[semconv.LLMLENS_COST_PRICE_SOURCE].startswith("genai-prices ")

    costs, unpriced = cost_points(otel)
    (point,) = costs
    assert point.value == pytest.approx(expected, rel=1e-12)
    (duration,) = otel.metrics()[semconv.METRIC_OPERATION_DURATION]
    assert dict(point.attributes) == dict(duration.attributes)  # the same low-cardinality attributes
    assert unpriced == []


def test_costs_add_up_across_calls_and_reinstrumentation(otel: Any, instrument: Any, client: Any) -> None:
    instrumentor = instrument(provider_map={"127.0.0.1": "openai"})
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    instrumentor.uninstrument()
    instrument(provider_map={"127.0.0.1": "openai"})  # the same meter provider: the same series
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    amounts = [span.attributes[semconv.USAGE_COST_AMOUNT] for span in otel.spans()]
    (point,) = cost_points(otel)[0]
    assert len(amounts) == 3 and point.value == pytest.approx(sum(amounts), rel=1e-12)


def test_stream_with_and_without_usage(otel: Any, instrument: Any, client: Any) -> None:
    instrument(provider_map={"127.0.0.1": "openai"})
    for _ in client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        pass
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    with_usage, without = otel.spans()
    assert with_usage.attributes[semconv.USAGE_COST_AMOUNT] > 0
    assert not COST_KEYS & set(without.attributes)
    costs, unpriced = cost_points(otel)
    assert len(costs) == 1
    (point,) = unpriced
    assert point.value == 1
    assert point.attributes[semconv.LLMLENS_COST_UNPRICED_REASON] == pricing.NO_USAGE


def test_unknown_model_is_counted_unpriced(otel: Any, instrument: Any, client: Any) -> None:
    instrument(provider_map={"127.0.0.1": "openai"})
    client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert not COST_KEYS & set(otel.span().attributes)
    costs, (point,) = cost_points(otel)
    assert costs == []
    assert point.value == 1
    assert dict(point.attributes) == {
        **dict(otel.metrics()[semconv.METRIC_OPERATION_DURATION][0].attributes),
        semconv.LLMLENS_COST_UNPRICED_REASON: pricing.UNKNOWN_MODEL,
    }


def test_a_failed_request_is_not_counted(otel: Any, instrument: Any, client: Any) -> None:
    import openai

    instrument(provider_map={"127.0.0.1": "openai"})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                       extra_headers={"x-fake-scenario": "status=429"})  # fmt: skip
    assert cost_points(otel) == ([], [])


def test_openai_compatible_unknown_model_needs_an_override(otel: Any, instrument: Any, client: Any) -> None:
    instrument()  # the fake server is an unknown OpenAI-compatible host
    client.chat.completions.create(model="my-local-llama", messages=MESSAGES)
    (point,) = cost_points(otel)[1]
    assert point.attributes[semconv.LLMLENS_COST_UNPRICED_REASON] == pricing.UNKNOWN_MODEL


def test_keyword_override_prices_an_openai_compatible_server(otel: Any, instrument: Any, client: Any) -> None:
    instrument(prices={"openai_compatible/gpt-4o-*": {"input": 1000, "output": 1000}})
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attributes = otel.span().attributes
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(completion.usage.total_tokens * 1000 / 1e6)
    assert attributes[semconv.LLMLENS_COST_PRICE_SOURCE] == "override"


@pytest.mark.parametrize("how", ["env", "keyword"])
def test_pricing_off(otel: Any, instrument: Any, client: Any, monkeypatch: Any, how: str) -> None:
    if how == "env":
        monkeypatch.setenv(ENV_PRICING, "off")
        instrument(provider_map={"127.0.0.1": "openai"})
    else:
        instrument(provider_map={"127.0.0.1": "openai"}, pricing=False)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert not COST_KEYS & set(otel.span().attributes)
    assert cost_points(otel) == ([], [])
