"""Flask-WTF forms for the HTML views (CSRF protection comes with every one).

Imports: models (enums), flask_wtf, wtforms.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from inbox.models import Priority, Status


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in")


class PostForm(FlaskForm):
    """A form with no fields: a CSRF-protected POST button (sign out, revoke …)."""


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


class ContactForm(FlaskForm):
    notes = TextAreaField("Notes", validators=[Length(max=5000)])
    is_vip = BooleanField("VIP")


class CannedResponseForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=5000)])


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
