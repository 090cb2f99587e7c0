"""Replies from the inbox to the platforms: validate, store as queued, send from a job, retry.

`create_reply` stores an outbound message (through `ingest.add_message`, so the conversation's
timestamps and first-response time move like for any message) and enqueues
`inbox.jobs.send_outbound_message` after the commit. That job calls `deliver_reply`, which sends
through the platform's connector and marks the message `sent` (with the platform's id, the same
id the platform's webhook echo of it carries) or `failed` (with the platform's own message).
`retry_reply` queues a failed reply again.

Echo race: a platform may deliver the webhook echo of a reply before the send job has stored
the reply's id. On PostgreSQL the job holds the reply's row lock from before the call until its
commit, and `match_echo` (which ingestion calls for outbound events) locks candidate rows too,
so it waits and then finds the id stored. Where that is not enough (SQLite; a job that sent and
then crashed before its commit), `match_echo` claims the queued or sent reply of the same
conversation with the same text and no id yet, and the job then marks it sent without sending
it again.
Imports: models, extensions.db, connectors, encryption, queue, live, services.ingest,
services.channels, services.audit, errors, flask.current_app (settings).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flask import current_app
from sqlalchemy import select

from inbox.connectors import (
    OutboundReply,
    PermanentSendError,
    ReplyMode,
    TransientSendError,
    connector_for_platform,
    reply_modes,
)
from inbox.encryption import DecryptionError
from inbox.errors import InboxError
from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import (
    ChannelAccount,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
    Platform,
    User,
)
from inbox.queue import enqueue_after_commit, retry_policy
from inbox.services.audit import record_audit
from inbox.services.channels import access_token_for, api_endpoint
from inbox.services.ingest import add_message, find_message

log = logging.getLogger(__name__)

SEND_JOB = "inbox.jobs.send_outbound_message"

PLATFORM_NAMES = {
    Platform.X: "X",
    Platform.MESSENGER: "Messenger",
    Platform.INSTAGRAM: "Instagram",
    Platform.FACEBOOK: "Facebook",
    Platform.WHATSAPP: "WhatsApp",
    Platform.API: "the custom channel",
}

_UNIT_NAMES = {"chars": "characters", "utf8_bytes": "bytes", "x_weighted": "characters"}

# Leading @mentions: X prefixes a reply tweet's text with the handles it answers.


class ReplyInvalid(InboxError):
    """The reply cannot be sent as written (empty, too long, a visibility the platform lacks)."""

    status = 400
    code = "reply_invalid"


class ReplyConflict(InboxError):
    """The reply is fine but the conversation or message is in a state that prevents it."""

    status = 409
    code = "reply_conflict"


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one send attempt did; `retry` asks the job to try again (after `retry_after`)."""

    result: Literal["sent", "failed", "retry", "skipped"]
    retry_after: float | None = None
    reason: str = ""


def reply_modes_for(conversation: Conversation) -> tuple[ReplyMode, ...]:
    """The ways this conversation can be answered, the usual one first (for the composer)."""
    modes = reply_modes(str(conversation.platform), str(conversation.kind))
    return tuple(sorted(modes, key=lambda m: m.is_public != conversation.is_public))


def reply_mode_for(conversation: Conversation, is_public: bool | None = None) -> ReplyMode:
    """The way `conversation` is answered: `is_public` picks one, None takes the usual one."""
    platform = conversation.platform
    modes = reply_modes(str(platform), str(conversation.kind))
    name = PLATFORM_NAMES.get(platform, str(platform))
    if not modes:
        raise ReplyInvalid(
            f"{name} {conversation.kind} conversations cannot be answered from the inbox."
        )
    if is_public is None:
        # The conversation's own visibility when the platform offers it, else the only way.
        return next((m for m in modes if m.is_public == conversation.is_public), modes[0])
    for mode in modes:
        if mode.is_public == is_public:
            return mode
    only = "publicly" if modes[0].is_public else "privately"
    raise ReplyInvalid(f"{name} {conversation.kind} conversations can only be answered {only}.")


def create_reply(
    conversation: Conversation,
    *,
    text: str,
    is_public: bool | None = None,
    actor: User,
    now: datetime,
) -> Message:
    """Store `text` as an outbound reply by `actor` (queued) and send it after the commit.

    Raises ReplyInvalid (400) for empty or too long text or an impossible visibility, and
    ReplyConflict (409) when the channel cannot send (disconnected, no token, no one to answer).
    """
    return _queue_reply(conversation, text, is_public, author=actor, now=now)


def create_auto_reply(conversation: Conversation, *, text: str, now: datetime) -> Message:
    """Queue an automatic reply (a routing rule's away message): no author, marked
    `is_auto_reply`, so it never counts as a human response (first response, SLA clocks).
    Same validation and errors as `create_reply`."""
    return _queue_reply(conversation, text, None, author=None, now=now, auto=True)


