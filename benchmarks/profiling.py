"""Per-request cost of llmlens profiling (`llmlens.profiling`) on the real openai SDK, no network.

    python benchmarks/profiling.py [--rounds R] [--calls N] [--slices S] [--warmup W] [--settle U]
                                   [--micro-calls M] [--markdown] [--verbose]

Every mode runs the same llmlens-instrumented openai client (non-streaming ``chat.completions.create``,
an ``httpx2.MockTransport`` serving the bytes of ``llmlens.demo.fake_bodies``, as in overhead.py) with
the local store attached (a ``SQLiteSpanProcessor`` on a temporary file, as ``instrument()`` attaches
it with ``LLMLENS_DB`` set). Only the profiling switch (``SWITCH``, llmlens.core.profiling) differs:

* ``off``      - profiling not configured, as with ``LLMLENS_PROFILING=false``: no arm watcher,
                 ``SWITCH.on`` is False;
* ``unarmed``  - configured (the watcher thread reads the store's arms every 0.5 s), nothing armed,
                 sampling 0: ``SWITCH.on`` is False, the request path reads it and goes on;
* ``draw``     - sampling at 1e-9: every request makes the sampling draw (``SWITCH.begin``), none wins;
* ``not kept`` - sampling 1.0 with a keep threshold no request reaches: every request is profiled
                 (pyinstrument start, sampling, stop) and the profile dropped;
* ``kept``     - an arm (``llmlens.profiling.arm(next=10000)``) live for the slice: every request is
                 profiled and its profile stored by the writer thread.

``unarmed`` is measured against ``off``; the other modes against ``unarmed``. One process, interleaved:
each of R rounds runs N calls per mode, cut into S slices that run every mode in turn, in orders where
each mode follows every other one equally often (``balanced_orders``), each block starting with a few
untimed calls; Δ is the median of the paired per-slice differences, with a distribution-free 95%
confidence interval of that median. Modes are switched between slices, outside the timed window:
``SWITCH.shutdown()`` / ``SWITCH.configure(store, settings, ArmWatcher)``, the sampling attributes and
``SWITCH.refresh()``, and a real arm (``profiling.arm``, ``profiling.disarm``) waited for until the
watcher has read it. The store's writer thread is kept asleep during a slice (flush interval of an
hour) and flushed after it: what is timed per call is the application thread's work alone, and the
flush, timed too, is the writer's work per request (span rows; for ``kept`` also encoding and storing
the profiles).

The unarmed cost is one attribute read per request, far below the noise of a whole SDK call, so it is
also measured directly: the ``if SWITCH.on`` test as ``telemetry.py`` writes it, by ``timeit`` against an
empty statement, and ``Telemetry.start`` + end of an invocation (no SDK call) in the modes up to
``not kept``, interleaved like the calls. The watcher's own work (one poll every 0.5 s) is timed on its
own. Profiles: the writer's ``llmlens.store.profiles.encode`` is timed on real sessions (of these calls,
and of a 136-chunk streamed call for a longer profile), with their compressed size; the stored profiles
are counted in the store file at the end and must equal the ``kept`` requests, and no other mode may take
a profile (checked with a counter at start-up, and by the store's counters at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import gc
import importlib.metadata as metadata
import inspect
import math
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import llmlens
from llmlens import Instrumentor, profiling
from llmlens.core.invocation import Invocation
from llmlens.profiling.watcher import ArmWatcher
from llmlens.store import profiles as stored_profiles
from llmlens.store.attach import attached_store
from llmlens.store.processor import _OWN_CODE  # what the writer passes to encode: llmlens' own frames
from overhead import LONG_HEADERS, MESSAGES, MODEL, STREAM_OPTIONS, build_handler, source_fingerprint
from store import cpu_model

try:
    from llmlens.core.profiling import SWITCH
except ImportError:  # (trees before the switch moved to llmlens.core)
    from llmlens.profiling.switch import SWITCH  # type: ignore[no-redef]

MODES = ("off", "unarmed", "draw", "not kept", "kept")
BASELINE = {"unarmed": "off", "draw": "unarmed", "not kept": "unarmed", "kept": "unarmed"}
MICRO_MODES = ("off", "unarmed", "draw", "not kept")  # `kept` would store empty profiles: no micro
DRAW_RATE = 1e-9  # the draw is made on every request and (almost) never wins
NEVER_KEEP_MS = 1e12  # a keep threshold no request reaches: every sampled profile is dropped
ARM_NEXT = 10_000  # llmlens.profiling.arms.MAX_NEXT: more than a slice's calls
TARGET_UNARMED_US = 1.0
# The request path's test, as core/telemetry.py writes it (`_PROFILING` is a module global there too).
CHECK_STMT = "if _PROFILING.on:\n    _PROFILING.begin(inv)"
ENCODE_PROFILES = 200  # half encoded, half summarised
ENCODE_LONG_PROFILES = 40


# --- switching modes --------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], poll: Callable[[], None], what: str) -> None:
    """Ask the watcher to read the arms until `condition` holds: one `poll_now()` can return the answer
    of a poll that started before the arm was written."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"the profiling switch never saw {what}")
        poll()


