"""SDKs are patched when the application imports them (llmlens.import_hooks): `instrument()` imports no
SDK itself, a later import is traced (a package and a dotted module: anthropic, google.genai), and
`uninstrument()` before the import leaves it untraced.

Each case runs in a fresh interpreter, against the fake provider on loopback: `sys.modules` of the test
process already holds every SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from llmlens.demo.fake_server import FakeProvider

# Prints a JSON line: which SDKs instrument() imported, and the spans (name, scope) of one call (CALL).
SCRIPT = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

import llmlens

before = set(sys.modules)
llmlens.Instrumentor().instrument()
imported = sorted(
    sdk for sdk in ("anthropic", "groq", "cohere", "ollama", "google.genai", "botocore", "starlette")
    if sdk in sys.modules and sdk not in before
)
if UNINSTRUMENT_FIRST:
    llmlens.Instrumentor().uninstrument()

CALL
print(json.dumps({
    "imported": imported,
    "text": text,
    "spans": [[s.name, s.instrumentation_scope.name] for s in exporter.get_finished_spans()],
}))
"""


CALLS = {
    "anthropic": """
import anthropic

client = anthropic.Anthropic(base_url=BASE_URL, api_key="sk-test", max_retries=0)
reply = client.messages.create(
    model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
)
text = reply.content[0].text
""",
    "google": """
from google import genai
from google.genai import types

client = genai.Client(api_key="fake-key", http_options=types.HttpOptions(base_url=BASE_URL))
text = client.models.generate_content(model="gemini-2.5-flash", contents="Hi").text
""",
}
SPAN_NAMES = {"anthropic": "chat claude-sonnet-4-5", "google": "generate_content gemini-2.5-flash"}


def run_script(base_url: str, uninstrument_first: bool, sdk: str = "anthropic") -> dict:
    code = textwrap.dedent(SCRIPT).replace("CALL", CALLS[sdk]).replace("BASE_URL", repr(base_url))
    code = code.replace("UNINSTRUMENT_FIRST", repr(uninstrument_first))
    env = {"LLMLENS_STORE": "false", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fake_url():
    with FakeProvider() as provider:
        yield f"http://127.0.0.1:{provider.port}"


@pytest.mark.parametrize("sdk", sorted(CALLS))
def test_instrument_imports_no_sdk_and_a_later_import_is_traced(fake_url, sdk):
    result = run_script(fake_url, uninstrument_first=False, sdk=sdk)
    assert result["imported"] == []  # no installed SDK, nor starlette
    assert result["text"]  # the user's result is there
    assert result["spans"] == [[SPAN_NAMES[sdk], "llmlens"]]


def test_uninstrument_before_the_import_leaves_the_sdk_untraced(fake_url):
    result = run_script(fake_url, uninstrument_first=True)
    assert result["text"]
    # anthropic 2.x traces its own calls when llmlens does not (docs/providers.md); llmlens made none
    assert [scope for _, scope in result["spans"]] in ([], ["com.anthropic.sdk.python"])
