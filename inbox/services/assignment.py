"""Who works what: "get next" for an agent, auto-assignment of a team's backlog (round robin
or least loaded, online agents under their capacity), and returning items to the queue when
their agent is gone or does not act.

Claiming is atomic on both databases: the candidate is picked (on PostgreSQL with
`SELECT … FOR UPDATE SKIP LOCKED`, so concurrent agents skip each other's rows) and taken with a
conditional `UPDATE … WHERE id = :id AND assignee_id IS NULL`; a zero rowcount (SQLite: someone
else took it between the two statements) means try the next one. The bookkeeping after the
claim (audit, status, live update) is `conversations.record_assignment`, shared with `assign`.
Nothing here commits.
Imports: models, extensions.db, errors, services.conversations, services.audit,
services.calendar, services.sla (calendar specs), timeutil.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.sql import ColumnElement

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import (
    CLAIMABLE_STATUSES,
    OPEN_STATUSES,
    AssignmentMode,
    AuditEvent,
    Availability,
    BusinessCalendar,
    Conversation,
    Direction,
    Message,
    Team,
    User,
    sla_order_key,
    status_in,
)
from inbox.services import conversations
from inbox.services.audit import record_audit
from inbox.services.calendar import business_time_between
from inbox.services.sla import calendar_spec
from inbox.timeutil import format_duration

CLAIM_ATTEMPTS = 20

# Most urgent first: the nearest SLA deadline (none last), then priority, then who waited longest.
# These are the columns of the claim index (models.conversations), so the first eligible row is
# read from it without sorting the backlog.
NEXT_ORDER = (
    sla_order_key(Conversation.sla_due_at),
    Conversation.priority_rank,
    Conversation.first_inbound_at.asc().nulls_last(),
    Conversation.id,
)


def _unowned() -> ColumnElement[bool]:
    # The claim index's WHERE, with the statuses as constants so PostgreSQL can prove it.
    return (
        status_in(Conversation.status, CLAIMABLE_STATUSES)
        & Conversation.assignee_id.is_(None)
        & Conversation.is_spam.is_(False)
    )


def _take(conversation_id: int, user: User, *, now: datetime) -> Conversation | None:
    """Assign conversation `conversation_id` to `user` if it is still unassigned; None if
    someone was faster. The conditional UPDATE is the atomic step on every database."""
    # RETURNING loads the updated row (over any copy already in the session): one statement
    # instead of the update, a load and a refresh.
    return db.session.scalars(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.assignee_id.is_(None))
        .values(assignee_id=user.id, version=Conversation.version + 1)
        .returning(Conversation)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).one_or_none()


def _candidate(query) -> int | None:
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Conversation)
    return db.session.scalar(query.limit(1))


def claim_next(user: User, *, now: datetime) -> Conversation | None:
    """Claim for `user` the most urgent conversation they may see that is open, unassigned
    and not spam; None when there is none. Two agents never get the same conversation."""
    query = (
        select(Conversation.id)
        .where(_unowned(), conversations.visibility_clause(user))
        .order_by(*NEXT_ORDER)
    )
    for _ in range(CLAIM_ATTEMPTS):
        conversation_id = _candidate(query)
        if conversation_id is None:
            return None
        conversation = _take(conversation_id, user, now=now)
        if conversation is not None:
            before = {"assignee_id": None, "team_id": conversation.team_id}
            conversations.record_assignment(
                conversation, before=before, actor=user, now=now, reason="get next"
            )
            return conversation
    return None  # lost the race every time: the caller may simply ask again


# --- auto-assignment ------------------------------------------------------------------------


def open_loads(user_ids: Sequence[int]) -> dict[int, int]:
    """Open conversations assigned to each of `user_ids` (what capacity is measured against)."""
    rows = db.session.execute(
        select(Conversation.assignee_id, func.count(Conversation.id))
        .where(Conversation.assignee_id.in_(user_ids), Conversation.status.in_(OPEN_STATUSES))
        .group_by(Conversation.assignee_id)
    ).all()
    loads = dict.fromkeys(user_ids, 0)
    loads.update({uid: n for uid, n in rows})
    return loads


def eligible_agents(team: Team) -> list[User]:
    """Members who may get auto-assigned work now: active and online, ordered by id."""
    return sorted(
        (m for m in team.members if m.active and m.availability is Availability.ONLINE),
        key=lambda m: m.id,
    )


def _pick(team: Team, agents: list[User], loads: dict[int, int]) -> User | None:
    free = [a for a in agents if loads[a.id] < a.capacity]
    if not free:
        return None
    if team.assignment_mode is AssignmentMode.LEAST_LOADED:
        return min(free, key=lambda a: (loads[a.id], a.id))
    last = team.last_assigned_user_id or 0
    return next((a for a in free if a.id > last), free[0])  # round robin: next in turn


def assign_backlog(team: Team, *, now: datetime) -> int:
    """Give `team`'s unassigned open conversations (most urgent first) to its online agents
    under capacity, per the team's mode; returns how many were assigned. Manual teams: 0."""
    if team.assignment_mode is AssignmentMode.MANUAL:
        return 0
    if db.engine.dialect.name == "postgresql":
        # One assigner per team at a time, so loads and the round-robin turn stay exact.
        db.session.execute(select(Team.id).where(Team.id == team.id).with_for_update())
        db.session.refresh(team, ["last_assigned_user_id"])
    agents = eligible_agents(team)
    if not agents:
        return 0
    loads = open_loads([a.id for a in agents])
    backlog = db.session.scalars(
        select(Conversation.id)
        .where(_unowned(), Conversation.team_id == team.id)
        .order_by(*NEXT_ORDER)
    ).all()
    assigned = 0
    for conversation_id in backlog:
        agent = _pick(team, agents, loads)
        if agent is None:
            break
        conversation = _take(conversation_id, agent, now=now)
        if conversation is None:
            continue
        conversations.record_assignment(
            conversation,
            before={"assignee_id": None, "team_id": team.id},
            actor=None,
            now=now,
            reason=str(team.assignment_mode),
        )
        loads[agent.id] += 1
        team.last_assigned_user_id = agent.id
        assigned += 1
    return assigned


