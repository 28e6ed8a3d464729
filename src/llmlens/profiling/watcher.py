"""The watcher: a daemon thread that reads the live arms from the store file every half second.

This is how a process that is already running learns of `llmlens profile arm` run elsewhere, without
any query on the request path: the thread sets `SWITCH.arms` (and so `SWITCH.on`). It also adds this
process's profiling counters (skipped, not kept) to the store, for `llmlens profile status`.
A store that does not exist yet, or cannot be read, is tried again on the next tick.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Protocol

from llmlens.profiling import arms as arm_rows
from llmlens.profiling.arms import LiveArm
from llmlens.store.paths import file_identity

_log = logging.getLogger("llmlens")
POLL_S = 0.5
COUNTER_KEY = "profiling.{}"  # meta keys of the counters


class Watched(Protocol):
    """What the watcher reads for and writes to: the profiling switch (llmlens.core.profiling)."""

    path: str | None
    arms: tuple[LiveArm, ...]
    lock: threading.Lock

    def set_arms(self, arms: tuple[LiveArm, ...]) -> None: ...

    def take_counters(self) -> dict[str, int]: ...


class ArmWatcher:
    def __init__(self, switch: Watched, poll_s: float = POLL_S) -> None:
        self.switch = switch
        self.path = switch.path or ""
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="llmlens-profile-arms", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._close()

    def poll_now(self, timeout_s: float = 2.0) -> None:
        """Read the arms now (after `llmlens.profiling.arm()` in this process), and wait until read."""
        if self._thread is None or not self._thread.is_alive():
            self.poll()
            return
        done = self._polled = threading.Event()
        self._wake.set()
        done.wait(timeout_s)

    _polled: threading.Event | None = None

    def restarted(self) -> ArmWatcher:
        """A new watcher for a forked child (the parent's connection is not used there)."""
        self._conn = None  # (the parent's; closing it here could release the parent's locks)
        watcher = ArmWatcher(self.switch, self.poll_s)
        watcher.start()
        return watcher

    def _run(self) -> None:
        # The first read waits a tick too: an application that instruments and exits at once (a script,
        # a test) never opens the store for arms.
        self._wake.wait(self.poll_s)
        self._wake.clear()
        while not self._stop.is_set():
            # Taken before the read, so a poll_now() waiter is released only by a read that began after
            # it asked (its arm is committed by then).
            polled, self._polled = self._polled, None
            self.poll()
            if polled is not None:
                polled.set()
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def poll(self) -> None:
        try:
            conn = self._connection()
            if conn is None:
                return
            self._flush_counters(conn)
            live = arm_rows.rows(conn, live_only=True, limit=100)
        except sqlite3.Error as error:
            _log.debug("llmlens: could not read the profile arms: %s", error)
            self._close()
            return
        except Exception:
            _log.debug("llmlens: profile arm watcher error", exc_info=True)
            return
        known = {arm.id: arm for arm in self.switch.arms}
        current: list[LiveArm] = []
        for row in reversed(live):  # oldest first: the first armed one wins a request
            arm = known.get(row["id"])
            if arm is None:
                arm = LiveArm.from_row(row)
            else:
                with self.switch.lock:
                    # The store's count only goes down; the writer may have seen a newer one already.
                    arm.remaining = min(arm.remaining, row["remaining"])
            current.append(arm)
        self.switch.set_arms(tuple(current))

    def _flush_counters(self, conn: sqlite3.Connection) -> None:
        counters = self.switch.take_counters()
        if not counters:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for name, count in counters.items():
                if name.startswith("arm:"):
                    conn.execute(
                        "UPDATE profile_arms SET skipped_busy = skipped_busy + ? WHERE id = ?",
                        (count, int(name[4:])),
                    )
                else:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                        " SET value = CAST(CAST(value AS INTEGER) + excluded.value AS TEXT)",
                        (COUNTER_KEY.format(name), str(count)),
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection | None:
        identity = file_identity(self.path)
        if identity is None:  # no store yet: nothing can be armed
            self._close()
            return None
        if self._conn is not None and identity == self._identity:
            return self._conn
        self._close()
        from llmlens.store.schema import StoreError, open_store

        try:
            self._conn = open_store(self.path, create=False)
        except StoreError as error:
            _log.debug("llmlens: profile arms unreadable: %s", error)
            return None
        self._identity = identity
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass
