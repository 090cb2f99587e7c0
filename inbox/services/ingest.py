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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import Row, func, inspect, select, update
from sqlalchemy.orm.attributes import set_committed_value

from inbox.bulk import insert_rows
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
from inbox.services.channels import UNKNOWN_ACCOUNT, access_token_for, api_endpoint
from inbox.timeutil import utcnow

if TYPE_CHECKING:  # classify is imported where it is used (see _store_customer_messages)
    from inbox.services.classify import Labels


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
    _refresh_profile(identity, profile)
    db.session.flush()
    return identity


def _refresh_profile(identity: ContactIdentity | SimpleNamespace, profile: Profile) -> None:
    # What the platform did not send is kept; verified stays once seen.
    if profile.handle:
        identity.handle = profile.handle
    if profile.display_name:
        identity.display_name = profile.display_name
    if profile.follower_count is not None:
        identity.follower_count = profile.follower_count
    identity.verified = bool(identity.verified) or profile.verified


def resolve_identities(profiles: Iterable[Profile]) -> dict[tuple[Platform, str], ContactIdentity]:
    """`resolve_identity` for many profiles at once, as if called in order (a later profile of
    the same user refreshes what an earlier one set): one query for the users we know, one
    INSERT per table and one query for those we don't."""
    profiles = list(profiles)
    wanted = {(p.platform, p.external_user_id) for p in profiles}
    found = _by_pair(ContactIdentity.platform, ContactIdentity.external_user_id, wanted)
    # A new user's row is written once, with every profile of theirs applied.
    new: dict[tuple[Platform, str], tuple[Profile, SimpleNamespace]] = {}
    for profile in profiles:
        key = (profile.platform, profile.external_user_id)
        if key in found:
            _refresh_profile(found[key], profile)
            continue
        if key not in new:
            new[key] = (profile, SimpleNamespace(**_NEW_PROFILE))
        _refresh_profile(new[key][1], profile)
    if new:
        now = utcnow()
        stamps = {"created_at": now, "updated_at": now}
        contact_ids = insert_rows(
            Contact.__table__,
            [
                {"display_name": first.display_name or first.handle, **stamps}
                for first, _ in new.values()
            ],
            return_ids=True,
        )
        identity_ids = insert_rows(
            ContactIdentity.__table__,
            [
                {
                    "contact_id": contact_id,
                    "platform": platform,
                    "external_user_id": uid,
                    **vars(fields),
                    **stamps,
                }
                for ((platform, uid), (_, fields)), contact_id in zip(
                    new.items(), contact_ids, strict=True
                )
            ],
            return_ids=True,
        )
        for identity in db.session.scalars(
            select(ContactIdentity).where(ContactIdentity.id.in_(identity_ids))
        ):
            found[(identity.platform, identity.external_user_id)] = identity
    return found


_NEW_PROFILE = {"handle": "", "display_name": "", "follower_count": None, "verified": False}


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
        _bookkeep([(conversation, message)], now or utcnow())
    elif direction is not Direction.NOTE or conversation.id not in pending:
        pending[conversation.id] = (conversation, message)
    return message


def _bookkeep(touched: Iterable[tuple[Conversation, Message]], now: datetime) -> None:
    """Bring conversations up to date after messages joined them (each with its latest):
    denormalised times, version + live update, SLA clocks. All their messages and the clocks
    not loaded yet are read in two queries, and the clocks opened written in two INSERTs."""
    touched = list(touched)
    preloaded = sla.preload(
        [conversation.id for conversation, _ in touched],
        loaded={
            conversation.id: conversation.sla_clocks
            for conversation, _ in touched
            if "sla_clocks" not in inspect(conversation).unloaded
        },
    )
    for conversation, message in touched:
        _summarize(preloaded.rows[conversation.id]).apply_to(conversation)
        # Notes are published by the action that adds them (with who did it); the rest here.
        conversation_changed(
            conversation, "message", publish=message.direction is not Direction.NOTE
        )
        if message.direction is not Direction.NOTE:
            sla.recompute(conversation, now=now, preloaded=preloaded)
    sla.write_opened(preloaded, keep=True)
    for conversation, _ in touched:
        # As if loaded: later hooks of this transaction find the clocks opened here.
        set_committed_value(conversation, "sla_clocks", preloaded.clocks[conversation.id])


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
    if pending:
        _bookkeep(pending.values(), now)


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


