"""Reading the queue: named views with counts, filters, text search, sorts and keyset
pagination (a cursor holding the last row's sort key and id; never OFFSET, so pages stay
stable while new conversations arrive), plus what each row shows (snippet, unread marker).

Every query is limited to what the user may see (services.conversations.visibility_clause).
Imports: models, extensions.db, errors, services.conversations, services.sla (cycle nouns).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import aliased, selectinload
from sqlalchemy.sql import ColumnElement

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import (
    CLAIMABLE_STATUSES,
    DONE_STATUSES,
    NO_DEADLINE,
    OPEN_STATUSES,
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationRead,
    Direction,
    Kind,
    Message,
    Platform,
    Priority,
    SlaClock,
    SlaMetric,
    SlaState,
    Status,
    StopReason,
    Tag,
    User,
    conversation_tags,
    in_values,
    sla_order_key,
)
from inbox.models.base import UTCDateTime
from inbox.services.conversations import visibility_clause
from inbox.services.sla import CYCLE_NOUNS, REPEATING_METRICS
from inbox.timeutil import format_duration, utcnow

VIEWS: list[tuple[str, str]] = [
    ("breaching", "At risk or breached"),
    ("unassigned", "Unassigned"),
    ("mine", "Mine"),
    ("teams", "My teams"),
    ("open", "All open"),
    ("pending", "Pending"),
    ("snoozed", "Snoozed"),
    ("resolved", "Resolved"),
    ("spam", "Spam"),
    # Every status: what report drill-downs open (a met cycle's conversation may be resolved).
    ("all", "All"),
]
VIEW_NAMES = dict(VIEWS)

# Sort name -> (key expression, ascending). The key never is NULL (coalesced with created_at,
# or NO_DEADLINE) so the keyset comparison is total. Each key is the expression of the queue's
# indexes (models.conversations), so a page is read in index order.
# The "breaching" view ("At risk or breached") holds what is warned, breached, or due within:
BREACHING_HORIZON = timedelta(hours=1)

SORTS: dict[str, tuple[ColumnElement[datetime], bool]] = {
    "sla": (sla_order_key(Conversation.sla_due_at), True),
    "waiting": (func.coalesce(Conversation.last_inbound_at, Conversation.created_at), True),
    "newest": (func.coalesce(Conversation.last_message_at, Conversation.created_at), False),
    "oldest": (func.coalesce(Conversation.last_message_at, Conversation.created_at), True),
}
SORT_LABELS = {
    "sla": "SLA due first",
    "waiting": "Waiting longest",
    "newest": "Newest",
    "oldest": "Oldest",
}
DEFAULT_SORT = "sla"
SENTIMENTS = ("positive", "neutral", "negative")
# A sentiment score above this is positive, below its negative negative (routing uses it too).
SENTIMENT_BAND = 0.25
MAX_LIMIT = 100


def sentiment_label(score: float | None) -> str | None:
    """positive / neutral / negative for a sentiment score (None: not scored)."""
    if score is None:
        return None
    if score > SENTIMENT_BAND:
        return "positive"
    return "negative" if score < -SENTIMENT_BAND else "neutral"


def _sort_value(conversation: Conversation, sort: str) -> datetime:
    if sort == "sla":
        return conversation.sla_due_at or NO_DEADLINE
    if sort == "waiting":
        return conversation.last_inbound_at or conversation.created_at
    return conversation.last_message_at or conversation.created_at


def view_clauses(name: str, user: User) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a named queue view (shared by the counts and the list). The status
    lists are constants (`in_values`): they are what lets PostgreSQL use the view group's
    partial index."""
    not_spam = Conversation.is_spam.is_(False)
    open_ = in_values(Conversation.status, OPEN_STATUSES)
    active = in_values(Conversation.status, CLAIMABLE_STATUSES)
    team_ids = [t.id for t in user.teams]
    clauses = {
        "breaching": [
            not_spam,
            open_,
            Conversation.sla_due_at.is_not(None),
            or_(
                Conversation.sla_state.in_((SlaState.WARNING, SlaState.BREACHED)),
                Conversation.sla_due_at <= utcnow() + BREACHING_HORIZON,
            ),
        ],
        "unassigned": [not_spam, active, Conversation.assignee_id.is_(None)],
        "mine": [not_spam, open_, Conversation.assignee_id == user.id],
        "teams": [not_spam, open_, Conversation.team_id.in_(team_ids)],
        "open": [not_spam, open_],
        "pending": [not_spam, in_values(Conversation.status, [Status.PENDING])],
        "snoozed": [not_spam, in_values(Conversation.status, [Status.SNOOZED])],
        "resolved": [not_spam, in_values(Conversation.status, DONE_STATUSES)],
        "spam": [Conversation.is_spam.is_(True)],
        "all": [not_spam],
    }
    if name not in clauses:
        raise InboxError(f"Unknown view {name!r}.", code="bad_view")
    return clauses[name]


