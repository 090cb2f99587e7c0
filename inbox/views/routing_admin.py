"""Routing pages under /admin/routing: the ordered rules (create, edit, reorder, delete, and a
dry-run "test this rule" panel) and each team's auto-assignment settings, for supervisors and
admins; each team's helpdesk webhook (URL and signing secret, which is never shown back), for
admins only.

Imports: forms, models, extensions.db, errors, permissions, services.routing,
services.assignment, services.helpdesk, timeutil.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from inbox.errors import InboxError
from inbox.extensions import db
from inbox.forms import (
    HelpdeskEndpointForm,
    PostForm,
    RoutingRuleForm,
    TeamAssignmentForm,
    posted_object,
    team_choices,
)
from inbox.models import (
    AssignmentMode,
    BusinessCalendar,
    ChannelAccount,
    Kind,
    Platform,
    Priority,
    Role,
    RoutingRule,
    SlaPolicy,
    Team,
    User,
)
from inbox.permissions import ROUTING_ROLES, can_admin, role_required
from inbox.services import assignment, helpdesk, routing
from inbox.timeutil import utcnow

bp = Blueprint("routing_admin", __name__, url_prefix="/admin/routing")

MAX_TEST_LIMIT = 1000


def _calendars() -> list[SelectChoice]:
    return [
        SelectChoice(c.id, c.name)
        for c in db.session.scalars(select(BusinessCalendar).order_by(BusinessCalendar.name))
    ]


def _teams() -> list[Team]:
    return list(db.session.scalars(select(Team).order_by(Team.name)))


def _team_form(team: Team) -> TeamAssignmentForm:
    form = TeamAssignmentForm(obj=team, prefix=f"team{team.id}")
    form.calendar_id.choices = [SelectChoice(0, "Around the clock"), *_calendars()]
    if not form.is_submitted():
        form.assignment_mode.data = str(team.assignment_mode)
        form.calendar_id.data = team.calendar_id or 0
    return form


def _helpdesk_form(team: Team) -> HelpdeskEndpointForm:
    form = HelpdeskEndpointForm(prefix=f"helpdesk{team.id}")
    endpoint = helpdesk.endpoint_for(team)
    if not form.is_submitted() and endpoint is not None:
        form.url.data = endpoint.url
    return form


@bp.route("/")
@role_required(*ROUTING_ROLES)
def index():
    teams = _teams()
    # The hand-off's URL and secret decide where customer data goes: an admin's setting.
    is_admin = can_admin(current_user)
    loads_by_team = {}
    for team in teams:
        online = assignment.eligible_agents(team)
        loads_by_team[team.id] = (len(online), len(team.members))
    return render_template(
        "routing_admin/index.html",
        rules=routing.ordered_rules(active_only=False),
        describe_condition=routing.describe_condition,
        describe_action=routing.describe_action,
        teams=[(t, _team_form(t), loads_by_team[t.id]) for t in teams],
        is_admin=is_admin,
        helpdesk_teams=[(t, _helpdesk_form(t), helpdesk.endpoint_for(t)) for t in teams]
        if is_admin
        else [],
        post_form=PostForm(),
    )


def _rule_form(rule: RoutingRule | None) -> RoutingRuleForm:
    form = RoutingRuleForm(obj=rule)
    form.platforms.choices = [SelectChoice(p.value, p.value) for p in Platform]
    form.kinds.choices = [SelectChoice(k.value, k.value) for k in Kind]
    form.channels.choices = [
        SelectChoice(a.id, f"{a.name} ({a.platform})")
        for a in db.session.scalars(select(ChannelAccount).order_by(ChannelAccount.name))
    ]
    form.calendar_id.choices = [SelectChoice(0, "The conversation's team calendar"), *_calendars()]
    form.set_team.choices = [SelectChoice(0, "—"), *team_choices()]
    form.set_priority.choices = [
        SelectChoice("", "—"),
        *(SelectChoice(p.value, p.value) for p in Priority),
    ]
    form.assign_to.choices = [
        SelectChoice(0, "—"),
        *(
            SelectChoice(u.id, u.name)
            for u in db.session.scalars(
                select(User).where(User.active.is_(True)).order_by(User.name)
            )
        ),
    ]
    form.sla_policy_id.choices = [
        SelectChoice(0, "—"),
        *(
            SelectChoice(p.id, p.name)
            for p in db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.position))
        ),
    ]
    if rule is not None and not form.is_submitted():
        _fill(form, rule)
    return form


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _yes_no(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def _conditions(form: RoutingRuleForm) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if form.platforms.data:
        out.append({"type": "platform", "values": form.platforms.data})
    if form.channels.data:
        out.append({"type": "channel", "values": form.channels.data})
    if form.kinds.data:
        out.append({"type": "kind", "values": form.kinds.data})
    if form.visibility.data != "any":
        out.append({"type": "visibility", "value": form.visibility.data})
    if _split(form.text_contains.data):
        out.append({"type": "text_contains", "values": _split(form.text_contains.data)})
    if (form.text_regex.data or "").strip():
        out.append({"type": "text_regex", "pattern": form.text_regex.data.strip()})
    if _split(form.languages.data):
        out.append({"type": "language", "values": _split(form.languages.data)})
    if form.sentiment.data != "any":
        out.append({"type": "sentiment", "value": form.sentiment.data})
    for kind, field in (("vip", form.vip), ("verified", form.verified)):
        if _yes_no(field.data) is not None:
            out.append({"type": kind, "value": _yes_no(field.data)})
    if form.followers_at_least.data is not None:
        out.append({"type": "followers_at_least", "value": form.followers_at_least.data})
    if _yes_no(form.business_hours.data) is not None:
        cond: dict[str, Any] = {
            "type": "business_hours",
            "value": _yes_no(form.business_hours.data),
        }
        if form.calendar_id.data:
            cond["calendar_id"] = form.calendar_id.data
        out.append(cond)
    if _split(form.has_tags.data):
        out.append({"type": "tags", "values": _split(form.has_tags.data)})
    return out


def _actions(form: RoutingRuleForm) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if form.set_team.data:
        out.append({"type": "set_team", "team_id": form.set_team.data})
    if form.set_priority.data:
        out.append({"type": "set_priority", "priority": form.set_priority.data})
    if _split(form.add_tags.data):
        out.append({"type": "add_tags", "tags": _split(form.add_tags.data)})
    if form.assign_to.data:
        out.append({"type": "assign", "user_id": form.assign_to.data})
    if form.mark_spam.data:
        out.append({"type": "mark_spam"})
    if (form.auto_reply.data or "").strip():
        out.append({"type": "auto_reply", "text": form.auto_reply.data.strip()})
    if form.sla_policy_id.data:
        out.append({"type": "apply_sla_policy", "policy_id": form.sla_policy_id.data})
    return out


def _fill(form: RoutingRuleForm, rule: RoutingRule) -> None:
    """Put a stored rule's conditions and actions into the flat form."""
    for c in rule.conditions:
        kind = c["type"]
        if kind == "platform":
            form.platforms.data = c["values"]
        elif kind == "channel":
            form.channels.data = c["values"]
        elif kind == "kind":
            form.kinds.data = c["values"]
        elif kind in ("visibility", "sentiment"):
            getattr(form, kind).data = c["value"]
        elif kind == "text_contains":
            form.text_contains.data = ", ".join(c["values"])
        elif kind == "text_regex":
            form.text_regex.data = c["pattern"]
        elif kind == "language":
            form.languages.data = ", ".join(c["values"])
        elif kind in ("vip", "verified"):
            getattr(form, kind).data = "yes" if c["value"] else "no"
        elif kind == "followers_at_least":
            form.followers_at_least.data = c["value"]
        elif kind == "business_hours":
            form.business_hours.data = "yes" if c["value"] else "no"
            form.calendar_id.data = c.get("calendar_id", 0)
        elif kind == "tags":
            form.has_tags.data = ", ".join(c["values"])
    for a in rule.actions:
        kind = a["type"]
        if kind == "set_team":
            form.set_team.data = a["team_id"]
        elif kind == "set_priority":
            form.set_priority.data = a["priority"]
        elif kind == "add_tags":
            form.add_tags.data = ", ".join(a["tags"])
        elif kind == "assign":
            form.assign_to.data = a["user_id"]
        elif kind == "mark_spam":
            form.mark_spam.data = True
        elif kind == "auto_reply":
            form.auto_reply.data = a["text"]
        elif kind == "apply_sla_policy":
            form.sla_policy_id.data = a["policy_id"]


