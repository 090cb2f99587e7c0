"""Webhook signatures: every recorded payload verifies, and any tampering is refused.

`signed_fixture` (see conftest.py) runs each test once per payload listed in signatures.json.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from inbox.connectors import UnsupportedEvent, get_connector
from inbox.connectors.base import sha256_signature

X_SECRET = "x-test-consumer-secret-Qm9vZ2llV29vZ2llMTIz"
META_SECRET = "meta-test-app-secret-7c1e4b9a2f60d835"


def test_fixture_copy_is_byte_identical_to_the_recorded_one(signed_fixture: Any) -> None:
    # A reformatted or line-ending-converted copy would make every signature test meaningless.
    assert len(signed_fixture.raw) == signed_fixture.size
    assert hashlib.sha256(signed_fixture.raw).hexdigest() == signed_fixture.sha256


def test_recorded_signature_verifies_over_raw_body(signed_fixture: Any) -> None:
    connector = get_connector(signed_fixture.connector)
    headers = {signed_fixture.header: signed_fixture.signature}
    assert connector.verify_signature(signed_fixture.raw, headers, signed_fixture.secret)


def test_signature_fails_when_one_body_byte_changes(signed_fixture: Any) -> None:
    connector = get_connector(signed_fixture.connector)
    middle = len(signed_fixture.raw) // 2
    tampered = bytearray(signed_fixture.raw)
    tampered[middle] ^= 0x01
    headers = {signed_fixture.header: signed_fixture.signature}
    assert not connector.verify_signature(bytes(tampered), headers, signed_fixture.secret)


def test_signature_fails_with_wrong_secret(signed_fixture: Any) -> None:
    connector = get_connector(signed_fixture.connector)
    headers = {signed_fixture.header: signed_fixture.signature}
    assert not connector.verify_signature(signed_fixture.raw, headers, signed_fixture.secret + "x")


def test_signature_fails_without_header(signed_fixture: Any) -> None:
    connector = get_connector(signed_fixture.connector)
    assert not connector.verify_signature(signed_fixture.raw, {}, signed_fixture.secret)


def test_signature_fails_on_reserialised_json(signed_fixture: Any) -> None:
    # Verifying must use the bytes as received; re-dumping the parsed JSON changes them.
    connector = get_connector(signed_fixture.connector)
    redumped = json.dumps(json.loads(signed_fixture.raw)).encode()
    headers = {signed_fixture.header: signed_fixture.signature}
    assert not connector.verify_signature(redumped, headers, signed_fixture.secret)


def test_signature_header_name_is_case_insensitive(signed_fixture: Any) -> None:
    connector = get_connector(signed_fixture.connector)
    headers = {signed_fixture.header.upper(): signed_fixture.signature}
    assert connector.verify_signature(signed_fixture.raw, headers, signed_fixture.secret)


def test_every_recorded_payload_parses_into_events(signed_fixture: Any) -> None:
    events = get_connector(signed_fixture.connector).parse(json.loads(signed_fixture.raw))
    assert events
    unsupported = [event for event in events if isinstance(event, UnsupportedEvent)]
    # Only the payload recorded to exercise an unsupported WhatsApp type may yield one.
    expected = 1 if signed_fixture.name == "whatsapp_unsupported_message.json" else 0
    assert len(unsupported) == expected


@pytest.mark.parametrize(
    ("connector", "header", "secret", "body", "signature"),
    [
        # Worked examples from the fixtures README, computed independently of this code.
        (
            "x",
            "x-twitter-webhooks-signature",
            X_SECRET,
            b'{"for_user_id":"1522093748110303232","tweet_create_events":[]}',
            "sha256=YrXjH73/LQREfN/DXalmVsD/cpuSJp+fj/Mu5AP69eg=",
        ),
        (
            "meta",
            "X-Hub-Signature-256",
            META_SECRET,
            b'{"object":"page","entry":[]}',
            "sha256=c8772108265f52200f06b6e146a8d208d8682bbe1d6c2aa4595e0ff782c4bffe",
        ),
        (
            "whatsapp",
            "X-Hub-Signature-256",
            "secret",
            b"test",
            "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914",
        ),
    ],
)
def test_documented_signature_examples_verify(
    connector: str, header: str, secret: str, body: bytes, signature: str
) -> None:
    assert get_connector(connector).verify_signature(body, {header: signature}, secret)


@pytest.mark.parametrize("connector", ["x", "meta", "whatsapp"])
def test_empty_secret_never_verifies_even_a_matching_signature(connector: str) -> None:
    # Anyone can compute an HMAC with an empty key, so an unset secret must accept nothing.
    body = b'{"object":"page","entry":[]}'
    encoding = "base64" if connector == "x" else "hex"
    header = "x-twitter-webhooks-signature" if connector == "x" else "X-Hub-Signature-256"
    forged = {header: sha256_signature("", body, encoding)}
    assert not get_connector(connector).verify_signature(body, forged, "")


def test_meta_signature_without_sha256_prefix_fails() -> None:
    body = b'{"object":"page","entry":[]}'
    bare = "c8772108265f52200f06b6e146a8d208d8682bbe1d6c2aa4595e0ff782c4bffe"
    assert not get_connector("meta").verify_signature(
        body, {"X-Hub-Signature-256": bare}, META_SECRET
    )


def test_x_does_not_accept_a_hex_signature() -> None:
    body = b'{"for_user_id":"1522093748110303232","tweet_create_events":[]}'
    hex_signature = sha256_signature(X_SECRET, body, "hex")
    assert not get_connector("x").verify_signature(
        body, {"x-twitter-webhooks-signature": hex_signature}, X_SECRET
    )


def test_non_ascii_signature_header_is_refused_without_error() -> None:
    body = b'{"object":"page","entry":[]}'
    headers = {"X-Hub-Signature-256": "sha256=é\udcff"}
    assert not get_connector("meta").verify_signature(body, headers, META_SECRET)
