"""The versioned JSON API under /api/v1, authenticated by bearer tokens only.

Session cookies are ignored here on purpose: a token cannot be sent by a forged cross-site form,
so the API needs no CSRF token, and a stolen page session cannot drive the API.
Imports: services, connectors (the ingest format), models, permissions, extensions.db, errors,
timeutil.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from inbox.connectors import ParseError
from inbox.connectors.api import parse_api_message
from inbox.errors import InboxError, NotFound, json_error
from inbox.extensions import csrf, db
from inbox.models import Conversation, Message, Role
from inbox.permissions import can_act_on
from inbox.services.accounts import user_for_token
from inbox.services.ingest import (
    Unhandled,
    apply_inbound_message,
    find_account,
    find_message,
)
from inbox.services.replies import create_reply
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


# --- Replies (outbound branch) -----------------------------------------------------------------
# POST /conversations/<id>/replies. Kept in one block so it merges cleanly with the conversation
# endpoints added in parallel; `can_act_on` may give way to their `get_conversation_for`.


def _message_json(message: Message) -> dict:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "external_id": message.external_id,
        "direction": str(message.direction),
        "text": message.text,
        "sent_at": message.sent_at.isoformat(),
        "author": None
        if message.author_user is None
        else {"id": message.author_user.id, "name": message.author_user.name},
        "status": None if message.delivery_status is None else str(message.delivery_status),
        "error": message.delivery_error,
    }


@bp.route("/conversations/<int:conversation_id>/replies", methods=["POST"])
def create_conversation_reply(conversation_id: int):
    user = g.api_user
    conversation = db.session.get(Conversation, conversation_id)
    # Same answer for "missing" and "not yours": ids of other teams' conversations stay private.
    if conversation is None or not can_act_on(user, conversation):
        raise NotFound("No such conversation.")
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise InboxError('Send a JSON object with a "text" string.', code="bad_request")
    is_public = payload.get("is_public")
    if is_public is not None and not isinstance(is_public, bool):
        raise InboxError('"is_public" must be true or false.', code="bad_request")
    message = create_reply(
        conversation, text=payload["text"], is_public=is_public, actor=user, now=utcnow()
    )
    db.session.commit()
    return jsonify(_message_json(message)), 201
