"""The SLA ledger: business calendars, policies, one clock row per metric cycle and the
append-only clock events that explain every clock (DESIGN.md §5; semantics in docs/sla.md).

Imports: extensions, models.base, models.accounts, models.conversations.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import Base
from inbox.models.accounts import Team
from inbox.models.base import TimestampMixin, UTCDateTime, enum_column
from inbox.models.conversations import Conversation
from inbox.timeutil import utcnow


class SlaMetric(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class StopReason(enum.StrEnum):
    # A counting reply stopped a response clock (met or, if breached_at is set, late).
    REPLIED = "replied"
    RESOLVED = "resolved"  # the conversation was resolved (or closed)
    # A late (out-of-order) message changed the cycles; this row no longer matches a cycle.
    SUPERSEDED = "superseded"


class ClockEventKind(enum.StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    MET = "met"
    STOP = "stop"
    WARN = "warn"
    BREACH = "breach"
    POLICY_CHANGE = "policy_change"
    # A late message moved a start or a stop (see docs/sla.md, "out of order").
    ADJUST = "adjust"


class Visibility(enum.StrEnum):
    ANY = "any"
    PUBLIC = "public"
    PRIVATE = "private"


class WarnMode(enum.StrEnum):
    PERCENT = "percent"  # warn once this share of the target is used
    MINUTES = "minutes"  # warn this many minutes before due


class BusinessCalendar(TimestampMixin, Base):
    """Working hours as stored: `weekly` maps "0".."6" (Mon..Sun) to ["HH:MM", "HH:MM"] pairs,
    `holidays` is a list of ISO dates. `services.sla.calendar_spec` turns it into the pure
    `CalendarSpec` the clocks compute with."""

    __tablename__ = "business_calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    always_open: Mapped[bool] = mapped_column(default=False)
    weekly: Mapped[dict[str, list[list[str]]]] = mapped_column(JSON, default=dict)
    holidays: Mapped[list[str]] = mapped_column(JSON, default=list)
    country: Mapped[str | None] = mapped_column(String(8))
    subdivision: Mapped[str | None] = mapped_column(String(16))


class SlaPolicy(TimestampMixin, Base):
    """Targets and escalations for the conversations its conditions match (first match by
    `position` wins). Empty condition lists match everything."""

    __tablename__ = "sla_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(default=100)
    name: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(default=True)
    # Conditions.
    priorities: Mapped[list[str]] = mapped_column(JSON, default=list)
    platforms: Mapped[list[str]] = mapped_column(JSON, default=list)
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    visibility: Mapped[Visibility] = enum_column(Visibility, default=Visibility.ANY)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)  # any of these
    vip: Mapped[bool | None] = mapped_column()  # None: any contact
    # Targets (None: that metric is measured but has no target).
    first_response_seconds: Mapped[int | None] = mapped_column()
    next_response_seconds: Mapped[int | None] = mapped_column()
    resolution_seconds: Mapped[int | None] = mapped_column()
    # Business time on `calendar` (24/7 UTC when no calendar), or plain calendar time.
    business_hours: Mapped[bool] = mapped_column(default=True)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("business_calendars.id"))
    warn_mode: Mapped[WarnMode] = enum_column(WarnMode, default=WarnMode.PERCENT)
    warn_value: Mapped[int | None] = mapped_column(default=75)
    # Escalations: lists of {"type": "notify", "to": ["assignee", "supervisors"]},
    # {"type": "raise_priority"}, {"type": "reassign", "team_id": N},
    # {"type": "webhook", "url": "https://..."}.
    warning_actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    breach_actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # What counts as a response: outbound, not a note; echoes of replies sent from the
    # platform's own app (no author user) and automatic replies are configurable.
    count_echoes: Mapped[bool] = mapped_column(default=True)
    count_auto_replies: Mapped[bool] = mapped_column(default=False)

    team: Mapped[Team | None] = relationship()
    calendar: Mapped[BusinessCalendar | None] = relationship()

    def target_seconds(self, metric: SlaMetric) -> int | None:
        return {
            SlaMetric.FIRST_RESPONSE: self.first_response_seconds,
            SlaMetric.NEXT_RESPONSE: self.next_response_seconds,
            SlaMetric.RESOLUTION: self.resolution_seconds,
        }[metric]


class SlaClock(Base):
    """One metric cycle of one conversation: first response (cycle 1), each next-response
    cycle (1, 2, …) and resolution (cycle 1, paused and resumed in place)."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        # The idempotency key: a cycle exists once however often the hooks run.
        UniqueConstraint("conversation_id", "metric", "cycle"),
        # The sweep: running clocks whose warning or due instant has passed.
        Index("ix_sla_clocks_running_due", "stopped_at", "due_at"),
        Index("ix_sla_clocks_running_warn", "stopped_at", "warn_at"),
        # Reports: the cycles started in a date range. On PostgreSQL the index also holds every
        # column a report reads, so the range is an index-only scan of its share of the ledger
        # instead of a scan of the whole table (services.reports._cycle_rows).
        Index(
            "ix_sla_clocks_started",
            "started_at",
            postgresql_include=[
                "conversation_id",
                "metric",
                "stop_reason",
                "target_seconds",
                "stopped_at",
                "breached_at",
                "counted_seconds",
            ],
        ),
        # Room on each page for a row's new version, so the sweep's warning marks (no indexed
        # column changes) are HOT updates that write no index entries.
        {"postgresql_with": {"fillfactor": 85}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id"))
    metric: Mapped[SlaMetric] = enum_column(SlaMetric)
    cycle: Mapped[int] = mapped_column(default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    target_seconds: Mapped[int | None] = mapped_column()
    # The calendar elapsed time is measured on; NULL means calendar time (24/7).
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("business_calendars.id"))
    # NULL while paused or without a target.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # [{"start": iso, "end": iso | null, "why": "pending" | "snoozed" | "resolved"}], in order.
    pauses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Business seconds not counted because of closed pauses (kept for reports).
    paused_seconds: Mapped[int] = mapped_column(default=0)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Business seconds counted from start to stop, pauses excluded (`services.sla.counted_time`
    # at the stop), kept so reports can aggregate business time in SQL; NULL while running.
    counted_seconds: Mapped[int | None] = mapped_column()
    stop_reason: Mapped[StopReason | None] = enum_column(StopReason)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    conversation: Mapped[Conversation] = relationship(back_populates="sla_clocks")
    policy: Mapped[SlaPolicy | None] = relationship()
    calendar: Mapped[BusinessCalendar | None] = relationship()
    events: Mapped[list[SlaClockEvent]] = relationship(
        back_populates="clock", order_by="SlaClockEvent.at, SlaClockEvent.id"
    )

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1]["end"] is None


@event.listens_for(Conversation, "init")
def _ledger_starts_empty(target: Conversation, args: Any, kwargs: dict[str, Any]) -> None:
    # A conversation constructed here has no clocks yet: its ledger starts loaded (and empty),
    # so the SLA hooks of a brand-new conversation do not ask the database for it.
    kwargs.setdefault("sla_clocks", [])


class SlaClockEvent(Base):
    """Append-only: what happened to a clock, when, and why."""

    __tablename__ = "sla_clock_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    clock_id: Mapped[int] = mapped_column(
        ForeignKey("sla_clocks.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ClockEventKind] = enum_column(ClockEventKind)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clock: Mapped[SlaClock] = relationship(back_populates="events")
