"""Handing conversations to an external helpdesk or CRM through a signed webhook.

A team may have a `HelpdeskEndpoint` (URL and signing secret, Fernet-encrypted like channel
tokens; `configure_endpoint`). When a conversation is routed to such a team (an agent's
route-to-support or a routing rule's "set team"), `open_case` stores a `HelpdeskDelivery` with
the case frozen as JSON and enqueues `jobs.deliver_helpdesk_case` on the `outbound` queue after
the commit, with an RQ Retry (INBOX_HELPDESK_RETRY_INTERVALS). The job calls
`attempt_delivery`: one signed POST, logged as a `HelpdeskAttempt`; 2xx delivers, a network
error, 429 or 5xx is retried (failed after the last retry), any other status fails at once.
`replay` sends a delivered or failed case again; `requeue_stale` (periodic) re-enqueues a
pending one whose job was lost. The status the helpdesk reports back is
services.helpdesk_status's business.
Imports: models, extensions.db, encryption, webhook_client, connectors.base (the signature),
queue, live, services.audit, errors, flask.current_app (settings, URL map).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from inbox import webhook_client
from inbox.connectors.base import sha256_signature
from inbox.encryption import DecryptionError, decrypt, encrypt
from inbox.errors import InboxError
from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import (
    Conversation,
    Direction,
    HelpdeskAttempt,
    HelpdeskCase,
    HelpdeskDelivery,
    HelpdeskDeliveryState,
    HelpdeskEndpoint,
    Message,
    Team,
    User,
)
from inbox.queue import enqueue_after_commit, retry_policy
from inbox.services.audit import record_audit

log = logging.getLogger(__name__)

DELIVER_JOB = "inbox.jobs.deliver_helpdesk_case"
CASE_EVENT = "case.created"
# The customer's latest messages give the helpdesk the context without the whole thread.
LAST_CUSTOMER_MESSAGES = 5
MIN_SECRET_LENGTH = 16
IN_FLIGHT = (HelpdeskDeliveryState.PENDING, HelpdeskDeliveryState.RETRYING)


# --- Team settings ----------------------------------------------------------------------------


def endpoint_for(team: Team) -> HelpdeskEndpoint | None:
    return db.session.get(HelpdeskEndpoint, team.id)


def unstaffed_team_ids() -> set[int]:
    """Teams a conversation routed to would reach no one in: no active members and no
    helpdesk endpoint (the route form says so beside their names)."""
    return set(
        db.session.scalars(
            select(Team.id).where(
                ~Team.members.any(User.active.is_(True)),
                ~select(HelpdeskEndpoint.team_id)
                .where(HelpdeskEndpoint.team_id == Team.id)
                .exists(),
            )
        )
    )


def configure_endpoint(
    team: Team, *, url: str, secret: str, actor: User, now: datetime
) -> HelpdeskEndpoint | None:
    """Set `team`'s helpdesk webhook. An empty `url` removes it; an empty `secret` keeps the
    stored one (the form never shows it back). The audit entry says whether the secret changed,
    never what it is."""
    endpoint = endpoint_for(team)
    url, secret = url.strip(), secret.strip()
    before = None if endpoint is None else {"url": endpoint.url}
    if not url:
        if endpoint is not None:
            db.session.delete(endpoint)
            record_audit("team.helpdesk", team, actor=actor, before=before, after=None, now=now)
        return None
    try:
        url = webhook_client.check_url(url)
    except ValueError:
        raise InboxError("The helpdesk webhook URL must start with https:// or http://.") from None
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise InboxError(f"Use a signing secret of at least {MIN_SECRET_LENGTH} characters.")
    if endpoint is None:
        if not secret:
            raise InboxError("Enter a signing secret: the helpdesk checks every case with it.")
        endpoint = HelpdeskEndpoint(team_id=team.id, url=url, secret_encrypted=b"")
        db.session.add(endpoint)
    endpoint.url = url
    if secret:
        endpoint.secret_encrypted = encrypt(current_app.config, secret)
    endpoint.updated_at = now
    after = {"url": url, "secret_changed": bool(secret)}
    record_audit("team.helpdesk", team, actor=actor, before=before, after=after, now=now)
    return endpoint


# --- Opening a case ---------------------------------------------------------------------------


def open_case(
    conversation: Conversation, team: Team, *, note: str, actor: User | None, now: datetime
) -> HelpdeskDelivery | None:
    """If `team` hands off to a helpdesk, store the case for `conversation` and send it after
    the commit; None when the team has no helpdesk webhook."""
    if endpoint_for(team) is None:
        return None
    delivery = HelpdeskDelivery(
        conversation=conversation, team=team, event=CASE_EVENT, payload={}, created_at=now
    )
    db.session.add(delivery)
    db.session.flush()  # the payload carries the delivery's id, for the receiver's dedup
    delivery.payload = case_payload(conversation, team, delivery, note=note, actor=actor, now=now)
    record_audit(
        "conversation.helpdesk_case",
        conversation,
        actor=actor,
        after={"delivery_id": delivery.id, "team_id": team.id},
        now=now,
    )
    _enqueue(delivery, now=now)
    return delivery


def case_payload(
    conversation: Conversation,
    team: Team,
    delivery: HelpdeskDelivery,
    *,
    note: str,
    actor: User | None,
    now: datetime,
) -> dict[str, Any]:
    contact = conversation.contact
    latest = db.session.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == Direction.INBOUND,
            Message.deleted_at.is_(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(LAST_CUSTOMER_MESSAGES)
    ).all()
    return {
        "event": CASE_EVENT,
        "delivery_id": delivery.id,
        "created_at": now.isoformat(),
        "conversation": {
            "id": conversation.id,
            "url": conversation_link(conversation.id),
            "platform": str(conversation.platform),
            "kind": str(conversation.kind),
            "is_public": conversation.is_public,
            "channel_account": conversation.channel_account.name,
            "priority": str(conversation.priority),
            "sla_due_at": _iso(conversation.sla_due_at),
            "sla_state": str(conversation.sla_state),
        },
        "team": {"id": team.id, "name": team.name},
        "routed_by": None if actor is None else {"id": actor.id, "name": actor.name},
        "handoff_note": note,
        "contact": {
            "name": contact.display_name,
            "is_vip": contact.is_vip,
            "handles": [
                {
                    "platform": str(i.platform),
                    "handle": i.handle,
                    "display_name": i.display_name,
                    "external_user_id": i.external_user_id,
                }
                for i in contact.identities
            ],
        },
        # Oldest first, as the thread reads.
        "last_customer_messages": [
            {"id": m.id, "text": m.text, "sent_at": _iso(m.sent_at)} for m in reversed(latest)
        ],
    }


def conversation_link(conversation_id: int) -> str:
    """The conversation's page under INBOX_PUBLIC_URL; built from the URL map, as jobs (rules
    route in the worker) have no request to take a host from."""
    path = current_app.url_map.bind("localhost").build(
        "inbox.conversation", {"conversation_id": conversation_id}
    )
    return current_app.config["INBOX_PUBLIC_URL"] + path


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _enqueue(delivery: HelpdeskDelivery, *, now: datetime) -> None:
    delivery.queued_at = now
    retry = retry_policy(current_app.config["INBOX_HELPDESK_RETRY_INTERVALS"])
    enqueue_after_commit(db.session, DELIVER_JOB, delivery.id, queue="outbound", retry=retry)


# --- Sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    """What one run of the job did; `retry` asks it to fail so RQ tries again later."""

    result: Literal["delivered", "failed", "retry", "skipped"]
    reason: str = ""


def signed_body(payload: dict[str, Any], secret: str) -> tuple[bytes, str]:
    """The exact bytes sent and their `sha256=<hex HMAC-SHA256(secret, bytes)>` signature.
    Keys sorted and no spaces, so a replay sends byte-for-byte the same case."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return body, sha256_signature(secret, body, "hex")


