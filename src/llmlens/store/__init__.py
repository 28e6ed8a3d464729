"""The local store: every LLM request in an SQLite file, with queries, retention and a CLI on top.

>>> from llmlens.store import SQLiteSpanProcessor
>>> tracer_provider.add_span_processor(SQLiteSpanProcessor())   # $LLMLENS_DB or the user data dir
"""

from __future__ import annotations

from llmlens.store.paths import default_db_path
from llmlens.store.processor import SQLiteSpanProcessor, StoreStats
from llmlens.store.retention import Retention
from llmlens.store.sampling import RecordGenAISampler
from llmlens.store.schema import StoreError, open_store

__all__ = [
    "RecordGenAISampler",
    "Retention",
    "SQLiteSpanProcessor",
    "StoreError",
    "StoreStats",
    "default_db_path",
    "open_store",
]
