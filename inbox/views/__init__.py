"""Blueprint registration: the only place that knows every blueprint.

Imports: views.*.
"""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from inbox.views import admin, api, auth, health, inbox, reports, webhooks

    for module in (auth, inbox, reports, admin, api, health, webhooks):
        app.register_blueprint(module.bp)
