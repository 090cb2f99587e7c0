"""Meta payloads (Messenger, Instagram, Page feed) parse into the expected events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from inbox.connectors import (
    Attachment,
    DeliveryStatus,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    StatusWatermark,
    UnsupportedEvent,
    get_connector,
)

Load = Callable[[str], dict[str, Any]]

PAGE = "104857392018475"
IG_ACCOUNT = "17841460123456789"
PSID_A = "7712093845561203"
PSID_B = "6620184473925517"
IG_CUSTOMER = "1129384756473829"
IG_RTL_CUSTOMER = "2039485761029384"
IG_RTL_MID = (
    "aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQxNDYwMTIzNDU2Nzg5OjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI3NjAx"
    "NzcyMzE1ODM5OTg3MQ"
)
FEED_POST = "104857392018475_122190345566778899"
FEED_COMMENT = "122190345566778899_1029384756102938"


def _parse(payload: dict[str, Any]) -> list[Any]:
    return get_connector("meta").parse(payload)


def test_messenger_message_is_inbound_dm_from_the_psid(load_payload: Load) -> None:
    [message] = _parse(load_payload("meta_messenger_message.json"))
    assert isinstance(message, InboundMessage)
    assert (message.platform, message.account_id) == ("messenger", PAGE)
    assert message.external_id == "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDE"
    assert (message.kind, message.is_public, message.direction) == ("dm", False, "inbound")
    assert (message.author_id, message.recipient_id) == (PSID_A, PAGE)
    assert message.sent_at == datetime(2025, 3, 16, 10, 4, 33, 120000, tzinfo=UTC)
    # Meta's \u00a3 and \/ escapes decode to the characters the customer typed.
    assert message.text == (
        "Hello! I was charged twice for my March bill (£42.99 x2). Order/invoice #INV-20931. "
        "Can you refund one?"
    )


def test_messenger_attachment_only_message_has_image_and_no_text(load_payload: Load) -> None:
    [message] = _parse(load_payload("meta_messenger_attachment_only.json"))
    assert message.external_id == "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDI"
    assert message.text == ""
    [attachment] = message.attachments
    assert attachment.type == "image"
    assert attachment.url is not None
    assert attachment.url.startswith("https://scontent.xx.fbcdn.net/v/t1.15752-9/481920377_")


def test_messenger_echo_is_outbound_with_app_id(load_payload: Load) -> None:
    [message] = _parse(load_payload("meta_messenger_echo.json"))
    assert message.direction == "outbound"
    assert message.external_id == "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDM"
    assert (message.author_id, message.recipient_id) == (PAGE, PSID_A)
    assert message.contact_id == PSID_A
    assert message.app_id == "981234567890123"
    assert message.sent_at == datetime(2025, 3, 16, 10, 19, 55, 731000, tzinfo=UTC)
    assert message.text.startswith("Sorry about that! I've refunded the duplicate £42.99 \u2013 ")


def test_messenger_batch_yields_every_entry_in_order(load_payload: Load) -> None:
    events = _parse(load_payload("meta_messenger_batched.json"))
    assert [type(event) for event in events] == [
        InboundMessage,
        StatusWatermark,
        InboundMessage,
        InboundMessage,
        DeliveryStatus,
    ]
    reply, read, first_b, second_b, delivery = events
    assert reply.external_id == "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDQ"
    assert reply.parent_external_id == "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDM"
    assert reply.text == "Thanks!"
    assert (read.status, read.contact_id) == ("read", PSID_A)
    assert read.up_to == datetime(2025, 3, 16, 10, 19, 55, 731000, tzinfo=UTC)
    assert [first_b.author_id, second_b.author_id] == [PSID_B, PSID_B]
    assert first_b.text == "Is the Brightwave app down? It keeps logging me out 😤"
    assert second_b.sent_at == datetime(2025, 3, 16, 10, 22, 14, 118000, tzinfo=UTC)
    assert delivery.external_id == "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDM"
    assert (delivery.status, delivery.recipient_id) == ("delivered", PSID_A)
    # Deliveries carry no timestamp; the watermark is the best time there is.
    assert delivery.at == datetime(2025, 3, 16, 10, 19, 56, 531000, tzinfo=UTC)


def test_messenger_delivery_without_mids_is_a_watermark(load_payload: Load) -> None:
    payload = load_payload("meta_messenger_batched.json")
    del payload["entry"][4]["messaging"][0]["delivery"]["mids"]
    watermark = _parse(payload)[4]
    assert isinstance(watermark, StatusWatermark)
    assert (watermark.status, watermark.contact_id) == ("delivered", PSID_A)


def test_messenger_message_edit_carries_new_text(load_payload: Load) -> None:
    payload = load_payload("meta_messenger_message.json")
    item = payload["entry"][0]["messaging"][0]
    del item["message"]
    item["message_edit"] = {"mid": "m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDE", "text": "Refund one please"}
    [edit] = _parse(payload)
    assert isinstance(edit, MessageEdit)
    assert (edit.external_id, edit.text) == ("m_YnJpZ2h0d2F2ZS1tc2dyLTAwMDE", "Refund one please")
    assert edit.at == datetime(2025, 3, 16, 10, 4, 33, 120000, tzinfo=UTC)


def test_messenger_postback_is_kept_as_unsupported(load_payload: Load) -> None:
    payload = load_payload("meta_messenger_message.json")
    item = payload["entry"][0]["messaging"][0]
    del item["message"]
    item["postback"] = {"title": "Talk to us", "payload": "CARE"}
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert (event.platform, event.account_id) == ("messenger", PAGE)
    assert event.event_type == "messaging:postback"


def test_unsupported_message_content_is_kept_as_unsupported(load_payload: Load) -> None:
    payload = load_payload("meta_instagram_dm.json")
    payload["entry"][0]["messaging"][0]["message"]["is_unsupported"] = True
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert event.event_type == "messaging:message:unsupported"


def test_instagram_dm_is_inbound_instagram_message(load_payload: Load) -> None:
    [message] = _parse(load_payload("meta_instagram_dm.json"))
    assert (message.platform, message.account_id) == ("instagram", IG_ACCOUNT)
    assert message.external_id.startswith("aWdfaXRlbToxOklHTWVzc2FnZUlEOjE3ODQx")
    assert message.external_id.endswith("MxMjM0NQ")
    assert (message.kind, message.direction, message.author_id) == ("dm", "inbound", IG_CUSTOMER)
    assert message.sent_at == datetime(2025, 3, 17, 12, 40, 18, 555000, tzinfo=UTC)
    assert message.text.startswith("hey! saw your story about the spring bundle \u2013 does it")


def test_instagram_rtl_emoji_text_is_unchanged(load_payload: Load) -> None:
    [message] = _parse(load_payload("meta_instagram_dm_rtl_emoji.json"))
    assert message.external_id == IG_RTL_MID
    assert message.author_id == IG_RTL_CUSTOMER
    # Hebrew, emoji and flag sequences from surrogate-pair escapes, with U+FE0F kept.
    assert message.text == (
        "שלום \U0001f44b ההזמנה שלי (#BW-99214) עדיין לא הגיעה \U0001f4e6\u2753 Can you check? "
        "\U0001f1ee\U0001f1f1\u27a1\ufe0f\U0001f1ec\U0001f1e7"
    )


def test_instagram_dm_echo_is_outbound(load_payload: Load) -> None:
    [message] = _parse(load_payload("meta_instagram_echo.json"))
    assert message.direction == "outbound"
    assert message.external_id.endswith("MxMjc3Nw")
    assert (message.author_id, message.recipient_id) == (IG_ACCOUNT, IG_CUSTOMER)
    assert message.contact_id == IG_CUSTOMER
    assert message.app_id is None
    assert message.text.startswith("Hi! The mesh extender is included in the spring bundle 🙂")


def test_instagram_unsend_deletes_the_same_mid(load_payload: Load) -> None:
    [deletion] = _parse(load_payload("meta_instagram_message_deleted.json"))
    assert isinstance(deletion, MessageDeletion)
    assert (deletion.platform, deletion.account_id) == ("instagram", IG_ACCOUNT)
    assert deletion.external_id == IG_RTL_MID
    assert deletion.at == datetime(2025, 3, 17, 12, 58, 12, 800000, tzinfo=UTC)


def test_instagram_comment_is_public_comment_on_the_media(load_payload: Load) -> None:
    [comment] = _parse(load_payload("meta_instagram_comment.json"))
    assert (comment.platform, comment.account_id) == ("instagram", IG_ACCOUNT)
    assert comment.external_id == "17983420157746123"
    assert (comment.kind, comment.is_public, comment.direction) == ("comment", True, "inbound")
    assert (comment.author_id, comment.author_handle) == ("6784512093847561", "ellie.makes.things")
    assert comment.root_external_id == "18049273610582847"
    assert comment.parent_external_id is None
    # Comment values carry no time of their own: entry.time is in seconds.
    assert comment.sent_at == datetime(2025, 3, 17, 18, 3, 29, tzinfo=UTC)
    assert comment.text == (
        "@brightwave.uk ordered the spring bundle 9 days ago and tracking hasn't moved since "
        "Friday 🙃"
    )


def test_instagram_comment_reply_points_at_parent_comment(load_payload: Load) -> None:
    [reply] = _parse(load_payload("meta_instagram_comment_reply.json"))
    assert reply.external_id == "18132987465011234"
    assert reply.parent_external_id == "17983420157746123"
    assert reply.root_external_id == "18049273610582847"
    assert reply.sent_at == datetime(2025, 3, 17, 18, 20, 6, tzinfo=UTC)


def test_instagram_comment_by_our_account_is_outbound(load_payload: Load) -> None:
    payload = load_payload("meta_instagram_comment_reply.json")
    payload["entry"][0]["changes"][0]["value"]["from"] = {"id": IG_ACCOUNT, "username": "bw"}
    [reply] = _parse(payload)
    assert reply.direction == "outbound"


def test_instagram_entry_time_in_milliseconds_gives_the_same_instant(load_payload: Load) -> None:
    payload = load_payload("meta_instagram_comment.json")
    payload["entry"][0]["time"] = 1742234609000
    [comment] = _parse(payload)
    assert comment.sent_at == datetime(2025, 3, 17, 18, 3, 29, tzinfo=UTC)


def test_instagram_mention_needs_fetching_its_text(load_payload: Load) -> None:
    [mention] = _parse(load_payload("meta_instagram_mention.json"))
    assert (mention.kind, mention.is_public, mention.direction) == ("mention", True, "inbound")
    assert mention.external_id == "17866011223344556"
    assert mention.root_external_id == "17918273645012987"
    assert mention.needs_fetch is True
    assert (mention.text, mention.author_id) == ("", None)
    assert mention.sent_at == datetime(2025, 3, 18, 7, 45, 54, tzinfo=UTC)


def test_instagram_caption_mention_uses_the_media_id(load_payload: Load) -> None:
    payload = load_payload("meta_instagram_mention.json")
    del payload["entry"][0]["changes"][0]["value"]["comment_id"]
    [mention] = _parse(payload)
    assert mention.external_id == "17918273645012987"


def test_page_feed_comment_is_public_facebook_comment_on_the_post(load_payload: Load) -> None:
    [comment] = _parse(load_payload("meta_page_feed_comment.json"))
    assert (comment.platform, comment.account_id) == ("facebook", PAGE)
    assert comment.external_id == FEED_COMMENT
    assert (comment.kind, comment.is_public, comment.direction) == ("comment", True, "inbound")
    assert (comment.author_id, comment.author_name) == ("8899001122334455", "Gareth Pryce")
    assert comment.parent_external_id == FEED_POST
    assert comment.root_external_id == FEED_POST
    assert comment.sent_at == datetime(2025, 3, 18, 14, 11, 9, tzinfo=UTC)
    assert comment.text.startswith("Any news on when fibre reaches Pontcanna?")


def test_page_feed_comment_by_the_page_is_outbound_with_photo(load_payload: Load) -> None:
    payload = load_payload("meta_page_feed_comment.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["from"] = {"id": PAGE, "name": "Brightwave"}
    value["photo"] = "https://scontent.xx.fbcdn.net/coverage-map.png"
    [comment] = _parse(payload)
    assert comment.direction == "outbound"
    assert comment.attachments == (
        Attachment(type="image", url="https://scontent.xx.fbcdn.net/coverage-map.png"),
    )


def test_page_feed_comment_removal_deletes_the_comment(load_payload: Load) -> None:
    [deletion] = _parse(load_payload("meta_page_feed_comment_removed.json"))
    assert isinstance(deletion, MessageDeletion)
    assert (deletion.platform, deletion.account_id) == ("facebook", PAGE)
    assert deletion.external_id == FEED_COMMENT
    assert deletion.at == datetime(2025, 3, 18, 14, 26, 40, tzinfo=UTC)


def test_page_feed_comment_edit_carries_new_text(load_payload: Load) -> None:
    payload = load_payload("meta_page_feed_comment.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["verb"] = "edited"
    value["message"] = "Any news on fibre for Pontcanna? 🙏"
    [edit] = _parse(payload)
    assert isinstance(edit, MessageEdit)
    assert (edit.external_id, edit.text) == (FEED_COMMENT, "Any news on fibre for Pontcanna? 🙏")


def test_page_feed_hidden_comment_and_reactions_are_unsupported(load_payload: Load) -> None:
    payload = load_payload("meta_page_feed_comment.json")
    change = payload["entry"][0]["changes"][0]
    reaction = {"field": "feed", "value": {"item": "reaction", "verb": "add"}}
    payload["entry"][0]["changes"].append(reaction)
    change["value"]["verb"] = "hide"
    events = _parse(payload)
    assert [(type(e), e.event_type) for e in events] == [
        (UnsupportedEvent, "changes:feed:comment:hide"),
        (UnsupportedEvent, "changes:feed:reaction:add"),
    ]


def test_unknown_object_is_unsupported_without_account() -> None:
    [event] = _parse({"object": "permissions", "entry": [{"id": "1", "time": 1}]})
    assert isinstance(event, UnsupportedEvent)
    assert (event.account_id, event.event_type) == (None, "object:permissions")


def test_unknown_entry_field_is_unsupported(load_payload: Load) -> None:
    payload = load_payload("meta_messenger_message.json")
    payload["entry"][0]["standby"] = [{"sender": {"id": PSID_A}}]
    events = _parse(payload)
    assert [type(e) for e in events] == [InboundMessage, UnsupportedEvent]
    assert events[1].event_type == "entry:standby"
