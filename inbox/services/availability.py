"""Agent availability (online / away / offline) and the last time they were seen.

Set by the agent from the top bar; `touch` (called by a request hook) keeps `last_seen_at`
fresh at most once a minute; the periodic `mark_idle_away` turns online agents who have not
been seen for a while away. Going online assigns waiting work to the agent's teams; going away
or offline returns their auto-assigned open items to the queue.
Imports: models, extensions.db, live, services.assignment, services.audit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import Availability, User
from inbox.services import assignment
from inbox.services.audit import record_audit

TOUCH_EVERY = timedelta(minutes=1)


def touch(user: User, *, now: datetime) -> bool:
    """Record that `user` is around; True if the row was written (at most once a minute)."""
    if user.last_seen_at is not None and now - user.last_seen_at < TOUCH_EVERY:
        return False
    user.last_seen_at = now
    return True


def set_availability(
    user: User, availability: Availability, *, actor: User | None, now: datetime
) -> None:
    """Change `user`'s availability (they did, or the idle sweep when `actor` is None)."""
    if user.availability is availability:
        return
    before = {"availability": str(user.availability)}
    user.availability = availability
    record_audit(
        "user.availability",
        user,
        actor=actor,
        before=before,
        after={"availability": str(availability)},
        now=now,
    )
    db.session.flush()
    if availability is Availability.ONLINE:
        touch(user, now=now)
        for team in user.teams:
            assignment.assign_backlog(team, now=now)
    else:
        assignment.release_agent(user, now=now)
    publish_after_commit(
        db.session, "user.availability", user_id=user.id, availability=str(availability)
    )


def mark_idle_away(*, now: datetime, idle: timedelta) -> list[User]:
    """Online agents not seen for `idle` become away (their items go back to the queue)."""
    users = db.session.scalars(
        select(User).where(
            User.availability == Availability.ONLINE,
            (User.last_seen_at.is_(None)) | (User.last_seen_at < now - idle),
        )
    ).all()
    for user in users:
        set_availability(user, Availability.AWAY, actor=None, now=now)
    return list(users)


def roster() -> list[User]:
    """Active people with their availability, online first (for supervisors)."""
    order = {Availability.ONLINE: 0, Availability.AWAY: 1, Availability.OFFLINE: 2}
    users = db.session.scalars(select(User).where(User.active.is_(True))).all()
    return sorted(users, key=lambda u: (order[u.availability], u.name.lower()))
