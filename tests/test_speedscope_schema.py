"""tests/speedscope_schema.py: pyinstrument's speedscope output passes it, and it refuses broken
documents (so a validator that let everything through would fail here)."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from typing import Any

import pytest
from pyinstrument import Profiler
from pyinstrument.renderers import SpeedscopeRenderer

from speedscope_schema import SCHEMA, speedscope_errors, validate_speedscope

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"


def _spin(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    turns = 0
    while time.perf_counter() < deadline:
        turns += 1
    return turns


def _leaf() -> int:
    return _spin(0.008)


def _middle() -> int:
    return _leaf() + _spin(0.004)


def _outer() -> int:
    return sum(_middle() for _ in range(4))


def _speedscope(profiler: Profiler) -> dict[str, Any]:
    assert profiler.last_session is not None
    return json.loads(SpeedscopeRenderer().render(profiler.last_session))


@pytest.fixture(scope="module")
def sync_document() -> dict[str, Any]:
    """About 50 ms of nested Python calls, profiled and exported as speedscope JSON."""
    profiler = Profiler(async_mode="enabled")
    profiler.start()
    _outer()
    profiler.stop()
    return _speedscope(profiler)


async def _task() -> None:
    _spin(0.01)
    await asyncio.sleep(0.01)
    _spin(0.005)


async def _profiled_gather() -> Profiler:
    profiler = Profiler(async_mode="enabled")
    profiler.start()
    await asyncio.gather(_task(), _task())
    profiler.stop()
    return profiler


def _frame_names(document: dict[str, Any]) -> set[str]:
    return {frame["name"] for frame in document["shared"]["frames"]}


def test_pyinstrument_output_is_valid(sync_document: dict[str, Any]) -> None:
    validate_speedscope(sync_document, null_as_absent=True)
    (profile,) = sync_document["profiles"]
    assert profile["type"] == "evented"
    assert len(profile["events"]) >= 6  # three nested functions at least, opened and closed
    assert {"_outer", "_middle", "_leaf", "_spin"} <= _frame_names(sync_document)


def test_pyinstrument_async_output_is_valid() -> None:
    document = _speedscope(asyncio.run(_profiled_gather()))
    validate_speedscope(document, null_as_absent=True)
    assert {"_task", "_spin"} <= _frame_names(document)


def test_pyinstrument_strays_from_the_schema_only_by_nulls(sync_document: dict[str, Any]) -> None:
    """Read strictly, pyinstrument 5's output breaks the schema only where it writes null for an
    optional member; if this starts failing because there are no errors, null_as_absent can go."""
    errors = speedscope_errors(sync_document)
    assert "$.activeProfileIndex: None is not of type 'number'" in errors, errors
    null_optional = re.compile(
        r"\$\.(activeProfileIndex|name|exporter|shared\.frames\[\d+\]\.(file|line|col)): "
        r"None is not of type '(number|string)'"
    )
    assert all(null_optional.fullmatch(e) for e in errors), errors


def test_the_vendored_schema_is_speedscopes() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["$ref"] == "#/definitions/FileFormat.File"
    file_spec = SCHEMA["definitions"]["FileFormat.File"]
    assert file_spec["properties"]["$schema"]["const"] == SCHEMA_URL
    assert set(file_spec["required"]) == {"$schema", "profiles", "shared"}


# --- the validator refuses broken documents ---


def _evented() -> dict[str, Any]:
    """A small valid document: frame 0 calls frame 1, then frame 2."""
    return {
        "$schema": SCHEMA_URL,
        "shared": {"frames": [{"name": "main", "file": "app.py", "line": 1}, {"name": "a"}, {"name": "b"}]},
        "profiles": [
            {
                "type": "evented",
                "name": "evented",
                "unit": "seconds",
                "startValue": 0,
                "endValue": 10,
                "events": [
                    {"type": "O", "frame": 0, "at": 0},
                    {"type": "O", "frame": 1, "at": 1},
                    {"type": "C", "frame": 1, "at": 4},
                    {"type": "O", "frame": 2, "at": 4},
                    {"type": "C", "frame": 2, "at": 9},
                    {"type": "C", "frame": 0, "at": 10},
                ],
            }
        ],
        "name": "two profiles",
        "activeProfileIndex": 1,
        "exporter": "tests@0",
    }


def _with_sampled() -> dict[str, Any]:
    document = _evented()
    document["profiles"].append(
        {
            "type": "sampled",
            "name": "sampled",
            "unit": "milliseconds",
            "startValue": 0,
            "endValue": 30,
            "samples": [[0, 1], [0, 2], [0]],
            "weights": [10, 15, 5],
        }
    )
    return document


def test_the_hand_written_documents_are_valid() -> None:
    validate_speedscope(_with_sampled())
    document = _evented()
    del document["activeProfileIndex"]
    validate_speedscope(document)


def _refused(document: dict[str, Any], message: str, **kwargs: Any) -> None:
    with pytest.raises(AssertionError, match=message):
        validate_speedscope(document, **kwargs)


def test_missing_shared_frames() -> None:
    document = _with_sampled()
    del document["shared"]["frames"]
    _refused(document, re.escape("$.shared: 'frames' is a required property"))
    del document["shared"]
    _refused(document, re.escape("$: 'shared' is a required property"))


def test_missing_shared_frames_in_pyinstrument_output(sync_document: dict[str, Any]) -> None:
    document = copy.deepcopy(sync_document)
    del document["shared"]["frames"]
    _refused(document, re.escape("$.shared: 'frames' is a required property"), null_as_absent=True)


def test_event_frame_index_out_of_range() -> None:
    document = _with_sampled()
    document["profiles"][0]["events"][1]["frame"] = 3
    document["profiles"][0]["events"][2]["frame"] = 3
    _refused(
        document, re.escape("$.profiles[0].events[1]: frame index 3 is out of range (shared.frames has 3)")
    )
    document = _with_sampled()
    document["profiles"][0]["events"][0]["frame"] = -1
    document["profiles"][0]["events"][5]["frame"] = -1
    _refused(document, re.escape("$.profiles[0].events[0]: frame index -1 is out of range"))


def test_sampled_frame_index_out_of_range() -> None:
    document = _with_sampled()
    document["profiles"][1]["samples"][1] = [0, 7]
    _refused(document, re.escape("$.profiles[1].samples[1][1]: frame index 7 is out of range"))
    document["profiles"][1]["samples"][1] = [0, 1.5]
    _refused(document, re.escape("$.profiles[1].samples[1][1]: frame index 1.5 is out of range"))


def test_frame_index_out_of_range_in_pyinstrument_output(sync_document: dict[str, Any]) -> None:
    document = copy.deepcopy(sync_document)
    n_frames = len(document["shared"]["frames"])
    for event in document["profiles"][0]["events"]:
        if event["frame"] == n_frames - 1:
            event["frame"] = n_frames
    _refused(document, rf"frame index {n_frames} is out of range", null_as_absent=True)


def test_unbalanced_events() -> None:
    document = _evented()
    del document["profiles"][0]["events"][-1]  # frame 0 is never closed
    _refused(document, re.escape("$.profiles[0].events: 1 frame(s) opened and never closed: 0 (events[0])"))

    document = _evented()
    del document["profiles"][0]["events"][0]  # frame 0 is closed without being opened
    _refused(document, re.escape("$.profiles[0].events[4]: closes frame 0 but no frame is open"))

    document = _evented()
    events = document["profiles"][0]["events"]
    events[2]["frame"], events[4]["frame"] = 2, 1  # O 1, C 2: b closed while a is the innermost
    _refused(document, re.escape("$.profiles[0].events[2]: closes frame 2 but the innermost open frame is 1"))


def test_events_out_of_order_or_range() -> None:
    document = _evented()
    document["profiles"][0]["events"][3]["at"] = 3  # before the previous close at 4
    _refused(document, re.escape("$.profiles[0].events[3]: at 3 is before the previous event's at 4"))

    document = _evented()
    document["profiles"][0]["events"][-1]["at"] = 11
    _refused(document, re.escape("$.profiles[0].events[5]: at 11 is outside [startValue 0, endValue 10]"))

    document = _evented()
    document["profiles"][0]["startValue"] = 12
    _refused(document, re.escape("$.profiles[0]: endValue 10 is before startValue 12"))


def test_samples_and_weights_differ_in_length() -> None:
    document = _with_sampled()
    document["profiles"][1]["weights"].pop()
    _refused(document, re.escape("$.profiles[1]: 3 samples but 2 weights"))


def test_active_profile_index_out_of_range() -> None:
    document = _with_sampled()
    document["activeProfileIndex"] = 2
    _refused(document, re.escape("$.activeProfileIndex: 2 is not the index of a profile (2 profile(s))"))


def test_wrong_schema_url() -> None:
    document = _with_sampled()
    document["$schema"] = "https://example.com/speedscope.json"
    _refused(document, re.escape(f"$.$schema: '{SCHEMA_URL}' was expected"))


def test_wrong_profile_type() -> None:
    document = _with_sampled()
    document["profiles"][0]["type"] = "instant"
    _refused(
        document,
        re.escape(
            "$.profiles[0]: matches no branch of FileFormat.Profile "
            "(as FileFormat.EventedProfile: $.profiles[0].type: 'evented' was expected | "
            "as FileFormat.SampledProfile: $.profiles[0].type: 'sampled' was expected"
        ),
    )


def test_wrong_event_type_and_unit() -> None:
    document = _evented()
    document["profiles"][0]["events"][2]["type"] = "X"
    _refused(document, re.escape("$.profiles[0].events[2]: matches no branch"))
    document = _evented()
    document["profiles"][0]["unit"] = "hours"
    _refused(document, re.escape("$.profiles[0].unit: 'hours' is not one of"))


def test_null_as_absent_covers_only_optional_members() -> None:
    document = _evented()
    document["activeProfileIndex"] = None
    document["shared"]["frames"][0].update(file=None, line=None, col=None)
    _refused(document, re.escape("$.activeProfileIndex: None is not of type 'number'"))
    validate_speedscope(document, null_as_absent=True)

    document["shared"]["frames"][1]["name"] = None  # required
    _refused(
        document, re.escape("$.shared.frames[1].name: None is not of type 'string'"), null_as_absent=True
    )
    document = _evented()
    document["profiles"][0]["name"] = None  # required in a profile
    _refused(document, re.escape("$.profiles[0]: matches no branch"), null_as_absent=True)


def test_message_lists_the_first_problems_and_counts_the_rest() -> None:
    document = _with_sampled()
    for event in document["profiles"][0]["events"]:
        event["frame"] = 9
    with pytest.raises(AssertionError) as caught:
        validate_speedscope(document)
    message = str(caught.value)
    assert message.startswith("not a valid speedscope document (6 problem(s)):\n"), message
    assert message.count("is out of range") == 5
    assert message.endswith("... and 1 more"), message


def test_not_a_document_at_all() -> None:
    _refused([], re.escape("$: [] is not of type 'object'"))  # type: ignore[arg-type]
    assert speedscope_errors({}) == [
        "$: '$schema' is a required property",
        "$: 'profiles' is a required property",
        "$: 'shared' is a required property",
    ]