def refresh_conversation_times(conversation: Conversation) -> None:
    """Recompute the conversation's denormalised counts and timestamps from its messages.

    Computed from scratch rather than patched incrementally, so the values are right whatever
    order messages arrive in and after threads are merged.
    """
    db.session.flush()
    rows = sla.message_rows([conversation.id])[conversation.id]
    _summarize(rows).apply_to(conversation)


def _summarize(rows: Iterable[Row]) -> ThreadTimes:
    return summarize_messages((r.direction, r.sent_at, r.is_auto_reply) for r in rows)


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
        raise _unknown_account(platform, account_id)
    return account


def _unknown_account(platform: str, account_id: str | None) -> Unhandled:
    return Unhandled(
        UNKNOWN_ACCOUNT,
        f"no active {platform} channel account {account_id!r}: connect it in Admin › Channels "
        f"(or `flask --app inbox add-channel --platform {platform} --account-id {account_id}`), "
        "then replay its deliveries there",
    )


def _thread_key(account: ChannelAccount, msg: InboundMessage) -> tuple[str, Conversation | None]:
    """The conversation a message belongs to: an existing one (a reply to a message we have) or
    the key of the thread to find or create.

    DMs: one thread per customer and account. Public posts follow the reply chain: a reply to a
    message we hold joins that message's conversation; a reply to one we don't hold is keyed by
    its parent, so when the parent arrives later (out of order) it lands in the same thread. A
    comment directly on a post starts its own thread (one per commenter, not one per post).
    """
    key = _own_thread_key(msg)
    if key is not None:
        return key, None
    parent = msg.parent_external_id
    known = find_message(account, parent)
    if known is not None:
        return "", known.conversation
    return f"{_public_prefix(msg)}:{parent}", None


def _own_thread_key(msg: InboundMessage) -> str | None:
    """The key of the thread `msg` belongs to when the message alone tells it (a DM, a custom
    channel's named thread, a post that starts a thread); None for a reply, which follows its
    parent."""
    if msg.platform == "api" and msg.root_external_id:
        return f"thread:{msg.root_external_id}"  # custom channels name their threads
    if msg.kind == "dm":
        return f"dm:{msg.contact_id}"
    if msg.parent_external_id is None or msg.parent_external_id == msg.root_external_id:
        return f"{_public_prefix(msg)}:{msg.external_id}"
    return None


def _public_prefix(msg: InboundMessage) -> str:
    return "tweet" if msg.platform == "x" else "comment"


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
        identity = resolve_identity(_profile(msg))
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
        attachments=_attachments(msg),
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


def apply_events(events: Sequence[ConnectorEvent], *, now: datetime) -> list[tuple[int, Unhandled]]:
    """Apply parsed platform events (one delivery's, or several deliveries' in order); returns
    (index, why) for each event that could not be applied. The conversations' bookkeeping runs
    once at the end (`batched_bookkeeping`).

    Customer messages whose thread the message alone names (DMs, custom channels' threads,
    posts that start a thread) are stored together, a statement per table for all of them
    (`_store_customer_messages`); every other event follows one by one, in order, so an edit,
    a deletion or a reply finds what it refers to stored.
    """
    issues: list[tuple[int, Unhandled]] = []
    with batched_bookkeeping(now=now):
        together = [
            (index, event)
            for index, event in enumerate(events)
            if isinstance(event, InboundMessage)
            and event.direction == "inbound"
            and not event.needs_fetch
            and event.contact_id is not None
            and _own_thread_key(event) is not None
        ]
        left = _store_customer_messages(together, issues, now=now)
        done = {index for index, _ in together} - {index for index, _ in left}
        for index, event in enumerate(events):
            if index in done:
                continue
            # Unhandled is raised before an event writes anything, so no partial rows remain.
            try:
                apply_event(event)
            except Unhandled as issue:
                issues.append((index, issue))
    issues.sort(key=lambda issue: issue[0])
    return issues


