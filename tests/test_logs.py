"""llmlens's own log lines (llmlens.logs, docs/logs.md): the OpenTelemetry logs pipeline, formats, redaction.

End to end, in a fresh process (configure() sets the global providers once per process): `configure()`
exporting OTLP to a real rotel collector (tests/collector.py), an openai call, an llmlens warning in a
span, a taken Prometheus port, and a FastAPI proxy under uvicorn; the collector must receive the details
events, the warnings and the proxy's request lines with the trace and span ids of the spans they belong
to, secrets redacted, each once; the application's root handlers must be the same objects afterwards and
its own lines neither duplicated nor swallowed. In process, with the in-memory pipelines of conftest.py:
levels, no double export next to an OpenTelemetry handler of the application, the console of last
resort, formatters and the redactor's table.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app_process import clean_env
from collector import RotelCollector
from llmlens.demo.fake_server import FakeProvider
from llmlens.instrumentor import Instrumentor
from llmlens.logs import JsonFormatter, RedactingFilter, TextFormatter, redact
from llmlens.logs import pipeline as log_pipeline
from llmlens.logs.correlation import request_id_var

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

OPENAI_KEY = "sk-proj-Zx81kQ2mP0vB7nL4rT9sW3yU6eH1jA5cD8fG"
ANTHROPIC_KEY = "sk-ant-api03-Qw3rTy7uIo9pAs2dFg4hJk6lZx8cVb1nM0-AbCdEf"
GOOGLE_KEY = "AIzaSyD4x9Qm2Kp7Lr1Tn8Vb3Wc6Yh5Zj0Ae4Fg"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"


# ------------------------------------------------------------------------------------------ the redactor

# (text, the secret that must be gone): every one must come out without its secret, with [REDACTED].
SECRETS = [
    (f"OpenAI said: Incorrect API key provided: {OPENAI_KEY}.", OPENAI_KEY),
    (f"key {ANTHROPIC_KEY} was revoked", ANTHROPIC_KEY),
    (f"legacy sk-{'a1B2' * 12} key", f"sk-{'a1B2' * 12}"),
    (f"GET https://generativelanguage.googleapis.com/v1beta/models/m:generate?key={GOOGLE_KEY}", GOOGLE_KEY),
    (f"Authorization: Bearer {OPENAI_KEY}", OPENAI_KEY),
    ("authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    ("{'authorization': 'Bearer tok_live_123456789abcdef', 'accept': 'json'}", "tok_live_123456789abcdef"),
    ('{"x-api-key": "ak-live-987654321"}', "ak-live-987654321"),
    ("x-goog-api-key=ya29.token-value-1", "ya29.token-value-1"),
    ("api-key: azure0123456789abcdef", "azure0123456789abcdef"),
    ("proxy-authorization: Bearer gw-123456789012345678", "gw-123456789012345678"),
    ("retrying with bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig9", "eyJhbGciOiJIUzI1NiJ9"),
    ("https://api.example.com/v1/chat?api_key=cohere-abc-123&stream=true", "cohere-abc-123"),
    ("https://x.test/path?model=m&key=plainsecret42#frag", "plainsecret42"),
    ("wss://x.test/ws?access_token=tkn_0987654321", "tkn_0987654321"),
    ("OPENAI_API_KEY=plain-secret-value", "plain-secret-value"),
    ("OpenAI(api_key='unshaped-secret-1', base_url=u)", "unshaped-secret-1"),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    ("AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEHQaCXVzLWVhc3QtMSJH", "IQoJb3JpZ2luX2VjEHQaCXVzLWVhc3QtMSJH"),
    ("credentials AKIAIOSFODNN7EXAMPLE rejected", "AKIAIOSFODNN7EXAMPLE"),
    ("session ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A"),
    ("https://b.s3.amazonaws.com/o?X-Amz-Security-Token=FwoGZXIvYXdz&X-Amz-Signature=abc123", "FwoGZXIvYXdz"),
    ("https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIDEXAMPLE%2F2026&X-Amz-Signature=9f2e1d", "9f2e1d"),
    ("x-amz-security-token: FQoGZXIvYXdzEXAMPLE", "FQoGZXIvYXdzEXAMPLE"),
    ("groq key gsk_4fT9kLmN2pQ8rS6tV1wX3yZ5aB7cD9eF rejected", "gsk_4fT9kLmN2pQ8rS6tV1wX3yZ5aB7cD9eF"),
]

# Text that looks a little like a secret and must come out unchanged.
NEAR_MISSES = [
    "sk-test",  # a short placeholder
    "sk-demo-not-a-real-key",  # no digit
    "risk-assessment-framework-2024-v1-final",  # `sk-` inside a word
    "task-1234567890abcdefghijklmnop",
    "the bearer of bad news",
    "Bearer tokens are required for this endpoint",
    "invalid x-api-key",  # a header named, no value
    "Authorization header missing",
    "llmlens.api_key.label: 89818d0bf16e",  # the label llmlens records instead of a key
    "api_key_label=89818d0bf16e",
    "monkey=banana&keyword=1&donkey=2",
    "https://x.test/v1/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
    "POST /v1/chat/completions 200 chat gpt-4o-mini completed 41 ms tokens=12/34",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    "AKIA-not-an-id and AKIAshort",
    "AIzaTooShort",
    "request_id=req-0001 model=claude-sonnet-4-5",
    "",
]


@pytest.mark.parametrize(("text", "secret"), SECRETS, ids=[s[1][:16] for s in SECRETS])
def test_redact_removes_every_secret(text: str, secret: str) -> None:
    clean = redact(text)
    assert secret not in clean
    assert "[REDACTED]" in clean
    assert redact(clean) == clean  # redacting twice changes nothing


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_redact_leaves_near_misses_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_keeps_what_names_the_secret() -> None:
    assert redact(f"Authorization: Bearer {OPENAI_KEY}") == "Authorization: [REDACTED]"
    assert redact(f"u?alt=sse&key={GOOGLE_KEY}&x=1") == "u?alt=sse&key=[REDACTED]&x=1"
    assert redact(f'{{"x-api-key": "{ANTHROPIC_KEY}"}}') == '{"x-api-key": "[REDACTED]"}'
    assert redact(f"retry with {OPENAI_KEY} now") == "retry with [REDACTED] now"


def test_error_messages_copied_onto_spans_are_redacted(instrumented: Any, otel: Any, client: Any) -> None:
    import openai

    # The fake provider's 404 quotes the model name: a key pasted where the model goes comes back in the
    # error message, which becomes the span's status and exception event (and the store's error_message).
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model=OPENAI_KEY, messages=[{"role": "user", "content": "Hi"}],
                                       extra_headers={"x-fake-scenario": "status=404"})  # fmt: skip
    assert OPENAI_KEY in str(raised.value)  # the application's exception is its own, untouched
    span = otel.span()
    assert span.status.description and "[REDACTED]" in span.status.description
    (event,) = [e for e in span.events if e.name == "exception"]
    for text in (span.status.description, event.attributes["exception.message"],
                 event.attributes["exception.stacktrace"]):  # fmt: skip
        assert OPENAI_KEY not in text
    assert event.attributes["exception.type"] == "openai.NotFoundError"
    # The local store's request row keeps the redacted message.
    from llmlens.store.attach import attached_store

    store = attached_store(otel.tracer_provider)
    assert store is not None and store.force_flush(5000)
    trace_id = f"{span.context.trace_id:032x}"
    with sqlite3.connect(store.path) as conn:
        (stored,) = conn.execute(
            "SELECT error_message FROM requests WHERE trace_id = ?", (trace_id,)
        ).fetchone()
    assert "[REDACTED]" in stored and OPENAI_KEY not in stored


# ---------------------------------------------------------------------------------------------- formats


def record(message: str, *args: Any, level: int = logging.WARNING, exc: Any = None) -> logging.LogRecord:
    return logging.getLogger("llmlens").makeRecord("llmlens", level, __file__, 1, message, args, exc)


def test_json_lines_carry_the_ids_of_their_span_and_request(otel: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    token = request_id_var.set("req-42")
    try:
        with tracer.start_as_current_span("op") as span:
            line = JsonFormatter().format(record("called with %s", f"key={OPENAI_KEY}"))
    finally:
        request_id_var.reset(token)
    fields = json.loads(line)
    context = span.get_span_context()
    assert fields == {
        "time": fields["time"],
        "level": "WARNING",
        "logger": "llmlens",
        "message": "called with key=[REDACTED]",
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "request_id": "req-42",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["time"])
    # Outside a span and a request: null ids, no request_id.
    outside = json.loads(JsonFormatter().format(record("plain")))
    assert outside["trace_id"] is None and outside["span_id"] is None and "request_id" not in outside


def test_json_line_with_an_exception_is_one_line_and_redacted() -> None:
    try:
        raise RuntimeError(f"upstream refused {OPENAI_KEY}")
    except RuntimeError:
        line = JsonFormatter().format(record("failed", exc=sys.exc_info()))
    assert "\n" not in line
    fields = json.loads(line)
    assert "RuntimeError: upstream refused [REDACTED]" in fields["exception"]
    assert OPENAI_KEY not in line


def test_text_prefix_has_the_first_8_hex_digits(otel: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    token = request_id_var.set("r-17")
    try:
        with tracer.start_as_current_span("op") as span:
            line = TextFormatter().format(record("upstream slow, Authorization: Bearer %s", OPENAI_KEY))
    finally:
        request_id_var.reset(token)
    context = span.get_span_context()
    prefix = f"[trace={context.trace_id:032x}"[:15] + f" span={context.span_id:016x}"[:14] + " req=r-17]"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING llmlens " + re.escape(prefix)
        + r" upstream slow, Authorization: \[REDACTED\]",
        line,
    ), line  # fmt: skip
    assert TextFormatter().format(record("no ids")).endswith("WARNING llmlens no ids")
    custom = TextFormatter("%(levelname)s %(correlation)s%(message)s").format(record("x"))
    assert custom == "WARNING x"


class Broken:
    def __str__(self) -> str:
        raise ValueError("no text")


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_a_formatter_never_raises(formatter: logging.Formatter) -> None:
    for bad in (record("%d items", "many"), record("%s", Broken()), record("two %s %s", "args")):
        line = formatter.format(bad)
        assert isinstance(line, str) and line


def test_the_handlers_never_raise_into_the_application(otel: Any) -> None:
    handlers = [
        log_pipeline.OTelLogHandler(otel.logger_provider, logging.WARNING),
        log_pipeline.ConsoleHandler(JsonFormatter(), logging.WARNING, logging.WARNING),
    ]
    for handler in handlers:
        for bad in (record("%d items", "many"), record("%s", Broken())):
            handler.handle(bad)  # nothing raised, nothing printed as a logging error
    RedactingFilter().filter(record("%d items", "many"))


# ------------------------------------------------------------------------------ the pipeline, in process


class Collect(logging.Handler):
    """The application's own handler (on the root logger, as an application's is)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def app_handler() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def bodies(otel: Any) -> list[str]:
    return [str(r.log_record.body) for r in otel.logs() if r.log_record.event_name is None]


