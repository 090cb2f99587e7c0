"""The SLA engine: choosing a policy, running the clocks, the sweep and the explanation.

Owns the SLA ledger (`SlaClock`, `SlaClockEvent`) and the conversation's denormalised
`sla_policy_id` / `sla_due_at` / `sla_state`. The exact semantics are in docs/sla.md; in short:

* Response clocks (first response, next-response cycles) are *derived from the messages*: every
  hook rebuilds the wanted cycles from the conversation's messages in platform-timestamp order
  (plus the instants it was resolved) and reconciles the stored rows with them, recording a
  start / met / stop / adjust event for every difference. So out-of-order arrival, re-delivery
  and historical imports all end in the same ledger as in-order live traffic.
* The resolution clock starts at the first customer message and is driven by status changes:
  pending/snoozed pause it, resolved/closed stop it, a reopen turns the resolved stretch into a
  pause and resumes it.
* Due and warning instants are business time on the policy's calendar (or calendar time),
  always counted from the clock's original start and skipping its pauses.

Hooks other code calls: `on_message`, `on_status_change`, `on_attributes_change`; the worker
calls `sweep`; the conversation page calls `explain`.
Imports: models, extensions.db, services.calendar, services.config_versions, services.audit,
queue, live, timeutil, webhook_client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, joinedload, make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.functions import FunctionElement

from inbox import webhook_client
from inbox.bulk import insert_rows
from inbox.extensions import db
from inbox.live import publish_many_after_commit
from inbox.models import (
    BusinessCalendar,
    ClockEventKind,
    Conversation,
    Direction,
    Message,
    Notification,
    Priority,
    Role,
    SlaClock,
    SlaClockEvent,
    SlaMetric,
    SlaPolicy,
    SlaState,
    Status,
    StopReason,
    Team,
    User,
    Visibility,
    WarnMode,
)
from inbox.models.base import UTCDateTime
from inbox.queue import enqueue_after_commit
from inbox.services import config_versions
from inbox.services.audit import record_audit
from inbox.services.calendar import CalendarSpec, add_business_time, business_time_between
from inbox.services.calendar import open_intervals as calendar_open_intervals
from inbox.timeutil import as_utc, format_duration

PAUSING_STATUSES = (Status.PENDING, Status.SNOOZED)
CLOSED_STATUSES = (Status.RESOLVED, Status.CLOSED)
METRIC_LABELS = {
    SlaMetric.FIRST_RESPONSE: "First response",
    SlaMetric.NEXT_RESPONSE: "Next response",
    SlaMetric.RESOLUTION: "Resolution",
}
# What one clock of each metric is called, so that a number carries its unit ("241 of 307
# next-response cycles met"). Only next response runs several cycles in one conversation (one
# per customer message we answer), so only its counts can exceed the conversations behind them.
CYCLE_NOUNS = {
    SlaMetric.FIRST_RESPONSE: ("a first response", "first responses"),
    SlaMetric.NEXT_RESPONSE: ("a next-response cycle", "next-response cycles"),
    SlaMetric.RESOLUTION: ("a resolution", "resolutions"),
}
REPEATING_METRICS = frozenset({SlaMetric.NEXT_RESPONSE})
_PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)
_ALWAYS_OPEN = CalendarSpec.twenty_four_seven()


# --- calendars and policies -------------------------------------------------------------


def calendar_spec(calendar: BusinessCalendar | None) -> CalendarSpec:
    """The pure calendar for a stored one (24/7 UTC for None); raises ValueError if invalid."""
    if calendar is None:
        return _ALWAYS_OPEN
    return _spec(
        calendar.timezone,
        calendar.always_open,
        tuple(sorted((day, tuple(map(tuple, ivs))) for day, ivs in calendar.weekly.items())),
        tuple(sorted(calendar.holidays)),
        calendar.country or None,
        calendar.subdivision or None,
    )


@lru_cache(maxsize=256)
def _spec(timezone, always_open, weekly, holidays, country, subdivision) -> CalendarSpec:
    # Keyed by the calendar's content, so an edited calendar is never served stale; building a
    # spec validates the country through the (slow) holidays package, hence the cache.
    if always_open:
        return CalendarSpec.twenty_four_seven(timezone)
    return CalendarSpec(
        timezone=timezone,
        weekly={
            int(day): tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in ivs)
            for day, ivs in weekly
            if ivs
        },
        holidays=frozenset(date.fromisoformat(d) for d in holidays),
        country=country,
        subdivision=subdivision,
    )


def policy_matches(policy: SlaPolicy, conversation: Conversation) -> bool:
    """Whether every condition of `policy` holds for `conversation` (empty ones always do)."""
    if policy.priorities and str(conversation.priority) not in policy.priorities:
        return False
    if policy.platforms and str(conversation.platform) not in policy.platforms:
        return False
    if policy.kinds and str(conversation.kind) not in policy.kinds:
        return False
    if policy.visibility is Visibility.PUBLIC and not conversation.is_public:
        return False
    if policy.visibility is Visibility.PRIVATE and conversation.is_public:
        return False
    if policy.team_id is not None and conversation.team_id != policy.team_id:
        return False
    if policy.tags and not {t.name for t in conversation.tags} & set(policy.tags):
        return False
    return policy.vip is None or bool(conversation.contact.is_vip) == policy.vip


def select_policy(conversation: Conversation) -> SlaPolicy | None:
    """The first active policy (by position, then id) whose conditions match, unless a routing
    rule pinned one on the conversation (`sla_policy_pinned`): that one stays."""
    if conversation.sla_policy_pinned and conversation.sla_policy_id is not None:
        pinned = _load_policy(conversation.sla_policy_id)
        if pinned is not None:
            return pinned
    chosen = next((p for p in _active_policies() if policy_matches(p, conversation)), None)
    return _attached(chosen)


def _load_policy(policy_id: int | None) -> SlaPolicy | None:
    if policy_id is None:
        return None
    cached = next((p for p in _active_policies() if p.id == policy_id), None)
    if cached is not None:
        return _attached(cached)
    # An inactive policy (still in force on older conversations), with its calendar in the
    # same query when it is not in the session yet: the clocks need both.
    return db.session.get(SlaPolicy, policy_id, options=[joinedload(SlaPolicy.calendar)])


# --- the per-process policy cache -----------------------------------------------------------
#
# Every hook needs the active policies with their calendars; reading them is a query and a
# few ORM objects per message. Each process keeps detached copies, read under the "sla"
# configuration's version token (services.config_versions), which every write to a policy
# or calendar replaces in its own transaction.


@dataclass(frozen=True)
class _PolicyCache:
    token: str | None = None
    policies: tuple[SlaPolicy, ...] = ()  # active, in order, detached, calendars loaded


_policy_cache: _PolicyCache | None = None  # None: not read yet in this process
config_versions.watch("sla", SlaPolicy, BusinessCalendar)
_ACTIVE_POLICIES = (
    select(SlaPolicy)
    .where(SlaPolicy.active.is_(True))
    .order_by(SlaPolicy.position, SlaPolicy.id)
    .options(joinedload(SlaPolicy.calendar))
)


def _active_policies() -> Sequence[SlaPolicy]:
    """The active policies in order with their calendars: the process's cached copies, or
    the session's own objects when this transaction changed a policy or calendar (its
    uncommitted state is no one else's)."""
    global _policy_cache
    # The query's autoflush writes pending policy/calendar changes, which replaces the token.
    token = config_versions.token("sla")
    if config_versions.changed_here("sla"):
        return db.session.scalars(_ACTIVE_POLICIES).unique().all()
    cache = _policy_cache
    # A None token (never configured) is cached too: the first write creates a token.
    if cache is None or cache.token != token:
        # A session of its own on this transaction's connection: the copies must not be the
        # objects of the caller's session.
        with Session(bind=db.session.connection()) as reader:
            cache = _PolicyCache(token, tuple(reader.scalars(_ACTIVE_POLICIES).unique()))
        _policy_cache = cache
    return cache.policies


