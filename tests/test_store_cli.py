"""The store commands of the real `llmlens` console script, run in subprocesses on real store files."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llmlens.store import open_store, queries
from store_data import NS, Spec, generate, record, spec, unpriced

LLMLENS = str(Path(sys.executable).with_name("llmlens"))
NOW = time.time_ns()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMLENS_HEALTH_", "LLMLENS_STORE_"))}
    env.pop("LLMLENS_DB", None)
    env.update(extra)
    return env


def llmlens(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLMLENS, *args], capture_output=True, text=True, env=env or clean_env(), timeout=timeout, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmlens: ") and fragment in lines[0], result.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Spec]]:
    path = str(tmp_path_factory.mktemp("cli") / "store.db")
    specs = generate(150, start_ns=NOW - 7200 * NS, end_ns=NOW - 400 * NS)
    specs += generate(30, seed=8, start_ns=NOW - 290 * NS, end_ns=NOW - NS, shapes=False)
    return path, record(path, specs)


def test_log_table_json_and_pages(store: tuple[str, list[Spec]]) -> None:
    path, specs = store
    result = llmlens("log", "--db", path, "--limit", "7")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "time", "provider", "model"] and set(lines[1]) <= {"-", " "}
    assert [int(line.split()[0]) for line in lines[2:9]] == list(range(len(specs), len(specs) - 7, -1))
    assert "older: --cursor" in lines[-1]

    first = json.loads(llmlens("log", "--db", path, "--json", "--limit", "50").stdout)
    assert [r["span_id"] for r in first["rows"]] == [s.span_id for s in reversed(specs)][:50]
    second = json.loads(llmlens("log", "--db", path, "--json", "--cursor", str(first["next_cursor"])).stdout)
    assert [r["span_id"] for r in second["rows"]] == [s.span_id for s in reversed(specs)][50:100]
    # the global --db before the command, and $LLMLENS_DB, work too
    assert json.loads(llmlens("--db", path, "log", "--json").stdout) == first
    assert json.loads(llmlens("log", "--json", env=clean_env(LLMLENS_DB=path)).stdout) == first


def test_log_filters(store: tuple[str, list[Spec]]) -> None:
    path, specs = store
    filters = ["--provider", "openai", "--status", "error", "--since", "3h"]
    result = llmlens("log", "--db", path, "--json", "--limit", "1000", *filters)
    rows = json.loads(result.stdout)["rows"]
    expected = [s.span_id for s in reversed(specs) if s.provider == "openai" and s.is_error]
    assert [r["span_id"] for r in rows] == expected and expected
    result = llmlens("log", "--db", path, "--json", "--limit", "1000", "--model", "gpt-4o", "--stream")
    expected = [
        s.span_id for s in reversed(specs) if s.stream and "gpt-4o" in (s.request_model, s.response_model)
    ]
    assert [r["span_id"] for r in json.loads(result.stdout)["rows"]] == expected
    result = llmlens("log", "--db", path, "--json", "--error", "timed out", "--no-stream", "--key", "team-a")
    expected = [
        s.span_id
        for s in reversed(specs)
        if s.is_error
        and not s.stream
        and s.api_key_label == "team-a"
        and "timed out" in (s.error_message or "")
    ]
    assert [r["span_id"] for r in json.loads(result.stdout)["rows"]] == expected
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime((NOW - 600 * NS) / NS))
    result = llmlens("log", "--db", path, "--json", "--since", since, "--operation", "chat")
    expected = [s.span_id for s in reversed(specs)
                if s.start_ns >= (NOW - 600 * NS) // NS * NS and s.operation == "chat"]  # fmt: skip
    assert [r["span_id"] for r in json.loads(result.stdout)["rows"]] == expected
    trace = specs[10].trace_id
    rows = json.loads(llmlens("log", "--db", path, "--json", "--trace", trace).stdout)["rows"]
    assert [r["trace_id"] for r in rows] == [trace]
    nothing = llmlens("log", "--db", path, "--provider", "nobody")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "no requests match these filters"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["log", "--since", "5x"], "argument --since: invalid time '5x'"),
        (["log", "--limit", "0"], "argument --limit: invalid value '0'"),
        (["log", "--status", "failed"], "argument --status: invalid choice: 'failed'"),
        (["stats", "--by", "region"], "argument --by: invalid choice: 'region'"),
        (["stats", "--since=-1h"], "argument --since: invalid time '-1h'"),
        (["health", "--window", "five"], "argument --window: invalid duration 'five'"),
        (["export", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_bad_option_values_exit_2(store: tuple[str, list[Spec]], args: list[str], fragment: str) -> None:
    one_line_error(llmlens(*args, "--db", store[0]), fragment)  # one line: no usage text either


def test_a_bad_command_line_is_one_line_too() -> None:
    one_line_error(llmlens("log", "--bogus"), "unrecognized arguments: --bogus (see llmlens --help)")
    one_line_error(llmlens("show"), "the following arguments are required: ID (see llmlens show --help)")
    one_line_error(llmlens("log", "--limit"), "argument --limit: expected one argument")
    one_line_error(llmlens("bogus"), "argument COMMAND: invalid choice: 'bogus'")


# Every number, time and id a store command takes, with values that are out of range (beyond 64-bit
# nanoseconds or row ids, before 1970, after 2261), zero or negative, malformed, empty or non-ASCII.
_TIMES = ["99999999999d", "20000w", "2300-01-01T00:00", "0001-01-01T00:00", "9999-12-31T23:59",
          "1969-12-31T00:00Z", "1" * 400 + "s", "0s", "-1h", "٣h", ""]  # fmt: skip
_BAD_VALUES = [
    *((command, option, value) for command in ("log", "stats", "export") for option in ("--since", "--until")
      for value in _TIMES),
    *(("health", "--window", value) for value in
      ("99999999999d", "20000w", "10001d", "1" * 400 + "s", "0s", "0.0000000001s", "-5m", "5", "٣m", "")),
    *(("show", "ID", value) for value in
      ("99999999999999999999999999", "9223372036854775808", "0", "²", "١٢", "1_000", "", "x" * 32)),
    *(("log", "--cursor", value) for value in
      ("99999999999999999999999999", "9223372036854775808", "0", "-1", "abc", "1.5", "٣", "")),
    *(("log", "--limit", value) for value in
      ("0", "-1", "10001", "99999999999999999999999999", "1e3", "٣", "")),
    *(("log", "--trace", value) for value in ("xyz", "1" * 33, "")),
    *(("export", "--trace", value) for value in ("xyz",)),
]  # fmt: skip


@pytest.mark.parametrize(("command", "option", "value"), _BAD_VALUES)
def test_bad_numbers_times_and_ids_are_one_line_errors(
    store: tuple[str, list[Spec]], command: str, option: str, value: str
) -> None:
    given = ["--", value] if option == "ID" else [f"{option}={value}"]
    result = llmlens(command, "--db", store[0], *given)
    assert "Traceback" not in result.stdout + result.stderr
    one_line_error(result, f"argument {option}: invalid ")


def test_a_bad_time_says_what_is_accepted(store: tuple[str, list[Spec]]) -> None:
    result = llmlens("log", "--db", store[0], "--since", "0001-01-01T00:00")
    one_line_error(result, "argument --since: invalid time '0001-01-01T00:00'; use a duration ago (30s, 15m")
    assert "from 1970 to 2261" in result.stderr and "parse_when" not in result.stderr


def test_values_at_the_limits_still_work(store: tuple[str, list[Spec]]) -> None:
    path, specs = store
    everything = [s.span_id for s in reversed(specs)]
    for args in (["--since", "10000d"], ["--until", "2261-12-31T23:59Z"], ["--since", "1970-01-01T00:00Z"]):
        result = llmlens("log", "--db", path, "--json", "--limit", "10000", *args)
        assert [r["span_id"] for r in json.loads(result.stdout)["rows"]] == everything, (args, result.stderr)
    oldest = llmlens("log", "--db", path, "--json", "--cursor", str(2**63 - 1), "--limit", " 3 ")
    assert [r["span_id"] for r in json.loads(oldest.stdout)["rows"]] == everything[:3]
    assert llmlens("health", "--db", path, "--window", "10000d").returncode == 0
    assert llmlens("stats", "--db", path, "--since", "10000d").returncode == 0
    # an all-digit trace id is too big for a row id: looked up as a trace id
    one_line_error(llmlens("show", "--db", path, "1" * 32), f"no request '{'1' * 32}'")


def test_bad_values_found_after_parsing_are_one_line(store: tuple[str, list[Spec]]) -> None:
    path = store[0]
    one_line_error(llmlens("log", "--db", path, "--since", "1h", "--until", "2h"), "is not before until")
    one_line_error(llmlens("show", "--db", path, "999999"), "no request '999999'")
    bad = clean_env(LLMLENS_HEALTH_CRITICAL_ERROR_RATE="lots")
    one_line_error(llmlens("health", "--db", path, env=bad), "LLMLENS_HEALTH_CRITICAL_ERROR_RATE='lots'")
    bad = clean_env(LLMLENS_STORE_MAX_SUCCESS="-3")
    one_line_error(llmlens("prune", "--db", path, env=bad), "LLMLENS_STORE_MAX_SUCCESS='-3' is not valid")


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        ("health", "LLMLENS_HEALTH_WINDOW_S", "1e300"),
        ("health", "LLMLENS_HEALTH_WINDOW_S", "99999999999999999999999"),
        ("prune", "LLMLENS_STORE_MAX_AGE_DAYS", "1e300"),
        ("prune", "LLMLENS_STORE_MAX_AGE_DAYS", "99999999999999999999999"),
        ("prune", "LLMLENS_STORE_MAX_AGE_DAYS", "10001"),
        ("prune", "LLMLENS_STORE_MAX_SUCCESS", "9" * 400),
        ("prune", "LLMLENS_STORE_MAX_ERRORS", str(2**63)),
    ],
)
def test_environment_numbers_out_of_range_are_one_line_errors(
    tmp_path: Path, command: str, variable: str, value: str
) -> None:
    path = str(tmp_path / "env.db")
    record(path, generate(3, start_ns=NOW - 100 * NS, end_ns=NOW - 50 * NS, shapes=False))
    result = llmlens(command, "--db", path, env=clean_env(**{variable: value}))
    assert "Traceback" not in result.stderr
    one_line_error(result, f"{variable}=")
    assert "is not valid; accepted values: " in result.stderr


def test_files_that_are_not_stores(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    for command in (["log"], ["show", "1"], ["stats"], ["health"], ["prune"], ["export"], ["db", "info"]):
        one_line_error(llmlens(*command, "--db", str(missing)), f"no llmlens store at {missing}")
    assert not missing.exists()  # reading never creates a store
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    one_line_error(llmlens("log", "--db", str(foreign)), "SQLite file of another application")
    one_line_error(llmlens("prune", "--db", str(foreign)), "SQLite file of another application")
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some text that is long enough\n" * 20)
    one_line_error(llmlens("stats", "--db", str(text)), "is not an llmlens store")
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    one_line_error(llmlens("db", "info", "--db", str(empty)), "is an empty file")
    one_line_error(llmlens("log", "--db", str(tmp_path)), "is a directory")
    # The profile commands that read or change an arm, and the dashboard, refuse them too: SQLite would
    # make a store of an empty file.
    for command in (["profile", "status"], ["profile", "disarm"], ["profile", "list"], ["ui", "--port", "0"]):
        one_line_error(llmlens(*command, "--db", str(empty)), "is an empty file")
        one_line_error(llmlens(*command, "--db", str(tmp_path)), "is a directory")
    assert text.read_text().startswith("not a database") and empty.read_bytes() == b""


def test_arming_a_store_in_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-folder" / "llmlens.db"
    one_line_error(llmlens("profile", "arm", "--db", str(typo)), f"no folder {typo.parent}")
    assert not typo.parent.exists()
    fresh = tmp_path / "fresh.db"  # a store no app has written yet, in a folder that exists: armed
    result = llmlens("profile", "arm", "--next", "1", "--db", str(fresh))
    assert result.returncode == 0, result.stderr
    assert "armed (arm 1)" in result.stdout


def test_prune_fails_on_a_damaged_file_like_stats(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    record(str(path), generate(40, start_ns=NOW - 3600 * NS, end_ns=NOW - NS, shapes=False))
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'requests'").fetchone()
    conn.close()
    with open(path, "r+b") as file:  # the request rows' page: prune reads only the indexes to find nothing
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)
    damaged = path.read_bytes()
    one_line_error(llmlens("stats", "--db", str(path)), f"{path}: database disk image is malformed")
    one_line_error(llmlens("prune", "--db", str(path)), f"{path}: database disk image is malformed")
    assert path.read_bytes() == damaged  # and nothing was deleted


def test_show_draws_the_span_tree(store: tuple[str, list[Spec]]) -> None:
    path, specs = store
    agent = next(s for s in specs if s.shape == "agent")
    result = llmlens("show", "--db", path, f"{agent.trace_id}/{agent.span_id}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"trace {agent.trace_id}" in out and f"span {agent.span_id}" in out
    tree = out[out.index("span tree") :].splitlines()
    assert tree[0] == "span tree (3 spans recorded for this trace)"
    assert tree[3].startswith("agent.run ")
    assert tree[4].startswith(f"└─ {agent.name}  [request ") and "<- this request" in tree[4]
    assert tree[5].startswith("   └─ POST ")
    detail = json.loads(llmlens("show", "--db", path, "--json", agent.trace_id).stdout)
    assert detail["request"]["span_id"] == agent.span_id
    assert detail["tree"][0]["name"] == "agent.run"
    assert detail["tree"][0]["children"][0]["children"][0]["name"] == "POST"
    failed = next(s for s in specs if s.is_error)
    row_id = json.loads(llmlens("log", "--db", path, "--json", "--trace", failed.trace_id).stdout)["rows"][0][
        "id"
    ]
    out = llmlens("show", "--db", path, str(row_id)).stdout
    assert f"error {failed.error_type}" in out and (failed.stored_error_message or "")[:40] in out


def test_stats(store: tuple[str, list[Spec]]) -> None:
    path, specs = store
    result = llmlens("stats", "--db", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("llmlens stats: everything recorded\n")
    assert f"requests       {len(specs):,}  (streaming {sum(s.stream for s in specs)}" in result.stdout
    assert "exact (nearest rank" in result.stdout
    table = result.stdout[result.stdout.index("\nprovider ") + 1 :].splitlines()
    providers = {line.split()[0]: int(line.split()[1]) for line in table[2:]}
    assert providers == {p: sum(s.provider == p for s in specs) for p in {s.provider for s in specs}}

    data = json.loads(llmlens("stats", "--db", path, "--json", "--by", "model", "--since", "1h").stdout)
    window = data["window"]
    assert window["since"] and window["until"] is None
    since_minute = window["since_ns"] // (60 * NS)
    chosen = [s for s in specs if s.start_ns // (60 * NS) >= since_minute]
    assert data["totals"]["requests"] == len(chosen)
    priced = [s.cost for s in chosen if s.cost is not None]
    assert data["totals"]["cost_usd"] == (pytest.approx(sum(priced)) if priced else None)
    assert data["totals"]["priced_requests"] == len(priced)
    assert data["totals"]["unpriced_requests"] == sum(unpriced(s) for s in chosen)
    assert {g["key"]: g["requests"] for g in data["groups"]} == {
        m: sum(s.model == m for s in chosen) for m in {s.model for s in chosen}
    }
    assert data["percentiles"]["duration"]["exact"] is True
    assert set(data["percentiles"]["ttfc"]["groups"]) <= {s.model for s in chosen}
    empty = llmlens("stats", "--db", path, "--since", "2020-01-01T00:00", "--until", "2020-01-02T00:00")
    assert empty.returncode == 0 and "no requests in this window" in empty.stdout


def test_health(tmp_path: Path) -> None:
    path = str(tmp_path / "health.db")
    # Relative to now, not to the module's import time: the window is the last 300 s of the clock.
    t0 = time.time_ns() - 200 * NS
    failing = [spec(t0 + i * 10 * NS, status="error", provider="anthropic", error_type="RateLimitError",
                    error_message="slow down", response_model=None) for i in range(6)]  # fmt: skip
    record(path, [*failing, *(spec(t0 + i * 10 * NS) for i in range(10))])
    result = llmlens("health", "--db", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("llmlens health: critical")
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()}
    assert lines["anthropic"].split()[1:4] == ["critical", "6", "6"]
    assert lines["openai"].split()[1:4] == ["ok", "10", "0"]
    assert "anthropic: the errors now in the window age out at" in result.stdout
    assert llmlens("health", "--db", path, "--fail-on", "critical").returncode == 1
    data = json.loads(llmlens("health", "--db", path, "--json", "--window", "30s").stdout)
    assert data["window_s"] == 30 and data["providers"]["anthropic"]["requests"] == 0
    relaxed = clean_env(LLMLENS_HEALTH_MIN_REQUESTS="7")  # 6 requests are too few for critical now
    data = json.loads(llmlens("health", "--db", path, "--json", env=relaxed).stdout)
    assert data["status"] == "degraded" and data["thresholds"]["min_requests"] == 7


def test_prune_and_vacuum(tmp_path: Path) -> None:
    path = str(tmp_path / "prune.db")
    specs = record(path, generate(120, start_ns=NOW - 3600 * NS, end_ns=NOW - NS, shapes=False))
    ok = sum(not s.is_error for s in specs)
    errors = len(specs) - ok
    env = clean_env(LLMLENS_STORE_MAX_SUCCESS="40", LLMLENS_STORE_MAX_ERRORS="3")
    result = llmlens("prune", "--db", path, "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["deleted"] == {"success_over_cap": ok - 40, "errors_over_cap": errors - 3,
                                 "older_than_max_age": 0, "total": ok - 40 + errors - 3}  # fmt: skip
    assert report["retention"] == {"max_success": 40, "max_errors": 3, "max_age_days": 90.0}
    again = llmlens("prune", "--db", path, "--vacuum", env=env)
    assert again.returncode == 0, again.stderr
    assert "deleted 0 requests" in again.stdout and "vacuum: " in again.stdout
    conn = open_store(path, readonly=True)
    assert queries.storage_stats(conn).requests == 43 and queries.totals(conn).totals.requests == len(specs)
    conn.close()


def test_export_jsonl_and_csv(store: tuple[str, list[Spec]], tmp_path: Path) -> None:
    path, specs = store
    result = llmlens("export", "--db", path)
    assert result.returncode == 0 and result.stderr == ""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["span_id"] for r in rows] == [s.span_id for s in specs]  # oldest first
    assert rows[0]["attributes"] == {} or isinstance(rows[0]["attributes"], dict)
    out = tmp_path / "errors.csv"
    result = llmlens("export", "--db", path, "--format", "csv", "--status", "error", "--output", str(out))
    assert result.returncode == 0 and result.stdout == ""
    failed = [s for s in specs if s.is_error]
    assert result.stderr.strip() == f"exported {len(failed)} requests to {out}"
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["span_id"] for r in table] == [s.span_id for s in failed]
    assert table[0]["is_error"] == "1" and table[0]["error_type"] == failed[0].error_type
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(requests)")}
    assert columns <= set(table[0])
    assert not (tmp_path / "errors.csv.partial").exists()
    one_line_error(
        llmlens("export", "--db", path, "--output", str(tmp_path / "no" / "such" / "dir.csv")), "cannot write"
    )


def test_db_info(store: tuple[str, list[Spec]]) -> None:
    path, specs = store
    result = llmlens("db", "info", "--db", path)
    assert result.returncode == 0, result.stderr
    assert f"store      {path}" in result.stdout
    assert f"requests   {len(specs)}  ({sum(not s.is_error for s in specs)} successes" in result.stdout
    assert "retention  50,000 successes, 10,000 errors, 90 days" in result.stdout
    data = json.loads(llmlens("db", "info", "--db", path, "--json").stdout)
    assert data["requests"] == len(specs) and data["db_bytes"] == os.path.getsize(path)
    assert data["missing_indexes"] == [] and data["schema_version"] == data["schema_version_known"]
    assert llmlens("db", "--db", path).returncode == 2  # `db` needs its subcommand


def test_follow_prints_new_rows_until_ctrl_c(tmp_path: Path) -> None:
    path = str(tmp_path / "follow.db")
    first = record(path, generate(5, start_ns=NOW - 100 * NS, end_ns=NOW - 50 * NS, shapes=False))
    proc = subprocess.Popen(
        [LLMLENS, "log", "--db", path, "--json", "--follow", "--provider", "openai", "--limit", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )  # fmt: skip
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    initial = [s.span_id for s in first if s.provider == "openai"][-3:]
    deadline = time.monotonic() + 10
    while len(lines) < len(initial) and time.monotonic() < deadline:
        time.sleep(0.05)
    later = [
        spec(NOW - (40 - i) * NS, provider=p) for i, p in enumerate(["openai", "groq", "openai", "openai"])
    ]
    record(path, later[:2])
    time.sleep(0.7)
    record(path, later[2:])
    expected = initial + [s.span_id for s in later if s.provider == "openai"]
    while len(lines) < len(expected) and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    reader.join(timeout=5)
    assert [r["span_id"] for r in lines] == expected
    assert proc.stderr is not None and proc.stderr.read() == ""


def test_follow_table_mode(tmp_path: Path) -> None:
    path = str(tmp_path / "follow-table.db")
    record(path, generate(3, start_ns=NOW - 100 * NS, end_ns=NOW - 50 * NS, shapes=False))
    proc = subprocess.Popen(
        [LLMLENS, "log", "--db", path, "-f"], stdout=subprocess.PIPE, text=True, env=clean_env()
    )
    time.sleep(1.0)
    record(path, [spec(NOW - 10 * NS, provider="groq", request_model="llama-x", response_model="llama-x")])
    time.sleep(1.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "time", "provider"] and len(lines) == 2 + 3 + 1
    assert lines[-1].split()[0] == "4" and "llama-x" in lines[-1]


@pytest.mark.parametrize("command", ["log", "show", "stats", "health", "prune", "export", "db"])
def test_every_command_has_help(command: str) -> None:
    result = llmlens(command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert f"usage: llmlens {command}" in result.stdout
    assert command == "db" or "--db PATH" in result.stdout
    assert len(result.stdout.splitlines()) > 6
    assert command in llmlens("--help").stdout


def test_db_info_help_and_the_other_commands_still_work() -> None:
    assert "sizes, row counts" in llmlens("db", "info", "--help").stdout
    assert llmlens("version").stdout.strip()
    assert llmlens("config").returncode == 0
    assert llmlens().returncode == 0 and "log" in llmlens().stdout


def test_json_output_is_only_json(store: tuple[str, list[Spec]]) -> None:
    path = store[0]
    for command in (["log"], ["show", "1"], ["stats"], ["health"], ["db", "info"]):
        result = llmlens(*command, "--db", path, "--json")
        assert result.returncode == 0 and result.stderr == "", (command, result.stderr)
        json.loads(result.stdout)


def test_an_older_store_is_migrated_once_then_read(tmp_path: Path) -> None:
    from llmlens.store.schema import SCHEMA_VERSION, migrate

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=1)
    conn.close()
    result = llmlens("db", "info", "--db", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema_version"] == SCHEMA_VERSION


def test_a_store_variable_naming_a_directory_is_one_line(tmp_path: Path) -> None:
    for command in (["log"], ["stats"], ["profile", "status"], ["ui", "--port", "0"], ["config"]):
        result = subprocess.run([LLMLENS, *command], capture_output=True, text=True, timeout=60, check=False,
                                env={**os.environ, "LLMLENS_DB": str(tmp_path)})  # fmt: skip
        one_line_error(result, f"LLMLENS_DB={str(tmp_path)!r} is not valid; accepted values: a file path")