def count_views(user: User) -> dict[str, int]:
    """Every view's count in one query."""
    columns = [
        func.coalesce(func.sum(case((and_(*view_clauses(name, user)), 1), else_=0)), 0)
        for name, _ in VIEWS
    ]
    row = db.session.execute(select(*columns).where(visibility_clause(user))).one()
    return {name: int(n) for (name, _), n in zip(VIEWS, row, strict=True)}


@dataclass
class Filters:
    """Optional narrowing of a list; empty fields do not filter."""

    status: Status | None = None
    platform: Platform | None = None
    channel_account_id: int | None = None
    kind: Kind | None = None
    is_public: bool | None = None
    priority: Priority | None = None
    tag: str = ""
    team_id: int | None = None
    # An assignee's id, or "none" for unassigned.
    assignee: int | str | None = None
    language: str = ""
    sentiment: str = ""
    q: str = ""
    # The conversation's SLA policy in force.
    policy_id: int | None = None
    # Any of these teams (a report scoped to a supervisor's teams links with it).
    team_ids: tuple[int, ...] = ()
    # SLA drill-down: has a clock cycle of this metric, started in [started_from, started_to),
    # with this outcome (see `cycle_clauses`); what the report's numbers link to.
    sla_metric: SlaMetric | None = None
    sla_outcome: str = ""
    started_from: datetime | None = None
    started_to: datetime | None = None
    # Histogram buckets: the cycle's duration in [min, max) seconds, business or calendar time.
    sla_basis: str = ""
    duration_min: int | None = None
    duration_max: int | None = None

    @classmethod
    def parse(cls, args) -> Filters:
        """Read filters from query arguments (a MultiDict); a bad value is an InboxError."""

        def enum(name, enum_cls):
            raw = (args.get(name) or "").strip()
            if not raw:
                return None
            try:
                return enum_cls(raw)
            except ValueError:
                raise InboxError(f"Unknown {name} {raw!r}.", code="bad_filter") from None

        def integer(name):
            raw = (args.get(name) or "").strip()
            if not raw:
                return None
            if not raw.isdigit():
                raise InboxError(f"{name} must be a number.", code="bad_filter")
            return int(raw)

        def instant(name):
            raw = (args.get(name) or "").strip()
            if not raw:
                return None
            try:
                value = datetime.fromisoformat(raw)
            except ValueError:
                raise InboxError(f"{name} must be an ISO date-time.", code="bad_filter") from None
            return value if value.tzinfo else value.replace(tzinfo=UTC)

        outcome = (args.get("sla_outcome") or "").strip()
        if outcome and outcome not in SLA_OUTCOMES:
            raise InboxError(f"Unknown sla_outcome {outcome!r}.", code="bad_filter")
        basis = (args.get("sla_basis") or "").strip()
        if basis and basis not in SLA_BASES:
            raise InboxError(f"Unknown sla_basis {basis!r}.", code="bad_filter")
        raw_teams = [t.strip() for t in (args.get("teams") or "").split(",") if t.strip()]
        if not all(t.isdigit() for t in raw_teams):
            raise InboxError("teams must be comma-separated numbers.", code="bad_filter")
        public = (args.get("public") or "").strip()
        assignee = (args.get("assignee") or "").strip()
        sentiment = (args.get("sentiment") or "").strip()
        if sentiment and sentiment not in SENTIMENTS:
            raise InboxError(f"Unknown sentiment {sentiment!r}.", code="bad_filter")
        return cls(
            status=enum("status", Status),
            platform=enum("platform", Platform),
            channel_account_id=integer("channel"),
            kind=enum("kind", Kind),
            is_public={"public": True, "private": False}.get(public),
            priority=enum("priority", Priority),
            tag=(args.get("tag") or "").strip(),
            team_id=integer("team"),
            assignee="none" if assignee == "none" else integer("assignee"),
            language=(args.get("language") or "").strip(),
            sentiment=sentiment,
            q=(args.get("q") or "").strip()[:200],
            policy_id=integer("policy"),
            team_ids=tuple(int(t) for t in raw_teams),
            sla_metric=enum("sla_metric", SlaMetric),
            sla_outcome=outcome,
            started_from=instant("started_from"),
            started_to=instant("started_to"),
            sla_basis=basis,
            duration_min=integer("duration_min"),
            duration_max=integer("duration_max"),
        )

    def args(self) -> dict[str, str]:
        """The query arguments `parse` reads back into these filters (for links)."""
        values = {
            "status": self.status,
            "platform": self.platform,
            "channel": self.channel_account_id,
            "kind": self.kind,
            "public": {True: "public", False: "private"}.get(self.is_public),  # type: ignore[arg-type]
            "priority": self.priority,
            "tag": self.tag,
            "team": self.team_id,
            "assignee": self.assignee,
            "language": self.language,
            "sentiment": self.sentiment,
            "q": self.q,
            "policy": self.policy_id,
            "teams": ",".join(map(str, self.team_ids)),
            "sla_metric": self.sla_metric,
            "sla_outcome": self.sla_outcome,
            "started_from": self.started_from.isoformat() if self.started_from else None,
            "started_to": self.started_to.isoformat() if self.started_to else None,
            "sla_basis": self.sla_basis,
            "duration_min": self.duration_min,
            "duration_max": self.duration_max,
        }
        return {k: str(v) for k, v in values.items() if v not in (None, "")}

    def sla_active(self) -> bool:
        return bool(self.sla_metric or self.sla_outcome or self.started_from or self.started_to)

    def clauses(self) -> list[ColumnElement[bool]]:
        c = Conversation
        result: list[ColumnElement[bool]] = []
        if self.status:
            result.append(c.status == self.status)
        if self.platform:
            result.append(
                c.channel_account_id.in_(
                    select(ChannelAccount.id).where(ChannelAccount.platform == self.platform)
                )
            )
        if self.channel_account_id:
            result.append(c.channel_account_id == _fixed(self.channel_account_id))
        if self.kind:
            result.append(c.kind == _fixed(self.kind.value))
        if self.is_public is not None:
            result.append(c.is_public.is_(self.is_public))
        if self.priority:
            result.append(c.priority == _fixed(self.priority.value))
        if self.tag:
            result.append(
                c.id.in_(
                    select(conversation_tags.c.conversation_id)
                    .join(Tag, Tag.id == conversation_tags.c.tag_id)
                    .where(func.lower(Tag.name) == self.tag.lower())
                )
            )
        if self.team_id:
            result.append(c.team_id == _fixed(self.team_id))
        if self.assignee == "none":
            result.append(c.assignee_id.is_(None))
        elif self.assignee:
            result.append(c.assignee_id == self.assignee)
        if self.language:
            result.append(c.language == self.language)
        if self.sentiment == "positive":
            result.append(c.sentiment > SENTIMENT_BAND)
        elif self.sentiment == "negative":
            result.append(c.sentiment < -SENTIMENT_BAND)
        elif self.sentiment == "neutral":
            result.append(c.sentiment.between(-SENTIMENT_BAND, SENTIMENT_BAND))
        if self.q:
            result.append(_search_clause(self.q))
        if self.policy_id:
            result.append(c.sla_policy_id == self.policy_id)
        if self.team_ids:
            result.append(c.team_id.in_(self.team_ids))
        if self.sla_active():
            result.append(
                c.id.in_(
                    select(SlaClock.conversation_id).where(
                        *cycle_clauses(
                            metric=self.sla_metric,
                            outcome=self.sla_outcome,
                            started_from=self.started_from,
                            started_to=self.started_to,
                            basis=self.sla_basis,
                            duration_min=self.duration_min,
                            duration_max=self.duration_max,
                        )
                    )
                )
            )
        return result

    def active(self) -> bool:
        return bool(self.clauses())


