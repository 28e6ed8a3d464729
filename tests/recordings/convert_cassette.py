"""Convert one interaction of a vcrpy cassette (YAML) into a recording for tests/test_recorded.py.

    pip install pyyaml   # only this script needs it; the tests read the JSON with the stdlib
    python tests/recordings/convert_cassette.py CASSETTE.yaml NAME \
        --source "open-telemetry/opentelemetry-python-contrib@<commit>:<path in that repo>" [--interaction N]

writes tests/recordings/NAME.json. Every header is dropped except the response content type, and the
output is refused if it still looks like it holds a credential.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
SECRET_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_-]{16,}"),  # API keys (sk-..., sk-proj-...)
    re.compile(r"Bearer\s+\S+"),
    re.compile(r"\borg-[A-Za-z0-9]{16,}"),  # organization ids
    re.compile(r"\bsess-[A-Za-z0-9]{16,}"),
    re.compile(r"__cf_bm=|_cfuvid="),  # cookies
)


def _header(headers: dict[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else str(value)
    return None


def convert(cassette: dict[str, Any], index: int, source: str) -> dict[str, Any]:
    interaction = cassette["interactions"][index]
    request, response = interaction["request"], interaction["response"]
    body = response["body"]
    text = body.get("string", "") if isinstance(body, dict) else body
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return {
        "source": source,
        "request": {
            "method": request["method"],
            "path": urlsplit(request["uri"]).path,
            "body": json.loads(request["body"]),
        },
        "response": {
            "status": int(response["status"]["code"]),
            "content_type": _header(response.get("headers"), "content-type") or "application/json",
            "body": text,
        },
    }


def main(argv: list[str] | None = None) -> int:
    import yaml  # type: ignore[import-untyped]

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("cassette", type=Path)
    parser.add_argument("name", help="file name without .json, e.g. chat_completion")
    parser.add_argument("--source", required=True, help="<owner>/<repo>@<commit>:<path>")
    parser.add_argument("--interaction", type=int, default=0, help="index of the interaction to keep")
    args = parser.parse_args(argv)
    recording = convert(yaml.safe_load(args.cassette.read_text()), args.interaction, args.source)
    text = json.dumps(recording, indent=2, ensure_ascii=False) + "\n"
    for pattern in SECRET_PATTERNS:
        found = pattern.search(text)
        if found:
            print(f"refusing to write: {found.group(0)[:12]}... looks like a secret", file=sys.stderr)
            return 1
    out = HERE / f"{args.name}.json"
    out.write_text(text)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
