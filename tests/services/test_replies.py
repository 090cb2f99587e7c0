"""The reply service and send job in-process against the fake platform server: validation,
queueing, sending, failures and retries, token encryption, and matching platform echoes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select, text

from inbox import encryption
from inbox.connectors import InboundMessage, get_connector
from inbox.extensions import db
from inbox.jobs import send_outbound_message
from inbox.models import AuditEvent, DeliveryStatus, Direction, Message, Role, Status
from inbox.services.channels import access_token_for, set_access_token
from inbox.services.ingest import add_message, match_echo
from inbox.services.replies import (
    ReplyConflict,
    ReplyInvalid,
    create_reply,
    retry_reply,
)
from tests.fake_platforms import (
    FakePlatforms,
    graph_invalid_token,
    messenger_outside_window,
    server_error,
)
from tests.support.replies import CASES, NOW, TOKEN, make_conversation

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"


@pytest.fixture(scope="module")
def fake():
    server = FakePlatforms().start()
    yield server
    server.stop()


@pytest.fixture
def app(make_app, fake):
    fake.reset()
    app = make_app(**fake.config(), INBOX_SEND_RETRY_INTERVALS=[1, 1])
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def agent(make_user):
    return make_user(Role.AGENT)


def outbound_queue(redis_url: str) -> Queue:
    return Queue("outbound", connection=Redis.from_url(redis_url))


def reload(message_id: int) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def reply(case_name: str, agent, text: str = "Thanks, we're on it. ^Priya", **kwargs) -> int:
    """A committed queued reply's id (the send job ends the session, so tests hold ids)."""
    conversation = make_conversation(CASES[case_name])
    message = create_reply(
        conversation, text=text, actor=db.session.merge(agent), now=NOW, **kwargs
    )
    db.session.commit()
    return message.id


# --- creating a reply --------------------------------------------------------------------------


def test_reply_is_stored_queued_with_its_author_and_enqueued_only_after_commit(
    app, agent, redis_url
):
    conversation = make_conversation(CASES["x_dm"])
    assert conversation.status is Status.NEW
    message = create_reply(conversation, text="  On it!  ", actor=agent, now=NOW)
    assert outbound_queue(redis_url).count == 0
    db.session.commit()

    assert message.direction is Direction.OUTBOUND
    assert message.delivery_status is DeliveryStatus.QUEUED
    assert message.author_user_id == agent.id
    assert message.text == "On it!"
    assert message.external_id is None
    assert conversation.status is Status.OPEN
    assert conversation.first_response_at == NOW  # a human reply is the brand's response
    assert conversation.message_count == 2
    [job] = outbound_queue(redis_url).jobs
    assert job.func_name == "inbox.jobs.send_outbound_message"
    assert job.args == (message.id,)
    assert job.retries_left == 2 and job.retry_intervals == [1, 1]
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "message.reply"))
    assert audit.actor_id == agent.id and audit.target_id == message.id


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_empty_reply_is_refused_and_nothing_is_stored(app, agent, blank):
    conversation = make_conversation(CASES["messenger"])
    with pytest.raises(ReplyInvalid, match="empty"):
        create_reply(conversation, text=blank, actor=agent, now=NOW)
    assert conversation.message_count == 1


@pytest.mark.parametrize(
    ("case_name", "text", "limit"),
    [
        ("x_reply_tweet", "a" * 281, "280 characters"),
        ("x_reply_tweet", "日" * 141, "280 characters"),  # CJK weighs 2 on X
        ("messenger", "a" * 2001, "2000 characters"),
        ("instagram_dm", "é" * 501, "1000 bytes"),  # 501 characters, 1002 UTF-8 bytes
        ("whatsapp", "a" * 4097, "4096 characters"),
        ("facebook_comment", "a" * 8001, "8000 characters"),
    ],
)
def test_reply_over_the_platform_limit_is_refused_with_the_limit(
    app, agent, case_name, text, limit
):
    conversation = make_conversation(CASES[case_name])
    with pytest.raises(ReplyInvalid, match=limit):
        create_reply(conversation, text=text, actor=agent, now=NOW)


def test_reply_at_the_limit_is_accepted(app, agent):
    conversation = make_conversation(CASES["x_reply_tweet"])
    message = create_reply(conversation, text="a" * 280, actor=agent, now=NOW)
    assert message.delivery_status is DeliveryStatus.QUEUED


def test_private_reply_where_the_platform_offers_only_public_is_refused(app, agent):
    conversation = make_conversation(CASES["x_reply_tweet"])
    with pytest.raises(ReplyInvalid, match="only be answered publicly"):
        create_reply(conversation, text="hi", is_public=False, actor=agent, now=NOW)


