"""Without price data, as on Python 3.10 where genai-prices does not install: every call is unpriced and
every view of cost says so, never $0; the user's own prices (LLMLENS_PRICES) still price calls.

An application runs in its own process in which `genai_prices` cannot be imported (a `sys.meta_path`
finder installed by a `sitecustomize` on its PYTHONPATH), against the real fake provider, writing a real
store. Then its spans and metrics, the store's rows, `llmlens log / stats / show`, the dashboard's JSON
API and overview page (a real uvicorn), and `llmlens demo` are read. scripts/check-py310 does the same
on a real Python 3.10.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmlens.demo.fake_server import FakeProvider
from llmlens.web import create_app
from proxies.server import UvicornServer

LLMLENS = str(Path(sys.executable).with_name("llmlens"))

BLOCKER = '''
import sys


class _NoGenaiPrices:
    """`import genai_prices` fails, as where the package is not installed (Python 3.10)."""

    def find_spec(self, name, path=None, target=None):
        if name == "genai_prices" or name.startswith("genai_prices."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoGenaiPrices())
'''

APP = """
import json
import sys

import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmlens
from llmlens import pricing

base_url, db, host = sys.argv[1:4]
spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
reader = InMemoryMetricReader()
instrumentor = llmlens.Instrumentor()
# The fake server stands in for OpenAI, whose models genai-prices would price.
instrumentor.instrument(
    tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader]),
    provider_map={host: "openai"}, store=True, db_path=db,
)
ready = pricing.ready(10)
client = openai.OpenAI(api_key="sk-test-not-a-key", base_url=base_url, max_retries=0)
messages = [{"role": "user", "content": "hello"}]
client.chat.completions.create(model="gpt-4o-mini", messages=messages)
stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
)
for _ in stream:
    pass
client.embeddings.create(model="text-embedding-3-small", input="hello")
try:  # a 429: it returned nothing, is not billed, and is neither priced nor unpriced
    client.chat.completions.create(model="fake-error-429", messages=messages)
except openai.RateLimitError:
    pass
metrics = {}
for resource in reader.get_metrics_data().resource_metrics:
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            if metric.name.startswith("llmlens.cost"):
                metrics[metric.name] = [
                    {"attributes": dict(p.attributes), "value": p.value} for p in metric.data.data_points
                ]
instrumentor.uninstrument()  # flushes the store
print(json.dumps({
    "ready": ready,
    "genai_prices_imported": "genai_prices" in sys.modules,
    "spans": [dict(s.attributes) for s in spans.get_finished_spans()],
    "metrics": metrics,
}))
"""

COST_ATTRIBUTES = ("gen_ai.usage.cost.amount", "gen_ai.usage.cost.currency", "gen_ai.usage.cost.source",
                   "llmlens.cost.price_source")  # fmt: skip


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the sitecustomize that keeps genai_prices out of every process started with it."""
    directory = tmp_path_factory.mktemp("no-genai-prices")
    (directory / "sitecustomize.py").write_text(BLOCKER)
    (directory / "unpriced_app.py").write_text(APP)
    return directory


