"""Nothing a platform delivered is lost and nothing is doubled when Redis, the database or a
worker goes away, and no malformed payload can cause a 500 or a partial write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import EventState, InboundEvent, Message
from inbox.services.events import process_event, requeue_stale_events
from inbox.timeutil import utcnow
from tests.conftest import (
    ROOT,
    WEBHOOK_FIXTURES,
    WEBHOOK_SETTINGS,
    free_port,
    process_env,
    run_jobs,
    signed_post,
    wait_for,
)


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def dm_bodies(n: int) -> list[bytes]:
    """n distinct single-DM X deliveries from one customer."""
    template = json.loads((WEBHOOK_FIXTURES / "x_dm_event.json").read_bytes())
    bodies = []
    for i in range(n):
        event = json.loads(json.dumps(template))
        dm = event["direct_message_events"][0]
        dm["id"] = str(10**18 + i)
        dm["created_timestamp"] = str(1741943525318 + i * 1000)
        dm["message_create"]["message_data"]["text"] = f"message {i}"
        bodies.append(json.dumps(event).encode())
    return bodies


def test_webhook_is_stored_and_answered_while_redis_is_down_then_processed(
    app, make_app, brand_accounts
):
    dead_redis = make_app(**WEBHOOK_SETTINGS, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = dead_redis.test_client()
    for body in dm_bodies(3):
        assert signed_post(client, "x_dm.json", body=body).status_code == 200
    assert count(InboundEvent, InboundEvent.state == EventState.PENDING) == 3
    assert count(Message) == 0
    # Redis is back: the periodic sweep finds the stored events and the worker processes them.
    assert requeue_stale_events(now=utcnow() + timedelta(minutes=5), older_than=timedelta(0)) == 3
    db.session.commit()
    run_jobs(app)
    assert count(Message) == 3
    assert count(InboundEvent, InboundEvent.state == EventState.PROCESSED) == 3


def test_webhook_gets_503_when_the_database_is_down_so_the_platform_retries(app, make_app):
    app = make_app(
        **WEBHOOK_SETTINGS,
        SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/gone",
    )
    response = signed_post(app.test_client(), "x_dm_event.json")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "unavailable"


def test_requeue_skips_events_recently_enqueued_and_processed_ones(app):
    now = utcnow()
    fresh = InboundEvent(platform="x", body=b"{}", received_at=now)
    done = InboundEvent(
        platform="x", body=b"{}", received_at=now - timedelta(hours=1), state=EventState.PROCESSED
    )
    stale = InboundEvent(platform="x", body=b"{}", received_at=now - timedelta(hours=1))
    db.session.add_all([fresh, done, stale])
    db.session.commit()
    assert requeue_stale_events(now=now, older_than=timedelta(minutes=1)) == 1
    db.session.commit()
    # Just re-enqueued: the next sweep leaves it alone.
    assert (
        requeue_stale_events(now=now + timedelta(seconds=5), older_than=timedelta(minutes=1)) == 0
    )


def test_a_failing_event_is_retried_then_marked_failed(webhook_app, brand_accounts, monkeypatch):
    from inbox import jobs
    from inbox.services import events

    signed_post(webhook_app.test_client(), "x_dm_event.json")
    event_id = db.session.scalar(select(InboundEvent.id))
    db.session.commit()

    def broken(items, *, now):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(events, "apply_events", broken)
    for attempt in range(1, events.MAX_ATTEMPTS + 1):
        if attempt < events.MAX_ATTEMPTS:
            with pytest.raises(RuntimeError):
                jobs.process_inbound_event(event_id)
        else:
            jobs.process_inbound_event(event_id)  # the last attempt gives up quietly
        event = db.session.get(InboundEvent, event_id)
        db.session.refresh(event)
        assert event.attempts == attempt
    assert event.state is EventState.FAILED
    assert "database hiccup" in event.error
    assert count(Message) == 0


@pytest.mark.slow
def test_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    webhook_app, brand_accounts, database_url, redis_url, tmp_path
):
    client = webhook_app.test_client()
    bodies = dm_bodies(300)
    for body in bodies:
        assert signed_post(client, "x_dm.json", body=body).status_code == 200
    db.session.commit()
    env = process_env(
        database_url,
        redis_url,
        **{k: str(v) for k, v in WEBHOOK_SETTINGS.items()},
        INBOX_EVENT_REQUEUE_SECONDS="2",
    )

    def start():
        return subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=env,
            stdout=open(tmp_path / "w.log", "a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    first = start()
    try:
        wait_for(lambda: count(Message) >= 20, timeout=60, what="the first worker to get going")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the worker and the job it was running
        first.wait()
    partial = count(Message)
    assert partial < len(bodies), "the worker finished before it could be killed"
    second = start()
    try:
        wait_for(
            lambda: count(InboundEvent, InboundEvent.state == EventState.PENDING) == 0,
            timeout=120,
            what="the second worker to finish the batch",
        )
    finally:
        second.terminate()
        second.wait(timeout=15)
    assert count(Message) == len(bodies)
    assert len(set(db.session.scalars(select(Message.external_id)))) == len(bodies)
    assert count(InboundEvent, InboundEvent.state == EventState.PROCESSED) == len(bodies)


# --- Malformed payloads ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def mutate(value, data):
    """Replace or delete one randomly chosen node of a JSON document."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        if data.draw(st.booleans()):
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        return [*value[:index], mutate(value[index], data), *value[index + 1 :]]
    return data.draw(JSON_VALUES)


FIXTURE_NAMES = sorted(
    p.name
    for p in WEBHOOK_FIXTURES.glob("*.json")
    if p.name not in ("signatures.json", "handshakes.json")
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_malformed_payloads_never_cause_a_500_or_a_partial_write(webhook_app, brand_accounts, data):
    name = data.draw(st.sampled_from(FIXTURE_NAMES))
    payload = json.loads((WEBHOOK_FIXTURES / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        payload = mutate(payload, data)
    body = json.dumps(payload).encode()
    before = count(Message)
    response = signed_post(webhook_app.test_client(), name, body=body)
    assert response.status_code == 200
    event = db.session.scalar(select(InboundEvent).order_by(InboundEvent.id.desc()))
    process_event(event, now=utcnow())
    db.session.flush()
    assert event.state in (EventState.PROCESSED, EventState.FAILED)
    if event.state is EventState.FAILED:
        assert count(Message) == before  # a payload we could not read wrote nothing
    db.session.rollback()
