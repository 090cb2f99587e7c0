"""Meta webhook: Messenger and Instagram DMs, Instagram comments and mentions, Page feed comments.

One Meta app webhook carries `object: page` (Messenger in `entry[].messaging`, Page feed in
`entry[].changes`) and `object: instagram` (DMs in `messaging`, comments and mentions in
`changes`). This module also owns the Meta app conventions WhatsApp shares: the `hub.*`
verification handshake and the hex `X-Hub-Signature-256` signature, and the Graph API's error
answers (`{"error": {"message", "code", "error_subcode", "is_transient", …}}`).

Replies go out through the Graph API with the Page (or Instagram) access token: Messenger and
Instagram DMs with `POST /{account-id}/messages` (the answer's `message_id` is the `mid` the echo
carries), an Instagram comment reply with `POST /{ig-comment-id}/replies` and a Page comment
reply with `POST /{comment-id}/comments` (the answer's `id` is the webhook's comment id).
"""

from __future__ import annotations

import dataclasses
import hmac
from abc import ABC
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from inbox.connectors.base import (
    ApiEndpoint,
    Attachment,
    Connector,
    DeliveryStatus,
    Event,
    HandshakeReply,
    HttpAnswer,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    OutboundReply,
    PermanentSendError,
    Platform,
    ReplyMode,
    SendResult,
    StatusWatermark,
    TransientSendError,
    UnsupportedEvent,
    get_json,
    header_value,
    id_str,
    path_segment,
    post_json,
    retry_after_seconds,
    signature_matches,
    utc_from_epoch,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"

# Which platform a `messaging` event belongs to, by the payload's `object`.
_DM_PLATFORMS: dict[str, Platform] = {"page": "messenger", "instagram": "instagram"}

# Keys every `messaging` item has besides the one that names its event type.
_MESSAGING_ENVELOPE = frozenset({"sender", "recipient", "timestamp"})

# Keys of an `entry` that are read here; any other key is an event kind kept as unsupported.
_ENTRY_KEYS = frozenset({"id", "time", "messaging", "changes"})

# Graph API error codes that mean "slow down / try later" rather than "no": unknown and service
# errors (1, 2), app/user/Page rate limits (4, 17, 32, 341, 613), business use-case limits
# (80001-80007) and WhatsApp throughput and pair-rate limits (130429, 131056, 131016 = service
# unavailable). Anything else is the platform's final answer, unless it says `is_transient`.
_GRAPH_TRANSIENT_CODES = frozenset(
    {1, 2, 4, 17, 32, 341, 613, 80001, 80002, 80004, 80005, 80006, 80007, 130429, 131016, 131056}
)


class MetaAppConnector(Connector, ABC):
    """Verification and signature rules of every webhook a Meta app receives (incl. WhatsApp)."""

    def verify_signature(self, raw_body: bytes, headers: Mapping[str, str], secret: str) -> bool:
        received = header_value(headers, SIGNATURE_HEADER)
        return signature_matches(raw_body, received, secret, "hex")

    def handshake(self, args: Mapping[str, str], secret: str) -> HandshakeReply | None:
        """Echo `hub.challenge` when a subscribe request presents our verify token."""
        token = args.get("hub.verify_token")
        challenge = args.get("hub.challenge")
        if args.get("hub.mode") != "subscribe" or not secret or not token or challenge is None:
            return None
        if not hmac.compare_digest(token.encode(), secret.encode()):
            return None
        return HandshakeReply(body=challenge, content_type="text/plain")


def graph_raise_for_error(answer: HttpAnswer, platform: str) -> None:
    """Turn a Graph API error answer into a send error that keeps Meta's own wording.

    The code is `code` or `code/subcode` (e.g. `10/2018278`: Messenger's messaging window has
    closed), so agents and logs can look it up in Meta's error reference.
    """
    error = answer.body.get("error")
    if 200 <= answer.status < 300 and not isinstance(error, dict):
        return
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    subcode = error.get("error_subcode")
    message = str(error.get("message") or f"{platform} refused the reply")
    details = (error.get("error_data") or {}).get("details")
    if details and details not in message:
        message = f"{message}: {details}"
    transient = (
        answer.status == 429
        or answer.status >= 500
        or error.get("is_transient") is True
        or code in _GRAPH_TRANSIENT_CODES
    )
    if transient:
        raise TransientSendError(
            f"{platform} asked us to try later: {message}",
            retry_after=retry_after_seconds(answer.headers),
        )
    code_text = str(code if code is not None else answer.status)
    raise PermanentSendError(code_text if subcode is None else f"{code_text}/{subcode}", message)


def graph_post(
    api: ApiEndpoint, path: str, body: dict[str, Any], reply: OutboundReply
) -> HttpAnswer:
    """POST to the Graph API and raise on any error answer."""
    answer = post_json(
        f"{api.base_url}/{path}", body, token=reply.access_token, timeout=api.timeout
    )
    graph_raise_for_error(answer, _PLATFORM_NAMES[reply.platform])
    return answer


_PLATFORM_NAMES = {
    "messenger": "Messenger",
    "instagram": "Instagram",
    "facebook": "Facebook",
    "whatsapp": "WhatsApp",
    "x": "X",
}


def _required_id(answer: HttpAnswer, key: str) -> str:
    value = answer.body.get(key)
    if value is None:
        raise PermanentSendError(str(answer.status), f"the platform answered without a {key}")
    return id_str(value)


class MetaConnector(MetaAppConnector):
    """Translates the Meta app webhook for Pages (Messenger, feed) and Instagram."""

    name = "meta"
    reply_modes = (
        ReplyMode(
            platform="messenger", kind="dm", is_public=False, label="Message", max_length=2000
        ),
        # Instagram measures a message's text in UTF-8 bytes: emoji-heavy text is shorter.
        ReplyMode(
            platform="instagram",
            kind="dm",
            is_public=False,
            label="Direct message",
            max_length=1000,
            unit="utf8_bytes",
        ),
        ReplyMode(
            platform="instagram",
            kind="comment",
            is_public=True,
            label="Comment reply",
            max_length=1000,
        ),
        ReplyMode(
            platform="facebook",
            kind="comment",
            is_public=True,
            label="Comment reply",
            max_length=8000,
        ),
    )

    def send(self, reply: OutboundReply, api: ApiEndpoint) -> SendResult:
        if not reply.is_public:
            if not reply.recipient_id:
                raise PermanentSendError("no_recipient", "This conversation has no one to message.")
            body: dict[str, Any] = {
                "recipient": {"id": reply.recipient_id},
                "message": {"text": reply.text},
            }
            if reply.platform == "messenger":
                # A reply to a message the person sent us (inside the standard messaging window).
                body["messaging_type"] = "RESPONSE"
            answer = graph_post(api, f"{path_segment(reply.account_id)}/messages", body, reply)
            return SendResult(external_id=_required_id(answer, "message_id"), raw=answer.body)
        if not reply.reply_to_external_id:
            raise PermanentSendError(
                "no_parent", "There is no comment in this conversation to answer."
            )
        edge = "replies" if reply.platform == "instagram" else "comments"
        path = f"{path_segment(reply.reply_to_external_id)}/{edge}"
        answer = graph_post(api, path, {"message": reply.text}, reply)
        return SendResult(external_id=_required_id(answer, "id"), raw=answer.body)

    def fetch(
        self, message: InboundMessage, api: ApiEndpoint, *, access_token: str
    ) -> InboundMessage:
        """An Instagram mention's comment (or captioned media) read through the account:
        `GET /{ig-user-id}?fields=mentioned_comment.comment_id(…){…}` (or `mentioned_media`).
        The comment itself cannot be read by its id: it belongs to someone else's media."""
        if message.platform != "instagram" or message.kind != "mention":
            return super().fetch(message, api, access_token=access_token)
        comment_id = message.raw.get("comment_id")
        if comment_id is not None:
            edge = "mentioned_comment"
            field = f"{edge}.comment_id({id_str(comment_id)}){{id,text,timestamp,username,from}}"
        else:
            edge = "mentioned_media"
            field = f"{edge}.media_id({message.external_id}){{id,caption,timestamp,username}}"
        answer = get_json(
            f"{api.base_url}/{path_segment(message.account_id)}?fields={quote(field, safe='')}",
            token=access_token,
            timeout=api.timeout,
        )
        graph_raise_for_error(answer, "Instagram")
        found = answer.body.get(edge)
        if not isinstance(found, dict):
            raise PermanentSendError(str(answer.status), f"Instagram answered without {edge}")
        author = found.get("from") if isinstance(found.get("from"), dict) else {}
        username = found.get("username") or author.get("username")
        author_id = author.get("id")
        return dataclasses.replace(
            message,
            text=str(found.get("text") or found.get("caption") or ""),
            # The IGSID when Meta gives it (as comment webhooks do), so the same person's
            # comments and mentions resolve to one contact; else the username.
            author_id=id_str(author_id) if author_id is not None else username,
            author_handle=username,
            sent_at=_graph_time(found.get("timestamp")) or message.sent_at,
            needs_fetch=False,
        )

    def _parse(self, payload: dict[str, Any]) -> list[Event]:
        kind = payload["object"]
        entries: list[dict[str, Any]] = payload["entry"]
        if kind not in _DM_PLATFORMS:
            return [
                UnsupportedEvent(
                    platform="facebook",
                    account_id=None,
                    event_type=f"object:{kind}",
                    reason=f"Meta webhook object '{kind}' is not handled",
                    raw=payload,
                )
            ]
        events: list[Event] = []
        for entry in entries:
            account_id = id_str(entry["id"])
            for item in entry.get("messaging", []):
                events.extend(_messaging(_DM_PLATFORMS[kind], account_id, item))
            for change in entry.get("changes", []):
                events.append(_change(kind, account_id, entry, change))
            events.extend(
                UnsupportedEvent(
                    platform=_DM_PLATFORMS[kind],
                    account_id=account_id,
                    event_type=f"entry:{key}",
                    reason=f"Meta entry field '{key}' is not handled",
                    raw={key: entry[key]},
                )
                for key in sorted(entry.keys() - _ENTRY_KEYS)
            )
        return events


def _messaging(platform: Platform, account_id: str, item: dict[str, Any]) -> list[Event]:
    """One `messaging[]` item: a message, an edit, or a delivery or read receipt."""
    if "message" in item:
        return [_message(platform, account_id, item)]
    if "message_edit" in item:
        edit = item["message_edit"]
        return [
            MessageEdit(
                platform=platform,
                account_id=account_id,
                external_id=id_str(edit["mid"]),
                text=edit.get("text", ""),
                at=utc_from_epoch(item["timestamp"], "ms"),
                raw=item,
            )
        ]
    if "delivery" in item:
        return _delivery(platform, account_id, item)
    if "read" in item:
        return [
            StatusWatermark(
                platform=platform,
                account_id=account_id,
                contact_id=id_str(item["sender"]["id"]),
                status="read",
                up_to=utc_from_epoch(item["read"]["watermark"], "ms"),
                raw=item,
            )
        ]
    event_type = next(iter(sorted(item.keys() - _MESSAGING_ENVELOPE)), "empty")
    return [
        UnsupportedEvent(
            platform=platform,
            account_id=account_id,
            event_type=f"messaging:{event_type}",
            reason=f"{platform} '{event_type}' events are not handled",
            raw=item,
        )
    ]


def _message(platform: Platform, account_id: str, item: dict[str, Any]) -> Event:
    message = item["message"]
    external_id = id_str(message["mid"])
    sent_at = utc_from_epoch(item["timestamp"], "ms")
    if message.get("is_deleted"):
        # Instagram "unsend": the same mid comes back flagged, with no text.
        return MessageDeletion(
            platform=platform, account_id=account_id, external_id=external_id, at=sent_at, raw=item
        )
    if message.get("is_unsupported"):
        return UnsupportedEvent(
            platform=platform,
            account_id=account_id,
            event_type="messaging:message:unsupported",
            reason=f"{platform} could not deliver the content of message {external_id}",
            raw=item,
        )
    app_id = message.get("app_id")
    reply_to = message.get("reply_to", {}).get("mid")
    return InboundMessage(
        platform=platform,
        account_id=account_id,
        external_id=external_id,
        kind="dm",
        is_public=False,
        # Messages our Page/account sends (from us or any other app) echo back with is_echo.
        direction="outbound" if message.get("is_echo") else "inbound",
        sent_at=sent_at,
        text=message.get("text", ""),
        author_id=id_str(item["sender"]["id"]),
        recipient_id=id_str(item["recipient"]["id"]),
        parent_external_id=None if reply_to is None else id_str(reply_to),
        app_id=None if app_id is None else id_str(app_id),
        attachments=tuple(
            # `fallback` and some `template` attachments have a null payload.
            Attachment(type=attachment["type"], url=(attachment.get("payload") or {}).get("url"))
            for attachment in message.get("attachments", [])
        ),
        raw=item,
    )


def _delivery(platform: Platform, account_id: str, item: dict[str, Any]) -> list[Event]:
    """Delivery receipts have no timestamp; the watermark is when delivery was last confirmed."""
    delivery = item["delivery"]
    watermark = utc_from_epoch(delivery["watermark"], "ms")
    mids = delivery.get("mids", [])
    if not mids:
        return [
            StatusWatermark(
                platform=platform,
                account_id=account_id,
                contact_id=id_str(item["sender"]["id"]),
                status="delivered",
                up_to=watermark,
                raw=item,
            )
        ]
    return [
        DeliveryStatus(
            platform=platform,
            account_id=account_id,
            external_id=id_str(mid),
            status="delivered",
            at=watermark,
            recipient_id=id_str(item["sender"]["id"]),
            raw=item,
        )
        for mid in mids
    ]


def _change(kind: str, account_id: str, entry: dict[str, Any], change: dict[str, Any]) -> Event:
    """One `changes[]` item: an Instagram comment or mention, or a Page feed comment."""
    field, value = change["field"], change["value"]
    if kind == "instagram" and field == "comments":
        return _instagram_comment(account_id, entry, value)
    if kind == "instagram" and field == "mentions":
        comment_id = value.get("comment_id")
        return InboundMessage(
            platform="instagram",
            account_id=account_id,
            # A mention in a media caption has no comment; the media is then the message.
            external_id=id_str(comment_id if comment_id is not None else value["media_id"]),
            kind="mention",
            is_public=True,
            direction="inbound",
            sent_at=_entry_time(entry),
            root_external_id=id_str(value["media_id"]),
            needs_fetch=True,
            raw=value,
        )
    if kind == "page" and field == "feed" and value.get("item") == "comment":
        return _feed_comment(account_id, value)
    detail = f"{field}:{value.get('item')}:{value.get('verb')}" if field == "feed" else field
    return UnsupportedEvent(
        platform="facebook" if kind == "page" else "instagram",
        account_id=account_id,
        event_type=f"changes:{detail}",
        reason=f"Meta '{detail}' changes are not handled",
        raw=change,
    )


def _instagram_comment(account_id: str, entry: dict[str, Any], value: dict[str, Any]) -> Event:
    author = value.get("from", {})
    author_id = None if "id" not in author else id_str(author["id"])
    parent_id = value.get("parent_id")
    return InboundMessage(
        platform="instagram",
        account_id=account_id,
        external_id=id_str(value["id"]),
        kind="comment",
        is_public=True,
        # Our own replies to comments arrive on the same webhook, authored by our account.
        direction="outbound" if author_id == account_id else "inbound",
        # Comment payloads carry no timestamp of their own.
        sent_at=_entry_time(entry),
        text=value.get("text", ""),
        author_id=author_id,
        author_handle=author.get("username"),
        parent_external_id=None if parent_id is None else id_str(parent_id),
        root_external_id=id_str(value["media"]["id"]),
        raw=value,
    )


def _feed_comment(account_id: str, value: dict[str, Any]) -> Event:
    """A Page feed comment: `verb` says whether it was added, edited or removed."""
    verb = value["verb"]
    external_id = id_str(value["comment_id"])
    at = utc_from_epoch(value["created_time"], "s")
    if verb == "remove":
        return MessageDeletion(
            platform="facebook", account_id=account_id, external_id=external_id, at=at, raw=value
        )
    if verb == "edited":
        return MessageEdit(
            platform="facebook",
            account_id=account_id,
            external_id=external_id,
            text=value.get("message", ""),
            at=at,
            raw=value,
        )
    if verb != "add":
        return UnsupportedEvent(
            platform="facebook",
            account_id=account_id,
            event_type=f"changes:feed:comment:{verb}",
            reason=f"Page feed comment verb '{verb}' is not handled",
            raw=value,
        )
    author = value.get("from", {})
    author_id = None if "id" not in author else id_str(author["id"])
    photo = value.get("photo")
    return InboundMessage(
        platform="facebook",
        account_id=account_id,
        external_id=external_id,
        kind="comment",
        is_public=True,
        direction="outbound" if author_id == account_id else "inbound",
        sent_at=at,
        text=value.get("message", ""),
        author_id=author_id,
        author_name=author.get("name"),
        # For a top-level comment the parent is the post itself (parent_id == post_id).
        parent_external_id=id_str(value.get("parent_id", value["post_id"])),
        root_external_id=id_str(value["post_id"]),
        attachments=() if photo is None else (Attachment(type="image", url=photo),),
        raw=value,
    )


def _entry_time(entry: dict[str, Any]) -> datetime:
    # `entry.time` is documented as seconds for changes but is milliseconds on messaging entries;
    # guess the unit so a change in Meta's habits cannot move a comment by a factor of 1000.
    return utc_from_epoch(entry["time"], "auto")


def _graph_time(value: object) -> datetime | None:
    """A Graph API timestamp ("2025-03-18T07:45:54+0000") as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
    except ValueError:
        return None
