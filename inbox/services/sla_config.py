"""Creating and editing business calendars and SLA policies (the admin pages call these).

Validation that needs the domain (a calendar that the engine can really compute with, unique
names) lives here; form-level checks live in forms.py.
Imports: models, extensions.db, services.sla (calendar_spec), services.audit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select

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
    return _save(
        calendar or BusinessCalendar(),
        values,
        CALENDAR_FIELDS,
        "sla.calendar.save",
        actor=actor,
        now=now,
    )


def save_policy(
    policy: SlaPolicy | None, values: dict[str, Any], *, actor: User, now: datetime
) -> SlaPolicy:
    """Create (policy=None) or update a policy. Running clocks pick up new targets the next
    time their conversation's hooks run (see docs/sla.md)."""
    return _save(
        policy or SlaPolicy(), values, POLICY_FIELDS, "sla.policy.save", actor=actor, now=now
    )


def _save(obj, values: dict[str, Any], fields, action: str, *, actor: User, now: datetime):
    """Apply `values` to a new or stored row, flush, and audit the change."""
    is_new = inspect(obj).transient
    before = None if is_new else _snapshot(obj, fields)
    if is_new:
        db.session.add(obj)
    for name, value in values.items():
        setattr(obj, name, value)
    db.session.flush()
    record_audit(action, obj, actor=actor, before=before, after=_snapshot(obj, fields), now=now)
    return obj
