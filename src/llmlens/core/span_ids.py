"""Trace and span ids that the application's `random.seed()` cannot repeat.

The SDK's default id generator draws from the `random` module. An application that seeds it for a
reproducible run (`random.seed(42)`, common in evaluation scripts) then makes the same ids every run:
traces of two runs collide in a backend, and the local store, which keeps one row per (trace id, span
id), keeps only the first run's requests. `SPAN_IDS` draws from a generator of its own instead, seeded
from the operating system's randomness at import and again in each child after a fork (a forked child
would otherwise repeat its parent's ids). It costs what the SDK's does: one `getrandbits` per id.

`configure()` gives it to the tracer provider it makes; with a provider of the application's, only
llmlens's own tracer takes it (`adopt`), so the application's tracers keep the behaviour it chose.
"""

from __future__ import annotations

import os
import random
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

__all__ = ["SPAN_IDS", "OwnRandomIdGenerator", "adopt"]


class OwnRandomIdGenerator(IdGenerator):
    """Random ids (W3C trace context's random trace id flag holds) from a private, OS-seeded generator."""

    def __init__(self) -> None:
        self._random = random.Random()  # seeded from os.urandom
        self._draw = self._random.getrandbits

    def reseed(self) -> None:
        self._random.seed()

    def generate_span_id(self) -> int:
        span_id = self._draw(64)
        while span_id == trace.INVALID_SPAN_ID:
            span_id = self._draw(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = self._draw(128)
        while trace_id == trace.INVALID_TRACE_ID:
            trace_id = self._draw(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True


SPAN_IDS = OwnRandomIdGenerator()
if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=SPAN_IDS.reseed)


def adopt(tracer: Any) -> None:
    """Give an SDK tracer that draws its ids from the `random` module (the SDK's default) `SPAN_IDS`.
    Any other tracer, or an id generator the application chose, is left as it is."""
    if type(getattr(tracer, "id_generator", None)) is RandomIdGenerator:
        tracer.id_generator = SPAN_IDS
