"""The one redactor: API keys and credentials out of every text llmlens writes.

`redact(text)` replaces what looks like a secret with `[REDACTED]`, keeping what names it (a header
name, a query parameter, the `Bearer` scheme) so the line still says what was there:

    >>> redact("GET /v1beta/models?key=AIzaSyD-1234567890abcdefghijklmnopqrstu failed")
    'GET /v1beta/models?key=[REDACTED] failed'

What it finds (one precompiled regular expression, one pass over the text):

- provider keys by their shape: `sk-...` (OpenAI, Anthropic `sk-ant-...`, at least 20 characters with
  a digit), `AIza...` (Google), `gsk_...` (Groq), AWS access key ids (`AKIA...`, `ASIA...`);
- `Bearer <token>` (a token of 16 characters or more with a digit);
- the values of the headers that carry credentials: `Authorization`, `Proxy-Authorization`,
  `x-api-key`, `api-key`, `x-goog-api-key`, `x-amz-security-token` (as `name: value`, `name=value`,
  or quoted as in a dict's repr);
- assignments of `api_key`, `aws_secret_access_key`, `aws_session_token`, `secret_access_key`,
  `session_token` (any prefix: `OPENAI_API_KEY=...`);
- URL query parameters `key`, `api_key`, `apikey`, `api-key`, `access_token`, `token`,
  `X-Amz-Signature`, `X-Amz-Security-Token`, `X-Amz-Credential`.

Used by the log handlers and formatters of llmlens.logs, by the proxy's request log, and for error
messages llmlens copies onto spans (and from there into the local store).
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "SECRET_HEADERS", "RedactingFilter", "redact", "redact_record"]

REDACTED = "[REDACTED]"
# Request headers whose value is a credential (lower case).
SECRET_HEADERS = (
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-security-token",
)  # fmt: skip

# A value runs to a space, quote, backslash, separator or bracket; one that starts with `[` is not taken
# (so `[REDACTED]` is left alone: redacting twice gives the same text).
_VALUE = r"[^\s\"'\\,;&}\[\])]+"
_PATTERN = re.compile(
    "|".join(
        (
            # a header: keep the name and separator, drop the value (and an auth scheme before it)
            r"(?P<header>(?<![\w-])(?i:proxy-authorization|authorization|x-api-key|x-goog-api-key"
            r"|x-amz-security-token|api-key)[\"']?\s*[:=]\s*[\"']?)(?:(?i:bearer|basic|token)\s+)?" + _VALUE,
            # an assignment of a secret-named variable or argument (OPENAI_API_KEY=..., api_key='...')
            r"(?P<assign>(?<![\w.-])\w*?(?i:api_key|secret_access_key|session_token)[\"']?\s*[:=]\s*[\"']?)"
            + _VALUE,
            # a query parameter of a URL
            r"(?P<query>(?<=[?&;])(?i:key|api_key|apikey|api-key|access_token|token|x-amz-signature"
            r"|x-amz-security-token|x-amz-credential)=)[^&\s#\"'\\[]+",
            # a bearer token
            r"(?P<bearer>(?<![\w-])(?i:bearer)\s+)(?=[\w.~+/=-]*\d)[\w.~+/=-]{16,}",
            # keys recognisable by their shape
            r"(?<![\w-])sk-(?=[\w-]*\d)[\w-]{20,}",
            r"(?<![\w-])AIza[\w-]{35}",
            r"(?<![\w-])gsk_[A-Za-z0-9]{20,}",
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        )
    )
)


def _replace(match: re.Match[str]) -> str:
    kept = match.lastgroup  # the named group of the alternative that matched: what names the secret
    return (match.group(kept) if kept else "") + REDACTED


# Every alternative above contains one of these (lower-cased): a text without any of them holds no
# secret, and a few substring searches cost a fraction of the regular expression's scan.
_TRIGGERS = (
    "sk-", "aiza", "gsk_", "akia", "asia", "bearer", "authorization", "api-key", "api_key", "apikey", "key=",
    "token=", "_token", "-token", "secret_", "x-amz",
)  # fmt: skip


def redact(text: str) -> str:
    """`text` with every secret it holds replaced by `[REDACTED]` (the same object if it holds none)."""
    if not text:
        return text
    lowered = text.lower()
    for trigger in _TRIGGERS:
        if trigger in lowered:
            return _PATTERN.sub(_replace, text)
    return text


_FORMATTER = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    """Redact a log record in place: its message, its exception's text and its stack.

    A message with a secret is frozen as its redacted text (`msg`, no `args`), so every handler that
    formats the record afterwards (the application's too) sees the redacted one. An exception's
    traceback text is kept in `exc_text` (where every `logging.Formatter` caches it), redacted; when it
    held a secret, `exc_info` is dropped so that nothing renders the exception again from the original.
    Running it twice is harmless."""
    message = record.getMessage()
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        clean = redact(record.exc_text)
        if clean != record.exc_text:
            record.exc_info, record.exc_text = None, clean
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """`redact_record` as a `logging.Filter` (for a logger or a handler); it never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            redact_record(record)
        except Exception:  # a record whose message cannot be built: the handlers say so themselves
            pass
        return True
