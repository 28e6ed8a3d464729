"""The Grafana dashboard of collector-config/ against a real Prometheus scraping a real llmlens workload.

For each metric-name setting (`OTEL_SEMCONV_STABILITY_OPT_IN` unset, `gen_ai_latest_experimental`,
`gen_ai_latest_experimental/dup`), tests/dashboard_app.py runs in its own process (the setting is read
when the instruments are made) and serves llmlens's Prometheus endpoint; one `prometheus` binary
scrapes the three every second, each as its own job. The workload runs twice (the first round makes
every series exist, so the second shows up in rate() and increase()); then PromQL over Prometheus's
HTTP API must return the token, cost, call and latency series with that workload's values, every
query of the dashboard (its template variables substituted, `$job` by the setting's job) must return
data, and under /dup, where both generations of names are emitted, every query must give what the
newest names alone give: nothing counted twice.

The provisioning files are checked too: the dashboard provider loads the directory the compose stack
mounts, which holds the dashboard, the provisioned datasource is the one the dashboard uses, and the
dashboard is what collector-config/grafana/build_dashboard.py writes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboard_app import CHATS
from price_reference import genai_prices_total

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "collector-config"
GRAFANA = CONFIG / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "llmlens.json"
APP = Path(__file__).resolve().parent / "dashboard_app.py"

DEFAULT, LATEST, DUP = "", "gen_ai_latest_experimental", "gen_ai_latest_experimental/dup"
JOBS = {DEFAULT: "default-names", LATEST: "latest-names", DUP: "dup-names"}  # Prometheus job per setting
ROUNDS = 2

# One round of tests/dashboard_app.py, all models together: CHATS chats with the scenario's cache and
# reasoning tokens (4 in, 8 + 3 reasoning out each), a stream (4 in, 8 out), a call to an unpriced
# model (4 in, 8 out) and a proxied stream (4 in, 8 out, counted by the proxy's SERVER side); the
# failed call has no usage.
TOKENS = {
    "input": 4 * CHATS + 4 + 4 + 4,
    "output": 11 * CHATS + 8 + 8 + 8,
    "cache_read": 2 * CHATS,
    "cache_write": 1 * CHATS,
    "reasoning": 3 * CHATS,
}
NEWEST_TOKEN_COUNTERS = {
    "input": "gen_ai_client_inference_usage_input_tokens_total",
    "output": "gen_ai_client_inference_usage_output_tokens_total",
    "cache_read": "gen_ai_client_inference_usage_cache_read_input_tokens_total",
    "cache_write": "gen_ai_client_inference_usage_cache_write_input_tokens_total",
    "reasoning": "gen_ai_client_inference_usage_reasoning_output_tokens_total",
}


def _openai_price(input_tokens: int, cached: int, output_tokens: int) -> float:
    """What genai-prices (the data llmlens prices from) charges for a gpt-4o-mini call: the expected
    values come from the price data, not from numbers typed here."""
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_tokens": cached,
             "cache_creation_tokens": 0, "reasoning_tokens": 0}  # fmt: skip
    return genai_prices_total(usage, "gpt-4o-mini", "openai")


# A chat of the scenario (4 in of which 2 cached, 11 out), the stream and the proxied stream (4 in, 8 out
# each).
CHAT_COST = _openai_price(4, 2, 11)
STREAM_COST = _openai_price(4, 0, 8)
COST = CHATS * CHAT_COST + 2 * STREAM_COST
CALLS = CHATS + 3  # chats, the stream, the failed call, the unpriced call (the proxy's upstream is not one)

# Template variables as Grafana substitutes them for a scrape every second, with "All" models.
VARIABLES = {"$__rate_interval": "15s", "$__range": "5m", "$model": ".*"}
# Prefixes of the two generations of names, to evaluate a query on one generation alone.
NEWEST = ("gen_ai_client_inference_", "gen_ai_client_embeddings_")
TODAYS = ("gen_ai_client_operation_", "gen_ai_client_token_usage", "llmlens_usage_tokens_total")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def targets() -> list[tuple[str, str]]:
    """(panel title / refId, expression) of every query of the dashboard."""
    found = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            found.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return found


def substitute(expr: str, job: str) -> str:
    for name, value in sorted({**VARIABLES, "$job": job}.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a template variable is left: {expr}"
    return expr


def only(expr: str, kept: tuple[str, ...], dropped: tuple[str, ...]) -> str:
    """`expr` with the names of one generation made to match nothing."""
    for prefix in dropped:
        expr = expr.replace(prefix, "absent_" + prefix)
    return expr


# --- the stack's provisioning ---------------------------------------------------------------------


def test_grafana_provisioning_loads_the_dashboard_from_the_mounted_directory() -> None:
    services = yaml.safe_load((CONFIG / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/llmlens.yml").read_text())["providers"]
    dashboards_dir = provider["options"]["path"]
    host_dir = next(host for host, container in mounts.items() if container == dashboards_dir)
    assert (CONFIG / host_dir / "llmlens.json").resolve() == DASHBOARD.resolve()
    assert mounts["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    assert mounts["./grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    prometheus = next(d for d in datasources["datasources"] if d["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090" and "prometheus" in services
    variable = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == prometheus["uid"]


def test_dashboard_file_is_what_its_build_script_writes() -> None:
    """The JSON is not edited by hand: collector-config/grafana/build_dashboard.py writes it."""
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text(encoding="utf-8") == module.render(), (
        "run python collector-config/grafana/build_dashboard.py"
    )


def test_dashboard_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


# --- a real Prometheus over a real workload -------------------------------------------------------


class Prometheus:
    """`prometheus` on 127.0.0.1 scraping each target (job name -> port) every second; `query()` over
    its HTTP API."""

    def __init__(self, tmp_path: Path, targets: dict[str, int]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("the `prometheus` binary is missing: apt-get install prometheus", pytrace=False)
        config = tmp_path / "prometheus.yml"
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            for job, port in targets.items()
        )
        config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n{jobs}")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp_path / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> dict[frozenset[tuple[str, str]], float]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("/api/v1/query", **params)
        if data["resultType"] == "scalar":
            return {frozenset(): float(data["result"][1])}
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}

    def value(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return next(iter(result.values()))

    def wait_until(self, expr: str, expected: float, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"prometheus exited: {self.log.read_text(errors='replace')[-3000:]}", pytrace=False
                )
            try:
                last = self.query(expr)
            except OSError as error:  # not listening yet
                last = error
            else:
                if len(last) == 1 and math.isclose(next(iter(last.values())), expected, rel_tol=1e-9):
                    return
            time.sleep(0.2)
        raise AssertionError(f"{expr} did not reach {expected} within {timeout:g} s (last: {last})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Workload:
    """tests/dashboard_app.py in its own process, with one metric-name setting."""

    def __init__(self, setting: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
        env.update(OTEL_SEMCONV_STABILITY_OPT_IN=setting, LLMLENS_STORE="false")
        # Chosen here so that Prometheus can start while the application is still importing.
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(APP), str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.rounds = 0

    def wait_until_serving(self) -> None:
        assert int(self._line("PORT")) == self.port

    def _line(self, word: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(word + " "):
            self.process.kill()
            _, stderr = self.process.communicate(timeout=10)
            pytest.fail(
                f"dashboard_app.py printed {line!r}, expected {word}; stderr:\n{stderr}", pytrace=False
            )
        return line.split()[1]

    def run_round(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.rounds += 1
        assert int(self._line("DONE")) == self.rounds

    def end_input(self) -> None:
        """The end of stdin: the application shuts down and exits."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def stop(self) -> None:
        self.end_input()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: Any) -> Iterator[Prometheus]:
    """One Prometheus that has scraped ROUNDS rounds of the workload under each metric-name setting."""
    workloads = {JOBS[setting]: Workload(setting) for setting in JOBS}
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), {j: w.port for j, w in workloads.items()})
    try:
        for workload in workloads.values():
            workload.wait_until_serving()
        # Every round adds COST; each round is scraped before the next, so rates see the last one.
        for number in range(1, ROUNDS + 1):
            for workload in workloads.values():
                workload.run_round()
            for job in workloads:
                prometheus.wait_until(f'sum(llmlens_cost_USD_total{{job="{job}"}})', number * COST)
        time.sleep(1.5)  # one more scrape: the last round's values are at least two samples old
        yield prometheus
    finally:
        for workload in workloads.values():
            workload.end_input()
        for workload in workloads.values():
            workload.stop()
        prometheus.stop()


