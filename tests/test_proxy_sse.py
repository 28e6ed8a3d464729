"""The incremental SSE parser: real-world stream shapes, and property tests that splitting a stream
anywhere (one cut at every position, or many random cuts) yields the same events."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlens.proxy.sse import SSEParser


def parse(*chunks: bytes) -> list[tuple[bytes, bytes]]:
    parser = SSEParser()
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.flush()


def every_split(stream: bytes) -> None:
    whole = parse(stream)
    for i in range(len(stream) + 1):
        assert parse(stream[:i], stream[i:]) == whole, i
    assert parse(*[stream[i : i + 1] for i in range(len(stream))]) == whole  # one byte at a time


# --- shapes seen in the wild -----------------------------------------------------------------------

OPENAI = (
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC = (
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":0}}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"a"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    b"data: [DONE]\n\n"  # some proxies add it after an Anthropic stream
)


def test_openai_stream() -> None:
    events = parse(OPENAI)
    assert [e[0] for e in events] == [b"", b"", b""]
    assert json.loads(events[0][1])["choices"][0]["delta"]["content"] == "Hi"
    assert events[-1][1] == b"[DONE]"
    every_split(OPENAI)


def test_anthropic_stream_with_done_after_message_stop() -> None:
    events = parse(ANTHROPIC)
    names = [e[0] for e in events]
    assert names == [
        b"message_start",
        b"ping",
        b"content_block_delta",
        b"message_delta",
        b"message_stop",
        b"",
    ]
    assert all(json.loads(e[1]) for e in events[:-1])
    every_split(ANTHROPIC)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_line_endings(newline: bytes) -> None:
    stream = ANTHROPIC.replace(b"\n", newline)
    assert parse(stream) == parse(ANTHROPIC)
    every_split(stream)


def test_mixed_line_endings() -> None:
    stream = b"event: a\r\ndata: 1\r\r\ndata: {}\n\r\nevent: b\rdata: 2\n\n"
    assert parse(stream) == [(b"a", b"1"), (b"", b"{}"), (b"b", b"2")]
    every_split(stream)


def test_one_event_chunks_with_carriage_returns_after_a_clean_start() -> None:
    # After a first whole event the parser takes its one-event fast path, which must leave any chunk
    # with a `\r` (a line end of its own) to the general path.
    parser = SSEParser()
    assert parser.feed(b"data: 1\n\n") == [(b"", b"1")]
    assert parser.feed(b"event: a\r\ndata: 2\r\n\r\n") == [(b"a", b"2")]
    assert parser.feed(b"data: a\rdata: b\n\n") == [(b"", b"a\nb")]
    assert parser.feed(b"event: c\rdata: 3\n\n") == [(b"c", b"3")]
    assert parser.feed(b"data: 4\n\n") == [(b"", b"4")]


def test_several_events_in_one_chunk_and_one_event_in_many_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\n\ndata: 2\n\ndata: 3") == [(b"", b"1"), (b"", b"2")]
    assert parser.feed(b"3\n") == []
    assert parser.feed(b"\n") == [(b"", b"33")]
    assert parser.feed(b"da") == []
    assert parser.feed(b"ta: 4\n\n") == [(b"", b"4")]


def test_events_come_out_as_soon_as_their_blank_line_arrives() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]\n") == []
    assert parser.feed(b"\n") == [(b"", b"[DONE]")]


def test_single_newline_between_events() -> None:
    # Some proxies put one newline between events.
    stream = b'data: {"a":1}\ndata: {"b":2}\ndata: [DONE]\n'
    assert parse(stream) == [(b"", b'{"a":1}'), (b"", b'{"b":2}'), (b"", b"[DONE]")]
    every_split(stream)
    stream = b'event: x\ndata: {"a":1}\nevent: y\ndata: {"b":2}\n'
    assert parse(stream) == [(b"x", b'{"a":1}'), (b"y", b'{"b":2}')]
    every_split(stream)


def test_single_newline_events_come_out_without_waiting_for_the_next_one() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a":1}\ndata: {"b":2}\n') == [(b"", b'{"a":1}'), (b"", b'{"b":2}')]
    assert parser.feed(b'data: {"c":3}\n') == [(b"", b'{"c":3}')]


def test_multi_line_data_is_joined() -> None:
    stream = b'data: {"a":\ndata: 1}\n\ndata: x\ndata:y\n\n'
    assert parse(stream) == [(b"", b'{"a":\n1}'), (b"", b"x\ny")]
    every_split(stream)


def test_comments_ids_retry_and_unknown_fields_are_ignored() -> None:
    stream = b": keep-alive\n\nid: 7\nretry: 100\nfoo: bar\nnocolon\ndata: 1\n\n:\n\n"
    assert parse(stream) == [(b"", b"1")]
    every_split(stream)


def test_byte_order_mark_and_no_space_after_colon() -> None:
    stream = b"\xef\xbb\xbfdata:1\n\nevent:e\ndata:  2\n\n"
    assert parse(stream) == [(b"", b"1"), (b"e", b" 2")]
    every_split(stream)


def test_last_event_without_blank_line_comes_with_flush() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\n\ndata: 2") == [(b"", b"1")]
    assert parser.flush() == [(b"", b"2")]
    assert parser.flush() == []


def test_an_event_with_no_data_is_not_an_event() -> None:
    assert parse(b"event: a\n\n\n\n") == []


def test_an_oversized_event_stops_parsing_instead_of_buffering() -> None:
    parser = SSEParser(max_event_bytes=1000)
    assert parser.feed(b"data: 1\n\n") == [(b"", b"1")]
    assert parser.feed(b"data: " + b"x" * 2000) == []
    assert parser.broken
    assert parser.feed(b"\n\ndata: 2\n\n") == []
    assert parser.flush() == []


def test_bytearray_and_memoryview_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(bytearray(b"data: 1\n\n")) == [(b"", b"1")]
    assert parser.feed(memoryview(b"data: 2\n\n")) == [(b"", b"2")]  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)
_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 _-", min_size=1, max_size=12)
_event = st.tuples(
    st.one_of(st.just(""), _word.map(str.strip).filter(bool)),
    st.one_of(
        _text.map(lambda t: [t]),  # one data line: anything
        st.lists(_word, min_size=2, max_size=4),  # several lines that look like no JSON value
        st.just(["[DONE]"]),
        st.dictionaries(_word, st.integers(), max_size=3).map(lambda d: [json.dumps(d)]),
    ),
)


def _serialize(events: list[tuple[str, list[str]]], newline: bytes) -> bytes:
    out = []
    for name, lines in events:
        if name:
            out.append(b"event: " + name.encode() + newline)
        out.extend(b"data: " + line.encode() + newline for line in lines)
        out.append(newline)
    return b"".join(out)


def _expected(events: list[tuple[str, list[str]]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), "\n".join(lines).encode()) for name, lines in events]


@settings(max_examples=150, deadline=None)
@given(st.lists(_event, max_size=8), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_spec_streams_give_their_events_however_they_are_cut(
    events: list[tuple[str, list[str]]], newline: bytes
) -> None:
    stream = _serialize(events, newline)
    assert parse(stream) == _expected(events)
    for i in range(len(stream) + 1):
        assert parse(stream[:i], stream[i:]) == _expected(events)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_event, max_size=8),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_many_random_cuts(events: list[tuple[str, list[str]]], newline: bytes, cuts: list[int]) -> None:
    stream = _serialize(events, newline)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert parse(*chunks) == _expected(events)


_TOKENS = [b"data:", b"data: ", b"event: x", b"event:", b"\n", b"\r", b"\r\n", b"{", b"}", b"[", b"]",
           b"[DONE]", b":", b" ", b"a", b"id: 1", b"\xef\xbb\xbf", b"\xff"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40))
def test_any_byte_soup_parses_the_same_however_it_is_cut(tokens: list[bytes]) -> None:
    stream = b"".join(tokens)
    whole = parse(stream)  # never raises
    for i in range(len(stream) + 1):
        assert parse(stream[:i], stream[i:]) == whole, (stream, i)