def _fixed(value: object) -> ColumnElement[Any]:
    """A filter's value written into the SQL: the planner then sees which team, kind … a
    prepared statement's generic plan asks for, and whether the combination matches few rows
    (to look them up in the filters index) or many (to walk a queue index in order)."""
    return literal(value, literal_execute=True)


SLA_OUTCOMES = ("met", "breached", "open", "measured", "at_risk", "overdue")
SLA_BASES = ("business", "calendar")


def calendar_seconds() -> ColumnElement[int]:
    """A stopped clock's wall-clock duration in whole seconds (rounded), per SQL dialect."""
    if db.session.get_bind().dialect.name == "postgresql":
        span = func.extract("epoch", SlaClock.stopped_at - SlaClock.started_at)
    else:
        span = (func.julianday(SlaClock.stopped_at) - func.julianday(SlaClock.started_at)) * 86400
    return cast(func.round(span), Integer)


def duration_seconds(basis: str) -> ColumnElement[int]:
    """Business time (the counted seconds stored at the stop) or calendar time."""
    return SlaClock.counted_seconds if basis == "business" else calendar_seconds()


def cycle_clauses(
    *,
    metric: SlaMetric | None = None,
    outcome: str = "",
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    basis: str = "",
    duration_min: int | None = None,
    duration_max: int | None = None,
) -> list[ColumnElement[bool]]:
    """The SLA clock cycles a report counts (and its drill-downs list), as WHERE clauses on
    `SlaClock`. Rows superseded by a late message are never counted. Outcomes, over cycles with
    a target: `met` stopped without a breach; `breached` breached (stopped or still running);
    `open` running and not breached; `at_risk` running, warned, not breached; `overdue` running
    and breached. `measured` (durations): stopped by a reply (response metrics) or by resolving
    (resolution), with or without a target."""
    k = SlaClock
    clauses: list[ColumnElement[bool]] = [
        or_(k.stop_reason.is_(None), k.stop_reason != StopReason.SUPERSEDED)
    ]
    if metric:
        clauses.append(k.metric == metric)
    if started_from:
        clauses.append(k.started_at >= started_from)
    if started_to:
        clauses.append(k.started_at < started_to)
    targeted = k.target_seconds.is_not(None)
    running, stopped = k.stopped_at.is_(None), k.stopped_at.is_not(None)
    breached, not_breached = k.breached_at.is_not(None), k.breached_at.is_(None)
    clauses += {
        "": [],
        "met": [targeted, stopped, not_breached],
        "breached": [targeted, breached],
        "open": [targeted, running, not_breached],
        "at_risk": [targeted, running, not_breached, k.warned_at.is_not(None)],
        "overdue": [targeted, running, breached],
        "measured": [
            stopped,
            or_(
                k.stop_reason == StopReason.REPLIED,
                and_(k.metric == SlaMetric.RESOLUTION, k.stop_reason == StopReason.RESOLVED),
            ),
        ],
    }[outcome]
    if basis and (duration_min is not None or duration_max is not None):
        value = duration_seconds(basis)
        if duration_min is not None:
            clauses.append(value >= duration_min)
        if duration_max is not None:
            clauses.append(value < duration_max)
    return clauses


