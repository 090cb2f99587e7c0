"""The public import surface of every model (so Alembic and callers see them all).

Imports: its submodules.
"""

from inbox.models.accounts import ApiToken, Availability, Role, Team, User, team_members
from inbox.models.audit import AuditEvent
from inbox.models.channels import ChannelAccount, Platform
from inbox.models.contacts import Contact, ContactIdentity
from inbox.models.conversations import (
    OPEN_STATUSES,
    Conversation,
    DeliveryStatus,
    Direction,
    EventIssue,
    EventState,
    InboundEvent,
    Kind,
    Message,
    Priority,
    SlaState,
    Status,
    Tag,
    conversation_tags,
)
from inbox.models.notifications import Notification
from inbox.models.sla import (
    BusinessCalendar,
    ClockEventKind,
    SlaClock,
    SlaClockEvent,
    SlaMetric,
    SlaPolicy,
    StopReason,
    Visibility,
    WarnMode,
)

__all__ = [
    "WarnMode",
    "Visibility",
    "StopReason",
    "SlaState",
    "SlaPolicy",
    "SlaMetric",
    "SlaClockEvent",
    "SlaClock",
    "Notification",
    "ClockEventKind",
    "BusinessCalendar",
    "OPEN_STATUSES",
    "ApiToken",
    "AuditEvent",
    "Availability",
    "ChannelAccount",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "DeliveryStatus",
    "Direction",
    "EventIssue",
    "EventState",
    "InboundEvent",
    "Kind",
    "Message",
    "Platform",
    "Priority",
    "Role",
    "Status",
    "Tag",
    "Team",
    "User",
    "conversation_tags",
    "team_members",
]
