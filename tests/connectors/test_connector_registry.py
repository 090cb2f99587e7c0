"""The registry, the base contract (ParseError, timestamps, headers) and shared event helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from inbox.connectors import (
    CONNECTORS,
    MetaConnector,
    ParseError,
    WhatsAppConnector,
    XConnector,
    get_connector,
)
from inbox.connectors.base import header_value, utc_from_epoch


@pytest.mark.parametrize(
    ("name", "cls"), [("x", XConnector), ("meta", MetaConnector), ("whatsapp", WhatsAppConnector)]
)
def test_registry_returns_the_connector_for_each_webhook_name(name: str, cls: type) -> None:
    assert isinstance(get_connector(name), cls)
    assert CONNECTORS[name] is cls


def test_registry_lists_exactly_the_three_webhooks() -> None:
    assert sorted(CONNECTORS) == ["meta", "whatsapp", "x"]


def test_unknown_connector_name_raises_lookup_error() -> None:
    with pytest.raises(LookupError, match="telegram"):
        get_connector("telegram")


@pytest.mark.parametrize("name", ["x", "meta", "whatsapp"])
@pytest.mark.parametrize("payload", [[], "text", None, 42], ids=["list", "str", "null", "int"])
def test_parse_rejects_a_payload_that_is_not_an_object(name: str, payload: Any) -> None:
    with pytest.raises(ParseError):
        get_connector(name).parse(payload)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("x", {"direct_message_events": []}),
        ("x", {"for_user_id": True, "direct_message_events": []}),
        ("x", {"for_user_id": "1", "direct_message_events": [{"type": "message_create"}]}),
        ("x", {"for_user_id": "1", "tweet_create_events": {"id_str": "2"}}),
        ("meta", {"object": "page"}),
        ("meta", {"object": "page", "entry": [{"time": 1}]}),
        ("meta", {"object": "page", "entry": [{"id": "1", "messaging": [{"message": {}}]}]}),
        ("whatsapp", {"object": "whatsapp_business_account", "entry": [{"id": "1"}]}),
        (
            "whatsapp",
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"field": "messages", "value": {}}]}],
            },
        ),
    ],
    ids=[
        "x-no-account",
        "x-bool-account",
        "x-dm-without-body",
        "x-events-not-a-list",
        "meta-no-entry",
        "meta-entry-without-id",
        "meta-message-without-mid",
        "whatsapp-entry-without-changes",
        "whatsapp-value-without-metadata",
    ],
)
def test_structurally_wrong_payload_raises_parse_error(name: str, payload: dict) -> None:
    with pytest.raises(ParseError):
        get_connector(name).parse(payload)


def test_parse_error_on_unreadable_timestamp() -> None:
    payload = {
        "for_user_id": "1",
        "tweet_delete_events": [{"status": {"id": "2"}, "timestamp_ms": "yesterday"}],
    }
    with pytest.raises(ParseError, match="yesterday"):
        get_connector("x").parse(payload)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("1742371364", "s", datetime(2025, 3, 19, 8, 2, 44, tzinfo=UTC)),
        (1742215218555, "ms", datetime(2025, 3, 17, 12, 40, 18, 555000, tzinfo=UTC)),
        ("1741943525318", "ms", datetime(2025, 3, 14, 9, 12, 5, 318000, tzinfo=UTC)),
        (1742234609, "auto", datetime(2025, 3, 17, 18, 3, 29, tzinfo=UTC)),
        (1742234609123, "auto", datetime(2025, 3, 17, 18, 3, 29, 123000, tzinfo=UTC)),
    ],
)
def test_epoch_timestamps_become_aware_utc_datetimes(
    value: str | int, unit: Any, expected: datetime
) -> None:
    converted = utc_from_epoch(value, unit)
    assert converted == expected
    assert converted.tzinfo is UTC


@pytest.mark.parametrize("value", [True, 1.5, None, "12:00"])
def test_epoch_rejects_non_integer_values(value: Any) -> None:
    with pytest.raises(ParseError):
        utc_from_epoch(value, "s")


def test_header_lookup_ignores_case_and_reports_absence() -> None:
    headers = {"X-Hub-Signature-256": "sha256=ab"}
    assert header_value(headers, "x-hub-signature-256") == "sha256=ab"
    assert header_value(headers, "x-twitter-webhooks-signature") is None
