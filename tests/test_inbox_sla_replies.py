"""The agent inbox wired to the SLA engine and to replies: actions move the clocks, the queue
sorts and filters by deadline, and agents answer customers from the conversation pane."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis import Redis
from rq import Queue

from inbox.extensions import db
from inbox.models import (
    Conversation,
    DeliveryStatus,
    Direction,
    Kind,
    Message,
    Platform,
    Priority,
    Role,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    StopReason,
)
from inbox.services.accounts import get_or_create_team
from inbox.services.channels import add_channel, set_access_token
from inbox.services.ingest import (
    Profile,
    add_message,
    get_or_create_conversation,
    resolve_identity,
)
from inbox.timeutil import utcnow
from tests import factories
from tests.conftest import login
from tests.support.replies import TOKEN

JSON = {"Accept": "application/json"}


@pytest.fixture
def agent(make_user, client):
    user = make_user(Role.AGENT, name="Alice Agent", email="alice@example.com")
    login(client, user)
    return user


@pytest.fixture
def policies(app):
    """24/7 policies: 2h first response normally, 15 min for urgent conversations."""
    normal = SlaPolicy(
        position=100,
        name="Default",
        first_response_seconds=7200,
        resolution_seconds=86400,
        business_hours=False,
    )
    urgent = SlaPolicy(
        position=1,
        name="Urgent",
        priorities=["urgent"],
        first_response_seconds=900,
        business_hours=False,
    )
    db.session.add_all([normal, urgent])
    db.session.commit()
    return normal, urgent


_counter = iter(range(1, 1_000_000))


def fresh_conversation(minutes_ago: int = 5) -> Conversation:
    """A Social care Messenger DM whose customer wrote `minutes_ago` (its clocks start then)."""
    n = next(_counter)
    account, _ = add_channel(Platform.MESSENGER, "104857392018475", name="Brightwave")
    set_access_token(account, TOKEN, actor=None)
    identity = resolve_identity(Profile(Platform.MESSENGER, f"psid-{n}", display_name=f"C {n}"))
    conversation, _ = get_or_create_conversation(
        account,
        f"dm:psid-{n}",
        kind=Kind.DM,
        is_public=False,
        contact=identity.contact,
        team=get_or_create_team("Social care"),
    )
    add_message(
        conversation,
        direction=Direction.INBOUND,
        text="My fibre keeps dropping",
        sent_at=utcnow() - timedelta(minutes=minutes_ago),
        external_id=f"m-{n}",
        author_identity=identity,
    )
    db.session.commit()
    return conversation


def clock(conversation, metric):
    db.session.expire_all()
    return (
        db.session.query(SlaClock)
        .filter_by(conversation_id=conversation.id, metric=metric)
        .order_by(SlaClock.cycle)
        .all()[-1]
    )


def act(client, conversation, action, **data):
    return client.post(f"/inbox/c/{conversation.id}/{action}", data=data, headers=JSON)


def test_raising_priority_in_the_inbox_reselects_the_policy_from_the_original_start(
    client, agent, policies
):
    conversation = fresh_conversation(minutes_ago=10)
    before = clock(conversation, SlaMetric.FIRST_RESPONSE)
    assert before.due_at == conversation.first_inbound_at + timedelta(hours=2)
    assert act(client, conversation, "priority", priority="urgent").status_code == 200
    after = clock(conversation, SlaMetric.FIRST_RESPONSE)
    assert after.due_at == conversation.first_inbound_at + timedelta(minutes=15)
    assert db.session.get(Conversation, conversation.id).sla_due_at == after.due_at


def test_resolving_in_the_inbox_stops_the_resolution_clock(client, agent, policies):
    conversation = fresh_conversation()
    assert act(client, conversation, "status", status="resolved").status_code == 200
    resolution = clock(conversation, SlaMetric.RESOLUTION)
    assert resolution.stop_reason is StopReason.RESOLVED
    assert act(client, conversation, "status", status="open").status_code == 200
    assert clock(conversation, SlaMetric.RESOLUTION).running  # a reopen resumes it


def test_pending_in_the_inbox_pauses_the_resolution_clock(client, agent, policies):
    conversation = fresh_conversation()
    act(client, conversation, "status", status="pending")
    assert clock(conversation, SlaMetric.RESOLUTION).paused


def test_breaching_soon_view_and_sla_first_sort(client, agent, policies):
    late = fresh_conversation(minutes_ago=110)  # due in 10 minutes
    relaxed = fresh_conversation(minutes_ago=5)  # due in 115 minutes
    no_policy = fresh_conversation(minutes_ago=1)
    db.session.query(SlaClock).filter_by(conversation_id=no_policy.id).delete()
    db.session.get(Conversation, no_policy.id).sla_due_at = None
    db.session.commit()
    counts = client.get("/inbox/counts").json["views"]
    assert counts["breaching"] == 1
    breaching = client.get("/inbox/rows?view=breaching").data.decode()
    assert f'data-conversation="{late.id}"' in breaching
    assert f'data-conversation="{relaxed.id}"' not in breaching
    html = client.get("/inbox/rows?view=open").data.decode()
    order = [html.index(f'data-conversation="{c.id}"') for c in (late, relaxed, no_policy)]
    assert order == sorted(order)  # earliest deadline first, no deadline last
    assert "sla-badge" in html


def test_agent_replies_from_the_inbox_and_it_counts_as_the_first_response(
    client, agent, policies, redis_url
):
    conversation = fresh_conversation()
    response = act(
        client,
        conversation,
        "reply",
        text="Sorry about that, checking now.",
        version=conversation.version,
    )
    assert response.status_code == 200, response.json
    reply = db.session.query(Message).filter_by(direction=Direction.OUTBOUND).one()
    assert reply.author_user_id == agent.id
    assert reply.delivery_status is DeliveryStatus.QUEUED
    assert Queue("outbound", connection=Redis.from_url(redis_url)).count == 1
    first = clock(conversation, SlaMetric.FIRST_RESPONSE)
    assert first.stop_reason is StopReason.REPLIED and first.stopped_at == reply.sent_at


def test_reply_to_a_conversation_that_changed_since_it_was_opened_is_409(client, agent, policies):
    conversation = fresh_conversation()
    seen = conversation.version
    act(client, conversation, "priority", priority="high", version=seen)
    response = act(client, conversation, "reply", text="hello", version=seen)
    assert response.status_code == 409
    assert db.session.query(Message).filter_by(direction=Direction.OUTBOUND).count() == 0


def test_reply_over_the_platform_limit_is_refused_with_the_limit(client, agent, policies):
    conversation = fresh_conversation()
    response = act(client, conversation, "reply", text="x" * 2001)
    assert response.status_code == 400
    assert "2000" in response.json["error"]["message"]


def test_failed_reply_can_be_retried_from_the_inbox(client, agent, policies):
    conversation = fresh_conversation()
    act(client, conversation, "reply", text="first try")
    reply = db.session.query(Message).filter_by(direction=Direction.OUTBOUND).one()
    reply.delivery_status = DeliveryStatus.FAILED
    reply.delivery_error = "(#10) outside the allowed window"
    db.session.commit()
    page = client.get(f"/inbox/c/{conversation.id}").data.decode()
    assert "outside the allowed window" in page and 'data-action="retry"' in page
    assert act(client, conversation, "retry", message=reply.id).status_code == 200
    db.session.expire_all()
    assert db.session.get(Message, reply.id).delivery_status is DeliveryStatus.QUEUED


def test_conversation_page_shows_the_sla_timeline(client, agent, policies):
    conversation = fresh_conversation()
    page = client.get(f"/inbox/c/{conversation.id}").data.decode()
    assert "sla-timeline" in page and "First response" in page


def test_the_sla_timeline_page_keeps_to_the_agent_s_teams(client, agent, policies):
    ours = fresh_conversation()
    theirs = fresh_conversation()
    theirs.team = get_or_create_team("Billing support")
    db.session.commit()
    assert client.get(f"/conversations/{ours.id}/sla").status_code == 200
    other = client.get(f"/conversations/{theirs.id}/sla")
    assert other.status_code == 404
    assert theirs.contact.label not in other.get_data(as_text=True)


def test_api_conversation_carries_its_sla_clocks(app, client, make_user, policies):
    from inbox.services.accounts import create_api_token

    conversation = fresh_conversation()
    token = create_api_token(make_user(Role.SUPERVISOR))
    db.session.commit()
    body = client.get(
        f"/api/v1/conversations/{conversation.id}", headers={"Authorization": f"Bearer {token}"}
    ).json
    metrics = {c["metric"] for c in body["sla_clocks"]}
    assert metrics == {"first_response", "resolution"}
    assert body["sla_due_at"] is not None and body["sla_state"] in ("ok", "warning")
    listed = client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
    assert listed.json["items"][0]["sla_clocks"]


def test_api_get_next_answers_with_the_sla_clocks_as_a_read_shows_them(
    app, client, make_user, policies
):
    from inbox.services.accounts import create_api_token

    conversation = fresh_conversation()
    headers = {"Authorization": f"Bearer {create_api_token(make_user(Role.AGENT))}"}
    db.session.commit()
    claimed = client.post("/api/v1/conversations/next", headers=headers).json
    detail = client.get(f"/api/v1/conversations/{conversation.id}", headers=headers).json
    assert claimed["id"] == conversation.id
    assert sorted((c["metric"], c["policy"]) for c in claimed["sla_clocks"]) == [
        ("first_response", "Default"),
        ("resolution", "Default"),
    ]
    assert claimed["sla_clocks"] == detail["sla_clocks"]


def test_patching_priority_through_the_api_reselects_the_sla_policy(
    app, client, make_user, policies
):
    from inbox.services.accounts import create_api_token

    conversation = fresh_conversation()
    token = create_api_token(make_user(Role.SUPERVISOR))
    db.session.commit()
    response = client.patch(
        f"/api/v1/conversations/{conversation.id}",
        json={"priority": "urgent"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert clock(conversation, SlaMetric.FIRST_RESPONSE).due_at == (
        conversation.first_inbound_at + timedelta(minutes=15)
    )
    assert db.session.get(Conversation, conversation.id).priority is Priority.URGENT


def test_the_side_panel_lists_twenty_not_counted_stretches_and_links_to_the_rest(client, agent):
    office = factories.office_calendar()
    db.session.add_all(
        [
            office,
            SlaPolicy(
                name="Office hours", resolution_seconds=400 * 3600, calendar=office, position=1
            ),
        ]
    )
    db.session.commit()
    conversation = fresh_conversation(minutes_ago=30 * 24 * 60)  # a month ago, still open
    panel = client.get(f"/inbox/c/{conversation.id}").get_data(as_text=True)
    gaps = panel.split('<details class="sla-gaps">', 1)[1].split("</details>", 1)[0]
    listed = gaps.count("<li>")
    assert listed == 20
    full = f"/conversations/{conversation.id}/sla"
    assert f'<a href="{full}">and ' in gaps and "more on the full timeline" in gaps
    page = client.get(full).get_data(as_text=True)
    everything = page.split('<details class="sla-gaps">', 1)[1].split("</details>", 1)[0]
    assert everything.count("<li>") > 40 and "more on the full timeline" not in everything
