"""Hypothesis strategies that damage a provider's reply the ways real upstreams (and proxies in front of
them) do: fields missing or `null`, values of the wrong type, unknown enum strings, out-of-range numbers,
huge strings, bytes that are not UTF-8, truncated JSON, and for streams events dropped, duplicated,
reordered, split across transport chunks, merged into one event, garbage between them, and the stream
cut short (cleanly or by a dropped connection).

A reply is a `Wire` (what `FuzzServer` sends); `mutated(seed, codec)` draws a damaged copy of a seed.
A `Codec` says how one stream frame holds its JSON (SSE `data:` line, an NDJSON line, an AWS
event-stream message), so the JSON inside a frame can be damaged and the frame rebuilt around it.

    @given(wire=mutated(seed, SSE))
    def test(wire): server.serve(wire); ...
"""

from __future__ import annotations

import copy
import json
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

# A string value replaced by this marker becomes bytes that are not UTF-8 once the JSON is encoded.
_BAD_UTF8_MARKER = "\u2603BADUTF8\u2603"
_BAD_UTF8 = b"caf\xc3(\xff\xfe\x80"
HUGE = 1_000_000  # characters of a huge string value (a 1 MB completion, model name, id)

OUT_OF_RANGE = [-1, -(2**63), 2**63, 2**64 + 1, 10**30, 1.5, -0.0, 1e308, math.nan, math.inf, -math.inf]
ODD_STRINGS = ["", "weird_value_from_the_future", "\x00", "\u2603", "STOP ", "null", "x" * 300]


