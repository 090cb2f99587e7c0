"""Platform webhook endpoints: /webhooks/x, /webhooks/meta, /webhooks/whatsapp.

GET answers the platform's verification handshake. POST checks the signature over the raw
body, stores the delivery as an InboundEvent, and answers 200 — the real work happens in a
worker. No login and no CSRF token here: the HMAC signature is the authentication.
Imports: config (which secrets), connectors, services.events, extensions (CSRF exemption).
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from inbox.config import WEBHOOK_SECRETS
from inbox.connectors import get_connector
from inbox.errors import json_error
from inbox.extensions import csrf
from inbox.services.events import record_inbound_event, record_malformed_event
from inbox.timeutil import utcnow

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)
log = logging.getLogger(__name__)


def _connector(name: str):
    if name not in WEBHOOK_SECRETS:
        abort(404)
    return get_connector(name)


@bp.get("/<name>")
def handshake(name: str):
    connector = _connector(name)
    reply = connector.handshake(request.args, current_app.config[WEBHOOK_SECRETS[name].handshake])
    if reply is None:
        return json_error(403, "forbidden", "Verification failed.")
    return Response(reply.body, content_type=reply.content_type)


@bp.post("/<name>")
def receive(name: str):
    connector = _connector(name)
    setting = WEBHOOK_SECRETS[name].signing
    secret = current_app.config[setting]
    if not secret:
        log.error("webhook %s received but %s is not configured", name, setting)
        return json_error(503, "not_configured", "This webhook is not configured yet.")
    body = request.get_data(cache=False)  # raw bytes: the signature covers exactly these
    if not connector.verify_signature(body, request.headers, secret):
        # Nothing is stored for an unauthenticated request.
        return json_error(403, "bad_signature", "Missing or invalid signature.")
    now = utcnow()
    try:
        json.loads(body)
    except ValueError as exc:
        error = f"malformed JSON: {exc}"
        _store(lambda: record_malformed_event(name, body, request.headers, error, now=now))
        return json_error(400, "malformed_json", "The body is not valid JSON.")
    _store(lambda: record_inbound_event(name, body, request.headers, now=now))
    return Response("ok", content_type="text/plain")


def _store(record) -> None:
    """Write the event (committed by `record`); a database failure becomes 503 so the platform
    retries."""
    try:
        record()
    except SQLAlchemyError:
        log.exception("could not store a webhook delivery; answering 503 so it is retried")
        abort(503, description="Storage is unavailable; please retry.")
