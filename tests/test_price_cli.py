"""`llmlens price MODEL`: the real command in its own process; genai-prices' `calc_price` is the witness
for every total, and each printed line is checked to be its count times its rate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from price_reference import genai_prices_total

ENV = {k: v for k, v in os.environ.items() if not k.startswith("LLMLENS_")}


def llmlens(
    *args: str, env: dict[str, str] | None = None, python: str = ""
) -> subprocess.CompletedProcess[str]:
    """`llmlens ARGS` (through `python -c`, so a test can first hide genai-prices with `python`)."""
    code = f"{python}\nimport sys\nfrom llmlens.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**ENV, **(env or {})})  # fmt: skip


def priced(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = llmlens("price", *args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def assert_lines_add_up(report: dict[str, Any]) -> None:
    for line in report["lines"]:
        assert line["usd"] == pytest.approx(line["tokens"] * line["usd_per_million"] / 1e6, rel=1e-12)
    assert sum(line["usd"] for line in report["lines"]) == pytest.approx(report["total_usd"], rel=1e-12)


def test_a_model_without_a_provider_is_priced_as_its_makers() -> None:
    report = priced("gpt-4o-mini-2024-07-18")
    assert (report["provider"], report["price_entry"]) == ("openai", "openai/gpt-4o-mini")
    assert report["matched"] == "genai-prices' name rules"
    assert report["cost_source"] == "local"
    import genai_prices

    assert report["price_source"] == f"genai-prices {genai_prices.__version__}"
    # no counts: a million of each, so the lines show the prices per million
    assert report["usage"]["input_tokens"] == report["usage"]["output_tokens"] == 1_000_000
    assert report["total_usd"] == pytest.approx(genai_prices_total(report["usage"], "gpt-4o-mini", "openai"))
    assert_lines_add_up(report)


def test_cached_cache_write_and_reasoning_past_the_long_context_tier() -> None:
    args = ["claude-sonnet-4-5-20250929", "--provider", "anthropic", "--input", "250000"]
    args += ["--cached", "100000"]
    args += ["--cache-write", "10000", "--output", "2000", "--reasoning", "500"]
    report = priced(*args)
    assert report["tier_applied"] == 200_000
    assert [t["above_input_tokens"] for t in report["tiers"]] == [200_000]
    lines = {line["kind"]: line for line in report["lines"]}
    assert {k: lines[k]["tokens"] for k in lines} == {
        "input": 140_000, "cache_read": 100_000, "cache_write": 10_000, "output": 1500, "reasoning": 500,
    }  # fmt: skip
    assert lines["input"]["usd_per_million"] == report["tiers"][0]["input"]  # the tier's rate, not the base
    assert report["total_usd"] == pytest.approx(
        genai_prices_total(report["usage"], "claude-sonnet-4-5", "anthropic"), rel=1e-12
    )
    assert_lines_add_up(report)

    text = llmlens("price", *args)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "price entry  anthropic/claude-sonnet-4-5" in out
    assert "above 200,000:" in out and "<- applies" in out
    assert "input 250,000 > 200,000: every token pays that tier's prices" in out
    (total,) = [line for line in out.splitlines() if line.startswith("total")]
    assert total.split()[-2] == f"{report['total_usd']:.8f}"


def test_a_relay_shows_the_inferred_price() -> None:
    report = priced("gpt-4o-mini", "--provider", "openai_compatible", "--input", "1000", "--cached", "400",
                    "--output", "200")  # fmt: skip
    assert report["cost_source"] == "inferred_from_model"
    assert report["price_source"].endswith("(openai/gpt-4o-mini)")
    assert "inferred from the model name" in report["matched"]
    # 600 x 0.15 + 400 x 0.075 + 200 x 0.6 per million: 0.00024, if the data's prices still are those
    assert report["total_usd"] == pytest.approx(genai_prices_total(report["usage"], "gpt-4o-mini", "openai"))


def test_overrides_from_the_variable_and_from_prices(tmp_path: Path) -> None:
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"openai/gpt-4o*": {"input": 1, "output": 2, "cache_read": 0.5}}))
    report = priced("gpt-4o-mini", "--provider", "openai", "--input", "1000000", "--cached", "1000000",
                    env={"LLMLENS_PRICES": str(table)})  # fmt: skip
    assert report["matched"] == "override 'openai/gpt-4o*'"
    assert report["from"] == f"your prices: LLMLENS_PRICES={table}"
    assert (report["price_source"], report["total_usd"]) == ("override", 0.5)
    toml = tmp_path / "prices.toml"
    toml.write_text('["openai_compatible/my-llama*"]\ninput = 0.2\noutput = 0.6\n')
    report = priced(
        "my-llama-70b", "--provider", "openai_compatible", "--prices", str(toml), "--output", "10"
    )
    assert report["from"] == f"your prices: --prices {toml}"
    assert report["total_usd"] == pytest.approx(6e-6)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["gpt-4o-mni", "--provider", "openai"],
            ["unknown_model", "close names: gpt-4o-mini", "LLMLENS_PRICES"],
        ),
        (["qwen3-32b", "--provider", "openai_compatible"], ["ambiguous_model", "--provider"]),
        (["tts-1", "--provider", "openai"], ["not by tokens"]),
        (["llama-3", "--provider", "vllm"], ["genai-prices has no provider 'vllm'"]),
        (["gpt-4o-mini", "--input", "10", "--cached", "20"], ["--cached 20", "cached ones included"]),
        (["gpt-4o-mini", "--output", "10", "--reasoning", "20"], ["--reasoning 20", "reasoning included"]),
        (["gpt-4o-mini", "--input", "ten"], ["'ten' is not valid"]),
        (["gpt-4o-mini", "--prices", "/no/such/file.json"], ["--prices='/no/such/file.json'", "cannot read"]),
    ],
)
def test_no_price_is_one_line_and_exit_status_2(args: list[str], fragments: list[str]) -> None:
    result = llmlens("price", *args)
    assert result.returncode == 2, result
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmlens: ")
    for fragment in fragments:
        assert fragment in line, line


def test_without_genai_prices_it_says_why_and_how_to_add_a_price(tmp_path: Path) -> None:
    """Python 3.10 (no genai-prices): one line that says why, and an override still prices."""
    hide = "import sys; sys.modules['genai_prices'] = None  # what Python 3.10 without it amounts to"
    result = llmlens("price", "gpt-4o-mini", python=hide)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "genai-prices is not installed (it needs Python 3.11+)" in line and "LLMLENS_PRICES" in line
    table = tmp_path / "p.json"
    table.write_text('{"openai/gpt-4o-mini": {"input": 0.15, "output": 0.6}}')
    result = llmlens("price", "gpt-4o-mini", "--provider", "openai", "--prices", str(table), python=hide)
    assert result.returncode == 0, result.stderr
    assert "override 'openai/gpt-4o-mini'" in result.stdout


def test_help_explains_every_option() -> None:
    result = llmlens("price", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    options = "--provider --input --output --cached --cache-write --reasoning --service-tier --prices --json"
    for option in [*options.split(), "cached ones included", "reasoning included"]:
        assert option in text, option
    assert "price" in llmlens("--help").stdout


def test_the_printed_total_is_what_a_span_gets() -> None:
    """The command prices through the PriceBook instrumentation uses (one code path)."""
    from llmlens import pricing

    assert pricing.ready(60)
    book = pricing.PriceBook()
    usage = pricing.TokenUsage(300_000, 1000, 100_000, 0, 400)
    cost = book.price_call("gcp.gemini", "gemini-2.5-pro", None, usage)
    report = priced("gemini-2.5-pro", "--provider", "gcp.gemini", "--input", "300000", "--cached", "100000",
                    "--output", "1000", "--reasoning", "400")  # fmt: skip
    assert cost is not None and report["total_usd"] == cost.amount
    assert Decimal(repr(report["total_usd"])) == Decimal(repr(cost.amount))


def test_the_command_does_not_touch_the_network() -> None:
    code = textwrap.dedent(
        """
        import socket
        def refuse(*a, **k):
            raise OSError("network is off in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        """
    )
    result = llmlens("price", "gpt-4o-mini", python=code)
    assert result.returncode == 0, result.stderr


def test_python_dash_m_llmlens_cli_reads_the_variable_too(tmp_path: Path) -> None:
    """`python -m llmlens.cli price ...` runs the module as __main__: what `price` needs of it is defined
    before its main() runs."""
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"openai/gpt-4o*": {"input": 1, "output": 2}}))
    result = subprocess.run(
        [sys.executable, "-m", "llmlens.cli", "price", "gpt-4o-mini", "--input", "1000000", "--json"],
        capture_output=True, text=True, timeout=120, env={**ENV, "LLMLENS_PRICES": str(table)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total_usd"] == 1.0


def test_a_local_runtime_has_no_price_entry_and_says_why() -> None:
    result = llmlens("price", "llama3", "--provider", "ollama")
    assert result.returncode == 0, result.stderr
    assert "price entry  none  (ollama is a local runtime: free)" in result.stdout, result.stdout
