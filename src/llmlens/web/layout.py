"""The frame of every page: the document, the navigation, and the links between pages.

Every URL a page uses is relative to the dashboard's root (`Ctx.url`), whatever it is mounted under
and whatever prefix a reverse proxy strips: `../requests/5` from `/requests/3`, `requests/5` from `/`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from llmlens.web.guard import CSRF_FIELD, csrf_token, route_path
from llmlens.web.html import Markup, tag

NAV = (
    ("overview", "", "Overview"),
    ("requests", "requests", "Requests"),
    ("live", "live", "Live"),
    ("profiles", "profiles", "Profiles"),
    ("storage", "storage", "Storage"),
)


@dataclass(frozen=True)
class Ctx:
    """What a page needs of its request: the way back to the root, the CSRF token, the store's path."""

    base: str  # "./", "../", "../../": the dashboard's root, relative to this page
    csrf: str
    db_path: str

    @classmethod
    def of(cls, request: Request) -> Ctx:
        depth = max(route_path(request.scope).count("/") - 1, 0)
        return cls("../" * depth or "./", csrf_token(request), request.app.state.db_path)

    def in_parent(self) -> Ctx:
        """The same, for markup shown in the page one level up (the live log's rows, fetched from
        `requests/newer` and inserted into `requests`): its links must be relative to that page."""
        return replace(self, base=self.base.removeprefix("../") or "./")

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        """`path` (below the root, no leading slash) relative to this page, with the query's set values."""
        pairs = [(k, str(v)) for k, v in (query or {}).items() if v is not None and v != ""]
        return self.base + path + (f"?{urlencode(pairs)}" if pairs else "")

    def csrf_field(self) -> Markup:
        return tag("input", type="hidden", name=CSRF_FIELD, value=self.csrf)


def document(ctx: Ctx, page: str, title: str, content: Markup) -> Markup:
    """A whole page: the `<body>` has `data-page` (and `data-loaded` once app.js has set it up)."""
    nav = tag(
        "nav",
        [
            tag("a", label, href=ctx.url(path) if path else ctx.base, id=f"nav-{name}",
                aria_current="page" if name == page else None)
            for name, path, label in NAV
        ],
        id="nav",
    )  # fmt: skip
    header = tag(
        "header",
        tag("a", "llmlens", href=ctx.base, id="brand"),
        nav,
        tag("span", ctx.db_path, id="store-path", title="the store this dashboard reads"),
        id="site-header",
    )
    head = (
        Markup(
            '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">'
        )
        + tag("title", f"{title} - llmlens")
        + tag("link", rel="stylesheet", href=ctx.url("static/app.css"))
    )
    head += tag("script", src=ctx.url("static/app.js"), defer=True)
    body = tag("body", header, tag("main", tag("h1", title, id="page-title"), content, id="main"),
               data_page=page, id=f"page-{page}")  # fmt: skip
    return Markup("<!doctype html>\n") + tag("html", tag("head", head), body, lang="en")


def message(text: str, kind: str = "info", element_id: str = "page-message") -> Markup:
    """A notice at the top of a page (kind: info, error)."""
    return tag("p", text, id=element_id, class_=f"notice notice-{kind}", role="status")


def definition_list(rows: list[tuple[str, Any]], element_id: str | None = None) -> Markup:
    """`<dl>` of label and value pairs; each `<dd>` is named `data-field` by its label, for tests."""
    items = []
    for label, value in rows:
        field = label.lower().replace(" ", "-")
        items.append(tag("div", tag("dt", label), tag("dd", value, data_field=field), class_="field"))
    return tag("dl", items, id=element_id, class_="fields")
