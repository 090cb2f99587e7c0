"""The helpdesk hand-off: a conversation routed to a team with a webhook becomes a signed case
POSTed to a local receiver that checks the signature as a real one would; retries on 5xx and
network errors, permanent failure on other 4xx, the delivery log, replay, the team settings
(secret encrypted, never shown or logged), the conversation page, permissions, and the real
worker process."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from redis import Redis
from sqlalchemy import select

from inbox import jobs
from inbox.encryption import decrypt
from inbox.extensions import db
from inbox.models import (
    AuditEvent,
    HelpdeskDelivery,
    HelpdeskDeliveryState,
    HelpdeskEndpoint,
    Role,
    RoutingRule,
    SlaPolicy,
    Team,
)
from inbox.services import helpdesk, routing
from inbox.services.accounts import get_or_create_team
from inbox.services.conversations import route_to_support
from inbox.timeutil import utcnow
from tests import factories
from tests.conftest import free_port, login, run_jobs, wait_for
from tests.support.helpdesk_receiver import HelpdeskReceiver

SECRET = "whsec-7f3a9c2e41b8d605"
SETTINGS = {"INBOX_HELPDESK_RETRY_INTERVALS": [0, 0, 0], "INBOX_PUBLIC_URL": "https://desk.test"}


@pytest.fixture
def receiver():
    server = HelpdeskReceiver(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def app(make_app):
    app = make_app(**SETTINGS)
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def support(app, receiver, make_user):
    """The "Tech support" team, handing off to the receiver."""
    team = get_or_create_team("Tech support")
    db.session.flush()
    helpdesk.configure_endpoint(
        team, url=receiver.url, secret=SECRET, actor=make_user(Role.ADMIN), now=utcnow()
    )
    db.session.commit()
    return team


@pytest.fixture
def agent(make_user):
    return make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")


def routed(agent, team, *, note="Crash on Android 15 after update", **conversation):
    c = factories.conversation(team="Social care", **conversation)
    route_to_support(c, team, note=note, actor=agent, now=utcnow())
    db.session.commit()
    return c


def deliveries() -> list[HelpdeskDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(HelpdeskDelivery).order_by(HelpdeskDelivery.id)))


def test_routing_to_a_team_with_a_webhook_posts_a_signed_case(
    app, client, agent, support, receiver
):
    db.session.add(SlaPolicy(name="Std", first_response_seconds=3600, business_hours=False))
    db.session.commit()
    c = factories.conversation(team="Social care", name="Rosa Díaz", handle="rosa")
    factories.message(c, "The app crashes when I open settings")
    db.session.commit()
    login(client, agent)
    res = client.post(
        f"/inbox/c/{c.id}/route",
        data={"team": support.id, "note": "Crash on Android 15"},
        headers={"Accept": "application/json"},
    )
    assert res.status_code == 200
    run_jobs(app)

    [request] = receiver.received
    assert request.signature_valid
    [delivery] = deliveries()
    assert request.headers["X-Inbox-Event"] == "case.created"
    assert request.headers["X-Inbox-Delivery"] == str(delivery.id)
    assert re.fullmatch(r"\d{10}", request.headers["X-Inbox-Timestamp"])
    assert request.headers["Content-Type"] == "application/json"
    case = request.case
    assert case["delivery_id"] == delivery.id
    assert case["conversation"]["id"] == c.id
    assert case["conversation"]["url"] == f"https://desk.test/inbox/c/{c.id}"
    assert case["conversation"]["platform"] == "x"
    assert case["conversation"]["kind"] == "dm"
    assert case["conversation"]["priority"] == "normal"
    assert case["conversation"]["sla_due_at"] is not None
    assert case["contact"]["name"] == "Rosa Díaz"
    assert [h["handle"] for h in case["contact"]["handles"]] == ["rosa"]
    assert case["handoff_note"] == "Crash on Android 15"
    assert case["routed_by"] == {"id": agent.id, "name": "Alice Agent"}
    assert [m["text"] for m in case["last_customer_messages"]] == [
        "Hello, I need help",
        "The app crashes when I open settings",
    ]
    assert delivery.state is HelpdeskDeliveryState.DELIVERED
    [attempt] = delivery.attempts
    assert (attempt.http_status, attempt.url, attempt.error) == (200, receiver.url, None)
    assert attempt.response_body == '{"case": "HD-1"}'


def test_a_receiver_with_another_secret_rejects_the_case(app, agent, support, receiver):
    receiver.secret = "someone-elses-secret-000"
    routed(agent, support)
    run_jobs(app)
    [request] = receiver.received
    assert not request.signature_valid
    [delivery] = deliveries()
    assert delivery.state is HelpdeskDeliveryState.FAILED  # 401 is not worth retrying


def test_a_500_is_retried_until_it_succeeds_and_the_log_shows_every_attempt(
    app, agent, support, receiver
):
    receiver.answer(500, "upstream down", times=2)
    routed(agent, support)
    run_jobs(app)
    assert len(receiver.received) == 3
    assert all(r.signature_valid for r in receiver.received)
    assert len({r.body for r in receiver.received}) == 1  # the same case every time
    [delivery] = deliveries()
    assert delivery.state is HelpdeskDeliveryState.DELIVERED
    assert [a.http_status for a in delivery.attempts] == [500, 500, 200]
    assert delivery.attempts[0].response_body == "upstream down"
    assert delivery.attempts[0].error == "The helpdesk answered HTTP 500."


def test_a_429_is_retried_too(app, agent, support, receiver):
    receiver.answer(429, "slow down")
    routed(agent, support)
    run_jobs(app)
    [delivery] = deliveries()
    assert [a.http_status for a in delivery.attempts] == [429, 200]


def test_a_400_is_a_permanent_failure_shown_in_the_log(
    app, client, make_user, agent, support, receiver
):
    receiver.answer(400, '{"error": "missing field customer_email"}')
    c = routed(agent, support)
    run_jobs(app)
    assert len(receiver.received) == 1
    [delivery] = deliveries()
    assert delivery.state is HelpdeskDeliveryState.FAILED
    assert delivery.last_error == "The helpdesk answered HTTP 400."
    [attempt] = delivery.attempts
    assert attempt.http_status == 400
    login(client, make_user(Role.ADMIN))
    page = client.get("/admin/helpdesk").get_data(as_text=True)
    assert f'data-delivery="{delivery.id}"' in page
    assert "HTTP 400" in page and "missing field customer_email" in page
    assert f'href="/inbox/c/{c.id}"' in page


def test_repeated_errors_fail_after_the_last_retry(app, agent, support, receiver):
    receiver.answer(503, times=10)
    routed(agent, support)
    run_jobs(app)
    [delivery] = deliveries()
    assert len(delivery.attempts) == 4  # the first try and three retries
    assert delivery.state is HelpdeskDeliveryState.FAILED
    assert delivery.last_error == "Gave up after repeated errors: The helpdesk answered HTTP 503."


def test_an_unreachable_helpdesk_is_retried_and_logged_without_a_status(
    app, agent, support, make_user
):
    endpoint = db.session.get(HelpdeskEndpoint, support.id)
    endpoint.url = f"http://127.0.0.1:{free_port()}/nobody-home"
    db.session.commit()
    routed(agent, support)
    run_jobs(app)
    [delivery] = deliveries()
    assert len(delivery.attempts) == 4
    assert all(a.http_status is None for a in delivery.attempts)
    assert all("could not connect" in a.error for a in delivery.attempts)
    assert delivery.state is HelpdeskDeliveryState.FAILED


def test_admin_replay_sends_the_same_case_again_as_a_new_attempt(
    app, client, make_user, agent, support, receiver
):
    receiver.answer(400, "not yet configured")
    routed(agent, support)
    run_jobs(app)
    [delivery] = deliveries()
    admin = make_user(Role.ADMIN)
    login(client, admin)
    res = client.post(f"/admin/helpdesk/{delivery.id}/replay")
    assert res.status_code == 302
    run_jobs(app)
    first, second = receiver.received
    assert second.body == first.body and second.signature_valid
    assert second.headers["X-Inbox-Delivery"] == str(delivery.id)
    [delivery] = deliveries()
    assert delivery.state is HelpdeskDeliveryState.DELIVERED
    assert [a.http_status for a in delivery.attempts] == [400, 200]
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "helpdesk.replay"))
    assert audit.actor_id == admin.id and audit.target_id == delivery.id


def test_a_delivery_still_queued_is_not_replayed_twice(app, client, make_user, agent, support):
    routed(agent, support)  # not run yet: pending
    [delivery] = deliveries()
    login(client, make_user(Role.ADMIN))
    client.post(f"/admin/helpdesk/{delivery.id}/replay")
    run_jobs(app)
    assert len(deliveries()[0].attempts) == 1


def test_agents_and_supervisors_cannot_see_or_replay_the_delivery_log(
    app, client, make_user, agent, support, receiver
):
    receiver.answer(400)
    routed(agent, support)
    run_jobs(app)
    [delivery] = deliveries()
    for role in (Role.AGENT, Role.SUPERVISOR):
        login(client, make_user(role))
        with app.app_context():  # each role its own flask.g (current_user is cached there)
            assert client.get("/admin/helpdesk").status_code == 403
            assert client.post(f"/admin/helpdesk/{delivery.id}/replay").status_code == 403
    run_jobs(app)
    assert len(receiver.received) == 1


def test_replay_refuses_a_forged_post(make_app, make_user, agent, support, receiver):
    receiver.answer(400)
    routed(agent, support)
    app = make_app(WTF_CSRF_ENABLED=True, **SETTINGS)
    run_jobs(app)
    [delivery] = deliveries()
    client = app.test_client()
    login(client, make_user(Role.ADMIN))
    assert client.post(f"/admin/helpdesk/{delivery.id}/replay").status_code == 400
    assert deliveries()[0].state is HelpdeskDeliveryState.FAILED


def test_a_delivery_whose_job_was_lost_is_requeued_by_the_sweep(app, agent, support, receiver):
    routed(agent, support)
    Redis.from_url(app.config["REDIS_URL"]).flushdb()  # the job is gone, as if Redis had died
    assert jobs.requeue_helpdesk_deliveries() == 0  # queued just now: not stale yet
    [delivery] = deliveries()  # the job ended the session its objects belonged to
    delivery.queued_at = utcnow() - jobs.HELPDESK_REQUEUE_AFTER - timedelta(seconds=1)
    db.session.commit()
    assert jobs.requeue_helpdesk_deliveries() == 1
    run_jobs(app)
    assert deliveries()[0].state is HelpdeskDeliveryState.DELIVERED
    assert len(receiver.received) == 1
    assert jobs.requeue_helpdesk_deliveries() == 0


def test_a_team_without_a_webhook_hands_nothing_off(app, agent, receiver):
    routed(agent, get_or_create_team("Billing"))
    run_jobs(app)
    assert deliveries() == [] and receiver.received == []


def test_a_routing_rule_setting_the_team_hands_off_too(app, support, receiver):
    rule = routing.save_rule(
        None,
        name="Crashes to support",
        active=True,
        stop=False,
        conditions=[{"type": "text_contains", "values": ["crash"]}],
        actions_=[{"type": "set_team", "team_id": support.id}],
        actor=None,
        now=utcnow(),
    )
    db.session.commit()
    assert db.session.get(RoutingRule, rule.id)
    c = factories.conversation(text="app crash on login")
    routing.apply_rules(c, c.messages[-1], now=utcnow())
    db.session.commit()
    run_jobs(app)
    [request] = receiver.received
    assert request.case["handoff_note"] == "Routed by a routing rule."
    assert request.case["routed_by"] is None
    assert request.case["conversation"]["id"] == c.id


def test_the_conversation_page_shows_the_case_status(
    app, client, make_user, agent, support, receiver
):
    receiver.answer(500, times=10)
    c = routed(agent, support)
    run_jobs(app)
    login(client, make_user(Role.SUPERVISOR))
    page = client.get(f"/inbox/c/{c.id}", headers={"X-Fragment": "1"}).get_data(as_text=True)
    assert "Helpdesk case" in page
    assert "data-delivery-state>failed<" in page
    assert "4 attempts" in page
    assert "Gave up after repeated errors" in page


def test_agents_see_the_case_only_on_conversations_of_their_teams(
    app, client, make_user, agent, support
):
    c = routed(agent, support)
    login(client, agent)  # Social care only: the conversation went to Tech support
    assert client.get(f"/inbox/c/{c.id}").status_code == 404
    member = make_user(Role.AGENT, team="Tech support")
    login(client, member)
    with app.app_context():  # a fresh flask.g: the first agent is cached in the outer one
        page = client.get(f"/inbox/c/{c.id}", headers={"X-Fragment": "1"}).get_data(as_text=True)
    assert "data-delivery-state>pending<" in page


# --- team settings ------------------------------------------------------------------------


def post_settings(client, team, *, url: str, secret: str, **kwargs):
    """Submit `team`'s helpdesk row of the routing admin page (its fields carry a prefix)."""
    prefix = f"helpdesk{team.id}-"
    return client.post(
        f"/admin/routing/teams/{team.id}/helpdesk",
        data={prefix + "url": url, prefix + "secret": secret},
        **kwargs,
    )