@dataclass
class Switch:
    """Puts `SWITCH` in one mode and back, outside the timed window."""

    store: Any  # the SQLiteSpanProcessor instrument() attached
    settings: Any  # llmlens Settings, profiling on
    db: str
    keep_ms: float = 2000.0

    def enter(self, mode: str) -> None:
        if mode == "off":
            SWITCH.shutdown()  # what LLMLENS_PROFILING=false leaves: no watcher, no sink, `on` False
            return
        if SWITCH.watcher is None:
            if "watcher" in inspect.signature(SWITCH.configure).parameters:
                SWITCH.configure(self.store, self.settings, ArmWatcher)
            else:  # (trees where the switch starts its watcher itself)
                SWITCH.configure(self.store, self.settings)
            self.poll()
        SWITCH.sample_rate = {"draw": DRAW_RATE, "not kept": 1.0}.get(mode, 0.0)
        SWITCH.keep_ms = NEVER_KEEP_MS if mode == "not kept" else self.keep_ms
        SWITCH.refresh()
        if mode == "kept":
            arm_id = profiling.arm(next=ARM_NEXT, db=self.db)
            wait_until(lambda: any(a.id == arm_id for a in SWITCH.arms), self.poll, f"arm {arm_id}")
        if SWITCH.on != (mode != "unarmed"):
            raise SystemExit(f"mode {mode}: SWITCH.on is {SWITCH.on}")

    def leave(self, mode: str) -> None:
        if mode == "kept":
            self.store.force_flush()  # the profiles claim their arm's slots: store them before disarming
            profiling.disarm(db=self.db)
            wait_until(lambda: not SWITCH.arms, self.poll, "the arm disarmed")
        if SWITCH.watcher is not None:
            SWITCH.sample_rate = 0.0
            SWITCH.keep_ms = self.keep_ms
            SWITCH.refresh()

    def poll(self) -> None:
        if SWITCH.watcher is not None:
            SWITCH.watcher.poll_now()


# --- the runs ---------------------------------------------------------------------------------------


def balanced_orders(k: int) -> list[list[int]]:
    """Orders of `k` modes in which each mode follows every other one equally often (a Williams design:
    k orders for an even k, 2k for an odd one). A plain rotation would always run a given mode right
    after the same other one, and what a block leaves behind (caches filled by pyinstrument or the
    writer's flush) would then bias that one mode."""
    first, low, high = [0], 1, k - 1
    while low <= high:
        first.append(low)
        low += 1
        if low <= high:
            first.append(high)
            high -= 1
    orders = [[(x + shift) % k for x in first] for shift in range(k)]
    if k % 2:
        orders += [order[::-1] for order in orders]
    return orders