@bp.route("/rules/new", methods=["GET", "POST"])
@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@role_required(*ROUTING_ROLES)
def rule(rule_id: int | None = None):
    existing = db.session.get(RoutingRule, rule_id) if rule_id else None
    if rule_id and existing is None:
        abort(404)
    form = _rule_form(existing)
    tested: list | None = None
    status = 200
    if "test" in request.form:
        # A dry run needs no name yet: trying conditions out comes before naming the rule.
        form.name.validators = [Length(max=120)]
    if form.validate_on_submit():
        conditions, actions = _conditions(form), _actions(form)
        try:
            if "test" in request.form:
                # Dry run of what is in the form (saved or not): nothing is written.
                draft = RoutingRule(
                    name=form.name.data or "Untitled rule",
                    conditions=[routing.validate_condition(c) for c in conditions],
                    actions=[routing.validate_action(a) for a in actions],
                )
                limit = min(max(form.test_limit.data or 200, 1), MAX_TEST_LIMIT)
                tested = routing.matching_conversations(draft, limit=limit, now=utcnow())
                db.session.rollback()
            else:
                saved = routing.save_rule(
                    existing,
                    name=form.name.data,
                    active=form.active.data,
                    stop=form.stop.data,
                    conditions=conditions,
                    actions_=actions,
                    actor=current_user,
                    now=utcnow(),
                )
                db.session.commit()
                flash(f"Rule “{saved.name}” saved.", "info")
                return redirect(url_for("routing_admin.index"))
        except InboxError as error:
            db.session.rollback()
            form.form_errors.append(error.message)
            status = 400
    elif form.is_submitted():
        status = 400
    return render_template(
        "routing_admin/rule.html", form=form, rule=existing, tested=tested, now=utcnow()
    ), status


