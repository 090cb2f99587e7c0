"""Customers: one Contact per person, one ContactIdentity per platform account they write from.

Imports: extensions, models.base.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.base import TimestampMixin, enum_column, trigram_index
from inbox.models.channels import Platform


class Contact(TimestampMixin, Base):
    __tablename__ = "contacts"
    # The queue's search by customer name (services.listing).
    __table_args__ = (trigram_index("ix_contacts_display_name_trgm", "display_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    is_vip: Mapped[bool] = mapped_column(default=False)
    notes: Mapped[str] = mapped_column(Text, default="")

    # In a fixed order (the API lists them; get next's SQL answer orders them the same way).
    identities: Mapped[list[ContactIdentity]] = relationship(
        back_populates="contact", order_by="ContactIdentity.id"
    )

    @property
    def label(self) -> str:
        """The name agents see: the contact's own, else its first identity's label."""
        if self.display_name:
            return self.display_name
        return self.identities[0].label if self.identities else "Unknown customer"


class ContactIdentity(TimestampMixin, Base):
    __tablename__ = "contact_identities"
    # The same platform user always resolves to the same contact: ingestion upserts on this.
    __table_args__ = (
        UniqueConstraint("platform", "external_user_id"),
        # The queue's search by handle or name on a platform (services.listing).
        trigram_index("ix_contact_identities_handle_trgm", "handle"),
        trigram_index("ix_contact_identities_display_name_trgm", "display_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    platform: Mapped[Platform] = enum_column(Platform)
    external_user_id: Mapped[str] = mapped_column(String(64))
    handle: Mapped[str] = mapped_column(String(255), default="")
    display_name: Mapped[str] = mapped_column(String(255), default="")
    follower_count: Mapped[int | None] = mapped_column()
    verified: Mapped[bool] = mapped_column(default=False)

    contact: Mapped[Contact] = relationship(back_populates="identities")

    @property
    def label(self) -> str:
        """Name, else @handle, else platform and the end of the id: Messenger, Instagram DM and
        WhatsApp webhooks may carry only a scoped user id, and agents still need to tell two
        such customers apart."""
        if self.display_name:
            return self.display_name
        if self.handle:
            return "@" + self.handle
        return f"{self.platform.label} user …{self.external_user_id[-4:]}"
