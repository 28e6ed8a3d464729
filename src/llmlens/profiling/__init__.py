"""Profiling: pyinstrument profiles of real LLM requests, armed from outside, stored with their trace.

>>> from llmlens import profiling
>>> profiling.arm(next=3, model="gpt-4o*", min_duration_ms=500)   # what `llmlens profile arm` does
>>> profiling.status()["arms"]
>>> profiling.disarm()

A process instrumented with the local store (`instrument()` or `opentelemetry-instrument`) picks up an
arm within a second, profiles the matching requests from their start to their last exit, and stores
each profile in the same SQLite file, linked to its request row. `LLMLENS_PROFILE_SAMPLE` profiles a
fraction of all requests and keeps the slow (or failed) ones. See docs/profiling.md.
"""

from __future__ import annotations

from llmlens.profiling.api import arm, disarm, status

__all__ = ["arm", "disarm", "status"]