def _queue_reply(
    conversation: Conversation,
    text: str,
    is_public: bool | None,
    *,
    author: User | None,
    now: datetime,
    auto: bool = False,
) -> Message:
    text = (text or "").strip()
    if not text:
        raise ReplyInvalid("The reply is empty.")
    mode = reply_mode_for(conversation, is_public)
    length = mode.length(text)
    if length > mode.max_length:
        unit = _UNIT_NAMES[mode.unit]
        raise ReplyInvalid(
            f"A {PLATFORM_NAMES[conversation.platform]} {mode.label.lower()} is limited to "
            f"{mode.max_length} {unit}; this reply has {length}."
        )
    _check_can_send(conversation, mode)
    message = add_message(
        conversation,
        direction=Direction.OUTBOUND,
        text=text,
        sent_at=now,
        reopen=False,
        author_user=author,
        delivery_status=DeliveryStatus.QUEUED,
        is_auto_reply=auto,
        now=now,
    )
    assert message is not None  # only a platform id can be a duplicate, and there is none yet
    record_audit(
        "message.auto_reply" if auto else "message.reply",
        message,
        actor=author,
        after={
            "conversation_id": conversation.id,
            "is_public": mode.is_public,
            "length": length,
        },
        now=now,
    )
    publish_after_commit(
        db.session, "message.created", conversation_id=conversation.id, message_id=message.id
    )
    _enqueue_send(message)
    return message


def retry_reply(message: Message, *, actor: User, now: datetime) -> Message:
    """Queue a failed reply again (the agent pressed "retry")."""
    if message.direction is not Direction.OUTBOUND or message.author_user_id is None:
        raise ReplyConflict("Only replies written in the inbox can be retried.")
    if message.delivery_status is not DeliveryStatus.FAILED:
        raise ReplyConflict(
            f"Only a failed reply can be retried; this one is {message.delivery_status}."
        )
    conversation = message.conversation
    _check_can_send(conversation, reply_mode_for(conversation, None))
    before = {"delivery_status": str(message.delivery_status), "error": message.delivery_error}
    message.delivery_status = DeliveryStatus.QUEUED
    message.delivery_error = None
    record_audit(
        "message.retry",
        message,
        actor=actor,
        before=before,
        after={"delivery_status": "queued"},
        now=now,
    )
    publish_after_commit(
        db.session, "message.updated", conversation_id=conversation.id, message_id=message.id
    )
    _enqueue_send(message)
    return message


def deliver_reply(
    message_id: int, *, config: Mapping[str, Any], final_attempt: bool, now: datetime
) -> DeliveryOutcome:
    """Send queued reply `message_id` once; called by the send job, which commits.

    Safe to run twice: a reply that is no longer queued, or that already has its platform id,
    is not sent again. `final_attempt` turns a transient failure into `failed`.
    """
    # The row lock (PostgreSQL) makes a second run of this job, and match_echo, wait for this
    # one's commit instead of sending twice or missing the stored id.
    message = db.session.get(Message, message_id, with_for_update=True)
    if message is None or message.direction is not Direction.OUTBOUND:
        return DeliveryOutcome("skipped", reason="no such outbound message")
    if message.delivery_status is not DeliveryStatus.QUEUED:
        return DeliveryOutcome("skipped", reason=f"already {message.delivery_status}")
    if message.external_id is not None:
        # match_echo saw the platform's echo of it: it was sent (by a run that then crashed).
        _mark(message, DeliveryStatus.SENT, None, now)
        return DeliveryOutcome("sent")
    conversation = message.conversation
    account = conversation.channel_account
    platform_name = PLATFORM_NAMES.get(account.platform, str(account.platform))
    try:
        reply = _outbound_reply(message, conversation, account)
        result = connector_for_platform(str(account.platform)).send(
            reply, api_endpoint(config, account.platform)
        )
    except PermanentSendError as exc:
        reason = f"{platform_name} refused the reply: {exc.message} (code {exc.code})"
        _fail(message, reason, now)
        return DeliveryOutcome("failed", reason=reason)
    except TransientSendError as exc:
        if final_attempt:
            reason = f"Gave up after repeated temporary errors. Last one: {exc.message}"
            _fail(message, reason, now)
            return DeliveryOutcome("failed", reason=reason)
        # Shown to the agent while the job waits for its next attempt.
        message.delivery_error = f"Retrying: {exc.message}"
        return DeliveryOutcome("retry", retry_after=exc.retry_after, reason=exc.message)
    except (DecryptionError, _CannotSend) as exc:
        _fail(message, str(exc), now)
        return DeliveryOutcome("failed", reason=str(exc))
    _store_external_id(message, account, result.external_id)
    _mark(message, DeliveryStatus.SENT, None, now)
    log.info("reply %s sent on %s as %s", message.id, account.platform, result.external_id)
    return DeliveryOutcome("sent")


