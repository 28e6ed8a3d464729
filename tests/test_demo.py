"""`llmlens demo` end to end: the console script, a real fake server, the real openai SDK, the table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmlens.demo.workload import ANTHROPIC_STEPS, GOOGLE_STEPS, workload_steps
from test_openai_compat import STREAM_BREAK_ERROR_TYPE

LLMLENS = Path(sys.executable).with_name("llmlens")
STEPS = workload_steps()  # the Anthropic steps run when the anthropic SDK is installed
CLAUDE = ANTHROPIC_STEPS[0] in STEPS
GEMINI = GOOGLE_STEPS[0] in STEPS  # when google-genai is installed


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [str(LLMLENS), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_demo_runs_and_prints_one_row_per_call() -> None:
    result = _run("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "fake OpenAI-compatible provider on http://127.0.0.1:" in out
    assert f"{len(STEPS)} spans recorded for {len(STEPS)} calls." in out
    table = out.split("\n\n")
    spans = next(block for block in table if block.startswith("operation"))
    rows = spans.splitlines()[2:]
    assert len(rows) == len(STEPS)
    # The workload's interesting cases each show up with the status llmlens gave them.
    assert sum("ERROR openai.RateLimitError" in r for r in rows) == 1
    # openai.APIConnectionError from openai 3, httpx.RemoteProtocolError from openai 2.
    assert sum(f"ERROR {STREAM_BREAK_ERROR_TYPE}" in r for r in rows) == 1
    assert sum("UNSET (closed)" in r for r in rows) == 1
    assert sum("tool_call" in r for r in rows) == (3 if CLAUDE else 2)
    if CLAUDE:
        claude = [r for r in rows if " anthropic " in r]
        assert len(claude) == len(ANTHROPIC_STEPS)
        assert sum("cached 300 reasoning 12" in r for r in claude) == 1
        assert sum("ERROR overloaded_error" in r for r in claude) == 1
    if GEMINI:
        gemini = [r for r in rows if " gcp.gemini " in r]
        assert len(gemini) == len(GOOGLE_STEPS)
        assert sum("cached 16 reasoning 48" in r for r in gemini) == 1
    assert sum(r.startswith("embeddings") for r in rows) == 1
    assert sum(" responses " in r for r in rows) == 2
    assert sum("cached 24 reasoning 40" in r for r in rows) == 1
    metrics = next(block for block in table if block.startswith("metric"))
    for name in (
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
    ):
        assert name in metrics
    duration_row = next(line for line in metrics.splitlines() if "operation.duration" in line)
    assert duration_row.split()[2] == str(len(STEPS))


def test_demo_help_explains_itself() -> None:
    result = _run("demo", "--help")
    assert result.returncode == 0
    assert "fake OpenAI-compatible server" in result.stdout


def test_demo_records_into_the_store_and_prints_stats_and_log(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "demo.db"
    result = _run("demo", "--db", str(db))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"recorded into the local store {db}" in out
    stats = out.split("$ llmlens stats", 1)[1].split("$ llmlens log", 1)[0]
    assert f"requests       {len(STEPS)}" in stats
    log_rows = [line for line in out.split("$ llmlens log", 1)[1].splitlines() if line[:3].strip().isdigit()]
    assert len(log_rows) == 8
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*), sum(is_error), count(cost_usd) FROM requests").fetchone()
    assert rows[0] == len(STEPS)
    # the rate-limited call and the broken stream (and Anthropic's error event)
    assert rows[1] == (3 if CLAUDE else 2)
    assert rows[2] > 0  # the fake server stands in for OpenAI: its calls are priced
    # One profile armed, kept for a gpt-4o-mini call of at least PROFILE_MIN_MS, linked to its row, and
    # the demo prints its summary and the command that opens it.
    from llmlens.demo.workload import PROFILE_MIN_MS

    assert "armed a profile: the next gpt-4o-mini call" in out
    with sqlite3.connect(db) as conn:
        profiles = conn.execute(
            "SELECT p.id, p.duration_ms, r.request_model FROM profiles p JOIN requests r"
            " ON CAST(p.id AS TEXT) = r.profile_id"
        ).fetchall()
    ((profile_id, duration_ms, model),) = profiles
    assert model == "gpt-4o-mini" and duration_ms >= PROFILE_MIN_MS
    assert f"armed profile {profile_id}: " in out
    assert f"open it: llmlens profile show {profile_id} --db {db}" in out
    shown = _run("profile", "show", str(profile_id), "--db", str(db))
    assert shown.returncode == 0 and "Samples:" in shown.stdout


def test_a_store_or_port_the_demo_cannot_use_fails_before_any_call(tmp_path: Path) -> None:
    import socket

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = str(taken.getsockname()[1])
        for args, says in (
            (["--db", str(tmp_path)], "is a directory, not an llmlens store"),
            (["--db", str(text)], "is not an llmlens store"),
            (
                ["--db", str(tmp_path / "fine.db"), "--ui", "--port", port],
                f"cannot listen on 127.0.0.1:{port}",
            ),
        ):
            result = _run("demo", *args)
            assert result.returncode == 2, result.stdout + result.stderr
            assert result.stdout == ""  # no call was made, nothing was printed
            assert result.stderr.startswith("llmlens: ") and says in result.stderr, result.stderr
    finally:
        taken.close()
    assert not (tmp_path / "ok.db").exists()
