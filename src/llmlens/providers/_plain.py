"""Reading plain values out of request arguments that may be dicts or SDK (pydantic) objects alike.

The cohere SDK takes `{"role": "user", ...}` or `cohere.UserChatMessageV2(...)` for the same message;
these helpers read both, and never raise on an unexpected shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llmlens.core.invocation import Invocation


def get(obj: Any, key: str) -> Any:
    """`obj[key]` for a mapping, `obj.key` for anything else; None when absent."""
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def integer(value: Any) -> int | None:
    """An int, or None (bools are not numbers here)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def count(value: Any) -> int | None:
    """A token count; some SDKs type them as floats (cohere: `input_tokens: Optional[float]`)."""
    value = number(value)
    return int(value) if value is not None else None


def strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A `tool_call` message part; JSON-string arguments parsed to an object, as the schema asks."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def tool_definitions(inv: Invocation, tools: Any) -> None:
    """`gen_ai.tool.definitions` (type, name, description) of `[{"type": "function", "function": ...}]`."""
    if not tools or not isinstance(tools, (list, tuple)):
        return
    definitions = []
    for tool in tools:
        function = get(tool, "function")
        if function is None:
            continue
        definition = {"type": str(get(tool, "type") or "function"), "name": get(function, "name")}
        description = get(function, "description")
        if description:
            definition["description"] = description
        definitions.append(definition)
    if definitions:
        inv.tool_definitions = definitions