def test_admin_sets_the_webhook_with_the_secret_encrypted_and_never_shown(
    app, client, make_user, caplog
):
    team = get_or_create_team("Tech support")
    db.session.commit()
    login(client, make_user(Role.ADMIN))
    caplog.set_level(logging.DEBUG)
    res = post_settings(client, team, url="https://hd.example/in", secret=SECRET)
    assert res.status_code == 302
    endpoint = db.session.get(HelpdeskEndpoint, team.id)
    assert endpoint.url == "https://hd.example/in"
    assert SECRET.encode() not in endpoint.secret_encrypted
    assert decrypt(app.config, endpoint.secret_encrypted) == SECRET
    page = client.get("/admin/routing/").get_data(as_text=True)
    assert "https://hd.example/in" in page and SECRET not in page
    assert "•••••••• (set)" in page
    # A blank secret keeps the stored one; a new URL is saved.
    post_settings(client, team, url="https://hd.example/v2", secret="")
    db.session.expire_all()
    endpoint = db.session.get(HelpdeskEndpoint, team.id)
    assert endpoint.url == "https://hd.example/v2"
    assert decrypt(app.config, endpoint.secret_encrypted) == SECRET
    audits = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "team.helpdesk"))
    assert all(SECRET not in str(a.before) + str(a.after) for a in audits)
    assert SECRET not in caplog.text
    # Clearing the URL stops the hand-off.
    post_settings(client, team, url="", secret="")
    db.session.expire_all()
    assert db.session.get(HelpdeskEndpoint, team.id) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "ftp://hd.example/in", "secret": SECRET}, "http"),
        ({"url": "https://hd.example/in", "secret": "short"}, "at least 16"),
        ({"url": "https://hd.example/in", "secret": ""}, "Enter a signing secret"),
    ],
)
def test_team_webhook_settings_are_validated(app, client, make_user, fields, message):
    team = get_or_create_team("Tech support")
    db.session.commit()
    login(client, make_user(Role.ADMIN))
    res = post_settings(client, team, **fields, follow_redirects=True)
    assert message in res.get_data(as_text=True)
    assert db.session.get(HelpdeskEndpoint, team.id) is None


