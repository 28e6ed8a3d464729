"""`arm`, `disarm`, `status`: profiling from Python, the same as `llmlens profile arm|disarm|status`."""

from __future__ import annotations

import time
from typing import Any

from llmlens.profiling.arms import DEFAULT_EXPIRES_S, ArmSpec


def arm(
    next: int = 1,
    *,
    provider: str | None = None,
    model: str | None = None,
    operation: str | None = None,
    route: str | None = None,
    min_duration_ms: float | None = None,
    expires: str | float = DEFAULT_EXPIRES_S,
    db: str | None = None,
) -> int:
    """Profile the next `next` requests matching every filter given, in every process writing to the
    store `db` (default: $LLMLENS_DB or the user data directory). Returns the arm's id.

    `model` and `route` may be shell patterns (`gpt-4o*`); `min_duration_ms` keeps only requests at
    least that slow (faster ones do not count); `expires`: seconds, or text such as `10m`, `1h`.
    A bad value raises ValueError with one line. Running processes pick the arm up within a second
    (this process at once).

    Example:
        >>> from llmlens import profiling
        >>> profiling.arm(3, provider="openai", min_duration_ms=200, expires="30m")
    """
    from llmlens.profiling import arms
    from llmlens.store.inputs import duration

    expires_s = duration(expires, "expires") if isinstance(expires, str) else expires
    spec = ArmSpec(next, provider, model, operation, route, min_duration_ms, expires_s).check()
    conn = _open(db, create=True)
    try:
        arm_id = arms.create(conn, spec)
    finally:
        conn.close()
    _poll_here(db)
    return arm_id


def disarm(db: str | None = None) -> int:
    """End every live arm of the store; returns how many there were."""
    from llmlens.profiling import arms

    conn = _open(db, create=False)
    try:
        ended = arms.disarm(conn)
    finally:
        conn.close()
    _poll_here(db)
    return ended


def status(db: str | None = None) -> dict[str, Any]:
    """The arms (live ones first, then the last few others), the profiles stored, and the counts of
    requests the running processes skipped or did not keep (see docs/profiling.md)."""
    from llmlens.core.profiling import COUNTERS
    from llmlens.profiling import arms
    from llmlens.profiling.watcher import COUNTER_KEY

    conn = _open(db, create=False)
    try:
        now = time.time_ns()
        rows = arms.rows(conn, limit=10, now_ns=now)
        stored, newest = conn.execute("SELECT count(*), max(start_ns) FROM profiles").fetchone()
        counters = {}
        for name in COUNTERS:
            found = conn.execute(
                "SELECT value FROM meta WHERE key = ?", (COUNTER_KEY.format(name),)
            ).fetchone()
            counters[name] = int(found[0]) if found else 0
    finally:
        conn.close()
    return {
        "live": [r for r in rows if r["state"] == "live"],
        "recent": [r for r in rows if r["state"] != "live"],
        "profiles": stored,
        "newest_profile_ns": newest,
        "counters": counters,
    }


def _open(db: str | None, create: bool) -> Any:
    import os

    from llmlens.store.paths import default_db_path
    from llmlens.store.schema import StoreError, open_store

    path = db or default_db_path()
    if create and db is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        # An arm in a store no app writes yet is fine (the app picks it up when it starts), but a path
        # whose folder does not exist is a typo far more often: say so rather than make the folders.
        raise StoreError(f"no folder {os.path.dirname(os.path.abspath(path))} for the store {path}")
    return open_store(path, create=create)


def _poll_here(db: str | None) -> None:
    """This process watches the same store: read the arms now rather than within half a second."""
    import os

    from llmlens.core.profiling import SWITCH
    from llmlens.store.paths import default_db_path

    watcher = SWITCH.watcher
    if (
        watcher is not None
        and SWITCH.path
        and os.path.abspath(SWITCH.path) == os.path.abspath(db or default_db_path())
    ):
        watcher.poll_now()
