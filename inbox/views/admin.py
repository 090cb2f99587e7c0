"""Admin pages: the people, teams and channel accounts of the workspace.

Imports: models, extensions.db, permissions.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from inbox.extensions import db
from inbox.models import ChannelAccount, Conversation, EventState, InboundEvent, Role, Team, User
from inbox.permissions import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@role_required(Role.ADMIN)
def index():
    users = db.session.scalars(
        select(User).options(selectinload(User.teams)).order_by(User.role, User.name)
    ).all()
    teams = db.session.execute(
        select(Team, func.count(Conversation.id))
        .outerjoin(Conversation, Conversation.team_id == Team.id)
        .group_by(Team.id)
        .order_by(Team.name)
    ).all()
    channels = db.session.execute(
        select(ChannelAccount, func.count(Conversation.id))
        .outerjoin(Conversation, Conversation.channel_account_id == ChannelAccount.id)
        .group_by(ChannelAccount.id)
        .order_by(ChannelAccount.platform, ChannelAccount.name)
    ).all()
    failed_events = db.session.scalar(
        select(func.count(InboundEvent.id)).where(InboundEvent.state == EventState.FAILED)
    )
    return render_template(
        "admin/index.html",
        users=users,
        teams=teams,
        channels=channels,
        failed_events=failed_events,
    )