@dataclass(frozen=True)
class Wire:
    """One HTTP reply: `body` (JSON) when `frames` is None, else a stream sent one frame per chunk;
    `cut` drops the connection after the last frame instead of ending the body."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    frames: tuple[bytes, ...] | None = None
    cut: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)  # what was done to it, for failure output

    def __repr__(self) -> str:
        size = len(self.body) if self.frames is None else sum(map(len, self.frames))
        shape = "json" if self.frames is None else f"{len(self.frames)} frames"
        return f"Wire({self.status}, {shape}, {size} bytes, cut={self.cut}, notes={list(self.notes)})"


@dataclass(frozen=True)
class Codec:
    """How a stream frame carries JSON: `split` -> (head, value, tail) or None; `join` rebuilds it."""

    name: str
    split: Callable[[bytes], tuple[bytes, Any, bytes] | None]
    join: Callable[[bytes, bytes, bytes], bytes]
    garbage: tuple[bytes, ...]
    merges_events: bool = True  # two frames joined without their separator make one (broken) event


def _sse_split(frame: bytes) -> tuple[bytes, Any, bytes] | None:
    start = frame.rfind(b"data:")
    if start < 0:
        return None
    start += 5
    if frame[start : start + 1] == b" ":
        start += 1
    end = len(frame.rstrip(b"\r\n"))
    try:
        return frame[:start], json.loads(frame[start:end]), frame[end:]
    except ValueError:
        return None


SSE = Codec(
    "sse",
    _sse_split,
    lambda head, data, tail: head + data + tail,
    garbage=(
        b": keep-alive\n\n",
        b"data: {not json\n\n",
        b"event: some_future_event\ndata: {}\n\n",
        b"data: \xff\xfe\x80\n\n",
        b"\n\n",
        b"data: null\n\n",
        b"data: []\n\n",
        b'data: {"type": "some_future_event", "object": "x"}\n\n',
        b"retry: 10\n\n",
        b"event: error\ndata: {}\n\n",
    ),
)


def _ndjson_split(frame: bytes) -> tuple[bytes, Any, bytes] | None:
    try:
        return b"", json.loads(frame), b"\n"
    except ValueError:
        return None


NDJSON = Codec(
    "ndjson",
    _ndjson_split,
    lambda head, data, tail: head + data + tail,
    garbage=(b"{}\n", b"null\n", b"\xff\xfe\n", b"{not json\n", b"[]\n", b"\n", b'{"done": "yes"}\n'),
)


def _eventstream_split(frame: bytes) -> tuple[bytes, Any, bytes] | None:
    from fakes.bedrock_bodies import decode_messages

    try:
        ((headers, payload),) = decode_messages(frame)
        return json.dumps(headers).encode(), json.loads(payload), b""
    except (ValueError, TypeError, struct.error):  # a frame cut or split earlier: not one whole message
        return None


def _eventstream_join(head: bytes, data: bytes, tail: bytes) -> bytes:
    from fakes.bedrock_bodies import encode_message

    return encode_message(json.loads(head), data)


def _eventstream_garbage() -> tuple[bytes, ...]:
    from fakes.bedrock_bodies import encode_event, encode_message

    return (
        encode_event("someFutureEvent", {"x": 1}),
        encode_message({":event-type": "contentBlockDelta", ":message-type": "event"}, b"\xff\xfe"),
        encode_message({":message-type": "exception", ":exception-type": "throttlingException"}, b"{}"),
        b"\x00\x00\x00\x10garbage!",
    )


EVENTSTREAM = Codec("eventstream", _eventstream_split, _eventstream_join, garbage=(), merges_events=False)


def codec_garbage(codec: Codec) -> tuple[bytes, ...]:
    return _eventstream_garbage() if codec is EVENTSTREAM else codec.garbage


# ------------------------------------------------------------------------------------- JSON damage


def _slots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a member of `value` (keys of dicts, indexes of lists), depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _slots(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _slots(item, (*path, index))


def _parent(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        value = value[step]
    return value


WRONG_TYPES = st.one_of(
    st.integers(-5, 5),
    st.text(max_size=5),
    st.booleans(),
    st.just([]),
    st.just({}),
    st.lists(st.integers(0, 3), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["a", "type", "text"]), st.integers(0, 3), min_size=1, max_size=2),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def damaged_json(draw: st.DrawFn, seed: Any, notes: list[str], max_ops: int = 3) -> Any:
    """A copy of the JSON value `seed` with up to `max_ops` members removed, nulled or replaced."""
    value = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        slots = list(_slots(value))
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent, key = _parent(value, path), path[-1]
        current = parent[key]
        kind = draw(
            st.sampled_from(
                ["delete", "null", "wrong_type", "unknown_enum", "out_of_range", "huge", "bad_utf8"]
            )
        )
        if kind == "delete":
            del parent[key]
        elif kind == "null":
            parent[key] = None
        elif kind == "wrong_type":
            parent[key] = draw(WRONG_TYPES)
        elif kind == "unknown_enum" and isinstance(current, str):
            parent[key] = draw(st.sampled_from(ODD_STRINGS))
        elif kind == "out_of_range" and isinstance(current, (int, float)) and not isinstance(current, bool):
            parent[key] = draw(st.sampled_from(OUT_OF_RANGE))
        elif kind == "huge" and isinstance(current, str):
            parent[key] = "x" * HUGE
        elif kind == "bad_utf8" and isinstance(current, str):
            parent[key] = _BAD_UTF8_MARKER
        else:  # the kind does not fit this member's type: a number where anything else was
            kind = "out_of_range"
            parent[key] = draw(st.sampled_from(OUT_OF_RANGE))
        notes.append(f"{kind} at {'/'.join(map(str, path))}")
    return value


def dumps(value: Any) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # NaN/Infinity as Python writes them
    return text.encode("utf-8", "surrogatepass").replace(_BAD_UTF8_MARKER.encode(), _BAD_UTF8)


# ------------------------------------------------------------------------------------- a whole reply


@st.composite
def mutated_body(draw: st.DrawFn, seed: Wire) -> Wire:
    notes: list[str] = []
    value = json.loads(seed.body)
    if draw(st.booleans()):
        value = draw(damaged_json(value, notes))
    body = dumps(value)
    if draw(st.integers(0, 7)) == 0:
        at = draw(st.integers(0, max(0, len(body) - 1)))
        body = body[:at]
        notes.append(f"truncated at byte {at}")
    status = draw(st.sampled_from([200] * 12 + [400, 429, 500, 529]))
    if status != 200:
        notes.append(f"status {status}")
    return Wire(status, seed.headers, body=body, notes=tuple(notes))


@st.composite
def mutated_stream(draw: st.DrawFn, seed: Wire, codec: Codec) -> Wire:
    assert seed.frames is not None
    frames = list(seed.frames)
    notes: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                ["damage", "damage", "damage", "drop", "duplicate", "swap", "split", "merge_chunks",
                 "merge_events", "garbage", "huge_event"]
            )
        )  # fmt: skip
        if not frames:
            break
        i = draw(st.integers(0, len(frames) - 1))
        if op == "damage" or op == "huge_event":
            parts = codec.split(frames[i])
            if parts is None:
                continue
            head, value, tail = parts
            if op == "huge_event":
                value = _with_huge_string(value)
                notes.append(f"huge string in frame {i}")
            else:
                value = draw(damaged_json(value, notes))
                notes.append(f"(frame {i})")
            frames[i] = codec.join(head, dumps(value), tail)
        elif op == "drop":
            del frames[i]
            notes.append(f"dropped frame {i}")
        elif op == "duplicate":
            frames.insert(i, frames[i])
            notes.append(f"duplicated frame {i}")
        elif op == "swap" and i + 1 < len(frames):
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
            notes.append(f"swapped frames {i} and {i + 1}")
        elif op == "split" and len(frames[i]) > 1:
            at = draw(st.integers(1, len(frames[i]) - 1))
            frames[i : i + 1] = [frames[i][:at], frames[i][at:]]
            notes.append(f"frame {i} split at byte {at}")
        elif op == "merge_chunks" and i + 1 < len(frames):
            frames[i : i + 2] = [frames[i] + frames[i + 1]]
            notes.append(f"frames {i} and {i + 1} in one chunk")
        elif op == "merge_events" and i + 1 < len(frames) and codec.merges_events:
            # the separator between two events lost: SSE gets one event with two data lines, NDJSON
            # one line holding two objects
            frames[i : i + 2] = [frames[i].rstrip(b"\r\n") + (b"\n" if codec is SSE else b"") + frames[i + 1]]
            notes.append(f"frames {i} and {i + 1} merged into one event")
        elif op == "garbage":
            frames.insert(i, draw(st.sampled_from(codec_garbage(codec))))
            notes.append(f"garbage before frame {i}")
    cut = False
    ending = draw(st.sampled_from(["whole"] * 5 + ["truncated", "cut"]))
    if ending != "whole" and frames:
        stream = b"".join(frames)
        at = draw(st.integers(0, len(stream)))
        frames = _recut(frames, at)
        cut = ending == "cut"
        notes.append(f"stream {'cut (connection dropped)' if cut else 'ended'} at byte {at}")
    return Wire(seed.status, seed.headers, frames=tuple(frames), cut=cut, notes=tuple(notes))


def _recut(frames: list[bytes], at: int) -> list[bytes]:
    """The frames up to byte `at` of the stream, the last one cut there."""
    out, seen = [], 0
    for frame in frames:
        if seen + len(frame) >= at:
            if at > seen:
                out.append(frame[: at - seen])
            return out
        out.append(frame)
        seen += len(frame)
    return out


def _with_huge_string(value: Any) -> Any:
    """`value` with its first (deepest-first) string member made HUGE characters long."""
    value = copy.deepcopy(value)
    for path in reversed(list(_slots(value))):
        parent = _parent(value, path)
        if isinstance(parent[path[-1]], str):
            parent[path[-1]] = "y" * HUGE
            return value
    return value


def mutated(seed: Wire, codec: Codec | None) -> st.SearchStrategy[Wire]:
    """Damaged copies of `seed` (a JSON reply when `codec` is None, else a stream in that framing)."""
    if seed.frames is None:
        return mutated_body(seed)
    assert codec is not None
    return mutated_stream(seed, codec)


def unchanged(wire: Wire) -> Wire:
    return replace(wire, notes=("unchanged",))