def _attached(policy: SlaPolicy | None) -> SlaPolicy | None:
    """`policy` in this session: a cached copy is merged in (with its calendar) without a
    query; the session's own object is returned as it is."""
    if policy is None or not inspect(policy).detached:
        return policy
    return db.session.merge(policy, load=False)


def counts_as_response(message: Any, policy: SlaPolicy | None) -> bool:
    """A public outbound reply; echoes (no author user) and auto-replies per the policy."""
    if message.direction != Direction.OUTBOUND:
        return False
    if message.is_auto_reply and not (policy and policy.count_auto_replies):
        return False
    return message.author_user_id is not None or policy is None or policy.count_echoes


# --- the hooks ----------------------------------------------------------------------------


def on_message(
    conversation: Conversation,
    message: Message,
    *,
    now: datetime,
    rows: list[Row] | None = None,
) -> None:
    """Run the clocks after `message` (inbound, outbound or note) joined `conversation`.

    Notes never change a clock, so they return at once. Anything else reconciles the response
    cycles with the full message history, which is what makes late messages land correctly.
    `rows`: the conversation's `message_rows`, when the caller has just read them.
    """
    if message.direction is Direction.NOTE:
        return
    _sync(conversation, now=now, rows=rows)


def discard_ledger(conversation: Conversation) -> None:
    """Delete a conversation's clocks and their events (its thread was merged into another,
    whose clocks are rebuilt from the merged messages)."""
    clock_ids = select(SlaClock.id).where(SlaClock.conversation_id == conversation.id)
    db.session.execute(delete(SlaClockEvent).where(SlaClockEvent.clock_id.in_(clock_ids)))
    db.session.execute(delete(SlaClock).where(SlaClock.conversation_id == conversation.id))
    db.session.expire(conversation, ["sla_clocks"])


# Clocks opened and not written yet, each with its events' column values (see `_opening`).
Opened = dict[SlaClock, list[dict[str, Any]]]


class MessageRow(NamedTuple):
    """The message columns the clocks are computed from (`message_rows` reads them; a CSV
    import builds them from the rows it has just inserted)."""

    id: int
    conversation_id: int
    direction: Direction
    sent_at: datetime
    author_user_id: int | None
    is_auto_reply: bool


@dataclass(frozen=True)
class Preloaded:
    """The ledgers of many conversations read at once, for the hooks to run over a CSV
    import's batch without a query or a write per conversation: each conversation's message
    rows (which must not change meanwhile) and clocks (which the hooks extend), and the clocks
    the batch opened. The caller calls `write_opened` at the end."""

    rows: dict[int, Sequence[Row | MessageRow]]
    clocks: dict[int, list[SlaClock]]
    opened: Opened = field(default_factory=dict)


def write_opened(preloaded: Preloaded, *, keep: bool = False) -> None:
    """Write the clocks a preloaded batch opened, with their events. With `keep` they join
    the session (webhook deliveries: later hooks of the transaction find them); else they
    stay out of it: the import's batch is over, and making thousands of objects persistent
    (then expiring them at commit) cost a third of its clock phase."""
    _write_opened(preloaded.opened, batch=True, keep=keep)


def message_rows(conversation_ids: Sequence[int]) -> dict[int, list[Row]]:
    """The message columns the clocks are computed from, per conversation, in platform-time
    order; notes never count, so they are left out. Ingestion computes a thread's times from
    the same rows (one read for both)."""
    rows: dict[int, list[Row]] = {i: [] for i in conversation_ids}
    for row in db.session.execute(
        select(
            Message.id,
            Message.conversation_id,
            Message.direction,
            Message.sent_at,
            Message.author_user_id,
            Message.is_auto_reply,
        )
        .where(Message.conversation_id.in_(conversation_ids), Message.direction != Direction.NOTE)
        .order_by(Message.conversation_id, Message.sent_at, Message.id)
    ):
        rows[row.conversation_id].append(row)
    return rows


def preload(
    conversation_ids: Sequence[int],
    *,
    loaded: Mapping[int, Sequence[SlaClock]] | None = None,
    rows: dict[int, Sequence[MessageRow]] | None = None,
) -> Preloaded:
    """Read the messages and clocks of these conversations in two queries. The clocks of
    conversations in `loaded` (their ledger collections, when loaded) are not read again;
    `rows`: their message rows when the caller has them (it has just written them)."""
    loaded = loaded or {}
    clocks: dict[int, list[SlaClock]] = {i: list(loaded.get(i, ())) for i in conversation_ids}
    unread = [i for i in conversation_ids if i not in loaded]
    if unread:
        for clock in db.session.scalars(
            select(SlaClock).where(SlaClock.conversation_id.in_(unread))
        ):
            clocks[clock.conversation_id].append(clock)
    if rows is None:
        return Preloaded(message_rows(conversation_ids), clocks)
    return Preloaded({i: rows[i] for i in conversation_ids}, clocks)


def recompute(
    conversation: Conversation, *, now: datetime, preloaded: Preloaded | None = None
) -> None:
    """Run the clocks over a conversation whose messages were written in bulk (CSV import).
    With `preloaded`, `conversation` may be any object with the Conversation attributes the
    hooks read and set (the import's `csv_import.ImportedConversation`)."""
    _sync(conversation, now=now, preloaded=preloaded)


def on_status_change(
    conversation: Conversation,
    old_status: Status,
    *,
    actor: User | None,
    now: datetime,
    preloaded: Preloaded | None = None,
) -> None:
    """Pause, resume, stop or reopen the resolution clock for the status change that has just
    been applied to `conversation` (from `old_status`); resolving also stops response clocks."""
    new_status = conversation.status
    if new_status == old_status:
        return
    clocks = _clocks(conversation) if preloaded is None else preloaded.clocks[conversation.id]
    clock = next((c for c in clocks if c.metric is SlaMetric.RESOLUTION), None)
    detail = {"from": str(old_status), "to": str(new_status), "actor_id": _id(actor)}
    with _opening(preloaded):
        _change_resolution(clock, conversation, now, detail)
    _sync(conversation, now=now, preloaded=preloaded)


def _change_resolution(clock: SlaClock | None, conversation: Conversation, now, detail) -> None:
    new_status = conversation.status
    if clock is not None:
        at = max(as_utc(now), clock.started_at)
        if new_status not in CLOSED_STATUSES and clock.stop_reason is StopReason.RESOLVED:
            _reopen(clock, at, detail, now)
        if new_status in CLOSED_STATUSES:
            if clock.running:
                _stop(clock, at, StopReason.RESOLVED, f"conversation {new_status}", now, detail)
        elif clock.paused and clock.pauses[-1]["why"] != str(new_status):
            _resume(clock, at, f"status changed to {new_status}", now, detail)
        if new_status in PAUSING_STATUSES and clock.running and not clock.paused:
            _pause(clock, at, str(new_status), now, detail)


def on_attributes_change(conversation: Conversation, *, actor: User | None, now: datetime) -> None:
    """Priority, team, tags or VIP changed: re-select the policy; running clocks get the new
    targets counted from their original start (a POLICY_CHANGE event says so)."""
    policy = select_policy(conversation)
    policy_id = policy.id if policy is not None else None
    if policy_id != conversation.sla_policy_id:
        record_audit(
            "conversation.sla_policy",
            conversation,
            actor=actor,
            before={"sla_policy_id": conversation.sla_policy_id},
            after={"sla_policy_id": policy_id},
            now=now,
        )
        conversation.sla_policy_id = policy_id
    _sync(conversation, now=now, actor=actor)


# --- reconciling the ledger ---------------------------------------------------------------


@dataclass
class _Cycle:
    metric: SlaMetric
    cycle: int
    start: datetime
    stop: datetime | None = None
    reason: StopReason | None = None


