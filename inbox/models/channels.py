"""Connected brand accounts: one row per page, handle or phone number we receive messages for.

Imports: extensions, models.base.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from inbox.extensions import Base
from inbox.models.base import TimestampMixin, UTCDateTime, enum_column


class Platform(enum.StrEnum):
    X = "x"
    MESSENGER = "messenger"
    INSTAGRAM = "instagram"
    FACEBOOK = "facebook"
    WHATSAPP = "whatsapp"
    # Custom channels posting through POST /api/v1/messages.
    API = "api"

    @property
    def label(self) -> str:
        """The platform's own spelling, for people ("WhatsApp", not "Whatsapp")."""
        return _PLATFORM_LABELS[self]


_PLATFORM_LABELS = {
    Platform.X: "X",
    Platform.MESSENGER: "Messenger",
    Platform.INSTAGRAM: "Instagram",
    Platform.FACEBOOK: "Facebook",
    Platform.WHATSAPP: "WhatsApp",
    Platform.API: "API",
}


class ChannelAccount(TimestampMixin, Base):
    __tablename__ = "channel_accounts"
    # Webhooks name the account by its platform id (for_user_id, entry[].id, phone_number_id).
    __table_args__ = (UniqueConstraint("platform", "external_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[Platform] = enum_column(Platform)
    external_account_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(default=True)
    # The platform access token used to send replies, encrypted at rest (never logged).
    access_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # When a webhook last brought something for this account (ingestion health for admins).
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
