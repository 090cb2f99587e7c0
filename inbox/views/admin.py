"""Admin pages: the people, teams and channel accounts of the workspace, canned responses.

Imports: models, extensions.db, forms, errors, permissions, services.canned, timeutil.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.forms import CannedResponseForm, PostForm
from inbox.models import (
    CannedResponse,
    ChannelAccount,
    Conversation,
    EventState,
    InboundEvent,
    Role,
    Team,
    User,
)
from inbox.permissions import role_required
from inbox.services import canned
from inbox.timeutil import utcnow

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


@bp.route("/canned", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def canned_list():
    form = CannedResponseForm()
    if form.validate_on_submit():
        try:
            canned.create_response(
                form.title.data, form.body.data, actor=current_user, now=utcnow()
            )
            db.session.commit()
            flash(f"Canned response “{form.title.data.strip()}” created.", "info")
            return redirect(url_for("admin.canned_list"))
        except InboxError as error:
            db.session.rollback()
            flash(error.message, "error")
    return render_template(
        "admin/canned.html",
        responses=canned.all_responses(),
        form=form,
        editing=None,
        placeholders=canned.PLACEHOLDERS,
        delete_form=PostForm(),
    )


@bp.route("/canned/<int:response_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def canned_edit(response_id: int):
    response = db.session.get(CannedResponse, response_id) or abort(404)
    form = CannedResponseForm(obj=response)
    if form.validate_on_submit():
        try:
            canned.update_response(
                response, form.title.data, form.body.data, actor=current_user, now=utcnow()
            )
            db.session.commit()
            flash("Canned response saved.", "info")
            return redirect(url_for("admin.canned_list"))
        except InboxError as error:
            db.session.rollback()
            flash(error.message, "error")
    return render_template(
        "admin/canned.html",
        responses=canned.all_responses(),
        form=form,
        editing=response,
        placeholders=canned.PLACEHOLDERS,
        delete_form=PostForm(),
    )


@bp.route("/canned/<int:response_id>/delete", methods=["POST"])
@role_required(Role.ADMIN)
def canned_delete(response_id: int):
    response = db.session.get(CannedResponse, response_id) or abort(404)
    if PostForm().validate_on_submit():
        title = response.title
        canned.delete_response(response, actor=current_user, now=utcnow())
        db.session.commit()
        flash(f"Canned response “{title}” deleted.", "info")
    return redirect(url_for("admin.canned_list"))
