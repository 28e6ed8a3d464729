"""Profiles in the store: what the writer thread stores, and what the views read back.

A profile reaches the store as a `FinishedProfile` (llmlens.core.profile_capture) on the span
processor's queue, behind the span of its request (so the request row is written first). The writer
encodes it (pyinstrument's session as JSON, zlib-compressed; the summary), claims a slot of its arm
(`profile_arms.remaining`, decremented in the same transaction, so N profiles are kept in all across
processes), inserts it, links the request row (`requests.profile_id`), and keeps the newest
`Retention.max_profiles`. None of it runs on the application's threads.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Sequence
from typing import Any

from llmlens.core.profile_capture import FinishedProfile
from llmlens.store.retention import cap_profiles

ENCODING = "pyinstrument-session+json+zlib"
_TOP_FRAMES = 8


class ProfileError(ValueError):
    """A stored profile cannot be read back; the message is one line, fit for a user."""


# --- encoding (the writer thread) ----------------------------------------------------------------------


def encode(pending: FinishedProfile, app_excludes: Sequence[str] = ()) -> tuple[Any, ...]:
    """The row values of a profile (without id), encoding its session and summary."""
    session = pending.session
    data = zlib.compress(json.dumps(session.to_json(), separators=(",", ":")).encode(), 6)
    summary = summarize(session, app_excludes)
    return (
        pending.trace_id, pending.span_id, pending.arm_id, pending.reason, pending.start_ns,
        pending.duration_ms, pending.provider, pending.model, pending.operation, pending.route,
        int(pending.is_error), pending.pid, session.sample_count, json.dumps(summary), ENCODING, data,
    )  # fmt: skip


_COLUMNS = (
    "trace_id, span_id, arm_id, reason, start_ns, duration_ms, provider, model, operation, route, is_error, "
    "pid, sample_count, summary, encoding, session"
)
_INSERT = f"INSERT OR IGNORE INTO profiles ({_COLUMNS}) VALUES ({', '.join('?' * 16)})"
_CLAIM = (
    "UPDATE profile_arms SET remaining = remaining - 1 "
    "WHERE id = ? AND remaining > 0 AND disarmed_ns IS NULL AND expires_ns > ?"
)


def write(
    conn: sqlite3.Connection, rows: list[tuple[FinishedProfile, tuple[Any, ...]]], cap: int
) -> list[tuple[bool, int | None]]:
    """Store the encoded profiles (inside the caller's transaction): whether each was stored, and its
    arm's remaining slots after it (None for a sampled profile).

    An armed profile is stored only if its arm still has a slot: the claim and the insert are one
    transaction, so processes that profile at the same time keep N in all."""
    now = time.time_ns()
    stored: list[tuple[bool, int | None]] = []
    for pending, values in rows:
        remaining = None
        if pending.arm_id is not None:
            claimed = conn.execute(_CLAIM, (pending.arm_id, now)).rowcount == 1
            found = conn.execute(
                "SELECT remaining FROM profile_arms WHERE id = ?", (pending.arm_id,)
            ).fetchone()
            remaining = found[0] if found else 0
            if not claimed:
                stored.append((False, remaining))
                continue
        cursor = conn.execute(_INSERT, values)
        if cursor.rowcount != 1:
            stored.append((False, remaining))
            continue
        conn.execute(
            "UPDATE requests SET profile_id = ? WHERE trace_id = ? AND span_id = ?",
            (str(cursor.lastrowid), pending.trace_id, pending.span_id),
        )
        stored.append((True, remaining))
    cap_profiles(conn, cap)
    return stored


# --- the summary --------------------------------------------------------------------------------------


def summarize(session: Any, app_excludes: Sequence[str] = ()) -> dict[str, Any]:
    """Duration, samples, CPU time, and the user's own frames where the time went.

    Each sample's time goes to the innermost frame of application code on its stack (not the Python
    install, the virtualenv, llmlens itself or pyinstrument), so "build_prompt 40%, call_model 55%"
    says where the request spent its time from the user's point of view, library time included."""
    prefixes = tuple(session.sys_prefixes) + tuple(app_excludes)
    by_frame: dict[str, float] = {}
    by_package: dict[str, float] = {}
    cache: dict[str, bool] = {}
    total = 0.0
    for stack, seconds in session.frame_records:
        total += seconds
        package = _leaf_package(stack, session)
        by_package[package] = by_package.get(package, 0.0) + seconds
        for info in reversed(stack):
            identifier = info.split("\x01", 1)[0]
            own = cache.get(identifier)
            if own is None:
                own = cache[identifier] = _is_own_code(identifier, prefixes)
            if own:
                by_frame[identifier] = by_frame.get(identifier, 0.0) + seconds
                break
    top = sorted(by_frame.items(), key=lambda item: item[1], reverse=True)[:_TOP_FRAMES]
    frames = []
    for identifier, seconds in top:
        function, path, line = ([*identifier.split("\x00"), "", ""])[:3]
        frames.append({
            "function": function, "file": _short_path(session, path) if path else "", "line": _int(line),
            "ms": round(seconds * 1000, 3), "share": round(seconds / total, 4) if total else 0.0,
        })  # fmt: skip
    return {
        "duration_ms": round(session.duration * 1000, 3),
        "cpu_ms": round((session.cpu_time or 0.0) * 1000, 3),
        "sample_count": session.sample_count,
        "interval_ms": round(session.min_interval * 1000, 3),
        "top_frames": frames,
        "by_package": [
            {
                "package": name,
                "ms": round(seconds * 1000, 3),
                "share": round(seconds / total, 4) if total else 0.0,
            }
            for name, seconds in sorted(by_package.items(), key=lambda item: item[1], reverse=True)[
                :_TOP_FRAMES
            ]
        ],
    }


