"""A proxy stopped by SIGTERM keeps every request it answered.

uvicorn shuts the application down on SIGTERM, then raises the signal again with its default handler:
the process dies with no interpreter exit, so no atexit flush. The store's writer thread writes every
0.5 s; without the flush at the lifespan's shutdown (proxy/lifespan.py) the requests answered in the last
half second before the signal were lost.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app_process import clean_env
from llmlens.demo.fake_server import FakeProvider

HI = [{"role": "user", "content": "Hi"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_loses_no_answered_request(fake: FakeProvider, tmp_path: Path) -> None:
    db, port = tmp_path / "store.db", free_port()
    app = Path(__file__).parent / "sigterm_proxy_app.py"
    env = clean_env(db)
    proxy = subprocess.Popen([sys.executable, str(app), fake.base_url, str(port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proxy.poll() is None, proxy.communicate()[0]
                assert time.monotonic() < deadline, "the proxy did not start"
                time.sleep(0.05)
        answered = 0
        with httpx.Client(timeout=10) as client:
            for i in range(12):
                body = {"model": "gpt-4o-mini", "messages": HI, "stream": i % 2 == 1}
                response = client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
                assert response.status_code == 200, response.text
                answered += 1
        proxy.send_signal(signal.SIGTERM)  # at once: the writer has not had its half second
        output = proxy.communicate(timeout=30)[0]
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()
    assert proxy.returncode == -signal.SIGTERM, output  # uvicorn's way: the signal raised again
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM requests WHERE span_kind = 'server'").fetchone()[0]
    assert rows == answered, output
