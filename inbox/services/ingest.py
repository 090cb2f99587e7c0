"""Turning normalised messages into domain rows: contact identities, conversations, messages,
and applying the platform events that change them (edits, deletions, delivery statuses).

Every entry path (webhooks, the ingest API, CSV import, demo data) goes through these functions,
so dedupe, threading and the conversation's denormalised timestamps behave the same everywhere.
Imports: models, extensions.db, live, services.audit, services.sla (every message runs the SLA
clocks), services.routing (every customer message runs the routing rules; imported at the call
to break the cycle through services.conversations), services.channels (token and API address
to fetch what a webhook names only by id), connectors (the event dataclasses, and `fetch` for
those), flask.current_app (settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Row, select, update

from inbox.connectors import DeliveryStatus as ConnectorDeliveryStatus
from inbox.connectors import Event as ConnectorEvent
from inbox.connectors import (
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    PermanentSendError,
    StatusWatermark,
    connector_for_platform,
)
from inbox.encryption import DecryptionError
from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    DeliveryStatus,
    Direction,
    Kind,
    Message,
    Platform,
    Status,
    Team,
    User,
)
from inbox.services import sla
from inbox.services.audit import record_audit
from inbox.services.channels import access_token_for, api_endpoint
from inbox.timeutil import utcnow


@dataclass(frozen=True)
class Profile:
    """What a platform tells us about a customer account."""

    platform: Platform
    external_user_id: str
    handle: str = ""
    display_name: str = ""
    follower_count: int | None = None
    verified: bool = False


def resolve_identity(profile: Profile) -> ContactIdentity:
    """Find the identity for this platform user (creating it and its Contact if new) and
    refresh the profile fields the platform sent."""
    identity = db.session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.platform == profile.platform,
            ContactIdentity.external_user_id == profile.external_user_id,
        )
    )
    if identity is None:
        contact = Contact(display_name=profile.display_name or profile.handle)
        identity = ContactIdentity(
            contact=contact, platform=profile.platform, external_user_id=profile.external_user_id
        )
        db.session.add_all([contact, identity])
    if profile.handle:
        identity.handle = profile.handle
    if profile.display_name:
        identity.display_name = profile.display_name
    if profile.follower_count is not None:
        identity.follower_count = profile.follower_count
    identity.verified = identity.verified or profile.verified
    db.session.flush()
    return identity


def get_or_create_conversation(
    account: ChannelAccount,
    thread_key: str,
    *,
    kind: Kind,
    is_public: bool,
    contact: Contact,
    team: Team | None = None,
) -> tuple[Conversation, bool]:
    conversation = db.session.scalar(
        select(Conversation).where(
            Conversation.channel_account_id == account.id, Conversation.thread_key == thread_key
        )
    )
    if conversation is not None:
        return conversation, False
    conversation = Conversation(
        channel_account=account,
        thread_key=thread_key,
        kind=kind,
        is_public=is_public,
        contact=contact,
        team=team,
        status=Status.NEW,
    )
    db.session.add(conversation)
    db.session.flush()
    return conversation, True


def find_message(account: ChannelAccount, external_id: str) -> Message | None:
    return db.session.scalar(
        select(Message).where(
            Message.channel_account_id == account.id, Message.external_id == external_id
        )
    )


def add_message(
    conversation: Conversation,
    *,
    direction: Direction,
    text: str,
    sent_at: datetime,
    external_id: str | None = None,
    author_identity: ContactIdentity | None = None,
    author_user: User | None = None,
    delivery_status: DeliveryStatus | None = None,
    attachments: list[dict[str, Any]] | None = None,
    reopen: bool = True,
    is_auto_reply: bool = False,
    now: datetime | None = None,
    id_checked: bool = False,
) -> Message | None:
    """Thread a message into `conversation`; return None if that platform id is already stored
    (`id_checked`: the caller has just looked it up, in this transaction).

    Keeps the conversation's first/last timestamps right whatever order messages arrive in,
    and reopens a resolved conversation when the customer writes again (unless `reopen` is off,
    as for historical imports). Then the SLA clocks run (`services.sla`); `now` is when the
    message is processed (defaults to the current time).
    """
    account = conversation.channel_account
    if external_id is not None and not id_checked and find_message(account, external_id):
        return None
    message = Message(
        conversation=conversation,
        channel_account_id=account.id,
        external_id=external_id,
        direction=direction,
        text=text,
        sent_at=sent_at,
        author_identity=author_identity,
        author_user=author_user,
        delivery_status=delivery_status,
        attachments=attachments or [],
        is_auto_reply=is_auto_reply,
    )
    db.session.add(message)
    old_status = conversation.status
    if direction is Direction.INBOUND and reopen and not conversation.is_open:
        conversation.status = Status.OPEN
        conversation.resolved_at = None
    elif (
        direction is Direction.OUTBOUND and not is_auto_reply and conversation.status is Status.NEW
    ):
        conversation.status = Status.OPEN  # someone has answered: no longer untouched
    if conversation.is_public:
        adopt_orphans(message)
    db.session.flush()
    if conversation.status != old_status:
        # Reopened by the customer: the resolution clock resumes when they wrote.
        sla.on_status_change(conversation, old_status, actor=None, now=message.sent_at)
    pending = _batch.get()
    if pending is None:
        _bookkeep(conversation, message, now or utcnow())
    elif direction is not Direction.NOTE or conversation.id not in pending:
        pending[conversation.id] = (conversation, message)
    return message


def _bookkeep(conversation: Conversation, message: Message, now: datetime) -> None:
    """Bring a conversation up to date after `message` (the latest) joined it: denormalised
    times, version + live update, SLA clocks."""
    rows = refresh_conversation_times(conversation)
    # Notes are published by the action that adds them (with who did it); the rest here.
    conversation_changed(conversation, "message", publish=message.direction is not Direction.NOTE)
    sla.on_message(conversation, message, now=now, rows=rows)


# Conversations whose bookkeeping waits for the end of the current batch (see below).
_batch: ContextVar[dict[int, tuple[Conversation, Message]] | None] = ContextVar(
    "inbox_ingest_batch", default=None
)


@contextmanager
def batched_bookkeeping(*, now: datetime) -> Iterator[None]:
    """Within the block, messages are stored at once but each touched conversation's
    bookkeeping (times, version, SLA clocks: the costly part, which reads the whole thread)
    runs once at the end instead of once per message. A webhook delivery batches many
    messages of few conversations. Nothing runs if the block raises (its transaction is
    rolled back anyway)."""
    pending: dict[int, tuple[Conversation, Message]] = {}
    token = _batch.set(pending)
    try:
        yield
    finally:
        _batch.reset(token)
    for conversation, message in pending.values():
        _bookkeep(conversation, message, now)


@dataclass(frozen=True)
class ThreadTimes:
    """A conversation's denormalised counts and timestamps, derived from its messages."""

    message_count: int = 0
    first_inbound_at: datetime | None = None
    last_inbound_at: datetime | None = None
    last_message_at: datetime | None = None
    first_response_at: datetime | None = None

    def apply_to(self, conversation: Conversation) -> None:
        for name in self.__dataclass_fields__:
            setattr(conversation, name, getattr(self, name))


