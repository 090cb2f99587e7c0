"""The agent's home: queue views with live counts and the conversation list.

Read-only for now; triage and reply actions arrive with the agent inbox (issue #4).
Imports: models, extensions.db, permissions.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import and_, func, select
from sqlalchemy.orm import selectinload

from inbox.extensions import db
from inbox.models import (
    OPEN_STATUSES,
    ChannelAccount,
    Contact,
    Conversation,
    Message,
    Status,
)
from inbox.timeutil import utcnow

bp = Blueprint("inbox", __name__)

PAGE_SIZE = 50


def _view_filters(name: str) -> list:
    """The WHERE clauses of each named queue view (shared by counts and the list)."""
    not_spam = Conversation.is_spam.is_(False)
    open_ = Conversation.status.in_(OPEN_STATUSES)
    return {
        "unassigned": [not_spam, open_, Conversation.assignee_id.is_(None)],
        "mine": [not_spam, open_, Conversation.assignee_id == current_user.id],
        "open": [not_spam, open_],
        "pending": [not_spam, Conversation.status == Status.PENDING],
        "snoozed": [not_spam, Conversation.status == Status.SNOOZED],
        "resolved": [not_spam, Conversation.status.in_((Status.RESOLVED, Status.CLOSED))],
        "spam": [Conversation.is_spam.is_(True)],
    }[name]


VIEWS = [
    ("unassigned", "Unassigned"),
    ("mine", "Mine"),
    ("open", "All open"),
    ("pending", "Pending"),
    ("snoozed", "Snoozed"),
    ("resolved", "Resolved"),
    ("spam", "Spam"),
]


@bp.route("/")
@login_required
def home():
    return redirect(url_for("inbox.index"))


@bp.route("/inbox")
@bp.route("/inbox/<view>")
@login_required
def index(view: str = "open"):
    if view not in dict(VIEWS):
        abort(404)
    counts = {
        name: db.session.scalar(
            select(func.count(Conversation.id)).where(and_(*_view_filters(name)))
        )
        for name, _ in VIEWS
    }
    conversations = db.session.scalars(
        select(Conversation)
        .where(*_view_filters(view))
        .options(
            selectinload(Conversation.contact).selectinload(Contact.identities),
            selectinload(Conversation.channel_account),
            selectinload(Conversation.assignee),
            selectinload(Conversation.tags),
        )
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        .limit(PAGE_SIZE)
    ).all()
    snippets = _last_messages([c.id for c in conversations])
    accounts = db.session.scalar(select(func.count(ChannelAccount.id)))
    return render_template(
        "inbox/index.html",
        views=VIEWS,
        view=view,
        counts=counts,
        conversations=conversations,
        snippets=snippets,
        account_count=accounts,
        selected=request.args.get("c", type=int),
        now=utcnow(),
    )


def _last_messages(conversation_ids: list[int]) -> dict[int, Message]:
    """The latest non-note message of each conversation, in one query."""
    if not conversation_ids:
        return {}
    latest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(conversation_ids), Message.direction != "note")
        .group_by(Message.conversation_id)
    )
    rows = db.session.scalars(select(Message).where(Message.id.in_(latest))).all()
    return {m.conversation_id: m for m in rows}