@dataclass
class Bench:
    rounds: int
    calls: int
    slices: int
    warmup: int
    settle: int
    micro_calls: int
    client: Any
    switch: Switch
    telemetry: Any  # llmlens' Telemetry, for the start + end micro-benchmark
    # mode -> per-round mean µs/call; mode -> per-slice mean µs/call (index i: the same slice cycle)
    results: dict[str, list[float]] = field(default_factory=dict)
    slice_results: dict[str, list[float]] = field(default_factory=dict)
    writer: dict[str, list[float]] = field(default_factory=dict)  # mode -> per-slice flush µs/call
    stored: dict[str, int] = field(default_factory=dict)  # mode -> profiles written in timed slices
    timed_calls: dict[str, int] = field(default_factory=dict)
    kept_calls: int = 0  # every request made in `kept`, timed or not: each must leave one stored profile
    not_kept_calls: int = 0  # every request (calls and start+end) in `not kept`: each sampled, not kept
    micro: dict[str, list[float]] = field(default_factory=dict)  # mode -> per-slice µs per start+end
    micro_rounds: dict[str, list[float]] = field(default_factory=dict)

    def call(self) -> None:
        self.client.chat.completions.create(model=MODEL, messages=MESSAGES)

    def start_end(self) -> None:
        inv = Invocation(self.telemetry, "chat", "openai", MODEL, "127.0.0.1", 9)
        self.telemetry.start(inv)
        inv.finish()

    def block(self, mode: str, n: int, fn: Callable[[], None]) -> tuple[int, int, int]:
        """`n` calls of `fn` in `mode`, each timed; (elapsed ns, writer flush ns, profiles written)."""
        store = self.switch.store
        clock = time.perf_counter_ns
        elapsed = 0
        self.switch.enter(mode)
        try:
            for _ in range(self.settle):  # untimed: what the previous block left in the caches goes first
                fn()
            store.force_flush()
            written = store.stats.written_profiles
            for _ in range(n):
                start = clock()
                fn()
                elapsed += clock() - start
            start = clock()
            store.force_flush()
            flushed = clock() - start
            written = store.stats.written_profiles - written
        finally:
            self.switch.leave(mode)
        if mode == "kept":
            self.kept_calls += n + self.settle
        elif mode == "not kept":
            self.not_kept_calls += n + self.settle
        return elapsed, flushed, written

    def one_round(self, r: int, modes: tuple[str, ...], n: int, fn: Callable[[], None], timed: bool) -> None:
        slices = max(1, min(self.slices, n))
        sizes = [n // slices + (1 if i < n % slices else 0) for i in range(slices)]
        elapsed = dict.fromkeys(modes, 0)
        orders = balanced_orders(len(modes))
        gc.collect()
        micro = fn != self.call
        for i, size in enumerate(sizes):
            for index in orders[(r * slices + i) % len(orders)]:
                mode = modes[index]
                ns, flush_ns, written = self.block(mode, size, fn)
                elapsed[mode] += ns
                if not timed:
                    continue
                if micro:
                    self.micro.setdefault(mode, []).append(ns / size / 1000)
                    continue
                self.slice_results.setdefault(mode, []).append(ns / size / 1000)
                self.writer.setdefault(mode, []).append(flush_ns / size / 1000)
                self.stored[mode] = self.stored.get(mode, 0) + written
                self.timed_calls[mode] = self.timed_calls.get(mode, 0) + size
        if timed:
            target = self.micro_rounds if micro else self.results
            for mode in modes:
                target.setdefault(mode, []).append(elapsed[mode] / n / 1000)

    def run(self) -> None:
        if self.warmup:
            self.one_round(0, MODES, self.warmup, self.call, timed=False)
            self.one_round(0, MICRO_MODES, self.warmup, self.start_end, timed=False)
        for r in range(self.rounds):
            self.one_round(r, MODES, self.calls, self.call, timed=True)
            self.one_round(r, MICRO_MODES, self.micro_calls, self.start_end, timed=True)
            print(f"  round {r + 1}/{self.rounds} done", file=sys.stderr, flush=True)


# --- direct measurements ----------------------------------------------------------------------------


def check_cost(switch: Switch, mode: str, number: int, repeat: int = 7) -> dict[str, float]:
    """ns per `if SWITCH.on: SWITCH.begin(inv)` in `mode` and per empty statement, interleaved, best of
    `repeat`. Unarmed that is the attribute read; in `draw` also the call and the sampling draw."""
    inv = Invocation(None, "chat", "openai", MODEL)  # type: ignore[arg-type]  # (never started)
    namespace = {"_PROFILING": SWITCH, "inv": inv}
    switch.enter(mode)
    check, empty = [], []
    for _ in range(repeat):
        check.append(timeit.timeit(CHECK_STMT, globals=namespace, number=number) / number * 1e9)
        empty.append(timeit.timeit("pass", globals=namespace, number=number) / number * 1e9)
    switch.leave(mode)
    if inv.profile is not None:
        raise SystemExit(f"mode {mode}: the timeit loop took a profile")
    return {"check": min(check), "empty": min(empty), "delta": min(check) - min(empty)}


def watcher_poll_us(runs: int = 41) -> float:
    """The watcher's work per poll (every 0.5 s), nothing armed: a second watcher on this thread, so the
    running one's connection stays its own."""
    watcher = ArmWatcher(SWITCH)
    samples = []
    try:
        for _ in range(runs):
            start = time.perf_counter_ns()
            watcher.poll()
            samples.append((time.perf_counter_ns() - start) / 1000)
    finally:
        watcher.stop()
    return statistics.median(samples[1:])  # (the first opens the connection)


class Collector:
    """Stands in for the store's processor as the switch's sink: keeps the finished profiles."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending: list[Any] = []

    def submit_profile(self, pending: Any) -> None:
        self.pending.append(pending)


def collect_profiles(bench: Bench, n: int, fn: Callable[[], Any]) -> list[Any]:
    """`n` calls of `fn`, each profiled and kept (sampling 1.0, keep threshold 0): the finished profiles,
    as the switch hands them to the store's writer."""
    switch = bench.switch
    switch.enter("unarmed")
    collector = Collector(switch.db)
    SWITCH.sink = collector
    SWITCH.sample_rate, SWITCH.keep_ms = 1.0, 0.0
    SWITCH.refresh()
    try:
        for _ in range(n):
            fn()
    finally:
        SWITCH.sink = switch.store
        switch.leave("unarmed")
    return collector.pending


def encode_figures(profiles: list[Any]) -> dict[str, float]:
    """Median µs of `profiles.encode`, compressed bytes and samples, over the first half of `profiles`;
    median µs of its summary part (`profiles.summarize`) over the other half. Each session is encoded
    once, as the writer does: pyinstrument caches shortened paths on the session, so a second encode of
    the same session is about twice as fast."""
    half = len(profiles) // 2
    times, sizes, samples, summaries = [], [], [], []
    for pending in profiles[:half]:
        start = time.perf_counter_ns()
        values = stored_profiles.encode(pending, _OWN_CODE)
        times.append((time.perf_counter_ns() - start) / 1000)
        sizes.append(len(values[-1]))
        samples.append(pending.session.sample_count)
    for pending in profiles[half:]:
        start = time.perf_counter_ns()
        stored_profiles.summarize(pending.session, _OWN_CODE)
        summaries.append((time.perf_counter_ns() - start) / 1000)
    return {
        "count": len(profiles),
        "encode_us": statistics.median(times),
        "summary_us": statistics.median(summaries),
        "bytes": statistics.median(sizes),
        "samples": statistics.median(samples),
        "duration_ms": statistics.median(p.duration_ms for p in profiles),
    }


def long_stream(client: Any) -> None:
    for _chunk in client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options=STREAM_OPTIONS, extra_headers=LONG_HEADERS
    ):
        pass


