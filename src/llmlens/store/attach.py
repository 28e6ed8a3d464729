"""Add the SQLite store to a tracer provider once, and turn it off again on uninstrument.

The SDK has no way to remove a span processor, so `detach_stores()` disables ours instead and a later
`instrument()` on the same provider enables the same processor again (no duplicate rows). A disabled
processor still writes the spans that started before it was disabled: a stream still open at
`uninstrument()` ends its span afterwards, and that request gets its row like every other.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from llmlens.store.processor import SQLiteSpanProcessor
from llmlens.store.retention import Retention

_log = logging.getLogger("llmlens.store")
_attached: weakref.WeakKeyDictionary[Any, SQLiteSpanProcessor] = weakref.WeakKeyDictionary()


def attach_store(
    tracer_provider: Any | None, db_path: str | None = None, retention: Retention | None = None
) -> SQLiteSpanProcessor | None:
    """The store's processor on `tracer_provider` (the global one if None), added if missing;
    `retention` (else the environment's) is what it keeps."""
    if tracer_provider is None:
        from opentelemetry import trace

        tracer_provider = trace.get_tracer_provider()
    if not hasattr(tracer_provider, "add_span_processor"):
        # No SDK tracer provider (nothing configured yet): there are no spans to store.
        _log.debug("llmlens: no SDK tracer provider; the local store stays off")
        return None
    processor = _attached.get(tracer_provider)
    if processor is None or (db_path is not None and processor.path != db_path):
        if processor is not None:
            processor.disable()
        processor = SQLiteSpanProcessor(db_path, retention=retention)
        tracer_provider.add_span_processor(processor)
        _attached[tracer_provider] = processor
    elif retention is not None:
        processor.retention = retention
    processor.enabled = True
    return processor


def detach_stores() -> None:
    for processor in list(_attached.values()):
        processor.disable()
        try:
            processor.force_flush(5_000)
        except Exception:
            _log.debug("llmlens: store flush failed", exc_info=True)


def attached_store(tracer_provider: Any) -> SQLiteSpanProcessor | None:
    return _attached.get(tracer_provider)


def flush_stores(timeout_ms: int = 5_000) -> None:
    """Write what every attached store holds in its queue now (a server shutting down: its process may
    die from a signal next, with no interpreter exit and so no atexit flush)."""
    for processor in list(_attached.values()):
        try:
            processor.force_flush(timeout_ms)
        except Exception:
            _log.debug("llmlens: store flush failed", exc_info=True)
