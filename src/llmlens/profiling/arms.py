"""Arms: "profile the next N requests that match" requests, kept in the store file.

`llmlens profile arm` (or `llmlens.profiling.arm()`) inserts a row into `profile_arms`; every process
that writes to the same store reads the live arms every half second (llmlens.profiling.watcher) and
profiles the requests that match. A profile is stored only if it can claim one of the arm's remaining
slots, in the transaction that stores it (llmlens.store.profiles), so N is honoured across processes.
"""

from __future__ import annotations

import fnmatch
import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

_PATTERN_CHARS = re.compile(r"[*?\[]")
FILTERS = ("provider", "model", "operation", "route")
MAX_NEXT = 10_000
DEFAULT_EXPIRES_S = 600.0


@dataclass(frozen=True)
class ArmSpec:
    """What to profile: the next `count` requests matching every filter given (None: any).

    `model` and `route` may be shell patterns (`gpt-4o*`, `/v1/*`); `min_duration_ms` keeps only
    requests at least that slow (faster ones do not use a slot)."""

    count: int
    provider: str | None = None
    model: str | None = None
    operation: str | None = None
    route: str | None = None
    min_duration_ms: float | None = None
    expires_s: float = DEFAULT_EXPIRES_S

    def check(self) -> ArmSpec:
        """Itself, or ValueError with one line saying which value is wrong."""
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 1 <= self.count <= MAX_NEXT:
            raise ValueError(f"next={self.count!r} is not valid; accepted: an integer from 1 to {MAX_NEXT}")
        for name in FILTERS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name}={value!r} is not valid; accepted: a non-empty string")
        minimum = self.min_duration_ms
        if minimum is not None and (isinstance(minimum, bool) or not isinstance(minimum, (int, float))
                                    or not 0 <= minimum < 1e12):  # fmt: skip
            raise ValueError(f"min_duration_ms={minimum!r} is not valid; accepted: milliseconds >= 0")
        expires = self.expires_s
        if (
            isinstance(expires, bool)
            or not isinstance(expires, (int, float))
            or not 0 < expires <= 366 * 86400
        ):
            raise ValueError(f"expires={expires!r} is not valid; accepted: seconds > 0, at most a year")
        return self


def create(conn: sqlite3.Connection, spec: ArmSpec, now_ns: int | None = None) -> int:
    """Insert the arm; its id."""
    spec.check()
    now = now_ns or time.time_ns()
    cursor = conn.execute(
        "INSERT INTO profile_arms (created_ns, expires_ns, requested, remaining, provider, model, operation,"
        " route, min_duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (now, now + int(spec.expires_s * 1e9), spec.count, spec.count, spec.provider, spec.model,
         spec.operation, spec.route, spec.min_duration_ms),
    )  # fmt: skip
    return int(cursor.lastrowid or 0)


def disarm(conn: sqlite3.Connection, now_ns: int | None = None) -> int:
    """End every live arm; how many there were."""
    now = now_ns or time.time_ns()
    return conn.execute(f"UPDATE profile_arms SET disarmed_ns = ? WHERE {_LIVE}", (now, now)).rowcount


_COLUMNS = (
    "id", "created_ns", "expires_ns", "requested", "remaining", "provider", "model", "operation", "route",
    "min_duration_ms", "disarmed_ns", "skipped_busy",
)  # fmt: skip


_LIVE = "disarmed_ns IS NULL AND remaining > 0 AND expires_ns > ?"


def rows(
    conn: sqlite3.Connection, live_only: bool = False, limit: int = 20, now_ns: int | None = None
) -> list[dict[str, Any]]:
    """Arms, newest first, each with its `state`: live, used up, expired or disarmed."""
    now = now_ns or time.time_ns()
    select = f"SELECT {', '.join(_COLUMNS)} FROM profile_arms"
    if live_only:
        cursor = conn.execute(f"{select} WHERE {_LIVE} ORDER BY id DESC LIMIT ?", (now, limit))
    else:
        cursor = conn.execute(f"{select} ORDER BY id DESC LIMIT ?", (limit,))
    found = []
    for values in cursor:
        row = dict(zip(_COLUMNS, values, strict=True))
        if row["disarmed_ns"] is not None:
            row["state"] = "disarmed"
        elif row["remaining"] <= 0:
            row["state"] = "used up"
        elif row["expires_ns"] <= now:
            row["state"] = "expired"
        else:
            row["state"] = "live"
        found.append(row)
    return found


# --- in a running process ---------------------------------------------------------------------------


@dataclass(eq=False)
class LiveArm:
    """An arm as a running process sees it. `pending`: profiles this process took for it that the writer
    has not stored (or given up) yet; a request is profiled only while remaining - pending > 0."""

    id: int
    remaining: int
    expires_ns: int
    provider: str | None
    model: str | None
    operation: str | None
    route: str | None
    min_duration_ms: float | None
    pending: int = 0
    skipped_busy: int = 0  # requests it matched while the thread was busy with another profile
    _model: Any = field(default=None, repr=False)
    _route: Any = field(default=None, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LiveArm:
        arm = cls(
            row["id"], row["remaining"], row["expires_ns"], row["provider"], row["model"], row["operation"],
            row["route"], row["min_duration_ms"],
        )  # fmt: skip
        arm._model = _matcher(arm.model)
        arm._route = _matcher(arm.route)
        return arm

    def open(self, now_ns: int) -> bool:
        return self.remaining - self.pending > 0 and now_ns < self.expires_ns

    def matches(self, provider: Any, model: Any, operation: Any, route: Any) -> bool:
        if self.provider is not None and provider != self.provider:
            return False
        if self.operation is not None and operation != self.operation:
            return False
        if self._model is not None and not (isinstance(model, str) and self._model(model)):
            return False
        return self._route is None or (isinstance(route, str) and self._route(route))


def _matcher(value: str | None) -> Any:
    """A test of a string against `value`: equality, or a shell pattern if it has * ? or [."""
    if value is None:
        return None
    if _PATTERN_CHARS.search(value):
        return re.compile(fnmatch.translate(value)).match
    return value.__eq__
