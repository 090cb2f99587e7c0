"""Redis and RQ plumbing: the connection, purpose-named queues, and work-after-commit.

A job enqueued (or a live update published) during a database transaction is held on the
session and sent to Redis only after that transaction commits; if it rolls back (or ends
without a commit) it is dropped. Workers and browsers never see rows that do not exist.
Imports: extensions, rq, redis, flask.current_app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from redis import Redis
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

log = logging.getLogger(__name__)

_PENDING_KEY = "inbox.after_commit"
_BATCHES_KEY = "inbox.after_commit_batches"


def init_app(app: Flask) -> None:
    # One client per process; redis-py pools connections and is safe across threads.
    app.extensions["redis"] = Redis.from_url(app.config["REDIS_URL"])
    if not event.contains(Session, "after_commit", _send_pending):
        event.listen(Session, "after_commit", _send_pending)
        event.listen(Session, "after_transaction_end", _drop_pending)


def get_redis(app: Flask | None = None) -> Redis:
    return (app or current_app).extensions["redis"]


def get_queue(name: str, app: Flask | None = None) -> Queue:
    app = app or current_app
    if name not in app.config["RQ_QUEUES"]:
        raise ValueError(f"unknown queue {name!r}; configured: {app.config['RQ_QUEUES']}")
    return Queue(name, connection=get_redis(app))


def after_commit(session: Session | scoped_session, callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction of `session` commits; drop it otherwise."""
    if isinstance(session, scoped_session):
        session = session()
    # Tie the callback to a transaction even if nothing was written yet, so that a rollback or
    # a close without commit ends that transaction and drops it.
    if not session.in_transaction():
        session.begin()
    session.info.setdefault(_PENDING_KEY, []).append(callback)


def after_commit_batch(
    session: Session | scoped_session, key: str, send: Callable[[list[Any]], None]
) -> list[Any]:
    """The list of `key`'s items held on the current transaction of `session`: what callers
    append to it goes to `send` in one call once the transaction commits (or is dropped with
    it). For work whose items cost a round trip each unless sent together."""
    if isinstance(session, scoped_session):
        session = session()
    batches = session.info.get(_BATCHES_KEY)
    if batches is None or key not in batches:
        # Registered first: it ties the batch to a transaction (see after_commit).
        after_commit(session, lambda: send(session.info[_BATCHES_KEY].pop(key)))
        batches = session.info.setdefault(_BATCHES_KEY, {})
        batches[key] = []
    return batches[key]


def enqueue_after_commit(
    session: Session | scoped_session,
    func_path: str,
    *args: Any,
    queue: str = "default",
    **options: Any,
) -> None:
    """Send a job to `queue` only after `session` commits. Jobs carry ids/JSON only and are
    referenced by dotted path, so services never import the jobs module."""
    after_commit(session, lambda: _enqueue(get_queue(queue), func_path, args, options))


def enqueue_committed(func_path: str, *args: Any, queue: str = "default", **options: Any) -> None:
    """Send a job now, for data already committed outside the session (a connection of the
    caller's own); like a job sent after the session's commit, a failure is logged, not
    raised."""
    run_committed(lambda: _enqueue(get_queue(queue), func_path, args, options))


def _enqueue(queue: Queue, func_path: str, args: tuple[Any, ...], options: dict[str, Any]) -> None:
    # On a pipeline of our own, RQ's writes for one job (queue set, job hash, push) go to Redis
    # in one round trip instead of two: this runs before a webhook's answer.
    with queue.connection.pipeline() as pipe:
        queue.enqueue(func_path, *args, pipeline=pipe, **options)
        pipe.execute()


def retry_policy(intervals: Sequence[int]) -> Retry:
    """RQ's Retry with one retry per entry of `intervals` (seconds between attempts), the way
    the INBOX_*_RETRY_INTERVALS settings list them."""
    return Retry(max=len(intervals), interval=list(intervals))


def run_committed(callback: Callable[[], None]) -> None:
    """Run work that follows a commit. The data is committed; failing now (e.g. Redis is down)
    must not turn a done action into an error. Work that matters is recoverable from the
    database (stale-event sweep)."""
    try:
        callback()
    except Exception:
        log.exception("after-commit work failed; it will be recovered from the database")


def _send_pending(session: Session) -> None:
    for callback in session.info.pop(_PENDING_KEY, []):
        run_committed(callback)


def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    # after_commit has already sent (and removed) committed jobs; anything still held when the
    # outermost transaction ends belongs to a rollback or a session closed without commit.
    if transaction.parent is None:
        session.info.pop(_BATCHES_KEY, None)
        if session.info.pop(_PENDING_KEY, None):
            log.info("dropped after-commit work of a transaction that did not commit")


@dataclass(frozen=True)
class PeriodicJob:
    """Recurring work, listed as data in jobs.PERIODIC_JOBS and enqueued by the worker."""

    name: str
    func_path: str
    every_seconds: int
    queue: str = "default"


def enqueue_due_periodic(app: Flask, jobs: list[PeriodicJob]) -> list[str]:
    """Enqueue each periodic job whose interval has elapsed; return the names enqueued.

    A Redis key set with NX and an expiry of one interval acts as the lock, so any number of
    worker processes running this loop enqueue each job once per interval between them.
    """
    redis = get_redis(app)
    enqueued = []
    for job in jobs:
        if redis.set(f"inbox:periodic:{job.name}", "1", nx=True, ex=job.every_seconds):
            get_queue(job.queue, app).enqueue(job.func_path, job_timeout=max(job.every_seconds, 60))
            enqueued.append(job.name)
    return enqueued