def summarize_messages(rows: Iterable[tuple[Direction, datetime, bool]]) -> ThreadTimes:
    """ThreadTimes of (direction, sent_at, is_auto_reply) rows in any order. Notes don't count;
    the first response is the earliest human reply at or after the customer's first message."""
    rows = [r for r in rows if r[0] != Direction.NOTE]
    inbound = [at for direction, at, _ in rows if direction == Direction.INBOUND]
    first_in = min(inbound, default=None)
    replies = [
        at
        for direction, at, auto in rows
        if direction == Direction.OUTBOUND and not auto and first_in is not None and at >= first_in
    ]
    return ThreadTimes(
        message_count=len(rows),
        first_inbound_at=first_in,
        last_inbound_at=max(inbound, default=None),
        last_message_at=max((at for _, at, _ in rows), default=None),
        first_response_at=min(replies, default=None),
    )


def conversation_changed(
    conversation: Conversation, what: str, *, bump: bool = True, publish: bool = True
) -> None:
    """Something agents see changed: bump the version (so an agent acting on what they saw
    before is asked to re-check) and tell open inboxes after commit."""
    if bump:
        conversation.version = (conversation.version or 0) + 1
    if publish:
        publish_after_commit(
            db.session, "conversation.updated", conversation_id=conversation.id, action=what
        )


