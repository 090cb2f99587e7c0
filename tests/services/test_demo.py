"""Demo data: the TWCS sample's threads are moved into the last two weeks without changing a
single response time, so the reports of `make run` have something to show for "last 7 days";
its billing questions go to Billing support by a routing rule, as they would on arrival."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import AuditEvent, Conversation, Direction, Message, RoutingRule, Team
from inbox.services.csv_import import Tweet, read_twcs, threads
from inbox.services.demo import BILLING_RULE, BILLING_WORDS, load_demo, recent_threads
from inbox.timeutil import utcnow
from tests.conftest import SHARED_DATA

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def tweet(n: int, at: datetime, parent: int | None = None, inbound: bool = True) -> Tweet:
    return Tweet(
        tweet_id=str(n),
        author_id="cust" if inbound else "Brand",
        inbound=inbound,
        created_at=at,
        text="hi @Brand",
        parent_id=None if parent is None else str(parent),
    )


def gaps(thread: list[Tweet]) -> list[timedelta]:
    return [b.created_at - a.created_at for a, b in zip(thread, thread[1:], strict=False)]


def check(tweets: list[Tweet]) -> list[list[Tweet]]:
    moved = recent_threads(tweets, now=NOW)
    assert sorted(t.tweet_id for t in moved) == sorted(t.tweet_id for t in tweets)
    assert max(t.created_at for t in moved) <= NOW - timedelta(minutes=5)
    before = {th[0].tweet_id: th for th in threads(tweets)}
    after = list(threads(moved))
    for thread in after:  # every response time is exactly as recorded
        original = before[thread[0].tweet_id]
        assert gaps(thread) == gaps(original)
        assert thread[0].created_at.time() == original[0].created_at.astimezone(UTC).time()
    return after


def test_threads_from_one_old_day_are_spread_over_the_last_two_weeks():
    day = datetime(2017, 10, 31, 8, tzinfo=UTC)
    tweets = []
    for n in range(0, 280, 2):
        start = day + timedelta(minutes=5 * n)
        tweets += [tweet(n, start), tweet(n + 1, start + timedelta(minutes=37), n, inbound=False)]
    after = check(tweets)
    days = Counter(th[0].created_at.date() for th in after)
    assert len(days) == 14 and min(days.values()) >= 9
    assert min(days) == (NOW - timedelta(days=13)).date()


def test_a_thread_that_would_end_in_the_future_moves_a_day_earlier():
    late = datetime(2017, 10, 31, 23, 50, tzinfo=UTC)  # + 3 h reply: past NOW's 09:25 cut-off
    tweets = [tweet(1, late), tweet(2, late + timedelta(hours=3), 1, inbound=False)]
    [thread] = check(tweets)
    assert thread[-1].created_at.date() < NOW.date()


def test_the_real_sample_keeps_every_response_time():
    path = SHARED_DATA / "twcs_sample.csv"
    if not path.exists():
        pytest.skip(f"{path} is not here (the licensed sample is read from ../shared only)")
    with path.open(newline="", encoding="utf-8") as stream:
        after = check(read_twcs(stream))
    recent = sum(th[-1].created_at >= NOW - timedelta(days=7) for th in after)
    assert recent >= len(after) * 0.4  # about half the threads fall in the last week


def test_the_demo_s_billing_rule_moves_exactly_the_billing_questions_with_their_history(app):
    path = SHARED_DATA / "twcs_sample.csv"
    if not path.exists():
        pytest.skip(f"{path} is not here (the licensed sample is read from ../shared only)")
    load_demo(csv_path=path, now=utcnow())
    db.session.commit()
    billing = db.session.scalar(select(Team).where(Team.name == "Billing support"))
    latest = {}
    for conversation_id, text in db.session.execute(
        select(Message.conversation_id, Message.text)
        .where(Message.direction == Direction.INBOUND)
        .order_by(Message.id)
    ):
        latest[conversation_id] = text.casefold()  # the last one wins
    moved = set(db.session.scalars(select(Conversation.id).where(Conversation.team == billing)))
    asks_billing = {cid for cid, text in latest.items() if any(w in text for w in BILLING_WORDS)}
    assert moved == asks_billing and len(moved) >= 20
    history = db.session.scalars(
        select(AuditEvent.target_id).where(AuditEvent.action == "routing.action")
    ).all()
    assert sorted(history) == sorted(moved)
    (rule,) = db.session.scalars(select(RoutingRule)).all()
    assert rule.name == BILLING_RULE

    load_demo(csv_path=path, now=utcnow())  # again: nothing more
    assert db.session.scalar(select(func.count(RoutingRule.id))) == 1