def _store_customer_messages(
    messages: list[tuple[int, InboundMessage]], issues: list[tuple[int, Unhandled]], *, now
) -> list[tuple[int, InboundMessage]]:
    """Store customer messages whose thread key they carry, with a few statements for all of
    them: what `apply_inbound_message` does one by one, in the same order (classification and
    the routing rules still run message by message, on loaded objects). Messages of a closed
    conversation are returned, in order, for the one-by-one path: a customer writing again
    reopens it, and the status change runs its own SLA hooks. Refusals go to `issues`."""
    if not messages:
        return []
    accounts = _active_accounts({(m.platform, m.account_id) for _, m in messages})
    known = _stored_ids(accounts.values(), [m.external_id for _, m in messages])
    fresh: list[tuple[int, InboundMessage, ChannelAccount, str]] = []
    for index, msg in messages:
        account = accounts.get((msg.platform, msg.account_id))
        if account is None:
            issues.append((index, _unknown_account(msg.platform, msg.account_id)))
        elif (account.id, msg.external_id) not in known:
            known.add((account.id, msg.external_id))  # the same message twice in a batch
            fresh.append((index, msg, account, _own_thread_key(msg)))
    if not fresh:
        return []
    threads = _by_pair(
        Conversation.channel_account_id,
        Conversation.thread_key,
        {(account.id, key) for _, _, account, key in fresh},
    )
    closed = {k for k, conversation in threads.items() if not conversation.is_open}
    left = [(i, m) for i, m, account, key in fresh if (account.id, key) in closed]
    fresh = [row for row in fresh if (row[2].id, row[3]) not in closed]
    if not fresh:
        return left
    identities = resolve_identities(_profile(msg) for _, msg, _, _ in fresh)
    latest = _latest_customer_message_at([c.id for c in threads.values()])
    # Imported here: routing acts through services.conversations, which imports this module.
    from inbox.services import classify, routing

    labels = [classify.labels_of(msg.text) for _, msg, _, _ in fresh]
    _create_conversations(
        threads,
        [
            (msg, account, key, identities[_identity_key(msg)], labelled)
            for (_, msg, account, key), labelled in zip(fresh, labels, strict=True)
        ],
    )
    stored = _insert_messages(
        [
            (msg, threads[(account.id, key)], identities[_identity_key(msg)], labelled)
            for (_, msg, account, key), labelled in zip(fresh, labels, strict=True)
        ]
    )

    pending = _batch.get()
    assert pending is not None, "apply_events runs the bookkeeping"
    for message in stored:
        conversation = message.conversation
        previous = latest.get(conversation.id)
        classify.follow_customer(message, previous, now=now)
        latest[conversation.id] = (
            message.sent_at if previous is None else max(previous, message.sent_at)
        )
        routing.on_inbound(message, now=now)
        pending[conversation.id] = (conversation, message)
    return left


def _profile(msg: InboundMessage) -> Profile:
    return Profile(
        Platform(msg.platform),
        msg.author_id or msg.contact_id,
        handle=msg.author_handle or "",
        display_name=msg.author_name or "",
        follower_count=msg.author_follower_count,
        verified=bool(msg.author_verified),
    )


def _identity_key(msg: InboundMessage) -> tuple[Platform, str]:
    return Platform(msg.platform), msg.author_id or msg.contact_id


def _active_accounts(wanted: set[tuple[str, str]]) -> dict[tuple[str, str], ChannelAccount]:
    found = _by_pair(ChannelAccount.platform, ChannelAccount.external_account_id, wanted)
    return {key: account for key, account in found.items() if account.active}


