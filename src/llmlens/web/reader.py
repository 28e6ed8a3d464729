"""Connections to the store for the dashboard: read-only, one per request (or per event stream).

A store written by an older llmlens is migrated once, by a short write connection, as the store
commands do; everything else reads through `mode=ro`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from llmlens.store.schema import StoreError, open_store


def open_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to the store at `path`; StoreError (one line) if there is none."""
    try:
        return open_store(path, readonly=True)
    except StoreError as error:
        if "older schema" not in str(error):
            raise
    open_store(path, create=False).close()  # migrate once, then read
    return open_store(path, readonly=True)


@contextmanager
def reading(path: str) -> Iterator[sqlite3.Connection]:
    conn = open_reader(path)
    try:
        yield conn
    finally:
        conn.close()
