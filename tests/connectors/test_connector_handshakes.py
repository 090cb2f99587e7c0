"""Verification GETs: the X CRC and the Meta/WhatsApp `hub.*` challenge, as handshakes.json says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inbox.connectors import get_connector


def test_x_crc_answers_with_recorded_response_token(handshakes: dict[str, Any]) -> None:
    crc = handshakes["x_crc"]
    reply = get_connector("x").handshake(crc["request"]["query"], crc["consumer_secret"])
    assert reply is not None
    assert reply.content_type == crc["expected_response"]["content_type"]
    assert json.loads(reply.body) == crc["expected_response"]["json"]


def test_x_crc_with_other_secret_gives_other_token(handshakes: dict[str, Any]) -> None:
    crc = handshakes["x_crc"]
    reply = get_connector("x").handshake(crc["request"]["query"], "another-secret")
    assert reply is not None
    assert json.loads(reply.body) != crc["expected_response"]["json"]


@pytest.mark.parametrize(
    ("args", "secret"),
    [
        ({}, "x-test-consumer-secret"),
        ({"crc_token": ""}, "x-test-consumer-secret"),
        ({"crc_token": "crc-1"}, ""),
    ],
    ids=["no-token", "empty-token", "no-secret"],
)
def test_x_crc_is_refused_without_token_or_secret(args: dict[str, str], secret: str) -> None:
    assert get_connector("x").handshake(args, secret) is None


def test_x_crc_does_not_sign_a_webhook_body_so_it_cannot_forge_deliveries(
    load_payload, handshakes: dict[str, Any]
) -> None:
    """The CRC answer is the HMAC a webhook's signature header carries: signing any token
    would let anyone sign a forged delivery. Only tokens shaped like X's are answered."""
    secret = handshakes["x_crc"]["consumer_secret"]
    body = json.dumps(load_payload("x_dm_event.json"))
    assert get_connector("x").handshake({"crc_token": body}, secret) is None
    assert get_connector("x").handshake({"crc_token": "a" * 129}, secret) is None


@pytest.mark.parametrize("connector", ["meta", "whatsapp"])
def test_hub_verification_echoes_challenge_as_plain_text(
    connector: str, handshakes: dict[str, Any]
) -> None:
    verify = handshakes["meta_verify"]
    reply = get_connector(connector).handshake(
        verify["request"]["query"], verify["configured_verify_token"]
    )
    assert reply is not None
    assert reply.body == verify["expected_response"]["body"]
    assert reply.content_type == verify["expected_response"]["content_type"]


@pytest.mark.parametrize("connector", ["meta", "whatsapp"])
def test_hub_verification_with_wrong_token_is_refused(
    connector: str, handshakes: dict[str, Any]
) -> None:
    verify = handshakes["meta_verify"]
    configured = verify["configured_verify_token"] + "-rotated"
    assert get_connector(connector).handshake(verify["request"]["query"], configured) is None


@pytest.mark.parametrize(
    ("change", "configured"),
    [
        ({"hub.mode": "unsubscribe"}, "bw-verify-2b7d91"),
        ({"hub.mode": None}, "bw-verify-2b7d91"),
        ({"hub.challenge": None}, "bw-verify-2b7d91"),
        ({"hub.verify_token": ""}, ""),
    ],
    ids=["other-mode", "no-mode", "no-challenge", "unset-token"],
)
def test_hub_verification_is_refused_unless_complete(
    change: dict[str, str | None], configured: str, handshakes: dict[str, Any]
) -> None:
    args = {**handshakes["meta_verify"]["request"]["query"], **change}
    query = {key: value for key, value in args.items() if value is not None}
    assert get_connector("meta").handshake(query, configured) is None
