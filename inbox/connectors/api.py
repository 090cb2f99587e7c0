"""The JSON shape of POST /api/v1/messages (custom channels), translated like a platform's.

A custom channel is a ChannelAccount with platform "api"; the caller names it by its account
id and sends one message per request. Translate only: validation and mapping, no database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inbox.connectors.base import Attachment, InboundMessage, ParseError

KINDS = ("dm", "mention", "comment")
DIRECTIONS = ("inbound", "outbound")
MAX_TEXT = 20_000


def _string(payload: dict[str, Any], key: str, *, required: bool, limit: int = 255) -> str | None:
    value = payload.get(key)
    if value is None:
        if required:
            raise ParseError(f"'{key}' is required")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ParseError(f"'{key}' must be a string")
    value = str(value)
    if required and not value.strip():
        raise ParseError(f"'{key}' must not be empty")
    if len(value) > limit:
        raise ParseError(f"'{key}' is longer than {limit} characters")
    return value


def parse_api_message(payload: object, *, now: datetime) -> InboundMessage:
    """Validate an ingest request; ParseError names the first field that is wrong.

    Fields: channel (account id), message_id (the caller's id, for idempotency), author
    {id, handle?, name?, followers?}, text, sent_at (ISO 8601 with offset; default now),
    kind (dm|mention|comment, default dm), is_public (default kind != dm), direction
    (inbound|outbound, default inbound), thread_id (optional: messages sharing it form one
    conversation; default one per author for DMs, per message otherwise), reply_to (optional),
    attachments [{type, url?, caption?}].
    """
    if not isinstance(payload, dict):
        raise ParseError("the body must be a JSON object")
    channel = _string(payload, "channel", required=True)
    message_id = _string(payload, "message_id", required=True)
    author = payload.get("author")
    if not isinstance(author, dict):
        raise ParseError("'author' must be an object with at least an 'id'")
    author_id = _string(author, "id", required=True)
    text = payload.get("text", "")
    if not isinstance(text, str):
        raise ParseError("'text' must be a string")
    if len(text) > MAX_TEXT:
        raise ParseError(f"'text' is longer than {MAX_TEXT} characters")
    kind = payload.get("kind", "dm")
    if kind not in KINDS:
        raise ParseError(f"'kind' must be one of {', '.join(KINDS)}")
    direction = payload.get("direction", "inbound")
    if direction not in DIRECTIONS:
        raise ParseError(f"'direction' must be one of {', '.join(DIRECTIONS)}")
    is_public = payload.get("is_public", kind != "dm")
    if not isinstance(is_public, bool):
        raise ParseError("'is_public' must be true or false")
    followers = author.get("followers")
    if followers is not None and (not isinstance(followers, int) or isinstance(followers, bool)):
        raise ParseError("'author.followers' must be an integer")
    attachments = payload.get("attachments", [])
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise ParseError("'attachments' must be a list of objects")
    if not text and not attachments:
        raise ParseError("a message needs 'text' or 'attachments'")
    thread_id = _string(payload, "thread_id", required=False)
    reply_to = _string(payload, "reply_to", required=False)
    return InboundMessage(
        platform="api",  # type: ignore[arg-type]  (custom channels are not a social platform)
        account_id=channel,
        external_id=message_id,
        kind=kind,
        is_public=is_public,
        direction=direction,
        sent_at=_timestamp(payload.get("sent_at"), now),
        text=text,
        author_id=author_id,
        author_handle=_string(author, "handle", required=False),
        author_name=_string(author, "name", required=False),
        author_follower_count=followers,
        recipient_id=author_id if direction == "outbound" else None,
        parent_external_id=reply_to,
        root_external_id=thread_id,
        attachments=tuple(
            Attachment(
                type=str(a.get("type", "file")),
                url=a.get("url") if isinstance(a.get("url"), str) else None,
                caption=a.get("caption") if isinstance(a.get("caption"), str) else None,
            )
            for a in attachments
        ),
        raw=payload,
    )


def _timestamp(value: object, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise ParseError("'sent_at' must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParseError(f"'sent_at' is not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise ParseError("'sent_at' needs a time zone offset (e.g. 2026-01-01T09:00:00Z)")
    return parsed
