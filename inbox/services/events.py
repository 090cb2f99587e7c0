"""The life of a webhook delivery: recorded before we answer, processed by a worker, retried,
re-enqueued when it was missed, replayed on request. Nothing accepted is ever lost.

Imports: models, extensions.db, connectors, services.ingest, services.channels, services.audit,
queue (enqueue-after-commit).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import defer, selectinload

from inbox.connectors import ParseError, get_connector
from inbox.extensions import db
from inbox.models import ChannelAccount, EventIssue, EventState, InboundEvent, User
from inbox.queue import (
    after_commit,
    enqueue_after_commit,
    enqueue_committed,
    get_queue,
    get_redis,
    retry_policy,
    run_committed,
)
from inbox.services.audit import record_audit
from inbox.services.channels import UNKNOWN_ACCOUNT
from inbox.services.ingest import apply_events

log = logging.getLogger(__name__)

PROCESS_JOB = "inbox.jobs.process_inbound_event"
DRAIN_JOB = "inbox.jobs.drain_inbound_events"
# After this many failed attempts an event stops being retried and waits for a replay.
MAX_ATTEMPTS = 5
# Deliveries replayed for an account per request (`replay_waiting`).
REPLAY_BATCH = 500
# Headers worth keeping with the raw body (for support and re-verification); nothing else.
KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-hub-signature-256",
    "x-twitter-webhooks-signature",
)


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}


# The delivery's row goes in on a connection of its own, committed at once, not through the
# ORM session: this runs before the platform gets its answer, nothing else in the request
# touches the database, and the session's bookkeeping was a third of the request's CPU.
_INSERT_EVENT = insert(InboundEvent.__table__).returning(InboundEvent.id)


def _insert_event(values: dict) -> int:
    """Insert and commit one event row; its id."""
    with db.engine.begin() as conn:
        return conn.execute(_INSERT_EVENT, values).scalar_one()


def record_inbound_event(
    platform: str, body: bytes, headers: Mapping[str, str], *, now: datetime
) -> int:
    """Store a verified delivery as received (committed when this returns), have it
    processed, and return its id."""
    event_id = _insert_event(
        {"platform": platform, "body": body, "headers": _kept(headers), "received_at": now}
    )
    if _drains():
        run_committed(_queue_drain)
    else:
        enqueue_committed(
            PROCESS_JOB, event_id, queue="ingest", retry=retry_policy(RETRY_INTERVALS)
        )
    return event_id


def _drains() -> bool:
    """On PostgreSQL, pending deliveries are processed by drain jobs, many per transaction:
    they share their statements (a single-message delivery costs about as much as a batch of
    them) and a job costs RQ about as much as processing a small delivery. SQLite locks no
    rows, so two drains would take the same events: there each delivery has its own job."""
    return db.engine.dialect.name == "postgresql"


# Set while a drain job is queued and not started yet: a delivery arriving then has nothing
# to enqueue. It expires, so a wake-up lost with Redis costs seconds (and the stale-event
# sweep catches up anyway).
WAKE_KEY = "inbox:ingest:drain-queued"
WAKE_SECONDS = 10


def wake_drain() -> None:
    """After commit, make sure a drain job is queued."""
    after_commit(db.session, _queue_drain)


def _queue_drain() -> None:
    # One Redis command when a drain is queued already.
    if get_redis().set(WAKE_KEY, 1, nx=True, ex=WAKE_SECONDS):
        get_queue("ingest").enqueue(DRAIN_JOB)


def drain_started() -> None:
    """A drain job is starting: a delivery stored from now on wakes another (the job's own
    reads see every delivery committed before this)."""
    get_redis().delete(WAKE_KEY)


def claim_pending(limit: int) -> list[InboundEvent]:
    """Up to `limit` pending events, oldest first, that no other worker holds, locked for this
    transaction. An event that failed before is left to its own job (`process_inbound_event`,
    which retries it with backoff), so a broken delivery cannot keep failing batches."""
    return list(
        db.session.scalars(
            select(InboundEvent)
            .where(InboundEvent.state == EventState.PENDING, InboundEvent.attempts == 0)
            .order_by(InboundEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def claim_event(event_id: int) -> InboundEvent | None:
    """The event, locked for this transaction, if it is pending and no other worker has it."""
    return db.session.scalar(
        select(InboundEvent)
        .where(InboundEvent.id == event_id, InboundEvent.state == EventState.PENDING)
        .with_for_update(skip_locked=True)
    )


# Seconds between a failed processing attempt and the next. The backoff covers a concurrent
# worker creating the same contact or thread (unique violation, fine on retry) and short
# database hiccups.
RETRY_INTERVALS = [1, 5, 15, 60]


def enqueue_processing(event_id: int) -> None:
    enqueue_after_commit(
        db.session, PROCESS_JOB, event_id, queue="ingest", retry=retry_policy(RETRY_INTERVALS)
    )


def retry_processing(event_id: int) -> None:
    """After commit, have an event whose first attempt failed in a drain tried again by its
    own job, on the same backoff as an event's job that failed."""

    def schedule() -> None:
        get_queue("ingest").enqueue_in(
            timedelta(seconds=RETRY_INTERVALS[0]),
            PROCESS_JOB,
            event_id,
            retry=retry_policy(RETRY_INTERVALS[1:]),
        )

    after_commit(db.session, schedule)


