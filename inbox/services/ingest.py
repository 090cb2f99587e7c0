"""Turning normalised messages into domain rows: contact identities, conversations, messages.

Every entry path (webhooks, the ingest API, CSV import, demo data) goes through these functions,
so dedupe, threading and the conversation's denormalised timestamps behave the same everywhere.
Imports: models, extensions.db, live, services.audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from inbox.extensions import db
from inbox.live import publish_after_commit
from inbox.models import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    Direction,
    Kind,
    Message,
    Platform,
    Status,
    Team,
)


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
    attachments: list[dict[str, Any]] | None = None,
    reopen: bool = True,
) -> Message | None:
    """Thread a message into `conversation`; return None if that platform id is already stored.

    Keeps the conversation's first/last timestamps right whatever order messages arrive in,
    and reopens a resolved conversation when the customer writes again (unless `reopen` is off,
    as for historical imports).
    """
    account = conversation.channel_account
    if external_id is not None and find_message(account, external_id) is not None:
        return None
    message = Message(
        conversation=conversation,
        channel_account_id=account.id,
        external_id=external_id,
        direction=direction,
        text=text,
        sent_at=sent_at,
        author_identity=author_identity,
        attachments=attachments or [],
    )
    db.session.add(message)
    _update_conversation_times(conversation, message)
    # Agents who opened the conversation before this message must re-check before acting.
    conversation.version = (conversation.version or 0) + 1
    if direction is not Direction.NOTE:
        # Notes are published by the action that adds them, with who did it.
        publish_after_commit(
            db.session, "conversation.updated", conversation_id=conversation.id, action="message"
        )
    if direction is Direction.INBOUND and reopen and not conversation.is_open:
        conversation.status = Status.OPEN
        conversation.resolved_at = None
    db.session.flush()
    return message


def _update_conversation_times(conversation: Conversation, message: Message) -> None:
    at = message.sent_at
    if message.direction is Direction.NOTE:
        return
    conversation.message_count += 1
    if conversation.last_message_at is None or at > conversation.last_message_at:
        conversation.last_message_at = at
    if message.direction is Direction.INBOUND:
        if conversation.last_inbound_at is None or at > conversation.last_inbound_at:
            conversation.last_inbound_at = at
        if conversation.first_inbound_at is None or at < conversation.first_inbound_at:
            conversation.first_inbound_at = at
            # The customer's first message arrived late (out of order): the first response is
            # the earliest human reply at or after it, which may be a reply stored already.
            db.session.flush()
            conversation.first_response_at = db.session.scalar(
                select(Message.sent_at)
                .where(
                    Message.conversation_id == conversation.id,
                    Message.direction == Direction.OUTBOUND,
                    Message.is_auto_reply.is_(False),
                    Message.sent_at >= at,
                )
                .order_by(Message.sent_at)
                .limit(1)
            )
    elif message.direction is Direction.OUTBOUND and not message.is_auto_reply:
        first_in = conversation.first_inbound_at
        if (
            first_in is not None
            and at >= first_in
            and (conversation.first_response_at is None or at < conversation.first_response_at)
        ):
            conversation.first_response_at = at
