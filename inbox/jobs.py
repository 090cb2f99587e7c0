"""RQ entry points: ids in, call one service, commit. PERIODIC_JOBS lists recurring work as data.

Every job runs inside the worker's app context and is safe to run twice.
Imports: services, models (to load by id), extensions.db, queue, timeutil.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app

from inbox.extensions import db
from inbox.models import SlaClockEvent
from inbox.queue import PeriodicJob, get_redis
from inbox.services import sla
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
def sla_sweep() -> int:
    """Mark due warnings and breaches and run their escalations; returns how many marks."""
    result = sla.sweep(now=utcnow())
    return len(result.warned) + len(result.breached)


@unit_of_work
def sla_webhook(event_id: int, url: str) -> int | None:
    """Call an escalation webhook for one clock event (on the `outbound` queue)."""
    event = db.session.get(SlaClockEvent, event_id)
    if event is None:  # rolled back or deleted since: nothing to announce
        return None
    return sla.deliver_webhook(event, url)


def periodic_jobs() -> list[PeriodicJob]:
    return [
        PeriodicJob(
            "heartbeat", "inbox.jobs.heartbeat", current_app.config["INBOX_HEARTBEAT_SECONDS"]
        ),
        PeriodicJob(
            "sla_sweep", "inbox.jobs.sla_sweep", current_app.config["INBOX_SLA_SWEEP_SECONDS"]
        ),
    ]
