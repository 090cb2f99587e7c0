"""Admin pages: the people, teams and channel accounts of the workspace (people added, their
role, teams and access changed, passwords reset, API tokens made and revoked; accounts
connected, renamed, paused, their access tokens stored, the deliveries that came before them
replayed), ingestion health (accounts' last delivery, failed and unhandled webhook events,
replay), the log of helpdesk case deliveries (replay), canned responses, and CSV imports
(upload, progress, try again).

Imports: services, models, extensions.db, config (webhook secrets), connectors (their platforms),
errors, permissions, forms, timeutil.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user
from flask_login.config import COOKIE_NAME
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice

from inbox.config import WEBHOOK_SECRETS
from inbox.connectors import webhook_platforms
from inbox.errors import InboxError
from inbox.extensions import db, limiter
from inbox.forms import (
    ApiTokenForm,
    CannedResponseForm,
    ChannelEditForm,
    ChannelForm,
    ChannelTokenForm,
    ImportForm,
    PersonForm,
    PostForm,
    posted_object,
    team_choices,
)
from inbox.models import (
    ApiToken,
    CannedResponse,
    ChannelAccount,
    Conversation,
    CsvImport,
    EventIssue,
    EventState,
    HelpdeskDelivery,
    InboundEvent,
    Platform,
    Role,
    Team,
    User,
)
from inbox.permissions import role_required
from inbox.services import accounts, canned, channels, events, helpdesk, uploads
from inbox.timeutil import utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _conversation_count():
    """How many conversations the account in the same query has (a correlated subquery)."""
    return (
        select(func.count(Conversation.id))
        .where(Conversation.channel_account_id == ChannelAccount.id)
        .scalar_subquery()
    )


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
    issues = (
        select(func.count(EventIssue.id))
        .where(
            EventIssue.platform == ChannelAccount.platform,
            EventIssue.account_external_id == ChannelAccount.external_account_id,
        )
        .scalar_subquery()
    )
    channel_rows = db.session.execute(
        select(ChannelAccount, _conversation_count(), issues).order_by(
            ChannelAccount.platform, ChannelAccount.name
        )
    ).all()
    return render_template(
        "admin/index.html",
        users=users,
        teams=teams,
        channels=channel_rows,
        **_ingestion_health(),
    )


# --- people ------------------------------------------------------------------------------


def _people_page(form: PersonForm, *, status: int = 200, **shown_once):
    """The people page; `shown_once`: a new password (password_for, password) or API token
    (token_for, token), in this answer only (never flashed: the session cookie is readable)."""
    users = db.session.scalars(
        select(User)
        .options(selectinload(User.teams), selectinload(User.api_tokens))
        .order_by(User.active.desc(), User.name)
    ).all()
    edit_forms = {}
    for user in users:
        edit = PersonForm(
            formdata=None, role=str(user.role), teams=[t.id for t in user.teams], active=user.active
        )
        edit.teams.choices = form.teams.choices
        edit_forms[user.id] = edit
    page = render_template(
        "admin/people.html",
        users=users,
        form=form,
        edit_forms=edit_forms,
        post_form=PostForm(),
        token_form=ApiTokenForm(formdata=None),
        **shown_once,
    )
    # A page with a password or token in it must not be kept by the browser (its back button,
    # its disk cache) or by a proxy.
    headers = {"Cache-Control": "no-store"} if shown_once else {}
    return page, status, headers


def _person_form(*, blank: bool = False) -> PersonForm:
    """The add form with the teams to choose from; `blank` ignores what was just posted."""
    form = PersonForm(formdata=None) if blank else PersonForm()
    form.teams.choices = team_choices()
    return form


def _chosen_teams(form: PersonForm) -> list[Team]:
    ids = form.teams.data or []
    return list(db.session.scalars(select(Team).where(Team.id.in_(ids)))) if ids else []


@bp.route("/people", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def people():
    """Everyone who can sign in; POST adds someone, whose password is shown once."""
    form = _person_form()
    if not form.is_submitted():
        return _people_page(form)
    name, email = (form.name.data or "").strip(), (form.email.data or "").strip()
    if not form.validate() or not name or "@" not in email:
        flash("Give a name, an email address and a role.", "error")
        return _people_page(form, status=400)
    password = accounts.new_password()
    try:
        user = accounts.create_user(
            email,
            name=name,
            role=Role(form.role.data),
            password=password,
            teams=_chosen_teams(form),
            actor=current_user,
        )
    except ValueError as error:
        db.session.rollback()
        flash(f"Not added: {error}.", "error")
        return _people_page(form, status=409)
    db.session.commit()
    return _people_page(_person_form(blank=True), password_for=user, password=password)


@bp.route("/people/<int:user_id>", methods=["POST"])
@role_required(Role.ADMIN)
def update_person(user_id: int):
    user = db.session.get(User, user_id) or abort(404)
    form = _person_form()
    if not form.validate():
        flash("Choose a role.", "error")
        return redirect(url_for("admin.people"))
    try:
        accounts.update_user(
            user,
            role=Role(form.role.data),
            teams=_chosen_teams(form),
            active=form.active.data,
            actor=current_user,
        )
    except InboxError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("admin.people"))
    db.session.commit()
    flash(f"Saved {user.name}.", "info")
    return redirect(url_for("admin.people"))


@bp.route("/people/<int:user_id>/password", methods=["POST"])
@role_required(Role.ADMIN)
def reset_person_password(user_id: int):
    user = posted_object(User, user_id)
    password = accounts.reset_password(user, actor=current_user)
    db.session.commit()
    if user.id == current_user.id:
        # The new password signs out every browser, this one too unless its cookies learn the
        # new fingerprint (`User.get_id`); a remember-me cookie is renewed only if it was there.
        remembered = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME) in request.cookies
        login_user(user, remember=remembered)
    return _people_page(_person_form(blank=True), password_for=user, password=password)


@bp.route("/people/<int:user_id>/tokens", methods=["POST"])
@role_required(Role.ADMIN)
def create_person_token(user_id: int):
    """An API token for an integration acting as this person; shown once."""
    user = db.session.get(User, user_id) or abort(404)
    form = ApiTokenForm()
    if not form.validate():
        flash("Name the token (what uses it, e.g. 'Helpdesk').", "error")
        return redirect(url_for("admin.people"))
    name = form.name.data.strip()
    token = accounts.create_api_token(user, name=name, now=utcnow(), actor=current_user)
    db.session.commit()
    return _people_page(_person_form(blank=True), token_for=user, token=token, token_name=name)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@role_required(Role.ADMIN)
def revoke_token(token_id: int):
    token = posted_object(ApiToken, token_id)
    if token.revoked_at is None:
        accounts.revoke_api_token(token, actor=current_user, now=utcnow())
        db.session.commit()
    flash(f"Revoked the token “{token.name}” of {token.user.name}.", "info")
    return redirect(url_for("admin.people"))


# --- channels ----------------------------------------------------------------------------


def _channels_page(form: ChannelForm, *, status: int = 200, existing: ChannelAccount | None = None):
    """The accounts, filtered by ?q= (name, handle or id) and ?needs_token=1; `existing`: the
    account a refused "Connect" named, pointed to from beside the form."""
    rows = db.session.execute(
        select(ChannelAccount, _conversation_count()).order_by(
            ChannelAccount.platform, ChannelAccount.name
        )
    ).all()
    text = request.args.get("q", "").strip()[:120]
    token_missing = request.args.get("needs_token") == "1"
    shown = [
        row
        for row in rows
        if channels.account_matches(row[0], text=text, token_missing=token_missing)
    ]
    waiting = events.waiting_counts()
    connected = {(str(account.platform), account.external_account_id) for account, _ in rows}
    config = current_app.config
    # What each platform's developer console asks for: the callback URL, and whether the
    # secrets of its signatures and of its verification handshake are set.
    endpoints = [
        {
            "name": name,
            "platforms": ", ".join(Platform(p).label for p in webhook_platforms(name)),
            "url": url_for("webhooks.receive", name=name, _external=True),
            "secrets": secrets,
            "signing_set": bool(config[secrets.signing]),
            "handshake_set": bool(config[secrets.handshake]),
        }
        for name, secrets in WEBHOOK_SECRETS.items()
    ]
    page = render_template(
        "admin/channels.html",
        accounts=shown,
        total=len(rows),
        filter_text=text,
        token_missing=token_missing,
        existing=existing,
        waiting=waiting,
        # Accounts that deliveries named but nobody connected: what to connect next.
        unconnected=sorted((key, n) for key, n in waiting.items() if key not in connected),
        endpoints=endpoints,
        form=form,
    )
    return page, status


@bp.route("/channels", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def channel_accounts():
    """The brand accounts whose deliveries become conversations; POST connects one."""
    form = ChannelForm()
    if not form.is_submitted():
        return _channels_page(form)
    if not form.validate():
        flash("Choose the platform and give the account's id and a name.", "error")
        return _channels_page(form, status=400)
    name, account_id = form.name.data.strip(), form.account_id.data.strip()
    platform = Platform(form.platform.data)
    # Connecting an id that is already connected would quietly rename (or re-token) a live
    # channel: refuse, and point to its row, where renaming is deliberate.
    existing = channels.find_channel(platform, account_id)
    if existing is not None:
        return _channels_page(form, status=409, existing=existing)
    account, _ = channels.add_channel(platform, account_id, name=name, actor=current_user)
    if form.access_token.data and form.access_token.data.strip():
        channels.set_access_token(account, form.access_token.data, actor=current_user)
    db.session.commit()
    flash(f"{account.platform.label} {account_id} connected as “{name}”.", "info")
    return redirect(url_for("admin.channel_accounts"))


@bp.post("/channels/<int:account_id>")
@role_required(Role.ADMIN)
def update_channel_account(account_id: int):
    form = ChannelEditForm()
    account = posted_object(ChannelAccount, account_id, form)
    channels.update_channel(
        account, name=form.name.data.strip(), active=form.active.data, actor=current_user
    )
    db.session.commit()
    flash(f"“{account.name}” saved.", "info")
    return redirect(url_for("admin.channel_accounts"))


@bp.post("/channels/<int:account_id>/token")
@role_required(Role.ADMIN)
def set_channel_token(account_id: int):
    """A new access token for replies; the page never shows a stored one."""
    form = ChannelTokenForm()
    account = posted_object(ChannelAccount, account_id, form)
    if channels.set_access_token(account, form.access_token.data, actor=current_user):
        flash(f"New access token stored for “{account.name}”.", "info")
    else:
        flash(f"“{account.name}” already has that access token.", "info")
    db.session.commit()
    return redirect(url_for("admin.channel_accounts"))


@bp.post("/channels/<int:account_id>/replay")
@role_required(Role.ADMIN)
def replay_channel_deliveries(account_id: int):
    """Process again the deliveries that arrived for this account before it was connected (or
    while paused), a batch per request."""
    account = posted_object(ChannelAccount, account_id)
    if not account.active:
        abort(409, description="The account is paused: resume it before replaying.")
    queued, left = events.replay_waiting(account, actor=current_user)
    db.session.commit()
    more = f" {left} more wait: replay again." if left else ""
    flash(f"Deliveries for “{account.name}” queued for processing again: {queued}.{more}", "info")
    return redirect(url_for("admin.channel_accounts"))


# --- CSV imports -------------------------------------------------------------------------------


def _import_form() -> ImportForm:
    form = ImportForm()
    form.team.choices = [SelectChoice(0, "No team (the queue everyone sees)"), *team_choices()]
    return form


def _imports_page(form: ImportForm, *, status: int = 200):
    page = render_template(
        "admin/imports.html",
        form=form,
        imports=uploads.recent(),
        retry_form=PostForm(),
        max_bytes=current_app.config["INBOX_MAX_IMPORT_BYTES"],
        now=utcnow(),
    )
    return page, status


@bp.route("/imports", methods=["GET", "POST"])
@role_required(Role.ADMIN)
@limiter.limit("20 per minute", methods=["POST"])
def imports():
    """Conversations from a CSV file: POST checks and stores the file, a worker imports it,
    and the page shows each import's progress and outcome."""
    form = _import_form()
    if not form.is_submitted():
        return _imports_page(form)
    if not form.validate():
        return _imports_page(form, status=400)
    team = db.session.get(Team, form.team.data) if form.team.data else None
    file = form.file.data
    try:
        started = uploads.start_import(
            file.read(),
            filename=file.filename or "",
            team=team,
            user=current_user,
            now=utcnow(),
            max_bytes=current_app.config["INBOX_MAX_IMPORT_BYTES"],
        )
    except uploads.UploadError as exc:
        form.file.errors = [str(exc)]
        return _imports_page(form, status=400)
    db.session.commit()
    flash(f"“{started.filename}” is stored; a worker imports it now.", "info")
    return redirect(url_for("admin.imports"))


