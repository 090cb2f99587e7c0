"""The agent inbox: queue views with live counts, the conversation pane, actions, bulk actions,
presence, notifications and the server-sent event stream.

Thin adapters: parse the form, find the conversation through `get_conversation_for` (404 for
ones the user may not see), call one service, commit, answer. Pages work as plain HTML; the
small script in static/js/inbox.js asks for fragments (header `X-Fragment: 1`) and JSON answers
(`Accept: application/json`) to do the same without reloads.
Imports: services, models, forms, extensions, errors, live, queue, timeutil.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from inbox import live
from inbox.errors import Conflict, InboxError, NotFound, is_machine_request, wants_json
from inbox.extensions import db
from inbox.forms import (
    AssignForm,
    AvailabilityForm,
    BulkForm,
    ContactForm,
    NoteForm,
    PostForm,
    PriorityForm,
    ReplyForm,
    RetryForm,
    RouteForm,
    SpamForm,
    StatusForm,
    TagForm,
    TeamForm,
    VersionedForm,
)
from inbox.models import (
    Availability,
    ChannelAccount,
    Conversation,
    Kind,
    Message,
    Platform,
    Priority,
    Role,
    Status,
    Tag,
    Team,
    User,
)
from inbox.permissions import role_required
from inbox.queue import get_redis
from inbox.services import (
    assignment,
    availability,
    canned,
    helpdesk,
    listing,
    notifications,
    presence,
    replies,
    sla,
)
from inbox.services import conversations as actions
from inbox.timeutil import as_utc, utcnow

bp = Blueprint("inbox", __name__)

PAGE_SIZE = 50
SNOOZE_PRESETS = {
    "1h": ("1 hour", timedelta(hours=1)),
    "4h": ("4 hours", timedelta(hours=4)),
    "24h": ("Tomorrow", timedelta(hours=24)),
    "7d": ("Next week", timedelta(days=7)),
}
FILTER_ARGS = (
    "platform",
    "channel",
    "kind",
    "public",
    "priority",
    "tag",
    "team",
    "assignee",
    "language",
    "sentiment",
    "q",
    "sort",
    # SLA drill-downs from the reports (services.listing.Filters).
    "policy",
    "teams",
    "sla_metric",
    "sla_outcome",
    "started_from",
    "started_to",
    "sla_basis",
    "duration_min",
    "duration_max",
)


@bp.before_app_request
def note_activity() -> None:
    """Keep `last_seen_at` fresh (written at most once a minute) so idle agents go away.
    For the signed-in pages: machines' requests (API, webhooks) ignore session cookies, so
    they do not load a session user."""
    if request.endpoint == "static" or is_machine_request():
        return
    if not current_user.is_authenticated:
        return
    if availability.touch(current_user, now=utcnow()):
        db.session.commit()


@bp.app_context_processor
def inject_notification_count() -> dict[str, Any]:
    if current_user.is_authenticated:
        return {"notification_count": notifications.unread_count(current_user)}
    return {}


def _fragment() -> bool:
    return request.headers.get("X-Fragment") == "1"


def _list_args() -> dict[str, str]:
    """The current view/filter/sort arguments, to keep them on links and forms."""
    args = {k: request.args[k] for k in FILTER_ARGS if request.args.get(k)}
    if request.args.get("view") in listing.VIEW_NAMES:
        args["view"] = request.args["view"]
    return args


def _queue_context(view: str) -> dict[str, Any]:
    filters = listing.Filters.parse(request.args)
    sort = request.args.get("sort") or listing.DEFAULT_SORT
    page = listing.list_conversations(
        current_user,
        view=view,
        filters=filters,
        sort=sort,
        cursor=request.args.get("cursor") or None,
        limit=PAGE_SIZE,
    )
    listing.decorate(page, current_user)
    list_args = {**_list_args(), "view": view}
    return {
        "view": view,
        "views": listing.VIEWS,
        "page": page,
        "filters": filters,
        "sort": sort,
        "sorts": listing.SORT_LABELS,
        "list_args": list_args,
        "more_url": url_for("inbox.rows", **list_args, cursor=page.next_cursor)
        if page.next_cursor
        else None,
        "now": utcnow(),
        "filtered_count": listing.count_conversations(current_user, view=view, filters=filters)
        if filters.sla_active()
        else None,
        "drilldown": listing.describe_drilldown(filters) if filters.sla_active() else None,
    }


def _page_context(view: str) -> dict[str, Any]:
    context = _queue_context(view)
    # No view counts: the page's script fetches them (`counts`) as soon as it loads, so the queue
    # and the conversation are not held back by counting every visible conversation.
    context.update(
        account_count=db.session.scalar(select(func.count(ChannelAccount.id))) or 0,
        channels=db.session.scalars(select(ChannelAccount).order_by(ChannelAccount.name)).all(),
        teams=db.session.scalars(select(Team).order_by(Team.name)).all(),
        agents=_agents(),
        all_tags=db.session.scalars(select(Tag).order_by(Tag.name)).all(),
        platforms=list(Platform),
        kinds=list(Kind),
        priorities=list(Priority),
        statuses=list(Status),
        sentiments=listing.SENTIMENTS,
    )
    return context


def _agents() -> list[User]:
    return list(db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name)))


@bp.route("/")
@login_required
def home():
    return redirect(url_for("inbox.index"))


@bp.route("/inbox")
@bp.route("/inbox/<view>")
@login_required
def index(view: str = "open"):
    if view not in listing.VIEW_NAMES:
        abort(404)
    return render_template("inbox/index.html", **_page_context(view), conversation=None)


@bp.route("/inbox/rows")
@login_required
def rows():
    """The rows of one page (for "Load more" and live refreshes)."""
    view = request.args.get("view", "open")
    if view not in listing.VIEW_NAMES:
        abort(404)
    return render_template("inbox/_rows.html", **_queue_context(view))


@bp.route("/inbox/counts")
@login_required
def counts():
    return jsonify(
        {
            "views": listing.count_views(current_user),
            "notifications": notifications.unread_count(current_user),
        }
    )


def _conversation_context(conversation: Conversation) -> dict[str, Any]:
    now = utcnow()
    return {
        "conversation": conversation,
        "previous": actions.previous_conversations(conversation, current_user),
        "viewers": presence.viewers(
            get_redis(), conversation.id, now=now, exclude_user_id=current_user.id
        ),
        "canned_responses": canned.all_responses(),
        "reply_modes": replies.reply_modes_for(conversation),
        "send_problem": replies.account_send_problem(conversation),
        "sla_clocks": sla.explain(conversation, now=now),
        "helpdesk_delivery": helpdesk.latest_delivery(conversation),
        "helpdesk_case": helpdesk.case_for(conversation),
        "unstaffed_team_ids": helpdesk.unstaffed_team_ids(),
        "snooze_presets": SNOOZE_PRESETS,
        "form": PostForm(),
    }


@bp.route("/inbox/c/<int:conversation_id>")
@login_required
def conversation(conversation_id: int):
    conversation = actions.get_conversation_for(current_user, conversation_id)
    actions.mark_read(conversation, current_user, now=utcnow())
    if _fragment():
        context = _conversation_context(conversation)
        context.update(
            teams=db.session.scalars(select(Team).order_by(Team.name)).all(),
            agents=_agents(),
            all_tags=db.session.scalars(select(Tag).order_by(Tag.name)).all(),
            priorities=list(Priority),
            now=utcnow(),
            list_args=_list_args(),
        )
        page = render_template("inbox/_conversation.html", **context)
    else:
        view = request.args.get("view", "open")
        if view not in listing.VIEW_NAMES:
            view = "open"
        page = render_template(
            "inbox/index.html", **_page_context(view), **_conversation_context(conversation)
        )
    # Committed after rendering: a commit expires every loaded object, and the page would
    # load the user, the conversation and its thread all over again.
    db.session.commit()
    return page


# --- Actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    form: type[FlaskForm]
    # (conversation, form, now) -> (toast text, undo payload or None)
    apply: Callable[[Conversation, Any, datetime], tuple[str, dict[str, Any] | None]]


def _snooze_until(form: StatusForm, now: datetime) -> datetime | None:
    if form.status.data != Status.SNOOZED:
        return None
    if form.snooze.data in SNOOZE_PRESETS:
        return now + SNOOZE_PRESETS[form.snooze.data][1]
    if form.snooze_until.data:
        try:
            return as_utc(datetime.fromisoformat(form.snooze_until.data))
        except ValueError:
            raise InboxError("That snooze time is not a date and time.") from None
    raise InboxError("Choose how long to snooze.")


def _team_or_404(team_id: int | None) -> Team | None:
    if not team_id:
        return None
    team = db.session.get(Team, team_id)
    if team is None:
        raise InboxError("No such team.")
    return team


def _user_or_error(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise InboxError("No such user.")
    return user


def _claim(c, form, now):
    actions.claim(c, actor=current_user, now=now, version=form.version.data)
    return "Assigned to you", None


def _assign(c, form, now):
    user = _user_or_error(form.assignee.data)
    actions.assign(c, user, actor=current_user, now=now, version=form.version.data)
    return f"Assigned to {user.name}", None


def _unassign(c, form, now):
    actions.assign(c, None, actor=current_user, now=now, version=form.version.data)
    return "Unassigned", None


def _team(c, form, now):
    team = _team_or_404(form.team.data)
    actions.set_team(c, team, actor=current_user, now=now, version=form.version.data)
    return (f"Moved to {team.name}" if team else "Removed from its team"), None


def _status(c, form, now):
    status = Status(form.status.data)
    previous = actions.set_status(
        c,
        status,
        actor=current_user,
        now=now,
        snooze_until=_snooze_until(form, now),
        version=form.version.data,
    )
    label = {Status.SNOOZED: "Snoozed", Status.RESOLVED: "Resolved", Status.CLOSED: "Closed"}
    return label.get(status, f"Marked {status}"), {"action": "status", **previous}


def _priority(c, form, now):
    actions.set_priority(
        c, Priority(form.priority.data), actor=current_user, now=now, version=form.version.data
    )
    return f"Priority set to {form.priority.data}", None


def _tag(c, form, now):
    tag = actions.add_tag(c, form.name.data, actor=current_user, now=now, version=form.version.data)
    return f"Tagged “{tag.name}”", {"action": "untag", "name": tag.name}


def _untag(c, form, now):
    actions.remove_tag(c, form.name.data, actor=current_user, now=now, version=form.version.data)
    return f"Removed tag “{form.name.data}”", {"action": "tag", "name": form.name.data}


def _spam(c, form, now):
    actions.mark_spam(
        c, bool(form.spam.data), actor=current_user, now=now, version=form.version.data
    )
    return ("Marked as spam" if form.spam.data else "Not spam"), {
        "action": "spam",
        "spam": "" if form.spam.data else "y",
    }


def _note(c, form, now):
    added = actions.add_note(
        c, form.text.data, actor=current_user, now=now, version=form.version.data
    )
    message = "Note added"
    if added.notified:
        message += "; notified " + ", ".join(u.name for u in added.notified)
    if added.unreachable:
        names = ", ".join(u.name for u in added.unreachable)
        message += f"; not notified: {names} (not in this conversation's team)"
    return message, None


def _reply(c, form, now):
    visibility = form.visibility.data or None
    message = actions.reply(
        c,
        text=form.text.data,
        is_public=None if visibility is None else visibility == "public",
        actor=current_user,
        now=now,
        version=form.version.data,
    )
    return f"Reply queued to send ({message.delivery_status})", None


def _retry(c, form, now):
    message = db.session.get(Message, form.message.data)
    if message is None or message.conversation_id != c.id:
        raise NotFound("No such reply in this conversation.")
    replies.retry_reply(message, actor=current_user, now=now)
    return "Sending the reply again", None


def _route(c, form, now):
    team = _team_or_404(form.team.data)
    if team is None:
        raise InboxError("Choose the support team to route to.")
    actions.route_to_support(
        c, team, note=form.note.data, actor=current_user, now=now, version=form.version.data
    )
    return f"Routed to {team.name}", None


ACTIONS: dict[str, Action] = {
    "claim": Action(VersionedForm, _claim),
    "assign": Action(AssignForm, _assign),
    "unassign": Action(VersionedForm, _unassign),
    "team": Action(TeamForm, _team),
    "status": Action(StatusForm, _status),
    "priority": Action(PriorityForm, _priority),
    "tag": Action(TagForm, _tag),
    "untag": Action(TagForm, _untag),
    "spam": Action(SpamForm, _spam),
    "note": Action(NoteForm, _note),
    "reply": Action(ReplyForm, _reply),
    "retry": Action(RetryForm, _retry),
    "route": Action(RouteForm, _route),
}


def _form_error(form: FlaskForm) -> str:
    for name, errors in form.errors.items():
        label = getattr(getattr(form, name, None), "label", None)
        return f"{label.text if label else name}: {errors[0]}"
    return "The form is invalid."


def _failed(error: InboxError, conversation: Conversation | None):
    db.session.rollback()
    if wants_json():
        body: dict[str, Any] = {"error": {"code": error.code, "message": error.message}}
        if isinstance(error, Conflict) and conversation is not None:
            body["version"] = db.session.get(Conversation, conversation.id).version
        return jsonify(body), error.status
    flash(error.message, "error")
    if conversation is None:
        return redirect(url_for("inbox.index"))
    return redirect(url_for("inbox.conversation", conversation_id=conversation.id))


@bp.route("/inbox/c/<int:conversation_id>/<name>", methods=["POST"])
@login_required
def act(conversation_id: int, name: str):
    action = ACTIONS.get(name)
    if action is None:
        abort(404)
    conversation = actions.get_conversation_for(current_user, conversation_id)
    form = action.form()
    try:
        if not form.validate():
            raise InboxError(_form_error(form))
        message, undo = action.apply(conversation, form, utcnow())
        db.session.commit()
    except InboxError as error:
        return _failed(error, conversation)
    if wants_json():
        return jsonify(
            {
                "ok": True,
                "message": message,
                "version": conversation.version,
                "undo": undo,
                # False when the action took the conversation out of the actor's reach (routed
                # to a team they are not in): the page closes it instead of reloading a 404.
                "visible": actions.can_see(current_user, conversation),
            }
        )
    flash(message, "info")
    return redirect(url_for("inbox.conversation", conversation_id=conversation.id))


@bp.route("/inbox/next", methods=["POST"])
@login_required
def get_next():
    """Claim the most urgent eligible conversation and open it (JSON: its URL)."""
    if not PostForm().validate():
        return _failed(InboxError("The form expired; reload the page."), None)
    conversation = assignment.claim_next(current_user, now=utcnow())
    if conversation is None:
        db.session.rollback()
        message = "Nothing is waiting for you right now."
        if wants_json():
            return jsonify({"ok": True, "conversation_id": None, "message": message})
        flash(message, "info")
        return redirect(url_for("inbox.index"))
    db.session.commit()
    # Opened beside the list the agent pressed it from (the page keeps that list; a reload of
    # the address must show the same one); "mine", where it now is, when none was sent.
    view = request.form.get("view")
    if view not in listing.VIEW_NAMES:
        view = "mine"
    url = url_for("inbox.conversation", conversation_id=conversation.id, view=view)
    if wants_json():
        return jsonify(
            {
                "ok": True,
                "conversation_id": conversation.id,
                "url": url,
                "message": f"Assigned to you: {conversation.contact.display_name}",
            }
        )
    return redirect(url)


@bp.route("/availability", methods=["POST"])
@login_required
def set_availability():
    form = AvailabilityForm()
    if not form.validate():
        return _failed(InboxError(_form_error(form)), None)
    status = Availability(form.availability.data)
    me = current_user._get_current_object()  # the model itself: the audit reads its table
    availability.set_availability(me, status, actor=me, now=utcnow())
    db.session.commit()
    message = f"You are {status}."
    if wants_json():
        return jsonify({"ok": True, "availability": str(status), "message": message})
    flash(message, "info")
    return redirect(request.referrer or url_for("inbox.index"))


@bp.route("/agents")
@role_required(Role.SUPERVISOR, Role.ADMIN)
def agents():
    """Who is online, away or offline, and how loaded (for supervisors)."""
    people = availability.roster()
    loads = assignment.open_loads([u.id for u in people])
    return render_template("inbox/agents.html", people=people, loads=loads, now=utcnow())


@bp.route("/inbox/c/<int:conversation_id>/contact", methods=["POST"])
@login_required
def update_contact(conversation_id: int):
    conversation = actions.get_conversation_for(current_user, conversation_id)
    form = ContactForm()
    try:
        if not form.validate():
            raise InboxError(_form_error(form))
        actions.update_contact(
            conversation.contact,
            notes=form.notes.data or "",
            is_vip=bool(form.is_vip.data),
            actor=current_user,
            now=utcnow(),
        )
        db.session.commit()
    except InboxError as error:
        return _failed(error, conversation)
    if wants_json():
        return jsonify({"ok": True, "message": "Contact saved"})
    flash("Contact saved", "info")
    return redirect(url_for("inbox.conversation", conversation_id=conversation.id))


@bp.route("/inbox/c/<int:conversation_id>/canned/<int:response_id>")
@login_required
def canned_text(conversation_id: int, response_id: int):
    """A canned response with its placeholders filled in for this conversation (plain text)."""
    conversation = actions.get_conversation_for(current_user, conversation_id)
    response = db.session.get(canned.CannedResponse, response_id) or abort(404)
    values = canned.placeholder_values(conversation, current_user)
    return jsonify({"text": canned.render(response.body, values)})


BULK_LABELS = {
    "claim": "Assigned to you",
    "assign": "Assigned",
    "unassign": "Unassigned",
    "tag": "Tagged",
    "status": "Status changed",
    "spam": "Marked as spam",
    "not_spam": "Marked not spam",
}


@bp.route("/inbox/bulk", methods=["POST"])
@login_required
def bulk():
    """Apply one action to many selected conversations; ones the user may not see are skipped."""
    form = BulkForm()
    now = utcnow()
    try:
        if not form.validate():
            raise InboxError(_form_error(form))
        ids = [int(i) for i in form.ids.data.split(",") if i.strip().isdigit()][:500]
        apply = _bulk_operation(form.action.data, (form.value.data or "").strip(), now)
        done = skipped = 0
        for conversation_id in ids:
            try:
                conversation = actions.get_conversation_for(current_user, conversation_id)
            except InboxError:
                skipped += 1
                continue
            apply(conversation)
            done += 1
        db.session.commit()
    except InboxError as error:
        return _failed(error, None)
    message = f"{BULK_LABELS[form.action.data]}: {done} conversation{'s' if done != 1 else ''}"
    if skipped:
        message += f" ({skipped} skipped: not visible to you)"
    if wants_json():
        return jsonify({"ok": True, "message": message, "done": done, "skipped": skipped})
    flash(message, "info")
    return redirect(request.referrer or url_for("inbox.index"))


def _bulk_operation(action: str, value: str, now: datetime) -> Callable[[Conversation], Any]:
    """Validate the bulk action's value once, then return what to do to each conversation."""
    kw = {"actor": current_user, "now": now}
    if action == "claim":
        return lambda c: actions.claim(c, **kw)
    if action == "assign":
        user = _user_or_error(int(value)) if value.isdigit() else None
        if user is None:
            raise InboxError("Choose whom to assign to.")
        return lambda c: actions.assign(c, user, **kw)
    if action == "unassign":
        return lambda c: actions.assign(c, None, **kw)
    if action == "tag":
        name = actions.normalize_tag(value)
        return lambda c: actions.add_tag(c, name, **kw)
    if action == "status":
        if value not in (Status.OPEN, Status.PENDING, Status.RESOLVED, Status.CLOSED):
            raise InboxError("Choose open, pending, resolved or closed.")
        return lambda c: actions.set_status(c, Status(value), **kw)
    spam = action == "spam"
    return lambda c: actions.mark_spam(c, spam, **kw)


