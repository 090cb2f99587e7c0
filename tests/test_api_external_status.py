"""POST /api/v1/conversations/<id>/external-status: the helpdesk's status of its case is
validated, stored with the case id, written into the thread (escaped on the page), audited,
published live, and resolves the conversation (stopping the resolution clock) when asked."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from inbox.extensions import db
from inbox.live import listen
from inbox.models import (
    AuditEvent,
    Conversation,
    Direction,
    HelpdeskCase,
    Role,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    Status,
    StopReason,
)
from inbox.services.accounts import create_api_token
from tests import factories
from tests.conftest import login

HOSTILE = '<img src=x onerror="alert(1)"> escalated'


@pytest.fixture
def integration(make_user):
    """The helpdesk's API user: a member of the support team, with a bearer token."""
    user = make_user(Role.AGENT, team="Tech support", name="Helpdesk bot")
    token = create_api_token(user)
    db.session.commit()
    user.headers = {"Authorization": f"Bearer {token}"}
    return user


def post_status(client, conversation_id, body, headers):
    return client.post(
        f"/api/v1/conversations/{conversation_id}/external-status", json=body, headers=headers
    )


def until_silence(stream) -> list[dict]:
    """The events published until the stream has been quiet for its timeout."""
    events = []
    for event in stream:
        if event is None:
            stream.close()
            return events
        events.append(event)
    return events


def fresh(conversation) -> Conversation:
    db.session.expire_all()
    return db.session.get(Conversation, conversation.id)


def test_a_status_update_is_stored_shown_in_the_thread_audited_and_published(
    client, integration, make_user
):
    c = factories.conversation(team="Tech support")
    stream = listen(timeout=0.5)
    assert next(stream) is None  # subscribed
    res = post_status(
        client,
        c.id,
        {"status": "in_progress", "external_id": "HD-4711", "note": HOSTILE},
        integration.headers,
    )
    assert res.status_code == 200
    assert res.json["external_id"] == "HD-4711"
    assert res.json["status"] == "in_progress"
    assert res.json["conversation_status"] == "new"
    case = db.session.get(HelpdeskCase, c.id)
    assert (case.external_id, case.status, case.note) == ("HD-4711", "in_progress", HOSTILE)
    note = fresh(c).messages[-1]
    # Signed by the integration's user, not shown as "System" (any token could speak for it).
    assert note.direction is Direction.NOTE and note.author_user_id == integration.id
    assert note.text == f"Helpdesk case HD-4711: in_progress — {HOSTILE}"
    audit = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "conversation.external_status")
    )
    assert audit.actor_id == integration.id and audit.target_id == c.id
    assert audit.after["external_id"] == "HD-4711"
    published = until_silence(stream)
    assert {
        "event": "conversation.updated",
        "conversation_id": c.id,
        "action": "external_status",
        "actor_id": integration.id,
    } in published

    # A later update may leave out the case id: it is kept.
    again = post_status(client, c.id, {"status": "waiting_on_vendor"}, integration.headers)
    assert again.json["external_id"] == "HD-4711"

    login(client, make_user(Role.SUPERVISOR))
    with client.application.app_context():  # a fresh flask.g: the API calls used this one
        page = client.get(f"/inbox/c/{c.id}", headers={"X-Fragment": "1"}).get_data(as_text=True)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=" in page
    assert "data-helpdesk-status>waiting_on_vendor<" in page


def test_resolve_true_resolves_the_conversation_and_stops_the_resolution_clock(client, integration):
    db.session.add(
        SlaPolicy(
            name="Support",
            resolution_seconds=86400,
            first_response_seconds=3600,
            business_hours=False,
        )
    )
    db.session.commit()
    c = factories.conversation(team="Tech support")
    clock = db.session.scalar(
        select(SlaClock).where(
            SlaClock.conversation_id == c.id, SlaClock.metric == SlaMetric.RESOLUTION
        )
    )
    assert clock is not None and clock.stopped_at is None
    res = post_status(
        client,
        c.id,
        {"status": "solved", "external_id": "HD-9", "resolve": True},
        integration.headers,
    )
    assert res.status_code == 200 and res.json["conversation_status"] == "resolved"
    c = fresh(c)
    assert c.status is Status.RESOLVED and c.resolved_at is not None
    clock = db.session.get(SlaClock, clock.id)
    assert clock.stopped_at is not None and clock.stop_reason is StopReason.RESOLVED
    actions = {a.action for a in db.session.scalars(select(AuditEvent))}
    assert {"conversation.external_status", "conversation.status"} <= actions


def test_without_resolve_the_conversation_stays_open(client, integration):
    c = factories.conversation(team="Tech support")
    post_status(client, c.id, {"status": "solved", "resolve": False}, integration.headers)
    assert fresh(c).status is Status.NEW


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer ibx_not-a-token"}, {"Authorization": "Basic dXNlcjpwdw=="}],
)
def test_a_missing_or_bad_token_is_refused(client, integration, headers):
    c = factories.conversation(team="Tech support")
    res = post_status(client, c.id, {"status": "solved", "resolve": True}, headers)
    assert res.status_code == 401 and res.json["error"]["code"] == "unauthorized"
    assert db.session.get(HelpdeskCase, c.id) is None
    assert fresh(c).status is Status.NEW


def test_a_missing_conversation_is_404(client, integration):
    res = post_status(client, 999999, {"status": "solved"}, integration.headers)
    assert res.status_code == 404 and res.json["error"]["code"] == "not_found"


def test_a_conversation_of_another_team_is_404_for_an_agent_token(client, integration):
    c = factories.conversation(team="Billing")
    res = post_status(client, c.id, {"status": "solved", "resolve": True}, integration.headers)
    assert res.status_code == 404
    assert fresh(c).status is Status.NEW


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "Send a JSON object"),
        (["solved"], "Send a JSON object"),
        ({}, '"status" is required'),
        ({"status": ""}, '"status" is required'),
        ({"status": 3}, '"status" is required'),
        ({"status": "x" * 65}, '"status" is at most 64 characters'),
        ({"status": "solved", "external_id": 42}, '"external_id" must be a non-empty string'),
        ({"status": "solved", "external_id": "x" * 129}, '"external_id" is at most 128'),
        ({"status": "solved", "note": "x" * 2001}, '"note" is at most 2000'),
        ({"status": "solved", "resolve": "yes"}, '"resolve" must be true or false'),
        ({"status": "solved", "priority": "high"}, "Unknown fields: priority"),
    ],
)
def test_an_invalid_body_is_400_with_a_clear_message(client, integration, body, message):
    c = factories.conversation(team="Tech support")
    if body is None:
        res = client.post(
            f"/api/v1/conversations/{c.id}/external-status",
            data="not json",
            headers={**integration.headers, "Content-Type": "application/json"},
        )
    else:
        res = post_status(client, c.id, body, integration.headers)
    assert res.status_code == 400
    assert res.json["error"]["code"] == "bad_request"
    assert message in res.json["error"]["message"]
    assert db.session.get(HelpdeskCase, c.id) is None
    assert len(fresh(c).messages) == 1  # nothing written into the thread


def test_the_endpoint_is_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").json
    op = spec["paths"]["/conversations/{id}/external-status"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["status"]
    assert set(schema["properties"]) == {"status", "external_id", "note", "resolve"}
    assert {"200", "400", "401", "404"} <= set(op["responses"])