def refresh_conversation_times(conversation: Conversation) -> list[Row]:
    """Recompute the conversation's denormalised counts and timestamps from its messages, and
    return the message rows they were computed from (`sla.message_rows`: the SLA clocks run on
    the same rows, so one read serves both).

    Computed from scratch rather than patched incrementally, so the values are right whatever
    order messages arrive in and after threads are merged.
    """
    db.session.flush()
    rows = sla.message_rows([conversation.id])[conversation.id]
    summarize_messages((r.direction, r.sent_at, r.is_auto_reply) for r in rows).apply_to(
        conversation
    )
    return rows


def adopt_orphans(message: Message) -> None:
    """Merge into `message`'s conversation any thread that was waiting for it.

    A public reply whose parent we do not hold yet is threaded under the parent's id; when that
    parent arrives (out of order) and itself belongs to an existing conversation, the waiting
    thread is folded into it so the whole reply chain is one conversation.
    """
    if message.external_id is None:
        return
    conversation = message.conversation
    prefix = "tweet" if conversation.channel_account.platform == Platform.X else "comment"
    orphan = db.session.scalar(
        select(Conversation).where(
            Conversation.channel_account_id == conversation.channel_account_id,
            Conversation.thread_key == f"{prefix}:{message.external_id}",
            Conversation.id != conversation.id,
        )
    )
    if orphan is None:
        return
    db.session.execute(
        update(Message)
        .where(Message.conversation_id == orphan.id)
        .values(conversation_id=conversation.id)
    )
    record_audit(
        "conversation.merge",
        conversation,
        actor=None,
        after={"merged_conversation_id": orphan.id, "reason": "reply chain completed"},
    )
    sla.discard_ledger(orphan)  # the merged thread's clocks are rebuilt from all its messages
    pending = _batch.get()
    if pending is not None:
        pending.pop(orphan.id, None)
    db.session.delete(orphan)
    db.session.expire(conversation, ["messages"])
    refresh_conversation_times(conversation)


# --- Applying normalised platform events -----------------------------------------------------

_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")

# Delivery states only move forward; a late "delivered" must not undo "read". Failed is final.
_DELIVERY_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
}