def _sync(
    conversation: Conversation,
    *,
    now: datetime,
    actor: User | None = None,
    preloaded: Preloaded | None = None,
    rows: list[Row] | None = None,
) -> None:
    # The conversation's ledger is read here (unless the caller has read its rows, or it is
    # loaded, or preloaded for a batch). The clocks the hook opens are written when it ends
    # (or with the batch) and join the ledger collection, where the next hook of this
    # transaction finds them; its changes to stored clocks are flushed with the caller's own
    # changes (by its commit or next query).
    if preloaded is None:
        stored = list(_clocks(conversation))
        if rows is None:
            rows = message_rows([conversation.id])[conversation.id]
        clocks = list(stored)
    else:
        clocks = preloaded.clocks[conversation.id]
        rows = preloaded.rows[conversation.id]
        stored = list(clocks)
    with _opening(preloaded) as opened:
        _reconcile(conversation, clocks, stored, rows, as_utc(now), actor)
        if preloaded is None:
            _write_opened(opened)
            # As if loaded: the opened clocks are in the database now.
            set_committed_value(conversation, "sla_clocks", clocks)


def _reconcile(conversation, clocks, stored, rows, now, actor) -> None:
    """Bring the conversation's ledger in line with its messages; `clocks` (the stored ones
    and those a batch opened earlier) is extended in place with the clocks opened here."""
    first_inbound = next((r.sent_at for r in rows if r.direction is Direction.INBOUND), None)
    if first_inbound is None:
        _refresh_conversation(conversation, clocks, now)
        return
    if conversation.sla_policy_id is None and not clocks:
        policy = select_policy(conversation)
        conversation.sla_policy_id = policy.id if policy is not None else None
    else:
        policy = _load_policy(conversation.sla_policy_id)

    resolution = next((c for c in clocks if c.metric is SlaMetric.RESOLUTION), None)
    if resolution is None:
        resolution = _open_clock(
            conversation,
            SlaMetric.RESOLUTION,
            1,
            first_inbound,
            policy,
            now,
            "first customer message",
        )
        clocks.append(resolution)
        if conversation.status in PAUSING_STATUSES:
            _pause(resolution, first_inbound, str(conversation.status), now, {})
        elif conversation.status in CLOSED_STATUSES:
            _stop(resolution, first_inbound, StopReason.RESOLVED, "already resolved", now, {})
    elif first_inbound < resolution.started_at:
        _move_start(resolution, first_inbound, now)

    wanted = _response_cycles(rows, _resolved_marks(resolution), policy)
    existing = {(c.metric, c.cycle): c for c in clocks if c.metric is not SlaMetric.RESOLUTION}
    for cycle in wanted:
        clock = existing.pop((cycle.metric, cycle.cycle), None)
        if clock is None:
            reason = (
                "first customer message"
                if cycle.metric is SlaMetric.FIRST_RESPONSE
                else "customer wrote again after our reply or a resolution"
            )
            clock = _open_clock(
                conversation, cycle.metric, cycle.cycle, cycle.start, policy, now, reason
            )
            clocks.append(clock)
        elif clock.started_at != cycle.start:
            _move_start(clock, cycle.start, now)
        if (clock.stopped_at, clock.stop_reason) != (cycle.stop, cycle.reason):
            if clock.stopped_at is not None:
                _unstop(clock, cycle.stop, now)
            if cycle.stop is not None:
                why = "our reply" if cycle.reason is StopReason.REPLIED else "conversation resolved"
                _stop(clock, max(cycle.stop, clock.started_at), cycle.reason, why, now, {})
    for clock in existing.values():
        if clock.stop_reason is not StopReason.SUPERSEDED:
            at = clock.stopped_at or clock.started_at
            clock.stopped_at = None
            _stop(
                clock,
                at,
                StopReason.SUPERSEDED,
                "cycle no longer exists after a late message",
                now,
                {},
            )

    # A clock opened above already has this policy's targets and schedule (a pause since then
    # rescheduled it with the same policy): computing them again would change nothing.
    for clock in stored:
        if clock.running:
            _apply_policy(clock, policy, now, actor)
    _refresh_conversation(conversation, clocks, now)


def _response_cycles(rows: Sequence[Any], resolved: list[datetime], policy) -> list[_Cycle]:
    """The response cycles the messages call for, in order (see docs/sla.md)."""
    timeline: list[tuple[datetime, int, int, str]] = []
    for r in rows:
        if r.direction is Direction.INBOUND:
            timeline.append((r.sent_at, 0, r.id, "in"))
        elif counts_as_response(r, policy):
            timeline.append((r.sent_at, 0, r.id, "reply"))
    # At the same instant a message comes before a resolution.
    timeline += [(at, 1, 0, "resolved") for at in resolved]
    timeline.sort()
    cycles: list[_Cycle] = []
    current: _Cycle | None = None
    for at, _, _, what in timeline:
        if what == "in":
            if current is None:
                metric = SlaMetric.NEXT_RESPONSE if cycles else SlaMetric.FIRST_RESPONSE
                number = sum(c.metric is metric for c in cycles) + 1
                current = _Cycle(metric, number, at)
                cycles.append(current)
        elif current is not None:
            current.stop = at
            current.reason = StopReason.REPLIED if what == "reply" else StopReason.RESOLVED
            current = None
    return cycles


def _resolved_marks(resolution: SlaClock) -> list[datetime]:
    marks = [_dt(p["start"]) for p in resolution.pauses if p["why"] == "resolved"]
    if resolution.stop_reason is StopReason.RESOLVED and resolution.stopped_at is not None:
        marks.append(resolution.stopped_at)
    return marks


def _clocks(conversation: Conversation) -> list[SlaClock]:
    """The conversation's ledger collection: loaded with it when it was built in this
    transaction (models.sla), read otherwise. Reading it flushes nothing, so the
    conversation's pending changes and the SLA columns set later go out in one UPDATE; every
    clock opened outside a preloaded batch is written by the hook that opened it."""
    with db.session.no_autoflush:
        return conversation.sla_clocks


# The clocks opened by the hook (or preloaded batch) that is running, outside the session
# until `_write_opened` inserts them and their events with two statements: through the unit
# of work the two INSERTs of a new conversation's clocks cost three times as much.
_opened: ContextVar[Opened | None] = ContextVar("inbox_sla_opened", default=None)


@contextmanager
def _opening(preloaded: Preloaded | None) -> Iterator[Opened]:
    """The registry of opened clocks for the hook that is starting: the batch's when
    preloaded, else a new one (which its hook writes). Hooks do not run inside hooks."""
    assert _opened.get() is None, "a hook started inside another hook"
    opened = preloaded.opened if preloaded is not None else {}
    token = _opened.set(opened)
    try:
        yield opened
    finally:
        _opened.reset(token)


def _write_opened(opened: Opened, *, batch: bool = False, keep: bool = True) -> None:
    """Insert the opened clocks (ids returned in order), then their events. Kept clocks
    join the session as persistent objects holding every column, so nothing is read back
    when the next hook of the transaction finds them; a batch's are written in bulk
    (`insert_rows`: for the one to three rows of a hook it costs ≈ 2.5 ms more per new
    conversation than these statements built once)."""
    if not opened:
        return
    clocks = list(opened)
    values = [_clock_columns(clock) for clock in clocks]
    # Nothing pending is needed by these rows (their conversation is flushed already).
    with db.session.no_autoflush:
        if batch:
            ids = insert_rows(SlaClock.__table__, values, return_ids=True)
        else:
            ids = db.session.scalars(_INSERT_CLOCKS, values).all()
        for clock, clock_id in zip(clocks, ids, strict=True):
            clock.id = clock_id
            if keep:
                make_transient_to_detached(clock)
                db.session.add(clock)
        events = [{**e, "clock_id": clock.id} for clock, rows in opened.items() for e in rows]
        if batch:
            insert_rows(SlaClockEvent.__table__, events)
        elif events:
            db.session.execute(_INSERT_EVENTS, events)
    opened.clear()