@bp.get("/imports/<int:import_id>")
@role_required(Role.ADMIN)
def import_row(import_id: int):
    """One import's row of the page, as it is now (the page polls the running ones)."""
    upload = db.session.get(CsvImport, import_id) or abort(404)
    return render_template(
        "admin/_import_row.html", upload=upload, retry_form=PostForm(), now=utcnow()
    )


# What an admin may do to a failed import: the service call, and what the page then says.
_IMPORT_ACTIONS = {
    "retry": (uploads.retry, "“{}” is queued again; what it stored already is skipped."),
    "discard": (uploads.discard, "The file “{}” is deleted."),
}


@bp.post("/imports/<int:import_id>/<action>")
@role_required(Role.ADMIN)
def import_action(import_id: int, action: str):
    """Try a failed import again, or discard its file."""
    do, done = _IMPORT_ACTIONS.get(action) or abort(404)
    upload = posted_object(CsvImport, import_id)
    try:
        do(upload, actor=current_user, now=utcnow())
    except uploads.UploadError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.imports"))
    db.session.commit()
    flash(done.format(upload.filename), "info")
    return redirect(url_for("admin.imports"))


# --- canned responses ---------------------------------------------------------------------


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
    return _canned_page(form, editing=None, status=400 if form.is_submitted() else 200)


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
    return _canned_page(form, editing=response, status=400 if form.is_submitted() else 200)


