"""In-app notifications for one user (SLA escalations, @mentions, a conversation routed to
their team …): shown under the bell in the top bar until read.

Imports: extensions, models.base, sibling model modules.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.accounts import User
from inbox.models.base import UTCDateTime
from inbox.models.conversations import Conversation
from inbox.timeutil import utcnow


class Notification(Base):
    __tablename__ = "notifications"
    # The bell reads "unread of user U, newest first" on every page.
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What raised it ("sla.warn", "sla.breach", "mention", "routed" …): the UI picks an icon.
    kind: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    conversation: Mapped[Conversation | None] = relationship()