# --- sanity checks ----------------------------------------------------------------------------------


def check_setup(bench: Bench, calls: int = 20) -> None:
    """Each mode does what it claims: profiles taken (counted at `Captures.start`) and stored."""
    captures = SWITCH.captures
    original = captures.start
    started = [0]

    def counting(interval_s: float) -> Any:
        started[0] += 1
        return original(interval_s)

    taken = calls + bench.settle  # (each block starts with untimed calls, profiled like the others)
    expect = {
        "off": (0, 0),
        "unarmed": (0, 0),
        "draw": (0, 0),
        "not kept": (taken, 0),
        "kept": (taken, calls),
    }
    captures.start = counting  # type: ignore[method-assign]
    try:
        for mode in MODES:
            started[0] = 0
            _ns, _flush, written = bench.block(mode, calls, bench.call)
            if (started[0], written) != expect[mode]:
                raise SystemExit(
                    f"mode {mode}: {started[0]} profiles taken and {written} stored in {calls} calls, "
                    f"expected {expect[mode]}"
                )
    finally:
        del captures.start


def store_counts(db: str) -> dict[str, Any]:
    """What the store file holds: profiles (count, mean sizes and samples) and the profiling counters."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        count, session, summary, samples = conn.execute(
            "SELECT count(*), avg(length(session)), avg(length(summary)), avg(sample_count) FROM profiles"
        ).fetchone()
        linked = conn.execute("SELECT count(*) FROM requests WHERE profile_id IS NOT NULL").fetchone()[0]
    conn.close()
    return {
        "profiles": count,
        "session_bytes": session or 0.0,
        "summary_bytes": summary or 0.0,
        "samples": samples or 0.0,
        "linked": linked,
        "counters": profiling.status(db)["counters"],
    }


# --- report -----------------------------------------------------------------------------------------


def paired(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def median_ci(values: list[float]) -> tuple[float, float]:
    """Distribution-free 95% confidence interval of the median (order statistics, binomial)."""
    xs = sorted(values)
    n = len(xs)
    j = max(1, math.floor(n / 2 - 0.98 * math.sqrt(n)))  # 1-based rank of the lower bound
    return xs[j - 1], xs[n - j]


def commit() -> str:
    """The checkout's short HEAD, with its uncommitted changes under src/ (others may be editing), and
    where llmlens was imported from when that is not this checkout (PYTHONPATH=<other tree>/src)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", "src").splitlines()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown (not a git checkout)", []
    text = head + (f" (+ uncommitted changes to {len(dirty)} files in src/)" if dirty else "")
    imported = Path(llmlens.__file__).resolve().parent
    if not imported.is_relative_to(root / "src"):
        text += f"; llmlens imported from {imported}, not from this checkout"
    return text


