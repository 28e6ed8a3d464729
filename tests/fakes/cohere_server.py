"""The fake Cohere v2 API on 127.0.0.1: `fakes.cohere_bodies` bodies over a real HTTP server.

The scenario comes from the ``x-fake-scenario`` request header, which the ``cohere`` SDK sends per call
with ``request_options={"additional_headers": {...}}`` (see `scenario()`), else from a
``fake-error-<CODE>`` model name::

    with CohereServer() as server:
        client = cohere.ClientV2(api_key="test", base_url=server.root)
        client.chat(model="command-a-03-2025", messages=[...], request_options=scenario("chunks=4,tool"))
"""

from __future__ import annotations

from typing import Any

from fakes import cohere_bodies as fake_cohere
from fakes.loopback_server import LoopbackServer
from llmlens.demo.fake_bodies import SCENARIO_HEADER, FakeReply, Scenario


def scenario(value: str) -> dict[str, Any]:
    """`request_options` that select a scenario, e.g. `scenario("chunks=4,chunk_delay_ms=20")`."""
    return {"additional_headers": {SCENARIO_HEADER: value}}


def _reply_for(method: str, path: str, headers: dict[str, str], payload: Any) -> tuple[FakeReply, Scenario]:
    model = payload.get("model") if isinstance(payload, dict) else None
    try:
        chosen = Scenario.for_request(headers.get(SCENARIO_HEADER), model)
    except ValueError as error:
        return fake_cohere.error_reply(400, f"invalid {SCENARIO_HEADER} header: {error}"), Scenario()
    return fake_cohere.route(method, path, payload, chosen), chosen


class CohereServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_reply_for)
