"""The fake Ollama API on 127.0.0.1: `fakes.ollama_bodies` bodies over a real HTTP server.

The ``ollama`` client takes headers per client, not per call, so a test makes a client per scenario
(see `client()`); without the header a ``fake-error-<CODE>`` model name selects an error::

    with OllamaServer() as server:
        ollama_client = client(server, "chunks=4,tool")
        ollama_client.chat(model="llama3.2", messages=[...])
"""

from __future__ import annotations

from typing import Any

from fakes import ollama_bodies as fake_ollama
from fakes.loopback_server import LoopbackServer
from llmlens.demo.fake_bodies import SCENARIO_HEADER, FakeReply, Scenario


def headers(value: str) -> dict[str, str]:
    """Client headers that select a scenario, e.g. `headers("chunks=4,chunk_delay_ms=20")`."""
    return {SCENARIO_HEADER: value}


def client(server: LoopbackServer, value: str = "", is_async: bool = False) -> Any:
    """An `ollama.Client` (or `AsyncClient`) for `server` that sends scenario `value` with every call."""
    import ollama

    cls = ollama.AsyncClient if is_async else ollama.Client
    return cls(host=server.root, headers=headers(value) if value else None)


def _reply_for(method: str, path: str, headers: dict[str, str], payload: Any) -> tuple[FakeReply, Scenario]:
    model = payload.get("model") if isinstance(payload, dict) else None
    try:
        chosen = Scenario.for_request(headers.get(SCENARIO_HEADER), model)
    except ValueError as error:
        return fake_ollama.error_reply(400, f"invalid {SCENARIO_HEADER} header: {error}"), Scenario()
    return fake_ollama.route(method, path, payload, chosen), chosen


class OllamaServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_reply_for)
