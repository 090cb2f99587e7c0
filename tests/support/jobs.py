"""A job for queue tests: leaves a row a test can look for, through the real unit-of-work path."""

from __future__ import annotations

from inbox.extensions import db
from inbox.jobs import unit_of_work
from inbox.models import AuditEvent


@unit_of_work
def write_marker(label: str) -> None:
    db.session.add(AuditEvent(action="test.marker", target_type="marker", after={"label": label}))
