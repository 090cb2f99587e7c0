"""X Account Activity payloads parse into the expected events (values read off the fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from inbox.connectors import (
    Attachment,
    InboundMessage,
    MessageDeletion,
    UnsupportedEvent,
    get_connector,
)

Load = Callable[[str], dict[str, Any]]

BRAND = "1522093748110303232"
MARISOL = "1388201945730502657"
NOOR = "1610447720918253569"


def _parse(payload: dict[str, Any]) -> list[Any]:
    return get_connector("x").parse(payload)


def test_x_dm_is_inbound_private_message_with_sender_profile(load_payload: Load) -> None:
    [message] = _parse(load_payload("x_dm_event.json"))
    assert isinstance(message, InboundMessage)
    assert message.platform == "x"
    assert message.account_id == BRAND
    assert message.external_id == "1900475006471704576"
    assert (message.kind, message.is_public, message.direction) == ("dm", False, "inbound")
    assert message.author_id == MARISOL
    assert message.recipient_id == BRAND
    assert message.contact_id == MARISOL
    assert (message.author_handle, message.author_name) == ("marisol_reads", "Marisol Q.")
    assert (message.author_follower_count, message.author_verified) == (233, False)
    assert message.sent_at == datetime(2025, 3, 14, 9, 12, 5, 318000, tzinfo=UTC)
    assert message.text.startswith("Hi, my fibre has dropped out three times")
    assert message.text.endswith("Account ref BW-448120. Can someone help?")
    assert message.app_id == "3033300"
    assert message.parent_external_id is None
    assert message.attachments == ()


def test_x_dm_echo_is_outbound_to_the_customer(load_payload: Load) -> None:
    [message] = _parse(load_payload("x_dm_echo_outgoing.json"))
    assert message.direction == "outbound"
    assert message.external_id == "1900479966588506112"
    assert message.author_id == BRAND
    assert message.recipient_id == MARISOL
    assert message.contact_id == MARISOL
    assert message.author_handle == "BrightwaveHelp"
    assert message.app_id == "26811743"
    assert message.sent_at == datetime(2025, 3, 14, 9, 31, 47, 902000, tzinfo=UTC)
    assert message.text.endswith("an engineer slot is being booked now. ^Priya")


def test_x_attachment_only_dm_has_the_photo_and_no_link_text(load_payload: Load) -> None:
    [message] = _parse(load_payload("x_dm_attachment_only.json"))
    assert message.external_id == "1900480822822113280"
    assert message.text == ""
    assert message.attachments == (
        Attachment(
            type="image",
            url="https://pbs.twimg.com/dm_photo/1900480812151803907/router_lights.jpg",
            media_id="1900480812151803907",
        ),
    )


def test_x_dm_with_text_and_photo_keeps_the_text(load_payload: Load) -> None:
    payload = load_payload("x_dm_attachment_only.json")
    data = payload["direct_message_events"][0]["message_create"]["message_data"]
    data["text"] = "router lights now 👉 https://t.co/Zq8LmN3vKe"
    [message] = _parse(payload)
    assert message.text == "router lights now 👉"
    assert [attachment.type for attachment in message.attachments] == ["image"]


def test_x_batched_dms_keep_order_authors_and_rtl_emoji_text(load_payload: Load) -> None:
    messages = _parse(load_payload("x_dm_events_batched_rtl_emoji.json"))
    assert [m.external_id for m in messages] == [
        "1900653703883460608",
        "1900653848414982145",
        "1900653917398700034",
    ]
    assert [m.author_id for m in messages] == [NOOR, NOOR, MARISOL]
    assert [m.direction for m in messages] == ["inbound"] * 3
    assert messages[0].author_name == "نور الهدى"
    assert messages[0].text == "مرحبا، الإنترنت مقطوع عندي منذ الصباح 😞 رقم الحساب BW-771035"
    assert messages[1].text == "جربت إعادة تشغيل الراوتر مرتين 🔁📶 ولم ينفع"
    # Skin-tone modifiers and the zero-width joiner of 👩🏽‍🔧 must survive untouched.
    assert messages[2].text == (
        "Engineer came, all fixed \U0001f64c\U0001f3fd\U0001f469\U0001f3fd\u200d\U0001f527"
        " thank you!!"
    )
    assert messages[2].sent_at == datetime(2025, 3, 14, 21, 3, 1, 7000, tzinfo=UTC)


def test_x_mention_is_public_inbound_tweet_without_parent(load_payload: Load) -> None:
    [message] = _parse(load_payload("x_mention_event.json"))
    assert message.external_id == "1900831163052789760"
    assert (message.kind, message.is_public, message.direction) == ("mention", True, "inbound")
    assert message.author_id == MARISOL
    assert message.author_handle == "marisol_reads"
    assert message.author_follower_count == 233
    assert message.parent_external_id is None
    assert message.text == (
        "@BrightwaveHelp is there an outage in LS6? Third evening in a row the wifi dies "
        "around 8pm #brightwave"
    )
    assert message.sent_at == datetime(2025, 3, 15, 8, 47, 19, 664000, tzinfo=UTC)


def test_x_tweet_text_has_the_characters_x_sent_as_html_entities(load_payload: Load) -> None:
    payload = load_payload("x_mention_event.json")
    tweet = payload["tweet_create_events"][0]
    tweet["text"] = "@BrightwaveHelp fibre &amp; phone down &gt; 2 days &lt;3 (typed: &amp;lt;)"
    [message] = _parse(payload)
    assert message.text == "@BrightwaveHelp fibre & phone down > 2 days <3 (typed: &lt;)"


def test_x_truncated_tweet_full_text_is_unescaped_too(load_payload: Load) -> None:
    payload = load_payload("x_reply_extended_tweet.json")
    tweet = payload["tweet_create_events"][0]
    tweet["extended_tweet"]["full_text"] = "Line A &amp; line B both drop"
    [message] = _parse(payload)
    assert message.text == "Line A & line B both drop"


def test_x_brand_reply_echo_is_outbound_reply_to_the_mention(load_payload: Load) -> None:
    [message] = _parse(load_payload("x_reply_from_brand_echo.json"))
    assert message.external_id == "1900833858086047745"
    assert message.direction == "outbound"
    assert message.author_id == BRAND
    assert message.author_verified is True
    assert message.parent_external_id == "1900831163052789760"
    assert message.recipient_id == MARISOL
    assert message.contact_id == MARISOL
    assert message.sent_at == datetime(2025, 3, 15, 8, 58, 2, 210000, tzinfo=UTC)


def test_x_truncated_reply_uses_extended_full_text(load_payload: Load) -> None:
    [message] = _parse(load_payload("x_reply_extended_tweet.json"))
    assert message.external_id == "1900839553091047426"
    assert message.parent_external_id == "1900833858086047745"
    assert message.direction == "inbound"
    assert "…" not in message.text
    assert message.text.startswith("@BrightwaveHelp DM sent 👍 Also worth saying")
    assert message.text.endswith("Happy to stay in tonight for a test between 7 and 9.")


def test_x_tweet_media_becomes_attachments(load_payload: Load) -> None:
    payload = load_payload("x_mention_event.json")
    payload["tweet_create_events"][0]["extended_entities"] = {
        "media": [
            {
                "id_str": "1900831100000000001",
                "type": "photo",
                "media_url_https": "https://pbs.twimg.com/media/outage.jpg",
            },
            {
                "id_str": "1900831100000000002",
                "type": "video",
                "media_url_https": "https://pbs.twimg.com/ext_tw_video_thumb/2.jpg",
            },
        ]
    }
    [message] = _parse(payload)
    assert [(a.type, a.media_id) for a in message.attachments] == [
        ("image", "1900831100000000001"),
        ("video", "1900831100000000002"),
    ]


def test_x_tweet_delete_targets_the_deleted_tweet(load_payload: Load) -> None:
    [deletion] = _parse(load_payload("x_tweet_delete_event.json"))
    assert isinstance(deletion, MessageDeletion)
    assert deletion.account_id == BRAND
    assert deletion.external_id == "1900831163052789760"
    assert deletion.at == datetime(2025, 3, 15, 9, 41, 13, 377000, tzinfo=UTC)


def test_x_retweet_is_kept_as_unsupported(load_payload: Load) -> None:
    payload = load_payload("x_mention_event.json")
    payload["tweet_create_events"][0]["retweeted_status"] = {"id_str": "1"}
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert event.event_type == "tweet_create_events:retweet"
    assert event.raw["id_str"] == "1900831163052789760"


def test_x_unknown_event_list_becomes_one_unsupported_event_per_item() -> None:
    payload = {
        "for_user_id": BRAND,
        "favorite_events": [{"id": "a"}, {"id": "b"}],
        "user_event": {"revoke": {"source": {"user_id": MARISOL}}},
    }
    events = _parse(payload)
    assert [(e.event_type, e.account_id) for e in events] == [
        ("favorite_events", BRAND),
        ("favorite_events", BRAND),
        ("user_event", BRAND),
    ]
    assert events[1].raw == {"favorite_events": {"id": "b"}}


def test_x_dm_event_of_another_type_is_unsupported(load_payload: Load) -> None:
    payload = load_payload("x_dm_event.json")
    payload["direct_message_events"][0]["type"] = "message_reaction_create"
    [event] = _parse(payload)
    assert isinstance(event, UnsupportedEvent)
    assert event.event_type == "direct_message_events:message_reaction_create"


def test_x_dm_from_user_missing_in_users_map_still_parses(load_payload: Load) -> None:
    payload = load_payload("x_dm_event.json")
    payload["users"] = {}
    [message] = _parse(payload)
    assert message.author_id == MARISOL
    assert message.author_handle is None