def attempt_delivery(
    delivery_id: int, *, config: Mapping[str, Any], final_attempt: bool, now: datetime
) -> AttemptOutcome:
    """POST delivery `delivery_id` once and log the attempt; the job commits.

    Safe to run twice: only a pending or retrying delivery is sent, under its row lock
    (PostgreSQL), so a duplicate job waits and then finds it delivered."""
    delivery = db.session.get(HelpdeskDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.state not in IN_FLIGHT:
        return AttemptOutcome("skipped")
    endpoint = db.session.get(HelpdeskEndpoint, delivery.team_id or 0)
    if endpoint is None:
        return _finish(delivery, HelpdeskDeliveryState.FAILED, "The team has no helpdesk webhook.")
    try:
        secret = decrypt(config, endpoint.secret_encrypted)
    except DecryptionError:
        return _finish(
            delivery,
            HelpdeskDeliveryState.FAILED,
            "The signing secret cannot be decrypted with the configured keys; enter it again.",
        )
    body, signature = signed_body(delivery.payload, secret)
    headers = {
        "Content-Type": "application/json",
        "X-Inbox-Event": delivery.event,
        "X-Inbox-Delivery": str(delivery.id),
        "X-Inbox-Timestamp": str(int(now.timestamp())),
        "X-Inbox-Signature": signature,
    }
    attempt = HelpdeskAttempt(delivery=delivery, attempted_at=now, url=endpoint.url)
    db.session.add(attempt)
    try:
        answer = webhook_client.post(
            endpoint.url, body, headers=headers, timeout=config["INBOX_HELPDESK_TIMEOUT_SECONDS"]
        )
    except webhook_client.Unreachable as exc:
        attempt.error = str(exc)
        return _transient(delivery, str(exc), final_attempt)
    attempt.http_status, attempt.response_body = answer.status, answer.body
    log.info("helpdesk delivery %s answered HTTP %s", delivery.id, answer.status)
    if answer.ok:
        delivery.delivered_at = now
        return _finish(delivery, HelpdeskDeliveryState.DELIVERED, None)
    reason = f"The helpdesk answered HTTP {answer.status}."
    attempt.error = reason
    if answer.transient:
        return _transient(delivery, reason, final_attempt)
    return _finish(delivery, HelpdeskDeliveryState.FAILED, reason)


def _transient(delivery: HelpdeskDelivery, reason: str, final_attempt: bool) -> AttemptOutcome:
    if final_attempt:
        return _finish(
            delivery, HelpdeskDeliveryState.FAILED, f"Gave up after repeated errors: {reason}"
        )
    _set_state(delivery, HelpdeskDeliveryState.RETRYING, f"Retrying: {reason}")
    return AttemptOutcome("retry", reason)


def _finish(
    delivery: HelpdeskDelivery, state: HelpdeskDeliveryState, reason: str | None
) -> AttemptOutcome:
    if state is HelpdeskDeliveryState.FAILED:
        log.warning("helpdesk delivery %s failed: %s", delivery.id, reason)
    _set_state(delivery, state, reason)
    delivered = state is HelpdeskDeliveryState.DELIVERED
    return AttemptOutcome("delivered" if delivered else "failed", reason or "")


def _set_state(delivery: HelpdeskDelivery, state: HelpdeskDeliveryState, error: str | None) -> None:
    delivery.state = state
    delivery.last_error = error
    # The conversation page shows the case's state: let open panes reload.
    publish_after_commit(
        db.session,
        "conversation.updated",
        conversation_id=delivery.conversation_id,
        action="helpdesk",
        actor_id=None,
    )


def replay(delivery: HelpdeskDelivery, *, actor: User, now: datetime) -> None:
    """Send the same case again (an admin's "Replay"); its attempts so far stay in the log."""
    if delivery.state in IN_FLIGHT:
        raise InboxError(f"Delivery #{delivery.id} is already queued to be sent.")
    before = {"state": str(delivery.state)}
    delivery.state = HelpdeskDeliveryState.PENDING
    delivery.last_error = None
    record_audit(
        "helpdesk.replay", delivery, actor=actor, before=before, after={"state": "pending"}, now=now
    )
    _enqueue(delivery, now=now)


def requeue_stale(*, now: datetime, older_than: timedelta, limit: int = 500) -> int:
    """Enqueue again the pending deliveries no job picked up within `older_than` (Redis was
    down at the commit, a worker died); a duplicate job finds the delivery sent and skips."""
    stale = db.session.scalars(
        select(HelpdeskDelivery)
        .where(
            HelpdeskDelivery.state == HelpdeskDeliveryState.PENDING,
            HelpdeskDelivery.queued_at < now - older_than,
        )
        .order_by(HelpdeskDelivery.id)
        .limit(limit)
    ).all()
    for delivery in stale:
        _enqueue(delivery, now=now)
    return len(stale)


# --- Reading ----------------------------------------------------------------------------------


def latest_delivery(conversation: Conversation) -> HelpdeskDelivery | None:
    return db.session.scalar(
        select(HelpdeskDelivery)
        .where(HelpdeskDelivery.conversation_id == conversation.id)
        .order_by(HelpdeskDelivery.id.desc())
        .limit(1)
    )


def case_for(conversation: Conversation) -> HelpdeskCase | None:
    return db.session.get(HelpdeskCase, conversation.id)


def recent_deliveries(limit: int = 100) -> list[HelpdeskDelivery]:
    return list(
        db.session.scalars(
            select(HelpdeskDelivery)
            .options(selectinload(HelpdeskDelivery.attempts), selectinload(HelpdeskDelivery.team))
            .order_by(HelpdeskDelivery.id.desc())
            .limit(limit)
        )
    )
