"""Instagram mentions end to end: the webhook names only the comment, the worker reads it
through the account from the (local, fake) Graph API, and the mention lands in the queue.
Refusals become issues an admin can replay; outages are retried; redeliveries cost no call."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from inbox.extensions import db
from inbox.jobs import process_inbound_event
from inbox.models import (
    ChannelAccount,
    Conversation,
    EventIssue,
    EventState,
    InboundEvent,
    Kind,
    Message,
)
from inbox.services.channels import set_access_token
from inbox.services.events import enqueue_processing, reset_for_replay
from tests.conftest import WEBHOOK_SETTINGS, run_jobs, signed_post
from tests.fake_platforms import server_error
from tests.test_webhooks import count

FIXTURE = "meta_instagram_mention.json"
COMMENT = "17866011223344556"
TEXT = "@brightwave still no signal in Pontcanna since Monday 😤"


@pytest.fixture
def mention_app(make_app, fake_platforms, brand_accounts):
    app = make_app(**WEBHOOK_SETTINGS, **fake_platforms.config())
    with app.app_context():
        # This app context has its own session: load the account in it.
        account = db.session.get(ChannelAccount, brand_accounts["instagram"].id)
        set_access_token(account, "ig-page-token", actor=None)
        db.session.commit()
        yield app
        db.session.remove()


def deliver(app) -> InboundEvent:
    assert signed_post(app.test_client(), FIXTURE).status_code == 200
    run_jobs(app)
    db.session.expire_all()
    return db.session.scalars(select(InboundEvent).order_by(InboundEvent.id.desc())).first()


def register(fake_platforms) -> None:
    fake_platforms.add_mention(
        COMMENT,
        text=TEXT,
        username="gareth.p",
        timestamp="2025-03-18T07:45:50+0000",
        **{"from": {"id": "17850009998887776", "username": "gareth.p"}},
    )


def test_mention_is_fetched_and_lands_in_the_queue_once(mention_app, fake_platforms):
    register(fake_platforms)
    event = deliver(mention_app)
    assert event.state is EventState.PROCESSED, event.error
    assert count(EventIssue) == 0, db.session.scalar(select(EventIssue.reason))
    stored = db.session.scalar(select(Message).where(Message.external_id == COMMENT))
    assert stored.text == TEXT
    conversation = stored.conversation
    assert (conversation.kind, conversation.is_public) == (Kind.MENTION, True)
    assert stored.author_identity.handle == "gareth.p"
    assert stored.author_identity.external_user_id == "17850009998887776"
    assert fake_platforms.calls[0].token == "ig-page-token"
    deliver(mention_app)  # the platform redelivers
    assert count(Message) == 1 and count(Conversation) == 1
    assert len(fake_platforms.calls) == 1  # already stored: the platform is not asked again


def test_without_an_access_token_the_mention_is_listed_with_how_to_fix_it(
    make_app, fake_platforms, brand_accounts
):
    app = make_app(**WEBHOOK_SETTINGS, **fake_platforms.config())
    with app.app_context():
        deliver(app)
        issue = db.session.scalar(select(EventIssue))
        assert issue.kind == "needs_fetch" and "--access-token" in issue.reason
        assert count(Message) == 0 and fake_platforms.calls == []


def test_a_refusal_is_listed_with_metas_words_and_a_replay_after_the_fix_lands_it(
    mention_app, fake_platforms
):
    event = deliver(mention_app)  # the fake does not know the comment: Meta's error 100
    issue = db.session.scalar(select(EventIssue))
    assert issue.kind == "fetch_failed" and "Object does not exist" in issue.reason
    assert event.state is EventState.PROCESSED and count(Message) == 0
    register(fake_platforms)
    reset_for_replay(event)  # what Admin → Webhook deliveries → Replay does
    enqueue_processing(event.id)
    db.session.commit()
    run_jobs(mention_app)
    db.session.expire_all()
    assert count(EventIssue) == 0
    assert db.session.scalar(select(Message.text).where(Message.external_id == COMMENT)) == TEXT


def test_an_outage_leaves_the_event_pending_and_the_retry_lands_it(mention_app, fake_platforms):
    register(fake_platforms)
    fake_platforms.fail(server_error())
    event = deliver(mention_app)  # the job failed; RQ retries it later (scheduled)
    assert event.state is EventState.PENDING and event.attempts == 1
    assert count(Message) == 0 and count(EventIssue) == 0
    event_id = event.id
    with mention_app.app_context():  # the retry, with a session of its own as in the worker
        process_inbound_event(event_id)
    db.session.expire_all()
    assert db.session.get(InboundEvent, event_id).state is EventState.PROCESSED
    assert count(Message) == 1
