"""The hand-off of conversations to an external helpdesk or CRM: each team's webhook endpoint
(URL and encrypted signing secret), every case delivery sent to it with each of its attempts,
and the case as the helpdesk reports it back (its id and status).

Imports: extensions, models.base, sibling model modules.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.accounts import Team
from inbox.models.base import TimestampMixin, UTCDateTime, enum_column
from inbox.models.conversations import Conversation
from inbox.timeutil import utcnow


class HelpdeskEndpoint(TimestampMixin, Base):
    """Where a team's cases go. A team without a row hands nothing off."""

    __tablename__ = "helpdesk_endpoints"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(500))
    # The HMAC signing secret, Fernet-encrypted (inbox.encryption); never logged or shown.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)


class HelpdeskDeliveryState(enum.StrEnum):
    PENDING = "pending"  # queued, not tried yet
    RETRYING = "retrying"  # the last attempt failed for a reason that may pass
    DELIVERED = "delivered"
    FAILED = "failed"  # refused (4xx) or out of retries; an admin can replay it


class HelpdeskDelivery(Base):
    """One case sent (or to be sent) to a team's helpdesk. The payload is frozen when the
    conversation is routed, so a replay sends the same case again."""

    __tablename__ = "helpdesk_deliveries"
    __table_args__ = (
        # The conversation page shows its latest delivery.
        Index("ix_helpdesk_deliveries_conversation", "conversation_id", "id"),
        # The sweep looks for deliveries queued long ago and never tried (Redis was down).
        Index("ix_helpdesk_deliveries_state_queued", "state", "queued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[HelpdeskDeliveryState] = enum_column(
        HelpdeskDeliveryState, default=HelpdeskDeliveryState.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When a job for it was last enqueued (first send, replay, the sweep).
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    conversation: Mapped[Conversation] = relationship()
    team: Mapped[Team | None] = relationship()
    attempts: Mapped[list[HelpdeskAttempt]] = relationship(
        back_populates="delivery", order_by="HelpdeskAttempt.id"
    )


class HelpdeskAttempt(Base):
    """One POST of a delivery: when, to where, and what came back (or why nothing did)."""

    __tablename__ = "helpdesk_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("helpdesk_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    url: Mapped[str] = mapped_column(String(500))
    http_status: Mapped[int | None] = mapped_column()
    # The start of the receiver's answer (webhook_client.BODY_EXCERPT_BYTES at most).
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[HelpdeskDelivery] = relationship(back_populates="attempts")


class HelpdeskCase(Base):
    """The helpdesk's own view of a conversation's case, from its status callbacks
    (POST /api/v1/conversations/<id>/external-status)."""

    __tablename__ = "helpdesk_cases"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    external_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