def _stored_ids(
    accounts: Iterable[ChannelAccount], external_ids: list[str]
) -> set[tuple[int, str]]:
    account_ids = [a.id for a in accounts]
    if not account_ids:
        return set()
    rows = db.session.execute(
        select(Message.channel_account_id, Message.external_id).where(
            Message.channel_account_id.in_(account_ids), Message.external_id.in_(external_ids)
        )
    )
    return {(account_id, external_id) for account_id, external_id in rows}


def _by_pair(first: Any, second: Any, wanted: set[tuple[Any, Any]]) -> dict[tuple[Any, Any], Any]:
    """The rows of `first`'s entity whose (first, second) columns are one of the `wanted`
    pairs, by pair: one query (each column in its values; the exact pairs kept here)."""
    entity = first.class_
    rows = db.session.scalars(
        select(entity).where(first.in_({a for a, _ in wanted}), second.in_({b for _, b in wanted}))
    )
    pairs = ((getattr(row, first.key), getattr(row, second.key), row) for row in rows)
    return {(a, b): row for a, b, row in pairs if (a, b) in wanted}


def _latest_customer_message_at(conversation_ids: list[int]) -> dict[int, datetime]:
    """When each conversation's latest customer message was sent (classification compares)."""
    if not conversation_ids:
        return {}
    return dict(
        db.session.execute(
            select(Message.conversation_id, func.max(Message.sent_at))
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == Direction.INBOUND,
            )
            .group_by(Message.conversation_id)
        ).all()
    )


def _create_conversations(
    threads: dict[tuple[int, str], Conversation],
    messages: list[tuple[InboundMessage, ChannelAccount, str, ContactIdentity, Labels]],
) -> None:
    """Insert the conversations the messages start (the first message's kind, author, and
    language and sentiment, which `classify.follow_customer` then finds already set: no
    UPDATE of each new conversation for them), and add them, loaded, to `threads`."""
    starts: dict[tuple[int, str], dict[str, Any]] = {}
    now = utcnow()
    for msg, account, key, identity, (language, sentiment) in messages:
        if (account.id, key) not in threads and (account.id, key) not in starts:
            starts[(account.id, key)] = {
                "channel_account_id": account.id,
                "contact_id": identity.contact_id,
                "thread_key": key,
                "kind": Kind(msg.kind),
                "is_public": msg.is_public,
                "status": Status.NEW,
                "language": language,
                "sentiment": sentiment,
                "created_at": now,
                "updated_at": now,
            }
    if not starts:
        return
    ids = insert_rows(Conversation.__table__, list(starts.values()), return_ids=True)
    for conversation in db.session.scalars(select(Conversation).where(Conversation.id.in_(ids))):
        # New: no clocks and no tags yet, so the hooks and rules need not ask.
        set_committed_value(conversation, "sla_clocks", [])
        set_committed_value(conversation, "tags", [])
        threads[(conversation.channel_account_id, conversation.thread_key)] = conversation


def _insert_messages(
    messages: list[tuple[InboundMessage, Conversation, ContactIdentity, Labels]],
) -> list[Message]:
    """Insert classified customer messages; return them loaded, in the same order."""
    now = utcnow()
    rows = []
    for msg, conversation, identity, (language, sentiment) in messages:
        rows.append(
            {
                "conversation_id": conversation.id,
                "channel_account_id": conversation.channel_account_id,
                "external_id": msg.external_id,
                "direction": Direction.INBOUND,
                "author_identity_id": identity.id,
                "text": msg.text,
                "sent_at": msg.sent_at,
                "attachments": _attachments(msg),
                "language": language,
                "sentiment": sentiment,
                "created_at": now,
                "updated_at": now,
            }
        )
    ids = insert_rows(Message.__table__, rows, return_ids=True)
    loaded = {m.id: m for m in db.session.scalars(select(Message).where(Message.id.in_(ids)))}
    return [loaded[i] for i in ids]


def _attachments(msg: InboundMessage) -> list[dict[str, Any]]:
    return [
        {"type": a.type, "url": a.url, "media_id": a.media_id, "caption": a.caption}
        for a in msg.attachments
    ]
