"""Check a speedscope JSON document (a profile as pyinstrument's SpeedscopeRenderer writes it) against
speedscope's own file-format schema, plus the rules of the format that the schema cannot express.

tests/data/speedscope-file-format-schema.json is the schema speedscope publishes as
https://www.speedscope.app/file-format-schema.json, byte for byte as the npm package speedscope 1.25.0
ships it (dist/release/file-format-schema.json; its release.txt names commit
810efdf0a4868bb28f1300f4daacd0db6b8a95bd of jlfwong/speedscope, tag v1.25.0). speedscope generates it
with typescript-json-schema (scripts/generate-file-format-schema-json.js) from src/lib/file-format-spec.ts,
which is unchanged from 0121cf9 (2024-02-05) to the newest commit seen, 3613918 (2025-12-05).
speedscope is MIT-licensed: tests/data/speedscope-LICENSE.txt.

The rules checked beyond the schema, from the comments of file-format-spec.ts and what speedscope's
importer (src/lib/file-format.ts) relies on:
  - every frame index (an event's `frame`, each entry of a sampled stack) is a whole number in
    range of `shared.frames`;
  - `startValue <= endValue` in every profile;
  - a sampled profile has as many `weights` as `samples`;
  - an evented profile's events are in non-decreasing `at` order, every `at` lies within
    `[startValue, endValue]`, and the open ("O") and close ("C") events pair up and nest: each close
    closes the innermost open frame, and none is left open at the end;
  - `activeProfileIndex`, when given, is the index of one of `profiles`.

`null_as_absent=True` reads an optional member whose value is null as absent (`activeProfileIndex`,
`name`, `exporter` of the file; `file`, `line`, `col` of a frame: the members the schema does not
require). The schema says no to null there, but speedscope's importer takes it as absent
(`activeProfileIndex || 0`; a frame's fields are copied as they are and tested `!= null`), and
pyinstrument 5 writes `"activeProfileIndex": null` always and `"file": null, "line": null` for its
synthetic `[self]` frames. A null where the schema requires a member still fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for

SCHEMA_PATH = Path(__file__).parent / "data" / "speedscope-file-format-schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

# The validator class the schema's own "$schema" names (draft-07 here); the schema is checked once.
_Validator = validator_for(SCHEMA)
_Validator.check_schema(SCHEMA)
_VALIDATOR = _Validator(SCHEMA)

SHOWN = 5  # problems listed in an AssertionError; the rest are counted
_MESSAGE_CHARS = 160


def validate_speedscope(document: dict[str, Any], *, null_as_absent: bool = False) -> None:
    """Raise AssertionError listing the first problems if `document` is not a valid speedscope file."""
    problems = speedscope_errors(document, null_as_absent=null_as_absent)
    if problems:
        lines = [f"  {p}" for p in problems[:SHOWN]]
        if len(problems) > SHOWN:
            lines.append(f"  ... and {len(problems) - SHOWN} more")
        raise AssertionError(
            f"not a valid speedscope document ({len(problems)} problem(s)):\n" + "\n".join(lines)
        )


def speedscope_errors(document: Any, *, null_as_absent: bool = False) -> list[str]:
    """Every problem found, as "<JSON path>: <what is wrong>", schema problems first.

    The semantic rules are checked only on a document the schema accepts: before that, its shape
    is not known.
    """
    if null_as_absent:
        document = _without_null_optionals(document)
    schema_errors = sorted(_VALIDATOR.iter_errors(document), key=lambda e: _sort_key(e.absolute_path))
    if schema_errors:
        return [_describe(e) for e in schema_errors]
    return _semantic_errors(document)


# --- schema errors, readably ---


def _path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _sort_key(parts: Iterable[Any]) -> list[tuple[int, Any]]:
    return [(0, p) if isinstance(p, int) else (1, str(p)) for p in parts]


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _describe(error: ValidationError, depth: int = 0) -> str:
    """One line for one schema error; for a union (anyOf) that matched no branch, why each branch
    refused it (one level deep, two reasons a branch), instead of the whole instance's repr."""
    where = _path(error.absolute_path)
    alternatives = error.schema.get(error.validator) if isinstance(error.schema, dict) else None
    if error.validator in ("anyOf", "oneOf") and error.context and depth == 0 and alternatives:
        by_branch: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
        reasons = []
        for index, subs in sorted(by_branch.items()):
            branch = alternatives[index]
            name = branch.get("$ref", f"#{index}").rsplit("/", 1)[-1]
            # a wrong discriminator (`type`: "O", "evented", ...) says most about why a branch refused
            subs.sort(
                key=lambda e: (e.validator != "const", len(e.absolute_path), _sort_key(e.absolute_path))
            )
            reasons.append(f"as {name}: " + "; ".join(_describe(s, depth + 1) for s in subs[:2]))
        union = error.schema.get("title", error.validator)
        return f"{where}: matches no branch of {union} ({' | '.join(reasons)})"
    if error.validator in ("anyOf", "oneOf") and alternatives:
        names = " or ".join(alt.get("$ref", "?").rsplit("/", 1)[-1] for alt in alternatives)
        return f"{where}: matches no branch of {error.schema.get('title', names)}"
    return f"{where}: {_short(error.message)}"


