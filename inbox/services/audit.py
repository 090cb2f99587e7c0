"""Writing the append-only audit log. Every service that changes something calls record_audit.

Imports: models, extensions.db, timeutil.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inbox.extensions import db
from inbox.models import AuditEvent, User
from inbox.timeutil import utcnow


def record_audit(
    action: str,
    target: Any,
    *,
    actor: User | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one audit row for `target` (any model with an id); NULL actor means the system."""
    entry = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        action=action,
        target_type=type(target).__tablename__,
        target_id=target.id,
        before=before,
        after=after,
        created_at=now or utcnow(),
    )
    db.session.add(entry)
    return entry
