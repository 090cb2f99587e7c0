"""Who is looking at (and typing in) a conversation right now, for collision detection.

Presence lives only in Redis with short TTLs: each open conversation page sends a heartbeat
every ~10 s; an entry not refreshed within PRESENCE_TTL is gone. A change (someone arrives,
starts or stops typing) is published live so the other viewers update without waiting.
Imports: models, live.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redis import Redis

from inbox.live import publish
from inbox.models import User

PRESENCE_TTL = 25  # seconds: two missed heartbeats and a bit
TYPING_TTL = 8  # typing shows only while keystrokes keep coming


def _key(conversation_id: int) -> str:
    return f"inbox:presence:{conversation_id}"


def heartbeat(
    redis: Redis, conversation_id: int, user: User, *, typing: bool, now: datetime
) -> list[dict[str, Any]]:
    """Record that `user` views the conversation (and whether they type); return the others."""
    key, ts = _key(conversation_id), now.timestamp()
    old_raw = redis.hget(key, str(user.id))
    old = json.loads(old_raw) if old_raw else None
    entry = {
        "id": user.id,
        "name": user.name,
        "initials": user.initials,
        "at": ts,
        "typing_at": ts if typing else (old or {}).get("typing_at", 0),
    }
    pipe = redis.pipeline()
    pipe.hset(key, str(user.id), json.dumps(entry))
    pipe.expire(key, PRESENCE_TTL * 2)
    pipe.execute()
    was_typing = bool(old) and ts - old.get("typing_at", 0) < TYPING_TTL
    if old is None or ts - old["at"] > PRESENCE_TTL or typing != was_typing:
        publish("presence", conversation_id=conversation_id)
    return viewers(redis, conversation_id, now=now, exclude_user_id=user.id)


def leave(redis: Redis, conversation_id: int, user: User) -> None:
    if redis.hdel(_key(conversation_id), str(user.id)):
        publish("presence", conversation_id=conversation_id)


def viewers(
    redis: Redis, conversation_id: int, *, now: datetime, exclude_user_id: int | None = None
) -> list[dict[str, Any]]:
    """Everyone seen within PRESENCE_TTL, with `typing` true for recent keystrokes."""
    ts = now.timestamp()
    result, stale = [], []
    for field, raw in redis.hgetall(_key(conversation_id)).items():
        entry = json.loads(raw)
        if ts - entry["at"] > PRESENCE_TTL:
            stale.append(field)
            continue
        if entry["id"] == exclude_user_id:
            continue
        result.append(
            {
                "id": entry["id"],
                "name": entry["name"],
                "initials": entry["initials"],
                "typing": ts - entry.get("typing_at", 0) < TYPING_TTL,
            }
        )
    if stale:
        redis.hdel(_key(conversation_id), *stale)
    return sorted(result, key=lambda e: e["name"])
