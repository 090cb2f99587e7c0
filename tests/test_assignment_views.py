"""Get next over the API and the web inbox, the availability control, the request hook that
keeps last_seen_at fresh, and the supervisors' agent list."""

from __future__ import annotations

from datetime import timedelta

from inbox.extensions import db
from inbox.models import AuditEvent, Availability, Conversation, Role
from inbox.services.accounts import create_api_token
from inbox.services.conversations import set_tags
from inbox.timeutil import utcnow
from tests import factories
from tests.conftest import login
from tests.support.statements import captured_statements


def test_api_next_claims_the_most_urgent_and_answers_204_when_nothing_waits(client, make_user):
    agent = make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {create_api_token(agent)}"}
    db.session.commit()
    older = factories.conversation(team="Social care", sent_at=utcnow() - timedelta(hours=2))
    factories.conversation(team="Social care", sent_at=utcnow() - timedelta(hours=1))
    res = client.post("/api/v1/conversations/next", headers=headers)
    assert res.status_code == 200
    assert res.json["id"] == older.id
    assert res.json["assignee"]["id"] == agent.id
    assert res.json["status"] == "open"
    assert client.post("/api/v1/conversations/next", headers=headers).status_code == 200
    empty = client.post("/api/v1/conversations/next", headers=headers)
    assert empty.status_code == 204 and empty.data == b""


def test_api_next_answers_what_it_committed_in_one_transaction(client, make_user):
    agent = make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {create_api_token(agent)}"}
    conversation = factories.conversation(team="Social care")
    set_tags(conversation, ["refund", "vip"], actor=agent, now=utcnow())
    db.session.commit()
    client.get("/api/v1/me", headers=headers)  # the token's first use is written; now in use
    answers = []
    sent = captured_statements(
        lambda: answers.append(client.post("/api/v1/conversations/next", headers=headers))
    )
    # The answer is built before the commit; read again afterwards it is the same.
    claimed = answers[0].json
    detail = client.get(f"/api/v1/conversations/{conversation.id}", headers=headers).json
    del detail["messages"]
    assert claimed == detail
    assert claimed["tags"] == ["refund", "vip"] and claimed["assignee"]["id"] == agent.id
    # One transaction, no reloads after a commit: the token with its user, then the claim,
    # which on PostgreSQL also writes the audit row and returns the answer's relations and
    # SLA clocks; SQLite writes the audit row and reads the relations after the take.
    assert len(sent) == (2 if db.engine.dialect.name == "postgresql" else 4), sent


def test_api_next_needs_a_token(client):
    assert client.post("/api/v1/conversations/next").status_code == 401


def test_web_get_next_redirects_to_the_claimed_conversation(client, make_user):
    agent = make_user(Role.AGENT)
    login(client, agent)
    c = factories.conversation(team="Social care")
    res = client.post("/inbox/next", headers={"Accept": "application/json"})
    assert res.json["conversation_id"] == c.id
    assert res.json["url"].startswith(f"/inbox/c/{c.id}")
    db.session.expire_all()
    assert db.session.get(Conversation, c.id).assignee_id == agent.id
    res = client.post("/inbox/next")
    assert res.status_code == 302  # nothing left: back to the inbox with a message


def test_web_get_next_refuses_a_forged_post(make_app, make_user):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    agent = make_user(Role.AGENT)
    login(client, agent)
    c = factories.conversation(team="Social care")
    res = client.post("/inbox/next", headers={"Accept": "application/json"})
    assert res.status_code == 400
    db.session.expire_all()
    assert db.session.get(Conversation, c.id).assignee_id is None


def test_availability_control_sets_and_audits(client, make_user):
    agent = make_user(Role.AGENT)
    login(client, agent)
    res = client.post(
        "/availability", data={"availability": "online"}, headers={"Accept": "application/json"}
    )
    assert res.json == {"ok": True, "availability": "online", "message": "You are online."}
    db.session.expire_all()
    assert agent.availability is Availability.ONLINE
    audit = db.session.query(AuditEvent).filter_by(action="user.availability").one()
    assert (audit.actor_id, audit.after) == (agent.id, {"availability": "online"})
    bad = client.post("/availability", data={"availability": "asleep"})
    assert bad.status_code == 302
    db.session.expire_all()
    assert agent.availability is Availability.ONLINE


def test_requests_refresh_last_seen_at_most_once_a_minute(client, make_user):
    agent = make_user(Role.AGENT)
    login(client, agent)
    client.get("/inbox")
    db.session.expire_all()
    first = agent.last_seen_at
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    client.get("/inbox")
    db.session.expire_all()
    assert agent.last_seen_at == first
    agent.last_seen_at = first - timedelta(minutes=2)
    db.session.commit()
    client.get("/inbox")
    db.session.expire_all()
    assert agent.last_seen_at > first - timedelta(minutes=1)


def test_idle_online_agents_become_away(app, make_user):
    from inbox.services import availability

    now = utcnow()
    idle, fresh = make_user(Role.AGENT), make_user(Role.AGENT)
    for user, seen in ((idle, now - timedelta(minutes=20)), (fresh, now - timedelta(minutes=2))):
        user.availability = Availability.ONLINE
        user.last_seen_at = seen
    db.session.commit()
    gone = availability.mark_idle_away(now=now, idle=timedelta(minutes=15))
    assert [u.id for u in gone] == [idle.id]
    assert (idle.availability, fresh.availability) == (Availability.AWAY, Availability.ONLINE)


def test_supervisors_see_who_is_online(client, make_user):
    boss = make_user(Role.SUPERVISOR, name="Sam Super")
    agent = make_user(Role.AGENT, name="Olive Online")
    agent.availability = Availability.ONLINE
    db.session.commit()
    login(client, boss)
    page = client.get("/agents").get_data(as_text=True)
    assert "Olive Online" in page and "avail-online" in page


def test_agents_may_not_see_the_agent_list(client, make_user):
    login(client, make_user(Role.AGENT))
    assert client.get("/agents").status_code == 403
