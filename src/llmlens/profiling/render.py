"""A stored profile as text, HTML or speedscope JSON, through pyinstrument's own renderers."""

from __future__ import annotations

from typing import Any

from llmlens.store.profiles import ProfileError, decode_session

FORMATS = ("text", "html", "speedscope")


def render(profile: dict[str, Any], fmt: str = "text", color: bool = False) -> str:
    """The profile (a row of `store.profiles.get_profile`) rendered; ProfileError if it cannot be."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    session = decode_session(profile)
    try:
        if fmt == "html":
            from pyinstrument.renderers import HTMLRenderer

            return str(HTMLRenderer().render(session))
        if fmt == "speedscope":
            from pyinstrument.renderers import SpeedscopeRenderer

            return str(SpeedscopeRenderer().render(session))
        from pyinstrument.renderers import ConsoleRenderer

        return str(ConsoleRenderer(unicode=True, color=color, time="seconds").render(session))
    except Exception as error:  # a session that decodes but holds nonsense (a foreign or edited blob)
        raise ProfileError(
            f"profile {profile.get('id')} cannot be rendered as {fmt} ({type(error).__name__}: {error})"
        ) from None


def summary_lines(profile: dict[str, Any], top: int = 5) -> list[str]:
    """A few lines: what was profiled, how long, and where the time went in the user's own code."""
    summary = profile.get("summary") or {}
    duration = summary.get("duration_ms", profile.get("duration_ms") or 0)
    samples = summary.get("sample_count", profile.get("sample_count") or 0)
    lines = [
        f"{profile.get('reason', '?')} profile {profile.get('id')}: {duration:.1f} ms, {samples} samples,"
        f" CPU {summary.get('cpu_ms', 0):.1f} ms"
    ]
    packages = summary.get("by_package") or []
    if packages:
        shares = ", ".join(f"{p['package']} {p.get('share', 0) * 100:.0f}%" for p in packages[:top])
        lines.append(f"time by package (innermost frame of each sample): {shares}")
    frames = summary.get("top_frames") or []
    if not frames:
        lines.append("no samples in your own code (all the time was in libraries or waiting)")
        return lines
    lines.append("time by your own code (the innermost frame of yours on each sample's stack):")
    for frame in frames[:top]:
        where = frame.get("file") or ""
        if frame.get("line"):
            where += f":{frame['line']}"
        share, ms = frame.get("share", 0) * 100, frame.get("ms", 0)
        lines.append(f"  {share:5.1f}%  {ms:9.1f} ms  {frame.get('function')}  {where}")
    return lines


def open_hint(profile_id: Any, db: str | None = None) -> str:
    """The command that opens the profile."""
    where = f" --db {db}" if db else ""
    return (
        f"llmlens profile show {profile_id}{where}  (add --format html --output profile.html for a browser,"
        " --format speedscope --output profile.json for speedscope.app)"
    )
