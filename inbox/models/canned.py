"""Canned responses: reusable texts with {{placeholders}} that agents insert into notes/replies.

Imports: extensions, models.base.
"""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inbox.extensions import Base
from inbox.models.base import TimestampMixin


class CannedResponse(TimestampMixin, Base):
    __tablename__ = "canned_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120), unique=True)
    body: Mapped[str] = mapped_column(Text)
