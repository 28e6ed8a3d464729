"""The profiling switch of a process: which requests get a profile, and where finished ones go.

The request path asks one thing while nothing is armed: `SWITCH.on` (a bool attribute, read in
`Telemetry.start`), so an unarmed process pays one attribute read per request. `on` is true while an
arm is live (the watcher thread reads the store every half second), while sampling is set
(`LLMLENS_PROFILE_SAMPLE`), or while a detached capture waits for its thread.

Then, per request:
- `begin(inv)` at the invocation's start: the first live arm whose filters match takes it (if the arm
  has slots left in this process's view), else the sampling draw; a thread already profiling skips
  it (counted). pyinstrument starts (or, for a proxied request, the capture that started at its first
  byte, `early()`, is kept or dropped).
- `llmlens.core.telemetry.end_guarded` stops the capture at the invocation's end, before the span ends, and
  hands it over after: kept profiles go to the store's writer thread (`SQLiteSpanProcessor
  .submit_profile`) as a `FinishedProfile` with their trace and span ids; the writer encodes them and
  claims the arm's slot (llmlens.store.profiles).

The arms, their watcher thread, the commands and the views are in llmlens.profiling, above the store;
this module only takes what they give it (`set_arms`, `watcher`), so core imports neither.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from llmlens.core.profile_capture import Capture, Captures, FinishedProfile

if TYPE_CHECKING:
    from llmlens.settings import Settings

_log = logging.getLogger("llmlens")
_URL_PATH = "url.path"  # (semconv.URL_PATH: the route a proxied request came in on)

ARMED = "armed"
SAMPLED = "sampled"

# Counter names (flushed to the store's meta table by the watcher: `llmlens profile status`).
SKIPPED_BUSY = "skipped_busy"  # chosen, but the thread was already profiling another request
SAMPLED_NOT_KEPT = "sampled_not_kept"  # sampled, faster than the keep threshold and not failed
ARMED_TOO_FAST = "armed_too_fast"  # armed, faster than the arm's --min-duration
NOT_STORED = "not_stored"  # handed to the writer, but the arm was used up elsewhere or the store failed
COUNTERS = (SKIPPED_BUSY, SAMPLED_NOT_KEPT, ARMED_TOO_FAST, NOT_STORED)


class ProfilingSwitch:
    """Per-process profiling state; one instance, `SWITCH`."""

    def __init__(self) -> None:
        self.on = False
        self.arms: tuple[Any, ...] = ()  # the live arms (llmlens.profiling.arms.LiveArm), oldest first
        self.sample_rate = 0.0
        self.keep_ms = 2000.0
        self.interval_s = 0.001
        self.sink: Any = None  # the SQLiteSpanProcessor whose writer stores the profiles
        self.path: str | None = None  # its file, where the arms are
        self.captures = Captures()
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.lock = threading.Lock()
        # What reads the arms (llmlens.profiling.watcher.ArmWatcher): set by whoever configures profiling.
        self.watcher: Any = None

    # --- set up ------------------------------------------------------------------------------------

    def configure(self, sink: Any, settings: Settings, watcher: Any = None) -> None:
        """Profile into `sink` (the store's SQLiteSpanProcessor: `path`, `submit_profile`), with
        `watcher(self)` reading the arms from its file (unless `settings.profiling` is off)."""
        self.shutdown()
        if not settings.profiling or sink is None:
            return
        self.sink, self.path = sink, sink.path
        self.sample_rate = settings.profile_sample
        self.keep_ms = settings.profile_keep_ms
        self.interval_s = settings.profile_interval_ms / 1000
        if watcher is not None:
            self.watcher = watcher(self)
            self.watcher.start()
        self.refresh()

    def shutdown(self) -> None:
        """Profile nothing more (captures running now still end and are handed over)."""
        watcher, self.watcher = self.watcher, None
        self.sample_rate = 0.0
        self.arms = ()
        self.on = False
        if watcher is not None:
            watcher.stop()
        self.sink = None

    def set_arms(self, arms: tuple[Any, ...]) -> None:
        """The live arms, as the watcher last read them."""
        self.arms = arms
        self.refresh()

    def refresh(self) -> None:
        self.on = self.sink is not None and bool(self.arms or self.sample_rate > 0 or self.captures.detached)

    # --- the request path (only while `on`) ---------------------------------------------------------

    def early(self) -> Capture | None:
        """A capture from a proxied request's first byte, before its model is known; `begin` keeps it
        if the request turns out to be one to profile, else drops it."""
        try:
            return self.captures.start(self.interval_s)
        except Exception:
            return None

    def begin(self, inv: Any) -> None:
        """At an invocation's start (span started): profile it if an arm or the sampling picks it."""
        try:
            self._begin(inv)
        except Exception:
            _log.debug("llmlens: profiling could not start", exc_info=True)

    def _begin(self, inv: Any) -> None:
        early = inv.profile
        if inv.upstream:  # the proxied request it belongs to is the one profiled
            return
        arm = self._choose(inv)
        if arm is None and not (self.sample_rate and random.random() < self.sample_rate):
            if early is not None:
                self._drop(early)
                inv.profile = None
            return
        capture = early if early is not None else self.captures.start(self.interval_s)
        if capture is None:
            self.count(SKIPPED_BUSY)
            if arm is not None:
                with self.lock:
                    arm.skipped_busy += 1
            return
        if arm is not None:
            with self.lock:
                arm.pending += 1
        capture.arm = arm
        capture.reason = ARMED if arm is not None else SAMPLED
        inv.profile = capture
        if self.captures.detached:
            self.refresh()

    def _choose(self, inv: Any) -> Any:
        arms = self.arms
        if not arms:
            return None
        now = time.time_ns()
        route = inv.request_attributes.get(_URL_PATH)
        for arm in arms:
            if arm.open(now) and arm.matches(inv.provider, inv.request_model, inv.operation, route):
                return arm
        return None

    # --- the end (core.telemetry.end_guarded) ---------------------------------------------------------

    def stop(self, capture: Capture) -> None:
        capture.stop()
        self.captures.release(capture)
        if capture.detached:
            self.refresh()

    def hand_over(self, capture: Capture, inv: Any) -> None:
        """After the span ended: keep the profile (to the store's writer) or drop it. Never raises."""
        try:
            self._hand_over(capture, inv)
        except Exception:
            _log.debug("llmlens: a profile could not be handed over", exc_info=True)
            self._unpend(capture.arm)

    def _hand_over(self, capture: Capture, inv: Any) -> None:
        arm, sink, session = capture.arm, self.sink, capture.session
        span = inv.span
        status = getattr(span, "status", None)
        is_error = status is not None and status.status_code.name == "ERROR"
        duration = capture.duration_ms
        if capture.reason == SAMPLED:
            if not is_error and duration < self.keep_ms:
                self.count(SAMPLED_NOT_KEPT)
                return
        elif capture.reason == ARMED:
            if arm.min_duration_ms and duration < arm.min_duration_ms:
                self.count(ARMED_TOO_FAST)
                self._unpend(arm)
                return
        else:
            return
        context = span.get_span_context() if span is not None else None
        if session is None or sink is None or context is None or not context.is_valid:
            self._unpend(arm)
            return
        attributes = inv.request_attributes
        pending = FinishedProfile(
            trace_id=f"{context.trace_id:032x}", span_id=f"{context.span_id:016x}", reason=capture.reason,
            arm_id=arm.id if arm is not None else None, start_ns=inv.start_ns, duration_ms=duration,
            session=session, provider=inv.provider, model=inv.request_model, operation=inv.operation,
            route=attributes.get(_URL_PATH), is_error=is_error, pid=os.getpid(),
        )  # fmt: skip
        pending.on_written = lambda stored, remaining: self._written(arm, stored, remaining)
        sink.submit_profile(pending)

    def _written(self, arm: Any, stored: bool, remaining: int | None) -> None:
        """The writer's answer: stored, or not (the arm was used up by another process, or the store
        failed)."""
        if not stored:
            self.count(NOT_STORED)
        if arm is None:
            return
        with self.lock:
            arm.pending = max(0, arm.pending - 1)
            if remaining is not None:  # (the store's count only goes down; the watcher may have read it)
                arm.remaining = min(arm.remaining, remaining)

    def _unpend(self, arm: Any) -> None:
        if arm is not None:
            with self.lock:
                arm.pending = max(0, arm.pending - 1)

    def _drop(self, capture: Capture) -> None:
        self.stop(capture)

    def count(self, name: str) -> None:
        with self.lock:
            self.counters[name] += 1

    def take_counters(self) -> dict[str, int]:
        """The counts since the last call (the watcher adds them to the store)."""
        with self.lock:
            taken = {k: v for k, v in self.counters.items() if v}
            self.counters = dict.fromkeys(COUNTERS, 0)
            skipped = {arm.id: arm.skipped_busy for arm in self.arms if arm.skipped_busy}
            for arm in self.arms:
                arm.skipped_busy = 0
        taken.update({f"arm:{arm_id}": n for arm_id, n in skipped.items()})
        return taken

    # --- fork --------------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        """The child has none of the parent's threads: fresh captures and counters, its own watcher."""
        self.captures.reset()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.lock = threading.Lock()
        for arm in self.arms:
            arm.pending = 0
        watcher = self.watcher
        if watcher is not None:
            self.watcher = watcher.restarted()
        self.refresh()


SWITCH = ProfilingSwitch()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SWITCH.after_fork_in_child)
