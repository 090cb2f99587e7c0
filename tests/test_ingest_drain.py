"""Webhook deliveries are processed by drain jobs on PostgreSQL: a backlog costs a job per
batch of deliveries, not a job per delivery, and a broken delivery fails alone. On SQLite
every delivery keeps its own job."""

from __future__ import annotations

import pytest
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from inbox import jobs
from inbox.extensions import db
from inbox.models import EventState, InboundEvent, Message
from inbox.queue import get_queue
from inbox.services import events
from tests.conftest import _using_postgres, run_jobs, signed_post
from tests.test_ingest_faults import count, dm_bodies

ON_POSTGRESQL = _using_postgres()
postgresql_only = pytest.mark.skipif(
    not ON_POSTGRESQL,
    reason="drain jobs run on PostgreSQL only (SQLite locks no rows); `make test` runs there too",
)


def post_all(app, bodies) -> None:
    client = app.test_client()
    for body in bodies:
        assert signed_post(client, "x_dm.json", body=body).status_code == 200
    db.session.commit()


def job_names(registry) -> list[str]:
    return sorted(registry.get_queue().fetch_job(i).func_name for i in registry.get_job_ids())


@postgresql_only
def test_a_backlog_of_deliveries_is_one_queued_job_and_drained_a_batch_per_transaction(
    webhook_app, brand_accounts
):
    post_all(webhook_app, dm_bodies(45))
    queue = get_queue("ingest", webhook_app)
    assert queue.count == 1  # one wake-up, however many deliveries arrived meanwhile
    run_jobs(webhook_app)
    assert count(InboundEvent, InboundEvent.state == EventState.PROCESSED) == 45
    assert len(set(db.session.scalars(select(Message.external_id)))) == count(Message) == 45
    # 20 per transaction: the first full batch woke a second drain (for another worker), which
    # found the rest done. No job per delivery.
    assert job_names(FinishedJobRegistry(queue=queue)) == [events.DRAIN_JOB] * 2


@postgresql_only
def test_a_broken_delivery_fails_alone_and_the_rest_of_its_batch_lands(
    webhook_app, brand_accounts, monkeypatch
):
    real = events.apply_events

    def breaks_on_boom(items, *, now):
        if any("BOOM" in getattr(item, "text", "") for item in items):
            raise RuntimeError("cannot process BOOM")
        return real(items, now=now)

    bodies = dm_bodies(5)
    bodies[2] = bodies[2].replace(b"message 2", b"BOOM")
    post_all(webhook_app, bodies)
    monkeypatch.setattr(events, "apply_events", breaks_on_boom)
    run_jobs(webhook_app)

    assert count(Message) == 4
    broken = db.session.scalar(select(InboundEvent).where(InboundEvent.body.contains(b"BOOM")))
    assert (broken.state, broken.attempts) == (EventState.PENDING, 1)
    assert "cannot process BOOM" in broken.error
    # Its own job retries it with the usual backoff; the others were counted as nothing.
    assert count(InboundEvent, InboundEvent.attempts > 0) == 1
    queue = get_queue("ingest", webhook_app)
    [retry_id] = ScheduledJobRegistry(queue=queue).get_job_ids()
    retry = queue.fetch_job(retry_id)
    assert (retry.func_name, retry.args) == (events.PROCESS_JOB, (broken.id,))

    monkeypatch.setattr(events, "apply_events", real)  # fixed: the retry lands it
    with webhook_app.app_context():
        jobs.process_inbound_event(broken.id)
    assert count(Message) == 5
    assert count(InboundEvent, InboundEvent.state == EventState.PROCESSED) == 5


@postgresql_only
def test_a_drain_that_cannot_claim_fails_its_job_and_leaves_the_deliveries_pending(
    webhook_app, brand_accounts, monkeypatch
):
    post_all(webhook_app, dm_bodies(3))

    def database_gone(limit):
        raise OperationalError("SELECT … FOR UPDATE SKIP LOCKED", {}, Exception("server closed"))

    monkeypatch.setattr(jobs, "claim_pending", database_gone)
    with webhook_app.app_context(), pytest.raises(OperationalError):
        jobs.drain_inbound_events()
    # Nothing was taken or counted: the next drain (or the stale-event sweep) has them all.
    assert count(InboundEvent, InboundEvent.state == EventState.PENDING) == 3
    assert count(InboundEvent, InboundEvent.attempts > 0) == 0
    monkeypatch.undo()
    with webhook_app.app_context():
        assert jobs.drain_inbound_events() == 3
    assert count(Message) == 3


def test_deliveries_wake_one_drain_on_postgresql_and_get_a_job_each_on_sqlite(
    webhook_app, brand_accounts
):
    post_all(webhook_app, dm_bodies(3))
    queue = get_queue("ingest", webhook_app)
    expected = [events.DRAIN_JOB] if ON_POSTGRESQL else [events.PROCESS_JOB] * 3
    assert [job.func_name for job in queue.get_jobs()] == expected
    run_jobs(webhook_app)
    assert db.session.scalar(select(func.count()).select_from(Message)) == 3
