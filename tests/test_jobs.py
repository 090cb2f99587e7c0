"""Background work on a real Redis with a real `worker.py`: enqueue-after-commit, the periodic
heartbeat, and /healthz."""

from __future__ import annotations

import time

import pytest
from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout

from inbox.extensions import db
from inbox.models import AuditEvent
from inbox.queue import enqueue_after_commit, get_queue, get_redis
from inbox.services.heartbeat import HEARTBEAT_KEY
from tests.conftest import wait_for

MARKER = "tests.support.jobs.write_marker"


def markers() -> list[str]:
    db.session.expire_all()
    rows = db.session.query(AuditEvent).filter_by(action="test.marker").order_by(AuditEvent.id)
    return [row.after["label"] for row in rows]


def test_job_of_a_rolled_back_transaction_never_runs_and_a_committed_one_does(app, worker_process):
    enqueue_after_commit(db.session, MARKER, "rolled-back")
    db.session.rollback()
    enqueue_after_commit(db.session, MARKER, "committed")
    db.session.commit()
    # Same queue, FIFO: had the rolled-back job been sent, it would have run first.
    wait_for(lambda: "committed" in markers(), timeout=30, what="the committed job")
    assert markers() == ["committed"]


def test_job_is_not_sent_before_the_commit(app, redis_url):
    queue = Queue("default", connection=Redis.from_url(redis_url))
    enqueue_after_commit(db.session, MARKER, "held")
    assert queue.count == 0
    db.session.commit()
    assert queue.count == 1
    assert queue.jobs[0].args == ("held",)


def test_job_of_a_session_closed_without_commit_is_dropped(app, redis_url):
    enqueue_after_commit(db.session, MARKER, "abandoned")
    db.session.close()
    db.session.commit()  # a later, unrelated commit must not send it
    assert Queue("default", connection=Redis.from_url(redis_url)).count == 0


def test_unknown_queue_name_is_refused(app):
    import pytest

    with pytest.raises(ValueError, match="unknown queue"):
        get_queue("emails")


def test_healthz_is_200_with_database_redis_and_a_beating_worker(app, client, worker_process):
    def healthy():
        response = client.get("/healthz")
        return response if response.status_code == 200 else None

    response = wait_for(healthy, timeout=30, what="/healthz 200")
    assert response.json["checks"]["worker"]["ok"] is True
    assert response.json["checks"]["database"] == {"ok": True}
    assert response.json["checks"]["redis"] == {"ok": True}


def test_healthz_is_503_without_a_worker(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["worker"]["ok"] is False
    assert response.json["checks"]["redis"]["ok"] is True


def test_healthz_is_503_with_a_stale_heartbeat(app, client, redis_url):
    Redis.from_url(redis_url).set(HEARTBEAT_KEY, 1_000_000)  # 1970
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["worker"]["age_seconds"] > 3


def test_healthz_is_503_when_redis_is_away(make_app, database_url):
    from tests.conftest import free_port

    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"]["ok"] is False
    assert response.json["checks"]["database"]["ok"] is True


def test_periodic_jobs_are_enqueued_once_per_interval_across_workers(app, redis_url):
    from inbox.queue import PeriodicJob, enqueue_due_periodic

    jobs = [PeriodicJob("probe", MARKER, every_seconds=60)]
    first = enqueue_due_periodic(app, jobs)
    second = enqueue_due_periodic(app, jobs)  # another worker, same moment
    assert first == ["probe"]
    assert second == []
    assert Queue("default", connection=Redis.from_url(redis_url)).count == 1


def test_worker_waits_for_jobs_longer_than_the_default_socket_timeout(app):
    # The app's client already holds a pooled connection (with redis-py's 5 s socket
    # timeout) before the worker starts, as in worker.py where the periodic thread runs first.
    from worker import build_worker

    get_redis(app).ping()
    worker = build_worker(app)
    started = time.monotonic()
    with pytest.raises(DequeueTimeout):  # the wait's own end, not the socket's
        Queue.dequeue_any(worker.queues, timeout=6, connection=worker.connection)
    assert time.monotonic() - started >= 6