@pytest.fixture(params=list(JOBS), ids=list(JOBS.values()))
def scraped(request: Any, stack: Prometheus) -> tuple[str, str, Prometheus]:
    """(setting, its job, the Prometheus)."""
    return request.param, JOBS[request.param], stack


def test_prometheus_holds_the_workload_values(scraped: tuple[str, str, Prometheus]) -> None:
    setting, job, prometheus = scraped
    todays, newest = setting in (DEFAULT, DUP), setting in (LATEST, DUP)
    j = f'job="{job}"'
    assert prometheus.value(f"sum(up{{{j}}})") == 1
    assert math.isclose(prometheus.value(f"sum(llmlens_cost_USD_total{{{j}}})"), ROUNDS * COST, rel_tol=1e-9)
    by_model = prometheus.query(f"sum by (gen_ai_request_model) (llmlens_cost_USD_total{{{j}}})")
    assert list(by_model) == [frozenset({("gen_ai_request_model", "gpt-4o-mini")})]  # the unpriced: none
    assert prometheus.value(f"sum(llmlens_cost_unpriced_total{{{j}}})") == ROUNDS
    assert prometheus.value(f"sum(gen_ai_server_request_duration_seconds_count{{{j}}})") == ROUNDS
    assert prometheus.value(f"sum(gen_ai_server_time_to_first_token_seconds_count{{{j}}})") == ROUNDS
    assert prometheus.query(f"sum(llmlens_server_active_requests{{{j}}})") == {frozenset(): 0.0}
    families = []
    if todays:
        families.append(("gen_ai_client_operation", "llmlens_usage_tokens_total"))
    if newest:
        families.append(("gen_ai_client_inference", None))
    for prefix, token_counter in families:
        assert prometheus.value(f"sum({prefix}_duration_seconds_count{{{j}}})") == ROUNDS * CALLS
        assert prometheus.value(f'sum({prefix}_duration_seconds_count{{{j}, error_type!=""}})') == ROUNDS
        assert prometheus.value(f"sum({prefix}_time_to_first_chunk_seconds_count{{{j}}})") == ROUNDS
        assert prometheus.value(f"sum({prefix}_time_per_output_chunk_seconds_count{{{j}}})") > 0
        buckets = f"{prefix}_duration_seconds_bucket{{{j}}}"
        assert 0 < prometheus.value(f"histogram_quantile(0.95, sum by (le) ({buckets}))") < 10
        for token_type, total in TOKENS.items():
            if token_counter is None:
                expr = f"sum({NEWEST_TOKEN_COUNTERS[token_type]}{{{j}}})"
            else:
                expr = f'sum({token_counter}{{{j}, gen_ai_token_type="{token_type}"}})'
            assert prometheus.value(expr) == ROUNDS * total, expr
    # The names of the other generation are absent unless /dup asks for both.
    assert bool(prometheus.query(f"gen_ai_client_operation_duration_seconds_count{{{j}}}")) == todays
    assert bool(prometheus.query(f"gen_ai_client_inference_duration_seconds_count{{{j}}}")) == newest


def test_every_dashboard_query_returns_data_and_nothing_counts_twice(
    scraped: tuple[str, str, Prometheus],
) -> None:
    setting, job, prometheus = scraped
    at = time.time()
    for name, expr in targets():
        query = substitute(expr, job)
        result = prometheus.query(query, at)
        assert result, f"{name} returned no data under OTEL_SEMCONV_STABILITY_OPT_IN={setting!r}:\n{query}"
        finite = [v for v in result.values() if math.isfinite(v)]
        assert finite, f"{name} returned only NaN/Inf under {setting!r}: {result}\n{query}"
        if setting == DUP:
            newest_only = prometheus.query(only(query, NEWEST, TODAYS), at)
            assert result == newest_only, f"{name} counts both generations of names under /dup:\n{query}"
            assert prometheus.query(only(query, TODAYS, NEWEST), at), f"{name}: no data from today's names"
    # The template variables' own queries find the workload's job and models.
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        definition = variable["query"]["query"]
        selector, label = definition.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        values = prometheus.api(f"/api/v1/label/{label}/values", **{"match[]": selector})
        expected = {"job": job, "gen_ai_request_model": "gpt-4o-mini"}[label]
        assert expected in values, (variable["name"], values)
