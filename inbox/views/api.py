"""The versioned JSON API under /api/v1, authenticated by bearer tokens only.

Session cookies are ignored here on purpose: a token cannot be sent by a forged cross-site form,
so the API needs no CSRF token, and a stolen page session cannot drive the API.
Imports: services.accounts, models, extensions.db, errors.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from inbox.errors import json_error
from inbox.extensions import csrf, db
from inbox.services.accounts import user_for_token

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
