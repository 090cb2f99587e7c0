"""Flask-WTF forms for the HTML views (CSRF protection comes with every one).

Imports: flask_wtf, wtforms.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in")


class PostForm(FlaskForm):
    """A form with no fields: a CSRF-protected POST button (sign out, revoke …)."""
