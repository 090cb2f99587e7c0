"""Scheduled SLA summaries by e-mail: subscribing, and sending each due period exactly once.

A daily subscription gets yesterday (in its time zone) once that day is over; a weekly one the
last complete Monday–Sunday week. `send_due` claims a subscription's period with one
conditional UPDATE before sending, so concurrent or repeated runs send each period once.
Imports: models, extensions.db, services.reports, services.audit, timeutil.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from werkzeug.datastructures import MultiDict

from inbox.extensions import db
from inbox.models import Frequency, ReportSubscription, User
from inbox.services import reports
from inbox.services.audit import record_audit
from inbox.timeutil import format_duration

# Report arguments a subscription keeps (the reports page's filters).
FILTER_KEYS = ("team", "assignee", "platform", "channel", "kind", "priority", "policy", "tag")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str = ""
    password: str = ""
    sender: str = "inbox@localhost"
    starttls: bool = True

    @classmethod
    def from_config(cls, config) -> SmtpSettings:
        return cls(
            host=config["INBOX_SMTP_HOST"],
            port=config["INBOX_SMTP_PORT"],
            user=config["INBOX_SMTP_USER"],
            password=config["INBOX_SMTP_PASSWORD"],
            sender=config["INBOX_SMTP_FROM"],
            starttls=config["INBOX_SMTP_STARTTLS"],
        )


def subscribe(
    user: User,
    frequency: Frequency,
    *,
    timezone: str,
    filters: dict[str, str],
    actor: User,
    now: datetime,
) -> ReportSubscription:
    """Subscribe `user` (one subscription per frequency; subscribing again updates it)."""
    ZoneInfo(timezone)  # raises for an unknown zone
    kept = {k: v for k, v in filters.items() if k in FILTER_KEYS and v}
    sub = db.session.scalar(
        select(ReportSubscription).filter_by(user_id=user.id, frequency=frequency)
    )
    if sub is None:
        sub = ReportSubscription(user_id=user.id, frequency=frequency)
        db.session.add(sub)
    sub.timezone, sub.filters = timezone, kept
    db.session.flush()
    record_audit(
        "report.subscribe",
        sub,
        actor=actor,
        after={"frequency": str(frequency), "timezone": timezone, "filters": kept},
        now=now,
    )
    return sub


def unsubscribe(sub: ReportSubscription, *, actor: User, now: datetime) -> None:
    record_audit(
        "report.unsubscribe", sub, actor=actor, before={"frequency": str(sub.frequency)}, now=now
    )
    db.session.delete(sub)
    db.session.flush()


def subscriptions_of(user: User) -> list[ReportSubscription]:
    return list(
        db.session.scalars(
            select(ReportSubscription)
            .filter_by(user_id=user.id)
            .order_by(ReportSubscription.frequency)
        )
    )


def due_period(sub: ReportSubscription, now: datetime) -> tuple[str, date, date]:
    """The last complete period at `now` in the subscription's zone: (key, first, last day)."""
    today = now.astimezone(ZoneInfo(sub.timezone)).date()
    if sub.frequency is Frequency.DAILY:
        day = today - timedelta(days=1)
        return day.isoformat(), day, day
    monday = today - timedelta(days=today.weekday() + 7)
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}", monday, monday + timedelta(days=6)


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "—"


def summary_text(report: reports.SlaReport, user: User, title: str) -> str:
    lines = [f"Hello {user.name},", "", title, ""]
    for a in report.attainment:
        pct = "no cycles decided" if a.pct_met is None else f"{a.pct_met}% met"
        # Business time beside calendar time: alone, "median 0s" misleads (see the report page).
        business, calendar = (
            report.distributions[(a.metric, basis)].median for basis in ("business", "calendar")
        )
        lines.append(
            f"{a.label}: {pct} ({a.met} met, {a.breached} breached, {a.open} open); "
            f"median {_duration(business)} business · {_duration(calendar)} calendar"
        )
    worst = sorted(
        (row for row in report.breakdowns["team"] if row.attainment[reports.METRICS[0]].breached),
        key=lambda row: -row.attainment[reports.METRICS[0]].breached,
    )[:3]
    if worst:
        lines += ["", "Most first-response breaches:"]
        lines += [f"  {row.label}: {row.attainment[reports.METRICS[0]].breached}" for row in worst]
    inbound = sum(d.inbound for d in report.days)
    new = sum(d.new_conversations for d in report.days)
    backlog = report.days[-1].backlog if report.days else 0
    lines += [
        "",
        f"Inbound messages: {inbound}; new conversations: {new}; open at the end: {backlog}.",
        "",
        "The full report with drill-down is on the Reports page of your inbox.",
    ]
    return "\n".join(lines) + "\n"


def send_mail(settings: SmtpSettings, message: EmailMessage) -> None:
    """Send through the relay: STARTTLS with the certificate checked whenever the server offers
    it (`starttls`), and the password never over a plain connection (someone on the path could
    strip STARTTLS from the server's answer to read it)."""
    with smtplib.SMTP(settings.host, settings.port, timeout=30) as smtp:
        smtp.ehlo()
        secure = False
        if settings.starttls and smtp.has_extn("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
            secure = True
        if settings.user:
            if not secure:
                raise smtplib.SMTPException(
                    f"{settings.host} did not offer STARTTLS (or INBOX_SMTP_STARTTLS is off): "
                    "not sending the SMTP password over a plain connection."
                )
            smtp.login(settings.user, settings.password)
        smtp.send_message(message)


def due_ids(*, now: datetime) -> list[int]:
    """Subscriptions of active users whose last complete period has not been sent."""
    subs = db.session.scalars(
        select(ReportSubscription)
        .join(User, User.id == ReportSubscription.user_id)
        .where(User.active.is_(True))
        .order_by(ReportSubscription.id)
    )
    return [sub.id for sub in subs if sub.last_period != due_period(sub, now)[0]]


def send_one(
    subscription_id: int,
    *,
    now: datetime,
    settings: SmtpSettings,
    send: Callable[[SmtpSettings, EmailMessage], Any] = send_mail,
) -> bool:
    """Claim the subscription's due period and send it; False if it was already sent (by this
    or a concurrent run). The caller commits after; a failed send raises, so the caller's
    rollback releases the claim and the next run retries."""
    sub = db.session.get(ReportSubscription, subscription_id)
    if sub is None:
        return False
    key, first, last = due_period(sub, now)
    claimed = db.session.execute(
        update(ReportSubscription)
        .where(
            ReportSubscription.id == sub.id,
            or_(ReportSubscription.last_period.is_(None), ReportSubscription.last_period != key),
        )
        .values(last_period=key)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return False
    args = MultiDict(
        {
            **sub.filters,
            "preset": "custom",
            "from": first.isoformat(),
            "to": last.isoformat(),
            "tz": sub.timezone,
        }
    )
    report = reports.sla_report(reports.parse_query(args, now=now), viewer=sub.user)
    period = first.isoformat() if first == last else f"{first} – {last}"
    title = f"SLA summary for {period} ({sub.timezone})"
    message = EmailMessage()
    message["Subject"] = f"[inbox] {title}"
    message["From"] = settings.sender
    message["To"] = sub.user.email
    message.set_content(summary_text(report, sub.user, title))
    send(settings, message)
    return True