def _contains(column: ColumnElement[str], q: str) -> ColumnElement[bool]:
    """`column` contains `q`, in any case, `%` and `_` in `q` being plain characters. The
    pattern is written into the SQL (psycopg prepares a statement run often, and a prepared
    statement's generic plan, not seeing the pattern, would expect many matches and walk a
    queue index instead of joining the few candidates)."""
    escaped = q.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return column.ilike(literal(f"%{escaped}%", String(), literal_execute=True), escape="/")


def _search_clause(q: str) -> ColumnElement[bool]:
    """Message text, or the contact's name or any of its handles, contains `q` (any case).
    One `IN` over the union of the matching conversations, so that PostgreSQL finds the
    candidates from the trigram indexes and joins them (an OR of three subqueries can only
    be checked row by row while walking a queue index)."""
    handle = q.lstrip("@") or q
    contacts = union_all(
        select(Contact.id).where(_contains(Contact.display_name, q)),
        select(ContactIdentity.contact_id).where(
            or_(
                _contains(ContactIdentity.handle, handle),
                _contains(ContactIdentity.display_name, q),
            )
        ),
    )
    by_contact = aliased(Conversation)
    return Conversation.id.in_(
        union_all(
            select(Message.conversation_id).where(_contains(Message.text, q)),
            select(by_contact.id).where(by_contact.contact_id.in_(contacts)),
        )
    )


