"""No secret and (with content capture off, the default) no prompt or completion leaves llmlens, and no
string a client or upstream controls is recorded unbounded.

A workload with distinctive canaries runs through the SDKs and through a proxy (tests/proxies/
openai_proxy.py under uvicorn, zero-code middleware) in front of a loopback upstream whose completions
carry a canary too. API keys travel every way they do in practice: `Authorization: Bearer` (openai,
groq), `api-key` (Azure OpenAI), `x-api-key` (anthropic), `x-goog-api-key` (google-genai), and `?key=`
in the query string; to the proxy, each of those from its client; and quoted back by an upstream in a
401 error, through the SDK and through the proxy. Then every artefact llmlens makes is
searched for every canary, whole and by a distinctive middle part (so a shortened key is found too):

- the exported spans, metrics and log records (in-memory exporters), and llmlens's Python log records;
- the SQLite store's bytes: the database, its -wal and -shm files;
- `llmlens log --json` and `llmlens show ID --json` for every row;
- the web UI's JSON API (`llmlens.web.create_app` under uvicorn): overview, request log, each request,
  live, storage, health.

Limits: a 1 MB model name, user agent (as large as the server takes), request id, response id, finish
reason and error message, through the proxy and through the SDK, end up in no span attribute, metric
attribute, log record or store column longer than llmlens's caps (llmlens.core.limits).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Harness
from mutations import Wire
from targets import FuzzServer, all_targets

from llmlens.core.limits import IDENTIFIER_MAX, STACKTRACE_MAX, TEXT_MAX
from proxies import openai_proxy
from proxies.server import UvicornServer

pytestmark = pytest.mark.timeout(180)


def key(name: str) -> tuple[str, str]:
    """A realistic-looking key and the distinctive middle part that any copy of it would show."""
    middle = f"CANARY{name.upper()}X7Q"
    return f"sk-proj-aB3d-{middle}-zz9Y8w7v", middle


KEYS = {
    name: key(name)
    for name in ("bearer", "query", "azure", "anthropic", "google", "groq", "pbearer", "pxapikey", "papikey",
                 "pgoog", "pquery")
}  # fmt: skip
PROMPT = "CANARYPROMPT8c1e the user's private question"
SYSTEM = "CANARYSYSTEM4f2a the private system prompt"
COMPLETION = "CANARYCOMPLETION9b3d"
CONTENT = {"prompt": (PROMPT, "CANARYPROMPT8c1e"), "system": (SYSTEM, "CANARYSYSTEM4f2a"),
           "completion": (COMPLETION, "CANARYCOMPLETION9b3d")}  # fmt: skip
CANARIES = {**KEYS, **CONTENT}
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
LLMLENS = str(Path(sys.executable).parent / "llmlens")


def with_completion(wire: Wire) -> Wire:
    """The seed reply with its first words replaced by the completion canary."""
    if wire.frames is None:
        return Wire(wire.status, wire.headers, body=wire.body.replace(b"Hello", COMPLETION.encode()))
    frames = tuple(f.replace(b"Hello", COMPLETION.encode()) for f in wire.frames)
    return Wire(wire.status, wire.headers, frames=frames)


SEEDS = {t.name: with_completion(t.seed) for t in all_targets()}


# ------------------------------------------------------------------------------------------ the workload


def sdk_calls(server: FuzzServer) -> None:
    import anthropic
    import groq
    import openai
    from google import genai
    from google.genai import types

    root = server.root
    server.wire = SEEDS["openai-chat"]
    openai.OpenAI(api_key=KEYS["bearer"][0], base_url=root + "/v1", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    query = openai.OpenAI(
        api_key="unused", base_url=root + "/v1", max_retries=0, default_query={"key": KEYS["query"][0]}
    )
    query.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    azure = openai.AzureOpenAI(
        api_key=KEYS["azure"][0], azure_endpoint=root, api_version="2024-06-01", max_retries=0
    )
    azure.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    groq.Groq(api_key=KEYS["groq"][0], base_url=root, max_retries=0).chat.completions.create(
        model="llama-3.1-8b-instant", messages=MESSAGES
    )
    server.wire = SEEDS["openai-chat-stream"]
    stream = openai.OpenAI(api_key=KEYS["bearer"][0], base_url=root + "/v1", max_retries=0).chat.completions
    for _chunk in stream.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        pass
    client = anthropic.Anthropic(api_key=KEYS["anthropic"][0], base_url=root, max_retries=0)
    server.wire = SEEDS["anthropic-messages"]
    client.messages.create(
        model="claude-3-5-haiku-latest", max_tokens=100, system=SYSTEM, messages=MESSAGES[1:]
    )
    server.wire = SEEDS["anthropic-messages-stream"]
    for _event in client.messages.create(
        model="claude-3-5-haiku-latest", max_tokens=100, system=SYSTEM, messages=MESSAGES[1:], stream=True
    ):
        pass
    gemini = genai.Client(api_key=KEYS["google"][0], http_options=types.HttpOptions(base_url=root))
    config = types.GenerateContentConfig(system_instruction=SYSTEM)
    server.wire = SEEDS["google-genai-generate"]
    gemini.models.generate_content(model="gemini-2.5-flash", contents=PROMPT, config=config)
    server.wire = SEEDS["google-genai-generate-stream"]
    for _chunk in gemini.models.generate_content_stream(
        model="gemini-2.5-flash", contents=PROMPT, config=config
    ):
        pass


def proxy_calls(proxy: str, server: FuzzServer) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    ways = [
        ({"authorization": f"Bearer {KEYS['pbearer'][0]}"}, {}),
        ({"x-api-key": KEYS["pxapikey"][0]}, {}),
        ({"api-key": KEYS["papikey"][0]}, {}),
        ({"x-goog-api-key": KEYS["pgoog"][0]}, {}),
        ({}, {"key": KEYS["pquery"][0]}),
    ]
    with httpx.Client(base_url=proxy, timeout=30) as http:
        for headers, params in ways:
            for stream in (False, True):
                server.wire = SEEDS["openai-chat-stream" if stream else "openai-chat"]
                response = http.post(
                    "/v1/chat/completions", json={**body, "stream": stream}, headers=headers, params=params
                )
                assert response.status_code == 200, response.text[:300]
                assert COMPLETION in response.text  # the canary did go through


@dataclass
class Artefacts:
    """Everything llmlens made of the workload, as text, by where it came from."""

    texts: dict[str, str]
    db: Path
    harness: Harness


def everything(app: Harness, db: Path, ui_url: str) -> dict[str, str]:
    texts = {
        "spans": "\n".join(s.to_json() for s in app.spans_exporter.get_finished_spans()),
        "metrics": app.metric_reader.get_metrics_data().to_json(),
        "logs": "\n".join(r.to_json() for r in app.logs_exporter.get_finished_logs()),
        "python log": "\n".join(f"{r.getMessage()} {r.args!r}" for r in app.llmlens_log.records),
    }
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
        texts[f"store file {path.name}"] = path.read_bytes().decode("latin-1") if path.exists() else ""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))}
    log = subprocess.run([LLMLENS, "log", "--json", "--limit", "1000", "--db", str(db)],
                         capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert log.returncode == 0, log.stderr
    texts["llmlens log --json"] = log.stdout
    rows = json.loads(log.stdout)["rows"]
    shows = []
    for row in rows:
        show = subprocess.run([LLMLENS, "show", str(row["id"]), "--json", "--db", str(db)],
                              capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
        assert show.returncode == 0, show.stderr
        shows.append(show.stdout)
    texts["llmlens show --json"] = "\n".join(shows)
    with httpx.Client(base_url=ui_url, timeout=30) as http:
        pages = ["/api/overview", "/api/requests?limit=500", "/api/live", "/api/storage", "/api/health"]
        pages += [f"/api/requests/{row['id']}" for row in rows]
        answers = []
        for page in pages:
            response = http.get(page)
            assert response.status_code == 200, (page, response.text[:300])
            answers.append(response.text)
    texts["web UI JSON API"] = "\n".join(answers)
    texts["rows"] = str(len(rows))
    return texts


@contextlib.contextmanager
def workload(tmp_path: Path, extra: Any = None) -> Iterator[Artefacts]:
    from llmlens.store.attach import attached_store
    from llmlens.web import create_app

    db = tmp_path / "llmlens.db"
    with FuzzServer() as server, Harness(db) as app:
        with app.instrumented(proxy_key_secret="a-secret-of-the-proxy"):
            sdk_calls(server)
            with UvicornServer(openai_proxy.create_app(server.root + "/v1")) as proxy:
                proxy_calls(proxy.url, server)
                if extra is not None:
                    extra(server, proxy.url)
            app.flush_store()
        store = attached_store(app.tracer_provider)
        assert store is not None and store.stats.written_requests > 0
        app.metric_reader.collect()
        with UvicornServer(create_app(str(db))) as ui:
            yield Artefacts(everything(app, db, ui.url), db, app)


# ---------------------------------------------------------------------------------- a key echoed back


def echo_calls(server: FuzzServer, proxy: str) -> None:
    """An upstream that answers 401 quoting the key it was sent (as some gateways do)."""
    import openai

    whole = KEYS["bearer"][0]
    error = {"error": {"message": f"Incorrect API key provided: {whole}.", "type": "invalid_request_error"}}
    server.wire = Wire(401, SEEDS["openai-chat"].headers, body=json.dumps(error).encode())
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key=whole, base_url=server.root + "/v1", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    server.wire = Wire(401, SEEDS["openai-chat"].headers, body=json.dumps(error).encode())
    with httpx.Client(base_url=proxy, timeout=30) as http:
        http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                  headers={"authorization": f"Bearer {whole}"})  # fmt: skip


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Artefacts]:
    with workload(tmp_path_factory.mktemp("security"), extra=echo_calls) as found:
        yield found


ARTEFACTS = ["spans", "metrics", "logs", "python log", "store file llmlens.db", "store file llmlens.db-wal",
             "llmlens log --json", "llmlens show --json", "web UI JSON API"]  # fmt: skip


@pytest.mark.parametrize("where", ARTEFACTS)
def test_no_key_prompt_or_completion_in(where: str, artefacts: Artefacts) -> None:
    text = artefacts.texts[where]
    assert text, f"{where}: nothing was exported there, so nothing was checked"
    found = sorted(name for name, (whole, middle) in CANARIES.items() if whole in text or middle in text)
    assert found == [], f"{where} holds {found}"


def test_the_workload_was_recorded(artefacts: Artefacts) -> None:
    """The search above is not vacuous: each call and proxied request is there, with its usage."""
    assert int(artefacts.texts["rows"]) == 9 + 10 + 2  # SDK calls, proxied requests, the two 401s
    spans = artefacts.harness.llm_spans()
    providers = {s.attributes["gen_ai.provider.name"] for s in spans}
    assert providers >= {"anthropic", "gcp.gemini", "groq", "openai_compatible"}, providers
    answered = [s for s in spans if "error.type" not in s.attributes]
    assert len(answered) == len(spans) - 3  # the SDK's 401, the proxy's and its upstream leg's
    assert all(s.attributes.get("gen_ai.usage.output_tokens") for s in answered)


def test_the_search_finds_a_canary_when_content_is_captured(tmp_path: Path) -> None:
    """With capture on, the prompt and completion are recorded: the search would see them."""
    db = tmp_path / "llmlens.db"
    with FuzzServer() as server, Harness(db) as app:
        import openai

        with app.instrumented(capture_content="SPAN_ONLY"):
            server.wire = SEEDS["openai-chat"]
            openai.OpenAI(
                api_key="sk-x", base_url=server.root + "/v1", max_retries=0
            ).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            app.flush_store()
        spans = "\n".join(s.to_json() for s in app.spans_exporter.get_finished_spans())
    assert PROMPT in spans and COMPLETION in spans


# ---------------------------------------------------------------------------------------------- limits

HUGE = "m" * 1_000_000
HEADER = "h" * 12_000  # what fits in uvicorn's (h11's) 16 KB header limit with the rest


def huge_calls(server: FuzzServer, proxy: str) -> None:
    import openai

    chat = json.loads(SEEDS["openai-chat"].body)
    chat.update(id="chatcmpl-" + HUGE, model=HUGE, system_fingerprint=HUGE)
    chat["choices"][0]["finish_reason"] = HUGE
    client = openai.OpenAI(api_key="sk-x", base_url=server.root + "/v1", max_retries=0)
    server.wire = Wire(200, SEEDS["openai-chat"].headers, body=json.dumps(chat).encode())
    client.chat.completions.create(model=HUGE, messages=MESSAGES, user=HUGE)
    error = {"error": {"message": HUGE, "type": HUGE, "code": HUGE}}
    server.wire = Wire(400, SEEDS["openai-chat"].headers, body=json.dumps(error).encode())
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=HUGE, messages=MESSAGES)
    server.wire = Wire(200, SEEDS["openai-chat"].headers, body=json.dumps(chat).encode())
    headers = {"user-agent": HEADER, "x-request-id": HEADER, "x-api-key": HEADER}
    with httpx.Client(base_url=proxy, timeout=60) as http:
        response = http.post(
            "/v1/chat/completions", json={"model": HUGE, "messages": MESSAGES}, headers=headers
        )
        assert response.status_code == 200, response.text[:300]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)


def too_long(values: Iterator[str], limit: int) -> list[str]:
    return [f"{len(v)} chars: {v[:60]}..." for v in values if len(v) > limit]


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Artefacts]:
    with workload(tmp_path_factory.mktemp("huge"), extra=huge_calls) as found:
        yield found


def span_strings(huge: Artefacts) -> dict[str, list[str]]:
    """attribute name (or what else) -> every too-long string there, in spans and log records."""
    found: dict[str, list[str]] = {}

    def add(where: str, values: Iterator[str], limit: int = TEXT_MAX) -> None:
        long = too_long(values, limit)
        if long:
            found.setdefault(where, []).extend(long)

    for span in huge.harness.spans_exporter.get_finished_spans():
        add("span name", iter([span.name]), 2 * IDENTIFIER_MAX + 1)
        for name, value in (span.attributes or {}).items():
            add(name, strings(value))
        for event in span.events:  # (an exception event's stack trace keeps up to STACKTRACE_MAX)
            for name, value in (event.attributes or {}).items():
                add(name, strings(value), STACKTRACE_MAX if name == "exception.stacktrace" else TEXT_MAX)
        add("status description", iter([span.status.description or ""]))
    for record in huge.harness.logs_exporter.get_finished_logs():
        add("log record", strings([record.log_record.body, dict(record.log_record.attributes or {})]))
    add("python log", iter(r.getMessage() for r in huge.harness.llmlens_log.records))
    return found


def test_no_unbounded_string_in_spans_or_logs(huge: Artefacts) -> None:
    spans = huge.harness.spans_exporter.get_finished_spans()
    assert any(
        HUGE[:200] in (s.attributes or {}).get("gen_ai.request.model", "") for s in spans
    )  # it was sent
    assert span_strings(huge) == {}


def test_no_unbounded_string_in_metric_attributes(huge: Artefacts) -> None:
    data = json.loads(huge.texts["metrics"])
    attributes = [
        point.get("attributes", {})
        for resource in data["resource_metrics"]
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
        for point in metric["data"]["data_points"]
    ]
    assert attributes
    assert too_long(strings(attributes), IDENTIFIER_MAX) == []


def store_strings(huge: Artefacts) -> list[str]:
    found = []
    with contextlib.closing(sqlite3.connect(huge.db)) as conn:
        for table in ("requests", "spans"):
            cursor = conn.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            for row in cursor:
                for name, value in zip(names, row, strict=True):
                    if name == "attributes":
                        for key, item in json.loads(value).items():
                            found += [
                                f"{table}.attributes {key}: {s}" for s in too_long(strings(item), TEXT_MAX)
                            ]
                    elif isinstance(value, str):
                        found += [f"{table}.{name}: {s}" for s in too_long(iter([value]), TEXT_MAX)]
    return found


def test_no_unbounded_string_in_the_store(huge: Artefacts) -> None:
    assert store_strings(huge) == []
