"""GET /healthz: database, Redis and worker heartbeat as JSON; 200 only when all are up.

Imports: extensions.db, queue, services.heartbeat.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from inbox.extensions import db
from inbox.queue import get_redis
from inbox.services.heartbeat import last_heartbeat
from inbox.timeutil import utcnow

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    checks: dict[str, dict[str, object]] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "down"; report its class, not secrets
        db.session.rollback()
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    redis_ok = False
    try:
        get_redis().ping()
        redis_ok = True
        checks["redis"] = {"ok": True}
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    if redis_ok:
        beat = last_heartbeat(get_redis())
        max_age = 3 * current_app.config["INBOX_HEARTBEAT_SECONDS"]
        age = None if beat is None else (utcnow() - beat).total_seconds()
        checks["worker"] = {
            "ok": age is not None and age <= max_age,
            "last_heartbeat": beat.isoformat() if beat else None,
            "age_seconds": None if age is None else round(age, 1),
        }
    else:
        checks["worker"] = {"ok": False, "error": "redis unavailable"}
    ok = all(c["ok"] for c in checks.values())
    return jsonify({"ok": ok, "checks": checks}), 200 if ok else 503