# Built once (Core statements on the tables, immutable): every new conversation runs both.
_INSERT_CLOCKS = insert(SlaClock.__table__).returning(
    SlaClock.__table__.c.id, sort_by_parameter_order=True
)
_INSERT_EVENTS = insert(SlaClockEvent.__table__)


def _clock_columns(clock: SlaClock) -> dict[str, Any]:
    """The row of an opened clock. Every column is set on the object too, so that once
    persistent it holds its whole row and is never read back."""
    columns = {}
    for key, default in _clock_defaults():
        value = getattr(clock, key)
        if value is None and default is not None:
            value = default
            setattr(clock, key, value)
        elif key not in clock.__dict__:
            setattr(clock, key, value)
        columns[key] = value
    return columns


@lru_cache(maxsize=1)
def _clock_defaults() -> tuple[tuple[str, Any], ...]:
    """(attribute, scalar default or None) of every column of a clock but its id."""
    return tuple(
        (
            attr.key,
            column.default.arg if column.default is not None and column.default.is_scalar else None,
        )
        for attr in inspect(SlaClock).column_attrs
        if not (column := attr.columns[0]).primary_key
    )


def _open_clock(conversation, metric, cycle, start, policy, now, reason) -> SlaClock:
    clock = SlaClock(
        conversation_id=conversation.id, metric=metric, cycle=cycle, started_at=start, pauses=[]
    )
    opened = _opened.get()
    assert opened is not None, "clocks are opened inside a hook"
    opened[clock] = []
    _apply_policy(clock, policy, now, None, announce=False)
    detail = {"policy": policy.name if policy else None, "target_seconds": clock.target_seconds}
    _event(clock, ClockEventKind.START, start, reason, now, detail)
    return clock


def _apply_policy(clock, policy, now, actor, *, announce: bool = True) -> None:
    """Give a running clock the policy's target and calendar; record a POLICY_CHANGE event
    when that changes anything (a re-selected policy, or an edited one)."""
    before = (clock.policy_id, clock.target_seconds, clock.calendar_id, clock.due_at)
    clock.policy_id = policy.id if policy is not None else None
    clock.target_seconds = policy.target_seconds(clock.metric) if policy is not None else None
    clock.calendar_id = policy.calendar_id if policy is not None and policy.business_hours else None
    _schedule(clock, policy)
    after = (clock.policy_id, clock.target_seconds, clock.calendar_id, clock.due_at)
    if announce and before[:3] != after[:3]:
        _event(
            clock,
            ClockEventKind.POLICY_CHANGE,
            now,
            f"policy now {policy.name if policy else 'none'}; due recomputed from the start",
            now,
            {
                "policy_id": clock.policy_id,
                "target_seconds": clock.target_seconds,
                "old_policy_id": before[0],
                "old_target_seconds": before[1],
                "old_due_at": before[3],
                "due_at": clock.due_at,
                "actor_id": _id(actor),
            },
        )


def _schedule(clock: SlaClock, policy: SlaPolicy | None) -> None:
    """Compute due and warning instants from the original start, skipping pauses."""
    if clock.target_seconds is None:
        clock.due_at = clock.warn_at = None
        return
    spec = _clock_spec(clock)
    target = timedelta(seconds=clock.target_seconds)
    clock.due_at = _used_up_at(clock, spec, target)
    clock.warn_at = None
    if policy is None or not policy.warn_value or clock.due_at is None:
        return
    if policy.warn_mode is WarnMode.PERCENT:
        clock.warn_at = _used_up_at(clock, spec, target * min(policy.warn_value, 100) / 100)
    else:
        clock.warn_at = max(clock.started_at, clock.due_at - timedelta(minutes=policy.warn_value))


def _used_up_at(clock: SlaClock, spec: CalendarSpec, amount: timedelta) -> datetime | None:
    """When `amount` of counted time is used up; None if a pause is open before that."""
    at, remaining = clock.started_at, amount
    for pause in clock.pauses:
        start = max(_dt(pause["start"]), at)
        available = business_time_between(at, start, spec)
        if available >= remaining:
            break
        remaining -= available
        if pause["end"] is None:
            return None
        at = max(at, _dt(pause["end"]))
    return add_business_time(at, remaining, spec)


def _policy_of(clock: SlaClock) -> SlaPolicy | None:
    # By id, not the relationship: policy_id may have changed in this session before a flush.
    if clock.policy_id is None:
        return None
    with db.session.no_autoflush:  # see _clock_spec
        return db.session.get(SlaPolicy, clock.policy_id)


def _clock_spec(clock: SlaClock) -> CalendarSpec:
    if clock.calendar_id is None:
        return _ALWAYS_OPEN
    # Reading settings needs nothing pending; an autoflush here wrote a half-built clock (and
    # then an UPDATE for its due instant), instead of everything once at the end of the hook.
    with db.session.no_autoflush:
        return calendar_spec(db.session.get(BusinessCalendar, clock.calendar_id))


def counted_time(clock: SlaClock, until: datetime) -> timedelta:
    """Business time the clock has counted up to `until` (or its stop), pauses excluded."""
    end = min(clock.stopped_at or until, until)
    spec = _clock_spec(clock)
    total = business_time_between(clock.started_at, end, spec)
    for pause in clock.pauses:
        p_end = _dt(pause["end"]) if pause["end"] else end
        total -= business_time_between(_dt(pause["start"]), min(p_end, end), spec)
    return total


def _pause(clock, at, why, now, detail) -> None:
    clock.pauses = [*clock.pauses, {"start": at.isoformat(), "end": None, "why": why}]
    text = "waiting on the customer (pending)" if why == "pending" else f"status {why}"
    _event(clock, ClockEventKind.PAUSE, at, text, now, detail)
    _schedule(clock, _policy_of(clock))


def _close_pause(clock: SlaClock, at: datetime) -> None:
    last = clock.pauses[-1]
    end = max(at, _dt(last["start"]))
    clock.pauses = [*clock.pauses[:-1], {**last, "end": end.isoformat()}]
    clock.paused_seconds += int(
        business_time_between(_dt(last["start"]), end, _clock_spec(clock)).total_seconds()
    )


def _resume(clock, at, reason, now, detail) -> None:
    _close_pause(clock, at)
    _event(clock, ClockEventKind.RESUME, at, reason, now, detail)
    _schedule(clock, _policy_of(clock))


def _reopen(clock: SlaClock, at: datetime, detail, now) -> None:
    # The resolved stretch becomes a pause: the clock resumes, it does not start over.
    stopped = clock.stopped_at or at
    clock.pauses = [
        *clock.pauses,
        {"start": stopped.isoformat(), "end": None, "why": "resolved"},
    ]
    clock.stopped_at = clock.stop_reason = clock.counted_seconds = None
    _resume(clock, max(at, stopped), "conversation reopened", now, detail)


def _stop(clock, at, reason: StopReason, why: str, now, detail) -> None:
    if clock.paused:
        _close_pause(clock, at)
    clock.stopped_at, clock.stop_reason = at, reason
    if clock.due_at is not None and at > clock.due_at and clock.breached_at is None:
        # Stopped late before any sweep saw it: the breach happened at the due instant.
        clock.breached_at = clock.due_at
        _event(clock, ClockEventKind.BREACH, clock.due_at, "due passed", now, {"late": True})
    kind = (
        ClockEventKind.MET
        if reason is StopReason.REPLIED and clock.breached_at is None
        else ClockEventKind.STOP
    )
    counted = counted_time(clock, at)
    clock.counted_seconds = int(counted.total_seconds())
    _event(
        clock,
        kind,
        at,
        why,
        now,
        {**detail, "reason": str(reason), "counted_seconds": int(counted.total_seconds())},
    )