def test_reply_on_an_account_without_a_token_is_a_conflict(app, agent):
    conversation = make_conversation(CASES["whatsapp"], token=None)
    with pytest.raises(ReplyConflict, match="no access token is stored"):
        create_reply(conversation, text="hi", actor=agent, now=NOW)


# --- sending -----------------------------------------------------------------------------------


def test_send_job_sends_once_and_marks_the_reply_sent_with_the_platform_id(app, agent, fake):
    message_id = reply("facebook_comment", agent)
    fake.force_id("122190345566778899_1029384756999999")
    assert send_outbound_message(message_id) == "sent"
    assert send_outbound_message(message_id) == "skipped"  # run twice: sent once

    sent = reload(message_id)
    assert sent.delivery_status is DeliveryStatus.SENT
    assert sent.external_id == "122190345566778899_1029384756999999"
    assert len(fake.calls) == 1


def test_permanent_failure_keeps_the_platform_message_and_an_agent_retry_sends_it(
    app, agent, fake, redis_url
):
    message_id = reply("messenger", agent)
    fake.fail(messenger_outside_window())
    assert send_outbound_message(message_id) == "failed"
    failed = reload(message_id)
    assert failed.delivery_status is DeliveryStatus.FAILED
    assert "(#10) This message is sent outside of allowed window" in failed.delivery_error
    assert "10/2018278" in failed.delivery_error

    retry_reply(failed, actor=db.session.merge(agent), now=NOW)
    db.session.commit()
    assert reload(message_id).delivery_status is DeliveryStatus.QUEUED
    assert outbound_queue(redis_url).count == 2  # the first send and the retry
    assert send_outbound_message(message_id) == "sent"
    sent = reload(message_id)
    assert sent.delivery_status is DeliveryStatus.SENT and sent.delivery_error is None
    assert len(fake.calls) == 2
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-3:] == ["message.failed", "message.retry", "message.sent"]


def test_only_a_failed_reply_can_be_retried(app, agent):
    message_id = reply("x_dm", agent)
    with pytest.raises(ReplyConflict, match="Only a failed reply"):
        retry_reply(reload(message_id), actor=agent, now=NOW)


def test_transient_failure_on_the_last_attempt_marks_the_reply_failed(app, agent, fake):
    message_id = reply("whatsapp", agent)
    fake.fail(server_error())
    # Called outside RQ there are no retries left: this is the last attempt.
    assert send_outbound_message(message_id) == "failed"
    assert reload(message_id).delivery_error.startswith("Gave up after repeated temporary errors")


def test_a_failed_send_never_logs_or_records_the_token(app, agent, fake, caplog):
    caplog.set_level(logging.DEBUG)
    first_id = reply("instagram_dm", agent)
    fake.fail(graph_invalid_token())
    send_outbound_message(first_id)
    second_id = reply("x_dm", agent, text="Another one")
    fake.fail(server_error())
    send_outbound_message(second_id)

    assert TOKEN not in caplog.text
    db.session.expire_all()
    records = [m.delivery_error or "" for m in db.session.scalars(select(Message))]
    records += [json.dumps([a.before, a.after]) for a in db.session.scalars(select(AuditEvent))]
    assert any("Error validating access token" in r for r in records)
    assert not any(TOKEN in r for r in records)


# --- tokens --------------------------------------------------------------------------------------


def test_access_token_is_encrypted_at_rest(app):
    conversation = make_conversation(CASES["messenger"])
    stored = db.session.execute(
        text("SELECT access_token_encrypted FROM channel_accounts WHERE id = :id"),
        {"id": conversation.channel_account_id},
    ).scalar_one()
    assert TOKEN.encode() not in bytes(stored)
    assert access_token_for(conversation.channel_account) == TOKEN


def test_setting_the_same_token_again_changes_nothing(app):
    account = make_conversation(CASES["whatsapp"]).channel_account
    stored = account.access_token_encrypted
    assert set_access_token(account, TOKEN, actor=None) is False
    assert account.access_token_encrypted == stored
    assert set_access_token(account, "another-token", actor=None) is True
    db.session.commit()
    audits = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "channel.access_token_set")
    ).all()
    assert [a.after for a in audits] == [{"replaced": False}, {"replaced": True}]


def test_encryption_keys_rotate_and_default_to_one_derived_from_the_secret_key():
    old, new = (encryption.Fernet.generate_key().decode() for _ in range(2))
    blob = encryption.encrypt({"INBOX_ENCRYPTION_KEY": old}, "tok")
    both = {"INBOX_ENCRYPTION_KEY": f"{new},{old}"}
    assert encryption.decrypt(both, blob) == "tok"
    rotated = encryption.rotate(both, blob)
    assert encryption.decrypt({"INBOX_ENCRYPTION_KEY": new}, rotated) == "tok"
    with pytest.raises(encryption.DecryptionError):
        encryption.decrypt({"INBOX_ENCRYPTION_KEY": new}, blob)

    derived = encryption.encrypt({"SECRET_KEY": "s1"}, "tok")
    assert encryption.decrypt({"SECRET_KEY": "s1"}, derived) == "tok"
    with pytest.raises(encryption.DecryptionError):
        encryption.decrypt({"SECRET_KEY": "s2"}, derived)


