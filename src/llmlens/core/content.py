"""Captured content: size limits and inline binary elision, preserving the message JSON structure.

Only used when content capture is on. Text parts are cut to `max_length` characters with a marker
saying how much was dropped; inline base64 data (data: URLs, raw base64 blobs) is replaced by a short
descriptor so a single screenshot does not become a 2 MB span attribute.
"""

from __future__ import annotations

from typing import Any

TRUNCATION_MARKER = "…[llmlens: {dropped} more characters]"


def truncate(text: str, max_length: int) -> str:
    """Cut `text` to `max_length` characters (0 = no limit), saying how much was dropped."""
    if max_length <= 0 or len(text) <= max_length:
        return text
    return text[:max_length] + TRUNCATION_MARKER.format(dropped=len(text) - max_length)


def text_part(text: Any, max_length: int) -> dict[str, Any]:
    return {"type": "text", "content": truncate(str(text), max_length)}


def elided_blob(mime_type: str | None, modality: str, base64_length: int) -> dict[str, Any]:
    """A descriptor that stands in for inline base64 data."""
    part: dict[str, Any] = {
        "type": "blob",
        "modality": modality,
        "content": f"[llmlens: {base64_length * 3 // 4} bytes of base64 data elided]",
    }
    if mime_type:
        part["mime_type"] = mime_type
    return part


def media_part(url: str, default_modality: str = "image") -> dict[str, Any]:
    """A `uri` part for a URL, or an elided blob for a `data:` URL carrying base64 content."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime_type = header[5:].split(";", 1)[0] or None
        modality = _modality(mime_type, default_modality)
        return elided_blob(mime_type, modality, len(data))
    return {"type": "uri", "modality": default_modality, "uri": url}


def _modality(mime_type: str | None, default: str) -> str:
    if mime_type:
        major = mime_type.split("/", 1)[0]
        if major in ("image", "video", "audio"):
            return major
        return "document"
    return default
