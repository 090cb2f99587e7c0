"""Blueprint registration: the only place that knows every blueprint.

Imports: views.*, errors (machine paths), extensions (the limiter).
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from inbox.errors import MACHINE_PATHS, is_machine_request
from inbox.extensions import limiter

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


def register_blueprints(app: Flask) -> None:
    app.session_interface = _SessionInterface()
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