def _unstop(clock: SlaClock, new_stop: datetime | None, now: datetime) -> None:
    """A late message moved this clock's stop: take the old stop back (and a breach that the
    corrected stop shows never happened)."""
    old = clock.stopped_at
    clock.stopped_at = clock.stop_reason = clock.counted_seconds = None
    detail: dict[str, Any] = {"old_stopped_at": old}
    if (
        clock.breached_at is not None
        and new_stop is not None
        and clock.due_at is not None
        and new_stop <= clock.due_at
    ):
        clock.breached_at = None
        detail["breach_withdrawn"] = True
    _event(
        clock, ClockEventKind.ADJUST, now, "stop moved: a message arrived out of order", now, detail
    )


def _move_start(clock: SlaClock, start: datetime, now: datetime) -> None:
    old = clock.started_at
    clock.started_at = start
    _schedule(clock, _policy_of(clock))
    if clock.stopped_at is not None:
        # A stopped clock whose start moved keeps its stop: its counted time grows.
        clock.counted_seconds = int(counted_time(clock, clock.stopped_at).total_seconds())
    _event(
        clock,
        ClockEventKind.ADJUST,
        now,
        "start moved earlier: a message dated before it arrived late",
        now,
        {"old_started_at": old, "started_at": start},
    )


def _event(clock, kind, at, reason, now, detail) -> None:
    """Record what happened to `clock`; for a clock still being opened, as values written with
    it."""
    values = {
        "kind": kind,
        "at": at,
        "reason": reason,
        "detail": json.loads(json.dumps(detail, default=str)),
        "recorded_at": now,
    }
    opened = _opened.get()
    if opened is not None and clock in opened:
        opened[clock].append(values)
        return
    db.session.add(SlaClockEvent(clock=clock, **values))


def _refresh_conversation(conversation: Conversation, clocks: Iterable[SlaClock], now) -> None:
    # The sweep applies the same rule in SQL to many conversations (`_refresh_sla_columns`).
    running = [c for c in clocks if c.running and c.target_seconds is not None]
    dues = [c.due_at for c in running if c.due_at is not None]
    conversation.sla_due_at = min(dues) if dues else None
    if any(c.breached_at is not None for c in running):
        conversation.sla_state = SlaState.BREACHED
    elif any(c.warned_at is not None for c in running):
        conversation.sla_state = SlaState.WARNING
    else:
        conversation.sla_state = SlaState.OK if running else SlaState.NONE


def _dt(value: str) -> datetime:
    return as_utc(datetime.fromisoformat(value))


def _id(obj: Any) -> int | None:
    return obj.id if obj is not None else None


# --- the sweep ----------------------------------------------------------------------------


@dataclass
class SweepResult:
    warned: list[int] = field(default_factory=list)  # clock ids
    breached: list[int] = field(default_factory=list)
    actions: int = 0


class _Mark(NamedTuple):
    """One warn/breach mark this sweep made, with its event and what the escalations need (a
    tuple: a sweep after a quiet night makes thousands)."""

    id: int  # the clock's
    kind: ClockEventKind
    at: datetime  # the instant marked: the clock's warning or due instant
    event_id: int
    conversation_id: int
    policy_id: int | None
    metric: SlaMetric
    due_at: datetime
    assignee_id: int | None
    team_id: int | None


def sweep(*, now: datetime) -> SweepResult:
    """Mark every running clock whose warning or due instant has passed, exactly once.

    The marks are conditional writes over rows locked with SKIP LOCKED (on PostgreSQL), so
    of two sweeps running at once only one gets each row back; only that one records the
    event and runs the escalation actions.

    The rest is set-based too, because a sweep after a quiet night marks thousands of clocks:
    on PostgreSQL one statement marks and records the events, on SQLite one UPDATE … RETURNING
    per kind of mark and one INSERT … SELECT of the events; then one INSERT of the
    notifications and one UPDATE … RETURNING of the conversations' SLA columns. Only
    conversations whose escalation raises the priority or reassigns (which re-selects the
    policy) are loaded as objects.
    """
    now = as_utc(now)
    # The statements are Core, not ORM-enabled: no ORM work per returned row, of which there
    # are thousands (the session still autoflushes before each; its objects are synchronised
    # by hand).
    if db.session.get_bind().dialect.name == "postgresql":
        marks = _mark_and_record(now)
    else:
        marks = _mark_then_record(now)
    marks.sort(key=lambda m: (m.kind is ClockEventKind.BREACH, m.id))
    result = SweepResult(
        warned=[m.id for m in marks if m.kind is ClockEventKind.WARN],
        breached=[m.id for m in marks if m.kind is ClockEventKind.BREACH],
    )
    if not marks:
        return result
    _synchronize(SlaClock, ((m.id, {_MARKS[m.kind]: m.at}) for m in marks))
    policy_ids = {m.policy_id for m in marks if m.policy_id is not None}
    policies = {
        p.id: p for p in db.session.scalars(select(SlaPolicy).where(SlaPolicy.id.in_(policy_ids)))
    }
    result.actions = _escalate(marks, policies, now)
    touched = list(dict.fromkeys(m.conversation_id for m in marks))
    publish_many_after_commit(db.session, "conversation.sla", _refresh_sla_columns(touched))
    return result


# The column each kind of mark sets, the instant it is set to, and its event's reason.
_MARKS = {ClockEventKind.WARN: "warned_at", ClockEventKind.BREACH: "breached_at"}
_MARK_INSTANTS = {ClockEventKind.WARN: "warn_at", ClockEventKind.BREACH: "due_at"}
_MARK_REASONS = {
    ClockEventKind.WARN: "warning threshold reached",
    ClockEventKind.BREACH: "due passed",
}
_CLOCKS = SlaClock.__table__
_CONVERSATIONS = Conversation.__table__
_EVENTS = SlaClockEvent.__table__


def _due(kind: ClockEventKind, now: datetime) -> ColumnElement[bool]:
    """A running clock's `kind` mark is due: not set yet and its instant has passed."""
    instant = _CLOCKS.c[_MARK_INSTANTS[kind]]
    return and_(_CLOCKS.c[_MARKS[kind]].is_(None), instant.is_not(None), instant <= now)


def _locked(condition: ColumnElement[bool], *columns: Any) -> Select[Any]:
    """The running clocks matching `condition`, locked with their conversation, skipping both
    when either is taken: a request changing a conversation locks its row and then its
    clocks, and the sweep, which updates conversations too, would otherwise hold a clock while
    waiting for that row (a deadlock). A skipped clock is marked by the next sweep. The
    conversation's columns selected here are read locked, as the escalations will see them."""
    return (
        select(*columns)
        .join_from(_CLOCKS, _CONVERSATIONS, _CLOCKS.c.conversation_id == _CONVERSATIONS.c.id)
        .where(_CLOCKS.c.stopped_at.is_(None), condition)
        .order_by(_CLOCKS.c.id)
        .with_for_update(skip_locked=True, of=(_CLOCKS, _CONVERSATIONS))
    )


class _due_detail(FunctionElement[dict[str, Any]]):  # noqa: N801 (an SQL function)
    """A warn/breach event's detail, `{"due_at": str(due_at)}` as `_event` writes it
    (json.dumps with default=str), built by the database from a clock's due instant."""

    type = JSON()
    name = "due_detail"
    inherit_cache = True


@compiles(_due_detail, "postgresql")
def _due_detail_postgresql(element: _due_detail, compiler: Any, **kw: Any) -> str:
    due = compiler.process(element.clauses, **kw)
    utc = f"({due} AT TIME ZONE 'UTC')"
    return (
        f"json_build_object('due_at', to_char({utc}, 'YYYY-MM-DD HH24:MI:SS') || CASE WHEN "
        f"date_trunc('second', {due}) = {due} THEN '' ELSE to_char({utc}, '.US') END "
        "|| '+00:00')"
    )