def _optional_members(definition: str) -> set[str]:
    spec = SCHEMA["definitions"][definition]
    return set(spec["properties"]) - set(spec.get("required", ()))


def _drop_null(obj: Any, optional: set[str]) -> Any:
    if not isinstance(obj, dict):
        return obj
    return {k: v for k, v in obj.items() if not (v is None and k in optional)}


def _without_null_optionals(document: Any) -> Any:
    if not isinstance(document, dict):
        return document
    document = _drop_null(document, _optional_members("FileFormat.File"))
    shared = document.get("shared")
    if isinstance(shared, dict) and isinstance(shared.get("frames"), list):
        frame_optional = _optional_members("FileFormat.Frame")
        frames = [_drop_null(f, frame_optional) for f in shared["frames"]]
        document["shared"] = {**shared, "frames": frames}
    return document


# --- rules the schema cannot express ---


def _is_index(value: Any, length: int) -> bool:
    # JSON has one number type: 2.0 indexes like 2 in speedscope's JavaScript
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value == int(value)
        and 0 <= value < length
    )


def _semantic_errors(document: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    n_frames = len(document["shared"]["frames"])
    profiles = document["profiles"]
    active = document.get("activeProfileIndex")
    if active is not None and not _is_index(active, len(profiles)):
        problems.append(
            f"$.activeProfileIndex: {active!r} is not the index of a profile ({len(profiles)} profile(s))"
        )
    for i, profile in enumerate(profiles):
        where = f"$.profiles[{i}]"
        start, end = profile["startValue"], profile["endValue"]
        if not start <= end:
            problems.append(f"{where}: endValue {end!r} is before startValue {start!r}")
        if profile["type"] == "sampled":
            problems += _sampled_errors(where, profile, n_frames)
        else:
            problems += _evented_errors(where, profile, n_frames)
    return problems


def _sampled_errors(where: str, profile: dict[str, Any], n_frames: int) -> list[str]:
    problems = []
    samples, weights = profile["samples"], profile["weights"]
    if len(samples) != len(weights):
        problems.append(f"{where}: {len(samples)} samples but {len(weights)} weights")
    for s, stack in enumerate(samples):
        for k, index in enumerate(stack):
            if not _is_index(index, n_frames):
                problems.append(
                    f"{where}.samples[{s}][{k}]: frame index {index!r} is out of range "
                    f"(shared.frames has {n_frames})"
                )
    return problems


def _evented_errors(where: str, profile: dict[str, Any], n_frames: int) -> list[str]:
    problems = []
    start, end = profile["startValue"], profile["endValue"]
    open_frames: list[tuple[int, Any]] = []  # (event number, frame) of each frame still open, innermost last
    nesting_ok = True  # after the first nesting problem the rest would only echo it
    previous_at = None
    for e, event in enumerate(profile["events"]):
        here = f"{where}.events[{e}]"
        frame, at = event["frame"], event["at"]
        if not _is_index(frame, n_frames):
            problems.append(f"{here}: frame index {frame!r} is out of range (shared.frames has {n_frames})")
        if previous_at is not None and at < previous_at:
            problems.append(f"{here}: at {at!r} is before the previous event's at {previous_at!r}")
        if not start <= at <= end:
            problems.append(f"{here}: at {at!r} is outside [startValue {start!r}, endValue {end!r}]")
        previous_at = at
        if not nesting_ok:
            continue
        if event["type"] == "O":
            open_frames.append((e, frame))
        elif not open_frames:
            problems.append(f"{here}: closes frame {frame!r} but no frame is open")
            nesting_ok = False
        elif open_frames[-1][1] != frame:
            opened_at, innermost = open_frames[-1]
            problems.append(
                f"{here}: closes frame {frame!r} but the innermost open frame is {innermost!r} "
                f"(opened by events[{opened_at}])"
            )
            nesting_ok = False
        else:
            open_frames.pop()
    if nesting_ok and open_frames:
        left = ", ".join(f"{f!r} (events[{e}])" for e, f in open_frames)
        problems.append(f"{where}.events: {len(open_frames)} frame(s) opened and never closed: {left}")
    return problems
