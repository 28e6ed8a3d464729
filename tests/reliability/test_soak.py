"""Soak: the proxy middleware under many concurrent streaming clients, some of which hang up mid-stream.

The proxy (tests/reliability/soak_proxy.py: tests/proxies/openai_proxy.py under uvicorn, instrumented by
llmlens with the local store) runs as its own process in front of the fake provider (another process);
this process drives it with concurrent httpx clients. Each client loops: mostly streamed chat
completions (every fifth of them closed after three chunks: the client goes away mid-stream), some
plain ones, each with its own `x-request-id`. After a warm-up the proxy's traced memory is marked; after
the run it must not have grown by more than a small bound. Then:

- every SERVER span started has ended, once (and every upstream CLIENT span); their number is the
  number of LLM requests the proxy received;
- the OpenTelemetry context was empty again after every request, and is now; nothing is in flight;
- every request the clients made is in the store exactly once, by its request id.

CI runs a short version (`test_soak_short`: 20 clients, 3 s); scripts/test-slow runs `test_soak` (200
clients, 60 s after a 10 s warm-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
HI = [{"role": "user", "content": "Hi"}]


@dataclass
class Tally:
    ids: list[str] = field(default_factory=list)  # requests whose response began
    completed: int = 0
    disconnected: int = 0
    plain: int = 0
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def processes(db: Path) -> Iterator[str]:
    """The fake provider and the soak proxy, each its own process; yields the proxy's URL. The proxy's
    stderr goes to `proxy.log` next to the store."""
    log = db.with_name("proxy.log")
    errors = log.open("w")
    fake = subprocess.Popen(
        [sys.executable, "-m", "llmlens.demo.fake_server", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    proxy = None
    try:
        assert fake.stdout is not None
        upstream = fake.stdout.readline().strip()
        if not upstream.startswith("http://127.0.0.1:"):
            pytest.fail(f"the fake provider did not start: {upstream!r}")
        proxy = subprocess.Popen(
            [sys.executable, str(HERE / "soak_proxy.py"), str(db), upstream],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
            env={**os.environ, "LLMLENS_PROFILING": "off"},
        )  # fmt: skip
        assert proxy.stdout is not None
        port = proxy.stdout.readline().strip()
        if not port.isdigit():
            pytest.fail(f"the soak proxy did not start: {log.read_text()[-3000:]}")
        url = f"http://127.0.0.1:{port}"
        # One call first: what llmlens loads on first use (prices, SDK modules) is loaded before tracemalloc
        # starts, which would make those imports take many seconds.
        body = {"model": "gpt-4o-mini", "messages": HI, "stream": True}
        httpx.post(url + "/v1/chat/completions", json=body, headers={"x-request-id": "prime"}, timeout=60)
        get(url, "/_soak/memory?start=1")
        yield url
    finally:
        if proxy is not None:
            assert proxy.stdin is not None
            proxy.stdin.close()
            try:
                proxy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proxy.kill()
        fake.terminate()
        fake.wait(timeout=10)
        errors.close()


async def client_loop(http: httpx.AsyncClient, url: str, number: int, until: float, tally: Tally) -> None:
    for n in itertools.count():
        if time.monotonic() >= until:
            return
        request_id = f"soak-{number}-{n}-{int(until)}"
        headers = {"x-request-id": request_id, "x-fake-scenario": "chunks=12,chunk_delay_ms=15"}
        body = {
            "model": "gpt-4o-mini",
            "messages": HI,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        kind = (number + n) % 10
        try:
            if kind in (0, 1):  # a plain call
                response = await http.post(url, json={**body, "stream": False}, headers=headers)
                tally.ids.append(request_id)
                assert response.status_code == 200, response.text[:200]
                tally.plain += 1
                continue
            async with http.stream("POST", url, json=body, headers=headers) as response:
                tally.ids.append(request_id)
                assert response.status_code == 200
                events = 0
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        events += 1
                        if kind == 2 and events == 3:  # hang up mid-stream
                            tally.disconnected += 1
                            break
                        if line == "data: [DONE]":
                            tally.completed += 1
        except Exception as error:
            tally.errors.append(f"{request_id}: {type(error).__name__}: {error}")


async def drive(url: str, clients: int, seconds: float, tally: Tally) -> None:
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(client_loop(http, url + "/v1/chat/completions", k, until, tally) for k in range(clients))
        )


def get(url: str, path: str) -> dict:
    return httpx.get(url + path, timeout=60).json()


def settle(url: str) -> dict:
    """The proxy's counts once every request has finished (the last disconnects take a moment)."""
    deadline = time.monotonic() + 20
    while True:
        stats = get(url, "/_soak/stats")
        done = stats["server_started"] == stats["server_ended"] and stats["in_flight"] == 0
        if done or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def stored_ids(db: Path) -> Counter[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT json_extract(attributes, '$.\"llmlens.proxy.request_id\"') FROM requests"
        ).fetchall()
    return Counter(row[0] for row in rows)


def soak(tmp_path: Path, clients: int, seconds: float, warmup: float, memory_bound: int) -> None:
    db = tmp_path / "soak.db"
    with processes(db) as url:
        warm = Tally()
        asyncio.run(drive(url, clients, warmup, warm))
        settle(url)
        before = get(url, "/_soak/memory?mark=1")["traced"]
        tally = Tally()
        asyncio.run(drive(url, clients, seconds, tally))
        stats = settle(url)
        after = get(url, "/_soak/memory?top=1")
        ids = stored_ids(db)

    made = 1 + len(warm.ids) + len(tally.ids)  # with the priming call
    summary = (
        f"{made} requests ({tally.completed} streams read to the end, {tally.disconnected} hung up, "
        f"{tally.plain} plain); proxy traced memory {before} -> {after['traced']} bytes; {stats}"
    )
    print(summary, *after.get("top", []), sep="\n")  # shown when the test fails
    assert not warm.errors and not tally.errors, (warm.errors + tally.errors)[:5]
    assert tally.completed and tally.disconnected and tally.plain, summary
    # memory: flat after the warm-up
    assert after["traced"] - before < memory_bound, "\n".join([summary, *after.get("top", [])])
    # spans: every SERVER span ended once; one per LLM request; the upstream legs too
    assert stats["llm_requests"] == made, summary
    assert stats["server_started"] == stats["server_ended"] == made, summary
    assert stats["client_started"] == stats["client_ended"], summary
    assert stats["open"] == 0 and stats["ended_twice"] == 0, summary
    # context: empty after every request and now; nothing in flight
    assert stats["leaked_contexts"] == 0 and not stats["context_now"] and stats["in_flight"] == 0, summary
    # store: every request once, by its id
    assert stats["store_flushed"] and stats["dropped"] == 0, summary
    assert sum(ids.values()) == made, summary
    assert set(ids) == {"prime", *warm.ids, *tally.ids}, summary
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:5]


@pytest.mark.timeout(120)
def test_soak_short(tmp_path: Path) -> None:
    soak(tmp_path, clients=20, seconds=3, warmup=1.5, memory_bound=1_500_000)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soak(tmp_path: Path) -> None:
    # 3 MB: what a run adds to bounded caches (the store writer's last 10,000 trace ids alone reach about
    # 1.3 MB), well under what a leak of a kilobyte per request would add over a few thousand requests
    soak(tmp_path, clients=200, seconds=60, warmup=10, memory_bound=3_000_000)