def test_root_handlers_are_untouched_and_app_lines_go_through_once(
    instrument: Any, otel: Any, app_handler: Collect
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    instrument()
    assert root.handlers == before and all(a is b for a, b in zip(root.handlers, before, strict=True))
    logging.getLogger("tests.app").warning("the app's own line")
    logging.getLogger("llmlens").warning("llmlens: store problem, api_key=%s", OPENAI_KEY)
    # The application's handler got both, once each, the llmlens one redacted; llmlens exports only its own.
    assert app_handler.messages() == ["the app's own line", "llmlens: store problem, api_key=[REDACTED]"]
    assert bodies(otel) == ["llmlens: store problem, api_key=[REDACTED]"]
    Instrumentor().uninstrument()
    assert root.handlers == before
    assert not [h for h in logging.getLogger("llmlens").handlers if isinstance(h, log_pipeline._OwnHandler)]


def test_a_warning_in_a_span_carries_its_ids_and_levels_apply(instrument: Any, otel: Any) -> None:
    instrument()
    log = logging.getLogger("llmlens")
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("op") as span:
        log.warning("llmlens: in a span")
        log.info("llmlens: below the default level")
    (exported,) = [r.log_record for r in otel.logs() if str(r.log_record.body) == "llmlens: in a span"]
    assert not [r for r in otel.logs() if "below the default level" in str(r.log_record.body)]
    assert exported.trace_id == span.get_span_context().trace_id
    assert exported.span_id == span.get_span_context().span_id
    assert exported.severity_text == "WARN" and exported.severity_number.value == 13


def test_a_settings_error_of_instrument_is_exported(
    instrument: Any, otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMLENS_PROVIDER_MAP", f"api.example.com=openai,{OPENAI_KEY}")  # a key pasted in
    instrument()
    (error,) = [r.log_record for r in otel.logs() if "LLMLENS_PROVIDER_MAP" in str(r.log_record.body)]
    assert str(error.body).startswith("llmlens: LLMLENS_PROVIDER_MAP='api.example.com=openai,[REDACTED]'")
    assert error.severity_text == "ERROR" and not error.trace_id


def test_log_level_setting(instrument: Any, otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    llmlens_logger = logging.getLogger("llmlens")
    level = llmlens_logger.level
    monkeypatch.setenv("LLMLENS_LOG_LEVEL", "info")
    instrument()
    logging.getLogger("llmlens.store").info("llmlens: an info line")
    logging.getLogger("llmlens").debug("llmlens: a debug line")
    assert bodies(otel) == ["llmlens: an info line"]
    Instrumentor().uninstrument()
    assert llmlens_logger.level == level  # the logger's own level is put back


def test_no_double_export_next_to_an_otel_root_handler(instrument: Any, otel: Any) -> None:
    from opentelemetry.sdk._logs import LoggingHandler

    bridge = LoggingHandler(logger_provider=otel.logger_provider)  # what opentelemetry-instrument adds
    root = logging.getLogger()
    root.addHandler(bridge)
    try:
        instrument()
        logging.getLogger("llmlens").warning("llmlens: once, with %s", f"x-api-key: {ANTHROPIC_KEY}")
        logging.getLogger("tests.app").warning("the app's line")
    finally:
        root.removeHandler(bridge)
    exported = [str(r.log_record.body) for r in otel.logs()]
    assert exported.count("llmlens: once, with x-api-key: [REDACTED]") == 1, exported
    assert exported.count("the app's line") == 1
    assert not any(ANTHROPIC_KEY in text for text in exported)


def wait_for_lines(otel: Any, count: int) -> None:
    """Until `count` request lines have been exported (5 s at most)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum("llmlens.proxy.request_id" in (r.log_record.attributes or {}) for r in otel.logs()) >= count:
            return
        time.sleep(0.01)


def test_request_lines_carry_their_server_span(
    instrument: Any, otel: Any, fake: FakeProvider, app_handler: Collect
) -> None:
    """One line per proxied request, in its SERVER span: to the pipeline always, to the application's
    handlers (once) only while the `llmlens.proxy.requests` logger is enabled for INFO."""
    import httpx

    from proxies import openai_proxy
    from proxies.server import UvicornServer

    requests_logger = logging.getLogger("llmlens.proxy.requests")
    instrument()
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    with UvicornServer(openai_proxy.create_app(fake.base_url)) as proxy, httpx.Client() as client:
        url = proxy.url + "/v1/chat/completions"
        client.post(url, json=chat, headers={"x-request-id": "quiet"})
        # A model name a client chose cannot start a log line of its own.
        forged = {**chat, "model": "x\nFORGED LINE"}
        client.post(url, json=forged, headers={"x-request-id": "forged", "x-fake-scenario": "status=404"})
        wait_for_lines(otel, 2)  # (written once the response is out: the client may have it before)
        requests_logger.setLevel(logging.INFO)
        try:
            client.post(url, json={**chat, "stream": True}, headers={"x-request-id": "loud"})
            wait_for_lines(otel, 3)
        finally:
            requests_logger.setLevel(logging.NOTSET)
    servers = {s.attributes["llmlens.proxy.request_id"]: s for s in otel.spans() if s.kind.name == "SERVER"}
    lines = {r.log_record.attributes["llmlens.proxy.request_id"]: r.log_record for r in otel.logs()
             if "llmlens.proxy.request_id" in (r.log_record.attributes or {})}  # fmt: skip
    assert sorted(lines) == ["forged", "loud", "quiet"]
    for request_id, line in lines.items():
        if request_id == "forged":
            continue
        context = servers[request_id].context
        assert (line.trace_id, line.span_id) == (context.trace_id, context.span_id)
        assert line.severity_text == "INFO"
        assert line.attributes["http.response.status_code"] == 200
        assert line.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert str(lines["quiet"].body).startswith("POST /v1/chat/completions 200 chat gpt-4o-mini ok ")
    assert str(lines["forged"].body).startswith("POST /v1/chat/completions 404 chat x\\nFORGED LINE error ")
    assert str(lines["loud"].body).startswith("POST /v1/chat/completions 200 chat gpt-4o-mini completed ")
    (seen,) = [r for r in app_handler.records if r.name == "llmlens.proxy.requests"]
    assert seen.request_id == "loud"  # type: ignore[attr-defined]
    assert seen.trace_id == f"{servers['loud'].context.trace_id:032x}"  # type: ignore[attr-defined]


def test_llm_request_writes_its_request_line_once(instrument: Any, otel: Any) -> None:
    """A server without ASGI (`llmlens.llm_request(...)`) writes the same line, in its SERVER span, once:
    for a plain request, a failed one and a stream."""
    import json as jsonlib

    import llmlens

    instrument()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    with llmlens.llm_request(source_format="openai", body=jsonlib.dumps(body), path="/v1/chat/completions",
                             request_id="plain") as request:  # fmt: skip
        request.set_response({"choices": [{"finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 4, "completion_tokens": 2}})  # fmt: skip
    failing = llmlens.llm_request(source_format="openai", body=jsonlib.dumps(body), request_id="failed")
    with pytest.raises(RuntimeError), failing:
        raise RuntimeError("upstream went away")
    with llmlens.llm_request(source_format="openai", body=jsonlib.dumps({**body, "stream": True}),
                             path="/v1/chat/completions", request_id="stream") as request:  # fmt: skip
        chunks = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n', b"data: [DONE]\n\n"]
        for _chunk in request.wrap_stream(chunks):
            pass
    wait_for_lines(otel, 3)
    servers = {s.attributes["llmlens.proxy.request_id"]: s for s in otel.spans() if s.kind.name == "SERVER"}
    records = [r.log_record for r in otel.logs()]
    lines = [r for r in records if "llmlens.proxy.request_id" in (r.attributes or {})]
    by_id = {line.attributes["llmlens.proxy.request_id"]: line for line in lines}
    assert len(lines) == 3 and sorted(by_id) == ["failed", "plain", "stream"]
    for request_id, line in by_id.items():
        context = servers[request_id].context
        assert (line.trace_id, line.span_id) == (context.trace_id, context.span_id)
    assert str(by_id["plain"].body).startswith("POST /v1/chat/completions - chat gpt-4o-mini ok ")
    assert "tokens=4/2" in str(by_id["plain"].body)
    assert " error=RuntimeError: upstream went away" in str(by_id["failed"].body)
    assert str(by_id["stream"].body).startswith("POST /v1/chat/completions - chat gpt-4o-mini completed ")


def test_opentelemetry_instrument_logging_auto_instrumentation_exports_once(tmp_path: Path) -> None:
    """Under `opentelemetry-instrument` with OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true the SDK
    puts its handler on the root logger: llmlens's lines reach the collector through it, once."""
    script = (
        "import logging\n"
        "from opentelemetry._logs import get_logger_provider\n"
        f"logging.getLogger('llmlens').warning('llmlens: only once, key=%s', '{OPENAI_KEY}')\n"
        "logging.getLogger('app').warning('the app line')\n"
        "get_logger_provider().force_flush()\n"
    )
    with RotelCollector() as collector:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))},
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",  # (the distro's default is grpc)
            "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
            "LLMLENS_DB": str(tmp_path / "llmlens.db"),
        }
        instrument = Path(sys.executable).parent / "opentelemetry-instrument"
        result = subprocess.run([str(instrument), sys.executable, "-c", script], env=env, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stderr
        output = collector.wait_for("Body: Str(the app line)")
        time.sleep(0.3)
        output = collector.output()
    assert output.count("Body: Str(llmlens: only once, key=[REDACTED])") == 1, output
    assert output.count("Body: Str(the app line)") == 1
    assert OPENAI_KEY not in output


def test_console_of_last_resort(tmp_path: Path) -> None:
    """Without handlers of the application, llmlens's lines go to stderr in LLMLENS_LOG_FORMAT; with one,
    through it only (in a fresh process: pytest puts handlers on the root logger)."""
    script = (
        "import logging, sys\n"
        "from llmlens import Instrumentor\n"
        "if sys.argv[1] == 'app': logging.basicConfig(format='APP %(name)s %(message)s')\n"
        "Instrumentor().instrument()\n"
        f"logging.getLogger('llmlens').warning('llmlens: first, Authorization: Bearer {OPENAI_KEY}')\n"
        "logging.getLogger('llmlens.store').error('llmlens: second')\n"
        "logging.getLogger('llmlens').info('llmlens: below the level')\n"
    )
    env = {**os.environ, "LLMLENS_DB": str(tmp_path / "x.db"), "LLMLENS_LOG_FORMAT": "json"}
    alone = subprocess.run([sys.executable, "-c", script, "alone"], env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    lines = [json.loads(line) for line in alone.stderr.splitlines()]
    assert [(f["level"], f["logger"], f["message"]) for f in lines] == [
        ("WARNING", "llmlens", "llmlens: first, Authorization: [REDACTED]"),
        ("ERROR", "llmlens.store", "llmlens: second"),
    ], alone.stderr
    configured = subprocess.run([sys.executable, "-c", script, "app"], env=env, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    assert configured.stderr.splitlines() == [
        "APP llmlens llmlens: first, Authorization: [REDACTED]",
        "APP llmlens.store llmlens: second",
    ]


# --------------------------------------------------------------------------- end to end, through rotel

# The application: its own root handler, configure() to OTLP, an openai call, an llmlens warning in a
# span, a taken Prometheus port, a FastAPI proxy under uvicorn (the middleware comes from instrument()),
# then its own line. Prints one JSON object: what its handler saw and the root handlers before/after.
APP = r"""
import json, logging, sys
sys.path.insert(0, sys.argv[1])
import httpx, openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []
    def emit(self, record):
        self.lines.append(record.getMessage())

root = logging.getLogger()
mine = Collect()
root.addHandler(mine)
before = [id(h) for h in root.handlers]

import llmlens
from llmlens.demo.fake_server import FakeProvider
from opentelemetry import trace
from proxies.server import UvicornServer

handle = llmlens.configure(service_name="logs-e2e", prometheus_port=int(sys.argv[2]))
after = [id(h) for h in root.handlers]
spec = json.loads(sys.argv[3])
KEY = spec["key"]

with FakeProvider() as fake:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    with trace.get_tracer("app").start_as_current_span("app-op"):
        logging.getLogger("llmlens").warning("llmlens: upstream refused Authorization: Bearer %s", KEY)

    app = FastAPI()
    upstream = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if body["model"] == "leak":  # an upstream error copied into the response, secrets and all
            error = {"message": spec["leak"], "type": "upstream_error"}
            return JSONResponse({"error": error}, status_code=502)
        completion = await upstream.chat.completions.create(**body)
        return JSONResponse(completion.model_dump(exclude_unset=True))

    with UvicornServer(app) as server, httpx.Client() as http:
        for request_id, model in (("req-ok", "gpt-4o-mini"), ("req-leak", "leak")):
            http.post(server.url + "/v1/chat/completions", headers={"x-request-id": request_id},
                      json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})

logging.getLogger("tests.app").warning("the app's own line")
handle.shutdown()
print("RESULT", json.dumps({"before": before, "after": after, "lines": mine.lines}), flush=True)
"""


def blocks(output: str, header: str) -> list[str]:
    """The blocks rotel's debug log prints under `Span #N` or `LogRecord #N` lines."""
    found = []
    for match in re.finditer(rf"^{header} #\d+$", output, flags=re.MULTILINE):
        rest = output[match.end() :]
        end = re.search(r"^\S.* #\d+$|^Resource", rest, flags=re.MULTILINE)
        found.append(rest[: end.start()] if end else rest)
    return found


def field(block: str, name: str) -> str:
    match = re.search(rf"^[ \t]*{name}[ \t]*:[ \t]?(.*)$", block, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def test_logs_reach_the_collector_with_their_ids_and_without_secrets(tmp_path: Path) -> None:
    leak = f"upstream said: invalid key {OPENAI_KEY} for https://g.test/v1?key={GOOGLE_KEY}"
    spec = {"key": ANTHROPIC_KEY, "leak": leak}
    with RotelCollector() as collector, socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMLENS_"))},
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
            "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT": "true",
            "LLMLENS_DB": str(tmp_path / "llmlens.db"),
        }
        result = subprocess.run(
            [sys.executable, "-c", APP, str(TESTS), str(busy.getsockname()[1]), json.dumps(spec)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        collector.wait_for("POST /v1/chat/completions 502")
        collector.wait_for("Name           : app-op")
        time.sleep(0.5)  # (the last batches of the other signals)
        output = collector.output()
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    app = json.loads(line.removeprefix("RESULT "))

    spans = {field(b, "ID"): (field(b, "Trace ID"), field(b, "Name"), b) for b in blocks(output, "Span")}
    records = blocks(output, "LogRecord")
    for secret in (OPENAI_KEY, GOOGLE_KEY, ANTHROPIC_KEY):
        assert not [r for r in records if secret in r], secret
        assert not [text for text in app["lines"] if secret in text], secret

    def span_of(record: str) -> tuple[str, str]:
        """(name, request id) of the span a log record names; fails if it names none of them."""
        span_id, trace_id = field(record, "Span ID"), field(record, "Trace ID")
        assert span_id in spans and spans[span_id][0] == trace_id, record
        request_id = re.search(r"llmlens\.proxy\.request_id: Str\((.*)\)", spans[span_id][2])
        return spans[span_id][1], request_id.group(1) if request_id else ""

    # The details events: the openai call's, the proxied requests' (SERVER spans, with their request ids)
    # and the upstream leg's of the one that called upstream; each with its own span's ids.
    events = [r for r in records if "EventName: gen_ai.client.inference.operation.details" in r]
    assert sorted(span_of(r) for r in events) == [
        ("chat gpt-4o-mini", ""), ("chat gpt-4o-mini", ""), ("chat gpt-4o-mini", "req-ok"),
        ("chat leak", "req-leak"),
    ]  # fmt: skip

    def one(text: str) -> str:
        found = [r for r in records if f"Body: Str({text}" in r]
        assert len(found) == 1, (text, found)
        return found[0]

    warning = one("llmlens: upstream refused Authorization: [REDACTED])")
    assert span_of(warning) == ("app-op", "")
    assert field(warning, "SeverityText") == "WARN"
    port = one("llmlens: no Prometheus endpoint: cannot listen on 127.0.0.1:")
    assert field(port, "Trace ID") == "" and field(port, "SeverityText") == "ERROR"

    ok = one("POST /v1/chat/completions 200 chat gpt-4o-mini ok ")
    assert span_of(ok) == ("chat gpt-4o-mini", "req-ok")
    assert "-> llmlens.proxy.request_id: Str(req-ok)" in ok and "-> gen_ai.usage.output_tokens: Int(" in ok
    failed = one("POST /v1/chat/completions 502 chat leak error ")
    assert span_of(failed) == ("chat leak", "req-leak")
    assert "invalid key [REDACTED] for https://g.test/v1?key=[REDACTED]" in failed
    assert "-> http.response.status_code: Int(502)" in failed

    # The application: the same root handlers; its line once, not exported; llmlens's lines once each.
    assert app["before"] == app["after"]
    assert app["lines"].count("the app's own line") == 1
    assert "the app's own line" not in output
    assert app["lines"].count("llmlens: upstream refused Authorization: [REDACTED]") == 1


def test_request_lines_wait_for_a_logger_provider_set_after_instrument(tmp_path: Path) -> None:
    """With no logger provider yet, no request line is built for the API's stand-in (it would go nowhere);
    once the application sets one, the next request's line reaches it."""
    script = (
        "import json, llmlens\n"
        "from opentelemetry._logs import set_logger_provider\n"
        "from opentelemetry.sdk._logs import LoggerProvider\n"
        "from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor\n"
        "from llmlens.logs import pipeline\n"
        "llmlens.Instrumentor().instrument()\n"
        "body = json.dumps({'model': 'gpt-4o-mini', 'messages': []})\n"
        "with llmlens.llm_request(source_format='openai', body=body, request_id='before'):\n"
        "    pass\n"
        "exports_before = pipeline.installed().exports()\n"
        "exporter = InMemoryLogRecordExporter()\n"
        "provider = LoggerProvider()\n"
        "provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))\n"
        "set_logger_provider(provider)\n"
        "with llmlens.llm_request(source_format='openai', body=body, request_id='after'):\n"
        "    pass\n"
        "ids = [dict(r.log_record.attributes or {}).get('llmlens.proxy.request_id')\n"
        "       for r in exporter.get_finished_logs()]\n"
        "print(json.dumps([exports_before, pipeline.installed().exports(), ids]))\n"
    )
    env = clean_env(tmp_path / "llmlens.db")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False, True, ["after"]]
