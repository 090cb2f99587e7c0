"""Supervisor reports: the SLA dashboard with its live panel, drill-down links into the inbox,
and CSV exports (aggregates, and one row per conversation streamed from a server-side cursor).

Thin: parse the query, call `services.reports`, render. Who may see what: supervisors and
admins; agents only when INBOX_AGENTS_SEE_TEAM_REPORTS is on. The service limits everything
to the viewer's teams unless the viewer is an admin.
Imports: services.reports, services.listing, models, extensions.db, permissions, errors, timeutil.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from zoneinfo import available_timezones

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select

from inbox import permissions
from inbox.errors import Forbidden, InboxError, NotFound
from inbox.extensions import db
from inbox.forms import PostForm, ReportSubscriptionForm
from inbox.models import (
    ChannelAccount,
    Frequency,
    Kind,
    Platform,
    Priority,
    ReportSubscription,
    SlaPolicy,
    Tag,
    Team,
    User,
)
from inbox.services import report_mail, reports
from inbox.services.listing import Filters
from inbox.timeutil import format_duration, utcnow

bp = Blueprint("reports", __name__, url_prefix="/reports")


def may_see_reports(user: User) -> bool:
    return permissions.may_see_reports(
        user, agents_allowed=current_app.config["INBOX_AGENTS_SEE_TEAM_REPORTS"]
    )


def reports_access(view):
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not may_see_reports(current_user):
            raise Forbidden("Reports are for supervisors and admins.")
        return view(*args, **kwargs)

    return login_required(wrapped)


def _links(query: reports.ReportQuery):
    """URL builders for the numbers on the page: each opens the inbox's All view filtered to
    exactly the conversations behind the number."""

    def inbox(**fields: Any) -> str:
        return url_for("inbox.index", view="all", **reports.drill(query, current_user, **fields))

    def cycles(metric=None, outcome: str = "", **more: Any) -> str:
        return inbox(**reports.cycle_filters(query, metric, outcome), **more)

    def breakdown(name: str, key: str, metric, outcome: str) -> str | None:
        fields = reports.breakdown_filter(name, key)
        return None if fields is None else cycles(metric, outcome, **fields)

    def histogram(metric, basis: str, low: int, high: int | None) -> str:
        return cycles(metric, "measured", sla_basis=basis, duration_min=low, duration_max=high)

    def day(d) -> str:
        return inbox(
            sla_metric=reports.SlaMetric.FIRST_RESPONSE,
            started_from=reports.local_midnight(d, query.zone),
            started_to=reports.local_midnight(d + timedelta(days=1), query.zone),
        )

    return {"cycles": cycles, "breakdown": breakdown, "histogram": histogram, "day": day}


def _live_links(query: reports.ReportQuery) -> dict[str, str]:
    # The live panel ignores the report's range and filters, so its links do too.
    now_query = replace(query, filters=Filters())
    return {
        outcome: url_for(
            "inbox.index", view="all", **reports.drill(now_query, current_user, sla_outcome=outcome)
        )
        for outcome in ("at_risk", "overdue")
    }


def _options() -> dict[str, Any]:
    return {
        "presets": reports.PRESETS,
        "teams": db.session.scalars(select(Team).order_by(Team.name)).all(),
        "agents": db.session.scalars(
            select(User).where(User.active.is_(True)).order_by(User.name)
        ).all(),
        "channels": db.session.scalars(select(ChannelAccount).order_by(ChannelAccount.name)).all(),
        "policies": db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.position)).all(),
        "all_tags": db.session.scalars(select(Tag).order_by(Tag.name)).all(),
        "platforms": list(Platform),
        "kinds": list(Kind),
        "priorities": list(Priority),
        "timezones": sorted(available_timezones()),
    }


@bp.route("/")
@reports_access
def index():
    now = utcnow()
    status = 200
    try:
        query = reports.parse_query(request.args, now=now)
    except InboxError as error:
        status = 400
        # A mistyped time zone or a custom range without dates: the report's own page, with
        # the problem said above its filters, rather than an error page that loses the way.
        flash(f"{error.message} Showing the default report instead.", "error")
        query = reports.parse_query({}, now=now)
    report = reports.sla_report(query, viewer=current_user)
    live = reports.live_panel(current_user, now=now)
    basis = "calendar" if request.args.get("basis") == "calendar" else "business"
    return render_template(
        "reports/index.html",
        query=query,
        report=report,
        live=live,
        basis=basis,
        links=_links(query),
        live_links=_live_links(query),
        query_args=query.args(),
        dimensions=reports.DIMENSIONS,
        metrics=reports.METRICS,
        scoped=reports.scope_team_ids(current_user) is not None,
        now=now,
        subscribe_form=ReportSubscriptionForm(tz=query.tz),
        subscriptions=report_mail.subscriptions_of(current_user),
        post_form=PostForm(),
        **_options(),
    ), status


# A text cell starting with one of these is a formula to Excel and Sheets: names and tags come
# from agents, rules and imports, so `=HYPERLINK(...)` in a tag would run in the supervisor's
# spreadsheet. Such cells get a leading apostrophe (OWASP's advice), which shows as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)


def _attachment(name: str, query: reports.ReportQuery) -> dict[str, str]:
    days = query.days()
    return {"Content-Disposition": f'attachment; filename="{name}-{days[0]}-{days[-1]}.csv"'}


@bp.route("/sla.csv")
@reports_access
def summary_csv():
    query = reports.parse_query(request.args, now=utcnow())
    report = reports.sla_report(query, viewer=current_user)
    return Response(
        "".join(_csv(reports.summary_rows(report))),
        mimetype="text/csv",
        headers=_attachment("sla-summary", query),
    )


@bp.route("/conversations.csv")
@reports_access
def rows_csv():
    """One row per conversation, streamed: rows are written as the cursor yields them."""
    query = reports.parse_query(request.args, now=utcnow())
    rows = reports.export_rows(query, viewer=current_user)

    def generate() -> Iterator[str]:
        yield from _csv([reports.EXPORT_COLUMNS])
        yield from _csv(rows)

    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers=_attachment("sla-conversations", query),
    )


@bp.post("/subscriptions")
@reports_access
def subscribe():
    form = ReportSubscriptionForm()
    if not form.validate_on_submit():
        flash("Could not subscribe: " + "; ".join(sum(form.errors.values(), [])), "error")
        return redirect(url_for("reports.index"))
    report_mail.subscribe(
        current_user,
        Frequency(form.frequency.data),
        timezone=form.tz.data,
        filters={k: request.form.get(k, "") for k in report_mail.FILTER_KEYS},
        actor=current_user,
        now=utcnow(),
    )
    db.session.commit()
    flash(f"You will get the {form.frequency.data} SLA summary by e-mail.", "success")
    return redirect(url_for("reports.index"))


@bp.post("/subscriptions/<int:subscription_id>/delete")
@reports_access
def unsubscribe(subscription_id: int):
    if not PostForm().validate_on_submit():
        raise Forbidden("The form expired; reload the page.")
    sub = db.session.get(ReportSubscription, subscription_id)
    if sub is None or sub.user_id != current_user.id:
        raise NotFound("No such subscription.")
    report_mail.unsubscribe(sub, actor=current_user, now=utcnow())
    db.session.commit()
    flash("Unsubscribed.", "success")
    return redirect(url_for("reports.index"))


@bp.app_template_filter("seconds")
def seconds_filter(value: float | None) -> str:
    return "—" if value is None else format_duration(value)


@bp.app_context_processor
def inject_report_access() -> dict[str, Any]:
    return {"may_see_reports": may_see_reports}
