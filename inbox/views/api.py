"""The versioned JSON API under /api/v1, authenticated by bearer tokens only.

Session cookies are ignored here on purpose: a token cannot be sent by a forged cross-site form,
so the API needs no CSRF token, and a stolen page session cannot drive the API.
Imports: services, connectors (the ingest format), models, extensions.db, errors.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from inbox.connectors import ParseError
from inbox.connectors.api import parse_api_message
from inbox.errors import json_error
from inbox.extensions import csrf, db
from inbox.models import Role
from inbox.services.accounts import user_for_token
from inbox.services.ingest import (
    Unhandled,
    apply_inbound_message,
    find_account,
    find_message,
)
from inbox.timeutil import utcnow

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


@bp.before_request
def authenticate_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return json_error(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    user = user_for_token(token.strip())
    if user is None:
        return json_error(401, "unauthorized", "The token is invalid or has been revoked.")
    g.api_user = user
    db.session.commit()  # records last_used_at


@bp.route("/me")
def me():
    user = g.api_user
    return jsonify(
        {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "role": str(user.role),
            "teams": [t.name for t in user.teams],
        }
    )


@bp.post("/messages")
def ingest_message():
    """Ingest one message from a custom channel; idempotent on the caller's message_id."""
    if not g.api_user.has_role(Role.ADMIN):
        return json_error(403, "forbidden", "Ingesting messages needs an admin's token.")
    try:
        message = parse_api_message(request.get_json(silent=True), now=utcnow())
        stored = apply_inbound_message(message)
    except ParseError as exc:
        return json_error(400, "invalid", str(exc))
    except Unhandled as exc:
        return json_error(422, exc.kind, exc.reason)
    duplicate = stored is None
    if duplicate:
        stored = find_message(find_account("api", message.account_id), message.external_id)
    db.session.commit()
    body = {
        "message_id": stored.external_id,
        "id": stored.id,
        "conversation_id": stored.conversation_id,
        "duplicate": duplicate,
    }
    return jsonify(body), 200 if duplicate else 201
