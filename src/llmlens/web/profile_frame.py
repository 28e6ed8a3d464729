"""pyinstrument's HTML page of a profile, made fit for the sandboxed frame of the Profiles page.

The page runs pyinstrument's own inline script, so it is served with a CSP of its own: a sandbox
without `allow-same-origin` (an opaque origin: no cookies, no access to the dashboard or its API) that
may fetch nothing (pyinstrument would load web fonts from Google). In that sandbox `localStorage`
throws, which stops pyinstrument's script before it draws anything: a small script first puts an
in-memory stand-in in its place. Another keeps out the web-font stylesheet that pyinstrument's script
adds to the page (the CSP would refuse it anyway, with an error in the browser's console every time).
"""

from __future__ import annotations

CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'self'"
)
_STORAGE_STAND_IN = (
    "<script>(function () {"
    "try { window.localStorage; return; } catch (e) {}"
    "var items = {};"
    "var storage = {"
    "getItem: function (k) { return Object.prototype.hasOwnProperty.call(items, k) ? items[k] : null; },"
    "setItem: function (k, v) { items[k] = String(v); },"
    "removeItem: function (k) { delete items[k]; },"
    "clear: function () { items = {}; },"
    "key: function (i) { return Object.keys(items)[i] || null; },"
    "get length() { return Object.keys(items).length; }"
    "};"
    "Object.defineProperty(window, 'localStorage', {value: storage, configurable: true});"
    "})();</script>"
)
_NO_FETCHED_LINKS = (
    "<script>(function () {"
    "var append = Node.prototype.appendChild;"
    "Node.prototype.appendChild = function (node) {"
    "if (node instanceof HTMLLinkElement && /^https?:/i.test(node.href)) return node;"
    "return append.call(this, node);"
    "};"
    "})();</script>"
)
_MARKER = '<meta charset="utf-8">'


def frame_html(page: str) -> str:
    """pyinstrument's page with the storage stand-in and the link filter ahead of its script."""
    scripts = _STORAGE_STAND_IN + _NO_FETCHED_LINKS
    if _MARKER in page:
        return page.replace(_MARKER, _MARKER + scripts, 1)
    return scripts + page
