"""In-app notifications: creating them (with a live event so the bell updates at once), the
unread count, listing them with a sweep's many alike folded into one group, and marking them
read.

Imports: models, extensions.db, live.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# What the list reads to fold, and how many entries (single or folded) it shows.
FOLD_WINDOW, LIST_ENTRIES = 500, 30


def listing(user: User) -> list[Notification | NotificationGroup]:
    """The newest entries of `user`'s list: a sweep's many alike folded into one."""
    return grouped(recent(user, limit=FOLD_WINDOW))[:LIST_ENTRIES]


def recent(user: User, *, limit: int = LIST_ENTRIES) -> list[Notification]:
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


# Folded headings by kind: an SLA sweep that finds 200 breaches notifies each team supervisor of
# every one at the same instant, and 200 lines would bury everything else in the list.
GROUP_HEADINGS = {"sla.breach": "SLA breached", "sla.warn": "SLA warnings"}


@dataclass(frozen=True)
class NotificationGroup:
    """Notifications of one kind made at the same instant (one sweep), newest list order kept."""

    kind: str
    items: list[Notification]

    @property
    def heading(self) -> str:
        return f"{GROUP_HEADINGS[self.kind]} on {len(self.items)} conversations"

    @property
    def created_at(self) -> datetime:
        return self.items[0].created_at

    @property
    def unread(self) -> bool:
        return any(n.read_at is None for n in self.items)


def grouped(items: list[Notification]) -> list[Notification | NotificationGroup]:
    """`items` (newest first) with each run of two or more of a groupable kind made at the same
    instant folded into a NotificationGroup; mentions and assignments always stay single."""
    out: list[Notification | NotificationGroup] = []
    run: list[Notification] = []

    def flush() -> None:
        if len(run) > 1:
            out.append(NotificationGroup(run[0].kind, list(run)))
        else:
            out.extend(run)
        run.clear()

    for n in items:
        if run and (n.kind != run[0].kind or n.created_at != run[0].created_at):
            flush()
        if n.kind in GROUP_HEADINGS:
            run.append(n)
        else:
            flush()
            out.append(n)
    flush()
    return out


def mark_all_read(user: User, *, now: datetime) -> None:
    db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
    publish_after_commit(db.session, "notification", user_id=user.id)