def assign_all_backlogs(*, now: datetime) -> int:
    """The periodic safety net: every auto-assigned team's backlog."""
    teams = db.session.scalars(
        select(Team).where(Team.assignment_mode != AssignmentMode.MANUAL).order_by(Team.id)
    ).all()
    return sum(assign_backlog(team, now=now) for team in teams)


def configure_team(
    team: Team,
    *,
    mode: AssignmentMode,
    timeout_minutes: int,
    calendar: BusinessCalendar | None,
    actor: User,
    now: datetime,
) -> None:
    """Change how `team` is assigned (audited); switching auto-assignment on hands out the
    waiting backlog at once."""
    if timeout_minutes < 1:
        raise InboxError("The timeout must be at least one minute.")
    before = _team_settings(team)
    team.assignment_mode = mode
    team.assignment_timeout_minutes = timeout_minutes
    team.calendar_id = calendar.id if calendar is not None else None
    record_audit(
        "team.assignment", team, actor=actor, before=before, after=_team_settings(team), now=now
    )
    db.session.flush()
    assign_backlog(team, now=now)


def _team_settings(team: Team) -> dict[str, object]:
    return {
        "assignment_mode": str(team.assignment_mode),
        "assignment_timeout_minutes": team.assignment_timeout_minutes,
        "calendar_id": team.calendar_id,
    }


# --- returning work to the queue ----------------------------------------------------------------


def _acted_since(conversation: Conversation, user_id: int, since: datetime) -> bool:
    """Whether the agent replied, wrote a note or changed the conversation since `since`."""
    wrote = exists().where(
        Message.conversation_id == conversation.id,
        Message.author_user_id == user_id,
        Message.direction.in_([Direction.OUTBOUND, Direction.NOTE]),
        Message.created_at > since,
    )
    changed = exists().where(
        AuditEvent.target_type == Conversation.__tablename__,
        AuditEvent.target_id == conversation.id,
        AuditEvent.actor_id == user_id,
        AuditEvent.created_at > since,
    )
    return bool(db.session.scalar(select(wrote | changed)))


def release(conversation: Conversation, reason: str, *, now: datetime) -> None:
    """Put `conversation` back in its team's queue, with `reason` in the audit and the thread."""
    agent = conversation.assignee
    conversations.assign(conversation, None, actor=None, now=now, reason=reason)
    name = agent.name if agent is not None else "The agent"
    conversations.add_system_note(conversation, f"Returned to the queue: {name} {reason}.", now=now)


def release_agent(agent: User, *, now: datetime) -> int:
    """`agent` went away or offline: their auto-assigned teams' open items go back."""
    items = db.session.scalars(
        select(Conversation)
        .join(Team, Conversation.team_id == Team.id)
        .where(
            Conversation.assignee_id == agent.id,
            Conversation.status.in_(CLAIMABLE_STATUSES),
            Team.assignment_mode != AssignmentMode.MANUAL,
        )
        .order_by(Conversation.id)
    ).all()
    for conversation in items:
        release(conversation, f"is {agent.availability}", now=now)
    return len(items)


def return_stale(*, now: datetime) -> int:
    """Return the items of auto-assigned teams whose agent is not online, or has not acted
    within the team's timeout (business time on the team's calendar); returns how many."""
    rows = db.session.execute(
        select(Conversation, Team)
        .join(Team, Conversation.team_id == Team.id)
        .where(
            Conversation.assignee_id.is_not(None),
            Conversation.status.in_(CLAIMABLE_STATUSES),
            Team.assignment_mode != AssignmentMode.MANUAL,
        )
        .order_by(Conversation.id)
    ).all()
    returned = 0
    for conversation, team in rows:
        agent = conversation.assignee
        assert agent is not None
        if agent.availability is not Availability.ONLINE:
            release(conversation, f"is {agent.availability}", now=now)
            returned += 1
            continue
        since = conversation.assigned_at or conversation.updated_at
        calendar = db.session.get(BusinessCalendar, team.calendar_id or 0)
        waited = business_time_between(since, now, calendar_spec(calendar))
        limit = timedelta(minutes=team.assignment_timeout_minutes)
        if waited >= limit and not _acted_since(conversation, agent.id, since):
            release(
                conversation,
                f"did not act within {format_duration(limit.total_seconds())}",
                now=now,
            )
            returned += 1
    return returned