def command(env: dict[str, str]) -> str:
    shown = [
        f"{k}={shlex.quote(v)}"
        for k, v in sorted(env.items())
        if k.startswith("LLMLENS_") or k == "PYTHONPATH"
    ]
    return " ".join([*shown, "python", *map(shlex.quote, sys.argv)])


def versions() -> str:
    found = []
    for dist in ("pyinstrument", "openai", "httpx2", "opentelemetry-sdk"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} -")
    return ", ".join(found)


def report(bench: Bench, extra: dict[str, Any], env: dict[str, str], markdown: bool, verbose: bool) -> bool:
    """Print the report; True if every check passed."""
    res, sl, settings = bench.results, bench.slice_results, bench.switch.settings
    header = [
        f"commit: {commit()}; llmlens source fingerprint {source_fingerprint()}",
        f"date: {_dt.datetime.now().astimezone().isoformat(timespec='minutes')}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"python: {platform.python_version()} ({platform.python_implementation()}); {versions()}",
        f"command: {command(env)}",
        f"runs: {bench.rounds} rounds x {bench.calls} non-streaming openai calls per mode, each round in "
        f"{bench.slices} slices running the modes in balanced orders, {bench.settle} untimed calls at the "
        f"start of each block; warm-up {bench.warmup} calls per mode; "
        f"start+end micro-benchmark {bench.micro_calls} per mode and round",
        f"profiling: interval {settings.profile_interval_ms:g} ms; draw at {DRAW_RATE:g}; not kept: sampling "
        f"1.0, keep >= {NEVER_KEEP_MS:g} ms; kept: an arm of {ARM_NEXT} live for the slice; "
        "no store caps (LLMLENS_STORE_MAX_PROFILES/_SUCCESS/_ERRORS=0), so every profile and row is counted",
    ]

    columns = ("mode", "vs", "median µs/request", "Δ µs", "95% CI of Δ", "ratio", "writer µs/request",
               "profiles stored/request", "spread %")  # fmt: skip
    rows = []
    for mode in MODES:
        rounds = res[mode]
        med, low = statistics.median(rounds), min(rounds)
        writer = f"{statistics.median(bench.writer[mode]):.1f}"
        stored = f"{bench.stored.get(mode, 0) / bench.timed_calls[mode]:.2f}"
        spread = f"{(max(rounds) - low) / low * 100:.1f}"
        base = BASELINE.get(mode)
        if base is None:
            rows.append((mode, "-", f"{med:.1f}", "-", "-", "-", writer, stored, spread))
            continue
        diffs = paired(sl[mode], sl[base])
        lo, hi = median_ci(diffs)
        rows.append((
            mode, base, f"{med:.1f}", f"{statistics.median(diffs):+.1f}", f"{lo:+.1f} .. {hi:+.1f}",
            f"{med / statistics.median(res[base]):.3f}", writer, stored, spread,
        ))  # fmt: skip

    micro_columns = ("Telemetry.start + end", "vs", "median µs", "Δ µs", "95% CI of Δ", "ratio")
    micro_rows = []
    for mode in MICRO_MODES:
        med = statistics.median(bench.micro_rounds[mode])
        base = BASELINE.get(mode)
        if base is None:
            micro_rows.append((mode, "-", f"{med:.2f}", "-", "-", "-"))
            continue
        diffs = paired(bench.micro[mode], bench.micro[base])
        lo, hi = median_ci(diffs)
        micro_rows.append((
            mode, base, f"{med:.2f}", f"{statistics.median(diffs):+.2f}", f"{lo:+.2f} .. {hi:+.2f}",
            f"{med / statistics.median(bench.micro_rounds[base]):.3f}",
        ))  # fmt: skip

    check, draw, poll_us = extra["check"], extra["draw"], extra["poll_us"]
    unarmed = paired(sl["unarmed"], sl["off"])
    lo, hi = median_ci(unarmed)
    round_delta = paired(res["unarmed"], res["off"])
    enc, enc_long, counts = extra["encode"], extra["encode_long"], extra["store"]
    counters = counts["counters"]
    writer_profile = paired(bench.writer["kept"], bench.writer["unarmed"])
    wlo, whi = median_ci(writer_profile)
    lines = [
        f"unarmed, the request path: `if SWITCH.on` costs {check['delta']:.1f} ns per request "
        f"({check['check']:.1f} ns against {check['empty']:.1f} ns for an empty statement; "
        "timeit, best of 7)",
        f"unarmed, whole call: Δ {statistics.median(unarmed):+.1f} µs, 95% CI {lo:+.1f} .. {hi:+.1f} "
        f"({'includes' if lo <= 0 <= hi else 'excludes'} 0; rounds {min(round_delta):+.1f} .. "
        f"{max(round_delta):+.1f}), on a {statistics.median(res['off']):.0f} µs call",
        f"unarmed, in the background: the arm watcher's poll takes {poll_us:.0f} µs every 0.5 s "
        f"({2 * poll_us / 1000:.3f} ms per second, whatever the request rate)",
        f"draw, the request path: `if SWITCH.on: SWITCH.begin(inv)` costs {draw['delta']:.0f} ns per request "
        f"with the draw at {DRAW_RATE:g} (timeit, best of 7, empty statement subtracted)",
        f"writer thread per kept profile: {statistics.median(writer_profile):+.1f} µs (kept - unarmed writer "
        f"µs/request, paired; 95% CI {wlo:+.1f} .. {whi:+.1f}): encode, insert, arm slot claim, row link",
        f"encode (`llmlens.store.profiles.encode`, once per session as the writer does), a profile of these "
        f"calls: {enc['encode_us']:.0f} µs, of which the summary {enc['summary_us']:.0f} µs; "
        f"{enc['bytes']:.0f} bytes compressed; {enc['samples']:.0f} samples over {enc['duration_ms']:.1f} ms "
        f"(medians of {enc['count'] // 2} profiles each)",
        f"encode, a profile of a 136-chunk streamed call: {enc_long['encode_us']:.0f} µs, of which the "
        f"summary {enc_long['summary_us']:.0f} µs; {enc_long['bytes']:.0f} bytes; "
        f"{enc_long['samples']:.0f} samples over {enc_long['duration_ms']:.1f} ms "
        f"(medians of {enc_long['count'] // 2})",
        f"store file: {counts['profiles']} profiles stored for {bench.kept_calls} kept requests, "
        f"{counts['linked']} request rows linked to one; mean {counts['session_bytes']:.0f} bytes of session "
        f"+ {counts['summary_bytes']:.0f} of summary, {counts['samples']:.2f} samples",
        f"store counters: sampled_not_kept {counters['sampled_not_kept']} (requests in `not kept`: "
        f"{bench.not_kept_calls}), skipped_busy {counters['skipped_busy']}, "
        f"not_stored {counters['not_stored']}",
    ]
    checks = [
        ("unarmed cost per request (`if SWITCH.on`)", f"{check['delta'] / 1000:.3f} µs",
         f"<= {TARGET_UNARMED_US:g} µs", check["delta"] / 1000 <= TARGET_UNARMED_US),
        ("every kept request stored, linked to its row", f"{counts['profiles']} / {counts['linked']}",
         f"{bench.kept_calls}", counts["profiles"] == counts["linked"] == bench.kept_calls),
        ("no profile outside `not kept` and `kept`", f"{counters['sampled_not_kept']} not kept",
         f"{bench.not_kept_calls}", counters["sampled_not_kept"] == bench.not_kept_calls
         and not counters["skipped_busy"] and not counters["not_stored"]),
    ]  # fmt: skip
    per_round = [f"per-round µs/request, {m}: " + ", ".join(f"{v:.1f}" for v in res[m]) for m in MODES]
    if verbose:
        lines += per_round

    print_report(
        header, [(columns, rows), (micro_columns, micro_rows)], lines, checks, markdown, text_columns=2
    )
    return all(ok for *_rest, ok in checks)


