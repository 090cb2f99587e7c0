"""Classification of customer messages: language, sentiment, the high-reach priority boost,
stored on messages and conversations through the real ingestion path, and seen by the rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from inbox.extensions import db
from inbox.models import AuditEvent, Priority
from inbox.services.classify import language_of, sentiment_of
from inbox.services.ingest import batched_bookkeeping
from inbox.timeutil import utcnow
from tests.services.test_routing import TAG, inbound, rule, tags_of


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("My order still hasn't arrived, it was due last week", "en"),
        ("¿Pueden ayudarme a cambiar la dirección de envío?", "es"),
        ("مرحبا، لم يصل طلبي بعد، أرجو المساعدة", "ar"),
        ("שלום, ההזמנה שלי עדיין לא הגיעה", "he"),
        ("Mein Paket ist immer noch nicht angekommen", "de"),
    ],
)
def test_language_is_recognised(text, language):
    assert language_of(text) == language


@pytest.mark.parametrize("text", ["ok", "??", "😡😡😡", "@BrandHelp https://t.co/x1 #123456"])
def test_too_little_text_names_no_language(text):
    assert language_of(text) is None


def test_sentiment_is_scored_for_english_and_emoji_only():
    assert sentiment_of("This is the worst service ever, I am furious!!", "en") < -0.5
    assert sentiment_of("Thank you so much, you fixed it, brilliant 😍", "en") > 0.5
    assert sentiment_of("😭😭", None) < 0  # emoji carry sentiment without a language
    # VADER's lexicon is English: another language gets no score, not a "neutral" one.
    assert sentiment_of("Es el peor servicio del mundo", "es") is None


def test_customer_messages_and_their_conversation_are_classified(account):
    first = inbound(text="Your app deleted all my photos, this is terrible", author="ana")
    c = first.conversation
    assert (first.language, c.language) == ("en", "en")
    assert first.sentiment < -0.25 and c.sentiment == first.sentiment
    later = inbound(text="Gracias, ya funciona todo perfectamente", author="ana")
    assert later.conversation.id == c.id
    assert (later.language, later.sentiment) == ("es", None)
    assert c.language == "es" and c.sentiment is None  # the customer's latest message
    # A message delivered late (older than the latest) keeps its own values only.
    old = inbound(
        text="I love this app so much, great job!", author="ana", sent_at=utcnow() - timedelta(1)
    )
    assert old.sentiment > 0.25 and (c.language, c.sentiment) == ("es", None)


@pytest.mark.parametrize(
    ("followers", "verified", "expected"),
    [(52_000, False, Priority.HIGH), (10, True, Priority.HIGH), (9_999, False, Priority.NORMAL)],
)
def test_a_high_reach_author_starts_one_priority_step_higher(
    account, followers, verified, expected
):
    c = inbound(
        text="Still waiting for my refund", followers=followers, verified=verified
    ).conversation
    assert c.priority is expected
    boosts = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "classification.reach_boost")
    ).all()
    assert len(boosts) == (expected is Priority.HIGH)
    if boosts:
        assert boosts[0].after["followers"] == followers
    # The next message of the same conversation boosts nothing more.
    inbound(text="Hello??", author=c.contact.identities[0].external_user_id, followers=followers)
    assert c.priority is expected


def test_the_boost_also_applies_inside_a_webhook_batch(account):
    # A webhook delivery stores its messages first and brings the conversations' counts up to
    # date at its end (ingest.batched_bookkeeping): the boost must not depend on those counts.
    with batched_bookkeeping(now=utcnow()):
        c = inbound(text="Still waiting for my refund", followers=52_000).conversation
    db.session.commit()
    assert c.priority is Priority.HIGH


def test_the_rules_see_the_classification(account, admin):
    rule(admin, conditions=[{"type": "sentiment", "value": "negative"}], actions=TAG)
    angry = inbound(text="Worst airline ever. Lost my bag AGAIN. Furious.")
    calm = inbound(text="Could you tell me when the store opens tomorrow?")
    assert tags_of(angry.conversation) == {"hit"}
    assert tags_of(calm.conversation) == set()