class Unhandled(Exception):
    """Part of a delivery that cannot become domain rows; recorded as an EventIssue.

    Always raised before the item has written anything, so callers need no savepoint.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def find_account(platform: str, account_id: str | None) -> ChannelAccount:
    account = (
        None
        if account_id is None
        else db.session.scalar(
            select(ChannelAccount).where(
                ChannelAccount.platform == platform,
                ChannelAccount.external_account_id == account_id,
            )
        )
    )
    if account is None or not account.active:
        raise Unhandled(
            "unknown_account",
            f"no active {platform} channel account {account_id!r}: connect it with "
            f"`flask --app inbox add-channel --platform {platform} --account-id {account_id}`",
        )
    return account


def _thread_key(account: ChannelAccount, msg: InboundMessage) -> tuple[str, Conversation | None]:
    """The conversation a message belongs to: an existing one (a reply to a message we have) or
    the key of the thread to find or create.

    DMs: one thread per customer and account. Public posts follow the reply chain: a reply to a
    message we hold joins that message's conversation; a reply to one we don't hold is keyed by
    its parent, so when the parent arrives later (out of order) it lands in the same thread. A
    comment directly on a post starts its own thread (one per commenter, not one per post).
    """
    if msg.platform == "api" and msg.root_external_id:
        return f"thread:{msg.root_external_id}", None  # custom channels name their threads
    if msg.kind == "dm":
        return f"dm:{msg.contact_id}", None
    prefix = "tweet" if msg.platform == "x" else "comment"
    parent = msg.parent_external_id
    if parent is None or parent == msg.root_external_id:
        return f"{prefix}:{msg.external_id}", None
    known = find_message(account, parent)
    if known is not None:
        return "", known.conversation
    return f"{prefix}:{parent}", None


def apply_inbound_message(msg: InboundMessage) -> Message | None:
    """Store a message (ours or the customer's) in its conversation; None if already stored."""
    account = find_account(msg.platform, msg.account_id)
    if find_message(account, msg.external_id) is not None:
        return None  # before any fetch: a redelivery costs no call to the platform
    if msg.needs_fetch:
        msg = _fetched(account, msg)
    contact_id = msg.contact_id
    if contact_id is None:
        raise Unhandled(
            "no_contact", f"{msg.direction} {msg.kind} {msg.external_id} names no customer"
        )
    key, conversation = _thread_key(account, msg)
    identity = None
    if msg.direction == "inbound":
        identity = resolve_identity(
            Profile(
                Platform(msg.platform),
                msg.author_id or contact_id,
                handle=msg.author_handle or "",
                display_name=msg.author_name or "",
                follower_count=msg.author_follower_count,
                verified=bool(msg.author_verified),
            )
        )
    if conversation is None:
        contact = (
            identity or resolve_identity(Profile(Platform(msg.platform), contact_id))
        ).contact
        conversation, _ = get_or_create_conversation(
            account, key, kind=Kind(msg.kind), is_public=msg.is_public, contact=contact
        )
    if msg.direction == "outbound" and match_echo(conversation, msg) is not None:
        return None  # the echo of a reply sent from the inbox: that reply is the message
    message = add_message(
        conversation,
        direction=Direction(msg.direction),
        text=msg.text,
        sent_at=msg.sent_at,
        external_id=msg.external_id,
        author_identity=identity,
        attachments=[
            {"type": a.type, "url": a.url, "media_id": a.media_id, "caption": a.caption}
            for a in msg.attachments
        ],
        id_checked=True,  # above; the echo match only ever stores its id on an older reply
    )
    if message is not None and message.direction is Direction.INBOUND:
        # Imported here: routing acts through services.conversations, which imports this
        # module for add_message.
        from inbox.services import classify, routing

        now = utcnow()
        classify.classify_inbound(message, now=now)
        routing.on_inbound(message, now=now)
    return message


def _fetched(account: ChannelAccount, msg: InboundMessage) -> InboundMessage:
    """`msg` completed from the platform's API (an Instagram mention names only its comment).

    A refusal (no token, comments disabled, token expired …) is an issue an admin sees and can
    replay once it is fixed; a temporary failure raises so the event's job is retried.
    """
    what = f"{msg.platform} {msg.kind} {msg.external_id}"
    try:
        token = access_token_for(account)
    except DecryptionError as exc:
        raise Unhandled("needs_fetch", f"{what}: the account's access token: {exc}") from exc
    if token is None:
        raise Unhandled(
            "needs_fetch",
            f"{what} carries only ids; store the account's access token (flask add-channel "
            "--access-token) so its text and author can be fetched, then replay this event",
        )
    try:
        return connector_for_platform(msg.platform).fetch(
            msg, api_endpoint(current_app.config, account.platform), access_token=token
        )
    except PermanentSendError as exc:
        raise Unhandled(
            "fetch_failed", f"{what}: the platform refused to give it: {exc.message} ({exc.code})"
        ) from exc


def match_echo(conversation: Conversation, echo: InboundMessage) -> Message | None:
    """The reply of ours that the platform's webhook `echo` reports, or None.

    For ingestion: call it with an outbound event (an echo) once its conversation is known and
    skip storing the event when it returns a message. A reply already stored under the echo's
    id is returned as is; otherwise the oldest queued or sent inbox reply of this conversation
    without a platform id and with the same text claims the echo's id.
    """
    if echo.direction != "outbound":
        return None
    account = conversation.channel_account
    existing = find_message(account, echo.external_id)
    if existing is not None:
        return existing
    wanted = _comparable(echo.text)
    candidates = db.session.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == Direction.OUTBOUND,
            Message.author_user_id.is_not(None) | Message.is_auto_reply.is_(True),
            Message.external_id.is_(None),
            Message.delivery_status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENT]),
        )
        .order_by(Message.sent_at, Message.id)
        .with_for_update()
    )
    for message in candidates:
        if _comparable(message.text) == wanted:
            message.external_id = echo.external_id
            db.session.flush()
            return message
    # The send job stored the id while we waited for its row lock.
    return find_message(account, echo.external_id)


