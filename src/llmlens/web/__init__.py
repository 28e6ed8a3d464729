"""The local web dashboard over the store: `llmlens ui`, or `create_app()` mounted in your own app.

>>> from llmlens.web import create_app
>>> app.mount("/llmlens", create_app("app.db", token=secret))   # Starlette / FastAPI

Server-rendered HTML (every value escaped), charts as SVG, one small script (static/app.js) for the
live parts, a JSON API with the same data, and a guard in front of it all (guard.py; docs/ui.md).
Every URL a page uses is relative, so it works under any mount point.

URL map (GET unless said otherwise; the API answers JSON):

    /                                  Overview (?window=1h|6h|24h|7d|30d, default 24h)
    /requests                          request log (?since&until&model&provider&status&key&operation
                                       &stream=yes|no&error&trace&limit&cursor)
    /requests/newer?after=ID&...       the rows written after ID, as <tr> rows (the live log polls it)
    /requests/{ref}                    one request: id, TRACE_ID:SPAN_ID, trace id or span id
    /live                              requests in flight
    /profiles                          profiles and arms; POST /profiles/arm, POST /profiles/disarm
    /profiles/{id}                     one profile; /profiles/{id}/flamegraph.html (sandboxed),
                                       /profiles/{id}/speedscope.json (a download)
    /storage                           the store file; POST /storage/prune (vacuum=1 to VACUUM too)
    /static/app.css, /static/app.js
    /api/overview, /api/requests, /api/requests/new?after=ID, /api/requests/{ref}, /api/live,
    /api/live/stream (server-sent events), /api/profiles, /api/profiles/{id}, /api/storage,
    /api/health?window=5m, /api/compat/rosetta-metrics?series_seconds=60,
    /api/compat/vandamme-totals?provider=&model=

Stable hooks for browser tests (ids unless marked `.class` or `[attribute]`):

- every page: `body[data-page]` (overview, requests, request, live, profiles, profile, storage, error)
  and `body[data-loaded="true"]` once app.js has set the page up; `#page-title`, `#nav`,
  `#nav-overview` .. `#nav-storage` (the current one `[aria-current="page"]`), `#store-path`,
  `#page-message` / `#error-message` (`.notice`);
- Overview: `#window-choices` with `#window-1h` .. `#window-30d`; `#kpis` with `#kpi-requests`,
  `#kpi-error-rate`, `#kpi-cost`, `#kpi-avg-duration`, `#kpi-avg-ttfc`, `#kpi-input-tokens`,
  `#kpi-output-tokens`, `#kpi-cache-read-tokens`, `#kpi-cache-write-tokens`, `#kpi-reasoning-tokens`
  (each `.kpi-value`); `#charts` with `#chart-requests`, `#chart-tokens`, `#chart-cost`,
  `#chart-latency`, `#chart-ttfc` (`figure.chart`, an `svg.chart-svg` or `p.empty`); `#health-cards`
  of `.health-card[data-provider][data-status]`; `#top-models`, `#top-errors` (tables);
- Requests: `#filter-form` with `#filter-since`, `#filter-until`, `#filter-model`, `#filter-provider`,
  `#filter-status`, `#filter-key`, `#filter-operation`, `#filter-stream`, `#filter-error`,
  `#filter-trace`, `#filter-limit`, `#filter-apply`, `#filter-clear`; `#filter-problem` (a bad value,
  status 400); `#request-log`
  whose `#request-log-rows` holds `tr[data-id]` (on the first page also `[data-newer-url]`,
  `[data-after]` and `[data-polled]`, the polls so far; new rows get `.row-new`),
  `#request-log-empty`, `#request-log-live`; `#pager` with `#page-older`, `#page-newest`;
- Request: `#request-summary` (`dd[data-field=...]`), `#trace-id`, `#copy-trace-id` (after a click
  `[data-copied="true"]`, or `"selected"` when the browser refused to copy and the id is selected for
  Ctrl-C), `#trace-requests`, `#request-waterfall` (`tr.span[data-span-id]`,
  `.span-this` for this request), `#request-phases`, `#request-profile` with `#profile-summary`,
  `#profile-open`, `#profile-speedscope`; `#request-content` (`pre.content[data-attribute]`);
  `#request-attributes`;
- Live: `#live-count`, `#live-status`, `#live-requests` whose `#live-rows` (`[data-stream-url]`,
  `[data-snapshots]`, the snapshots received so far) holds `tr[data-trace-id][data-span-id]`, or
  `#live-requests-empty`;
- Profiles: `#profile-arm-form` with `#arm-next`, `#arm-provider`, `#arm-model`, `#arm-operation`,
  `#arm-route`, `#arm-min_duration_ms`, `#arm-expires`, `#profile-arm`; `#profile-arm-error`,
  `#profile-message`; `#profile-counters`, `#profile-arms` (`tr[data-id]`, `.arm-state`),
  `#profile-disarm-form` with `#profile-disarm` (while an arm is live); `#profile-list`
  (`tr[data-id]`, `a.profile-link`);
- Profile: `#profile-fields`, `#profile-request`, `#profile-summary`, `#profile-speedscope`,
  `#profile-flamegraph-link`, `iframe#profile-frame[sandbox="allow-scripts"]`;
- Storage: `#storage-stats` (`dd[data-field=...]`), `#storage-message`, `#storage-prune-form`
  (`[data-confirm]`: app.js asks first) with `#storage-vacuum`, `#storage-prune`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # (starlette is imported only when the dashboard is wanted)
        from llmlens.web.app import create_app

        return create_app
    raise AttributeError(name)
