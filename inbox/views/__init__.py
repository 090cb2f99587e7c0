"""Blueprint registration: the only place that knows every blueprint.

Imports: views.*, extensions (the limiter).
"""

from __future__ import annotations

from flask import Flask, request

from inbox.extensions import limiter

# Called by machines and authenticated by a bearer token or a platform's signature, never by
# the session cookie: their requests load no session user (views.inbox.note_activity) and skip
# the rate limiter's per-request lookup of route limits (≈ 280 Python calls), since limits
# are opt-in per route and none of theirs has one. A limit on such a route needs this changed.
MACHINE_BLUEPRINTS = frozenset({"api", "webhooks"})


@limiter.request_filter
def _machine_request() -> bool:
    return request.blueprint in MACHINE_BLUEPRINTS


def register_blueprints(app: Flask) -> None:
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
