"""One pyinstrument profiler around one request, from its start to its last exit.

pyinstrument samples one thread (a `setstatprofile` hook per thread) and, in async mode, follows one
async context: time the profiled task spends awaiting is shown as `<await>` under the await, not as
the code other tasks ran meanwhile. Two profilers cannot share an async context, and stopping must
happen on the thread that started. So:

- one capture per thread at a time (`Captures.busy`): a second request that would be profiled while the
  thread already profiles one is skipped and counted (the first armed one wins);
- a capture that ends on another thread (a stream handed to a worker, a finaliser run elsewhere) keeps
  what was sampled up to then; its profiler, which only its own thread can unsubscribe, ignores
  further samples and is stopped when that thread next starts an LLM request (`Captures.reclaim`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyinstrument import Profiler

_log = logging.getLogger("llmlens")
_perf_ns = time.perf_counter_ns


@dataclass(eq=False)
class FinishedProfile:
    """A kept capture, on its way to the store's writer thread. `session` is a pyinstrument `Session`."""

    trace_id: str
    span_id: str
    reason: str  # "armed" or "sampled"
    arm_id: int | None
    start_ns: int
    duration_ms: float
    session: Any
    provider: str | None = None
    model: str | None = None
    operation: str | None = None
    route: str | None = None
    is_error: bool = False
    pid: int | None = None
    # Told once whether the profile was stored (True) or not (its arm was used up, or the store failed),
    # and the arm's remaining slots as the store had them then (None: not read).
    on_written: Callable[[bool, int | None], None] | None = field(default=None, repr=False)

    def resolved(self, stored: bool, remaining: int | None = None) -> None:
        callback, self.on_written = self.on_written, None
        if callback is not None:
            try:
                callback(stored, remaining)
            except Exception:
                _log.debug("llmlens: profile callback failed", exc_info=True)


class _Profiler(Profiler):  # type: ignore[misc]
    """A pyinstrument Profiler that can be told to ignore samples (after its capture was detached)."""

    ignoring = False

    def _sampler_saw_call_stack(self, *args: Any) -> None:
        if not self.ignoring:
            super()._sampler_saw_call_stack(*args)


class Capture:
    """A running (then stopped) profile of one request."""

    __slots__ = ("arm", "detached", "profiler", "reason", "session", "start_perf", "stop_perf", "thread")

    def __init__(self, profiler: _Profiler, thread: int) -> None:
        self.profiler = profiler
        self.thread = thread
        self.reason: str | None = None  # "armed" or "sampled"; None: not chosen (yet)
        self.arm: Any = None  # the LiveArm it was taken for
        self.start_perf = _perf_ns()
        self.stop_perf = 0
        self.session: Any = None
        self.detached = False

    @property
    def duration_ms(self) -> float:
        return (self.stop_perf - self.start_perf) / 1e6

    def stop(self) -> None:
        """Stop sampling and keep the session (None if pyinstrument failed). Never raises."""
        if self.stop_perf:
            return
        self.stop_perf = _perf_ns()
        try:
            if threading.get_ident() == self.thread:
                self.session = self.profiler.stop()
            else:
                self.session = _session_so_far(self.profiler)
                self.profiler.ignoring = True
                self.detached = True
        except Exception:
            _log.debug("llmlens: could not stop a profile", exc_info=True)
            self.session = None


class Captures:
    """The captures of one process, by thread."""

    def __init__(self) -> None:
        self.busy: dict[int, Capture] = {}
        self.detached = 0  # captures stopped from another thread whose profiler still waits for its thread

    def start(self, interval_s: float) -> Capture | None:
        """A capture on this thread, or None if the thread already profiles a request (or pyinstrument
        cannot start here)."""
        thread = threading.get_ident()
        current = self.busy.get(thread)
        if current is not None:
            if not current.detached:
                return None
            self.reclaim(current)
        if sys.getprofile() is not None:
            # Another profiler owns this thread's profile hook (cProfile, yappi, the application's own
            # pyinstrument): starting ours would replace it, and stopping ours would remove it.
            return None
        profiler = _Profiler(interval=interval_s, async_mode="enabled")
        try:
            # The whole stack is the start stack, so renderers keep the caller's frames (they trim the
            # stem only down to where the profiler started).
            profiler.start(caller_frame=_root_frame(), target_description="llmlens request profile")
        except RuntimeError:
            # "already a profiler running" in this async context: one the application runs itself, or
            # a stale marker left by a profile stopped from another context. Only ours is cleared.
            if not _clear_stale_marker():
                return None
            try:
                profiler.start(caller_frame=_root_frame(), target_description="llmlens request profile")
            except Exception:
                return None
        except Exception:
            _log.debug("llmlens: could not start a profile", exc_info=True)
            return None
        capture = Capture(profiler, thread)
        self.busy[thread] = capture
        return capture

    def release(self, capture: Capture) -> None:
        """The capture stopped: its thread may profile again (a detached one waits to be reclaimed)."""
        if capture.detached:
            self.detached += 1
        elif self.busy.get(capture.thread) is capture:
            del self.busy[capture.thread]

    def reclaim(self, capture: Capture) -> None:
        """Stop the profiler of a detached capture, on its own thread (the caller's)."""
        self.busy.pop(capture.thread, None)
        self.detached = max(0, self.detached - 1)
        try:
            capture.profiler.stop()
        except Exception:
            _log.debug("llmlens: could not stop a detached profile", exc_info=True)

    def reset(self) -> None:
        """After fork: the parent's threads and their profilers are not in the child."""
        self.busy.clear()
        self.detached = 0


def _root_frame() -> Any:
    frame = sys._getframe(1)
    while frame.f_back is not None:
        frame = frame.f_back
    return frame


def _session_so_far(profiler: Any) -> Any:
    """The session of a running profiler, without unsubscribing it (that only works on its thread)."""
    from pyinstrument.session import Session

    active = profiler._active_session
    if active is None:
        return None
    records = list(active.frame_records)
    return Session(
        frame_records=records,
        start_time=active.start_time,
        duration=time.time() - active.start_time,
        min_interval=active.interval,
        max_interval=active.interval,
        sample_count=len(records),
        target_description=active.target_description,
        start_call_stack=active.start_call_stack,
        cpu_time=time.process_time() - active.start_process_time,
        sys_path=sys.path,
        sys_prefixes=Session.current_sys_prefixes(),
    )


def _clear_stale_marker() -> bool:
    """Clear pyinstrument's "a profiler runs in this context" marker if no sampler on this thread still
    has that profiler (it was stopped from another context). True if cleared."""
    try:
        from pyinstrument.stack_sampler import active_profiler_context_var, get_stack_sampler

        target = active_profiler_context_var.get()
        if target is None:
            return False
        if any(s.target == target for s in get_stack_sampler().subscribers):
            return False  # a live profiler: not ours to clear
        owner = getattr(target, "__self__", None)
        if not isinstance(owner, _Profiler):
            return False
        active_profiler_context_var.set(None)
        return True
    except Exception:
        return False
