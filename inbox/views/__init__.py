"""Blueprint registration: the only place that knows every blueprint.

Imports: views.*.
"""

from __future__ import annotations

from flask import Flask


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