@compiles(_due_detail, "sqlite")
def _due_detail_sqlite(element: _due_detail, compiler: Any, **kw: Any) -> str:
    # UTCDateTime's stored form is naive UTC, always with six digits of microseconds.
    due = compiler.process(element.clauses, **kw)
    return (
        f"json_object('due_at', CASE WHEN substr({due}, 21) = '000000' THEN substr({due}, 1, 19)"
        f" ELSE {due} END || '+00:00')"
    )


def _event_rows(marked, kind: ClockEventKind, now: datetime):
    """The `kind` event of each clock in `marked` (rows with the clock's id, mark and due
    instant), as `_event` writes it."""
    return select(
        marked.c.id,
        literal(kind.value),
        marked.c[_MARKS[kind]],
        literal(_MARK_REASONS[kind]),
        _due_detail(marked.c.due_at),
        literal(now, UTCDateTime()),
    )


_EVENT_COLUMNS = ["clock_id", "kind", "at", "reason", "detail", "recorded_at"]
_MARKED_COLUMNS = ("conversation_id", "policy_id", "metric", "due_at")


def _mark_and_record(now: datetime) -> list[_Mark]:
    """PostgreSQL: lock the clocks with a mark due, set both marks and insert their events
    in one statement (data-modifying CTEs); one row back per mark, with its event's id.

    The locked rows' flags are final: a row changed by a transaction that committed after
    this statement's snapshot is re-read when locked (and dropped if no mark is due any
    more), and no one else can change it until this transaction ends."""
    kinds = tuple(_MARKS)
    locked = _locked(
        or_(*(_due(kind, now) for kind in kinds)),
        _CLOCKS.c.id,
        *(_due(kind, now).label(kind.value) for kind in kinds),
        _CONVERSATIONS.c.assignee_id,
        _CONVERSATIONS.c.team_id,
    ).cte("locked")
    marked = (
        update(_CLOCKS)
        .where(_CLOCKS.c.id == locked.c.id)
        .values(
            {
                _MARKS[kind]: case(
                    (locked.c[kind.value], _CLOCKS.c[_MARK_INSTANTS[kind]]),
                    else_=_CLOCKS.c[_MARKS[kind]],
                )
                for kind in kinds
            }
        )
        .returning(
            _CLOCKS.c.id,
            *(_CLOCKS.c[name] for name in (*_MARKED_COLUMNS, *_MARKS.values())),
            *(locked.c[name] for name in (*(k.value for k in kinds), "assignee_id", "team_id")),
        )
        .cte("marked")
    )
    recorded = (
        insert(_EVENTS)
        .from_select(
            _EVENT_COLUMNS,
            union_all(
                *(_event_rows(marked, kind, now).where(marked.c[kind.value]) for kind in kinds)
            ),
        )
        .returning(_EVENTS.c.id, _EVENTS.c.clock_id, _EVENTS.c.kind, _EVENTS.c.at)
        .cte("recorded")
    )
    rows = db.session.execute(
        select(
            marked.c.id,
            recorded.c.kind,
            recorded.c.at,
            recorded.c.id.label("event_id"),
            *(marked.c[name] for name in (*_MARKED_COLUMNS, "assignee_id", "team_id")),
        ).join_from(recorded, marked, recorded.c.clock_id == marked.c.id)
    ).all()
    return list(map(_Mark._make, rows))


def _mark_then_record(now: datetime) -> list[_Mark]:
    """SQLite (no data-modifying CTEs): per kind of mark, a conditional UPDATE … WHERE
    <mark> IS NULL … RETURNING (SQLite runs one writer at a time, so two sweeps never get the
    same row back), then one INSERT … SELECT of the events from the marked clocks."""

    def of_conversation(column):
        # Read by the statement that marks, so as the escalations will see it.
        return (
            select(column).where(_CONVERSATIONS.c.id == _CLOCKS.c.conversation_id)
        ).scalar_subquery()

    marked: dict[ClockEventKind, list[Row]] = {}
    for kind, mark in _MARKS.items():
        instant = _CLOCKS.c[_MARK_INSTANTS[kind]]
        marked[kind] = list(
            db.session.execute(
                update(_CLOCKS)
                .where(
                    _CLOCKS.c.id.in_(_locked(_due(kind, now), _CLOCKS.c.id)),
                    _due(kind, now),
                    _CLOCKS.c.stopped_at.is_(None),
                )
                .values({mark: instant})
                .returning(
                    _CLOCKS.c.id,
                    _CLOCKS.c[mark],
                    *(_CLOCKS.c[name] for name in _MARKED_COLUMNS),
                    of_conversation(_CONVERSATIONS.c.assignee_id).label("assignee_id"),
                    of_conversation(_CONVERSATIONS.c.team_id).label("team_id"),
                )
            )
        )
    parts = [
        _event_rows(_CLOCKS, kind, now).where(_CLOCKS.c.id.in_(_ids([r.id for r in rows])))
        for kind, rows in marked.items()
        if rows
    ]
    if not parts:
        return []
    recorded = db.session.execute(
        insert(_EVENTS)
        .from_select(_EVENT_COLUMNS, parts[0] if len(parts) == 1 else union_all(*parts))
        .returning(_EVENTS.c.id, _EVENTS.c.clock_id, _EVENTS.c.kind)
    )
    event_ids = {(e.clock_id, e.kind): e.id for e in recorded}
    return [
        _Mark(
            r.id,
            kind,
            getattr(r, _MARKS[kind]),
            event_ids[r.id, kind],
            *(getattr(r, name) for name in (*_MARKED_COLUMNS, "assignee_id", "team_id")),
        )
        for kind, rows in marked.items()
        for r in rows
    ]


def _escalate(marks: list[_Mark], policies: dict[int, SlaPolicy], now: datetime) -> int:
    """Run the policies' escalation actions for the marks; how many ran.

    `notify` and `webhook` need nothing but the marked rows: their notifications are one
    insert. Raising the priority or reassigning re-selects the conversation's policy, which
    changes what its other marked clocks escalate to, so every mark of a conversation with
    such an action takes the per-clock path, in mark order (the policy read at action time).
    """
    # The actions by (policy, kind of mark): thousands of marks share a handful of policies.
    escalations = {
        (policy_id, kind): _escalations(policies.get(policy_id), kind)
        for policy_id, kind in {(m.policy_id, m.kind) for m in marks}
    }
    changing_policies = {
        key
        for key, actions in escalations.items()
        if any(a.get("type") in _OBJECT_ACTIONS for a in actions)
    }
    changing = {m.conversation_id for m in marks if (m.policy_id, m.kind) in changing_policies}
    actions = _escalate_objects([m for m in marks if m.conversation_id in changing], now)
    notices: list[_Notice] = []
    for m in marks:
        if m.conversation_id in changing:
            continue
        for action in escalations[m.policy_id, m.kind]:
            if action.get("type") == "notify":
                notices.append(
                    _Notice.of(
                        action,
                        m.kind,
                        m.metric,
                        m.conversation_id,
                        m.assignee_id,
                        m.team_id,
                        m.due_at,
                    )
                )
            elif action.get("type") == "webhook":
                actions += _webhook(action, m.event_id)
    return actions + _notify(notices, now)


def _escalate_objects(marks: list[_Mark], now: datetime) -> int:
    if not marks:
        return 0
    clocks = {
        c.id: c
        for c in db.session.scalars(
            select(SlaClock)
            .where(SlaClock.id.in_(_ids([m.id for m in marks])))
            .options(joinedload(SlaClock.conversation))
        )
    }
    actions = 0
    for m in marks:
        clock = clocks[m.id]
        for action in _escalations(_policy_of(clock), m.kind):
            actions += _run_action(action, clock, m.kind, m.event_id, now)
    return actions


