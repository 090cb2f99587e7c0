"""RQ entry points: ids in, call one service, commit. PERIODIC_JOBS lists recurring work as data.

Every job runs inside the worker's app context and is safe to run twice.
Imports: services, models (to load by id), connectors (send errors), extensions.db, queue,
timeutil, rq.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import current_app
from rq import get_current_job
from rq.job import Job

from inbox.connectors import TransientSendError
from inbox.extensions import db
from inbox.models import InboundEvent, SlaClockEvent, Team
from inbox.queue import PeriodicJob, get_redis
from inbox.services import (
    assignment,
    availability,
    conversations,
    helpdesk,
    report_mail,
    sla,
    uploads,
)
from inbox.services.events import (
    claim_event,
    claim_pending,
    drain_started,
    process_events,
    record_attempt_failure,
    requeue_stale_events,
    retry_processing,
    wake_drain,
)
from inbox.services.heartbeat import record_heartbeat
from inbox.services.replies import deliver_reply
from inbox.timeutil import utcnow

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
# A helpdesk delivery still pending after this long lost its job (a first attempt takes seconds).
HELPDESK_REQUEUE_AFTER = timedelta(minutes=10)


class HelpdeskRetry(Exception):
    """Raised so RQ retries a helpdesk delivery (the attempt is already logged)."""


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
    """Process one stored webhook delivery (unless it is processed already or another worker
    has it locked: a drain's batch). A failure is counted on the event and re-raised so RQ
    retries it with backoff."""
    try:
        event = claim_event(event_id)
        if event is not None:
            process_events([event], now=utcnow())
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        if _count_failure(event_id, exc):
            raise
    finally:
        db.session.remove()


def _count_failure(event_id: int, error: Exception) -> bool:
    """Count a failed attempt on the event (committed); True if it is to be retried."""
    event = db.session.get(InboundEvent, event_id)
    retry = event is not None and record_attempt_failure(event, error)
    db.session.commit()
    return retry


def drain_inbound_events() -> int:
    """Process pending webhook deliveries, INBOX_EVENTS_PER_TRANSACTION per transaction,
    until none is left; returns how many. A full batch wakes another drain, so every worker
    helps with a backlog. When a batch of several fails, each of its events is processed on
    its own, so only the broken one is counted and retried (by its own job, with backoff);
    the drain goes on."""
    drain_started()
    size = current_app.config["INBOX_EVENTS_PER_TRANSACTION"]
    done = 0
    try:
        while claimed := _drain_batch(size):
            done += len(claimed)
        return done
    finally:
        db.session.remove()


def _drain_batch(size: int) -> list[int]:
    """Claim up to `size` pending deliveries and process them in one transaction; their ids
    ([] when none is left). If the claim itself fails (the database is gone) the job fails:
    nothing was taken, and the next delivery or the stale-event sweep starts another drain."""
    events = claim_pending(size)
    claimed = [event.id for event in events]
    if len(events) == size:
        wake_drain()
    try:
        process_events(events, now=utcnow())
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        _process_apart(claimed, exc)
    return claimed


def _process_apart(claimed: list[int], error: Exception) -> None:
    """After a failed batch: each event on its own, so only a broken one is counted and
    retried later (a batch of one has just failed on its own)."""
    if len(claimed) == 1:
        _retry_later(claimed[0], error)
        return
    log.warning("a batch of %d webhook deliveries failed: %s", len(claimed), error)
    for event_id in claimed:
        try:
            process_inbound_event(event_id)
        except Exception:
            _retry_later(event_id, None)


def _retry_later(event_id: int, error: Exception | None) -> None:
    """Have the event retried by its own job (`error`: count this failure first)."""
    if error is None or _count_failure(event_id, error):
        retry_processing(event_id)
        db.session.commit()


@unit_of_work
def requeue_events() -> int:
    seconds = current_app.config["INBOX_EVENT_REQUEUE_SECONDS"]
    return requeue_stale_events(now=utcnow(), older_than=timedelta(seconds=seconds))


@unit_of_work
def send_outbound_message(message_id: int) -> str:
    """Send one queued reply (enqueued by services.replies with an RQ Retry policy).

    A transient failure is committed (the agent sees "Retrying: …") and then re-raised so RQ
    schedules the next attempt, no sooner than the platform asked; on the last attempt the
    service marks the reply failed instead.
    """
    job = get_current_job()
    final_attempt = job is None or not job.should_retry
    outcome = deliver_reply(
        message_id, config=current_app.config, final_attempt=final_attempt, now=utcnow()
    )
    if outcome.result == "retry":
        db.session.commit()
        if job is not None and outcome.retry_after:
            _wait_at_least(job, outcome.retry_after)
        raise TransientSendError(outcome.reason, retry_after=outcome.retry_after)
    return outcome.result


def _wait_at_least(job: Job, seconds: float) -> None:
    """Stretch the RQ retry interval about to be used to the platform's retry-after (capped)."""
    cap = current_app.config["INBOX_SEND_MAX_WAIT_SECONDS"]
    intervals = list(job.retry_intervals or [0])
    # The index RQ's Job.get_retry_interval reads for the retry that follows this failure.
    index = max(len(intervals) - (job.retries_left or 0), 0)
    index = min(index, len(intervals) - 1)
    intervals[index] = max(intervals[index], math.ceil(min(seconds, cap)))
    job.retry_intervals = intervals


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


@unit_of_work
def deliver_helpdesk_case(delivery_id: int) -> str:
    """Send one case to a team's helpdesk (enqueued by services.helpdesk with an RQ Retry).

    A transient failure's attempt is committed first, so the log shows every attempt, and
    then raised so RQ schedules the next one; the last one marks the delivery failed."""
    job = get_current_job()
    outcome = helpdesk.attempt_delivery(
        delivery_id,
        config=current_app.config,
        final_attempt=job is None or not job.should_retry,
        now=utcnow(),
    )
    if outcome.result == "retry":
        db.session.commit()
        raise HelpdeskRetry(outcome.reason)
    return outcome.result


@unit_of_work
def requeue_helpdesk_deliveries() -> int:
    return helpdesk.requeue_stale(now=utcnow(), older_than=HELPDESK_REQUEUE_AFTER)


def run_csv_import(import_id: int) -> str:
    """Import a CSV uploaded on the Import page (it commits batch by batch, and its progress)."""
    try:
        upload = uploads.run_import(import_id, now=utcnow())
        return "taken elsewhere" if upload is None else str(upload.state)
    finally:
        db.session.remove()


@unit_of_work
def sweep_csv_imports() -> int:
    return uploads.sweep_stale(now=utcnow())


@unit_of_work
def assign_team_backlog(team_id: int) -> int:
    """Hand a team's waiting conversations to its free online agents (enqueued when a
    conversation enters the queue or an agent frees capacity)."""
    team = db.session.get(Team, team_id)
    return 0 if team is None else assignment.assign_backlog(team, now=utcnow())


@unit_of_work
def assignment_sweep() -> int:
    """Idle agents away, stale or orphaned items back to the queue, then every backlog out;
    returns how many conversations were assigned."""
    now = utcnow()
    idle = timedelta(minutes=current_app.config["INBOX_AWAY_AFTER_MINUTES"])
    availability.mark_idle_away(now=now, idle=idle)
    assignment.return_stale(now=now)
    return assignment.assign_all_backlogs(now=now)


def send_report_mail() -> int:
    """Send the scheduled SLA summaries that are due, committing after each so one failing
    address does not hold back (or re-send) the others. Nothing without INBOX_SMTP_HOST."""
    settings = report_mail.SmtpSettings.from_config(current_app.config)
    if not settings.host:
        return 0
    sent = 0
    try:
        for subscription_id in report_mail.due_ids(now=utcnow()):
            try:
                sent += report_mail.send_one(subscription_id, now=utcnow(), settings=settings)
                db.session.commit()
            except Exception:
                db.session.rollback()
                current_app.logger.exception("report mail %s failed", subscription_id)
    finally:
        db.session.remove()
    return sent


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
        PeriodicJob(
            "sla_sweep", "inbox.jobs.sla_sweep", current_app.config["INBOX_SLA_SWEEP_SECONDS"]
        ),
        PeriodicJob(
            "assignment-sweep",
            "inbox.jobs.assignment_sweep",
            current_app.config["INBOX_ASSIGNMENT_SWEEP_SECONDS"],
        ),
        PeriodicJob("report-mail", "inbox.jobs.send_report_mail", 300),
        PeriodicJob("requeue-helpdesk", "inbox.jobs.requeue_helpdesk_deliveries", 300),
        PeriodicJob("sweep-csv-imports", "inbox.jobs.sweep_csv_imports", 300),
    ]
