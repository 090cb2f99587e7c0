"""Conversation actions as services, with a fixed `now`: each changes the row, bumps the version,
writes the audit log and refuses stale versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inbox.errors import Conflict, InboxError, NotFound
from inbox.extensions import db
from inbox.models import AuditEvent, Direction, Notification, Priority, Role, Status
from inbox.services import canned, listing
from inbox.services import conversations as svc
from inbox.services.accounts import get_or_create_team
from tests import factories

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def audit_actions(conversation):
    return [
        e.action
        for e in db.session.query(AuditEvent)
        .filter_by(target_type="conversations", target_id=conversation.id)
        .order_by(AuditEvent.id)
    ]


def test_claim_assigns_to_the_actor_opens_a_new_item_and_audits(app, make_user):
    agent = make_user(Role.AGENT)
    c = factories.conversation(team="Social care")
    version = c.version
    svc.claim(c, actor=agent, now=NOW, version=version)
    assert c.assignee_id == agent.id
    assert c.status is Status.OPEN
    assert c.version == version + 1
    assert audit_actions(c) == ["conversation.assign"]


def test_a_stale_version_is_refused_and_changes_nothing(app, make_user):
    agent = make_user(Role.AGENT)
    c = factories.conversation(team="Social care")
    seen = c.version
    factories.message(c, "one more thing")  # the customer writes again meanwhile
    db.session.commit()
    with pytest.raises(Conflict):
        svc.set_status(c, Status.RESOLVED, actor=agent, now=NOW, version=seen)
    db.session.rollback()
    assert c.status is Status.NEW


def test_resolve_then_undo_restores_the_previous_status(app, make_user):
    agent = make_user(Role.AGENT)
    c = factories.conversation()
    svc.set_status(c, Status.PENDING, actor=agent, now=NOW)
    previous = svc.set_status(c, Status.RESOLVED, actor=agent, now=NOW)
    assert c.resolved_at == NOW
    assert previous == {"status": "pending", "snooze_until": None}
    svc.set_status(c, Status(previous["status"]), actor=agent, now=NOW)
    assert c.status is Status.PENDING and c.resolved_at is None


def test_snooze_needs_a_future_time_and_wakes_up_when_due(app, make_user):
    agent = make_user(Role.AGENT)
    c = factories.conversation()
    with pytest.raises(InboxError):
        svc.set_status(c, Status.SNOOZED, actor=agent, now=NOW, snooze_until=NOW)
    svc.set_status(c, Status.SNOOZED, actor=agent, now=NOW, snooze_until=NOW + timedelta(hours=1))
    assert svc.wake_snoozed(now=NOW + timedelta(minutes=59)) == 0
    assert svc.wake_snoozed(now=NOW + timedelta(hours=1)) == 1
    assert c.status is Status.OPEN and c.snoozed_until is None


def test_priority_spam_and_tags(app, make_user):
    agent = make_user(Role.AGENT)
    c = factories.conversation()
    svc.set_priority(c, Priority.URGENT, actor=agent, now=NOW)
    svc.mark_spam(c, True, actor=agent, now=NOW)
    tag = svc.add_tag(c, "  Refund  request ", actor=agent, now=NOW)
    assert tag.name == "Refund request"
    assert svc.add_tag(c, "refund REQUEST", actor=agent, now=NOW) is tag  # same tag, any case
    assert [t.name for t in c.tags] == ["Refund request"]
    svc.remove_tag(c, "refund request", actor=agent, now=NOW)
    assert c.tags == []
    assert c.priority is Priority.URGENT and c.is_spam
    assert audit_actions(c) == [
        "conversation.priority",
        "conversation.spam",
        "conversation.tag",
        "conversation.untag",
    ]


def test_note_with_mention_notifies_the_colleague_who_can_see_it(app, make_user):
    alice = make_user(Role.AGENT, name="Alice Smith", email="alice@example.com")
    bob = make_user(Role.AGENT, name="Bob Jones", email="bob.j@example.com")
    other = make_user(Role.AGENT, name="Olga Other", team="Billing support")
    c = factories.conversation(team="Social care")
    note, notified, unreachable = svc.add_note(
        c, "@bob.j and @olga please look. mail a@b.c is no mention", actor=alice, now=NOW
    )
    assert note.direction is Direction.NOTE and note.author_user_id == alice.id
    assert notified == [bob]  # Olga is in another team and cannot see it
    assert unreachable == [other]  # so the writer is told she was not notified
    rows = db.session.query(Notification).all()
    assert [(n.user_id, n.kind, n.conversation_id) for n in rows] == [(bob.id, "mention", c.id)]
    assert other.id not in [n.user_id for n in rows]
    assert c.message_count == 1  # notes are not customer/brand messages


def test_mention_by_unique_first_name(app, make_user):
    alice = make_user(Role.AGENT, name="Alice Smith")
    bob = make_user(Role.SUPERVISOR, name="Bob Jones")
    c = factories.conversation(team="Social care")
    added = svc.add_note(c, "Thoughts, @Bob?", actor=alice, now=NOW)
    assert (added.notified, added.unreachable) == ([bob], [])


def test_route_to_support_moves_team_unassigns_keeps_history_and_notifies(app, make_user):
    agent = make_user(Role.AGENT)
    billing_agent = make_user(Role.AGENT, team="Billing support")
    c = factories.conversation(team="Social care", sent_at=NOW - timedelta(hours=1))
    svc.claim(c, actor=agent, now=NOW)
    svc.set_status(c, Status.RESOLVED, actor=agent, now=NOW)
    billing = get_or_create_team("Billing support")
    svc.route_to_support(c, billing, note="Double charge, see DM", actor=agent, now=NOW)
    assert c.team_id == billing.id and c.assignee_id is None and c.status is Status.OPEN
    texts = [m.text for m in c.messages]
    assert texts[0] == "Hello, I need help"  # history kept
    assert texts[-1] == "Routed to Billing support: Double charge, see DM"
    assert db.session.query(Notification).filter_by(user_id=billing_agent.id).count() == 1
    with pytest.raises(InboxError):
        svc.route_to_support(c, billing, note="  ", actor=agent, now=NOW)


def test_agents_see_their_teams_their_own_and_unowned_conversations_only(app, make_user):
    agent = make_user(Role.AGENT, team="Social care")
    supervisor = make_user(Role.SUPERVISOR, team="Billing support")
    mine_team = factories.conversation(team="Social care")
    other_team = factories.conversation(team="Billing support")
    unowned = factories.conversation()
    assigned_elsewhere = factories.conversation(team="Billing support")
    svc.assign(assigned_elsewhere, agent, actor=supervisor, now=NOW)
    db.session.commit()
    for c in (mine_team, unowned, assigned_elsewhere):
        assert svc.get_conversation_for(agent, c.id) is c
    with pytest.raises(NotFound):
        svc.get_conversation_for(agent, other_team.id)
    assert svc.get_conversation_for(supervisor, other_team.id) is other_team
    visible = {c.id for c in listing.list_conversations(agent, limit=100).items}
    assert visible == {mine_team.id, unowned.id, assigned_elsewhere.id}


def test_canned_response_placeholders_are_substituted_not_evaluated(app, make_user):
    agent = make_user(Role.AGENT, name="Alice Smith")
    c = factories.conversation(name="{{agent_name}} <script>", handle="maria_l")
    values = canned.placeholder_values(c, agent)
    text = canned.render(
        "Hi {{ contact_first_name }} ({{contact_handle}}), {{agent_first_name}} here. "
        "{{unknown}} {{ 7*7 }}",
        values,
    )
    assert text == "Hi {{agent_name}} (@maria_l), Alice here. {{unknown}} {{ 7*7 }}"


def test_canned_titles_are_unique(app, make_user):
    admin = make_user(Role.ADMIN)
    canned.create_response("Thanks", "Thank you {{contact_name}}", actor=admin, now=NOW)
    with pytest.raises(InboxError):
        canned.create_response("Thanks", "again", actor=admin, now=NOW)


def test_a_canned_response_with_an_unknown_placeholder_is_refused_naming_the_known_ones(
    app, make_user
):
    admin = make_user(Role.ADMIN)
    with pytest.raises(InboxError, match=r"Unknown placeholder \{\{first_name\}\}.*contact_first"):
        canned.create_response("Refunds", "Hi {{first_name}}, 5-7 days.", actor=admin, now=NOW)
    saved = canned.create_response("Refunds", "Hi {{ contact_first_name }}", actor=admin, now=NOW)
    with pytest.raises(InboxError, match=r"\{\{Agent\}\}"):
        canned.update_response(saved, "Refunds", "Hi, {{Agent}} here", actor=admin, now=NOW)


def test_read_state_is_per_agent(app, make_user):
    alice = make_user(Role.AGENT)
    bob = make_user(Role.AGENT)
    c = factories.conversation(team="Social care", sent_at=NOW)
    svc.mark_read(c, alice, now=NOW + timedelta(days=1))
    db.session.commit()
    assert listing.unread_ids(alice, [c]) == set()
    assert listing.unread_ids(bob, [c]) == {c.id}
    factories.message(c, "hello again", sent_at=NOW + timedelta(days=2))
    assert listing.unread_ids(alice, [c]) == {c.id}
