"""Who is calling: request ids, the caller's trace context, API key labels and the client's address.

- `request_id(value)`: an inbound `x-request-id` is kept when it is a sane token, else a new one is made.
- `KeyLabeler`: the API key is never stored. Its label is a configured name, or the first 12 hex digits
  of HMAC-SHA256(per-install secret, key); the secret comes from a setting or a file next to the store
  (created once, mode 0600), so labels are stable across restarts and useless to anyone without it.
- `ClientAddress`: `X-Forwarded-For` / `Forwarded` are believed only when the peer is a configured
  trusted proxy, and then read from the right, skipping trusted hops.

Example:
    >>> KeyLabeler(secret=b"s").label("sk-live-123")
    '89818d0bf16e'
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import random
from collections.abc import Iterable, Mapping
from hashlib import sha256
from pathlib import Path

_log = logging.getLogger("llmlens")

SECRET_FILE = "proxy-key-secret"
_MAX_REQUEST_ID = 128
_LABEL_CACHE = 1024
_random_bits = random.getrandbits

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def new_request_id() -> str:
    # Not a secret, only unique: the PRNG OpenTelemetry's own ids come from (os.urandom is a syscall).
    return f"{_random_bits(128):032x}"


def request_id(inbound: str | None) -> str:
    """The inbound id when it is 1-128 visible ASCII characters, else a new random one."""
    if not inbound or len(inbound) > _MAX_REQUEST_ID or " " in inbound:
        return new_request_id()
    return inbound if inbound.isascii() and inbound.isprintable() else new_request_id()


# --- API keys ---------------------------------------------------------------------------------------


def api_key(headers: Mapping[str, str], query: bytes = b"") -> str | None:
    """The caller's API key, from the header each provider's SDK uses (or Gemini's `key=` query)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        value = headers.get(name)
        if value:
            return value.strip()
    if query and b"key=" in query:
        from urllib.parse import parse_qs

        keys = parse_qs(query.decode("latin-1")).get("key")
        if keys:
            return keys[0]
    return None


class KeyLabeler:
    """API key -> label: a configured name (by label or by key), else a short keyed hash."""

    def __init__(self, secret: bytes, names: Mapping[str, str] | None = None) -> None:
        self._secret = secret
        self._names = dict(names or {})
        self._cache: dict[str, str] = {}

    def label(self, key: str) -> str:
        label = self._cache.get(key)
        if label is None:
            digest = hmac.new(self._secret, key.encode("utf-8", "surrogatepass"), sha256).hexdigest()[:12]
            label = self._names.get(digest) or self._names.get(key) or digest
            if len(self._cache) >= _LABEL_CACHE:
                self._cache.clear()
            self._cache[key] = label
        return label


def install_secret(setting: str | None, db_path: str | None) -> bytes:
    """The HMAC secret: the setting, else the file next to the store (made once), else per process."""
    if setting:
        return setting.encode()
    from llmlens.store.paths import default_db_path

    path = Path(db_path or default_db_path()).expanduser().parent / SECRET_FILE
    try:
        return path.read_bytes().strip() or _write_secret(path)
    except FileNotFoundError:
        try:
            return _write_secret(path)
        except OSError:
            pass
    except OSError:
        pass
    _log.debug("llmlens: no place for the API key secret (%s); labels change on restart", path)
    return os.urandom(32).hex().encode()


def _write_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = os.urandom(32).hex().encode()
    try:  # exclusive create: two processes starting together end up with the same secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
    return secret


# --- client address ---------------------------------------------------------------------------------


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """`10.0.0.0/8`, `127.0.0.1`, `::1` -> networks; raises ValueError on a bad one."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _address(value: str) -> str | None:
    """A bare IP from a forwarded-for entry (`1.2.3.4:5`, `"[::1]:80"`, `::1`), or None."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


class ClientAddress:
    """The client's IP: the peer, or what trusted proxies in front of us say it was."""

    def __init__(self, trusted: Iterable[IPNetwork] = ()) -> None:
        self.trusted = tuple(trusted)

    def _is_trusted(self, address: str | None) -> bool:
        if address is None:
            return False
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self.trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None, forwarded: str | None) -> str | None:
        if not self.trusted or not (forwarded_for or forwarded) or not self._is_trusted(_address(peer or "")):
            return peer
        if forwarded:
            hops = [
                param.split("=", 1)[1]
                for element in forwarded.split(",")
                for param in element.split(";")
                if param.strip().lower().startswith("for=")
            ]
        else:
            hops = (forwarded_for or "").split(",")
        client = peer
        for hop in reversed(hops):  # the nearest hop first; the first untrusted one is the client
            address = _address(hop)
            if address is None:
                break  # `unknown`, an obfuscated id or garbage: we cannot see past it
            client = address
            if not self._is_trusted(address):
                break
        return client