# --- helpers -----------------------------------------------------------------------------------


class _CannotSend(Exception):
    """The reply cannot be sent for a reason of ours (no token, no one to send to)."""


def account_send_problem(conversation: Conversation) -> str | None:
    """Why no reply can go out from the conversation's channel account (said to the agent in
    the composer before they write, and by the send check), or None."""
    account = conversation.channel_account
    name = PLATFORM_NAMES.get(account.platform, str(account.platform))
    if not account.active:
        return f"Replies are off: the {name} account {account.name} is disconnected."
    if account.access_token_encrypted is None:
        return (
            f"Replies are off: no access token is stored for the {name} account "
            f"{account.name}. Ask an admin to connect it."
        )
    return None


def _check_can_send(conversation: Conversation, mode: ReplyMode) -> None:
    problem = account_send_problem(conversation)
    if problem is not None:
        raise ReplyConflict(problem)
    if mode.is_public and _reply_target(conversation) is None:
        raise ReplyConflict("There is no customer post in this conversation to reply to.")
    if not mode.is_public and _recipient(conversation) is None:
        raise ReplyConflict("This conversation has no customer to message.")


def _latest_inbound(conversation: Conversation) -> Message | None:
    return db.session.scalar(
        select(Message)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == Direction.INBOUND,
            Message.external_id.is_not(None),
            Message.deleted_at.is_(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )


def _reply_target(conversation: Conversation) -> str | None:
    """The platform id a public reply answers: the customer's latest post or comment."""
    latest = _latest_inbound(conversation)
    return None if latest is None else latest.external_id


def _recipient(conversation: Conversation) -> str | None:
    """The customer's platform id for a private message: whoever wrote to us last."""
    latest = _latest_inbound(conversation)
    if latest is not None and latest.author_identity is not None:
        return latest.author_identity.external_user_id
    platform = conversation.platform
    return next(
        (i.external_user_id for i in conversation.contact.identities if i.platform == platform),
        None,
    )


def _outbound_reply(
    message: Message, conversation: Conversation, account: ChannelAccount
) -> OutboundReply:
    if not account.active:
        raise _CannotSend(f"The account {account.name} was disconnected before the reply went out.")
    token = access_token_for(account)
    if token is None:
        raise _CannotSend(f"No access token is stored for the account {account.name}.")
    mode = reply_mode_for(conversation, None)
    return OutboundReply(
        platform=str(account.platform),  # type: ignore[arg-type]
        kind=str(conversation.kind),  # type: ignore[arg-type]
        is_public=mode.is_public,
        account_id=account.external_account_id,
        text=message.text,
        access_token=token,
        recipient_id=None if mode.is_public else _recipient(conversation),
        reply_to_external_id=_reply_target(conversation) if mode.is_public else None,
    )


def _store_external_id(message: Message, account: ChannelAccount, external_id: str) -> None:
    """Record the platform's id; if ingestion already stored the echo as a message of its own
    (it did not call match_echo), that copy is dropped so the reply exists once."""
    duplicate = find_message(account, external_id)
    if duplicate is not None and duplicate.id != message.id:
        if duplicate.author_user_id is None and duplicate.direction is Direction.OUTBOUND:
            duplicate.conversation.message_count -= 1
            db.session.delete(duplicate)
            db.session.flush()
        else:
            log.warning("platform id %s of reply %s is already taken", external_id, message.id)
            return
    message.external_id = external_id


def _mark(message: Message, status: DeliveryStatus, error: str | None, now: datetime) -> None:
    before = str(message.delivery_status)
    message.delivery_status = status
    message.delivery_error = error
    record_audit(
        f"message.{status}",
        message,
        actor=None,
        before={"delivery_status": before},
        after={"delivery_status": str(status), "external_id": message.external_id, "error": error},
        now=now,
    )
    publish_after_commit(
        db.session,
        "message.updated",
        conversation_id=message.conversation_id,
        message_id=message.id,
    )


def _fail(message: Message, reason: str, now: datetime) -> None:
    log.warning("reply %s failed: %s", message.id, reason)
    _mark(message, DeliveryStatus.FAILED, reason, now)


def _enqueue_send(message: Message) -> None:
    enqueue_after_commit(
        db.session,
        SEND_JOB,
        message.id,
        queue="outbound",
        retry=retry_policy(current_app.config["INBOX_SEND_RETRY_INTERVALS"]),
    )
