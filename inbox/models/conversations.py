"""The unit of work (Conversation), what is said in it (Message), its tags, and the raw webhook
deliveries (InboundEvent) that conversations are built from.

Imports: extensions, models.base, sibling model modules.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Column,
    Computed,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    column,
    event,
    func,
    literal,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql import ColumnElement, false

from inbox.extensions import Base
from inbox.models.accounts import Team, User
from inbox.models.base import TimestampMixin, UTCDateTime, enum_column, trigram_index
from inbox.models.channels import ChannelAccount, Platform
from inbox.models.contacts import Contact, ContactIdentity
from inbox.timeutil import utcnow

if TYPE_CHECKING:  # models.sla imports this module
    from inbox.models.sla import SlaClock


class Status(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # waiting on the customer
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.SNOOZED)
DONE_STATUSES = (Status.RESOLVED, Status.CLOSED)
# Only untouched or active items are handed out; pending/snoozed ones wait on the customer.
CLAIMABLE_STATUSES = (Status.NEW, Status.OPEN)


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class SlaState(enum.StrEnum):
    """The nearest running SLA clock's state, denormalised for the queue badge."""

    NONE = "none"  # no running clock with a target
    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"


# A conversation without a running SLA clock sorts after every deadline, as if due at this instant.
NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)

# The queue's indexes and the queries they serve are built by the functions below, so that both
# hold the very same expressions. The values are written into the SQL, not bound as parameters:
# PostgreSQL matches an index expression, and proves a partial index's WHERE, only against
# constants, and a prepared statement's generic plan sees parameters instead. The constants are
# spelled as PostgreSQL writes them back (reflection), so that Alembic's comparison of models
# and migrations finds the indexes equal.


def _constant(value: Any, type_: Any) -> ColumnElement[Any]:
    return literal(value, type_, literal_execute=True)


class _NoDeadline(ColumnElement[datetime]):
    """NO_DEADLINE as a constant in the SQL."""

    type = UTCDateTime()
    # Stateless, so every instance has the same cache key; without one SQLAlchemy would
    # compile every statement holding it (each queue and get-next query) on every execution.
    _traverse_internals: list[Any] = []
    inherit_cache = True


@compiles(_NoDeadline, "postgresql")
def _no_deadline_postgresql(element: _NoDeadline, compiler: Any, **kw: Any) -> str:
    # As PostgreSQL prints the constant back when its time zone is UTC (the project's servers
    # and test clusters); the value, and so what the index holds, is the same in any zone.
    return "'9999-12-31 00:00:00+00'::timestamptz"


@compiles(_NoDeadline)
def _no_deadline(element: _NoDeadline, compiler: Any, **kw: Any) -> str:
    # SQLite: UTCDateTime's stored form, which compares with the stored deadlines.
    return compiler.render_literal_value(NO_DEADLINE, UTCDateTime())


def in_values(column: ColumnElement[Any], members: Iterable[enum.StrEnum]) -> ColumnElement[bool]:
    """`column IN (…)` with the enum members' values as constants: a partial index's predicate
    is proven from these (statuses), and a statement built once needs no parameters for them."""
    return column.in_([_constant(m.value, String()) for m in members])


def sla_order_key(due_at: ColumnElement[Any]) -> ColumnElement[datetime]:
    """The SLA-first sort key: the nearest deadline, or NO_DEADLINE when there is none."""
    return func.coalesce(due_at, _NoDeadline())


# Most urgent first in an ascending order (Priority's values).
PRIORITY_RANK_SQL = (
    "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END"
)


def _partial(where: ColumnElement[bool]) -> dict[str, ColumnElement[bool]]:
    return {"postgresql_where": where, "sqlite_where": where}


# The index definitions cannot use the model's columns (the class does not exist yet while its
# __table_args__ are read), so they name them.
_status = column("status", String())
_not_spam = column("is_spam", Boolean()).is_(False)
_sla_key = sla_order_key(column("sla_due_at", UTCDateTime()))


