"""Assignment: "get next" (order, eligibility, atomic claims under concurrency on the database
under test), auto-assignment fairness and capacity, backlog draining, and returning items to
the queue when their agent is away or does not act."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import (
    AssignmentMode,
    AuditEvent,
    Availability,
    BusinessCalendar,
    Conversation,
    Direction,
    Priority,
    Role,
    Status,
)
from inbox.services import assignment, availability
from inbox.services import conversations as svc
from inbox.services.accounts import get_or_create_team
from tests import factories

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def assign_audits(conversation_id: int) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.target_type == "conversations",
                AuditEvent.target_id == conversation_id,
                AuditEvent.action.in_(["conversation.assign", "conversation.unassign"]),
            )
        )
    )


# --- get next -----------------------------------------------------------------------------------


def test_get_next_takes_earliest_sla_deadline_then_priority_then_age(app, make_user):
    agent = make_user(Role.AGENT)
    old = factories.conversation(team="Social care", sent_at=NOW - timedelta(hours=5))
    young = factories.conversation(team="Social care", sent_at=NOW - timedelta(hours=1))
    urgent = factories.conversation(team="Social care", sent_at=NOW - timedelta(minutes=5))
    urgent.priority = Priority.URGENT
    due_late = factories.conversation(team="Social care", sent_at=NOW - timedelta(minutes=1))
    due_soon = factories.conversation(team="Social care", sent_at=NOW - timedelta(minutes=2))
    due_late.sla_due_at = NOW + timedelta(hours=2)
    due_soon.sla_due_at = NOW + timedelta(minutes=10)
    db.session.commit()
    order = []
    while (c := assignment.claim_next(agent, now=NOW)) is not None:
        db.session.commit()
        order.append(c.id)
    assert order == [due_soon.id, due_late.id, urgent.id, old.id, young.id]


def test_get_next_skips_assigned_spam_pending_and_invisible_items(app, make_user):
    agent = make_user(Role.AGENT, team="Social care")
    colleague = make_user(Role.AGENT, team="Social care")
    taken = factories.conversation(team="Social care")
    svc.assign(taken, colleague, actor=colleague, now=NOW)
    spam = factories.conversation(team="Social care")
    spam.is_spam = True
    waiting = factories.conversation(team="Social care")
    waiting.status = Status.PENDING
    factories.conversation(team="Billing")  # another team's queue
    db.session.commit()
    assert assignment.claim_next(agent, now=NOW) is None
    shared = factories.conversation()  # the shared queue (no team) is everyone's
    c = assignment.claim_next(agent, now=NOW)
    assert c is not None and c.id == shared.id


def test_get_next_assigns_opens_audits_and_publishes(app, make_user):
    agent = make_user(Role.AGENT)
    c = factories.conversation(team="Social care")
    version = c.version
    claimed = assignment.claim_next(agent, now=NOW)
    db.session.commit()
    assert claimed is not None and claimed.id == c.id
    db.session.expire_all()
    c = db.session.get(Conversation, c.id)
    assert (c.assignee_id, c.status, c.assigned_at) == (agent.id, Status.OPEN, NOW)
    assert c.version > version
    [audit] = assign_audits(c.id)
    assert audit.actor_id == agent.id
    assert audit.after == {"assignee_id": agent.id, "team_id": c.team_id, "reason": "get next"}


def test_concurrent_get_next_claims_every_conversation_exactly_once(app, make_user):
    """8 agents hammer get-next at once (real threads, own sessions and connections) on the
    database under test: every conversation ends up claimed exactly once."""
    count = 120 if db.engine.dialect.name == "sqlite" else 400
    agents = [make_user(Role.AGENT, name=f"Agent {i}") for i in range(8)]
    account = factories.channel()
    team = get_or_create_team("Social care")
    for i in range(count):
        factories.conversation(team=team, account=account, commit=False)
        if i % 50 == 0:
            db.session.commit()
    db.session.commit()
    agent_ids = [a.id for a in agents]
    claims: dict[int, list[int]] = {uid: [] for uid in agent_ids}
    errors: list[BaseException] = []
    start = threading.Barrier(len(agent_ids))

    def work(user_id: int) -> None:
        try:
            with app.app_context():
                from inbox.models import User

                user = db.session.get(User, user_id)
                start.wait()
                while True:
                    c = assignment.claim_next(user, now=NOW)
                    if c is None:
                        db.session.rollback()
                        break
                    claims[user_id].append(c.id)
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # surfaced below: a thread must not fail silently
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(uid,)) for uid in agent_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    claimed = [cid for ids in claims.values() for cid in ids]
    assert len(claimed) == count
    assert len(set(claimed)) == count
    db.session.expire_all()
    per_conversation = db.session.execute(
        select(AuditEvent.target_id, func.count())
        .where(AuditEvent.action == "conversation.assign")
        .group_by(AuditEvent.target_id)
    ).all()
    assert len(per_conversation) == count and {n for _, n in per_conversation} == {1}
    owners = dict(db.session.execute(select(Conversation.id, Conversation.assignee_id)).all())
    for uid, ids in claims.items():
        assert all(owners[cid] == uid for cid in ids)
    assert sum(1 for ids in claims.values() if ids) > 1  # it really ran concurrently


# --- auto-assignment ------------------------------------------------------------------------------


@pytest.fixture
def trio(app, make_user):
    """A team of three online agents with room for everything."""
    team = get_or_create_team("Social care")
    agents = [make_user(Role.AGENT, name=f"Agent {n}") for n in "ABC"]
    for a in agents:
        a.availability = Availability.ONLINE
        a.capacity = 1000
    db.session.commit()
    return team, agents


def arrive(team, n: int, **kw) -> list[Conversation]:
    account = factories.channel()
    made = [
        factories.conversation(team=team, account=account, commit=False, **kw) for _ in range(n)
    ]
    db.session.commit()
    return made


def loads(agents) -> list[int]:
    counts = assignment.open_loads([a.id for a in agents])
    return [counts[a.id] for a in agents]


def test_round_robin_gives_300_arrivals_to_3_agents_100_each(trio):
    team, agents = trio
    team.assignment_mode = AssignmentMode.ROUND_ROBIN
    for _ in range(300):
        arrive(team, 1)
        assignment.assign_backlog(team, now=NOW)
        db.session.commit()
    assert loads(agents) == [100, 100, 100]


def test_least_loaded_keeps_open_counts_within_one(trio):
    team, agents = trio
    team.assignment_mode = AssignmentMode.LEAST_LOADED
    for i in range(300):
        arrive(team, 1)
        assignment.assign_backlog(team, now=NOW)
        if i % 7 == 0:  # agents resolve work unevenly as they go
            busiest = max(agents, key=lambda a: assignment.open_loads([a.id])[a.id])
            item = db.session.scalar(
                select(Conversation).where(
                    Conversation.assignee_id == busiest.id, Conversation.status == Status.OPEN
                )
            )
            svc.set_status(item, Status.RESOLVED, actor=busiest, now=NOW)
        db.session.commit()
        counts = loads(agents)
        assert max(counts) - min(counts) <= 1, counts


def test_capacity_is_respected_and_the_backlog_drains_when_an_agent_frees_up(trio):
    team, agents = trio
    team.assignment_mode = AssignmentMode.ROUND_ROBIN
    for a in agents:
        a.capacity = 2
    arrive(team, 8)
    assert assignment.assign_backlog(team, now=NOW) == 6
    db.session.commit()
    assert loads(agents) == [2, 2, 2]
    waiting = db.session.scalar(
        select(func.count()).where(
            Conversation.assignee_id.is_(None), Conversation.team_id == team.id
        )
    )
    assert waiting == 2
    item = db.session.scalar(select(Conversation).where(Conversation.assignee_id == agents[1].id))
    svc.set_status(item, Status.RESOLVED, actor=agents[1], now=NOW)
    assert assignment.assign_backlog(team, now=NOW) == 1
    db.session.commit()
    assert loads(agents) == [2, 2, 2]


def test_only_online_agents_get_work_and_coming_online_takes_the_backlog(trio):
    team, agents = trio
    team.assignment_mode = AssignmentMode.LEAST_LOADED
    for a in agents:
        a.availability = Availability.OFFLINE
    arrive(team, 3)
    assert assignment.assign_backlog(team, now=NOW) == 0
    availability.set_availability(agents[2], Availability.ONLINE, actor=agents[2], now=NOW)
    db.session.commit()
    assert loads(agents) == [0, 0, 3]


def test_manual_teams_are_never_auto_assigned(trio):
    team, agents = trio
    arrive(team, 3)
    assert assignment.assign_backlog(team, now=NOW) == 0
    assert loads(agents) == [0, 0, 0]


# --- returning work to the queue -----------------------------------------------------------------


def test_going_away_returns_auto_assigned_items_with_audit_and_a_note(trio):
    team, agents = trio
    team.assignment_mode = AssignmentMode.ROUND_ROBIN
    [c] = arrive(team, 1)
    assignment.assign_backlog(team, now=NOW)
    db.session.commit()
    owner = db.session.get(Conversation, c.id).assignee
    availability.set_availability(owner, Availability.AWAY, actor=owner, now=NOW)
    db.session.commit()
    db.session.expire_all()
    c = db.session.get(Conversation, c.id)
    # Back in the queue (a job then offers it to the colleagues still online).
    assert c.assignee_id != owner.id
    unassign = next(a for a in assign_audits(c.id) if a.action == "conversation.unassign")
    assert unassign.after["reason"] == "is away"
    notes = [m.text for m in c.messages if m.direction is Direction.NOTE]
    assert notes == [f"Returned to the queue: {owner.name} is away."]


def test_an_agent_who_does_not_act_within_the_timeout_loses_the_item(trio):
    team, agents = trio
    team.assignment_mode = AssignmentMode.ROUND_ROBIN
    team.assignment_timeout_minutes = 30
    idle, busy = arrive(team, 2)
    assignment.assign_backlog(team, now=NOW)
    db.session.commit()
    busy = db.session.get(Conversation, busy.id)
    svc.add_note(busy, "Looking into it", actor=busy.assignee, now=NOW + timedelta(minutes=5))
    db.session.commit()
    assert assignment.return_stale(now=NOW + timedelta(minutes=29)) == 0
    assert assignment.return_stale(now=NOW + timedelta(minutes=31)) == 1
    db.session.commit()
    assert db.session.get(Conversation, idle.id).assignee_id is None
    assert db.session.get(Conversation, busy.id).assignee_id is not None
    reasons = [a.after.get("reason") for a in assign_audits(idle.id)]
    assert reasons[-1] == "did not act within 30m"


def test_the_timeout_counts_business_time_on_the_team_calendar(trio):
    team, agents = trio
    team.assignment_mode = AssignmentMode.ROUND_ROBIN
    calendar = BusinessCalendar(
        name="Office", timezone="UTC", weekly={"0": [["09:00", "10:15"], ["14:00", "18:00"]]}
    )
    db.session.add(calendar)
    db.session.flush()
    team.calendar_id = calendar.id
    [c] = arrive(team, 1)
    assignment.assign_backlog(team, now=NOW)  # Monday 10:00: 15 business minutes to lunch
    db.session.commit()
    assert assignment.return_stale(now=NOW + timedelta(hours=3)) == 0  # 13:00: still 15m
    assert assignment.return_stale(now=NOW + timedelta(hours=4, minutes=16)) == 1


def test_concurrent_first_compiles_of_the_claim_statement_agree(app):
    """Threads of one process that compile a newly built claim statement at the same time
    (a gthread worker's first requests) all get the same SQL, with the CTE's columns. Without
    the builder's own first compile about one compile in six came out wrong."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.psycopg.dialect()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with app.app_context():
            expected = str(
                assignment._claim_statements.__wrapped__("postgresql", "agent").take.compile(
                    dialect=dialect
                )
            )
            compiled: list[str] = []
            for _ in range(40):
                statement = assignment._claim_statements.__wrapped__("postgresql", "agent").take
                start = threading.Barrier(8)

                def compile_it(statement=statement, start=start) -> None:
                    start.wait()
                    try:
                        compiled.append(str(statement.compile(dialect=dialect)))
                    except Exception as error:  # a broken compile raises, too
                        compiled.append(repr(error))

                threads = [threading.Thread(target=compile_it) for _ in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
    finally:
        sys.setswitchinterval(interval)
    assert "FROM took" in expected
    assert compiled == [expected] * 320