@bp.post("/rules/<int:rule_id>/move")
@role_required(*ROUTING_ROLES)
def move(rule_id: int):
    rule = posted_object(RoutingRule, rule_id)
    step = -1 if request.form.get("direction") == "up" else 1
    routing.move_rule(rule, step, actor=current_user, now=utcnow())
    db.session.commit()
    return redirect(url_for("routing_admin.index"))


@bp.post("/rules/<int:rule_id>/delete")
@role_required(*ROUTING_ROLES)
def delete(rule_id: int):
    rule = posted_object(RoutingRule, rule_id)
    name = rule.name
    routing.delete_rule(rule, actor=current_user, now=utcnow())
    db.session.commit()
    flash(f"Rule “{name}” deleted.", "info")
    return redirect(url_for("routing_admin.index"))


@bp.post("/teams/<int:team_id>")
@role_required(*ROUTING_ROLES)
def team(team_id: int):
    team = db.session.get(Team, team_id) or abort(404)
    form = _team_form(team)
    if not form.validate_on_submit():
        first = next(iter(form.errors.values()), ["The form is invalid."])
        flash(f"{team.name}: {first[0]}", "error")
        return redirect(url_for("routing_admin.index"))
    assignment.configure_team(
        team,
        mode=AssignmentMode(form.assignment_mode.data),
        timeout_minutes=form.assignment_timeout_minutes.data,
        calendar=db.session.get(BusinessCalendar, form.calendar_id.data or 0),
        actor=current_user,
        now=utcnow(),
    )
    db.session.commit()
    flash(f"{team.name}: assignment settings saved.", "info")
    return redirect(url_for("routing_admin.index") + "#teams")


@bp.post("/teams/<int:team_id>/helpdesk")
@role_required(Role.ADMIN)
def team_helpdesk(team_id: int):
    team = db.session.get(Team, team_id) or abort(404)
    form = _helpdesk_form(team)
    back = redirect(url_for("routing_admin.index") + "#helpdesk")
    if not form.validate_on_submit():
        first = next(iter(form.errors.values()), ["The form is invalid."])
        flash(f"{team.name}: {first[0]}", "error")
        return back
    try:
        endpoint = helpdesk.configure_endpoint(
            team,
            url=form.url.data or "",
            secret=form.secret.data or "",
            actor=current_user,
            now=utcnow(),
        )
    except InboxError as error:
        db.session.rollback()
        flash(f"{team.name}: {error.message}", "error")
        return back
    db.session.commit()
    saved = "saved" if endpoint is not None else "removed; routed conversations stay here"
    flash(f"{team.name}: helpdesk webhook {saved}.", "info")
    return back
