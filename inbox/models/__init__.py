"""The public import surface of every model (so Alembic and callers see them all).

Imports: its submodules.
"""

from inbox.models.accounts import (
    ApiToken,
    AssignmentMode,
    Availability,
    Role,
    Team,
    User,
    team_members,
)
from inbox.models.audit import AuditEvent
from inbox.models.canned import CannedResponse
from inbox.models.channels import ChannelAccount, Platform
from inbox.models.config import ConfigVersion
from inbox.models.contacts import Contact, ContactIdentity
from inbox.models.conversations import (
    CLAIMABLE_STATUSES,
    DONE_STATUSES,
    NO_DEADLINE,
    OPEN_STATUSES,
    Conversation,
    ConversationRead,
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
    in_values,
    sla_order_key,
)
from inbox.models.helpdesk import (
    HelpdeskAttempt,
    HelpdeskCase,
    HelpdeskDelivery,
    HelpdeskDeliveryState,
    HelpdeskEndpoint,
)
from inbox.models.imports import CsvImport, ImportState
from inbox.models.notifications import Notification
from inbox.models.reports import Frequency, ReportSubscription
from inbox.models.routing import RoutingRule
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
    "ConfigVersion",
    "CLAIMABLE_STATUSES",
    "DONE_STATUSES",
    "NO_DEADLINE",
    "OPEN_STATUSES",
    "ApiToken",
    "AssignmentMode",
    "AuditEvent",
    "Availability",
    "BusinessCalendar",
    "CannedResponse",
    "ChannelAccount",
    "ClockEventKind",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "ConversationRead",
    "CsvImport",
    "DeliveryStatus",
    "Direction",
    "EventIssue",
    "EventState",
    "Frequency",
    "HelpdeskAttempt",
    "HelpdeskCase",
    "HelpdeskDelivery",
    "HelpdeskDeliveryState",
    "HelpdeskEndpoint",
    "ImportState",
    "InboundEvent",
    "Kind",
    "Message",
    "Notification",
    "Platform",
    "Priority",
    "ReportSubscription",
    "Role",
    "RoutingRule",
    "SlaClock",
    "SlaClockEvent",
    "SlaMetric",
    "SlaPolicy",
    "SlaState",
    "Status",
    "StopReason",
    "Tag",
    "Team",
    "User",
    "Visibility",
    "WarnMode",
    "conversation_tags",
    "sla_order_key",
    "in_values",
    "team_members",
]