def _canned_page(form: CannedResponseForm, *, editing: CannedResponse | None, status: int):
    """The list beside the form; a refused form comes back as typed, its errors by the fields."""
    page = render_template(
        "admin/canned.html",
        responses=canned.all_responses(),
        form=form,
        editing=editing,
        placeholders=canned.PLACEHOLDERS,
        delete_form=PostForm(),
    )
    return page, status


@bp.route("/canned/<int:response_id>/delete", methods=["POST"])
@role_required(Role.ADMIN)
def canned_delete(response_id: int):
    response = posted_object(CannedResponse, response_id)
    title = response.title
    canned.delete_response(response, actor=current_user, now=utcnow())
    db.session.commit()
    flash(f"Canned response “{title}” deleted.", "info")
    return redirect(url_for("admin.canned_list"))


def _ingestion_health() -> dict:
    failed = db.session.scalars(
        select(InboundEvent)
        .where(InboundEvent.state == EventState.FAILED)
        .order_by(InboundEvent.id.desc())
        .limit(50)
    ).all()
    pending = db.session.scalar(
        select(func.count(InboundEvent.id)).where(InboundEvent.state == EventState.PENDING)
    )
    recent_issues = db.session.scalars(
        select(EventIssue).order_by(EventIssue.id.desc()).limit(50)
    ).all()
    return {
        "failed_events": failed,
        "pending_events": pending,
        "recent_issues": recent_issues,
        "replay_form": PostForm(),
    }


@bp.post("/events/<int:event_id>/replay")
@role_required(Role.ADMIN)
def replay_event(event_id: int):
    event = posted_object(InboundEvent, event_id)
    events.replay(event, actor=current_user)
    db.session.commit()
    flash(f"Event #{event.id} queued for processing again.", "info")
    return redirect(url_for("admin.index") + "#ingestion")


@bp.route("/helpdesk")
@role_required(Role.ADMIN)
def helpdesk_deliveries():
    return render_template(
        "admin/helpdesk.html", deliveries=helpdesk.recent_deliveries(), replay_form=PostForm()
    )


@bp.post("/helpdesk/<int:delivery_id>/replay")
@role_required(Role.ADMIN)
def replay_helpdesk_delivery(delivery_id: int):
    delivery = posted_object(HelpdeskDelivery, delivery_id)
    try:
        helpdesk.replay(delivery, actor=current_user, now=utcnow())
        db.session.commit()
        flash(f"Delivery #{delivery.id} queued to be sent again.", "info")
    except InboxError as error:
        db.session.rollback()
        flash(error.message, "error")
    return redirect(url_for("admin.helpdesk_deliveries"))
