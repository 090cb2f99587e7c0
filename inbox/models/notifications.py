"""In-app notifications for one user (SLA escalations, @mentions, …): a line of text, an
optional conversation to open, and whether it has been read.

Imports: extensions, models.base.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inbox.extensions import Base
from inbox.models.base import UTCDateTime
from inbox.timeutil import utcnow


class Notification(Base):
    __tablename__ = "notifications"
    # "My unread notifications, newest first".
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What raised it, e.g. "sla.warning", "sla.breach", "mention".
    kind: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