def record_malformed_event(
    platform: str, body: bytes, headers: Mapping[str, str], error: str, *, now: datetime
) -> int:
    """Keep a correctly signed but unreadable delivery as a failed event admins can inspect
    (committed when this returns); its id."""
    return _insert_event(
        {
            "platform": platform,
            "body": body,
            "headers": _kept(headers),
            "received_at": now,
            "state": EventState.FAILED,
            "error": error,
            "processed_at": now,
        }
    )


def process_event(event: InboundEvent, *, now: datetime) -> None:
    """Parse a pending event and apply everything in it, in one transaction with the caller."""
    process_events([event], now=now)


def process_events(events: Sequence[InboundEvent], *, now: datetime) -> None:
    """Parse pending events and apply everything in them, in order, in one transaction with
    the caller (their messages are stored together: `ingest.apply_events`).

    Parts that cannot be applied (unknown account, unsupported type …) become EventIssues of
    their event, which is still processed. A payload that cannot be parsed marks its event
    failed. Other errors propagate so the job is retried; see `record_attempt_failure`.
    """
    owners: list[InboundEvent] = []
    items = []
    for event in events:
        if event.state is not EventState.PENDING:
            continue  # processed already (a redelivered job, or the sweep and the original)
        try:
            parsed = get_connector(event.platform).parse(json.loads(event.body))
        except (ValueError, ParseError) as exc:  # JSONDecodeError is a ValueError
            event.state = EventState.FAILED
            event.error = f"cannot parse: {exc}"
            event.processed_at = now
            continue
        owners.extend([event] * len(parsed))
        items.extend(parsed)
        event.state = EventState.PROCESSED
        event.processed_at = now
        event.error = None
    for index, issue in apply_events(items, now=now):
        item = items[index]
        db.session.add(
            EventIssue(
                event=owners[index],
                platform=item.platform,
                account_external_id=item.account_id,
                kind=issue.kind[:32],  # platform-chosen type names can be long
                reason=issue.reason,
                created_at=now,
            )
        )
    if owners:
        _mark_accounts_seen(
            {(i.platform, i.account_id) for i in items if i.account_id is not None},
            max(event.received_at for event in owners),
        )


# An account's "last event" is kept to the minute (the admin page shows minutes): written on
# every event, the one row would make every worker's transaction wait for its lock.
SEEN_PRECISION = timedelta(minutes=1)