def _escalations(policy: SlaPolicy | None, kind: ClockEventKind) -> list[dict[str, Any]]:
    if policy is None:
        return []
    return policy.warning_actions if kind is ClockEventKind.WARN else policy.breach_actions


def _synchronize(model: type, written: Iterable[tuple[int, dict[str, Any]]]) -> None:
    """Objects of `model` already in the session (a hook ran earlier in this transaction)
    take the values the sweep's Core statements wrote, `written` as (id, {attribute: value}).
    Only read when the session holds such objects: in the worker's sweep it holds none."""
    objects = {o.id: o for o in list(db.session.identity_map.values()) if type(o) is model}
    if not objects:
        return
    for obj_id, values in written:
        if obj_id in objects:
            for name, value in values.items():
                set_committed_value(objects[obj_id], name, value)


def _refresh_sla_columns(conversation_ids: list[int]) -> list[dict[str, Any]]:
    """Recompute `sla_due_at` / `sla_state` of these conversations from their clocks in SQL
    (the rule of `_refresh_conversation`), writing only the rows that change; the values
    afterwards, one dict per conversation."""
    ids = _ids(conversation_ids)
    clocks, conversations = _CLOCKS.c, _CONVERSATIONS.c
    running = and_(clocks.stopped_at.is_(None), clocks.target_seconds.is_not(None))

    def any_clock(condition) -> ColumnElement[bool]:
        return func.max(case((condition, 1), else_=0)) == 1

    wanted = (
        select(
            clocks.conversation_id,
            func.min(case((running, clocks.due_at))).label("due_at"),
            case(
                (
                    any_clock(and_(running, clocks.breached_at.is_not(None))),
                    SlaState.BREACHED.value,
                ),
                (any_clock(and_(running, clocks.warned_at.is_not(None))), SlaState.WARNING.value),
                (any_clock(running), SlaState.OK.value),
                else_=SlaState.NONE.value,
            ).label("state"),
        )
        .where(clocks.conversation_id.in_(ids))
        .group_by(clocks.conversation_id)
        .subquery()
    )
    columns = (conversations.id, conversations.sla_state, conversations.sla_due_at)
    rows = db.session.execute(
        update(_CONVERSATIONS)
        .where(
            conversations.id.in_(ids),
            conversations.id == wanted.c.conversation_id,
            or_(
                conversations.sla_state != wanted.c.state,
                conversations.sla_due_at.is_distinct_from(wanted.c.due_at),
            ),
        )
        .values(sla_state=wanted.c.state, sla_due_at=wanted.c.due_at)
        .returning(*columns, conversations.updated_at)
    ).all()
    # Conversations in the session (those escalated) take the new values.
    _synchronize(
        Conversation,
        (
            (
                r.id,
                {"sla_state": r.sla_state, "sla_due_at": r.sla_due_at, "updated_at": r.updated_at},
            )
            for r in rows
        ),
    )
    # The few whose columns were right already (another clock had the same effect) are read.
    unchanged = set(conversation_ids).difference(r.id for r in rows)
    if unchanged:
        rows += db.session.execute(
            select(*columns).where(conversations.id.in_(_ids(list(unchanged))))
        ).all()
    return [
        {"conversation_id": r.id, "sla_state": str(r.sla_state), "sla_due_at": r.sla_due_at}
        for r in rows
    ]


def _ids(ids: list[int]) -> BindParameter[list[int]]:
    # Ids the database just returned, rendered inline: one statement for any number of them
    # (bound parameters are capped, 65,535 on PostgreSQL), and cheap for the driver to send.
    return bindparam("ids", ids, expanding=True, literal_execute=True, unique=True)


# --- escalation actions -------------------------------------------------------------------


# Actions that change the conversation and re-select its policy: they need it as an object.
_OBJECT_ACTIONS = ("raise_priority", "reassign")


def _run_action(
    action: dict[str, Any], clock: SlaClock, kind: ClockEventKind, event_id: int, now
) -> int:
    """Run one escalation action for the `kind` (warn/breach) event `event_id` of `clock`."""
    conversation = clock.conversation
    what = action.get("type")
    if what == "notify":
        notice = _Notice.of(
            action,
            kind,
            clock.metric,
            conversation.id,
            conversation.assignee_id,
            conversation.team_id,
            clock.due_at,
        )
        return _notify([notice], now)
    if what == "raise_priority":
        index = _PRIORITY_ORDER.index(conversation.priority)
        if index + 1 >= len(_PRIORITY_ORDER):
            return 0
        before = conversation.priority
        conversation.priority = _PRIORITY_ORDER[index + 1]
        _escalated(
            conversation, {"priority": str(before)}, {"priority": str(conversation.priority)}, now
        )
        return 1
    if what == "reassign":
        team = db.session.get(Team, action.get("team_id") or 0)
        if team is None or conversation.team_id == team.id:
            return 0
        before = {"team_id": conversation.team_id, "assignee_id": conversation.assignee_id}
        conversation.team_id, conversation.assignee_id = team.id, None
        conversation.team = team
        _escalated(conversation, before, {"team_id": team.id, "assignee_id": None}, now)
        return 1
    if what == "webhook":
        return _webhook(action, event_id)
    return 0


def _escalated(conversation: Conversation, before, after, now) -> None:
    record_audit(
        "conversation.sla_escalation", conversation, actor=None, before=before, after=after, now=now
    )
    db.session.flush()
    on_attributes_change(conversation, actor=None, now=now)


def _webhook(action: dict[str, Any], event_id: int) -> int:
    if not action.get("url"):
        return 0
    # Never inside this transaction: the call happens in a job after the commit.
    enqueue_after_commit(
        db.session, "inbox.jobs.sla_webhook", event_id, action["url"], queue="outbound"
    )
    return 1


class _Notice(NamedTuple):
    """One `notify` action for one warn/breach mark, in plain values (a tuple: a sweep makes
    thousands)."""

    to: tuple[str, ...]
    kind: ClockEventKind
    metric: SlaMetric
    conversation_id: int
    assignee_id: int | None
    team_id: int | None
    due_at: datetime

    @classmethod
    def of(cls, action: dict[str, Any], *args: Any) -> _Notice:
        return cls(tuple(action.get("to", [])), *args)

    def text(self, now: datetime) -> str:
        what = METRIC_LABELS[self.metric].lower()
        if self.kind is ClockEventKind.WARN:
            return (
                f"SLA warning: {what} on conversation #{self.conversation_id} is due in "
                + format_duration((self.due_at - now).total_seconds())
            )
        return f"SLA breached: {what} on conversation #{self.conversation_id} was due at " + (
            self.due_at.strftime("%Y-%m-%d %H:%M UTC")
        )


def _notify(notices: list[_Notice], now: datetime) -> int:
    """In-app notifications for the notices (the assignee and/or the team's active
    supervisors, each user once per notice) in one insert; how many."""
    teams = {n.team_id for n in notices if "supervisors" in n.to}
    supervisors = _supervisors(teams) if teams else {}
    rows: list[dict[str, Any]] = []
    for notice in notices:
        users = [notice.assignee_id] if "assignee" in notice.to and notice.assignee_id else []
        if "supervisors" in notice.to:
            users += supervisors.get(notice.team_id, [])
        text, kind = notice.text(now), f"sla.{notice.kind}"
        rows += [
            {
                "user_id": user_id,
                "kind": kind,
                "conversation_id": notice.conversation_id,
                "text": text,
                "created_at": now,
            }
            for user_id in dict.fromkeys(users)
        ]
    if not rows:
        return 0
    # A sweep writes thousands: one statement (`bulk.insert_rows`).
    insert_rows(Notification.__table__, rows)
    users = dict.fromkeys(row["user_id"] for row in rows)
    publish_many_after_commit(db.session, "notification", [{"user_id": u} for u in users])
    return len(rows)


