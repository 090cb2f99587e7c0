"""Live updates go through Redis pub/sub, and only after the transaction commits."""

from __future__ import annotations

from datetime import UTC, datetime

from inbox.extensions import db
from inbox.live import listen, publish_after_commit, publish_many_after_commit


def next_event(stream):
    for event in stream:
        if event is not None:
            return event
    return None


def test_live_event_is_published_after_commit_only(app):
    stream = listen(timeout=0.2)
    assert next(stream) is None  # subscribed, nothing yet
    publish_after_commit(db.session, "conversation.updated", conversation_id=1)
    db.session.rollback()
    assert next(stream) is None  # rolled back: nobody hears it
    publish_after_commit(db.session, "conversation.updated", conversation_id=2)
    assert next(stream) is None  # not committed yet
    db.session.commit()
    assert next(stream) == {"event": "conversation.updated", "conversation_id": 2}
    stream.close()


def test_many_live_events_arrive_one_message_each_in_order(app):
    # A sweep announces thousands of conversations in one call (one command to Redis).
    stream = listen(timeout=0.5)
    assert next(stream) is None  # subscribed
    due = datetime(2026, 1, 12, 11, tzinfo=UTC)
    items = [{"conversation_id": n, "sla_due_at": due} for n in range(1000)]
    publish_many_after_commit(db.session, "conversation.sla", items)
    db.session.commit()
    received = []
    while (event := next(stream)) is not None:  # until half a second of silence
        received.append(event)
    stream.close()
    assert received == [
        {"event": "conversation.sla", "conversation_id": n, "sla_due_at": str(due)}
        for n in range(1000)
    ]


def test_a_transactions_live_updates_go_to_redis_in_one_round_trip_after_commit(app, monkeypatch):
    from inbox.queue import get_redis

    redis = get_redis()
    calls = []
    real_eval = redis.eval
    monkeypatch.setattr(redis, "eval", lambda *args: calls.append(args) or real_eval(*args))
    stream = listen(timeout=0.3)
    assert next(stream) is None  # subscribed
    publish_after_commit(db.session, "conversation.updated", conversation_id=1)
    db.session.rollback()  # dropped, and not carried into the next transaction
    for n in (2, 3):
        publish_after_commit(db.session, "conversation.updated", conversation_id=n)
    publish_many_after_commit(db.session, "conversation.sla", [{"conversation_id": 4}])
    assert calls == []
    db.session.commit()
    assert len(calls) == 1
    received = []
    while (event := next(stream)) is not None:
        received.append(event)
    stream.close()
    assert [(e["event"], e["conversation_id"]) for e in received] == [
        ("conversation.updated", 2),
        ("conversation.updated", 3),
        ("conversation.sla", 4),
    ]
    publish_after_commit(db.session, "conversation.updated", conversation_id=5)
    db.session.commit()
    assert len(calls) == 2  # the next transaction has a batch of its own
