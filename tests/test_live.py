"""Live updates go through Redis pub/sub, and only after the transaction commits."""

from __future__ import annotations

from inbox.extensions import db
from inbox.live import listen, publish_after_commit


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