def print_report(
    header: Sequence[str],
    tables: Sequence[tuple[Sequence[str], Sequence[Sequence[str]]]],
    lines: Sequence[str],
    checks: Sequence[tuple[str, str, str, bool]],
    markdown: bool,
    text_columns: int = 1,
) -> None:
    """The report of a benchmark: its header, tables (the first `text_columns` columns are text, the
    rest numbers), notes and PASS/FAIL checks, as plain text or Markdown (for docs/benchmarks.md)."""
    if markdown:
        print("\n".join(f"- {line}" for line in header))
        for cols, body in tables:
            print()
            print("| " + " | ".join(cols) + " |")
            print("|" + "---|" * text_columns + "---:|" * (len(cols) - text_columns))
            for row in body:
                print("| " + " | ".join(row) + " |")
        print()
        print("| check | measured | goal | result |")
        print("|---|---:|---:|---|")
        for name, measured, goal, ok in checks:
            print(f"| {name} | {measured} | {goal} | {'PASS' if ok else 'FAIL'} |")
        print()
        print("\n".join(f"- {line}" for line in lines))
        return
    print("\n".join(header))
    for cols, body in tables:
        print()
        widths = [max(len(cols[i]), *(len(row[i]) for row in body)) for i in range(len(cols))]
        for line in (cols, *body):
            cells = enumerate(zip(line, widths, strict=True))
            print("  ".join(c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in cells))
    print()
    print("\n".join(lines))
    print()
    for name, measured, goal, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {measured} (goal {goal})")


