"""The differences between the openai SDK majors the suite runs against, in one place.

`scripts/test` runs the OpenAI-facing tests twice: in `.venv` with openai 3 (which sends through
`httpx2`) and in `.venv-openai2` with openai 2 (which sends through `httpx`). Test modules that must
know which one they run against import the names below; the tests here check that the detection
matches the SDK that is installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import openai
import openai._base_client as _openai_base_client
import pytest
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

from llmlens.instrumentor import Instrumentor

OPENAI_MAJOR = int(openai.__version__.split(".", 1)[0])
# The HTTP library openai sends through: whichever one its base client imports (httpx2 from openai 3 on).
HTTP_LIBRARY = "httpx2" if hasattr(_openai_base_client, "httpx2") else "httpx"
httpx_module: ModuleType = importlib.import_module(HTTP_LIBRARY)
# What iterating a stream raises when the connection breaks mid-body: openai 3 wraps the transport's
# error in openai.APIConnectionError; openai 2 lets the transport's own error through.
STREAM_BREAK_ERROR: type[Exception] = (
    openai.APIConnectionError if OPENAI_MAJOR >= 3 else httpx_module.RemoteProtocolError
)
# The error.type llmlens records for it (the exception's top-level package and class name).
STREAM_BREAK_ERROR_TYPE = f"{STREAM_BREAK_ERROR.__module__.split('.')[0]}.{STREAM_BREAK_ERROR.__qualname__}"


def http_client_instrumentor() -> Any:
    """The OpenTelemetry instrumentor for the HTTP library openai sends through (HTTPXClientInstrumentor
    patches only httpx, HTTPX2ClientInstrumentor only httpx2)."""
    from opentelemetry.instrumentation import httpx as otel_httpx

    if HTTP_LIBRARY == "httpx2":
        return otel_httpx.HTTPX2ClientInstrumentor()
    return otel_httpx.HTTPXClientInstrumentor()


def test_detected_http_library_is_the_one_openai_sends_through(client: Any) -> None:
    assert OPENAI_MAJOR in (2, 3), openai.__version__
    expected = "httpx2" if OPENAI_MAJOR >= 3 else "httpx"
    assert expected == HTTP_LIBRARY
    assert isinstance(client._client, httpx_module.Client)


def test_llmlens_supports_the_installed_sdk() -> None:
    assert get_dependency_conflicts(Instrumentor().instrumentation_dependencies()) is None


def test_stream_break_error(client: Any) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        extra_headers={"x-fake-scenario": "abort_after=2"},
    )
    with pytest.raises(STREAM_BREAK_ERROR) as caught:
        list(stream)
    assert type(caught.value) is STREAM_BREAK_ERROR  # exactly, not a subclass
    if OPENAI_MAJOR >= 3:
        assert isinstance(caught.value.__cause__, httpx_module.RemoteProtocolError)
