"""Supervisor pages: the workload overview (full SLA reports arrive with issue #6).

Imports: models, extensions.db, permissions.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.models import OPEN_STATUSES, ChannelAccount, Conversation, Role, Team
from inbox.permissions import role_required

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.route("/")
@role_required(Role.SUPERVISOR, Role.ADMIN)
def index():
    by_status = db.session.execute(
        select(Conversation.status, func.count()).group_by(Conversation.status)
    ).all()
    open_by_team = db.session.execute(
        select(func.coalesce(Team.name, "No team"), func.count(Conversation.id))
        .select_from(Conversation)
        .outerjoin(Team, Team.id == Conversation.team_id)
        .where(Conversation.status.in_(OPEN_STATUSES))
        .group_by(Team.name)
        .order_by(func.count(Conversation.id).desc())
    ).all()
    by_platform = db.session.execute(
        select(ChannelAccount.platform, func.count(Conversation.id))
        .join(Conversation, Conversation.channel_account_id == ChannelAccount.id)
        .group_by(ChannelAccount.platform)
    ).all()
    return render_template(
        "reports/index.html",
        by_status=by_status,
        open_by_team=open_by_team,
        by_platform=by_platform,
        total=sum(n for _, n in by_status),
    )
