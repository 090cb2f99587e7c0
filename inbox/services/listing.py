"""Reading the queue: named views with counts, filters, text search, sorts and keyset
pagination (a cursor holding the last row's sort key and id; never OFFSET, so pages stay
stable while new conversations arrive), plus what each row shows (snippet, unread marker).

Every query is limited to what the user may see (services.conversations.visibility_clause).
Imports: models, extensions.db, errors, services.conversations.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import ColumnElement

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.models import (
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
    SlaState,
    Status,
    Tag,
    User,
    conversation_tags,
)
from inbox.models.base import UTCDateTime
from inbox.services.conversations import visibility_clause
from inbox.timeutil import utcnow

VIEWS: list[tuple[str, str]] = [
    ("breaching", "Breaching soon"),
    ("unassigned", "Unassigned"),
    ("mine", "Mine"),
    ("teams", "My teams"),
    ("open", "All open"),
    ("pending", "Pending"),
    ("snoozed", "Snoozed"),
    ("resolved", "Resolved"),
    ("spam", "Spam"),
]
VIEW_NAMES = dict(VIEWS)

# Sort name -> (key expression, ascending). The key never is NULL (coalesced with created_at)
# so the keyset comparison is total.
# Conversations without a running SLA clock sort after every deadline.
NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)
# "Breaching soon" shows what is warned, breached, or due within this horizon.
BREACHING_HORIZON = timedelta(hours=1)

SORTS: dict[str, tuple[ColumnElement[datetime], bool]] = {
    "sla": (func.coalesce(Conversation.sla_due_at, literal(NO_DEADLINE, UTCDateTime())), True),
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


def _sort_value(conversation: Conversation, sort: str) -> datetime:
    if sort == "sla":
        return conversation.sla_due_at or NO_DEADLINE
    if sort == "waiting":
        return conversation.last_inbound_at or conversation.created_at
    return conversation.last_message_at or conversation.created_at


def view_clauses(name: str, user: User) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a named queue view (shared by the counts and the list)."""
    not_spam = Conversation.is_spam.is_(False)
    open_ = Conversation.status.in_(OPEN_STATUSES)
    active = Conversation.status.in_((Status.NEW, Status.OPEN))
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
        "pending": [not_spam, Conversation.status == Status.PENDING],
        "snoozed": [not_spam, Conversation.status == Status.SNOOZED],
        "resolved": [not_spam, Conversation.status.in_((Status.RESOLVED, Status.CLOSED))],
        "spam": [Conversation.is_spam.is_(True)],
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
        )

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
            result.append(c.channel_account_id == self.channel_account_id)
        if self.kind:
            result.append(c.kind == self.kind)
        if self.is_public is not None:
            result.append(c.is_public.is_(self.is_public))
        if self.priority:
            result.append(c.priority == self.priority)
        if self.tag:
            result.append(
                c.id.in_(
                    select(conversation_tags.c.conversation_id)
                    .join(Tag, Tag.id == conversation_tags.c.tag_id)
                    .where(func.lower(Tag.name) == self.tag.lower())
                )
            )
        if self.team_id:
            result.append(c.team_id == self.team_id)
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
        return result

    def active(self) -> bool:
        return bool(self.clauses())


def _search_clause(q: str) -> ColumnElement[bool]:
    """Message text, or the contact's name or any of its handles, contains `q` (any case)."""
    handle = q.lstrip("@") or q
    return or_(
        Conversation.id.in_(
            select(Message.conversation_id).where(Message.text.icontains(q, autoescape=True))
        ),
        Conversation.contact_id.in_(
            select(Contact.id).where(Contact.display_name.icontains(q, autoescape=True))
        ),
        Conversation.contact_id.in_(
            select(ContactIdentity.contact_id).where(
                or_(
                    ContactIdentity.handle.icontains(handle, autoescape=True),
                    ContactIdentity.display_name.icontains(q, autoescape=True),
                )
            )
        ),
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
    query = select(Conversation).where(visibility_clause(user))
    if view:
        query = query.where(*view_clauses(view, user))
    if filters:
        query = query.where(*filters.clauses())
    if cursor:
        value, last_id = decode_cursor(cursor, sort)
        bound = literal(value, UTCDateTime())
        if ascending:
            query = query.where(or_(key > bound, and_(key == bound, Conversation.id > last_id)))
        else:
            query = query.where(or_(key < bound, and_(key == bound, Conversation.id < last_id)))
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