def env_without_prices(blocked: Path, db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    env.update(PYTHONPATH=str(blocked), LLMLENS_DB=str(db), **extra)
    return env


def run_app(blocked: Path, db: Path, fake: FakeProvider, **env: str) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, str(blocked / "unpriced_app.py"), fake.base_url, str(db), f"127.0.0.1:{fake.port}"],
        capture_output=True, text=True, timeout=120, env=env_without_prices(blocked, db, **env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def llmlens(blocked: Path, db: Path, *args: str) -> str:
    done = subprocess.run(
        [LLMLENS, *args, "--db", str(db)], capture_output=True, text=True, timeout=60,
        env=env_without_prices(blocked, db),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def cost_line(output: str) -> str:
    """The value of the first `cost   ...` line of `llmlens stats` or `llmlens show`."""
    return next(line for line in output.splitlines() if line.startswith("cost ")).split(None, 1)[1].strip()


def store_rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT operation, request_model, cost_usd FROM requests ORDER BY id").fetchall()


def test_the_blocker_keeps_genai_prices_out(blocked: Path, tmp_path: Path) -> None:
    """The harness itself: in .venv genai_prices imports, under the blocker it does not."""
    probe = (
        "import importlib.util as u, sys\ntry:\n    import genai_prices\nexcept ImportError:\n    sys.exit(3)"
    )
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0
    blocked_run = subprocess.run(
        [sys.executable, "-c", probe], timeout=60, env=env_without_prices(blocked, tmp_path / "x.db")
    )
    assert blocked_run.returncode == 3


def test_every_view_says_unpriced_never_zero(blocked: Path, fake: FakeProvider, tmp_path: Path) -> None:
    db = tmp_path / "unpriced.db"
    app, stderr = run_app(blocked, db, fake)
    assert app["ready"] is False and not app["genai_prices_imported"]
    # one clear warning, naming what is missing and what still works
    assert stderr.count("genai-prices is not available") == 1, stderr
    assert "only price overrides apply" in stderr

    # spans: no cost attribute at all (a missing cost is not a cost of 0)
    assert len(app["spans"]) == 4
    for attributes in app["spans"]:
        assert attributes["gen_ai.provider.name"] == "openai"
        assert not [key for key in attributes if key in COST_ATTRIBUTES], attributes

    # metrics: nothing added to llmlens.cost; every call counted in llmlens.cost.unpriced, with the reason
    assert not [p for p in app["metrics"].get("llmlens.cost", []) if p["value"]]
    unpriced = app["metrics"]["llmlens.cost.unpriced"]
    assert sum(p["value"] for p in unpriced) == 3  # not the 429
    assert {p["attributes"]["llmlens.cost.unpriced_reason"] for p in unpriced} == {"prices_unavailable"}

    # the store: a NULL cost per row
    rows = store_rows(db)
    assert [cost for _, _, cost in rows] == [None] * 4

    # llmlens stats: "not priced", never $0, in the summary and per provider; JSON says null
    stats = llmlens(blocked, db, "stats")
    assert "$0" not in stats
    assert cost_line(stats) == "not priced"
    openai_row = next(line for line in stats.splitlines() if line.startswith("openai "))
    assert "not priced" in openai_row
    data = json.loads(llmlens(blocked, db, "stats", "--json"))
    assert data["totals"]["cost_usd"] is None
    assert (data["totals"]["priced_requests"], data["totals"]["unpriced_requests"]) == (0, 3)  # not the 429
    assert [g["cost_usd"] for g in data["groups"]] == [None]

    # llmlens log: no cost in the cost column; llmlens show: "not priced"
    log = llmlens(blocked, db, "log")
    assert "$" not in log
    assert [r["cost_usd"] for r in json.loads(llmlens(blocked, db, "log", "--json"))["rows"]] == [None] * 4
    assert cost_line(llmlens(blocked, db, "show", "1")) == "not priced"

    # the dashboard: its JSON API says null, its overview page "not priced"
    with UvicornServer(create_app(str(db))) as server, httpx.Client(base_url=server.url, timeout=30) as ui:
        overview = ui.get("/api/overview").json()
        assert overview["totals"]["totals"]["cost_usd"] is None
        assert overview["totals"]["totals"]["priced_requests"] == 0
        assert [m["cost_usd"] for m in overview["top_models"]] != []
        assert all(m["cost_usd"] is None for m in overview["top_models"])
        assert all(p["cost_usd"] is None for p in overview["series"]["points"])
        assert all(r["cost_usd"] is None for r in ui.get("/api/requests").json()["rows"])
        assert ui.get("/api/requests/1").json()["request"]["cost_usd"] is None
        page = ui.get("/").text
        kpi = page.split('id="kpi-cost"', 1)[1].split("</div>", 1)[0]
        assert "not priced" in kpi and "$0" not in kpi
        chart = page.split('id="chart-cost"', 1)[1].split("</figure>", 1)[0]
        assert "no request in this window was priced" in chart
        detail = ui.get("/requests/1").text
        assert "not priced" in detail and "$0" not in detail


def test_price_overrides_work_without_genai_prices(blocked: Path, fake: FakeProvider, tmp_path: Path) -> None:
    """LLMLENS_PRICES prices the calls it names; the others stay unpriced, and the sums say how many
    (not counting the 429, which is not billed)."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"openai/gpt-4o-mini*": {"input": 0.15, "output": 0.6}}))
    db = tmp_path / "overrides.db"
    app, _ = run_app(blocked, db, fake, LLMLENS_PRICES=str(prices))
    assert not app["genai_prices_imported"]

    chats = [a for a in app["spans"] if a["gen_ai.operation.name"] == "chat" and "error.type" not in a]
    embeddings = [a for a in app["spans"] if a["gen_ai.operation.name"] == "embeddings"]
    assert len(chats) == 2 and len(embeddings) == 1 and len(app["spans"]) == 4
    for attributes in chats:
        expected = (
            attributes["gen_ai.usage.input_tokens"] * 0.15 + attributes["gen_ai.usage.output_tokens"] * 0.6
        ) / 1e6
        assert attributes["gen_ai.usage.cost.amount"] == pytest.approx(expected)
        assert attributes["llmlens.cost.price_source"] == "override"
        assert attributes["gen_ai.usage.cost.currency"] == "USD"
    assert not [key for key in embeddings[0] if key in COST_ATTRIBUTES]

    total = sum(a["gen_ai.usage.cost.amount"] for a in chats)
    assert sum(p["value"] for p in app["metrics"]["llmlens.cost"]) == pytest.approx(total)
    unpriced = app["metrics"]["llmlens.cost.unpriced"]
    assert [(p["attributes"]["llmlens.cost.unpriced_reason"], p["value"]) for p in unpriced] == [
        ("prices_unavailable", 1)
    ]

    rows = store_rows(db)
    assert [cost is None for _, _, cost in rows] == [False, False, True, True]
    data = json.loads(llmlens(blocked, db, "stats", "--json"))
    assert data["totals"]["cost_usd"] == pytest.approx(total)
    assert (data["totals"]["priced_requests"], data["totals"]["unpriced_requests"]) == (2, 1)
    stats = llmlens(blocked, db, "stats")
    assert cost_line(stats).endswith("(1 not priced)")


def test_the_demo_reports_unpriced_calls(blocked: Path, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [LLMLENS, "demo", "--db", str(db)], capture_output=True, text=True, timeout=120,
        env=env_without_prices(blocked, db),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "$0" not in out
    metrics = next(block for block in out.split("\n\n") if block.startswith("metric"))
    names = [line.split()[0] for line in metrics.splitlines()[2:]]
    assert "llmlens.cost.unpriced" in names and "llmlens.cost" not in names
    stats = out.split("$ llmlens stats", 1)[1]
    assert cost_line(stats) == "not priced"
