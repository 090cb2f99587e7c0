"""The append-only audit log: who did what to which object, with before/after values.

Imports: extensions, models.base.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.accounts import User
from inbox.models.base import UTCDateTime
from inbox.timeutil import utcnow


class AuditEvent(Base):
    __tablename__ = "audit_events"
    # The conversation history and the admin log read events per target, newest first.
    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL actor means the system (a rule, the SLA sweep, an import).
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column()
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[User | None] = relationship()
