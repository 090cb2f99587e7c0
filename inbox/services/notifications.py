"""In-app notifications: creating them (with a live event so the bell updates at once), the
unread count and marking them read.

Imports: models, extensions.db, live.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import Conversation, Notification, User


def notify(
    user: User, kind: str, text: str, *, conversation: Conversation | None, now: datetime
) -> Notification:
    notification = Notification(
        user=user, kind=kind, text=text, conversation=conversation, created_at=now
    )
    db.session.add(notification)
    publish_after_commit(db.session, "notification", user_id=user.id)
    return notification


def unread_count(user: User) -> int:
    return (
        db.session.scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == user.id, Notification.read_at.is_(None)
            )
        )
        or 0
    )


def recent(user: User, *, limit: int = 30) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user.id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
            # Each item names its customer and team (the conversation's id means nothing to
            # an agent): loaded in two queries, not two per item.
            .options(
                selectinload(Notification.conversation).options(
                    selectinload(Conversation.contact), selectinload(Conversation.team)
                )
            )
        )
    )


def mark_all_read(user: User, *, now: datetime) -> None:
    db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
    publish_after_commit(db.session, "notification", user_id=user.id)
