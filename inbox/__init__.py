"""The inbox application: `create_app` is the only place that wires the pieces together.

Importing this package has no side effects: no settings are read, nothing connects, and no
migrations run until `create_app` is called.
Imports: any inbox module (it is the wiring).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.orm import configure_mappers

__all__ = ["create_app"]


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    from inbox import cli, db_pool, queue
    from inbox.config import check_config, engine_options, load_config
    from inbox.errors import register_error_handlers
    from inbox.extensions import csrf, db, limiter, login_manager, migrate
    from inbox.services.listing import sentiment_label
    from inbox.timeutil import format_duration
    from inbox.views import register_blueprints

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    app = Flask(
        __name__,
        template_folder=os.path.join(root, "templates"),
        static_folder=os.path.join(root, "static"),
        instance_path=os.environ.get("INBOX_INSTANCE_PATH", os.path.join(root, "instance")),
    )
    app.config.from_mapping(load_config(os.environ, app.instance_path))
    if overrides:
        app.config.from_mapping(overrides)
    check_config(app.config)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config)

    db.init_app(app)
    with app.app_context():
        db_pool.ping_after_idle(db.engine, app.config["INBOX_DB_PING_AFTER_IDLE"])
    migrate.init_app(app, db, directory=os.path.join(root, "migrations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_ENABLED", True)
    limiter.init_app(app)
    queue.init_app(app)

    register_blueprints(app)
    register_error_handlers(app)
    cli.register(app)
    app.jinja_env.filters["duration"] = format_duration
    app.jinja_env.filters["sentiment"] = sentiment_label

    @app.after_request
    def security_headers(response):
        # Social content is hostile: no inline script may run even if escaping ever failed.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: https:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    if app.config["INBOX_GC_FREEZE"] and not app.testing:
        # With the mappers configured first (else the first query builds them, unfrozen).
        configure_mappers()
        gc.freeze()
    return app
