"""Redis and RQ plumbing: the connection, purpose-named queues, and enqueue-after-commit.

A job enqueued during a database transaction is held on the session and sent to Redis only
after that transaction commits; if it rolls back (or ends without a commit) the job is
dropped. Workers therefore never see ids of rows that do not exist.
Imports: extensions, rq, redis, flask.current_app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

log = logging.getLogger(__name__)

_PENDING_KEY = "inbox.pending_jobs"


@dataclass(frozen=True)
class PendingJob:
    func_path: str
    args: tuple[Any, ...]
    queue: str
    options: dict[str, Any] = field(default_factory=dict)


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
    return Queue(name, connection=get_redis(app), is_async=app.config["INBOX_RQ_ASYNC"])


def enqueue_after_commit(
    session: Session | scoped_session,
    func_path: str,
    *args: Any,
    queue: str = "default",
    **options: Any,
) -> None:
    """Hold a job until `session` commits. Jobs carry ids/JSON only and are referenced by dotted
    path, so services never import the jobs module."""
    # Tie the job to a transaction even if nothing was written yet, so that a rollback or a
    # close without commit ends that transaction and drops the job.
    if isinstance(session, scoped_session):
        session = session()
    if not session.in_transaction():
        session.begin()
    session.info.setdefault(_PENDING_KEY, []).append(PendingJob(func_path, args, queue, options))


def _send_pending(session: Session) -> None:
    pending: list[PendingJob] = session.info.pop(_PENDING_KEY, [])
    for job in pending:
        get_queue(job.queue).enqueue(job.func_path, *job.args, **job.options)


def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    # after_commit has already sent (and removed) committed jobs; anything still held when the
    # outermost transaction ends belongs to a rollback or a session closed without commit.
    if transaction.parent is None and session.info.pop(_PENDING_KEY, None):
        log.info("dropped jobs of a transaction that did not commit")


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
