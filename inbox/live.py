"""Live updates: small JSON events published on Redis pub/sub after a commit, so every web
process (and so every open browser) hears about changes made anywhere.

Imports: queue (Redis connection, after-commit).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from redis.client import PubSub
from sqlalchemy.orm import Session, scoped_session

from inbox.queue import after_commit_batch, get_redis

CHANNEL = "inbox:live"
# json.dumps(…, default=str) builds an encoder per call; a sweep encodes thousands of events.
_ENCODER = json.JSONEncoder(default=str)
# All of a transaction's messages in one command, published in order by Redis: a pipeline
# of thousands of PUBLISH commands spent most of its time in the client packing them.
_PUBLISH_ALL = "for _, message in ipairs(ARGV) do redis.call('PUBLISH', KEYS[1], message) end"


def publish_after_commit(session: Session | scoped_session, event: str, **data: Any) -> None:
    """Publish `{"event": event, **data}` once the transaction commits (ids, not content:
    listeners re-read what they are allowed to see)."""
    publish_many_after_commit(session, event, [data])


def publish_many_after_commit(
    session: Session | scoped_session, event: str, items: Iterable[dict[str, Any]]
) -> None:
    """Publish one `{"event": event, **item}` per item once the transaction commits. All the
    transaction's live updates go in one round trip to Redis (a sweep announces thousands of
    conversations at once, a webhook batch a few dozen)."""
    messages = [_ENCODER.encode({"event": event, **item}) for item in items]
    if not messages:
        return
    redis = get_redis()

    def send(batch: list[str]) -> None:
        redis.eval(_PUBLISH_ALL, 1, CHANNEL, *batch)

    after_commit_batch(session, "live", send).extend(messages)


def publish(event: str, **data: Any) -> None:
    """Publish right away, for state that lives only in Redis (presence), not in a transaction."""
    get_redis().publish(CHANNEL, _ENCODER.encode({"event": event, **data}))


def listen(timeout: float = 15.0) -> Iterator[dict[str, Any] | None]:
    """Subscribe now, then yield published events as dicts, or None every `timeout` seconds of
    silence (so a streaming response can send a keep-alive and notice a closed connection).

    Subscribing before returning means nothing published after this call is missed, even if the
    caller starts iterating a little later (a streaming response sends its headers first)."""
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    return _events(pubsub, timeout)


def _events(pubsub: PubSub, timeout: float) -> Iterator[dict[str, Any] | None]:
    try:
        while True:
            message = pubsub.get_message(timeout=timeout)
            yield None if message is None else json.loads(message["data"])
    finally:
        pubsub.close()
