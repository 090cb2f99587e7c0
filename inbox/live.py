"""Live updates: small JSON events published on Redis pub/sub after a commit, so every web
process (and so every open browser) hears about changes made anywhere.

Imports: queue (Redis connection, after-commit).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session, scoped_session

from inbox.queue import after_commit, get_redis

CHANNEL = "inbox:live"


def publish_after_commit(session: Session | scoped_session, event: str, **data: Any) -> None:
    """Publish `{"event": event, **data}` once the transaction commits (ids, not content:
    listeners re-read what they are allowed to see)."""
    message = json.dumps({"event": event, **data}, default=str)
    redis = get_redis()
    after_commit(session, lambda: redis.publish(CHANNEL, message))


def listen(timeout: float = 15.0) -> Iterator[dict[str, Any] | None]:
    """Yield published events as dicts, or None every `timeout` seconds of silence (so a
    streaming response can send a keep-alive and notice a closed connection)."""
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    try:
        while True:
            message = pubsub.get_message(timeout=timeout)
            yield None if message is None else json.loads(message["data"])
    finally:
        pubsub.close()