# path -> (its path relative to sys.path, its package), for every profile of this process: pyinstrument's
# shorten_path tries every sys.path entry and caches per session only, which was half of encoding a
# profile. Bounded; sys.path rarely changes, and a stale entry only names a file differently.
_SHORT_PATHS: dict[str, tuple[str, str]] = {}
_SHORT_PATHS_MAX = 8192


def _short_path(session: Any, path: str) -> str:
    return _path_names(session, path)[0]


def _path_names(session: Any, path: str) -> tuple[str, str]:
    names = _SHORT_PATHS.get(path)
    if names is None:
        short = session.shorten_path(path).replace("\\", "/")
        names = (short, short.split("/", 1)[0].removesuffix(".py") or short)
        if len(_SHORT_PATHS) >= _SHORT_PATHS_MAX:
            _SHORT_PATHS.clear()
        _SHORT_PATHS[path] = names
    return names


def _leaf_package(stack: Sequence[str], session: Any) -> str:
    """The package (or module) whose code a sample was in: its innermost frame with a Python file, so a
    built-in call (a socket read) counts for the library that made it; `<await>` for awaiting."""
    for info in reversed(stack):
        identifier = info.split("\x01", 1)[0]
        parts = identifier.split("\x00")
        if len(parts) < 2 or not parts[1]:
            if parts[0] in ("[await]", "<await>"):
                return "(awaiting)"
            continue
        path = parts[1]
        if path.startswith("<"):
            continue
        return _path_names(session, path)[1]
    return "(other)"


def _is_own_code(identifier: str, excluded_prefixes: tuple[str, ...]) -> bool:
    parts = identifier.split("\x00")
    if len(parts) < 2 or not parts[1] or parts[1].startswith("<"):
        return False  # synthetic frames (<await>, <thread>), generated code
    return not parts[1].startswith(excluded_prefixes)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


# --- reading back (the views) ---------------------------------------------------------------------------

LIST_COLUMNS = (
    "id", "trace_id", "span_id", "arm_id", "reason", "start_ns", "duration_ms", "provider", "model",
    "operation", "route", "is_error", "pid", "sample_count", "summary",
)  # fmt: skip


def list_profiles(conn: sqlite3.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The newest profiles first, without their sessions; with the request id when its row is there."""
    return [_listed(row) for row in _select(conn, "ORDER BY p.id DESC LIMIT ?", (limit,))]


def get_profile(conn: sqlite3.Connection, profile_id: int) -> dict[str, Any] | None:
    """One profile's listing and its encoded session (`encoding`, `session`), or None."""
    row = _select(conn, "WHERE p.id = ?", (profile_id,), ", p.encoding, p.session").fetchone()
    if row is None:
        return None
    profile = _listed(row[:-2])
    profile["encoding"], profile["session"] = row[-2], row[-1]
    return profile


def profile_of_arm(conn: sqlite3.Connection, arm_id: int) -> dict[str, Any] | None:
    """The first profile stored for an arm, or None."""
    row = _select(conn, "WHERE p.arm_id = ? ORDER BY p.id LIMIT 1", (arm_id,)).fetchone()
    return None if row is None else _listed(row)


def profile_for_request(conn: sqlite3.Connection, trace_id: str, span_id: str) -> dict[str, Any] | None:
    row = _select(conn, "WHERE p.trace_id = ? AND p.span_id = ?", (trace_id, span_id)).fetchone()
    return None if row is None else _listed(row)


def _select(conn: sqlite3.Connection, rest: str, args: tuple[Any, ...], extra: str = "") -> sqlite3.Cursor:
    """Profiles (LIST_COLUMNS, their request's id, then `extra`) with `rest` (WHERE/ORDER/LIMIT)."""
    return conn.execute(
        f"SELECT {', '.join('p.' + c for c in LIST_COLUMNS)}, r.id{extra} FROM profiles AS p"
        f" LEFT JOIN requests AS r ON r.trace_id = p.trace_id AND r.span_id = p.span_id {rest}",
        args,
    )


def _listed(row: Sequence[Any]) -> dict[str, Any]:
    profile = dict(zip(LIST_COLUMNS, row[: len(LIST_COLUMNS)], strict=True))
    profile["request_id"] = row[len(LIST_COLUMNS)]
    profile["is_error"] = bool(profile["is_error"])
    try:
        profile["summary"] = json.loads(profile["summary"] or "{}")
    except ValueError:
        profile["summary"] = {}
    return profile


def decode_session(profile: dict[str, Any]) -> Any:
    """The pyinstrument Session of a stored profile; ProfileError (one line) if it cannot be read."""
    from pyinstrument.session import Session

    where = f"profile {profile.get('id')}"
    if profile.get("encoding") != ENCODING:
        raise ProfileError(f"{where} has an unknown encoding {profile.get('encoding')!r}; it cannot be shown")
    blob = profile.get("session")
    if not isinstance(blob, (bytes, bytearray)):
        raise ProfileError(f"{where} holds no session data")
    try:
        data = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as error:
        raise ProfileError(f"{where} is damaged (its session data cannot be decompressed: {error})") from None
    try:
        return Session.from_json(data)
    except Exception as error:
        raise ProfileError(
            f"{where} is not a session this pyinstrument can read ({type(error).__name__}: {error})"
        ) from None
