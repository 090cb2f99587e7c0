"""Flask-WTF forms for the HTML views (CSRF protection comes with every one), and
`posted_object`: the object a form's POST is about, once the form validated.

Imports: models, extensions.db, flask, flask_wtf, wtforms.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import abort
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from wtforms import (
    BooleanField,
    EmailField,
    Form,
    FormField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    URL,
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
)
from wtforms.widgets import CheckboxInput, ListWidget

from inbox.extensions import db
from inbox.models import Availability, Platform, Priority, Role, Status, Team

T = TypeVar("T")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in")


class PostForm(FlaskForm):
    """A form with no fields: a CSRF-protected POST button (sign out, revoke …)."""


def posted_object(model: type[T], object_id: int, form: FlaskForm | None = None) -> T:
    """The `model` row a POST's URL names (404 if there is none), once `form` (a PostForm, the
    CSRF token alone, if None) validated: 400 if not, an expired page or a forged post."""
    found = db.session.get(model, object_id) or abort(404)
    if not (form or PostForm()).validate_on_submit():
        abort(400, description="The form is incomplete or expired; reload the page and try again.")
    return found


def team_choices() -> list[SelectChoice]:
    """Every team by name, as a form's choices (values: team ids)."""
    return [
        SelectChoice(t.id, t.name) for t in db.session.scalars(select(Team).order_by(Team.name))
    ]


class AvailabilityForm(FlaskForm):
    availability = SelectField(
        "Availability",
        choices=[SelectChoice(a.value, a.value.capitalize()) for a in Availability],
    )


# --- SLA administration (views/sla_admin.py) --------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_INTERVAL = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")


def parse_intervals(text: str) -> list[list[str]]:
    """ "09:00-12:00, 13:00-17:00" → [["09:00", "12:00"], ["13:00", "17:00"]]; an end at or
    before the start crosses midnight ("22:00-06:00"). Raises ValueError with a readable message."""
    intervals = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _INTERVAL.match(part)
        if not match:
            raise ValueError(f"“{part}” is not like 09:00-17:00")
        start, end = (_wall_time(t.zfill(5)) for t in match.groups())
        if start == "24:00":
            raise ValueError(f"“{part}” starts at 24:00: a day starts at 00:00.")
        # People write a day's end as 24:00; the calendar stores it as 00:00, which as an end
        # means midnight at the end of the day.
        intervals.append([start, "00:00" if end == "24:00" else end])
    return intervals


def _wall_time(text: str) -> str:
    """ "09:30" as written, or ValueError in words (not datetime's "hour must be in 0..23")."""
    if text == "24:00":
        return text
    try:
        return time.fromisoformat(text).isoformat("minutes")
    except ValueError:
        raise ValueError(f"Times must be between 00:00 and 24:00 ({text} is not a time).") from None


def parse_dates(text: str) -> list[str]:
    """One ISO date per line; anything after the date (a label) is ignored."""
    dates = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        try:
            dates.append(date.fromisoformat(line.split()[0]).isoformat())
        except ValueError:
            raise ValueError(f"“{line}” does not start with a date like 2026-12-25") from None
    return sorted(set(dates))


class CalendarForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    timezone = StringField("Time zone", default="UTC", validators=[DataRequired(), Length(max=64)])
    always_open = BooleanField("Open 24/7 (calendar time, no hours or holidays)")
    monday = StringField("Monday")
    tuesday = StringField("Tuesday")
    wednesday = StringField("Wednesday")
    thursday = StringField("Thursday")
    friday = StringField("Friday")
    saturday = StringField("Saturday")
    sunday = StringField("Sunday")
    holidays = TextAreaField("Holidays (one date per line)")
    country = StringField("Holiday country (ISO code, e.g. GB)", validators=[Length(max=8)])
    subdivision = StringField("Subdivision (e.g. ENG)", validators=[Length(max=16)])

    def day_fields(self):
        return [getattr(self, day.lower()) for day in WEEKDAYS]

    def validate_timezone(self, field):
        try:
            ZoneInfo(field.data.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Unknown time zone; use a name like Europe/London.") from None

    def weekly(self) -> dict[str, list[list[str]]]:
        return {str(i): parse_intervals(f.data or "") for i, f in enumerate(self.day_fields())}

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for f in self.day_fields():
            try:
                parse_intervals(f.data or "")
            except ValueError as exc:
                f.errors.append(str(exc))
                ok = False
        try:
            parse_dates(self.holidays.data or "")
        except ValueError as exc:
            self.holidays.errors.append(str(exc))
            ok = False
        if self.subdivision.data and not self.country.data:
            self.subdivision.errors.append("A subdivision needs a country.")
            ok = False
        return ok


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def webhook_url_field(label: str) -> URLField:
    """An optional http(s) URL that the app will POST to (escalations, helpdesk cases)."""
    return URLField(
        label,
        validators=[
            Optional(),
            URL(require_tld=False, message="Enter an http(s) URL."),
            Length(max=500),
        ],
    )


class EscalationForm(Form):
    """One set of escalation actions (at warning or at breach)."""

    notify_assignee = BooleanField("Notify the assignee")
    notify_supervisors = BooleanField("Notify the team's supervisors")
    raise_priority = BooleanField("Raise priority one level")
    reassign_team = SelectField("Reassign to team", coerce=int, default=0)
    webhook = webhook_url_field("Call webhook (POST JSON)")


# Shared by SLA policies and routing rules: both match on a conversation's visibility.
VISIBILITY_CHOICES = [
    SelectChoice("any", "Any"),
    SelectChoice("public", "Public only"),
    SelectChoice("private", "Private only"),
]


class PolicyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    position = IntegerField(
        "Order", default=100, validators=[InputRequired(), NumberRange(0, 100000)]
    )
    active = BooleanField("Active", default=True)
    priorities = MultiCheckboxField("Priority is", choices=[])
    platforms = MultiCheckboxField("Platform is", choices=[])
    kinds = MultiCheckboxField("Kind is", choices=[])
    visibility = SelectField("Public or private", choices=VISIBILITY_CHOICES)
    team_id = SelectField("Team", coerce=int, default=0)
    tags = StringField("Has any of these tags (comma separated)", validators=[Length(max=500)])
    vip = SelectField(
        "Contact",
        choices=[
            SelectChoice("any", "Anyone"),
            SelectChoice("yes", "VIP only"),
            SelectChoice("no", "Not VIP"),
        ],
    )
    first_response_hours = IntegerField(
        "First response h", validators=[Optional(), NumberRange(0, 10000)]
    )
    first_response_minutes = IntegerField("m", validators=[Optional(), NumberRange(0, 59)])
    next_response_hours = IntegerField(
        "Next response h", validators=[Optional(), NumberRange(0, 10000)]
    )
    next_response_minutes = IntegerField("m", validators=[Optional(), NumberRange(0, 59)])
    resolution_hours = IntegerField("Resolution h", validators=[Optional(), NumberRange(0, 10000)])
    resolution_minutes = IntegerField("m", validators=[Optional(), NumberRange(0, 59)])
    time_basis = RadioField(
        "Count",
        choices=[
            SelectChoice("business", "Business hours"),
            SelectChoice("calendar", "Calendar time (24/7)"),
        ],
        default="business",
    )
    calendar_id = SelectField("Business calendar", coerce=int, default=0)
    warn_mode = SelectField(
        "Warn",
        choices=[
            SelectChoice("percent", "at % of the target used"),
            SelectChoice("minutes", "minutes before due"),
        ],
    )
    warn_value = IntegerField(
        "Warning value", default=75, validators=[Optional(), NumberRange(1, 100000)]
    )
    count_echoes = BooleanField("Replies sent from the platform's own app count", default=True)
    count_auto_replies = BooleanField("Automatic replies count")
    at_warning = FormField(EscalationForm, "At warning")
    at_breach = FormField(EscalationForm, "At breach")

    TARGETS = ("first_response", "next_response", "resolution")

    def target_seconds(self, metric: str) -> int | None:
        hours = getattr(self, f"{metric}_hours").data
        minutes = getattr(self, f"{metric}_minutes").data
        if hours is None and minutes is None:
            return None
        return (hours or 0) * 3600 + (minutes or 0) * 60

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for metric in self.TARGETS:
            if self.target_seconds(metric) == 0:
                getattr(self, f"{metric}_hours").errors.append(
                    "A target must be longer than 0; leave it empty for none."
                )
                ok = False
        if self.time_basis.data == "business" and not self.calendar_id.data:
            self.calendar_id.errors.append("Choose the calendar business hours come from.")
            ok = False
        if self.warn_mode.data == "percent" and self.warn_value.data and self.warn_value.data > 100:
            self.warn_value.errors.append("A share of the target is at most 100%.")
            ok = False
        return ok


class VersionedForm(FlaskForm):
    """An action on a conversation: carries the version the page was rendered with, so the
    service can refuse it (409) if the conversation changed in between."""

    version = IntegerField(validators=[Optional()])


class NoteForm(VersionedForm):
    text = TextAreaField("Note", validators=[DataRequired(), Length(max=5000)])


class AssignForm(VersionedForm):
    assignee = IntegerField("Assignee", validators=[DataRequired()])


class TeamForm(VersionedForm):
    # 0 (or empty) means no team.
    team = IntegerField("Team", validators=[Optional()])


class StatusForm(VersionedForm):
    status = StringField("Status", validators=[DataRequired(), AnyOf([s.value for s in Status])])
    # A preset ("1h", "4h", "tomorrow", "next_week") or an ISO time in snooze_until.
    snooze = StringField(validators=[Optional(), Length(max=16)])
    snooze_until = StringField(validators=[Optional(), Length(max=40)])


class PriorityForm(VersionedForm):
    priority = StringField(
        "Priority", validators=[DataRequired(), AnyOf([p.value for p in Priority])]
    )


class TagForm(VersionedForm):
    name = StringField("Tag", validators=[DataRequired(), Length(max=64)])


class SpamForm(VersionedForm):
    spam = BooleanField("Spam")


class RouteForm(VersionedForm):
    team = IntegerField("Team", validators=[DataRequired()])
    note = TextAreaField("Handoff note", validators=[DataRequired(), Length(max=5000)])


class ReplyForm(VersionedForm):
    text = TextAreaField("Reply", validators=[DataRequired(), Length(max=20000)])
    # "public" / "private" where the platform offers both; empty takes the usual way.
    visibility = StringField(validators=[Optional(), AnyOf(["public", "private"])])


class RetryForm(VersionedForm):
    message = IntegerField("Message", validators=[DataRequired()])


class ContactForm(FlaskForm):
    notes = TextAreaField("Notes", validators=[Length(max=5000)])
    is_vip = BooleanField("VIP")


ROLE_CHOICES = [SelectChoice(r.value, r.value.capitalize()) for r in Role]


class PersonForm(FlaskForm):
    """Adding someone (name, email, role, teams) or changing them (role, teams, access)."""

    name = StringField("Name", validators=[Optional(), Length(max=120)])
    email = EmailField("Email", validators=[Optional(), Length(max=255)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired()])
    teams = MultiCheckboxField("Teams", coerce=int)
    active = BooleanField("Can sign in", default=True)


PLATFORM_CHOICES = [SelectChoice(p.value, p.label) for p in Platform]


class ChannelForm(FlaskForm):
    """Connecting a brand account; the access token (for replies) may come later."""

    platform = SelectField("Platform", choices=PLATFORM_CHOICES, validators=[DataRequired()])
    account_id = StringField("Account id", validators=[DataRequired(), Length(max=64)])
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    access_token = PasswordField("Access token", validators=[Optional(), Length(max=2000)])


class ChannelEditForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    active = BooleanField("Receiving")


class ChannelTokenForm(FlaskForm):
    access_token = PasswordField("New access token", validators=[DataRequired(), Length(max=2000)])


class ApiTokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=120)])


class CannedResponseForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=5000)])


class ImportForm(FlaskForm):
    """A CSV file to import and the team its conversations go to."""

    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to import.")])
    team = SelectField("Team", choices=[], coerce=int)  # 0: no team


class BulkForm(FlaskForm):
    ids = StringField(validators=[DataRequired(), Length(max=20000)])  # comma-separated
    action = StringField(
        "Action",
        validators=[
            DataRequired(),
            AnyOf(["claim", "assign", "unassign", "tag", "status", "spam", "not_spam"]),
        ],
    )
    value = StringField(validators=[Optional(), Length(max=64)])


# --- Routing administration (views/routing_admin.py) ------------------------------------------

_ANY_YES_NO = [SelectChoice("any", "Any"), SelectChoice("yes", "Yes"), SelectChoice("no", "No")]


class RoutingRuleForm(FlaskForm):
    """A routing rule as a flat form: every condition and action is an optional field (empty
    means "not used"); the view turns it into the rule's condition and action lists."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    active = BooleanField("Active", default=True)
    stop = BooleanField("Stop here")
    platforms = MultiCheckboxField("Platform is", choices=[])
    channels = SelectMultipleField("Channel account is", coerce=int, choices=[])
    kinds = MultiCheckboxField("Kind is", choices=[])
    visibility = SelectField("Public or private", choices=VISIBILITY_CHOICES)
    text_contains = StringField(
        "Text contains any of (comma separated)", validators=[Length(max=1000)]
    )
    text_regex = StringField("Text matches the pattern (regex)", validators=[Length(max=200)])
    languages = StringField("Language is any of (codes, e.g. en, es)", validators=[Length(max=200)])
    sentiment = SelectField(
        "Sentiment",
        choices=[
            SelectChoice("any", "Any"),
            SelectChoice("positive", "Positive"),
            SelectChoice("neutral", "Neutral"),
            SelectChoice("negative", "Negative"),
        ],
    )
    vip = SelectField("Contact is VIP", choices=_ANY_YES_NO)
    followers_at_least = IntegerField(
        "Author has at least N followers", validators=[Optional(), NumberRange(0, 10**12)]
    )
    verified = SelectField("Author is verified", choices=_ANY_YES_NO)
    business_hours = SelectField(
        "Sent within business hours",
        choices=[
            SelectChoice("any", "Any time"),
            SelectChoice("yes", "Within business hours"),
            SelectChoice("no", "Outside business hours"),
        ],
    )
    calendar_id = SelectField("Calendar for business hours", coerce=int, default=0)
    has_tags = StringField("Has any of the tags (comma separated)", validators=[Length(max=500)])
    set_team = SelectField("Set team", coerce=int, default=0)
    set_priority = SelectField("Set priority", default="")
    add_tags = StringField("Add tags (comma separated)", validators=[Length(max=500)])
    assign_to = SelectField("Assign to (if unassigned)", coerce=int, default=0)
    mark_spam = BooleanField("Mark as spam")
    auto_reply = TextAreaField(
        "Auto-reply (sent once per conversation)", validators=[Length(max=1000)]
    )
    sla_policy_id = SelectField("Apply SLA policy", coerce=int, default=0)
    test_limit = IntegerField(
        "Conversations to test against", default=200, validators=[Optional(), NumberRange(1, 1000)]
    )


class TeamAssignmentForm(FlaskForm):
    assignment_mode = SelectField(
        "Assignment",
        choices=[
            SelectChoice("manual", "Manual"),
            SelectChoice("round_robin", "Round robin"),
            SelectChoice("least_loaded", "Least loaded"),
        ],
    )
    assignment_timeout_minutes = IntegerField(
        "Return after (business minutes without action)",
        default=30,
        validators=[InputRequired(), NumberRange(1, 10080)],
    )
    calendar_id = SelectField("Business calendar", coerce=int, default=0)


class HelpdeskEndpointForm(FlaskForm):
    """A team's helpdesk webhook; the secret field is never filled back in (blank keeps it)."""

    url = webhook_url_field("Helpdesk webhook URL")
    secret = PasswordField("Signing secret", validators=[Optional(), Length(max=200)])


# --- report e-mails (views/reports.py) --------------------------------------------------------


def _known_zone(form, field) -> None:
    try:
        ZoneInfo(field.data)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("Unknown time zone.") from None


class ReportSubscriptionForm(FlaskForm):
    """Subscribe to a daily or weekly SLA summary with the report's current filters (sent as
    the other hidden fields of the form)."""

    frequency = SelectField(
        "E-mail me",
        choices=[SelectChoice("daily", "Daily summary"), SelectChoice("weekly", "Weekly summary")],
    )
    tz = StringField("Time zone", default="UTC", validators=[DataRequired(), _known_zone])
