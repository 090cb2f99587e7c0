"""People who work the inbox: users (agents, supervisors, admins), teams and API tokens.

Imports: extensions, models.base.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.base import TimestampMixin, UTCDateTime, enum_column


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Availability(enum.StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class AssignmentMode(enum.StrEnum):
    """How a team's queue gets its agents: by hand, in turn, or to the least busy."""

    MANUAL = "manual"
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"


team_members = Table(
    "team_members",
    Base.metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class Team(TimestampMixin, Base):
    """A queue owner ("Social care", "Billing support"): conversations and agents belong to it."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    assignment_mode: Mapped[AssignmentMode] = enum_column(
        AssignmentMode, default=AssignmentMode.MANUAL, server_default="manual"
    )
    # An auto-assigned conversation the agent has not acted on within this much business time
    # (on `calendar`, or around the clock without one) goes back to the queue.
    assignment_timeout_minutes: Mapped[int] = mapped_column(default=30, server_default="30")
    calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("business_calendars.id", name="fk_teams_calendar_id", ondelete="SET NULL")
    )
    # Round robin's turn: the member who got the last conversation (the next one goes to the
    # next eligible member by id after them).
    last_assigned_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", name="fk_teams_last_assigned_user_id", ondelete="SET NULL")
    )

    members: Mapped[list[User]] = relationship(secondary=team_members, back_populates="teams")


class User(UserMixin, TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased so sign-in is case-insensitive and the unique index is meaningful.
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = enum_column(Role, default=Role.AGENT)
    # Deactivated users keep their history (authorship, audit) but cannot sign in or use tokens.
    active: Mapped[bool] = mapped_column(default=True)
    availability: Mapped[Availability] = enum_column(Availability, default=Availability.OFFLINE)
    # Maximum open conversations auto-assignment may give this agent.
    capacity: Mapped[int] = mapped_column(default=10)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    teams: Mapped[list[Team]] = relationship(secondary=team_members, back_populates="members")
    api_tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def session_fingerprint(self) -> str:
        """Changes whenever the password does (each hash has a fresh salt)."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def get_id(self) -> str:
        """How the session and remember-me cookies name this user: the id and the password's
        fingerprint, so a new password signs out every browser signed in with the old one
        (`views.auth.load_user` compares them). The cookies are signed, so neither part can be
        forged, and a digest of a salted hash tells nothing about the password."""
        return f"{self.id}:{self.session_fingerprint}"

    @property
    def initials(self) -> str:
        parts = [p for p in self.name.split() if p]
        return "".join(p[0] for p in parts[:2]).upper() or self.email[:1].upper()

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles


class ApiToken(Base):
    """A bearer token for /api/v1. Only a SHA-256 of the token is stored; the token itself is
    shown once when created. Tokens are random 256-bit strings, so a fast hash is enough."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="api")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="api_tokens")
