"""HTML built in Python with every value escaped: `Markup` is text that is already HTML, and only `tag`,
`esc` and `join` make it, so a model name or an error message can never become markup.

Example:
    >>> tag("td", "<script>", class_="model")
    Markup('<td class="model">&lt;script&gt;</td>')
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

# Elements that have no closing tag.
_VOID = frozenset(("br", "hr", "img", "input", "link", "meta", "source", "wbr"))


class Markup(str):
    """Text that is HTML already (made here, with every value escaped); anything else is escaped."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Markup({str.__repr__(self)})"

    def __add__(self, other: object) -> Markup:  # (text added to Markup is escaped, never trusted)
        return Markup(str.__add__(self, esc(other)))

    def __radd__(self, other: object) -> Markup:
        return Markup(str.__add__(esc(other), self))


Child = Any  # Markup, text, a number, None (nothing) or an iterable of children


def esc(value: Child) -> Markup:
    """A child as HTML: Markup as it is, None as nothing, an iterable joined, anything else escaped."""
    if isinstance(value, Markup):
        return value
    if value is None or value is False:
        return Markup("")
    if isinstance(value, (list, tuple)) or (isinstance(value, Iterable) and not isinstance(value, str)):
        return join(value)
    return Markup(html.escape(str(value), quote=True))


def join(children: Iterable[Child], separator: str = "") -> Markup:
    return Markup(separator.join(esc(child) for child in children))


def breakable(text: str, after: str = ".") -> Markup:
    """`text`, escaped, that may wrap after each `after`: an error type (`openai.RateLimitError`) then
    breaks at its dots instead of widening its column."""
    return join(text.split(after), html.escape(after, quote=True) + "<wbr>")


def attrs(values: dict[str, Any]) -> str:
    """` name="value"` pairs: `class_` is `class`, `data_x` is `data-x`, True a bare name, None/False none."""
    parts = []
    for key, value in values.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        if value is True:
            parts.append(f" {name}")
        else:
            parts.append(f' {name}="{html.escape(str(value), quote=True)}"')
    return "".join(parts)


def tag(element: str, /, *children: Child, **attributes: Any) -> Markup:
    """`<element attributes>children</element>`, every attribute value and text child escaped."""
    opening = f"<{element}{attrs(attributes)}>"
    if element in _VOID:
        return Markup(opening)
    return Markup(f"{opening}{join(children)}</{element}>")


def pretty_json_or_text(value: Any) -> str:
    """A captured-content attribute as readable text: JSON indented when it parses, else as it is."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
