"""Sign-in and sign-out pages and the Flask-Login user loader.

Login attempts are rate limited per client address (shared across web processes via Redis).
Signing out sets the person offline (services.availability).
Imports: services.accounts, services.availability, models, extensions, forms.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from inbox.extensions import db, limiter, login_manager
from inbox.forms import LoginForm, PostForm
from inbox.models import Availability, User
from inbox.services import availability
from inbox.services.accounts import authenticate
from inbox.services.audit import record_audit
from inbox.timeutil import utcnow

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The user a session names (`User.get_id`), unless deactivated or their password has
    changed since that session signed in."""
    user_id, _, fingerprint = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active:
        return None
    # Bytes, as compare_digest refuses a str with non-ASCII characters.
    matches = hmac.compare_digest(fingerprint.encode(), user.session_fingerprint.encode())
    return user if matches else None


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: an attacker-supplied absolute URL must not be followed.
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("inbox.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["INBOX_LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            login_user(user, remember=bool(form.remember.data))
            user.last_seen_at = utcnow()
            record_audit("user.login", user, actor=user)
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password.", "error")
        return render_template("auth/login.html", form=form), 401
    if request.method == "POST":
        # An empty field: say which, rather than the same page again.
        flash(_form_problem(form), "error")
        return render_template("auth/login.html", form=form), 400
    return render_template("auth/login.html", form=form)


def _form_problem(form: LoginForm) -> str:
    missing = [field.label.text.lower() for field in (form.email, form.password) if not field.data]
    return f"Enter your {' and '.join(missing)}." if missing else "Wrong email or password."


@bp.route("/logout", methods=["POST"])
def logout():
    if PostForm().validate_on_submit():
        if current_user.is_authenticated:
            # Signed out is not there: no more auto-assigned work, and what they hold by
            # auto-assignment goes back to the queue now, not when the idle sweep notices.
            me = current_user._get_current_object()  # the model itself: the audit reads it
            availability.set_availability(me, Availability.OFFLINE, actor=me, now=utcnow())
            db.session.commit()
        logout_user()
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