def encode_cursor(sort: str, conversation: Conversation) -> str:
    payload = json.dumps([sort, _sort_value(conversation, sort).isoformat(), conversation.id])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, key, last_id = json.loads(raw)
        value = datetime.fromisoformat(key)
        if cursor_sort != sort or not isinstance(last_id, int):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InboxError(
            "The cursor is invalid (or belongs to another sort order).", code="bad_cursor"
        ) from None
    return value, last_id


@dataclass
class Page:
    items: list[Conversation]
    next_cursor: str | None
    sort: str = DEFAULT_SORT
    unread: set[int] = field(default_factory=set)
    snippets: dict[int, Message] = field(default_factory=dict)


def _plan_for_the_values() -> None:
    """Have PostgreSQL plan this transaction's statements for their parameter values.

    psycopg prepares a statement run often, and PostgreSQL then switches to a generic plan
    once that looks no dearer than the custom ones: a plan that knows neither the agent's
    team nor the filter values, so it cannot use the joint statistics and expects a rare
    filter combination's rows early in a queue index (priority + tag: 60 ms with custom plans,
    270 ms once generic). Only for the listing: planning every statement costs ingestion ≈ 3 ms
    a delivery (its many small statements gain nothing from it).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def list_conversations(
    user: User,
    *,
    view: str | None = None,
    filters: Filters | None = None,
    sort: str = DEFAULT_SORT,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """One page of conversations `user` may see, in `sort` order after `cursor`."""
    if sort not in SORTS:
        raise InboxError(f"Unknown sort {sort!r}; use one of {', '.join(SORTS)}.", code="bad_sort")
    limit = max(1, min(limit, MAX_LIMIT))
    key, ascending = SORTS[sort]
    _plan_for_the_values()
    query = select(Conversation).where(visibility_clause(user))
    if view:
        query = query.where(*view_clauses(view, user))
    if filters:
        query = query.where(*filters.clauses())
    if cursor:
        value, last_id = decode_cursor(cursor, sort)
        # A row comparison, which the index scan starts from (an OR of the two cases would be
        # read from the start of the index and filtered).
        after = tuple_(key, Conversation.id)
        bound = tuple_(literal(value, UTCDateTime()), literal(last_id))
        query = query.where(after > bound if ascending else after < bound)
    order = (
        (key.asc(), Conversation.id.asc()) if ascending else (key.desc(), Conversation.id.desc())
    )
    rows = list(
        db.session.scalars(
            query.options(
                selectinload(Conversation.contact).selectinload(Contact.identities),
                selectinload(Conversation.channel_account),
                selectinload(Conversation.assignee),
                selectinload(Conversation.team),
                selectinload(Conversation.tags),
            )
            .order_by(*order)
            .limit(limit + 1)
        )
    )
    items = rows[:limit]
    next_cursor = encode_cursor(sort, items[-1]) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor, sort=sort)


def count_conversations(
    user: User, *, view: str | None = None, filters: Filters | None = None
) -> int:
    """How many conversations `list_conversations` would list over all its pages."""
    _plan_for_the_values()
    query = select(func.count(Conversation.id)).where(visibility_clause(user))
    if view:
        query = query.where(*view_clauses(view, user))
    if filters:
        query = query.where(*filters.clauses())
    return db.session.scalar(query) or 0


# How a drill-down names a cycle's outcome (`cycle_clauses`): "… with a first response breached".
_OUTCOME_WORDS = {
    "met": "met",
    "breached": "breached",
    "open": "still running",
    "at_risk": "at risk",
    "overdue": "breached and still waiting",
    "measured": "answered",
}


@dataclass(frozen=True)
class DrillDown:
    what: str  # after "155 conversations": "with a next-response cycle met, started …"
    note: str  # why the report's number can be larger than the count, or ""


def describe_drilldown(filters: Filters) -> DrillDown:
    """The inbox banner over a report drill-down. A report counts clock cycles and the inbox
    lists conversations: say which cycles these conversations have, and when one conversation
    can have several (so "241 met" in the report may open 155 conversations)."""
    metric = filters.sla_metric
    one, many = CYCLE_NOUNS.get(metric, ("an SLA cycle", "SLA cycles"))  # None: any metric
    outcome = _OUTCOME_WORDS.get(filters.sla_outcome, "")
    if filters.sla_outcome == "measured" and metric is SlaMetric.RESOLUTION:
        outcome = "reached"  # stopped by resolving
    what = f"with {one}" + (f" {outcome}" if outcome else "")
    if filters.duration_min is not None or filters.duration_max is not None:
        low = format_duration(filters.duration_min or 0)
        high = f" to under {format_duration(filters.duration_max)}" if filters.duration_max else "+"
        what += f" that took {low}{high} of {filters.sla_basis or 'business'} time"
    if filters.started_from:
        what += f", started from {filters.started_from:%Y-%m-%d %H:%M} UTC"
    if filters.started_to:
        what += f" to before {filters.started_to:%Y-%m-%d %H:%M} UTC"
    note = ""
    if metric is None or metric in REPEATING_METRICS:
        note = f"One conversation can have several {many}: the report counts each cycle."
    return DrillDown(what=what, note=note)


def decorate(page: Page, user: User) -> Page:
    """Fill in what the rows show besides the conversation itself: snippets and unread marks."""
    page.snippets = last_messages([c.id for c in page.items])
    page.unread = unread_ids(user, page.items)
    return page


def last_messages(conversation_ids: list[int]) -> dict[int, Message]:
    """The latest customer or brand message (not a note) of each conversation, in one query."""
    if not conversation_ids:
        return {}
    latest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(conversation_ids), Message.direction != Direction.NOTE)
        .group_by(Message.conversation_id)
    )
    rows = db.session.scalars(select(Message).where(Message.id.in_(latest))).all()
    return {m.conversation_id: m for m in rows}


def unread_ids(user: User, conversations: list[Conversation]) -> set[int]:
    """Conversations with a customer message newer than `user` last read them."""
    if not conversations:
        return set()
    read = dict(
        db.session.execute(
            select(ConversationRead.conversation_id, ConversationRead.last_read_at).where(
                ConversationRead.user_id == user.id,
                ConversationRead.conversation_id.in_([c.id for c in conversations]),
            )
        ).all()
    )
    return {
        c.id
        for c in conversations
        if c.last_inbound_at is not None and (c.id not in read or read[c.id] < c.last_inbound_at)
    }