def _supervisors(team_ids: set[int | None]) -> dict[int | None, list[int]]:
    """The active supervisors' ids by team (key None: every active supervisor, for
    conversations without a team)."""
    active = and_(User.role == Role.SUPERVISOR, User.active.is_(True))
    result: dict[int | None, list[int]] = {}
    for user_id, team_id in db.session.execute(
        select(User.id, Team.id).join(User.teams).where(active, Team.id.in_(team_ids - {None}))
    ):
        result.setdefault(team_id, []).append(user_id)
    if None in team_ids:
        result[None] = list(db.session.scalars(select(User.id).where(active)))
    return result


def deliver_webhook(event: SlaClockEvent, url: str, *, timeout: float = 10.0) -> int:
    """POST the event as JSON to `url`; return the HTTP status (raises on failure so the job
    is retried). Runs in a job on the `outbound` queue, never in the sweep's transaction."""
    clock = event.clock
    payload = {
        "event": f"sla.{event.kind}",
        "conversation_id": clock.conversation_id,
        "metric": str(clock.metric),
        "cycle": clock.cycle,
        "policy": clock.policy.name if clock.policy else None,
        "at": event.at.isoformat(),
        "due_at": clock.due_at.isoformat() if clock.due_at else None,
    }
    answer = webhook_client.post(
        url,
        json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "inbox-sla/1"},
        timeout=timeout,
    )
    answer.raise_for_status()
    return answer.status


# --- explaining a clock -------------------------------------------------------------------


@dataclass(frozen=True)
class NotCounted:
    start: datetime
    end: datetime
    reason: str
    kind: str  # pause | break | closed | holiday: what the folded list's summary names


# How a kind of stretch reads in "14 stretches not counted: breaks, outside business hours",
# in the order the summary names them.
_NOT_COUNTED_KINDS = {
    "pause": "paused",
    "break": "breaks",
    "closed": "outside business hours",
    "holiday": "holidays",
}


@dataclass
class ClockExplanation:
    clock: SlaClock
    label: str
    started_at: datetime
    ended_at: datetime | None
    due_at: datetime | None
    target: timedelta | None
    counted: timedelta
    outcome: str  # met | breached | running | paused | stopped | superseded
    not_counted: list[NotCounted]
    summary: str
    timezone: str
    events: list[SlaClockEvent]

    def local(self, moment: datetime) -> datetime:
        """`moment` on the clock's calendar's wall clock (how its business hours read)."""
        return moment.astimezone(ZoneInfo(self.timezone))

    @property
    def not_counted_summary(self) -> str:
        """One line for the folded list: "14 stretches not counted: breaks, outside business
        hours" (a clock left running for weeks has a closed stretch every night)."""
        n = len(self.not_counted)
        kinds = {gap.kind for gap in self.not_counted}
        named = ", ".join(text for kind, text in _NOT_COUNTED_KINDS.items() if kind in kinds)
        return f"{n} stretch{'' if n == 1 else 'es'} not counted: {named}"


@cache
def _clocks_of_conversations() -> Select[tuple[SlaClock]]:
    # Built once per process (every conversation the API answers with runs it): SQLAlchemy
    # then neither rebuilds the statement nor works out its cache key again.
    return (
        select(SlaClock)
        .where(SlaClock.conversation_id.in_(bindparam("ids", expanding=True)))
        .options(selectinload(SlaClock.policy))
        .order_by(SlaClock.conversation_id, SlaClock.started_at, SlaClock.id)
    )


def in_ledger_order(clocks: Iterable[SlaClock]) -> list[SlaClock]:
    """A conversation's clocks in ledger order (as `clocks_for` reads them): by start."""
    return sorted(clocks, key=lambda clock: (clock.started_at, clock.id))


def clocks_for(ids: list[int]) -> dict[int, list[SlaClock]]:
    """Every clock of these conversations, in ledger order (one query per 1,000 ids)."""
    result: dict[int, list[SlaClock]] = {i: [] for i in ids}
    for start in range(0, len(ids), 1000):
        for clock in db.session.scalars(
            _clocks_of_conversations(), {"ids": ids[start : start + 1000]}
        ):
            result[clock.conversation_id].append(clock)
    return result


def explain(conversation: Conversation, *, now: datetime) -> list[ClockExplanation]:
    """Per clock (first response, next-response cycles, resolution): what was counted, what
    was not and why, and the outcome."""
    now = as_utc(now)
    clocks = db.session.scalars(
        select(SlaClock).where(SlaClock.conversation_id == conversation.id)
    ).all()
    order = list(METRIC_LABELS)
    clocks = sorted(clocks, key=lambda c: (order.index(c.metric), c.cycle))
    return [_explain(clock, now) for clock in clocks]


def _explain(clock: SlaClock, now: datetime) -> ClockExplanation:
    spec = _clock_spec(clock)
    end = clock.stopped_at or now
    counted = counted_time(clock, end)
    target = timedelta(seconds=clock.target_seconds) if clock.target_seconds is not None else None
    if clock.stop_reason is StopReason.SUPERSEDED:
        outcome = "superseded"
    elif clock.breached_at is not None or (clock.running and clock.due_at and clock.due_at <= now):
        outcome = "breached"
    elif clock.running:
        outcome = "paused" if clock.paused else "running"
    else:
        outcome = "met" if target is not None else "stopped"
    label = METRIC_LABELS[clock.metric]
    if clock.metric is SlaMetric.NEXT_RESPONSE:
        label += f" #{clock.cycle}"
    kind = "business time" if clock.calendar_id is not None else "calendar time"
    text = f"{format_duration(counted.total_seconds())} {kind}"
    if target is None:
        summary = f"{text}, no target"
    else:
        summary = f"{text} against a {format_duration(target.total_seconds())} target: {outcome}"
        if outcome == "breached" and clock.due_at is not None:
            summary += f" ({format_duration((end - clock.due_at).total_seconds())} over)"
        elif outcome in ("running", "paused") and clock.due_at is not None:
            summary += f", due in {format_duration((clock.due_at - now).total_seconds())}"
    gaps = [
        NotCounted(
            _dt(p["start"]), _dt(p["end"]) if p["end"] else end, f"paused: {p['why']}", "pause"
        )
        for p in clock.pauses
    ]
    gaps += _closed_stretches(clock.started_at, end, spec)
    return ClockExplanation(
        clock=clock,
        label=label,
        started_at=clock.started_at,
        ended_at=clock.stopped_at,
        due_at=clock.due_at,
        target=target,
        counted=counted,
        outcome=outcome,
        not_counted=sorted(gaps, key=lambda g: (g.start, g.end)),
        summary=summary,
        timezone=spec.timezone,
        events=list(clock.events),
    )


def _closed_stretches(start: datetime, end: datetime, spec: CalendarSpec) -> list[NotCounted]:
    """The stretches of [start, end) outside business hours, each with why it is closed."""
    if spec.always_open or end <= start:
        return []
    zone = spec.zone
    gaps: list[NotCounted] = []
    cursor = start
    for interval in [*calendar_open_intervals(start, end, spec), None]:
        gap_end = interval.start if interval is not None else end
        if gap_end > cursor:
            a, b = cursor.astimezone(zone), gap_end.astimezone(zone)
            holiday = next(
                (
                    a.date() + timedelta(days=n)
                    for n in range((b.date() - a.date()).days + 1)
                    if spec.is_closed_on(a.date() + timedelta(days=n))
                    and spec.weekly.get((a.date() + timedelta(days=n)).weekday())
                ),
                None,
            )
            if holiday is not None:
                reason, kind = f"holiday ({holiday:%a %d %b}), outside business hours", "holiday"
            elif a.date() == b.date() and interval is not None and cursor != start:
                reason, kind = "break, outside business hours", "break"
            else:
                reason, kind = "outside business hours", "closed"
            gaps.append(NotCounted(cursor, gap_end, reason, kind))
        if interval is not None:
            cursor = interval.end
    return gaps
