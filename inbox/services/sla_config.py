"""Creating and editing business calendars and SLA policies (the admin pages call these).

Validation that needs the domain (a calendar that the engine can really compute with, unique
names) lives here; form-level checks live in forms.py.
Imports: models, extensions.db, services.sla (calendar_spec), services.audit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from inbox.extensions import db
from inbox.models import BusinessCalendar, SlaPolicy, User
from inbox.services.audit import record_audit
from inbox.services.sla import calendar_spec

CALENDAR_FIELDS = (
    "name",
    "timezone",
    "always_open",
    "weekly",
    "holidays",
    "country",
    "subdivision",
)
POLICY_FIELDS = (
    "name",
    "position",
    "active",
    "priorities",
    "platforms",
    "kinds",
    "visibility",
    "team_id",
    "tags",
    "vip",
    "first_response_seconds",
    "next_response_seconds",
    "resolution_seconds",
    "business_hours",
    "calendar_id",
    "warn_mode",
    "warn_value",
    "warning_actions",
    "breach_actions",
    "count_echoes",
    "count_auto_replies",
)


def _snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: (str(v) if hasattr(v, "value") else v) for f in fields for v in [getattr(obj, f)]}


def save_calendar(
    calendar: BusinessCalendar | None, values: dict[str, Any], *, actor: User, now: datetime
) -> BusinessCalendar:
    """Create (calendar=None) or update a calendar; ValueError says what is wrong with it."""
    values = {**values, "country": values.get("country") or None}
    values["subdivision"] = values.get("subdivision") or None
    if values["always_open"]:
        # A 24/7 calendar has no hours or holidays; keep none so it validates and reads clearly.
        values.update(weekly={}, holidays=[], country=None, subdivision=None)
    clash = db.session.scalar(
        select(BusinessCalendar.id).where(BusinessCalendar.name == values["name"])
    )
    if clash is not None and (calendar is None or clash != calendar.id):
        raise ValueError(f"A calendar named “{values['name']}” already exists.")
    calendar_spec(BusinessCalendar(**values))  # raises ValueError: overlap, country, zone
    before = _snapshot(calendar, CALENDAR_FIELDS) if calendar is not None else None
    if calendar is None:
        calendar = BusinessCalendar()
        db.session.add(calendar)
    for name, value in values.items():
        setattr(calendar, name, value)
    db.session.flush()
    record_audit(
        "sla.calendar.save",
        calendar,
        actor=actor,
        before=before,
        after=_snapshot(calendar, CALENDAR_FIELDS),
        now=now,
    )
    return calendar


def save_policy(
    policy: SlaPolicy | None, values: dict[str, Any], *, actor: User, now: datetime
) -> SlaPolicy:
    """Create (policy=None) or update a policy. Running clocks pick up new targets the next
    time their conversation's hooks run (see docs/sla.md)."""
    before = _snapshot(policy, POLICY_FIELDS) if policy is not None else None
    if policy is None:
        policy = SlaPolicy()
        db.session.add(policy)
    for name, value in values.items():
        setattr(policy, name, value)
    db.session.flush()
    record_audit(
        "sla.policy.save",
        policy,
        actor=actor,
        before=before,
        after=_snapshot(policy, POLICY_FIELDS),
        now=now,
    )
    return policy
