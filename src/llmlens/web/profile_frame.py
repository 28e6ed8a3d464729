"""pyinstrument's HTML page of a profile, made fit for the sandboxed frame of the Profiles page.

The page runs pyinstrument's own inline script, so it is served with a CSP of its own: a sandbox
without `allow-same-origin` (an opaque origin: no cookies, no access to the dashboard or its API) that
may fetch nothing (pyinstrument would load web fonts from Google). In that sandbox `localStorage`
throws, which stops pyinstrument's script before it draws anything: a small script first puts an
in-memory stand-in in its place.
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
_MARKER = '<meta charset="utf-8">'


def frame_html(page: str) -> str:
    """pyinstrument's page with the storage stand-in ahead of its script."""
    if _MARKER in page:
        return page.replace(_MARKER, _MARKER + _STORAGE_STAND_IN, 1)
    return _STORAGE_STAND_IN + page
