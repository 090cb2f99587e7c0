"""Routing rules: every condition and action, order and stop flags, the auto-reply sent once and
never counted as a response, the audit trail, regex guarding, validation, the dry run, and
auto-assignment of what the rules put in a team's queue."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from inbox.connectors import InboundMessage
from inbox.extensions import db
from inbox.models import (
    AssignmentMode,
    AuditEvent,
    Availability,
    BusinessCalendar,
    Conversation,
    Direction,
    Message,
    Platform,
    Priority,
    Role,
    RoutingRule,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    Status,
)
from inbox.services import routing
from inbox.services.accounts import get_or_create_team
from inbox.services.ingest import apply_inbound_message
from inbox.timeutil import utcnow
from tests import factories

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
_ids = itertools.count(1)


def inbound(
    text: str = "hello",
    *,
    author: str | None = None,
    kind: str = "dm",
    followers: int | None = None,
    verified: bool = False,
    sent_at: datetime | None = None,
    account_id: str = "brand-x",
) -> Message:
    n = next(_ids)
    author = author or f"cust-{n}"
    message = apply_inbound_message(
        InboundMessage(
            platform="x",
            account_id=account_id,
            external_id=f"m-{n}",
            kind=kind,
            is_public=kind != "dm",
            direction="inbound",
            sent_at=sent_at or utcnow(),
            text=text,
            author_id=author,
            author_handle=author,
            author_follower_count=followers,
            author_verified=verified,
        )
    )
    assert message is not None
    db.session.commit()
    return message


def rule(admin, name="Rule", *, conditions=(), actions=(), stop=False, active=True):
    r = routing.save_rule(
        None,
        name=name,
        active=active,
        stop=stop,
        conditions=list(conditions),
        actions_=list(actions),
        actor=admin,
        now=utcnow(),
    )
    db.session.commit()
    return r


def tags_of(conversation: Conversation) -> set[str]:
    db.session.refresh(conversation)
    return {t.name for t in conversation.tags}


TAG = [{"type": "add_tags", "tags": ["hit"]}]


# --- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "matching", "other"),
    [
        ({"type": "platform", "values": ["x"]}, {}, None),
        ({"type": "kind", "values": ["mention"]}, {"kind": "mention"}, {"kind": "dm"}),
        ({"type": "visibility", "value": "public"}, {"kind": "mention"}, {"kind": "dm"}),
        ({"type": "visibility", "value": "private"}, {"kind": "dm"}, {"kind": "mention"}),
        (
            {"type": "text_contains", "values": ["refund", "chargeback"]},
            {"text": "I want a REFUND now"},
            {"text": "hello there"},
        ),
        (
            {"type": "text_regex", "pattern": r"order\s*#?\d{5}"},
            {"text": "Where is order #12345?"},
            {"text": "Where is my order?"},
        ),
        (
            {"type": "followers_at_least", "value": 10000},
            {"followers": 25000},
            {"followers": 9999},
        ),
        ({"type": "verified", "value": True}, {"verified": True}, {"verified": False}),
        (
            {"type": "business_hours", "value": False, "calendar_id": "CAL"},
            {"sent_at": MONDAY_10 + timedelta(hours=10)},  # 20:00: closed
            {"sent_at": MONDAY_10},
        ),
        (
            {"type": "business_hours", "value": True, "calendar_id": "CAL"},
            {"sent_at": MONDAY_10},
            {"sent_at": MONDAY_10 - timedelta(days=1)},  # Sunday
        ),
    ],
)
def test_message_conditions(account, admin, condition, matching, other):
    calendar = BusinessCalendar(name="Office", timezone="UTC", weekly={"0": [["09:00", "17:00"]]})
    db.session.add(calendar)
    db.session.commit()
    if condition.get("calendar_id") == "CAL":
        condition = {**condition, "calendar_id": calendar.id}
    rule(admin, conditions=[condition], actions=TAG)
    assert tags_of(inbound(**matching).conversation) == {"hit"}
    if other is not None:
        assert tags_of(inbound(**other).conversation) == set()


def test_platform_and_channel_conditions(account, admin):
    other = factories.channel(Platform.X, "brand-2", "@brand2")
    db.session.commit()
    rule(admin, conditions=[{"type": "channel", "values": [other.id]}], actions=TAG)
    rule(
        admin,
        conditions=[{"type": "platform", "values": ["instagram"]}],
        actions=[{"type": "add_tags", "tags": ["ig"]}],
    )
    assert tags_of(inbound(account_id="brand-2").conversation) == {"hit"}
    assert tags_of(inbound().conversation) == set()


def test_conversation_conditions_language_sentiment_vip_and_tags(account, admin):
    first = inbound("hi", author="ana")
    c = first.conversation
    c.contact.is_vip = True
    db.session.commit()
    rule(
        admin,
        "lang",
        conditions=[{"type": "language", "values": ["ES"]}],
        actions=[{"type": "add_tags", "tags": ["spanish"]}],
    )
    rule(
        admin,
        "mood",
        conditions=[{"type": "sentiment", "value": "negative"}],
        actions=[{"type": "add_tags", "tags": ["upset"]}],
    )
    rule(
        admin,
        "vip",
        conditions=[{"type": "vip", "value": True}],
        actions=[{"type": "add_tags", "tags": ["vip"]}],
    )
    rule(
        admin,
        "chain",
        conditions=[{"type": "tags", "values": ["VIP"]}],
        actions=[{"type": "add_tags", "tags": ["tagged-vip"]}],
    )
    # Language and sentiment come from the classification of the customer's latest message.
    inbound("¡Es la tercera vez que pasa, estoy muy enfadada!", author="ana")
    assert tags_of(c) == {"spanish", "vip", "tagged-vip"}
    inbound("This is the worst service ever, I am furious", author="ana")
    assert tags_of(c) == {"spanish", "upset", "vip", "tagged-vip"}
    assert tags_of(inbound("hi", author="bob").conversation) == set()


def test_all_conditions_of_a_rule_must_hold(account, admin):
    rule(
        admin,
        conditions=[
            {"type": "text_contains", "values": ["refund"]},
            {"type": "kind", "values": ["mention"]},
        ],
        actions=TAG,
    )
    assert tags_of(inbound("refund please", kind="dm").conversation) == set()
    assert tags_of(inbound("refund please", kind="mention").conversation) == {"hit"}


# --- actions ------------------------------------------------------------------------------------


def test_set_team_priority_and_assign_with_audit_naming_the_rule(account, admin, make_user):
    agent = make_user(Role.AGENT, team="Billing")
    billing = get_or_create_team("Billing")
    db.session.commit()
    rule(
        admin,
        "Refunds to billing",
        conditions=[{"type": "text_contains", "values": ["refund"]}],
        actions=[
            {"type": "set_team", "team_id": billing.id},
            {"type": "set_priority", "priority": "high"},
            {"type": "assign", "user_id": agent.id},
        ],
    )
    c = inbound("refund please").conversation
    db.session.refresh(c)
    assert (c.team_id, c.priority, c.assignee_id) == (billing.id, Priority.HIGH, agent.id)
    entries = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_id == c.id, AuditEvent.action == "routing.action")
        .order_by(AuditEvent.id)
    ).all()
    assert [(e.after["rule"], e.after["action"]["type"]) for e in entries] == [
        ("Refunds to billing", "set_team"),
        ("Refunds to billing", "set_priority"),
        ("Refunds to billing", "assign"),
    ]
    assert all(e.actor_id is None for e in entries)


def test_mark_spam(account, admin):
    rule(
        admin,
        conditions=[{"type": "text_contains", "values": ["crypto"]}],
        actions=[{"type": "mark_spam"}],
    )
    spam = inbound("free crypto here").conversation
    assert db.session.get(Conversation, spam.id).is_spam


def test_assign_never_takes_an_item_from_its_agent(account, admin, make_user):
    ann, bob = make_user(Role.AGENT), make_user(Role.AGENT)
    rule(admin, actions=[{"type": "assign", "user_id": ann.id}])
    first = inbound("hi", author="carol")
    c = first.conversation
    assert c.assignee_id == ann.id
    from inbox.services import conversations

    conversations.assign(c, bob, actor=bob, now=utcnow())
    db.session.commit()
    inbound("still there?", author="carol")
    assert db.session.get(Conversation, c.id).assignee_id == bob.id


def test_auto_reply_goes_once_per_conversation_and_is_not_a_response(account, admin):
    policy = SlaPolicy(name="Standard", first_response_seconds=3600, business_hours=False)
    db.session.add(policy)
    db.session.commit()
    rule(admin, "Away", actions=[{"type": "auto_reply", "text": "We are away, back at 9."}])
    c = inbound("hello?", author="dora").conversation
    inbound("anyone?", author="dora")
    auto = db.session.scalars(
        select(Message).where(Message.conversation_id == c.id, Message.is_auto_reply.is_(True))
    ).all()
    assert len(auto) == 1
    assert auto[0].direction is Direction.OUTBOUND and auto[0].author_user_id is None
    db.session.refresh(c)
    assert c.first_response_at is None
    assert c.status is Status.NEW  # nobody has answered yet
    first = db.session.scalar(
        select(SlaClock).where(
            SlaClock.conversation_id == c.id, SlaClock.metric == SlaMetric.FIRST_RESPONSE
        )
    )
    assert first is not None and first.stopped_at is None
    assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.action == "message.auto_reply"))


def test_apply_sla_policy_pins_it_against_reselection(account, admin):
    fast = SlaPolicy(name="Fast", position=1, first_response_seconds=300, business_hours=False)
    pinned = SlaPolicy(name="VIP", position=2, first_response_seconds=900, business_hours=False)
    db.session.add_all([fast, pinned])
    db.session.commit()
    rule(admin, actions=[{"type": "apply_sla_policy", "policy_id": pinned.id}])
    c = inbound("hi").conversation
    db.session.refresh(c)
    assert (c.sla_policy_id, c.sla_policy_pinned) == (pinned.id, True)
    from inbox.services import conversations

    conversations.set_priority(c, Priority.URGENT, actor=None, now=utcnow())
    db.session.commit()
    assert db.session.get(Conversation, c.id).sla_policy_id == pinned.id


def test_an_action_that_cannot_run_is_audited_and_does_not_stop_ingestion(app, admin):
    factories.channel(Platform.X, "brand-x", "@brand")  # no access token: cannot send
    db.session.commit()
    rule(
        admin,
        "Away",
        actions=[
            {"type": "auto_reply", "text": "Back soon"},
            {"type": "add_tags", "tags": ["after-hours"]},
        ],
    )
    c = inbound("hello").conversation
    assert tags_of(c) == {"after-hours"}
    failed = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "routing.action_failed")
    )
    assert failed.after["rule"] == "Away" and "token" in failed.after["error"]


# --- order and stop -----------------------------------------------------------------------------


def test_rules_run_in_position_order_and_stop_ends_the_run(account, admin):
    high = rule(admin, "first", actions=[{"type": "set_priority", "priority": "high"}])
    rule(admin, "second", actions=[{"type": "set_priority", "priority": "low"}], stop=True)
    rule(admin, "third", actions=[{"type": "add_tags", "tags": ["late"]}])
    c = inbound("x").conversation
    db.session.refresh(c)
    assert c.priority is Priority.LOW and tags_of(c) == set()
    routing.move_rule(high, +1, actor=admin, now=utcnow())  # now second → first → third
    db.session.commit()
    assert [r.name for r in routing.ordered_rules()] == ["second", "first", "third"]
    c2 = inbound("y").conversation
    db.session.refresh(c2)
    assert c2.priority is Priority.LOW  # "second" stops before "first" runs


def test_inactive_rules_do_not_run(account, admin):
    rule(admin, actions=TAG, active=False)
    assert tags_of(inbound().conversation) == set()


def test_rule_edits_made_in_one_app_instance_are_applied_by_another(account, admin, make_app):
    """Each process compiles the rules once; another process (here a second app: its own
    engine and compiled rules) must still see an edit, and a deletion, at once."""
    worker = make_app()
    words = {"type": "text_contains", "values": ["refund"]}
    r = rule(admin, "Refunds", conditions=[words], actions=TAG)

    def tagged_by_worker(text: str) -> bool:
        with worker.app_context():
            return tags_of(inbound(text).conversation) == {"hit"}

    assert tagged_by_worker("a refund please")  # the worker has compiled the rules now
    routing.save_rule(
        r,
        name=r.name,
        active=True,
        stop=False,
        conditions=[{**words, "values": ["chargeback"]}],
        actions_=TAG,
        actor=admin,
        now=utcnow(),
    )
    db.session.commit()
    assert not tagged_by_worker("a refund please")
    assert tagged_by_worker("a chargeback")
    routing.delete_rule(r, actor=admin, now=utcnow())
    db.session.commit()
    assert not tagged_by_worker("a chargeback")


# --- validation and the regex guard --------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+)+$",
        r"(\w*)*x",
        r"(x|y+){2,}",
        r"(a|aa)+b",
        r"((a|aa))+b",
        r"(?:a|aa)*b",
        r"(a|aa|[^])])+$",
        r"(a|aa|[\])])+$",
        r"(a?a?)+$",
        r"(?x)(a|aa) +$",
        r"(a)\1",
        "a" * 201,
        "([unclosed",
    ],
)
def test_dangerous_or_broken_patterns_are_refused(app, admin, pattern):
    with pytest.raises(routing.RuleInvalid):
        rule(admin, conditions=[{"type": "text_regex", "pattern": pattern}], actions=TAG)


@pytest.mark.parametrize(
    "pattern",
    [
        r"\b(refund|chargeback)s?\b",
        r"order #?\d+",
        r"[+|*]+ urgent",
        r"(ab)+",
        r"\(a|b\)+",
        r"(?:ab)+",
        r"(a|b){2,5}",
        r"[]a]+ [^]]+",
    ],
)
def test_ordinary_patterns_are_accepted(app, admin, pattern):
    saved = rule(admin, conditions=[{"type": "text_regex", "pattern": pattern}], actions=TAG)
    assert saved.conditions[0]["pattern"] == pattern


@pytest.mark.parametrize(
    ("conditions", "actions"),
    [
        ([], []),
        ([{"type": "nope"}], TAG),
        ([{"type": "platform", "values": ["myspace"]}], TAG),
        ([{"type": "followers_at_least", "value": -1}], TAG),
        ([], [{"type": "set_team", "team_id": 999}]),
        ([], [{"type": "set_priority", "priority": "whenever"}]),
        ([], [{"type": "auto_reply", "text": "  "}]),
    ],
)
def test_invalid_rules_are_refused(app, admin, conditions, actions):
    with pytest.raises(routing.RuleInvalid):
        rule(admin, conditions=conditions, actions=actions)


# --- dry run and auto-assignment ---------------------------------------------------------------


def test_dry_run_lists_matches_among_recent_conversations_and_writes_nothing(account, admin):
    hits = [inbound("refund me") for _ in range(2)]
    inbound("just saying hi")
    draft = RoutingRule(
        name="draft",
        conditions=[{"type": "text_contains", "values": ["refund"]}],
        actions=[{"type": "mark_spam"}],
    )
    before = db.session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()))
    matched = routing.matching_conversations(draft, limit=50, now=utcnow())
    assert {c.id for c in matched} == {m.conversation_id for m in hits}
    assert not any(c.is_spam for c in matched)
    assert db.session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc())) == before


def test_a_routed_new_conversation_is_auto_assigned_to_an_online_agent(account, admin, make_user):
    agent = make_user(Role.AGENT, team="Billing")
    agent.availability = Availability.ONLINE
    billing = get_or_create_team("Billing")
    billing.assignment_mode = AssignmentMode.ROUND_ROBIN
    db.session.commit()
    rule(admin, actions=[{"type": "set_team", "team_id": billing.id}])
    c = inbound("invoice question").conversation
    db.session.refresh(c)
    assert (c.team_id, c.assignee_id, c.status) == (billing.id, agent.id, Status.OPEN)
