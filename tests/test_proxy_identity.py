"""Request ids, API key labels (and their per-install secret), client addresses behind proxies."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmlens.proxy import identity


@pytest.mark.parametrize("inbound", ["abc", "req_01HXYZ", "a" * 128, "00-trace/1:2=3"])
def test_a_sane_request_id_is_kept(inbound: str) -> None:
    assert identity.request_id(inbound) == inbound


@pytest.mark.parametrize("inbound", [None, "", "a" * 129, "has space", "tab\\there"[:3] + "\t", "é", "\x00x"])
def test_anything_else_gets_a_new_one(inbound: str | None) -> None:
    made = identity.request_id(inbound)
    assert made != inbound and len(made) == 32 and int(made, 16) >= 0


def test_api_key_from_each_providers_header() -> None:
    assert identity.api_key({"authorization": "Bearer sk-1"}) == "sk-1"
    assert identity.api_key({"authorization": "bearer  sk-2 "}) == "sk-2"
    assert identity.api_key({"x-api-key": "sk-ant"}) == "sk-ant"
    assert identity.api_key({"x-goog-api-key": "AIza"}) == "AIza"
    assert identity.api_key({"api-key": "azure"}) == "azure"
    assert identity.api_key({}, b"alt=sse&key=AIzaQ") == "AIzaQ"
    assert identity.api_key({"authorization": "Basic dXNlcg=="}) is None
    assert identity.api_key({}) is None


def test_labels_are_keyed_hashes_or_names() -> None:
    labeler = identity.KeyLabeler(b"secret-1")
    label = labeler.label("sk-live-1")
    assert len(label) == 12 and label == labeler.label("sk-live-1")
    assert identity.KeyLabeler(b"secret-2").label("sk-live-1") != label  # useless without the secret
    named = identity.KeyLabeler(b"secret-1", {label: "team-a", "sk-live-2": "team-b"})
    assert named.label("sk-live-1") == "team-a"
    assert named.label("sk-live-2") == "team-b"
    assert named.label("sk-live-3") == identity.KeyLabeler(b"secret-1").label("sk-live-3")


def test_the_secret_lives_next_to_the_store(tmp_path: Path) -> None:
    db = tmp_path / "data" / "llmlens.db"
    first = identity.install_secret(None, str(db))
    path = db.parent / identity.SECRET_FILE
    assert path.read_bytes() == first and len(first) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert identity.install_secret(None, str(db)) == first  # stable across restarts
    assert identity.install_secret("from-setting", str(db)) == b"from-setting"


def test_an_unwritable_place_gives_a_per_process_secret(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    secret = identity.install_secret(None, str(blocker / "sub" / "llmlens.db"))
    assert len(secret) == 64


@pytest.mark.parametrize(
    ("peer", "xff", "forwarded", "expected"),
    [
        ("10.0.0.1", "203.0.113.5", None, "203.0.113.5"),
        ("10.0.0.1", "203.0.113.5, 10.0.0.7", None, "203.0.113.5"),  # trusted hops skipped
        ("10.0.0.1", "10.0.0.8, 10.0.0.7", None, "10.0.0.8"),  # all trusted: the furthest
        ("10.0.0.1", "garbage, 203.0.113.5", None, "203.0.113.5"),
        ("10.0.0.1", "203.0.113.5, unknown", None, "10.0.0.1"),  # cannot see past an unknown hop
        ("10.0.0.1", "203.0.113.5:4711", None, "203.0.113.5"),
        ("10.0.0.1", None, "for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ("10.0.0.1", "198.51.100.9", 'For="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),  # Forwarded wins
        ("192.0.2.1", "203.0.113.5", None, "192.0.2.1"),  # the peer is not trusted
        (None, "203.0.113.5", None, None),
    ],
)
def test_client_address(
    peer: str | None, xff: str | None, forwarded: str | None, expected: str | None
) -> None:
    clients = identity.ClientAddress(identity.parse_networks(["10.0.0.0/8"]))
    assert clients.resolve(peer, xff, forwarded) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert identity.ClientAddress().resolve("10.0.0.1", "203.0.113.5", None) == "10.0.0.1"
