"""Profiles: the stored profiles, the arms (with a form to arm and one to disarm), and one profile:
its summary, pyinstrument's HTML in a sandboxed frame, and a speedscope download.

`load` asks `list_profiles` and `profiling.status`, `load_one` asks `get_profile` (`/api/profiles`,
`/api/profiles/{id}`); `arm_from_form` turns the POSTed form into `profiling.arm(...)`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from llmlens import profiling
from llmlens.profiling.arms import DEFAULT_EXPIRES_S, MAX_NEXT
from llmlens.store import formats, inputs
from llmlens.store.profiles import get_profile, list_profiles
from llmlens.web.html import Markup, join, tag
from llmlens.web.layout import Ctx, definition_list, message
from llmlens.web.params import text
from llmlens.web.tables import table

LIST_LIMIT = 100
ARM_FIELDS = ("provider", "model", "operation", "route")


def load(conn: sqlite3.Connection, db_path: str) -> dict[str, Any]:
    return {"profiles": list_profiles(conn, limit=LIST_LIMIT), "status": profiling.status(db_path)}


def load_one(conn: sqlite3.Connection, profile_id: int) -> dict[str, Any] | None:
    profile = get_profile(conn, profile_id)
    if profile is None:
        return None
    profile.pop("session", None)  # the encoded session: rendered on demand, never sent as it is
    return profile


def arm_from_form(form: Mapping[str, str], db_path: str) -> int:
    """Arm as the form asks; ValueError (one line) for a bad value."""
    count = inputs.count(text(form, "next") or "1", MAX_NEXT, "next")
    minimum = text(form, "min_duration_ms")
    try:
        min_ms = None if minimum is None else float(minimum)
    except ValueError:
        raise ValueError(f"min_duration_ms={minimum!r} is not valid; accepted: milliseconds >= 0") from None
    expires = text(form, "expires") or f"{DEFAULT_EXPIRES_S:g}s"
    filters = {name: text(form, name) for name in ARM_FIELDS}
    return profiling.arm(count, min_duration_ms=min_ms, expires=expires, db=db_path, **filters)


# --- the pages ----------------------------------------------------------------------------------------


def _arm_form(ctx: Ctx, form: Mapping[str, str]) -> Markup:
    def field(name: str, label: str, placeholder: str, default: str = "") -> Markup:
        return tag("label", label, tag("input", type="text", name=name, id=f"arm-{name}",
                                       value=form.get(name, default), placeholder=placeholder),
                   for_=f"arm-{name}")  # fmt: skip

    fields = [
        field("next", "next requests", "1", "1"),
        field("provider", "provider", "openai"),
        field("model", "model", "gpt-4o* (a pattern)"),
        field("operation", "operation", "chat"),
        field("route", "route", "/v1/* (proxied requests)"),
        field("min_duration_ms", "at least (ms)", "500"),
        field("expires", "expires after", "10m", form.get("expires", "10m")),
    ]
    button = tag("div", tag("button", "arm", type="submit", id="profile-arm"), class_="buttons")
    return tag("form", ctx.csrf_field(), fields, button, method="post", action=ctx.url("profiles/arm"),
               id="profile-arm-form", class_="filters")  # fmt: skip


def _arms(ctx: Ctx, status: dict[str, Any]) -> Markup:
    arms = status["live"] + status["recent"]
    rows = []
    for arm in arms:
        filters = ", ".join(f"{k} {arm[k]}" for k in ARM_FIELDS if arm.get(k))
        if arm.get("min_duration_ms") is not None:
            filters += (", " if filters else "") + f"at least {formats.duration(arm['min_duration_ms'])}"
        state = tag("span", arm["state"], class_=f"arm-state arm-{arm['state'].replace(' ', '-')}")
        rows.append([arm["id"], state, f"{arm['requested'] - arm['remaining']}/{arm['requested']}",
                     filters or "any request", formats.local_time(arm["created_ns"]),
                     formats.local_time(arm["expires_ns"])])  # fmt: skip
    disarm = tag("form", ctx.csrf_field(), tag("button", "disarm all", type="submit", id="profile-disarm"),
                 method="post", action=ctx.url("profiles/disarm"), id="profile-disarm-form")  # fmt: skip
    counters = status["counters"]
    note = (f"{formats.count(status['profiles'])} profiles stored; requests skipped (thread busy) "
            f"{counters.get('skipped_busy', 0)}, sampled but too fast {counters.get('sampled_not_kept', 0)}, "
            f"armed but too fast {counters.get('armed_too_fast', 0)}, "
            f"not stored {counters.get('not_stored', 0)}")  # fmt: skip
    return tag("section", tag("h2", "arms"), tag("p", note, class_="note", id="profile-counters"),
               table("profile-arms", ["arm", "state", "profiled", "filters", "armed", "until"], rows,
                     empty="nothing armed yet", row_ids=[a["id"] for a in arms]),
               disarm if status["live"] else None, id="arms")  # fmt: skip


def _list(ctx: Ctx, profiles: list[dict[str, Any]]) -> Markup:
    rows = []
    for p in profiles:
        packages = (p.get("summary") or {}).get("by_package") or []
        top = ", ".join(f"{x['package']} {x.get('share', 0) * 100:.0f}%" for x in packages[:3])
        request = (tag("a", p["request_id"], href=ctx.url(f"requests/{p['request_id']}"))
                   if p["request_id"] else "pruned")  # fmt: skip
        rows.append([tag("a", p["id"], href=ctx.url(f"profiles/{p['id']}"), class_="profile-link"),
                     formats.local_time(p["start_ns"]), request, p["provider"] or "",
                     tag("span", p["model"] or "", class_="model", title=p["model"] or ""), p["route"] or "",
                     formats.duration(p["duration_ms"]), formats.count(p["sample_count"]), p["reason"],
                     top])  # fmt: skip
    headers = ["profile", "time", "request", "provider", "model", "route", "duration", "samples", "reason",
               "time by package"]  # fmt: skip
    return tag("section", tag("h2", "profiles"),
               table("profile-list", headers, rows, numeric=(0, 6, 7), row_ids=[p["id"] for p in profiles],
                     empty="no profiles stored: arm one above, then make requests"),
               id="profiles")  # fmt: skip


def render(data: dict[str, Any], ctx: Ctx, query: Mapping[str, str], error: str | None = None,
           form: Mapping[str, str] | None = None) -> Markup:  # fmt: skip
    notices = []
    if error:
        notices.append(message(error, "error", "profile-arm-error"))
    elif query.get("armed"):
        notices.append(message(f"armed (arm {query['armed']}): running processes pick it up within a second",
                               element_id="profile-message"))  # fmt: skip
    elif query.get("disarmed") is not None:
        notices.append(message(f"disarmed {query['disarmed']} arm(s)", element_id="profile-message"))
    return join((*notices, tag("section", tag("h2", "arm"), _arm_form(ctx, form or {}), id="arm"),
                 _arms(ctx, data["status"]), _list(ctx, data["profiles"])))  # fmt: skip


def render_one(profile: dict[str, Any], ctx: Ctx) -> Markup:
    pid = profile["id"]
    request_id = profile["request_id"]
    request = (tag("a", f"request {request_id}", href=ctx.url(f"requests/{request_id}"), id="profile-request")
               if request_id else "its request row was pruned")  # fmt: skip
    rows: list[tuple[str, Any]] = [
        ("request", request), ("provider", profile["provider"] or ""), ("model", profile["model"] or ""),
        ("operation", profile["operation"] or ""),
    ]  # fmt: skip
    if profile["route"]:  # proxied requests only
        rows.append(("route", profile["route"]))
    rows += [("reason", profile["reason"]), ("process", profile["pid"])]
    fields = definition_list(rows, "profile-fields")
    summary = tag("pre", "\n".join(formats.profile_summary_lines(profile)), id="profile-summary")
    links = tag("p", tag("a", "speedscope file", href=ctx.url(f"profiles/{pid}/speedscope.json"),
                         id="profile-speedscope", download=f"llmlens-profile-{pid}.speedscope.json"), " ",
                tag("a", "open the flame graph alone", href=ctx.url(f"profiles/{pid}/flamegraph.html"),
                    id="profile-flamegraph-link", rel="noopener", target="_blank"))  # fmt: skip
    frame = tag("iframe", src=ctx.url(f"profiles/{pid}/flamegraph.html"), sandbox="allow-scripts",
                id="profile-frame", class_="profile-frame", title=f"pyinstrument profile {pid}")  # fmt: skip
    return join((fields, summary, links, frame))
