"""A call through a relay llmlens does not recognise (`openai_compatible`: the openai SDK with a base_url
at a company gateway, here the fake provider on 127.0.0.1) is priced from the model name alone, at the
price of the model's maker, and marked `gen_ai.usage.cost.source = inferred_from_model`; an ambiguous
name stays unpriced with a reason. Real fake server, real SDK, real store, real `llmlens` commands and
`llmlens ui`; genai-prices' own `calc_price` is the witness for the amounts.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmlens import pricing, semconv
from llmlens.cli import main as llmlens_main
from llmlens.pricing import PriceBook, TokenPrices, TokenUsage
from llmlens.store.attach import attached_store
from llmlens.web import create_app
from price_reference import genai_prices_total as genai_prices
from proxies.server import UvicornServer

MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
USAGE = TokenUsage(input_tokens=4000, output_tokens=900, cache_read_tokens=1500, cache_creation_tokens=500,
                   reasoning_tokens=300)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _prices_loaded() -> None:
    assert pricing.ready(60), "genai-prices data did not load"


def stored_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT id, cost_usd, attributes FROM requests ORDER BY id")]


def llmlens(capsys: Any, *argv: str) -> str:
    code = llmlens_main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    return out


# ------------------------------------------------------------------------ a relay call, end to end


def test_a_relay_call_gets_the_makers_price_marked_inferred(
    otel: Any, instrument: Any, client: Any, tmp_path: Path, capsys: Any
) -> None:
    db = tmp_path / "relay.db"
    instrument(db_path=str(db))  # no provider map: the fake server is a relay llmlens does not know
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-scenario": "cached=5,reasoning=3"}
    )
    usage = completion.usage
    span = otel.span()
    attributes = span.attributes
    assert attributes[semconv.PROVIDER_NAME] == "openai_compatible"

    # priced at OpenAI's price for gpt-4o-mini (its maker), the cached tokens at the cache price
    ours = TokenUsage(usage.prompt_tokens, usage.completion_tokens,
                      usage.prompt_tokens_details.cached_tokens, 0,
                      usage.completion_tokens_details.reasoning_tokens)  # fmt: skip
    expected = genai_prices(ours, "gpt-4o-mini", "openai")
    assert expected > 0
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-12)
    assert attributes[semconv.USAGE_COST_CURRENCY] == "USD"
    assert attributes[semconv.USAGE_COST_SOURCE] == pricing.COST_SOURCE_INFERRED == "inferred_from_model"
    import genai_prices as gp

    price_source = f"genai-prices {gp.__version__} (openai/gpt-4o-mini)"  # the price it used
    assert attributes[semconv.LLMLENS_COST_PRICE_SOURCE] == price_source
    # the cost metric counts it, with the call's usual attributes
    metrics = otel.metrics()
    (point,) = metrics[semconv.METRIC_LLMLENS_COST]
    assert point.value == pytest.approx(expected, rel=1e-12)
    assert point.attributes[semconv.PROVIDER_NAME] == "openai_compatible"
    assert semconv.METRIC_LLMLENS_COST_UNPRICED not in metrics

    # the store keeps the amount and the source; `llmlens show` and `llmlens log` say "inferred"
    store = attached_store(otel.tracer_provider)
    assert store is not None and store.force_flush(10_000)
    (row,) = stored_rows(db)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert json.loads(row["attributes"])[semconv.USAGE_COST_SOURCE] == "inferred_from_model"
    shown = llmlens(capsys, "show", str(row["id"]), "--db", str(db))
    (cost_line,) = [line for line in shown.splitlines() if line.startswith("cost ")]
    assert "inferred from the model name" in cost_line and "(openai/gpt-4o-mini)" in cost_line
    logged = llmlens(capsys, "log", "--db", str(db))
    (log_row,) = [line for line in logged.splitlines() if line.lstrip().startswith(str(row["id"]))]
    assert "inferred" in log_row

    # llmlens ui: the request log's cost cell and the request's page
    with UvicornServer(create_app(str(db))) as ui, httpx.Client(base_url=ui.url, timeout=30) as web:
        log_page = web.get("/requests").text
        detail_page = web.get(f"/requests/{row['id']}").text
    assert " inferred</td>" in log_page
    assert "inferred from the model name" in detail_page


def test_an_ambiguous_model_is_unpriced_with_a_reason(
    otel: Any, instrument: Any, client: Any, tmp_path: Path, capsys: Any
) -> None:
    """`qwen3-32b`: no maker claims it and only one host lists it, so what the relay's host charges is
    unknown: no cost, never $0, counted under `ambiguous_model`."""
    db = tmp_path / "ambiguous.db"
    instrument(db_path=str(db))
    client.chat.completions.create(model="qwen3-32b", messages=MESSAGES)
    attributes = otel.span().attributes
    assert not {semconv.USAGE_COST_AMOUNT, semconv.USAGE_COST_SOURCE} & set(attributes)
    metrics = otel.metrics()
    assert semconv.METRIC_LLMLENS_COST not in metrics
    (point,) = metrics[semconv.METRIC_LLMLENS_COST_UNPRICED]
    assert point.attributes[semconv.LLMLENS_COST_UNPRICED_REASON] == pricing.AMBIGUOUS_MODEL
    store = attached_store(otel.tracer_provider)
    assert store is not None and store.force_flush(10_000)
    (row,) = stored_rows(db)
    assert row["cost_usd"] is None
    shown = llmlens(capsys, "show", str(row["id"]), "--db", str(db))
    assert [line.split(None, 1) for line in shown.splitlines() if line.startswith("cost ")] == [
        ["cost", "not priced"]
    ]


def test_an_override_beats_the_inferred_price(otel: Any, instrument: Any, client: Any) -> None:
    instrument(prices={"openai_compatible/gpt-4o-mini": {"input": 1000, "output": 1000}})
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attributes = otel.span().attributes
    assert attributes[semconv.USAGE_COST_AMOUNT] == pytest.approx(completion.usage.total_tokens * 1000 / 1e6)
    assert attributes[semconv.USAGE_COST_SOURCE] == "local"
    assert attributes[semconv.LLMLENS_COST_PRICE_SOURCE] == "override"


# ------------------------------------------------------------------------------- the rule, by name


def makers(name: str) -> list[str]:
    """The providers whose genai-prices `model_match` claims `name` (read from the data, not our code)."""
    from genai_prices.data import providers

    return [p.id for p in providers if p.model_match is not None and p.model_match.is_match(name.lower())]


def test_every_model_with_one_maker_is_priced_at_the_makers_price() -> None:
    """The rule applied to every model id of every maker in the data: a name exactly one maker claims,
    and that maker lists, is priced as a call to the maker is (genai-prices' calc_price for it)."""
    from genai_prices.data import providers

    book = PriceBook()
    compared = 0
    for maker in providers:
        if maker.model_match is None:
            continue
        for model in maker.models:
            if makers(model.id) != [maker.id] or maker.find_model(model.id) is not model:
                continue  # claimed by several makers, or the id matches an earlier entry of the list
            cost = book.price_call("openai_compatible", model.id, model.id, USAGE)
            if cost is None or cost.unpriced_reason == pricing.UNSUPPORTED_UNITS:
                continue
            assert cost.source == "inferred_from_model", (maker.id, model.id, cost)
            assert cost.price_source.endswith(f"({maker.id}/{model.id})"), cost.price_source  # type: ignore[union-attr]
            assert cost.amount == pytest.approx(genai_prices(USAGE, model.id, maker.id), rel=1e-9, abs=1e-12)
            compared += 1
    assert compared > 200


@pytest.mark.parametrize(
    ("name", "priced_as"),
    [
        ("gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),  # a dated name, by the maker's match rules
        ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("gemini-2.5-pro", "google/gemini-2.5-pro"),
        ("mistral-large-latest", "mistral/mistral-large"),
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),  # LiteLLM's provider/model: that provider's list
        ("anthropic/claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku-latest"),
    ],
)
def test_names_priced_by_their_maker_or_prefix(name: str, priced_as: str) -> None:
    cost = PriceBook().price_call("openai_compatible", name, name, USAGE)
    assert cost is not None and cost.source == "inferred_from_model"
    assert cost.price_source.endswith(f"({priced_as})")  # type: ignore[union-attr]
    provider, model = priced_as.split("/")
    assert cost.amount == pytest.approx(genai_prices(USAGE, model, provider), rel=1e-12)


def test_a_name_no_maker_claims_is_priced_only_when_the_lists_agree() -> None:
    from genai_prices.data import providers

    def listed(name: str) -> dict[str, float]:
        return {p.id: genai_prices(USAGE, name, p.id) for p in providers if p.find_model(name) is not None}

    book = PriceBook()
    # text-embedding-3-small: no maker claims it; OpenAI and Azure list it at the same price
    prices = listed("text-embedding-3-small")
    assert makers("text-embedding-3-small") == [] and len(prices) >= 2 and len(set(prices.values())) == 1
    embedding = book.price_call("openai_compatible", "text-embedding-3-small", None, TokenUsage(1000))
    assert embedding is not None and embedding.source == "inferred_from_model"
    # llama-3.3-70b-versatile: only Groq lists it, which says nothing of the relay's host
    assert makers("llama-3.3-70b-versatile") == [] and len(listed("llama-3.3-70b-versatile")) == 1
    # z-ai/glm-5: hosts that list it price it differently (and `z-ai` is no genai-prices provider id)
    hosted = listed("z-ai/glm-5")
    assert makers("z-ai/glm-5") == [] and not any(p.id == "z-ai" for p in providers)
    assert len(hosted) >= 2 and len(set(hosted.values())) > 1, hosted
    for name in ("llama-3.3-70b-versatile", "z-ai/glm-5", "qwen3-32b"):
        cost = book.price_call("openai_compatible", name, name, USAGE)
        assert cost == pricing.CallCost.unpriced(pricing.AMBIGUOUS_MODEL), name
    # in no list at all: unknown_model, and an override prices it (not inferred)
    assert book.price_call("openai_compatible", "my-llama", None, USAGE) == pricing.CallCost.unpriced(
        pricing.UNKNOWN_MODEL
    )
    priced = PriceBook({"openai_compatible/my-*": TokenPrices(1, 2)}).price_call(
        "openai_compatible", "my-llama", None, USAGE
    )
    assert priced is not None and (priced.source, priced.price_source) == ("local", "override")


def test_the_request_model_is_tried_after_the_response_model() -> None:
    cost = PriceBook().price_call("openai_compatible", "my-deployment", "gpt-4o-mini", USAGE)
    assert cost is not None and cost.price_source.endswith("(openai/gpt-4o-mini)")  # type: ignore[union-attr]


def test_a_proxied_request_to_a_relay_keeps_the_inferred_mark(otel: Any) -> None:
    """The proxy's SERVER span sums its upstream legs' costs: legs to a relay make that sum inferred too."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace import SpanKind

    from llmlens.core.context import PROXY_REQUEST_KEY
    from llmlens.core.invocation import Invocation
    from llmlens.core.server_telemetry import ServerTelemetry
    from llmlens.core.telemetry import Telemetry
    from llmlens.settings import Settings

    telemetry = Telemetry(Settings(store=False), otel.tracer_provider, otel.meter_provider)
    request = ServerTelemetry.of(telemetry).start_request("chat", "openai", "my-alias")
    token = otel_context.attach(otel_context.set_value(PROXY_REQUEST_KEY, request))
    try:
        leg = Invocation(telemetry, "chat", "openai_compatible", "gpt-4o-mini", "llm.internal", 443)
        telemetry.start(leg)
        leg.input_tokens, leg.output_tokens = 1000, 100
        leg.finish()
    finally:
        otel_context.detach(token)
    request.finish()
    assert leg.cost is not None and leg.cost.source == "inferred_from_model"
    assert request.cost is not None and request.cost.source == "inferred_from_model"
    (server,) = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    assert server.attributes[semconv.USAGE_COST_SOURCE] == "inferred_from_model"
    assert server.attributes[semconv.USAGE_COST_AMOUNT] == leg.cost.amount
