"""Blueprint registration: the only place that knows every blueprint.

Imports: views.*, errors (machine paths), extensions (the limiter), models (roles).
"""

from __future__ import annotations

from flask import Flask, Request, current_app
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import current_user

from inbox.errors import MACHINE_PATHS, is_machine_request
from inbox.extensions import limiter
from inbox.models import Role

# Machine requests (`errors.MACHINE_PATHS`) skip the rate limiter's per-request lookup of route
# limits (≈ 280 Python calls): limits are opt-in per route and none of theirs has one. A limit
# on such a route needs this filter changed.
limiter.request_filter(is_machine_request)


class _SessionInterface(SecureCookieSessionInterface):
    """The signed cookie session, except for machine requests (`errors.MACHINE_PATHS`), which
    never use it: they get Flask's null session. Opening and saving the cookie session (its
    signing serializer) was ≈ 7 % of a webhook request's CPU."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(MACHINE_PATHS):
            return None  # Flask substitutes its null session
        return super().open_session(app, request)


# Views that take bodies larger than MAX_CONTENT_LENGTH, and the setting that says how large.
LARGE_BODIES = {"admin.imports": "INBOX_MAX_IMPORT_BYTES"}


class _Request(Request):
    """Flask's request, with the body limit of `LARGE_BODIES` for their views when an admin
    (every such view is admin-only) sends it: anyone else keeps MAX_CONTENT_LENGTH. The limit
    must be known before Flask-WTF's CSRF check reads the form, which runs before any view or
    blueprint hook could set `request.max_content_length` (which still wins when set)."""

    @property
    def max_content_length(self) -> int | None:
        setting = LARGE_BODIES.get(self.endpoint or "")
        if (
            self._max_content_length is None
            and setting is not None
            and current_app
            and current_user.is_authenticated
            and current_user.has_role(Role.ADMIN)
        ):
            # The multipart wrapping around the file counts too.
            return current_app.config[setting] + 64 * 1024
        return super().max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value


def register_blueprints(app: Flask) -> None:
    app.session_interface = _SessionInterface()
    app.request_class = _Request
    from inbox.views import (
        admin,
        api,
        auth,
        health,
        inbox,
        reports,
        routing_admin,
        sla,
        sla_admin,
        webhooks,
    )

    for module in (
        auth,
        inbox,
        reports,
        admin,
        sla_admin,
        routing_admin,
        sla,
        api,
        health,
        webhooks,
    ):
        app.register_blueprint(module.bp)
