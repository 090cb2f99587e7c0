"""RQ entry points: ids in, call one service, commit. PERIODIC_JOBS lists recurring work as data.

Every job runs inside the worker's app context and is safe to run twice.
Imports: services, extensions.db, queue, timeutil.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import current_app

from inbox.extensions import db
from inbox.models import InboundEvent
from inbox.queue import PeriodicJob, get_redis
from inbox.services import conversations
from inbox.services.events import process_event, record_attempt_failure, requeue_stale_events
from inbox.services.heartbeat import record_heartbeat
from inbox.timeutil import utcnow

F = TypeVar("F", bound=Callable[..., Any])


def unit_of_work(func: F) -> F:
    """Run the job body as one transaction: commit on success, roll back on error, always
    release the session so the next job starts clean."""

    @wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
            db.session.commit()
            return result
        except BaseException:
            db.session.rollback()
            raise
        finally:
            db.session.remove()

    return wrapped  # type: ignore[return-value]


def heartbeat() -> None:
    record_heartbeat(get_redis(current_app), now=utcnow())


@unit_of_work
def wake_snoozed() -> int:
    return conversations.wake_snoozed(now=utcnow())


def process_inbound_event(event_id: int) -> None:
    """Process one stored webhook delivery. The event row is locked for the duration (FOR
    UPDATE on PostgreSQL), so a duplicate job waits and then finds it processed. A failure is
    counted on the event and re-raised so RQ retries it with backoff."""
    try:
        event = db.session.get(InboundEvent, event_id, with_for_update=True)
        if event is not None:
            process_event(event, now=utcnow())
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        event = db.session.get(InboundEvent, event_id)
        retry = event is not None and record_attempt_failure(event, exc)
        db.session.commit()
        if retry:
            raise
    finally:
        db.session.remove()


@unit_of_work
def requeue_events() -> int:
    seconds = current_app.config["INBOX_EVENT_REQUEUE_SECONDS"]
    return requeue_stale_events(now=utcnow(), older_than=timedelta(seconds=seconds))


def periodic_jobs() -> list[PeriodicJob]:
    return [
        PeriodicJob(
            "heartbeat", "inbox.jobs.heartbeat", current_app.config["INBOX_HEARTBEAT_SECONDS"]
        ),
        PeriodicJob("wake-snoozed", "inbox.jobs.wake_snoozed", 60),
        PeriodicJob(
            "requeue-stale-events",
            "inbox.jobs.requeue_events",
            max(5, current_app.config["INBOX_EVENT_REQUEUE_SECONDS"] // 2),
        ),
    ]