def test_add_channel_cli_stores_the_token_encrypted_and_is_idempotent(app):
    runner = app.test_cli_runner()
    args = ["add-channel", "--platform", "x", "--account-id", "42", "--name", "@brand"]
    first = runner.invoke(args=[*args, "--access-token", TOKEN])
    again = runner.invoke(args=[*args, "--access-token", TOKEN])
    assert first.exit_code == 0 and "access token stored (encrypted)" in first.output
    assert again.exit_code == 0 and "exists" in again.output and "token" not in again.output
    assert TOKEN not in first.output + again.output
    account = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "channel.access_token_set")
    )
    assert account is not None


# --- platform echoes of our replies --------------------------------------------------------------

ECHOES = {
    # fixture: (case, our reply text as typed in the inbox)
    "x_dm_echo_outgoing.json": ("x_dm", None),
    "meta_messenger_echo.json": ("messenger", None),
    "meta_instagram_echo.json": ("instagram_dm", None),
    # X puts the @handle it answers in front of the reply tweet's text.
    "x_reply_from_brand_echo.json": (
        "x_reply_tweet",
        "Hi Marisol, no known outage in LS6 right now. Could you DM us your account ref so we "
        "can run a line test? ^Dev",
    ),
}


def echo_event(fixture: str) -> InboundMessage:
    payload = json.loads((FIXTURES / fixture).read_bytes())
    connector = "x" if fixture.startswith("x_") else "meta"
    [event] = get_connector(connector).parse(payload)
    assert isinstance(event, InboundMessage) and event.direction == "outbound"
    return event


@pytest.mark.parametrize("fixture", sorted(ECHOES))
def test_the_platform_echo_of_a_sent_reply_is_the_same_message(app, agent, fake, fixture):
    case_name, typed = ECHOES[fixture]
    echo = echo_event(fixture)
    message_id = reply(case_name, agent, text=typed or echo.text)
    # The platform answers the send with the id its webhook echo carries.
    fake.force_id(echo.external_id)
    send_outbound_message(message_id)
    conversation = reload(message_id).conversation

    assert match_echo(conversation, echo).id == message_id
    assert reload(message_id).external_id == echo.external_id
    assert conversation.message_count == 2


@pytest.mark.parametrize("fixture", sorted(ECHOES))
def test_an_echo_arriving_before_the_send_job_stored_the_id_claims_the_reply(
    app, agent, fake, fixture
):
    case_name, typed = ECHOES[fixture]
    echo = echo_event(fixture)
    message_id = reply(case_name, agent, text=typed or echo.text)

    matched = match_echo(reload(message_id).conversation, echo)
    db.session.commit()
    assert matched.id == message_id
    # The job of a send whose commit was lost finds the echo's id: it must not send again.
    assert send_outbound_message(message_id) == "sent"
    sent = reload(message_id)
    assert sent.delivery_status is DeliveryStatus.SENT
    assert sent.external_id == echo.external_id
    assert fake.calls == []


def test_an_echo_of_a_different_text_is_not_our_reply(app, agent):
    echo = echo_event("meta_messenger_echo.json")
    message_id = reply("messenger", agent, text="Something else entirely")
    assert match_echo(reload(message_id).conversation, echo) is None
    assert reload(message_id).external_id is None


def test_an_echo_stored_as_its_own_message_is_folded_into_the_reply_when_it_is_sent(
    app, agent, fake
):
    echo = echo_event("meta_messenger_echo.json")
    message_id = reply("messenger", agent, text=echo.text)
    conversation = reload(message_id).conversation
    conversation_id = conversation.id
    # Ingestion that did not call match_echo stored the echo first.
    add_message(
        conversation,
        direction=Direction.OUTBOUND,
        text=echo.text,
        sent_at=echo.sent_at,
        external_id=echo.external_id,
    )
    db.session.commit()
    fake.force_id(echo.external_id)
    send_outbound_message(message_id)

    db.session.expire_all()
    outbound = db.session.scalars(
        select(Message).where(
            Message.conversation_id == conversation_id, Message.direction == Direction.OUTBOUND
        )
    ).all()
    assert [(m.id, m.external_id) for m in outbound] == [(message_id, echo.external_id)]
    assert reload(message_id).conversation.message_count == 2
