"""The processes writing a store (`store_processes`): registration, heartbeat, and when one is dead.

Each writer (an `SQLiteSpanProcessor`'s thread) has one row, refreshed every writer tick while it has
requests in flight and every `HEARTBEAT_IDLE_S` otherwise. A process is dead when its heartbeat is older
than `EXPIRY_S` (killed, frozen, on a machine that went away), or at once when it ran on this host and
its pid is gone. Readers then no longer show its requests in flight; any writer that notices deletes its
row, and the schema's trigger its `active_requests` rows.

The pid test is made only for rows of this host (by host name), and only on POSIX, where `kill(pid, 0)`
asks without sending anything (on Windows it would end the process). A zombie counts as alive until its
parent reaps it; the heartbeat ends it then.
"""

from __future__ import annotations

import os
import socket
import sqlite3

NS = 1_000_000_000
# A process whose heartbeat is older than this is dead (a writer heartbeats every tick, 0.5 s, while it
# has requests in flight: this leaves room for a busy disk or a long lock wait).
EXPIRY_S = 10.0
HEARTBEAT_IDLE_S = 5.0  # the heartbeat of a writer with no request in flight


def hostname() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (True where that cannot be asked)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, OSError):
        return True  # exists but is someone else's, or not a pid we can ask about
    return True


def is_live(host: str, pid: int, heartbeat_ns: int, now_ns: int, this_host: str) -> bool:
    """Whether the process of a `store_processes` row counts as running at `now_ns`."""
    if heartbeat_ns < now_ns - int(EXPIRY_S * NS):
        return False
    return host != this_host or pid_alive(pid)


def register(conn: sqlite3.Connection, now_ns: int) -> int:
    """A row for this process (call inside a write transaction); returns its id."""
    cursor = conn.execute(
        "INSERT INTO store_processes (pid, hostname, started_ns, heartbeat_ns) VALUES (?, ?, ?, ?)",
        (os.getpid(), hostname(), now_ns, now_ns),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def heartbeat(conn: sqlite3.Connection, process_id: int, now_ns: int) -> bool:
    """Refresh the row; False if it is gone (another writer took this process for dead)."""
    cursor = conn.execute("UPDATE store_processes SET heartbeat_ns = ? WHERE id = ?", (now_ns, process_id))
    return cursor.rowcount > 0


def remove(conn: sqlite3.Connection, process_id: int) -> None:
    """Delete the row, and so (trigger) the process's requests in flight."""
    conn.execute("DELETE FROM store_processes WHERE id = ?", (process_id,))


def remove_dead(conn: sqlite3.Connection, now_ns: int) -> int:
    """Delete the rows of dead processes (call inside a write transaction); returns how many."""
    this_host = hostname()
    dead = [
        (row_id,)
        for row_id, host, pid, beat in conn.execute(
            "SELECT id, hostname, pid, heartbeat_ns FROM store_processes"
        ).fetchall()
        if not is_live(host, pid, beat, now_ns, this_host)
    ]
    if dead:
        conn.executemany("DELETE FROM store_processes WHERE id = ?", dead)
    return len(dead)