class Kind(enum.StrEnum):
    DM = "dm"
    MENTION = "mention"
    COMMENT = "comment"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    NOTE = "note"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class EventState(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


conversation_tags = Table(
    "conversation_tags",
    Base.metadata,
    Column(
        "conversation_id",
        Integer,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag_id", Integer, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Conversation(TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # A DM thread per customer and account, or a public thread per root post: ingestion
        # finds the conversation by this key, so it must be unique per account.
        UniqueConstraint("channel_account_id", "thread_key"),
        # Queue views: "open items of team T" and "my open items", newest activity first.
        Index("ix_conversations_team_status", "team_id", "status", "last_message_at"),
        Index("ix_conversations_assignee_status", "assignee_id", "status", "last_message_at"),
        Index("ix_conversations_status_last", "status", "last_message_at"),
        # "At risk or breached": open items by their nearest SLA deadline.
        Index("ix_conversations_status_sla_due", "status", "sla_due_at"),
        # The first page of every queue view in the default (SLA-first) order walks one of these
        # in order and stops after a page, instead of sorting all the view's rows: one per view
        # group (open, resolved/closed, spam), as each view's WHERE implies one of them.
        Index(
            "ix_conversations_open_sla",
            _sla_key,
            "id",
            **_partial(in_values(_status, OPEN_STATUSES) & _not_spam),
        ),
        # "Mine", an agent's own open items: a small share of the open ones, so walking the
        # index above would read many other agents' rows first.
        Index(
            "ix_conversations_mine_sla",
            "assignee_id",
            _sla_key,
            "id",
            **_partial(in_values(_status, OPEN_STATUSES) & _not_spam),
        ),
        Index(
            "ix_conversations_done_sla",
            _sla_key,
            "id",
            **_partial(in_values(_status, DONE_STATUSES) & _not_spam),
        ),
        Index(
            "ix_conversations_spam_sla",
            _sla_key,
            "id",
            **_partial(column("is_spam", Boolean()).is_(True)),
        ),
        # The other sorts of the open views (services.listing.SORTS).
        Index(
            "ix_conversations_open_waiting",
            func.coalesce(column("last_inbound_at"), column("created_at")),
            "id",
            **_partial(in_values(_status, OPEN_STATUSES) & _not_spam),
        ),
        Index(
            "ix_conversations_open_activity",
            func.coalesce(column("last_message_at"), column("created_at")),
            "id",
            **_partial(in_values(_status, OPEN_STATUSES) & _not_spam),
        ),
        # Filtered open views (services.listing.Filters): the visibility rule's team branch, or
        # a team filter, reads only the rows matching every one of these columns' filters, so
        # a combination matching few rows (a team's mentions, a channel's urgent items …)
        # is found without reading all that team's rows.
        Index(
            "ix_conversations_open_filters",
            "team_id",
            "kind",
            "priority",
            "is_public",
            "channel_account_id",
            **_partial(in_values(_status, OPEN_STATUSES) & _not_spam),
        ),
        # Get next (services.assignment.NEXT_ORDER) over the claimable items: the first
        # eligible row in this order is the answer, found without sorting.
        Index(
            "ix_conversations_claim",
            _sla_key,
            "priority_rank",
            "first_inbound_at",
            "id",
            **_partial(
                in_values(_status, CLAIMABLE_STATUSES) & column("assignee_id").is_(None) & _not_spam
            ),
        ),
        # Room on each page for a row's new version: the SLA sweep's writes (state, version)
        # change no indexed column, so they can be HOT updates, which write none of the many
        # index entries above (10,000 conversations per sweep: 0.5 s → 0.1 s).
        {"postgresql_with": {"fillfactor": 85}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    thread_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[Kind] = enum_column(Kind)
    is_public: Mapped[bool] = mapped_column(default=False)
    status: Mapped[Status] = enum_column(Status, default=Status.NEW)
    priority: Mapped[Priority] = enum_column(Priority, default=Priority.NORMAL)
    # Get next's priority order, urgent first, kept by the database itself (a generated column)
    # so that the claim index can hold it and no writer can forget it. Stored: PostgreSQL
    # cannot index a virtual one.
    priority_rank: Mapped[int] = mapped_column(Computed(PRIORITY_RANK_SQL, persisted=True))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # When the current assignee got it: the no-action timeout counts from here.
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_spam: Mapped[bool] = mapped_column(default=False)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    language: Mapped[str | None] = mapped_column(String(16))
    sentiment: Mapped[float | None] = mapped_column()
    # Denormalised timestamps the queue and reports sort and filter on (maintained by services).
    first_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(default=0)
    # SLA, denormalised by services.sla for the queue: the policy in force, the nearest due
    # instant of a running clock, and its state (ok | warning | breached | none).
    sla_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_policies.id", name="fk_conversations_sla_policy_id")
    )
    # Set by a routing rule's "apply SLA policy": select_policy keeps that policy.
    sla_policy_pinned: Mapped[bool] = mapped_column(default=False, server_default=false())
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_state: Mapped[SlaState] = enum_column(SlaState, default=SlaState.NONE)
    # Bumped by every change an agent should know about (actions, notes, new messages): a form
    # carries the version it was rendered with, so a stale action is refused, not applied blind.
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    channel_account: Mapped[ChannelAccount] = relationship()
    contact: Mapped[Contact] = relationship()
    team: Mapped[Team | None] = relationship()
    assignee: Mapped[User | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=conversation_tags)
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.sent_at, Message.id"
    )
    # The SLA ledger (models.sla); the database deletes it with the conversation.
    sla_clocks: Mapped[list[SlaClock]] = relationship(
        back_populates="conversation", passive_deletes=True
    )

    @property
    def platform(self) -> Platform:
        return self.channel_account.platform

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


# PostgreSQL's statistics of how the filterable columns occur together (a team may get only
# DMs, say): assuming them independent, the planner expects a rare filter combination's rows
# early in a queue index and walks all of it; knowing, it reads that team's rows instead.
# One object over the visibility rule's columns too (team, assignee): the planner estimates
# an OR from an object only if it covers every column the OR names, and two overlapping
# objects each cover only part of a query's clauses (with the assignee in a second object,
# team + kind + public was expected to match 36,000 rows instead of none).
FILTER_STATISTICS = (
    "CREATE STATISTICS conversations_filters (mcv)"
    " ON team_id, assignee_id, kind, is_public, priority, status, is_spam FROM conversations"
)
event.listen(
    Conversation.__table__, "after_create", DDL(FILTER_STATISTICS).execute_if(dialect="postgresql")
)


class Message(TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Idempotent ingestion: a platform message id exists once per channel account, however
        # many times the platform delivers it. NULL (notes, unsent replies) is not constrained.
        UniqueConstraint("channel_account_id", "external_id"),
        Index("ix_messages_conversation_sent", "conversation_id", "sent_at"),
        # The queue's search over what was said (services.listing).
        trigram_index("ix_messages_text_trgm", "text"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    channel_account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id"))
    external_id: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[Direction] = enum_column(Direction)
    # Inbound messages have an author identity; outbound replies and notes an author user
    # (or none: an echo of a reply sent from the platform's own app).
    author_identity_id: Mapped[int | None] = mapped_column(ForeignKey("contact_identities.id"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_auto_reply: Mapped[bool] = mapped_column(default=False)
    delivery_status: Mapped[DeliveryStatus | None] = enum_column(DeliveryStatus)
    delivery_error: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Earlier versions of an edited message, oldest first: [{"text": …, "replaced_at": …}].
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Customer messages only (services.classify): ISO 639 code; VADER compound score -1…1.
    language: Mapped[str | None] = mapped_column(String(16))
    sentiment: Mapped[float | None] = mapped_column()

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    author_identity: Mapped[ContactIdentity | None] = relationship()
    author_user: Mapped[User | None] = relationship()


class ConversationRead(Base):
    """When an agent last looked at a conversation: rows with newer customer messages are unread
    for that agent (read state is per agent, not shared)."""

    __tablename__ = "conversation_reads"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    last_read_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboundEvent(Base):
    """A webhook delivery exactly as received. Written before the platform gets its 200, so
    nothing accepted is ever lost; a worker processes it afterwards."""

    __tablename__ = "inbound_events"
    # The pick-up sweep looks for events still pending (e.g. Redis was down at receipt).
    __table_args__ = (Index("ix_inbound_events_state_received", "state", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[EventState] = enum_column(EventState, default=EventState.PENDING)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # Set when the stale-event sweep last re-enqueued it, so one sweep does not pile up jobs.
    requeued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    issues: Mapped[list[EventIssue]] = relationship(back_populates="event")


class EventIssue(Base):
    """A part of a webhook delivery that did not become a message: an unknown channel account,
    an unsupported type, a status for a message we never sent … Listed for admins, never
    silently dropped."""

    __tablename__ = "event_issues"
    # The admin view counts issues per account.
    __table_args__ = (Index("ix_event_issues_account", "platform", "account_external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("inbound_events.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    account_external_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[InboundEvent] = relationship(back_populates="issues")
