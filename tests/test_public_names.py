"""Every documented public name is what the docs say it is, however it is reached.

Each case runs in a fresh interpreter, because what a package attribute resolves to depends on what
was imported before: a submodule named like a lazy attribute replaces it once imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# package -> the names its docs promise, each with the kind of object it must be.
PUBLIC_NAMES = {
    "llmlens": {
        "Instrumentor": "class",
        "configure": "function",
        "llm_request": "function",
        "traced_operation": "function",
        "__version__": "str",
    },
    "llmlens.logs": {
        "JsonFormatter": "class",
        "REDACTED": "str",
        "RedactingFilter": "class",
        "RequestContextFilter": "class",
        "TextFormatter": "class",
        "current_request_id": "function",
        "install_log_correlation": "function",
        "redact": "function",
    },
    "llmlens.proxy": {
        "LLMProxyMiddleware": "class",
        "LLMRequest": "class",
        "current_llm_request": "function",
        "llm_request": "function",
        "traced_operation": "function",
    },
    "llmlens.store": {
        "RecordGenAISampler": "class",
        "Retention": "class",
        "SQLiteSpanProcessor": "class",
        "StoreError": "class",
        "StoreStats": "class",
        "default_db_path": "function",
        "open_store": "function",
    },
    "llmlens.web": {
        "create_app": "function",
    },
}

# How a user may reach a name: plain attribute access, `from ... import`, and attribute access after
# every submodule of the package has been imported (what a framework or a test runner may do).
WAYS = {
    "attribute": "import {package} as pkg\nobj = getattr(pkg, {name!r})",
    "from_import": "from {package} import {name} as obj",
    "after_submodules": (
        "import importlib, pkgutil\nimport {package} as pkg\n"
        "for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "obj = getattr(pkg, {name!r})"
    ),
}

CHECK = """
import inspect
kind = {kind!r}
ok = {{"class": inspect.isclass, "function": inspect.isfunction, "str": lambda o: isinstance(o, str)}}[kind]
assert ok(obj), f"{package}.{name} is {{obj!r}}, expected a {{kind}}"
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_every_public_name_is_what_the_docs_say(package: str, way: str) -> None:
    parts = []
    for name, kind in PUBLIC_NAMES[package].items():
        parts.append(WAYS[way].format(package=package, name=name))
        parts.append(CHECK.format(package=package, name=name, kind=kind))
    result = _run("\n".join(parts))
    assert result.returncode == 0, result.stderr


def test_all_lists_exactly_the_documented_names() -> None:
    code = "import importlib, json\n" + "".join(
        f"print(json.dumps(sorted(importlib.import_module({p!r}).__all__)))\n" for p in sorted(PUBLIC_NAMES)
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    listed = [json.loads(line) for line in result.stdout.splitlines() if line]
    assert listed == [sorted(PUBLIC_NAMES[p]) for p in sorted(PUBLIC_NAMES)]


@pytest.mark.parametrize(
    "prelude",
    ["import llmlens", "import llmlens\nimport llmlens.sdk_setup", "from llmlens import configure as _c"],
)
def test_configure_can_be_called_twice(prelude: str) -> None:
    code = textwrap.dedent(
        """
        import llmlens
        first = llmlens.configure(service_name="a", exporter="none", store=False)
        second = llmlens.configure(service_name="b", exporter="none", store=False)
        first.shutdown(); second.shutdown()
        print("ok")
        """
    )
    result = _run(prelude + "\n" + code)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr
