"""Who works what: "get next" for an agent, auto-assignment of a team's backlog (round robin
or least loaded, online agents under their capacity), and returning items to the queue when
their agent is gone or does not act.

Claiming is atomic on both databases: one conditional `UPDATE … WHERE id = (the most urgent
eligible row) AND assignee_id IS NULL` picks and takes the conversation together with an
assignment's bookkeeping (on PostgreSQL the pick is `SELECT … FOR UPDATE SKIP LOCKED`, so
concurrent agents skip each other's rows, and the audit row is written by the same statement;
SQLite runs one writer at a time and writes the audit row next). The statements are built
once per process and take every value as a parameter.
Nothing here commits (but `claim_next_by_token` is made for a request in autocommit mode, where
its one statement is its own transaction).
Imports: models, extensions.db, errors, services.conversations, services.accounts,
services.audit, services.calendar, services.sla (calendar specs), timeutil.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Integer,
    String,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    true,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased, joinedload
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql import ColumnElement, FromClause, Insert, Select, Update
from sqlalchemy.sql.functions import FunctionElement

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import (
    CLAIMABLE_STATUSES,
    OPEN_STATUSES,
    AssignmentMode,
    AuditEvent,
    Availability,
    BusinessCalendar,
    Contact,
    Conversation,
    Direction,
    Message,
    SlaClock,
    Status,
    Team,
    User,
    in_values,
    sla_order_key,
)
from inbox.services import conversations
from inbox.services.accounts import token_caller, token_params
from inbox.services.audit import record_audit
from inbox.services.calendar import business_time_between
from inbox.services.sla import calendar_spec
from inbox.timeutil import format_duration

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
        in_values(Conversation.status, CLAIMABLE_STATUSES)
        & Conversation.assignee_id.is_(None)
        & Conversation.is_spam.is_(False)
    )


class _json_object(FunctionElement[Any]):
    """`json_object(key, value, …)` as SQLite spells it; PostgreSQL's is json_build_object."""

    type = JSON()
    inherit_cache = True


@compiles(_json_object)
def _json_object_sqlite(element: _json_object, compiler: Any, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(_json_object, "postgresql")
def _json_object_postgresql(element: _json_object, compiler: Any, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


_NOW = bindparam("now", type_=Conversation.__table__.c.assigned_at.type)


def _take(conversation_id: Any, assignee_id: Any) -> Update:
    """Give conversation `conversation_id` (a bind parameter, or the pick subquery) to
    `assignee_id` (:user_id, or the caller's id) if it is still unassigned, with an
    assignment's bookkeeping in the same statement (what `conversations.record_assignment`
    does for an ORM object): assignment time, new → open, version, updated_at. The
    conditional WHERE is the atomic step everywhere."""
    return (
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.assignee_id.is_(None))
        .values(
            assignee_id=assignee_id,
            assigned_at=_NOW,
            status=case(
                (Conversation.status == Status.NEW.value, Status.OPEN.value),
                else_=Conversation.status,
            ),
            version=Conversation.version + 1,
            updated_at=_NOW,
        )
    )


def _assign_audit(taken: FromClause, actor_id: Any) -> Insert:
    """The `conversation.assign` audit rows of the conversations in `taken` (id, team_id,
    assignee_id after the take), as `record_assignment` writes them; the actor is `actor_id`
    (:actor_id, or the caller's id), the reason the :reason parameter."""
    return insert(AuditEvent.__table__).from_select(
        ["actor_id", "action", "target_type", "target_id", "before", "after", "created_at"],
        select(
            actor_id,
            literal("conversation.assign"),
            literal(Conversation.__tablename__),
            taken.c.id,
            _json_object(literal("assignee_id"), null(), literal("team_id"), taken.c.team_id),
            _json_object(
                literal("assignee_id"),
                taken.c.assignee_id,
                literal("team_id"),
                taken.c.team_id,
                literal("reason"),
                bindparam("reason", type_=String()),
            ),
            _NOW,
        ).select_from(taken),
    )


def _relations(entity: Any) -> tuple[ORMOption, ...]:
    """Eager loads of what is shown of a claimed conversation (the API's answer): its contact
    with identities, channel account, team, tags and SLA clocks with their policies. Joined,
    so they come with the conversation's row: the collections are a few rows each (one row
    per identity × tag × clock)."""
    return (
        joinedload(entity.contact).joinedload(Contact.identities),
        joinedload(entity.channel_account),
        joinedload(entity.team),
        joinedload(entity.tags),
        joinedload(entity.sla_clocks).joinedload(SlaClock.policy),
    )


@dataclass(frozen=True)
class _Claim:
    """The statements of one way of claiming; `take` returns the taken conversation (with an
    `answer`: the row of that answer, the conversation's id and new version). With
    `audit` None (PostgreSQL) the take wrote the audit row itself, in a data-modifying CTE;
    SQLite, which has no such CTEs, runs `audit` after it (with :conversation_id). `reload`
    (SQLite, with relations asked for) reads the taken conversation with them, as
    PostgreSQL's take returns it."""

    take: Select | Update
    audit: Insert | None
    reload: Select | None = None


Answer = Callable[[FromClause], ColumnElement[Any]]


@functools.cache
def _claim_statements(
    dialect: str, target: str, with_relations: bool = False, answer: Answer | None = None
) -> _Claim:
    """Built once per process (then compiled once by SQLAlchemy and prepared by psycopg):
    `target` is "everything" (get next for a manager), "agent" (get next for an agent, whose
    teams the statement looks up), "given" (auto-assignment: :conversation_id) or "token"
    (PostgreSQL only: get next for the user of the bearer token the statement checks itself,
    `accounts.token_caller`, returning the caller and `answer(took)` instead of the
    conversation, `took` being the taken row); `with_relations` also loads `_relations` (in
    the same statement on PostgreSQL)."""
    if (target == "token") != (answer is not None) or (target == "token" and with_relations):
        raise ValueError("an answer is for the token claim, which returns no conversation")
    assignee_id: Any = bindparam("user_id")
    actor_id: Any = bindparam("actor_id", type_=Integer())
    if target == "token":
        caller, touched = token_caller()
        assignee_id = actor_id = select(caller.c.id).scalar_subquery()
    if target == "given":
        conversation_id: Any = bindparam("conversation_id", type_=Integer())
    else:
        if target == "token":
            # An unknown token's caller is NULL, and NULL's visibility takes in the shared
            # queue: nothing may be taken without a caller.
            visible = assignee_id.is_not(None) & conversations.caller_visibility_clause(
                assignee_id, select(caller.c.role).scalar_subquery()
            )
        elif target == "everything":
            visible = true()
        else:
            visible = conversations.agent_visibility_clause(assignee_id)
        # Correlated to nothing: the subquery reads conversations itself, inside the UPDATE of
        # conversations. SKIP LOCKED (PostgreSQL) skips candidates other agents are claiming.
        conversation_id = (
            select(Conversation.id)
            .where(_unowned(), visible)
            .order_by(*NEXT_ORDER)
            # A constant, not a bind parameter: with LIMIT $n PostgreSQL costs a generic plan
            # for a tenth of the backlog, so it planned every claim anew (custom plans;
            # 0.5–1.6 ms of the server's CPU per claim) instead of reusing one prepared plan.
            .limit(literal_column("1", Integer()))
            .with_for_update(skip_locked=True, of=Conversation)
            .correlate(None)
            .scalar_subquery()
        )
    take = _take(conversation_id, assignee_id)
    if dialect != "postgresql":
        taken = (
            select(Conversation.id, Conversation.team_id, Conversation.assignee_id)
            .where(Conversation.id == bindparam("conversation_id", type_=Integer()))
            .subquery()
        )
        reload = None
        if with_relations:
            reload = (
                select(Conversation)
                .where(Conversation.id == bindparam("conversation_id", type_=Integer()))
                .options(*_relations(Conversation))
            )
        return _Claim(take.returning(Conversation), _assign_audit(taken, actor_id), reload)
    took = take.returning(*Conversation.__table__.c).cte("took")
    audit = _assign_audit(took, actor_id).cte("audit")
    if target == "token":
        # The caller's row whether or not a conversation was taken (no row: no such caller);
        # with none taken, `took`'s id is NULL (and the answer an object of NULLs).
        one_statement = (
            select(
                caller.c.id.label("caller_id"),
                caller.c.name,
                caller.c.email,
                answer(took).label("answer"),
                took.c.id,
                took.c.version,
            )
            .select_from(caller.outerjoin(took, true()))
            .add_cte(audit)
            .add_cte(touched)
        )
    else:
        taken_conversation = aliased(Conversation, took)
        one_statement = select(taken_conversation).add_cte(audit)
        if with_relations:
            one_statement = one_statement.options(*_relations(taken_conversation))
    # Compiled once here, before any thread shares it: SQLAlchemy fills parts of a select of
    # an entity aliased to a CTE lazily on the first compile, and threads compiling it for the
    # first time together (a gthread worker warming up) could get SQL without the CTE's
    # columns ("cartesian product", then "Query contains no columns"), which the compiled cache
    # then kept (test_concurrent_first_compiles_of_the_claim_statement_agree).
    one_statement.compile(dialect=db.engine.dialect)
    return _Claim(one_statement, None)


def _claim(
    target: str,
    assignee: User,
    *,
    actor: User | None,
    reason: str,
    now: datetime,
    conversation_id: int | None = None,
    with_relations: bool = False,
) -> Conversation | None:
    """Assign a conversation (the most urgent visible one, or `conversation_id`) to `assignee`
    if it is unassigned, with its bookkeeping, audit entry and live update; None if there is
    none or someone was faster. One statement on PostgreSQL."""
    claim = _claim_statements(db.engine.dialect.name, target, with_relations)
    params = {
        "user_id": assignee.id,
        "actor_id": actor.id if actor is not None else None,
        "reason": reason,
        "now": now,
        "conversation_id": conversation_id,
    }
    # The row as the statement left it, over any copy already in the session.
    refresh = {"populate_existing": True}
    # unique(): joined collections repeat the conversation's row.
    conversation = (
        db.session.scalars(claim.take, params, execution_options=refresh).unique().one_or_none()
    )
    if conversation is None:
        return None
    if claim.audit is not None:
        db.session.execute(claim.audit, {**params, "conversation_id": conversation.id})
    if claim.reload is not None:
        db.session.scalars(
            claim.reload, {"conversation_id": conversation.id}, execution_options=refresh
        ).unique().one()
    conversations.announce(conversation, "assign", actor=actor)
    return conversation


def claim_next(user: User, *, now: datetime, with_relations: bool = False) -> Conversation | None:
    """Claim for `user` the most urgent conversation they may see that is open, unassigned
    and not spam; None when there is none. Two agents never get the same conversation: the
    pick and the take are one statement (on PostgreSQL the pick skips rows other claims have
    locked; SQLite runs one writer at a time). `with_relations`: the conversation comes with
    its contact and identities, channel account, team, tags and SLA clocks loaded, by the
    same statement on PostgreSQL."""
    target = "everything" if conversations.sees_everything(user) else "agent"
    return _claim(
        target, user, actor=user, reason="get next", now=now, with_relations=with_relations
    )


@functools.cache
def _token_claim_sql(answer: Answer) -> tuple[str, dict[str, Any]]:
    """The "token" claim as SQL text with its constant parameters, compiled once per process.
    Executed as a statement, SQLAlchemy works out the cache key of its ≈ 6 KB on every call,
    looks the compiled form up and processes the parameters: a fifth of get next's CPU. Every
    parameter it takes is a plain value psycopg adapts itself (text, an aware datetime)."""
    compiled = _claim_statements("postgresql", "token", answer=answer).take.compile(
        dialect=db.engine.dialect
    )
    # The SQL with the constants written in (SQLAlchemy does that on each execution); the
    # per-call parameters (those without a value: the token's, the reason) stay placeholders,
    # given stand-ins here.
    per_call = dict.fromkeys(name for name, bind in compiled.binds.items() if bind.required)
    expanded = compiled.construct_expanded_state(per_call)
    constants = {k: v for k, v in expanded.parameters.items() if k not in per_call}
    return expanded.statement, constants


class Caller(NamedTuple):
    """The user behind a bearer token, as get next's statement read them."""

    id: int
    name: str
    email: str


@dataclass(frozen=True)
class TokenClaim:
    """What get next by bearer token did: who the caller is and the answer of the
    conversation claimed for them (None: there was nothing to claim)."""

    caller: Caller
    answer: Any | None


def claim_next_by_token(token: str, *, now: datetime, answer: Answer) -> TokenClaim | None:
    """`claim_next` on PostgreSQL for a request that has only a bearer token and only shows
    the conversation: one statement checks the token (as `accounts.user_for_token` does, its
    last use written once a minute as there), claims for the token's user, and returns
    `answer(took)` (say a JSON document PostgreSQL builds from the taken row `took` and its
    relations); no ORM object is made. None when the token is unknown or revoked or its user
    inactive: then nothing was claimed.
    In autocommit mode (the API's get next) the claim is written when this returns: should the
    caller fail before answering, the agent holds a conversation they were not told of, as
    after a lost answer; it shows in their queue, and the live update goes out with the
    session's commit.
    Why: building the conversation and its relations as ORM objects, to turn them into JSON
    at once, was most of get next's CPU; the token's own query and the pool's ping before it
    were most of the rest (docs/benchmarks.md)."""
    if db.engine.dialect.name != "postgresql":
        raise RuntimeError("claim_next_by_token needs PostgreSQL's data-modifying CTEs")
    params = token_params(token, now=now)
    if params is None:
        return None
    sql, constants = _token_claim_sql(answer)
    # On the session's connection, not through the session: no ORM entity is involved, and
    # the ORM's statement handling was a tenth of the call.
    row = (
        db.session.connection()
        .exec_driver_sql(sql, {**constants, **params, "reason": "get next"})
        .first()
    )
    if row is None:
        return None
    caller = Caller(row.caller_id, row.name, row.email)
    if row.id is None:
        return TokenClaim(caller, None)
    conversations.announce_change(row.id, row.version, "assign", actor_id=caller.id)
    return TokenClaim(caller, row.answer)


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
        taken = _claim(
            "given",
            agent,
            actor=None,
            reason=str(team.assignment_mode),
            now=now,
            conversation_id=conversation_id,
        )
        if taken is None:
            continue
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