# --- Presence --------------------------------------------------------------------------------


@bp.route("/inbox/c/<int:conversation_id>/presence", methods=["POST"])
@login_required
def heartbeat(conversation_id: int):
    conversation = actions.get_conversation_for(current_user, conversation_id)
    typing = request.form.get("typing") == "1"
    others = presence.heartbeat(
        get_redis(), conversation.id, current_user, typing=typing, now=utcnow()
    )
    return jsonify({"viewers": others, "version": conversation.version})


@bp.route("/inbox/c/<int:conversation_id>/leave", methods=["POST"])
@login_required
def leave(conversation_id: int):
    conversation = actions.get_conversation_for(current_user, conversation_id)
    presence.leave(get_redis(), conversation.id, current_user)
    return jsonify({"ok": True})


# --- Notifications ---------------------------------------------------------------------------


@bp.route("/notifications")
@login_required
def notification_list():
    items = notifications.listing(current_user)
    template = "inbox/_notifications.html" if _fragment() else "inbox/notifications.html"
    return render_template(template, items=items, now=utcnow(), form=PostForm())


@bp.route("/notifications/read", methods=["POST"])
@login_required
def notifications_read():
    if PostForm().validate_on_submit():
        notifications.mark_all_read(current_user, now=utcnow())
        db.session.commit()
    if wants_json():
        return jsonify({"ok": True})
    return redirect(url_for("inbox.notification_list"))


# --- Live stream -----------------------------------------------------------------------------


@bp.route("/inbox/stream")
@login_required
def stream():
    """Server-sent events: every published change, as ids; the page re-reads what it may see.

    The stream ends after INBOX_SSE_SECONDS so threads are recycled; EventSource reconnects by
    itself. Under gunicorn this needs the gthread (or gevent) worker.
    """
    seconds = current_app.config["INBOX_SSE_SECONDS"]
    events = live.listen(timeout=10)
    user_id = current_user.id
    # The stream never touches the database: hand the connection (opened to load the user)
    # back to the pool now, or every open tab would hold one for as long as it streams.
    db.session.remove()

    def generate():
        deadline = utcnow() + timedelta(seconds=seconds)
        yield "retry: 2000\n: connected\n\n"
        try:
            for event in events:
                if utcnow() > deadline:
                    return
                if event is None:
                    yield ": keep-alive\n\n"
                    continue
                # Personal events go only to their user (they carry no content anyway).
                if "user_id" in event and event["user_id"] != user_id:
                    continue
                yield f"data: {json.dumps(event)}\n\n"
        finally:
            events.close()

    return Response(
        generate(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