def _comparable(text: str) -> str:
    """Text as both sides of an echo can be compared: X's leading @handles dropped, and
    whitespace runs collapsed (platforms normalise line breaks)."""
    return " ".join(_LEADING_MENTIONS.sub("", text.strip()).split())


def _stored_message(platform: str, account_id: str, external_id: str, what: str) -> Message:
    message = find_message(find_account(platform, account_id), external_id)
    if message is None:
        raise Unhandled(
            "unknown_message", f"{what} for message {external_id}, which we do not hold"
        )
    return message


def apply_edit(edit: MessageEdit) -> None:
    message = _stored_message(edit.platform, edit.account_id, edit.external_id, "edit")
    if message.edited_at is not None and edit.at <= message.edited_at:
        return  # an older edit delivered late: the newer text stays
    message.history = [*message.history, {"text": message.text, "replaced_at": edit.at.isoformat()}]
    message.text = edit.text
    message.edited_at = edit.at
    conversation_changed(message.conversation, "edit")


def apply_deletion(deletion: MessageDeletion) -> None:
    message = _stored_message(
        deletion.platform, deletion.account_id, deletion.external_id, "deletion"
    )
    # The text stays (history for agents and audits); the UI shows the message as deleted.
    if message.deleted_at is None:
        message.deleted_at = deletion.at
        conversation_changed(message.conversation, "deletion")


def apply_delivery_status(status: ConnectorDeliveryStatus) -> None:
    message = _stored_message(status.platform, status.account_id, status.external_id, "status")
    _advance_delivery(message, DeliveryStatus(status.status), status.error_message)


def apply_watermark(mark: StatusWatermark) -> None:
    account = find_account(mark.platform, mark.account_id)
    outbound = db.session.scalars(
        select(Message)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(
            Conversation.channel_account_id == account.id,
            Conversation.thread_key == f"dm:{mark.contact_id}",
            Message.direction == Direction.OUTBOUND,
            Message.sent_at <= mark.up_to,
        )
    )
    for message in outbound:
        _advance_delivery(message, DeliveryStatus(mark.status), None)


def _advance_delivery(message: Message, new: DeliveryStatus, error: str | None) -> None:
    current = message.delivery_status
    if current is DeliveryStatus.FAILED:
        return
    if new is DeliveryStatus.FAILED:
        message.delivery_status = new
        message.delivery_error = error
    elif current is None or _DELIVERY_RANK[new] > _DELIVERY_RANK[current]:
        message.delivery_status = new
    else:
        return
    # Shown live (the tick changes) but not a reason to re-check an action: no version bump.
    conversation_changed(message.conversation, "delivery", bump=False)


def apply_event(event: ConnectorEvent) -> None:
    """Apply one parsed platform event. Raises Unhandled for what cannot be applied."""
    if isinstance(event, InboundMessage):
        apply_inbound_message(event)
    elif isinstance(event, MessageEdit):
        apply_edit(event)
    elif isinstance(event, MessageDeletion):
        apply_deletion(event)
    elif isinstance(event, ConnectorDeliveryStatus):
        apply_delivery_status(event)
    elif isinstance(event, StatusWatermark):
        apply_watermark(event)
    else:
        raise Unhandled(event.event_type, event.reason)
