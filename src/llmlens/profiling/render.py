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
