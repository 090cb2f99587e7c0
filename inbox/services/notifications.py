"""In-app notifications: creating them (with a live event so the bell updates at once), the
unread count, listing them with a sweep's many alike folded into one group, and marking them
read.

Imports: models, extensions.db, live.
"""

from __future__ import annotations

from collections.abc import Mapping
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


# Folded by kind: an SLA sweep that finds 200 breaches notifies each team supervisor of every
# one at the same instant, and 200 lines would bury everything else in the list.
GROUP_LABELS = {
    "sla.breach": ("SLA breach", "SLA breaches"),
    "sla.warn": ("SLA warning", "SLA warnings"),
}
# What the list reads to fold, how many entries (single or folded) it shows, and how many of a
# group's notices it lists inside the group (all of them are in the "At risk or breached" view).
FOLD_WINDOW, LIST_ENTRIES, GROUP_SHOWN = 200, 30, 20


def listing(user: User) -> list[Notification | NotificationGroup]:
    """The newest entries of `user`'s list, each sweep's notices of a kind folded into one,
    which counts all of them (also those older than the window read)."""
    items = recent(user, limit=FOLD_WINDOW)
    instants = {n.created_at for n in items if n.kind in GROUP_LABELS}
    totals: dict[tuple[str, datetime], int] = {}
    if instants:
        rows = db.session.execute(
            select(Notification.kind, Notification.created_at, func.count(Notification.id))
            .where(
                Notification.user_id == user.id,
                Notification.kind.in_(GROUP_LABELS),
                Notification.created_at.in_(instants),
            )
            .group_by(Notification.kind, Notification.created_at)
        )
        totals = {(kind, at): n for kind, at, n in rows}
    return grouped(items, totals)[:LIST_ENTRIES]


def recent(user: User, *, limit: int) -> list[Notification]:
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


@dataclass(frozen=True)
class NotificationGroup:
    """A user's notices of one kind made at one instant (one sweep): `items` the newest of
    them, as read, `total` how many there are."""

    kind: str
    created_at: datetime
    items: list[Notification]
    total: int

    @property
    def heading(self) -> str:
        one, many = GROUP_LABELS[self.kind]
        return f"{self.total} {one if self.total == 1 else many}"

    @property
    def shown(self) -> list[Notification]:
        return self.items[:GROUP_SHOWN]

    @property
    def unread(self) -> bool:
        return any(n.read_at is None for n in self.items)


def grouped(
    items: list[Notification], totals: Mapping[tuple[str, datetime], int]
) -> list[Notification | NotificationGroup]:
    """`items` (newest first) with the notices of a foldable kind made at the same instant
    folded into one NotificationGroup where the first of them was, however they interleave
    (a sweep writes its bulk notices and its one-by-one escalations apart); `totals` gives a
    group's full size. Mentions and assignments always stay single, as does a lone notice."""
    members: dict[tuple[str, datetime], list[Notification]] = {}
    order: list[Notification | tuple[str, datetime]] = []
    for n in items:
        if n.kind not in GROUP_LABELS:
            order.append(n)
            continue
        key = (n.kind, n.created_at)
        if key not in members:
            members[key] = []
            order.append(key)
        members[key].append(n)
    out: list[Notification | NotificationGroup] = []
    for entry in order:
        if isinstance(entry, Notification):
            out.append(entry)
            continue
        found = members[entry]
        total = max(len(found), totals.get(entry, 0))
        out.append(found[0] if total == 1 else NotificationGroup(*entry, found, total))
    return out


def mark_all_read(user: User, *, now: datetime) -> None:
    db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
    publish_after_commit(db.session, "notification", user_id=user.id)
