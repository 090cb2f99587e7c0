"""WhatsApp Cloud API payloads parse into the expected messages and delivery statuses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from inbox.connectors import (
    Attachment,
    DeliveryStatus,
    InboundMessage,
    UnsupportedEvent,
    get_connector,
)

Load = Callable[[str], dict[str, Any]]

PHONE_NUMBER_ID = "118273645501928"
WABA = "287391045562810"
TOMAS = "15557654321"
LAYLA = "15550009876"
OUR_MESSAGE = "wamid.HBgLMTU1NTc2NTQzMjEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA="


def _parse(payload: dict[str, Any]) -> list[Any]:
    return get_connector("whatsapp").parse(payload)


def _first_message(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]


def test_whatsapp_text_is_inbound_dm_on_the_phone_number(load_payload: Load) -> None:
    [message] = _parse(load_payload("whatsapp_text_message.json"))
    assert isinstance(message, InboundMessage)
    assert (message.platform, message.account_id) == ("whatsapp", PHONE_NUMBER_ID)
    assert message.external_id == "wamid.HBgLMTU1NTc2NTQzMjEVAgASGBQzRUIwQjEyRDk0QzE4MEZGNkMwQQA="
    assert (message.kind, message.is_public, message.direction) == ("dm", False, "inbound")
    assert (message.author_id, message.author_name) == (TOMAS, "Tomás Ferreira")
    assert message.contact_id == TOMAS
    assert message.sent_at == datetime(2025, 3, 19, 8, 2, 44, tzinfo=UTC)
    assert message.text == (
        "Good morning, my new SIM hasn't activated yet. Ordered on the 12th, ref BW-SIM-55102."
    )


def test_whatsapp_image_without_caption_has_media_id_and_no_text(load_payload: Load) -> None:
    [message] = _parse(load_payload("whatsapp_image_no_caption.json"))
    assert message.external_id == "wamid.HBgLMTU1NTc2NTQzMjEVAgASGBQzRUIwQjEyRDk0QzE4MEZGNkMwQgA="
    assert message.text == ""
    assert message.attachments == (Attachment(type="image", media_id="1190283746552019"),)
    assert message.sent_at == datetime(2025, 3, 19, 8, 3, 30, tzinfo=UTC)


def test_whatsapp_image_caption_is_the_text_and_the_attachment_caption(load_payload: Load) -> None:
    payload = load_payload("whatsapp_image_no_caption.json")
    _first_message(payload)["image"]["caption"] = "SIM tray 📷"
    [message] = _parse(payload)
    assert message.text == "SIM tray 📷"
    assert message.attachments[0].caption == "SIM tray 📷"


@pytest.mark.parametrize(
    ("kind", "attachment_type"),
    [("document", "file"), ("video", "video"), ("audio", "audio"), ("sticker", "sticker")],
)
def test_whatsapp_media_types_become_attachments(
    load_payload: Load, kind: str, attachment_type: str
) -> None:
    payload = load_payload("whatsapp_image_no_caption.json")
    message = _first_message(payload)
    message["type"] = kind
    message[kind] = message.pop("image")
    [parsed] = _parse(payload)
    assert parsed.attachments == (Attachment(type=attachment_type, media_id="1190283746552019"),)


def test_whatsapp_button_and_list_replies_become_text(load_payload: Load) -> None:
    payload = load_payload("whatsapp_text_message.json")
    value = payload["entry"][0]["changes"][0]["value"]
    button = {**value["messages"][0], "id": "wamid.button", "type": "button"}
    button["button"] = {"text": "Yes, activate", "payload": "ACTIVATE"}
    listed = {**value["messages"][0], "id": "wamid.list", "type": "interactive"}
    listed["interactive"] = {"type": "list_reply", "list_reply": {"id": "2", "title": "Billing"}}
    for reply in (button, listed):
        del reply["text"]
    value["messages"] = [button, listed]
    assert [m.text for m in _parse(payload)] == ["Yes, activate", "Billing"]


def test_whatsapp_batch_keeps_order_names_rtl_text_and_reply_context(load_payload: Load) -> None:
    messages = _parse(load_payload("whatsapp_batched_messages_rtl_emoji.json"))
    assert [m.author_id for m in messages] == [LAYLA, LAYLA, TOMAS]
    assert [m.author_name for m in messages] == ["ليلى", "ليلى", "Tomás Ferreira"]
    assert messages[0].text == "السلام عليكم \U0001f319 الفاتورة وصلتني مرتين هذا الشهر"
    assert messages[1].text == "رقم الحساب: BW-771035 \U0001f64f"
    assert messages[2].text == "Activated now \U0001f389 obrigado!"
    assert [m.parent_external_id for m in messages] == [None, None, OUR_MESSAGE]
    assert [m.sent_at for m in messages] == [
        datetime(2025, 3, 19, 19, 30, 11, tzinfo=UTC),
        datetime(2025, 3, 19, 19, 30, 19, tzinfo=UTC),
        datetime(2025, 3, 19, 19, 30, 25, tzinfo=UTC),
    ]


def test_whatsapp_unsupported_message_is_kept_with_its_reason(load_payload: Load) -> None:
    [event] = _parse(load_payload("whatsapp_unsupported_message.json"))
    assert isinstance(event, UnsupportedEvent)
    assert (event.platform, event.account_id) == ("whatsapp", PHONE_NUMBER_ID)
    assert event.event_type == "messages:unsupported"
    assert "poll_creation" in event.reason
    assert "131051" in event.reason
    assert TOMAS in event.reason
    assert event.raw["id"] == "wamid.HBgLMTU1NTc2NTQzMjEVAgASGBQzRUIwQjEyRDk0QzE4MEZGNkMwRAA="


def test_whatsapp_sent_status_reports_our_message(load_payload: Load) -> None:
    [status] = _parse(load_payload("whatsapp_status_update.json"))
    assert isinstance(status, DeliveryStatus)
    assert (status.account_id, status.external_id) == (PHONE_NUMBER_ID, OUR_MESSAGE)
    assert (status.status, status.recipient_id) == ("sent", TOMAS)
    assert status.at == datetime(2025, 3, 19, 8, 15, 2, tzinfo=UTC)
    assert (status.error_code, status.error_message) == (None, None)


def test_whatsapp_delivered_and_read_in_one_post_stay_in_order(load_payload: Load) -> None:
    statuses = _parse(load_payload("whatsapp_status_delivered_read_batched.json"))
    assert [(s.external_id, s.status) for s in statuses] == [
        (OUR_MESSAGE, "delivered"),
        (OUR_MESSAGE, "read"),
    ]
    assert [s.at for s in statuses] == [
        datetime(2025, 3, 19, 8, 15, 4, tzinfo=UTC),
        datetime(2025, 3, 19, 8, 16, 40, tzinfo=UTC),
    ]


def test_whatsapp_failed_status_carries_the_24h_window_error(load_payload: Load) -> None:
    [status] = _parse(load_payload("whatsapp_status_failed_24h_window.json"))
    assert status.status == "failed"
    assert status.external_id == "wamid.HBgLMTU1NTAwMDk4NzYVAgARGBJGMUQyQzNCNEE1OTY4NzdGMEUA="
    assert status.recipient_id == LAYLA
    assert status.error_code == "131047"
    assert status.error_message is not None
    assert "more than 24 hours have passed" in status.error_message
    assert status.at == datetime(2025, 3, 21, 10, 0, tzinfo=UTC)


def test_whatsapp_unknown_status_is_unsupported(load_payload: Load) -> None:
    payload = load_payload("whatsapp_status_update.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "deleted"
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert event.event_type == "statuses:deleted"


def test_whatsapp_reaction_is_unsupported(load_payload: Load) -> None:
    payload = load_payload("whatsapp_text_message.json")
    message = _first_message(payload)
    del message["text"]
    message["type"] = "reaction"
    message["reaction"] = {"message_id": OUR_MESSAGE, "emoji": "👍"}
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert event.event_type == "messages:reaction"


def test_whatsapp_other_change_fields_are_unsupported_on_the_business_account() -> None:
    change = {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
    payload = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [change]}]}
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert (event.account_id, event.event_type) == (WABA, "changes:account_update")


def test_whatsapp_delivery_level_errors_are_unsupported(load_payload: Load) -> None:
    payload = load_payload("whatsapp_status_update.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["errors"] = [{"code": 130429, "title": "Rate limit hit"}]
    events = _parse(payload)
    assert [type(e) for e in events] == [DeliveryStatus, UnsupportedEvent]
    assert events[1].reason == "Rate limit hit"


def test_whatsapp_other_object_is_unsupported(load_payload: Load) -> None:
    payload = load_payload("whatsapp_text_message.json")
    payload["object"] = "page"
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert (event.account_id, event.event_type) == (None, "object:page")
