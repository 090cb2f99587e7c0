"""The conversations JSON API: token auth, list with filters and cursor, detail with messages,
PATCH through the same services and permission checks as the web, JSON errors, openapi.json."""

from __future__ import annotations

from datetime import timedelta

import pytest

from inbox.extensions import db
from inbox.models import AuditEvent, Direction, Kind, Role, Status
from inbox.services.accounts import create_api_token, get_or_create_team
from inbox.timeutil import utcnow
from tests import factories


@pytest.fixture
def api(client, make_user):
    def for_role(role=Role.AGENT, team="Social care"):
        user = make_user(role, team=team)
        token = create_api_token(user)
        db.session.commit()
        headers = {"Authorization": f"Bearer {token}"}

        class Api:
            def get(self, url, **kw):
                return client.get("/api/v1" + url, headers=headers, **kw)

            def patch(self, url, body):
                return client.patch("/api/v1" + url, json=body, headers=headers)

        api_client = Api()
        api_client.user = user
        return api_client

    return for_role


def test_list_pages_with_a_cursor_and_exposes_the_documented_fields(api):
    agent = api()
    now = utcnow()
    made = [
        factories.conversation(team="Social care", sent_at=now - timedelta(hours=9 - i))
        for i in range(5)
    ]
    first = agent.get("/conversations?limit=2").json
    assert [i["id"] for i in first["items"]] == [made[0].id, made[1].id]
    item = first["items"][0]
    for field in (
        "id",
        "platform",
        "channel_account",
        "kind",
        "status",
        "priority",
        "team",
        "assignee",
        "tags",
        "contact",
        "message_count",
        "first_inbound_at",
        "first_response_at",
        "resolved_at",
        "sla_clocks",
    ):
        assert field in item
    assert item["team"]["name"] == "Social care" and item["message_count"] == 1
    second = agent.get(f"/conversations?limit=2&cursor={first['next_cursor']}").json
    third = agent.get(f"/conversations?limit=2&cursor={second['next_cursor']}").json
    assert [i["id"] for i in second["items"] + third["items"]] == [c.id for c in made[2:]]
    assert third["next_cursor"] is None


def test_list_filters(api):
    agent = api()
    a = factories.conversation(team="Social care", kind=Kind.MENTION, text="refund please")
    b = factories.conversation(team="Social care")
    agent.patch(f"/conversations/{b.id}", {"status": "pending", "tags": ["vip"]})
    ids = lambda q: [i["id"] for i in agent.get("/conversations?" + q).json["items"]]  # noqa: E731
    assert ids("status=pending") == [b.id]
    assert ids("kind=mention") == [a.id]
    assert ids("tag=VIP") == [b.id]
    assert ids("q=refund") == [a.id]
    assert sorted(ids(f"team={a.team_id}")) == [a.id, b.id]
    assert sorted(ids("assignee=none")) == [a.id, b.id]
    assert ids("platform=whatsapp") == []


def test_detail_includes_messages_in_order(api):
    agent = api()
    c = factories.conversation(team="Social care", text="hi")
    factories.message(c, "hello back", direction=Direction.OUTBOUND)
    db.session.commit()
    body = agent.get(f"/conversations/{c.id}").json
    assert [(m["direction"], m["text"]) for m in body["messages"]] == [
        ("inbound", "hi"),
        ("outbound", "hello back"),
    ]
    assert body["messages"][0]["author"]["type"] == "contact"
    assert set(body["messages"][0]) >= {
        "external_id",
        "direction",
        "text",
        "sent_at",
        "author",
        "status",
    }


def test_patch_changes_fields_through_the_services_and_audits(api, make_user):
    agent = api()
    colleague = make_user(Role.AGENT)
    billing = get_or_create_team("Billing support")
    db.session.commit()
    c = factories.conversation(team="Social care")
    body = agent.patch(
        f"/conversations/{c.id}",
        {"status": "resolved", "priority": "high", "assignee": colleague.id, "tags": ["a", "b"]},
    ).json
    assert (body["status"], body["priority"], body["assignee"]["id"], body["tags"]) == (
        "resolved",
        "high",
        colleague.id,
        ["a", "b"],
    )
    actions = [e.action for e in db.session.query(AuditEvent).filter_by(target_id=c.id)]
    assert {
        "conversation.status",
        "conversation.priority",
        "conversation.assign",
        "conversation.tags",
    } <= set(actions)
    moved = agent.patch(f"/conversations/{c.id}", {"team": billing.id})
    assert moved.status_code == 200
    # Now in another team and assigned to a colleague: the agent can no longer see it.
    assert agent.get(f"/conversations/{c.id}").status_code == 404


def test_patch_with_a_stale_version_is_409(api):
    agent = api()
    c = factories.conversation(team="Social care")
    seen = agent.get(f"/conversations/{c.id}").json["version"]
    factories.message(c, "new message")
    db.session.commit()
    response = agent.patch(f"/conversations/{c.id}", {"status": "resolved", "version": seen})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    db.session.expire_all()
    assert db.session.get(type(c), c.id).status is Status.NEW


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"status": "done"}, "bad_request"),
        ({"subject": "x"}, "bad_request"),
        ({"assignee": 99999}, "bad_request"),
        ({"tags": "x"}, "bad_request"),
        ({"status": "snoozed"}, "invalid"),
    ],
)
def test_patch_errors_are_json(api, body, code):
    agent = api()
    c = factories.conversation(team="Social care")
    response = agent.patch(f"/conversations/{c.id}", body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code and response.json["error"]["message"]


def test_other_teams_conversations_are_404_for_agents_not_supervisors(api):
    agent, supervisor = api(Role.AGENT), api(Role.SUPERVISOR)
    other = factories.conversation(team="Billing support")
    assert agent.get(f"/conversations/{other.id}").status_code == 404
    assert agent.patch(f"/conversations/{other.id}", {"priority": "low"}).status_code == 404
    assert agent.get("/conversations").json["items"] == []
    assert supervisor.get(f"/conversations/{other.id}").status_code == 200
    assert [i["id"] for i in supervisor.get("/conversations").json["items"]] == [other.id]


def test_bad_cursor_limit_and_missing_token(api, client):
    agent = api()
    assert agent.get("/conversations?cursor=garbage").json["error"]["code"] == "bad_cursor"
    assert agent.get("/conversations?limit=0").status_code == 400
    response = client.get("/api/v1/conversations")
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"
    bad = client.get("/api/v1/conversations", headers={"Authorization": "Bearer ibx_nope"})
    assert bad.status_code == 401


def test_openapi_describes_the_existing_endpoints(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/me",
        "/conversations",
        "/conversations/{id}",
        "/conversations/next",
        "/conversations/{id}/external-status",
        "/messages",
        "/reports/sla",
        "/openapi.json",
    }
    assert set(spec["paths"]["/conversations/{id}"]) == {"get", "patch"}
