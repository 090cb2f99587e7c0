"""Scheduled SLA report e-mails: who gets which summary, how often, and the last period sent
(the idempotency key of the sending job).

Imports: extensions, models.base, models.accounts.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.accounts import User
from inbox.models.base import TimestampMixin, enum_column


class Frequency(enum.StrEnum):
    DAILY = "daily"  # yesterday, sent after the viewer's midnight
    WEEKLY = "weekly"  # last Monday–Sunday, sent on Monday


class ReportSubscription(TimestampMixin, Base):
    __tablename__ = "report_subscriptions"
    __table_args__ = (UniqueConstraint("user_id", "frequency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    frequency: Mapped[Frequency] = enum_column(Frequency)
    # The days of the summary are this zone's days.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Report filters as query arguments (team, platform, …), as on the reports page.
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The period last sent ("2026-01-12" for a day, "2026-W03" for a week): a period is sent once.
    last_period: Mapped[str | None] = mapped_column(String(16))

    user: Mapped[User] = relationship()