def _mark_accounts_seen(accounts: set[tuple[str, str]], at: datetime) -> None:
    for platform, account_id in accounts:
        db.session.execute(
            update(ChannelAccount)
            .where(
                ChannelAccount.platform == platform,
                ChannelAccount.external_account_id == account_id,
                or_(
                    ChannelAccount.last_event_at.is_(None),
                    ChannelAccount.last_event_at <= at - SEEN_PRECISION,
                ),
            )
            .values(last_event_at=at)
        )


def record_attempt_failure(event: InboundEvent, error: BaseException) -> bool:
    """Count a failed processing attempt; return True if it should be retried."""
    event.attempts += 1
    event.error = f"{type(error).__name__}: {error}"[:2000]
    if event.attempts >= MAX_ATTEMPTS:
        event.state = EventState.FAILED
        return False
    return True


def requeue_stale_events(*, now: datetime, older_than: timedelta, limit: int = 1000) -> int:
    """Enqueue pending events that no job picked up (Redis was down, a worker died …).

    Each event is re-enqueued at most once per `older_than`; running it twice is harmless since
    processing skips events that are no longer pending.
    """
    cutoff = now - older_than
    stale = db.session.scalars(
        select(InboundEvent)
        .where(
            InboundEvent.state == EventState.PENDING,
            InboundEvent.received_at < cutoff,
            or_(InboundEvent.requeued_at.is_(None), InboundEvent.requeued_at < cutoff),
        )
        .order_by(InboundEvent.id)
        .limit(limit)
    ).all()
    for event in stale:
        event.requeued_at = now
        enqueue_processing(event.id)
    return len(stale)


def replay(event: InboundEvent, *, actor: User | None) -> None:
    """Process a stored delivery again once the caller commits (a stored message is never
    stored twice); audited."""
    reset_for_replay(event)
    enqueue_processing(event.id)
    record_audit("event.replay", event, actor=actor)


def _waiting_for(account: ChannelAccount):
    """The deliveries with a part that named `account` when it was not connected or paused."""
    return InboundEvent.id.in_(
        select(EventIssue.event_id).where(
            EventIssue.kind == UNKNOWN_ACCOUNT,
            EventIssue.platform == str(account.platform),
            EventIssue.account_external_id == account.external_account_id,
        )
    )


def waiting_counts() -> dict[tuple[str, str], int]:
    """(platform, account id) → how many stored deliveries named that account while it was not
    connected or paused, and so made no message for it (`replay_waiting` turns them into
    messages once it is connected)."""
    rows = db.session.execute(
        select(
            EventIssue.platform,
            EventIssue.account_external_id,
            func.count(func.distinct(EventIssue.event_id)),
        )
        .where(EventIssue.kind == UNKNOWN_ACCOUNT, EventIssue.account_external_id.is_not(None))
        .group_by(EventIssue.platform, EventIssue.account_external_id)
    ).all()
    return {(platform, account_id): n for platform, account_id, n in rows}


def replay_waiting(
    account: ChannelAccount, *, actor: User | None, limit: int = REPLAY_BATCH
) -> tuple[int, int]:
    """Replay (`replay`) up to `limit` of the deliveries waiting for `account`, oldest first;
    return how many, and how many are still waiting. A batch keeps one request short for an
    account that received for weeks before it was connected. Replaying a delivery forgets all
    its issues, those of other accounts too, until the worker has processed it again."""
    waiting = _waiting_for(account)
    events = db.session.scalars(
        select(InboundEvent)
        .where(waiting)
        .options(defer(InboundEvent.body), selectinload(InboundEvent.issues))
        .order_by(InboundEvent.id)
        .limit(limit)
    ).all()
    for event in events:
        replay(event, actor=actor)
    # Counted after: the replayed ones have lost their issues (flushed first), so no longer wait.
    left = db.session.scalar(select(func.count()).select_from(InboundEvent).where(waiting))
    return len(events), left


def reset_for_replay(event: InboundEvent) -> None:
    """Make a failed (or any) event pending again, forgetting its earlier issues."""
    event.state = EventState.PENDING
    event.attempts = 0
    event.error = None
    event.processed_at = None
    for issue in list(event.issues):
        db.session.delete(issue)