def run_options(doc: str | None, calls: int) -> argparse.ArgumentParser:
    """The options of an interleaved benchmark run (this one's and benchmarks/active.py's)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument(
        "--calls", type=int, default=calls, help=f"calls per round and mode (default {calls})"
    )
    parser.add_argument("--slices", type=int, default=10, help="slices per round (default 10)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up calls per mode (default 100)")
    parser.add_argument("--micro-calls", type=int, default=2000,
                        help="Telemetry.start + end per round and mode (default 2000)")  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs)")
    return parser


# --- main -------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_options(__doc__, calls=500)
    parser.add_argument("--settle", type=int, default=3,
                        help="untimed calls at the start of each block (default 3)")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="also print every round's mean")
    args = parser.parse_args(argv)
    if min(args.rounds, args.calls, args.slices, args.micro_calls) < 1 or min(args.warmup, args.settle) < 0:
        parser.error("--rounds, --calls, --slices and --micro-calls must be >= 1, --warmup and --settle >= 0")

    env = dict(os.environ)
    if env.get("LLMLENS_STORE", "").lower() in ("off", "false", "0"):
        parser.error("profiling needs the local store: unset LLMLENS_STORE")
    directory = tempfile.TemporaryDirectory(prefix="llmlens-profiling-bench-")
    db = os.path.join(directory.name, "store.db")
    os.environ["LLMLENS_DB"] = db
    # Keep every profile and every request row (no caps, no pruning), to count and match them at the end.
    for name in ("LLMLENS_STORE_MAX_PROFILES", "LLMLENS_STORE_MAX_SUCCESS", "LLMLENS_STORE_MAX_ERRORS"):
        os.environ[name] = "0"

    handler, _chunks = build_handler()
    client = openai.OpenAI(
        api_key="sk-bench",
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    tracer_provider = TracerProvider()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    store = attached_store(tracer_provider)
    if store is None or store.path != db:
        raise SystemExit(f"the local store is not attached on {db}")
    store.flush_interval_s = 3600.0  # the writer sleeps during a slice; each slice ends with a flush
    settings = dataclasses.replace(instrumentor.settings, profiling=True)
    bench = Bench(
        rounds=args.rounds,
        calls=args.calls,
        slices=args.slices,
        warmup=args.warmup,
        settle=args.settle,
        micro_calls=args.micro_calls,
        client=client,
        switch=Switch(store, settings, db, keep_ms=settings.profile_keep_ms),
        telemetry=instrumentor.telemetry,
    )
    started = time.perf_counter()
    try:
        check_setup(bench)
        bench.run()
        extra = {
            "check": check_cost(bench.switch, "unarmed", 2_000_000),
            "draw": check_cost(bench.switch, "draw", 200_000),
        }
        bench.switch.enter("unarmed")
        extra["poll_us"] = watcher_poll_us()
        extra["encode"] = encode_figures(collect_profiles(bench, ENCODE_PROFILES, bench.call))
        extra["encode_long"] = encode_figures(
            collect_profiles(bench, ENCODE_LONG_PROFILES, lambda: long_stream(client))
        )
        store.force_flush()
        bench.switch.poll()  # the watcher adds this process's counters to the store
        extra["store"] = store_counts(db)
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()
    print(f"  measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    ok = report(bench, extra, env, args.markdown, args.verbose)
    directory.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