def test_only_admins_change_the_team_webhook(app, client, make_user):
    team = get_or_create_team("Tech support")
    db.session.commit()
    login(client, make_user(Role.SUPERVISOR))
    res = post_settings(client, team, url="https://evil.example/in", secret=SECRET)
    assert res.status_code == 403
    assert db.session.get(HelpdeskEndpoint, team.id) is None


def test_the_secret_is_never_logged_while_delivering(app, agent, support, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.answer(500)
    routed(agent, support)
    run_jobs(app)
    assert len(receiver.received) == 2
    assert "helpdesk delivery" in caplog.text
    assert SECRET not in caplog.text


# --- the real worker ----------------------------------------------------------------------


@pytest.fixture
def worker_env():
    return {"INBOX_HELPDESK_RETRY_INTERVALS": "1,1"}


def test_the_worker_delivers_the_case_retrying_a_500(app, agent, support, receiver, worker_process):
    receiver.answer(502, "bad gateway")
    c = routed(agent, support, note="Worker path")

    def delivered():
        [delivery] = deliveries() or [None]
        return delivery if delivery and delivery.state is HelpdeskDeliveryState.DELIVERED else None

    delivery = wait_for(delivered, timeout=40, what="the case to be delivered by the worker")
    assert [a.http_status for a in delivery.attempts] == [502, 200]
    assert all(r.signature_valid for r in receiver.received)
    assert receiver.received[-1].case["conversation"]["id"] == c.id
    assert receiver.received[-1].case["handoff_note"] == "Worker path"


def test_a_team_whose_members_are_all_deactivated_reaches_no_one(app, make_user, receiver):
    """The route form marks teams a conversation would sit in unseen: no one active in it and
    no helpdesk to hand it to."""
    gone = make_user(Role.AGENT, team="Night shift")
    gone.active = False
    make_user(Role.AGENT, team="Day shift")
    get_or_create_team("Empty")
    with_helpdesk = get_or_create_team("Tier 2")
    db.session.flush()
    helpdesk.configure_endpoint(
        with_helpdesk, url=receiver.url, secret=SECRET, actor=make_user(Role.ADMIN), now=utcnow()
    )
    db.session.commit()
    names = {
        t.name for t in db.session.scalars(select(Team)) if t.id in helpdesk.unstaffed_team_ids()
    }
    assert names == {"Night shift", "Empty"}
