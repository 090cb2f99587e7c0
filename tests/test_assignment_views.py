"""Get next over the API and the web inbox, the availability control, the request hook that
keeps last_seen_at fresh, and the supervisors' agent list."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import psycopg._queries
import pytest
from sqlalchemy import select

from inbox.extensions import db
from inbox.models import (
    ApiToken,
    AssignmentMode,
    AuditEvent,
    Availability,
    ContactIdentity,
    Conversation,
    Platform,
    Role,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    StopReason,
)
from inbox.services import assignment
from inbox.services.accounts import create_api_token, revoke_api_token
from inbox.services.conversations import set_tags
from inbox.timeutil import utcnow
from inbox.views.api import conversation_sql
from tests import factories
from tests.conftest import _using_postgres, login
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


def test_api_next_answers_what_it_committed_without_reloading(client, make_user, monkeypatch):
    agent = make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {create_api_token(agent)}"}
    conversation = factories.conversation(team="Social care")
    set_tags(conversation, ["refund", "vip"], actor=agent, now=utcnow())
    db.session.commit()
    client.get("/api/v1/me", headers=headers)  # the token's first use is written; now in use
    answers, commands = [], []
    command = psycopg.Connection._exec_command

    def counted(self, sql, *args, **kwargs):
        commands.append(bytes(sql).split()[0])
        return command(self, sql, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "_exec_command", counted)
    agent_id, conversation_id = agent.id, conversation.id
    db.session.close()  # the request starts with no transaction, as each one does when served
    sent = captured_statements(
        lambda: answers.append(client.post("/api/v1/conversations/next", headers=headers))
    )
    monkeypatch.undo()
    # The answer is built before the commit; read again afterwards it is the same.
    claimed = answers[0].json
    detail = client.get(f"/api/v1/conversations/{conversation_id}", headers=headers).json
    del detail["messages"]
    assert claimed == detail
    assert claimed["tags"] == ["refund", "vip"] and claimed["assignee"]["id"] == agent_id
    # No reloads after a commit. PostgreSQL: one statement, which checks the token, claims,
    # writes the audit row and returns the answer; atomic on its own, so no BEGIN or COMMIT
    # round trips (autocommit). SQLite, in one transaction: the token, the take, the audit row,
    # the relations.
    if db.engine.dialect.name == "postgresql":
        assert len(sent) == 1, sent
        assert b"BEGIN" not in commands and b"COMMIT" not in commands, commands
    else:
        assert len(sent) == 4, sent


@pytest.mark.parametrize("sentiment", [0.0, 0.1234567])  # VADER's neutral, and any other
def test_get_next_answers_the_conversation_as_get_shows_it(client, make_user, sentiment):
    """On PostgreSQL get next's answer is built in SQL (`conversation_sql`), elsewhere from the
    ORM (`conversation_json`); GET builds it from the ORM everywhere. Every field the two can
    disagree on is set here: several identities, tags in an order where code points and a
    locale's collation differ, clocks of several kinds with and without a policy, instants
    with and without a fraction of a second, a float sentiment (whole, too: compared as JSON
    text, so 0 and 0.0 differ)."""
    agent = make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {create_api_token(agent)}"}
    conversation = factories.conversation(team="Social care", followers=1234)
    other = ContactIdentity(
        contact=conversation.contact,
        platform=Platform.INSTAGRAM,
        external_user_id="ig-1",
        handle="<b>ig</b>",
        display_name='Zoë "Z" <Z>',
        follower_count=None,
    )
    db.session.add(other)
    set_tags(conversation, ["zebra", "Zulu", "été", "Apple", "banana"], actor=agent, now=utcnow())
    conversation.language, conversation.sentiment = "fr", sentiment
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    conversation.first_response_at = at + timedelta(microseconds=120)
    conversation.resolved_at = None
    conversation.snoozed_until = at + timedelta(days=1)
    policy = SlaPolicy(name="VIP <24h>")
    db.session.add(policy)
    db.session.add_all(
        [
            SlaClock(
                conversation=conversation,
                policy=policy,
                metric=SlaMetric.RESOLUTION,
                cycle=7,
                started_at=at,
                due_at=at + timedelta(hours=8),
            ),
            SlaClock(
                conversation=conversation,
                policy=None,
                metric=SlaMetric.FIRST_RESPONSE,
                cycle=8,
                started_at=at,
                due_at=at + timedelta(hours=1),
                stopped_at=at + timedelta(minutes=5, microseconds=500000),
                stop_reason=StopReason.REPLIED,
                warned_at=at + timedelta(minutes=4),
                breached_at=None,
                paused_seconds=17,
            ),
            SlaClock(
                conversation=conversation,
                policy=policy,
                metric=SlaMetric.NEXT_RESPONSE,
                cycle=9,
                started_at=at - timedelta(seconds=1),
                due_at=None,
            ),
        ]
    )
    db.session.commit()
    claimed = client.post("/api/v1/conversations/next", headers=headers).json
    detail = client.get(f"/api/v1/conversations/{conversation.id}", headers=headers).json
    del detail["messages"]
    assert json.dumps(claimed, sort_keys=True) == json.dumps(detail, sort_keys=True)
    assert claimed["tags"] == ["Apple", "Zulu", "banana", "zebra", "été"]
    assert [i["handle"] for i in claimed["contact"]["identities"]][1] == "<b>ig</b>"
    added = [k for k in claimed["sla_clocks"] if k["cycle"] >= 7]  # after the default ones
    assert [(k["metric"], k["policy"]) for k in added] == [
        ("next_response", "VIP <24h>"),
        ("resolution", "VIP <24h>"),
        ("first_response", None),
    ]
    assert added[2]["stopped_at"] == "2026-03-02T09:35:00.500000+00:00"
    assert added[2]["started_at"] == "2026-03-02T09:30:00+00:00"
    assert claimed["sentiment"] == sentiment and isinstance(claimed["sentiment"], float)


@pytest.mark.skipif(
    not _using_postgres(),
    reason="get next answers in SQL on PostgreSQL only; `make test` runs there too",
)
def test_psycopg_keeps_get_nexts_statement(client, make_user, monkeypatch):
    """The claim that answers in JSON is longer than psycopg's default 4,096-byte limit for
    remembering a statement's placeholders (inbox.extensions raises it): get next must not
    have its statement parsed again on each call (psycopg's uncached path, counted here)."""
    agent = make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {create_api_token(agent)}"}
    for _ in range(3):
        factories.conversation(team="Social care")
    uncached = []
    parse = psycopg._queries._query2pg_nocache

    def counted(query, encoding):
        uncached.append(len(query))
        return parse(query, encoding)

    monkeypatch.setattr(psycopg._queries, "_query2pg_nocache", counted)
    for _ in range(2):
        assert client.post("/api/v1/conversations/next", headers=headers).status_code == 200
    assert uncached == []
    statement = assignment._claim_statements("postgresql", "token", answer=conversation_sql)
    sql = str(statement.take.compile(dialect=db.engine.dialect))
    assert len(sql) > 4096  # so the test is about the raised limit
    # The tags' code point order: the test cluster's locale (C.UTF-8) sorts that way anyway, so
    # the ordering assertion above cannot tell; a database in en_US would not.
    assert 'COLLATE "C"' in sql


def test_concurrent_api_get_next_never_hands_out_a_conversation_twice(app, make_user):
    """8 agents call the endpoint at once from threads (each request its own session and
    connection; on PostgreSQL the one statement in autocommit mode) until nothing is left:
    every conversation is handed out exactly once."""
    count = 60 if db.engine.dialect.name == "sqlite" else 240
    headers = [
        {"Authorization": f"Bearer {create_api_token(make_user(Role.AGENT))}"} for _ in range(8)
    ]
    account = factories.channel()
    for _ in range(count):
        factories.conversation(team="Social care", account=account, commit=False)
    db.session.commit()
    expected = set(db.session.scalars(select(Conversation.id)))
    db.session.close()
    got: list[int] = []
    failures: list[object] = []
    start = threading.Barrier(len(headers), timeout=60)

    def agent(auth: dict[str, str]) -> None:
        try:
            client = app.test_client()
            start.wait()
            while True:
                answer = client.post("/api/v1/conversations/next", headers=auth)
                if answer.status_code == 204:
                    return
                if answer.status_code != 200:
                    failures.append((answer.status_code, answer.get_data(as_text=True)))
                    return
                got.append(answer.json["id"])
        except BaseException as error:  # a request that raised (TESTING) must fail the test
            failures.append(error)

    threads = [threading.Thread(target=agent, args=(h,), daemon=True) for h in headers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert len(got) == len(set(got)) == count
    assert set(got) == expected


def test_api_next_needs_a_token(client):
    assert client.post("/api/v1/conversations/next").status_code == 401


@pytest.mark.parametrize("refusal", ["revoked", "deactivated", "made up"])
def test_api_next_with_a_refused_token_is_401_and_claims_nothing(client, make_user, refusal):
    """On PostgreSQL get next's own statement checks the token: a refused one must take
    nothing, not even an unowned conversation from the shared queue (which a caller of no id
    would otherwise "see")."""
    user = make_user(Role.AGENT)
    token = create_api_token(user)
    if refusal == "revoked":
        revoke_api_token(db.session.scalars(select(ApiToken)).one(), actor=user)
    elif refusal == "deactivated":
        user.active = False
    else:
        token = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    unowned = factories.conversation()  # no team, no assignee: every agent's shared queue
    in_team = factories.conversation(team="Social care")
    before = [(c.id, c.assignee_id, c.status, c.version) for c in (unowned, in_team)]
    audits = db.session.query(AuditEvent).count()
    response = client.post(
        "/api/v1/conversations/next", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json["error"] == {
        "code": "unauthorized",
        "message": "The token is invalid or has been revoked.",
    }
    db.session.expire_all()
    # A take for no one would leave assignee_id NULL but open the new conversation and count
    # a version: the state must be exactly as before.
    assert [(c.id, c.assignee_id, c.status, c.version) for c in (unowned, in_team)] == before
    assert db.session.query(AuditEvent).count() == audits


def test_api_next_gives_managers_any_teams_work_and_an_agent_only_their_teams(client, make_user):
    now = utcnow()
    # Most urgent first: the agent's Social care one is the newest, so only visibility can
    # make it theirs; the managers get the older Billing ones.
    billing = [
        factories.conversation(team="Billing", sent_at=now - timedelta(hours=h)) for h in (3, 2)
    ]
    social = factories.conversation(team="Social care", sent_at=now - timedelta(hours=1))
    users = {
        role: make_user(role, team="Social care")
        for role in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)
    }
    tokens = {role: create_api_token(user) for role, user in users.items()}
    db.session.commit()

    def get_next(role):
        headers = {"Authorization": f"Bearer {tokens[role]}"}
        return client.post("/api/v1/conversations/next", headers=headers)

    mine = get_next(Role.AGENT)
    assert mine.status_code == 200 and mine.json["id"] == social.id
    assert get_next(Role.AGENT).status_code == 204  # Billing's are not theirs to see
    for role, conversation in zip((Role.SUPERVISOR, Role.ADMIN), billing, strict=True):
        taken = get_next(role)
        user = users[role]
        assert taken.status_code == 200 and taken.json["id"] == conversation.id
        assert taken.json["assignee"] == {"id": user.id, "name": user.name, "email": user.email}


def test_api_next_writes_the_tokens_last_use_once_a_minute_also_when_nothing_waits(
    client, make_user
):
    token = create_api_token(make_user(Role.AGENT))
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}

    def last_use_after_get_next(previous):
        stored = db.session.scalars(select(ApiToken)).one()
        stored.last_used_at = previous
        db.session.commit()
        assert client.post("/api/v1/conversations/next", headers=headers).status_code == 204
        db.session.expire_all()
        return db.session.scalars(select(ApiToken)).one().last_used_at

    began = utcnow()
    assert last_use_after_get_next(None) >= began - timedelta(seconds=1)
    recent = began - timedelta(seconds=30)
    assert last_use_after_get_next(recent) == recent  # within the minute: not written again
    assert last_use_after_get_next(began - timedelta(seconds=61)) >= began - timedelta(seconds=1)


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


def test_web_get_next_opens_beside_the_list_it_was_pressed_from(client, make_user):
    login(client, make_user(Role.AGENT))
    for _ in range(2):
        factories.conversation(team="Social care")
    json = {"Accept": "application/json"}
    res = client.post("/inbox/next", data={"view": "unassigned"}, headers=json)
    assert res.json["url"].endswith("?view=unassigned")
    res = client.post("/inbox/next", data={"view": "<script>"}, headers=json)
    assert res.json["url"].endswith("?view=mine")  # an unknown view: where the claim now is


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


def test_signing_out_sets_the_agent_offline_and_returns_their_auto_assigned_items(
    client, make_user
):
    agent = make_user(Role.AGENT)
    team = agent.teams[0]
    team.assignment_mode = AssignmentMode.ROUND_ROBIN
    agent.availability = Availability.ONLINE
    c = factories.conversation(team=team)
    assert assignment.assign_backlog(team, now=utcnow()) == 1
    db.session.commit()
    login(client, agent)

    assert client.post("/logout").status_code == 302

    db.session.expire_all()
    assert agent.availability is Availability.OFFLINE
    assert db.session.get(Conversation, c.id).assignee_id is None  # back in the queue
    audit = db.session.query(AuditEvent).filter_by(action="user.availability").one()
    assert (audit.actor_id, audit.after) == (agent.id, {"availability": "offline"})
    assert client.get("/inbox").status_code == 302  # signed out as well


def test_the_inbox_tells_a_team_member_who_is_not_online_that_nothing_is_assigned(
    client, make_user
):
    agent = make_user(Role.AGENT)
    login(client, agent)
    page = client.get("/inbox").get_data(as_text=True)
    assert "You are offline: no conversations are assigned to you automatically." in page
    client.post("/availability", data={"availability": "online"})
    assert "data-availability-note" not in client.get("/inbox").get_data(as_text=True)
    loner = make_user(Role.AGENT)
    loner.teams = []  # in no team: auto-assignment never concerns them
    db.session.commit()
    login(client, loner)
    assert "data-availability-note" not in client.get("/inbox").get_data(as_text=True)


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
