"""The worker heartbeat: a periodic job stamps Redis, /healthz reads the stamp.

Because the stamp is written by a job (enqueued by the periodic scheduler and run by a worker),
a fresh stamp proves the whole background path works, not just that a process exists.
Imports: redis, timeutil.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis

HEARTBEAT_KEY = "inbox:worker:heartbeat"


def record_heartbeat(redis: Redis, *, now: datetime) -> None:
    redis.set(HEARTBEAT_KEY, now.timestamp())


def last_heartbeat(redis: Redis) -> datetime | None:
    raw = redis.get(HEARTBEAT_KEY)
    return None if raw is None else datetime.fromtimestamp(float(raw), UTC)
