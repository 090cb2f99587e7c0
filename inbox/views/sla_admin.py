"""Admin pages for SLAs under /admin/sla: business calendars and ordered SLA policies.

Imports: forms, models, extensions.db, permissions, services.sla_config, timeutil.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from inbox.extensions import db
from inbox.forms import WEEKDAYS, CalendarForm, PolicyForm, parse_dates, team_choices
from inbox.models import (
    BusinessCalendar,
    Kind,
    Platform,
    Priority,
    Role,
    SlaMetric,
    SlaPolicy,
    Visibility,
    WarnMode,
)
from inbox.permissions import role_required
from inbox.services.sla_config import save_calendar, save_policy
from inbox.timeutil import format_duration, utcnow

bp = Blueprint("sla_admin", __name__, url_prefix="/admin/sla")


@bp.route("/")
@role_required(Role.ADMIN)
def index():
    calendars = db.session.scalars(select(BusinessCalendar).order_by(BusinessCalendar.name)).all()
    policies = db.session.scalars(
        select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.id)
    ).all()
    return render_template(
        "sla_admin/index.html",
        calendars=calendars,
        policies=policies,
        weekdays=WEEKDAYS,
        target=lambda s: format_duration(s) if s else "—",
    )


@bp.route("/calendars/new", methods=["GET", "POST"])
@bp.route("/calendars/<int:calendar_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def calendar(calendar_id: int | None = None):
    existing = db.session.get(BusinessCalendar, calendar_id) if calendar_id else None
    if calendar_id and existing is None:
        abort(404)
    form = CalendarForm(obj=existing)
    if existing is not None and not form.is_submitted():
        for index, field in enumerate(form.day_fields()):
            field.data = ", ".join(f"{a}-{b}" for a, b in existing.weekly.get(str(index), []))
        form.holidays.data = "\n".join(existing.holidays)
    if form.validate_on_submit():
        values = {
            "name": form.name.data.strip(),
            "timezone": form.timezone.data.strip(),
            "always_open": form.always_open.data,
            "weekly": form.weekly(),
            "holidays": parse_dates(form.holidays.data or ""),
            "country": (form.country.data or "").strip().upper(),
            "subdivision": (form.subdivision.data or "").strip().upper(),
        }
        try:
            saved = save_calendar(existing, values, actor=current_user, now=utcnow())
        except ValueError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Calendar “{saved.name}” saved.", "info")
            return redirect(url_for("sla_admin.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("sla_admin/calendar.html", form=form, calendar=existing), status


def _policy_form(existing: SlaPolicy | None) -> PolicyForm:
    form = PolicyForm(obj=existing)
    teams = team_choices()
    form.team_id.choices = [SelectChoice(0, "Any team"), *teams]
    form.calendar_id.choices = [SelectChoice(0, "—")] + [
        SelectChoice(c.id, c.name)
        for c in db.session.scalars(select(BusinessCalendar).order_by(BusinessCalendar.name))
    ]
    for sub in (form.at_warning, form.at_breach):
        sub.reassign_team.choices = [SelectChoice(0, "Don't reassign"), *teams]
    form.priorities.choices = [SelectChoice(p.value, p.value) for p in Priority]
    form.platforms.choices = [SelectChoice(p.value, p.value) for p in Platform]
    form.kinds.choices = [SelectChoice(k.value, k.value) for k in Kind]
    if existing is not None and not form.is_submitted():
        form.team_id.data = existing.team_id or 0
        form.calendar_id.data = existing.calendar_id or 0
        form.tags.data = ", ".join(existing.tags)
        form.vip.data = {None: "any", True: "yes", False: "no"}[existing.vip]
        form.visibility.data = str(existing.visibility)
        form.warn_mode.data = str(existing.warn_mode)
        form.time_basis.data = "business" if existing.business_hours else "calendar"
        for metric in PolicyForm.TARGETS:
            seconds = existing.target_seconds(SlaMetric(metric))
            if seconds is not None:
                getattr(form, f"{metric}_hours").data = seconds // 3600
                getattr(form, f"{metric}_minutes").data = seconds % 3600 // 60
        _fill_actions(form.at_warning, existing.warning_actions)
        _fill_actions(form.at_breach, existing.breach_actions)
    return form


def _fill_actions(sub, actions: list[dict]) -> None:
    for action in actions:
        if action["type"] == "notify":
            sub.notify_assignee.data = "assignee" in action["to"]
            sub.notify_supervisors.data = "supervisors" in action["to"]
        elif action["type"] == "raise_priority":
            sub.raise_priority.data = True
        elif action["type"] == "reassign":
            sub.reassign_team.data = action["team_id"]
        elif action["type"] == "webhook":
            sub.webhook.data = action["url"]


def _actions(sub) -> list[dict]:
    actions: list[dict] = []
    to = [
        w
        for w, on in (
            ("assignee", sub.notify_assignee.data),
            ("supervisors", sub.notify_supervisors.data),
        )
        if on
    ]
    if to:
        actions.append({"type": "notify", "to": to})
    if sub.raise_priority.data:
        actions.append({"type": "raise_priority"})
    if sub.reassign_team.data:
        actions.append({"type": "reassign", "team_id": sub.reassign_team.data})
    if sub.webhook.data:
        actions.append({"type": "webhook", "url": sub.webhook.data.strip()})
    return actions


@bp.route("/policies/new", methods=["GET", "POST"])
@bp.route("/policies/<int:policy_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def policy(policy_id: int | None = None):
    existing = db.session.get(SlaPolicy, policy_id) if policy_id else None
    if policy_id and existing is None:
        abort(404)
    form = _policy_form(existing)
    if form.validate_on_submit():
        values = {
            "name": form.name.data.strip(),
            "position": form.position.data,
            "active": form.active.data,
            "priorities": form.priorities.data,
            "platforms": form.platforms.data,
            "kinds": form.kinds.data,
            "visibility": Visibility(form.visibility.data),
            "team_id": form.team_id.data or None,
            "tags": sorted({t.strip() for t in (form.tags.data or "").split(",") if t.strip()}),
            "vip": {"any": None, "yes": True, "no": False}[form.vip.data],
            **{f"{m}_seconds": form.target_seconds(m) for m in PolicyForm.TARGETS},
            "business_hours": form.time_basis.data == "business",
            "calendar_id": form.calendar_id.data or None,
            "warn_mode": WarnMode(form.warn_mode.data),
            "warn_value": form.warn_value.data,
            "count_echoes": form.count_echoes.data,
            "count_auto_replies": form.count_auto_replies.data,
            "warning_actions": _actions(form.at_warning),
            "breach_actions": _actions(form.at_breach),
        }
        saved = save_policy(existing, values, actor=current_user, now=utcnow())
        db.session.commit()
        flash(f"Policy “{saved.name}” saved.", "info")
        return redirect(url_for("sla_admin.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("sla_admin/policy.html", form=form, policy=existing), status
