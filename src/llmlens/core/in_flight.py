"""The invocations in flight in this process, by their span, for the store's writer to read their progress.

`Telemetry.start` adds each invocation once its span has started and `end_guarded` removes it as it ends:
a dict store and a pop per request. The local store's writer thread (llmlens.store.active) looks up the
spans of the requests it shows as in flight, every half second, to read how many chunks a stream has had
so far and when the first came: the span itself carries them only once it ends.

Keys are `id(span)` (a tracer of any make gives spans of any type, hashable or not); a reader checks
`inv.span is span`. Only look-ups happen from other threads, never iteration.

Example:
    >>> inv = IN_FLIGHT.get(id(span))
    >>> chunks = len(inv.chunk_times) if inv is not None and inv.span is span else None
"""

from __future__ import annotations

import os
from typing import Any

IN_FLIGHT: dict[int, Any] = {}  # id(inv.span) -> the Invocation (core/invocation.py)


def _clear_after_fork() -> None:
    # The parent's other threads, and so the ends of their invocations, do not exist in the child.
    IN_FLIGHT.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_clear_after_fork)
